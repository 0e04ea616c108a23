//! The streaming shell around the rewriting core. A request goes through explicit phases:
//!
//! 1. `decide`: the visitor's consent from the signed cookie (else: undecided, all blocked);
//! 2. own endpoints under the consent prefix;
//! 3. `upstream_request`: hop-by-hop removal, forwarding headers, Host, `If-None-Match`
//!    translation, `Accept-Encoding` narrowed to codings we can rewrite;
//! 4. `respond`: HTML gets consent-specific cache headers and a rewritten body; everything else
//!    passes through untouched.

mod admin;
pub use admin::{serve_admin_current, Reload};
mod assets;
mod body;
mod endpoints;
pub mod headers;
mod sites;
mod upstreams;
pub use sites::Sites;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

pub use body::{BoxError, ProxyBody};

use crate::banner::{self, BannerOptions};
use crate::codec::{Coding, Fragment};
use crate::config::{Config, HostHeader};
use crate::decision::{cookie_value, CookieSigner, Decision};
use crate::i18n::Languages;
use crate::matcher::ServiceSet;
use crate::pipeline::BodyRewriter;
use crate::policy::Policy;
use crate::rewrite::{Injection, RewriteStats};

pub type UpstreamBody = BoxBody<bytes::Bytes, hyper::Error>;
pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, UpstreamBody>;

/// Everything a request needs, built once per configuration.
pub struct Proxy {
    pub config: Config,
    pub policy: Arc<Policy>,
    /// CSP violation reports received, for the admin listener.
    pub reports: Arc<crate::reports::CspReports>,
    /// Third-party origins the pages referenced, for the admin listener.
    pub discovery: Arc<crate::discovery::Discovery>,
    /// Prometheus metrics, rendered by the admin listener.
    pub metrics: Arc<crate::metrics::ProxyMetrics>,
    /// The site's name: the `site` label of its metrics.
    pub site: String,
    /// The CSP sources of each service, derived once from the catalog.
    csp_sources: crate::csp::ServiceSources,
    /// The receipt write path; `None` when receipts are off.
    pub receipts: Option<Arc<crate::receipts::ReceiptLog>>,
    /// Opens a receipt store connection for reads (self-service, admin).
    pub receipt_store: Option<crate::receipts::Opener>,
    languages: Arc<Languages>,
    banner: Arc<BannerOptions>,
    signer: CookieSigner,
    /// Hash of the catalog and texts in force: the policy version in consent cookies, and folded
    /// into consent-specific ETags so a config change invalidates pages cached under the old one.
    policy_hash: [u8; 8],
    client: HttpsClient,
    /// HTTP/1.1 only, for upgrades (WebSocket): HTTP/2 has no `Upgrade`, so with
    /// `upstream.protocol = "http2"` (or `auto` when ALPN picks h2) they take this one.
    upgrade_client: HttpsClient,
    /// The origin's addresses, balanced with passive health.
    upstreams: upstreams::Upstreams,
    /// Rendered banners: rendering and escaping cost more than the rewrite of a small page.
    banner_cache: Arc<StateCache<BannerKey, Arc<Fragment>>>,
    /// Our CSP header by consent-state tag (sorting and joining every consented service's
    /// sources cost more than proxying a small page); `None` if it is not a valid header.
    csp_cache: StateCache<String, Option<HeaderValue>>,
    /// `Reporting-Endpoints` naming our CSP report path, made once (`None`: no reporting).
    reporting_endpoints: Option<HeaderValue>,
}

/// A rendered banner's key: consent-state tag, has a receipt, facades shown.
type BannerKey = (String, bool, Vec<usize>);

/// What is derived from a consent state and reused for every response in that state, bounded:
/// when full it starts over (the states in use are few; a flood of odd ones must not grow
/// memory).
struct StateCache<K, V>(std::sync::Mutex<crate::FastMap<K, V>>);

impl<K, V> Default for StateCache<K, V> {
    fn default() -> Self {
        StateCache(std::sync::Mutex::default())
    }
}

impl<K: std::hash::Hash + Eq, V: Clone> StateCache<K, V> {
    const CAPACITY: usize = 512;

    /// The cached value, else `make`'s (built without holding the lock), then cached. The key
    /// is copied only when a value is added.
    fn get_or<Q>(&self, key: &Q, make: impl FnOnce() -> V) -> V
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(v) = self.lock().get(key) {
            return v.clone();
        }
        let v = make();
        let mut map = self.lock();
        if map.len() >= Self::CAPACITY {
            map.clear();
        }
        map.insert(key.to_owned(), v.clone());
        v
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, crate::FastMap<K, V>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Parsed once: a `&str` header name is validated on every use.
const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// What kind of work a response was, for the latency histogram.
#[derive(Debug, Clone, Copy)]
struct ResponseKind(&'static str);

/// The facts about one request that shape its response.
struct Exchange {
    method: Method,
    blocked: ServiceSet,
    /// Consent-state tag for ETags, if the request needed it already.
    state: Option<String>,
    page: Page,
    /// `If-None-Match` carried our tag of this state.
    page_revalidation: bool,
    /// Add the banner (a document request, banner enabled).
    inject: bool,
    visitor: Visitor,
}

/// What the proxy knows about the visitor of one request.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub decision: Decision,
    /// Banner language, from `Accept-Language`.
    pub lang: String,
    /// `Sec-GPC: 1`: the browser asks not to be tracked.
    pub gpc: bool,
}

/// How the signing key was obtained, so the binary can warn about a random one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Config,
    Environment,
    Random,
}

impl Proxy {
    /// Builds the proxy; the key comes from the config, else `CONSENTGATE_KEY`, else is random.
    pub fn new(config: Config) -> Result<(Proxy, KeySource), String> {
        Proxy::new_with_receipts(config, None)
    }

    /// As `new`, reusing a running receipt log (`Some(None)`: receipts were off).
    pub(crate) fn new_with_receipts(
        config: Config,
        reuse: Option<Option<Arc<crate::receipts::ReceiptLog>>>,
    ) -> Result<(Proxy, KeySource), String> {
        let (signer, source) = match (&config.consent.key, std::env::var("CONSENTGATE_KEY")) {
            (Some(k), _) => (CookieSigner::new(k.as_bytes()), KeySource::Config),
            (None, Ok(k)) if !k.is_empty() => {
                (CookieSigner::new(k.as_bytes()), KeySource::Environment)
            }
            _ => (CookieSigner::random(), KeySource::Random),
        };
        let policy = Arc::new(Policy::new(config.catalog.clone(), config.rewrite)?);
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(config.catalog.services()).unwrap_or_default());
        h.update(config.languages.fingerprint_bytes());
        // What the banner offers is part of what visitors agree to.
        h.update(format!("{:?}", config.consent.shown).as_bytes());
        let digest = h.finalize();
        let mut policy_hash = [0u8; 8];
        policy_hash.copy_from_slice(&digest[..8]);
        let version = crate::hex(&policy_hash);
        let signer = signer.with_version(&version);
        let banner = Arc::new(BannerOptions {
            prefix: config.consent.endpoint_prefix.clone(),
            privacy_policy_url: config.consent.privacy_policy_url.clone(),
            settings_corner: config.consent.settings_corner,
            asset_version: format!("?v={}", assets::version()),
            shown: config.consent.shown.as_ref().map(|ids| {
                let mut set = ServiceSet::new();
                for &i in ids {
                    set.insert(i);
                }
                set
            }),
            reload_on_grant: config.csp.mode == crate::csp::CspMode::Enforce,
        });
        let languages = Arc::new(config.languages.clone());

        let client = http_client(&config.upstream)?;
        // Already HTTP/1.1: the same client (and pool) serves upgrades.
        let upgrade_client = match config.upstream.protocol {
            crate::config::UpstreamProtocol::Http1 => client.clone(),
            _ => http_client_speaking(&config.upstream, crate::config::UpstreamProtocol::Http1)?,
        };
        let upstreams = upstreams::Upstreams::new(&config.upstream);
        let csp_sources = crate::csp::ServiceSources::new(&config.catalog);
        let reporting_endpoints =
            config.csp.report_path.as_ref().and_then(|path| {
                HeaderValue::from_str(&format!("consentgate-csp=\"{path}\"")).ok()
            });
        let receipt_store = receipt_opener(&config.receipts.store);
        let receipts = match reuse {
            Some(log) => log,
            None => receipt_store
                .clone()
                .map(|o| Arc::new(crate::receipts::ReceiptLog::start(o, config.receipts.queue))),
        };
        Ok((
            Proxy {
                config,
                policy,
                reports: Arc::default(),
                discovery: Arc::default(),
                metrics: Arc::new(crate::metrics::ProxyMetrics::new()),
                site: "default".to_string(),
                csp_sources,
                receipts,
                receipt_store,
                languages,
                banner,
                signer,
                policy_hash,
                client,
                upgrade_client,
                upstreams,
                banner_cache: Arc::default(),
                csp_cache: StateCache::default(),
                reporting_endpoints,
            },
            source,
        ))
    }

    /// Serves connections from `listener` until `shutdown` resolves, then stops accepting and
    /// lets in-flight requests finish for up to `limits.shutdown_timeout`.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let sites = Arc::new(Sites::single(self));
        serve_current(Arc::new(move || sites.clone()), listener, shutdown).await
    }

    /// A proxy for a new configuration that keeps this one's running state: metrics, discovery,
    /// CSP reports, and the receipt write path when the store is unchanged (so no receipt is
    /// lost or written twice across a reload).
    pub fn reconfigured(&self, config: Config) -> Result<Proxy, String> {
        self.reconfigured_sharing(config, None)
    }

    /// As `reconfigured`, but the shared state (metrics, discovery, reports, receipt path)
    /// comes from `shared`, another site of the new configuration.
    pub(crate) fn reconfigured_sharing(
        &self,
        config: Config,
        shared: Option<&Proxy>,
    ) -> Result<Proxy, String> {
        let same_store = config.receipts.store == self.config.receipts.store;
        let random_key = config.consent.key.is_none()
            && std::env::var("CONSENTGATE_KEY").map_or(true, |k| k.is_empty());
        let receipts = match shared {
            Some(s) => Some(s.receipts.clone()),
            None => same_store.then(|| self.receipts.clone()),
        };
        let (mut next, _) = Proxy::new_with_receipts(config, receipts)?;
        if random_key {
            // A generated key lives as long as the process: visitors keep their decisions.
            next.signer = self.signer.clone().with_version(next.signer.version());
        }
        next.share_state(shared.unwrap_or(self));
        Ok(next)
    }

    /// Takes another proxy's metrics, discovery and CSP reports (sites of one process, or the
    /// configuration before a reload).
    pub(crate) fn share_state(&mut self, other: &Proxy) {
        self.metrics = other.metrics.clone();
        self.discovery = other.discovery.clone();
        self.reports = other.reports.clone();
    }

    /// The same proxy under a site name (its metrics label).
    pub fn named(mut self, name: &str) -> Proxy {
        self.site = name.to_string();
        self
    }

    /// Deletes receipts older than the retention period; the purge is logged.
    pub async fn purge_expired(&self) -> Result<u64, String> {
        let Some(open) = self.receipt_store.clone() else {
            return Ok(0);
        };
        let retention = self.config.receipts.retention;
        let before = crate::receipts::now_ms() - retention.as_millis() as i64;
        let n = tokio::task::spawn_blocking(move || open()?.purge(before))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        tracing::info!(
            purged = n,
            older_than = %crate::receipts::query::utc(before),
            "receipt retention purge"
        );
        Ok(n)
    }

    /// Purges expired receipts now and every six hours, in the background.
    pub fn start_retention(self: &Arc<Self>) {
        if self.receipt_store.is_none() {
            return;
        }
        let proxy = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = proxy.purge_expired().await {
                    tracing::error!(error = %e, "receipt retention purge failed");
                }
                tokio::time::sleep(std::time::Duration::from_secs(6 * 3600)).await;
            }
        });
    }

    /// Stops taking receipts and waits until every queued one is committed.
    pub async fn drain_receipts(&self) {
        if let Some(log) = self.receipts.clone() {
            let _ = tokio::task::spawn_blocking(move || log.shutdown()).await;
        }
    }

    /// The visitor's decision: our signed cookie, else undecided. With an adapter, the other
    /// consent manager's cookie decides the services it maps (a malformed one grants nothing),
    /// and ours the rest (e.g. a chat facade's grant).
    pub fn decide(&self, req: &Request<Incoming>) -> Decision {
        let name = &self.config.consent.cookie_name;
        let headers: Vec<&str> = req
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let ours = headers
            .iter()
            .find_map(|h| cookie_value(h, name))
            .and_then(|v| self.signer.decode(&self.policy.catalog, v));
        let Some(adapter) = &self.config.consent.adapter else {
            return ours.unwrap_or_default();
        };
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .flat_map(|h| h.split(';'))
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let foreign = crate::cmp::read(adapter.kind, &pairs, adapter.cookie_name.as_deref());
        let mut d = ours.unwrap_or_default();
        for (svc, ids) in &adapter.services {
            d.granted.remove(*svc);
            if let Some(f) = &foreign {
                if ids.iter().all(|id| f.granted.contains(id)) {
                    d.granted.insert(*svc);
                }
            }
        }
        d.decided |= foreign.is_some();
        d
    }

    /// What happens when a rewritten body ends: discovery and metrics, or the fail-closed count.
    fn on_rewritten(&self) -> body::OnDone {
        let (discovery, metrics, policy, site) = (
            self.discovery.clone(),
            self.metrics.clone(),
            self.policy.clone(),
            self.site.clone(),
        );
        Box::new(move |outcome| match outcome {
            Ok(stats) => {
                discovery.record(&stats.origins, &policy.catalog);
                for (i, n) in &stats.by_service {
                    if let Some(svc) = policy.catalog.get(*i) {
                        metrics.neutralized.add(&[&site, &svc.id], u64::from(*n));
                    }
                }
                if stats.unclassified_scripts > 0 {
                    metrics.limits_hit.add(
                        &["inline_script_cap"],
                        u64::from(stats.unclassified_scripts),
                    );
                }
            }
            Err(reason) => {
                metrics.fail_closed.inc(&[&site, reason]);
                if matches!(reason, "decompression_ratio" | "rewriter_memory") {
                    metrics.limits_hit.inc(&[reason]);
                }
            }
        })
    }

    /// Where this site counts origin bodies that fail or stall.
    fn origin_errors(&self) -> body::OriginErrors {
        body::OriginErrors(self.metrics.upstream_errors.clone(), self.site.clone())
    }

    /// The origin's body, untouched, with its idle timeout and error counting.
    fn pass(&self, body: Incoming) -> ProxyBody {
        ProxyBody::pass(body, self.config.upstream.read_timeout).counting(self.origin_errors())
    }

    /// A failed upstream request: counted by kind, answered with a 502 page.
    fn upstream_failed(&self, upstream: &url::Url, e: &SendError) -> Response<ProxyBody> {
        self.metrics.upstream_errors.inc(&[&self.site, e.kind]);
        bad_gateway(upstream, &e.msg)
    }

    /// Adds our CSP for this visitor as an additional header (an origin's own is kept: browsers
    /// enforce both), with the reporting endpoint.
    fn add_csp(&self, h: &mut http::HeaderMap, d: &Decision, state: &str) {
        let csp = &self.config.csp;
        let Some(name) = csp.header_name() else {
            return;
        };
        // Sources are validated at config load; an invalid header is left out.
        let v = self.csp_cache.get_or(state, || {
            HeaderValue::from_str(&csp.policy(&self.policy.catalog, &self.csp_sources, d)).ok()
        });
        if let Some(v) = v {
            h.append(name, v);
        }
        if let Some(v) = &self.reporting_endpoints {
            h.append("reporting-endpoints", v.clone());
        }
    }

    /// Whether a cookie belongs to a service this visitor has not consented to. Cookies of no
    /// service, and of necessary ones, are never touched.
    fn refused_cookie(&self, name: &str, blocked: &ServiceSet) -> bool {
        self.policy
            .cookies
            .service_of(name)
            .is_some_and(|i| blocked.contains(i))
    }

    /// The visitor behind a request: decision, language, privacy signal.
    pub fn visitor(&self, req: &Request<Incoming>) -> Visitor {
        let h = req.headers();
        let accept_language = h.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
        Visitor {
            decision: self.decide(req),
            lang: self.languages.pick(accept_language).to_string(),
            gpc: h
                .get("sec-gpc")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() == "1"),
        }
    }

    /// A short token naming the page this visitor gets: catalog and texts, blocked set, and what
    /// the banner shows (decision, language, GPC note).
    fn state_tag(&self, blocked: &ServiceSet, v: &Visitor) -> String {
        let mut h = Sha256::new();
        h.update(self.policy_hash);
        // Each set is length-prefixed: "all blocked" and "all granted" must not hash alike.
        for set in [blocked, &v.decision.granted] {
            h.update((set.words().count() as u64).to_le_bytes());
            for w in set.words() {
                h.update(w.to_le_bytes());
            }
        }
        h.update([u8::from(v.decision.decided), u8::from(v.gpc)]);
        h.update(v.lang.as_bytes());
        crate::hex(&h.finalize()[..6])
    }

    /// Serves one request. Every request gets an id (kept from a trusted front proxy, else new)
    /// that the origin receives as `X-Request-Id`, the client gets back, and the logs carry.
    pub async fn handle(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ProxyBody> {
        use tracing::Instrument;
        let incoming = req
            .headers()
            .get(&X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                self.config.server.trust_forwarded_headers
                    && !v.is_empty()
                    && v.len() <= 128
                    && v.bytes().all(|b| b.is_ascii_graphic())
            })
            .map(str::to_string);
        let id = incoming.unwrap_or_else(|| crate::hex(&rand::random::<[u8; 12]>()));
        let value =
            HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
        req.headers_mut().insert(X_REQUEST_ID, value.clone());
        let span = tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path());
        let started = std::time::Instant::now();
        let method = crate::metrics::method_label(req.method().as_str());
        let mut resp = self.handle_inner(req, peer).instrument(span).await;
        resp.headers_mut().insert(X_REQUEST_ID, value);
        let kind = resp
            .extensions()
            .get::<ResponseKind>()
            .map(|k| k.0)
            .unwrap_or("passthrough");
        let m = &self.metrics;
        m.requests.inc(&[
            &self.site,
            method,
            crate::metrics::status_class(resp.status().as_u16()),
        ]);
        m.request_duration
            .observe_duration(&[&self.site, kind], started.elapsed());
        resp
    }

    async fn handle_inner(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<ProxyBody> {
        let host = request_host(&req).to_string();
        let secure = req.extensions().get::<ArrivedOverTls>().is_some()
            || req
                .headers()
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
        let visitor = self.visitor(&req);

        let prefix = self.config.consent.endpoint_prefix.as_str();
        let path = req.uri().path();
        if let Some(sub) = path.strip_prefix(prefix) {
            if sub.is_empty() || sub.starts_with('/') {
                let sub = sub.to_string();
                let mut r = self
                    .endpoint(req, &sub, secure, &host, &visitor, peer)
                    .await;
                r.extensions_mut().insert(ResponseKind("endpoint"));
                return r;
            }
        }

        let blocked = self.policy.blocked(&visitor.decision);
        if let Some(svc) = self.policy.beacons.service_of(path) {
            if blocked.contains(svc) {
                tracing::debug!(path, service = %self.policy.ids(&ServiceSet::one(svc)), "beacon without consent: answered 204, not forwarded");
                let mut r = Response::new(ProxyBody::empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                r.extensions_mut().insert(ResponseKind("beacon"));
                return r;
            }
        }
        // Only pages and revalidations need the tag (a SHA-256): most requests are neither.
        let state = OnceLock::new();
        let document = headers::is_document_request(req.headers());
        let method = req.method().clone();
        let upgrade = headers::upgrade_of(req.headers());
        let mut req = req;
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let ctx = UpstreamContext {
            peer,
            host: &host,
            state: &state,
            visitor: &visitor,
            blocked: &blocked,
            upgrade: upgrade.as_ref(),
        };
        let (resp, used, page_revalidation) = match self.send_balanced(&parts, body, &ctx).await {
            Ok(x) => x,
            Err(resp) => return resp,
        };
        if let Some(client) = client_upgrade {
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                return tunnel(client, resp, peer);
            }
        }
        // A slice of an HTML page cannot be rewritten with correct offsets: fetch it whole.
        let resp = if resp.status() == StatusCode::PARTIAL_CONTENT
            && headers::is_html(resp.headers().get(header::CONTENT_TYPE))
        {
            let whole = if matches!(method, Method::GET | Method::HEAD) {
                match self.upstream_request(&parts, empty_body(), used, &ctx) {
                    Ok((full, _)) => Some(full),
                    Err(resp) => return resp,
                }
            } else {
                None
            };
            match whole {
                Some(mut full) => {
                    full.headers_mut().remove(header::RANGE);
                    full.headers_mut().remove(header::IF_RANGE);
                    match self.send(full).await {
                        Ok(r) => r,
                        Err(e) => return self.upstream_failed(self.upstreams.url(used), &e),
                    }
                }
                None => {
                    let page = Page::new(secure, host, parts.uri);
                    tracing::error!(%page, "partial HTML response to a non-GET: refused");
                    return simple(StatusCode::BAD_GATEWAY, "bad gateway");
                }
            }
        } else {
            resp
        };
        let ex = Exchange {
            method,
            blocked,
            state: state.into_inner(),
            page: Page::new(secure, host, parts.uri),
            page_revalidation,
            inject: document && self.config.consent.banner,
            visitor,
        };
        self.respond(resp, ex)
    }

    async fn send(&self, req: Request<UpstreamBody>) -> Result<Response<Incoming>, SendError> {
        let client = if req.headers().contains_key(header::UPGRADE) {
            &self.upgrade_client
        } else {
            &self.client
        };
        match tokio::time::timeout(self.config.upstream.read_timeout, client.request(req)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(": ");
                    msg.push_str(&s.to_string());
                    src = s.source();
                }
                let kind = if e.is_connect() {
                    "connect"
                } else {
                    "protocol"
                };
                Err(SendError { msg, kind })
            }
            Err(_) => Err(SendError {
                msg: "timed out waiting for the response head".into(),
                kind: "timeout",
            }),
        }
    }

    /// Sends a request to one of the origin's addresses. A request without a body whose
    /// connection fails is tried on the next address (nothing reached the origin); the failed
    /// address is left out for a while. Returns the address used, for a follow-up request,
    /// and whether `If-None-Match` carried our tags.
    async fn send_balanced(
        &self,
        parts: &http::request::Parts,
        body: Incoming,
        ctx: &UpstreamContext<'_>,
    ) -> Result<(Response<Incoming>, usize, bool), Response<ProxyBody>> {
        use http_body::Body as _;
        let retryable = body.is_end_stream() && ctx.upgrade.is_none();
        let mut body = Some(body.boxed());
        let mut tried: Vec<usize> = Vec::new();
        loop {
            let i = self.upstreams.pick(&tried);
            tried.push(i);
            let this_body = body.take().unwrap_or_else(empty_body);
            let (mut up, revalidation) = self.upstream_request(parts, this_body, i, ctx)?;
            if let Some(proto) = ctx.upgrade {
                // Hop-by-hop removal took them out; an upgrade is the one case they must travel.
                up.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                up.headers_mut().insert(header::UPGRADE, proto.clone());
            }
            match self.send(up).await {
                Ok(r) => {
                    self.upstreams.succeeded(i);
                    return Ok((r, i, revalidation));
                }
                Err(e) => {
                    if e.kind == "connect" && self.upstreams.failed(i) {
                        let url = self.upstreams.url(i).as_str();
                        self.metrics.upstream_ejections.inc(&[&self.site, url]);
                    }
                    let again =
                        e.kind == "connect" && retryable && tried.len() < self.upstreams.count();
                    if !again {
                        return Err(self.upstream_failed(self.upstreams.url(i), &e));
                    }
                    self.metrics.upstream_errors.inc(&[&self.site, e.kind]);
                    tracing::warn!(upstream = %self.upstreams.url(i), error = %e.msg, "upstream address failed, trying the next");
                }
            }
        }
    }

    /// Builds the origin request for one address. Also returns whether `If-None-Match`
    /// carried our consent-specific tags.
    #[allow(clippy::result_large_err)]
    fn upstream_request(
        &self,
        parts: &http::request::Parts,
        body: UpstreamBody,
        upstream: usize,
        ctx: &UpstreamContext<'_>,
    ) -> Result<(Request<UpstreamBody>, bool), Response<ProxyBody>> {
        let UpstreamContext {
            peer,
            host,
            blocked,
            ..
        } = *ctx;
        let up = &self.config.upstream;
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let prefix = self.upstreams.prefix(upstream);
        let mut uri_text = String::with_capacity(prefix.len() + pq.len());
        uri_text.push_str(prefix);
        uri_text.push_str(pq);
        let Ok(uri) = Uri::try_from(uri_text) else {
            return Err(simple(StatusCode::BAD_REQUEST, "bad request target"));
        };
        let mut headers = parts.headers.clone();
        let h = &mut headers;
        headers::remove_hop_by_hop(h);
        let host_value = match &up.host_header {
            HostHeader::Client => host.to_string(),
            HostHeader::Upstream => self.upstreams.authority(upstream).to_string(),
            HostHeader::Fixed(v) => v.clone(),
        };
        if let Ok(v) = HeaderValue::from_str(&host_value) {
            h.insert(header::HOST, v);
        }
        let over_tls = parts.extensions.get::<ArrivedOverTls>().is_some();
        let proto = if over_tls
            || (h
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("https"))
                && self.config.server.trust_forwarded_headers)
        {
            "https"
        } else {
            "http"
        };
        headers::set_forwarding(
            h,
            peer,
            host,
            proto,
            self.config.server.trust_forwarded_headers,
        );
        headers::filter_accept_encoding(h);
        headers::filter_request_cookies(h, |name| self.refused_cookie(name, blocked));
        if headers::is_document_request(h) {
            headers::drop_foreign_validators(h);
        }
        let page_revalidation = headers::translate_if_none_match(h, || {
            ctx.state
                .get_or_init(|| self.state_tag(blocked, ctx.visitor))
                .as_str()
        });
        // If-Modified-Since cannot tell consent states apart; our pages carry no Last-Modified,
        // so a browser sends it only for resources, and then with no consent tag.
        if page_revalidation {
            h.remove(header::IF_MODIFIED_SINCE);
        }
        let mut req = Request::new(body);
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        Ok((req, page_revalidation))
    }

    /// The banner, settings control and facades for this visitor, rendered at `</body>` once the
    /// rewrite knows which widgets the page had.
    ///
    /// The HTML depends only on the consent state (which `state` names), whether the visitor
    /// has a receipt, and the facades: it is rendered once per such key and then reused, and so
    /// is its deflate form for gzip responses (`codec::Fragment`).
    fn injection(&self, v: &Visitor, blocked: &ServiceSet, state: &str) -> Injection {
        let (policy, languages, opts, cache) = (
            self.policy.clone(),
            self.languages.clone(),
            self.banner.clone(),
            self.banner_cache.clone(),
        );
        let (v, blocked, state) = (v.clone(), blocked.clone(), state.to_string());
        Box::new(move |stats: &RewriteStats| {
            let facades: Vec<usize> = stats
                .seen
                .iter()
                .filter(|i| blocked.contains(*i))
                .filter(|i| policy.catalog.get(*i).is_some_and(|s| s.facade.is_some()))
                .collect();
            let key = (state, v.decision.receipt.is_some(), facades);
            cache.get_or(&key, || {
                let view = banner::View {
                    catalog: &policy.catalog,
                    decision: &v.decision,
                    texts: &languages,
                    lang: &v.lang,
                    opts: &opts,
                    gpc: v.gpc,
                };
                let r = banner::render(&view, &key.2);
                Arc::new(Fragment::new(r.html))
            })
        })
    }

    fn respond(&self, resp: Response<Incoming>, ex: Exchange) -> Response<ProxyBody> {
        let Exchange {
            method,
            blocked,
            state,
            page,
            page_revalidation,
            inject,
            visitor,
        } = ex;
        let (mut parts, body) = resp.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers);
        let dropped =
            headers::filter_set_cookies(&mut parts.headers, |n| self.refused_cookie(n, &blocked));
        if !dropped.is_empty() {
            tracing::debug!(%page, cookies = ?dropped, "Set-Cookie of services without consent dropped");
        }
        let idle = self.config.upstream.read_timeout;
        let status = parts.status;
        if status == StatusCode::NOT_MODIFIED {
            if page_revalidation {
                let state = state.unwrap_or_else(|| self.state_tag(&blocked, &visitor));
                headers::make_consent_dependent(&mut parts.headers, &state);
            }
            return Response::from_parts(parts, ProxyBody::empty());
        }
        let html = headers::is_html(parts.headers.get(header::CONTENT_TYPE));
        let has_body = method != Method::HEAD
            && status != StatusCode::NO_CONTENT
            && !status.is_informational();
        if !html {
            return Response::from_parts(parts, self.pass(body));
        }
        let state = state.unwrap_or_else(|| self.state_tag(&blocked, &visitor));
        let state = state.as_str();
        headers::make_consent_dependent(&mut parts.headers, state);
        parts.headers.remove(header::ACCEPT_RANGES);
        self.add_csp(&mut parts.headers, &visitor.decision, state);
        if let Some(rp) = &self.config.consent.referrer_policy {
            if !parts.headers.contains_key(header::REFERRER_POLICY) {
                if let Ok(v) = HeaderValue::from_str(rp) {
                    parts.headers.insert(header::REFERRER_POLICY, v);
                }
            }
        }
        if !has_body {
            // HEAD: the length would be that of the origin's body, not ours.
            if !blocked.is_empty() || inject {
                parts.headers.remove(header::CONTENT_LENGTH);
            }
            return Response::from_parts(parts, ProxyBody::empty());
        }
        if blocked.is_empty() && !inject {
            // Full consent and nothing to add: the origin's page, byte for byte.
            return Response::from_parts(parts, self.pass(body));
        }
        let ce = parts
            .headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("\u{0}"));
        let Some(coding) = Coding::from_header(ce) else {
            tracing::error!(%page, encoding = ?ce, "HTML in a content coding we cannot rewrite: refused (fail closed)");
            self.metrics
                .fail_closed
                .inc(&[&self.site, "unsupported_encoding"]);
            return simple(
                StatusCode::BAD_GATEWAY,
                "bad gateway: unsupported content encoding",
            );
        };
        let ct = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let injection = inject.then(|| self.injection(&visitor, &blocked, state));
        let blocked_any = !blocked.is_empty();
        let label = page.to_string();
        let rewriter = match BodyRewriter::new(
            self.policy.clone(),
            blocked,
            move || page.url(),
            coding,
            ct,
            injection,
        ) {
            Ok(r) => r.with_decompression_ratio(self.config.limits.decompression_ratio),
            Err(e) => {
                tracing::error!(page = %label, error = %e, "cannot start rewriting");
                return simple(StatusCode::BAD_GATEWAY, "bad gateway");
            }
        };
        parts.headers.remove(header::CONTENT_LENGTH);
        let mode = if blocked_any {
            "blocking"
        } else {
            "inject_only"
        };
        self.metrics.pages_rewritten.inc(&[&self.site, mode]);
        parts.extensions.insert(ResponseKind("html"));
        Response::from_parts(
            parts,
            ProxyBody::rewrite(body, rewriter, idle, label, self.on_rewritten())
                .counting(self.origin_errors()),
        )
    }
}

/// Where each request finds the sites that serve it: fixed ones, or the current ones of a
/// reloadable server (requests already running keep the ones they started with).
pub type Current = Arc<dyn Fn() -> Arc<Sites> + Send + Sync>;

/// The next connection, or `None` once `shutdown` resolves. Accept errors (EMFILE and friends)
/// are logged and retried after a short back-off instead of spinning.
pub(crate) async fn accept_until(
    listener: &TcpListener,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
    what: &str,
) -> Option<(tokio::net::TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            _ = &mut *shutdown => return None,
            r = listener.accept() => match r {
                Ok(x) => return Some(x),
                Err(e) => {
                    tracing::warn!(listener = what, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Marks requests that arrived over our own TLS listener.
#[derive(Debug, Clone, Copy)]
pub struct ArrivedOverTls;

/// The accept loop for plain HTTP (HTTP/1.1, and HTTP/2 with prior knowledge).
pub async fn serve_current(
    current: Current,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_loop(current, listener, None, shutdown).await
}

/// The accept loop for TLS (ALPN h2 and http/1.1, certificate by SNI).
pub async fn serve_tls(
    current: Current,
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_loop(current, listener, Some(acceptor), shutdown).await
}

type ConnBuilder = hyper_util::server::conn::auto::Builder<TokioExecutor>;

/// How connections are served under `limits` (head size, field count, read timeout).
fn conn_builder(limits: &crate::config::Limits) -> Arc<ConnBuilder> {
    let mut builder = ConnBuilder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes.min(u32::MAX as usize) as u32);
    Arc::new(builder)
}

/// The `[limits]` an accept loop serves connections under, kept up with reloads.
struct ServedLimits {
    limits: crate::config::Limits,
    builder: Arc<ConnBuilder>,
    /// Connection slots to take out of circulation after a reload lowered `max_connections`:
    /// free ones go at once, the ones open connections hold as they come back.
    excess: usize,
}

impl ServedLimits {
    fn new(limits: &crate::config::Limits) -> Self {
        ServedLimits {
            limits: limits.clone(),
            builder: conn_builder(limits),
            excess: 0,
        }
    }

    /// Takes on `now` if a reload changed them: the connection slots in `permits` follow
    /// `max_connections`, and new connections get the new head limits and timeout.
    fn follow(&mut self, now: &crate::config::Limits, permits: &tokio::sync::Semaphore) {
        if *now == self.limits {
            return;
        }
        let (was, is) = (self.limits.max_connections, now.max_connections);
        if is >= was {
            let repaid = (is - was).min(self.excess);
            self.excess -= repaid;
            permits.add_permits(is - was - repaid);
        } else {
            self.excess += was - is;
        }
        self.builder = conn_builder(now);
        self.limits = now.clone();
        tracing::info!("new connections are served under the reloaded [limits]");
    }
}

/// Connection limit, TLS handshake, header limits, upgrades, graceful drain. `[limits]` are
/// read again before waiting for a connection (for the slots) and once it is accepted (for
/// how it is served): after a reload new connections get the new ones, while open
/// connections keep theirs.
async fn serve_loop(
    current: Current,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut served = ServedLimits::new(&current().primary().config.limits);
    let permits = Arc::new(tokio::sync::Semaphore::new(served.limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        served.follow(&current().primary().config.limits, &permits);
        if served.excess > 0 {
            served.excess -= permits.forget_permits(served.excess);
        }
        // A connection slot first: beyond the limit, clients wait in the accept queue.
        if permits.available_permits() == 0 {
            tracing::warn!(
                max = served.limits.max_connections,
                "connection limit reached"
            );
            current()
                .primary()
                .metrics
                .limits_hit
                .inc(&["max_connections"]);
        }
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        if served.excess > 0 {
            // A slot given back by a connection that closed, owed to a lowered limit.
            permit.forget();
            served.excess -= 1;
            continue;
        }
        let Some((stream, peer)) = accept_until(&listener, &mut shutdown, "proxy").await else {
            break;
        };
        // A reload while this loop waited applies to this connection too.
        let sites = current();
        served.follow(&sites.primary().config.limits, &permits);
        let _ = stream.set_nodelay(true);
        let resolve = current.clone();
        let over_tls = tls.is_some();
        let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            if over_tls {
                req.extensions_mut().insert(ArrivedOverTls);
            }
            let sites = resolve();
            async move { Ok::<_, Infallible>(sites.handle(req, peer).await) }
        });
        let watcher = graceful.watcher();
        let metrics = sites.primary().metrics.clone();
        drop(sites);
        let (builder, tls, handshake) = (
            served.builder.clone(),
            tls.clone(),
            served.limits.header_read_timeout,
        );
        metrics.connections.inc();
        tokio::spawn(async move {
            let _permit = permit;
            let result = match tls {
                None => {
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .into_owned();
                    watcher.watch(conn).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let conn = builder
                                .serve_connection_with_upgrades(TokioIo::new(tls_stream), svc)
                                .into_owned();
                            watcher.watch(conn).await
                        }
                        Ok(Err(e)) => Err(format!("TLS handshake: {e}").into()),
                        Err(_) => Err("TLS handshake timed out".into()),
                    }
                }
            };
            if let Err(e) = result {
                // Limits enforced inside hyper surface only here.
                let limit = e.downcast_ref::<hyper::Error>().and_then(|h| {
                    if h.is_timeout() {
                        Some("header_read_timeout")
                    } else if h.is_parse_too_large() {
                        Some("max_header_bytes")
                    } else {
                        None
                    }
                });
                match limit {
                    Some(l) => {
                        metrics.limits_hit.inc(&[l]);
                        tracing::info!(%peer, limit = l, "connection cut at a limit");
                    }
                    None => tracing::debug!(%peer, error = %e, "connection ended with an error"),
                }
            }
            metrics.connections.dec();
        });
    }
    drop(listener);
    let open = graceful.count();
    tracing::info!(open, "no longer accepting; draining connections");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(served.limits.shutdown_timeout) => {
            tracing::warn!(timeout = ?served.limits.shutdown_timeout, "shutdown timeout: remaining connections cut");
        }
    }
    Ok(())
}

/// A plain-HTTP listener that sends every request to the same URL over HTTPS (308, so methods
/// and bodies are kept). `https_port` is omitted from the URL when it is 443.
pub async fn serve_redirect(
    listener: TcpListener,
    https_port: u16,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let Some((stream, _)) = accept_until(&listener, &mut shutdown, "redirect").await else {
            return Ok(());
        };
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| async move {
                let host = req
                    .headers()
                    .get(header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|h| url::Url::parse(&format!("http://{h}")).ok())
                    .and_then(|u| u.host_str().map(str::to_string));
                let r = match host {
                    Some(h) => {
                        let port = if https_port == 443 {
                            String::new()
                        } else {
                            format!(":{https_port}")
                        };
                        let pq = req
                            .uri()
                            .path_and_query()
                            .map(|p| p.as_str())
                            .unwrap_or("/");
                        let mut r = Response::new(ProxyBody::empty());
                        *r.status_mut() = StatusCode::PERMANENT_REDIRECT;
                        if let Ok(v) = HeaderValue::from_str(&format!("https://{h}{port}{pq}")) {
                            r.headers_mut().insert(header::LOCATION, v);
                        }
                        r
                    }
                    None => simple(StatusCode::BAD_REQUEST, "400 Bad Request: no Host"),
                };
                Ok::<_, Infallible>(r)
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Opens the configured receipt store (each caller gets its own connection).
pub fn receipt_opener(store: &crate::config::ReceiptStore) -> Option<crate::receipts::Opener> {
    use crate::config::ReceiptStore;
    use crate::receipts::{Opener, SqliteStore, Store};
    match store {
        ReceiptStore::Off => None,
        ReceiptStore::Sqlite(path) => {
            let path = path.clone();
            let o: Opener =
                Arc::new(move || Ok(Box::new(SqliteStore::open(&path)?) as Box<dyn Store>));
            Some(o)
        }
        ReceiptStore::Postgres(url) => {
            let url = url.clone();
            let o: Opener = Arc::new(move || {
                Ok(Box::new(crate::receipts::PgStore::connect(&url)?) as Box<dyn Store>)
            });
            Some(o)
        }
    }
}

/// The HTTP(S) client for an upstream: pooled keep-alive, connect timeout, rustls with the public
/// roots plus the configured CA. `Host` is set by the caller.
pub fn http_client(up: &crate::config::UpstreamConfig) -> Result<HttpsClient, String> {
    http_client_speaking(up, up.protocol)
}

/// As `http_client`, speaking `protocol` whatever the configuration says.
fn http_client_speaking(
    up: &crate::config::UpstreamConfig,
    protocol: crate::config::UpstreamProtocol,
) -> Result<HttpsClient, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(up.connect_timeout));
    http.set_nodelay(true);
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in &up.ca_certs {
        roots
            .add(cert.clone())
            .map_err(|e| format!("upstream.ca_file: unusable certificate: {e}"))?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    use crate::config::UpstreamProtocol;
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    // ALPN offers what the protocol setting allows; cleartext h2 needs prior knowledge.
    let https = match protocol {
        UpstreamProtocol::Http1 => builder.enable_http1().wrap_connector(http),
        UpstreamProtocol::Http2 => builder.enable_http2().wrap_connector(http),
        UpstreamProtocol::Auto => builder.enable_http1().enable_http2().wrap_connector(http),
    };
    let mut client = Client::builder(TokioExecutor::new());
    client
        .set_host(false)
        .pool_idle_timeout(up.pool_idle_timeout)
        .pool_max_idle_per_host(up.pool_max_idle_per_host)
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .timer(hyper_util::rt::TokioTimer::new());
    if protocol == UpstreamProtocol::Http2 {
        client.http2_only(true);
    }
    Ok(client.build(https))
}

pub fn empty_body() -> UpstreamBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// The host a request is for: `Host`, else the URI's authority (HTTP/2), else empty.
fn request_host<B>(req: &Request<B>) -> &str {
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
}

/// The page a request is for, as the browser sees it. Parsed into a URL only for a page that is
/// rewritten (to resolve its relative URLs); for everything else it is just logged.
struct Page {
    secure: bool,
    host: String,
    uri: Uri,
}

impl Page {
    fn new(secure: bool, host: String, uri: Uri) -> Self {
        Page { secure, host, uri }
    }

    fn scheme(&self) -> &'static str {
        if self.secure {
            "https"
        } else {
            "http"
        }
    }

    fn path_and_query(&self) -> &str {
        self.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    }

    fn url(&self) -> url::Url {
        let (scheme, pq) = (self.scheme(), self.path_and_query());
        url::Url::parse(&self.to_string())
            .or_else(|_| url::Url::parse(&format!("{scheme}://invalid-host.invalid{pq}")))
            .or_else(|_| url::Url::parse("http://invalid-host.invalid/"))
            .unwrap_or_else(|_| unreachable!("a constant URL parses"))
    }
}

impl std::fmt::Display for Page {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme(),
            self.host,
            self.path_and_query()
        )
    }
}

/// Answers the client's upgrade with the origin's `101` and splices the two connections: the
/// bytes that follow (WebSocket frames or any other protocol) pass untouched both ways.
fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    mut resp: Response<Incoming>,
    peer: SocketAddr,
) -> Response<ProxyBody> {
    let origin = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        match tokio::try_join!(client, origin) {
            Ok((c, o)) => {
                let (mut c, mut o) = (TokioIo::new(c), TokioIo::new(o));
                match tokio::io::copy_bidirectional(&mut c, &mut o).await {
                    Ok((up, down)) => {
                        tracing::debug!(%peer, up, down, "upgraded connection closed")
                    }
                    Err(e) => tracing::debug!(%peer, error = %e, "upgraded connection ended"),
                }
            }
            Err(e) => tracing::warn!(%peer, error = %e, "upgrade failed"),
        }
    });
    let (parts, _) = resp.into_parts();
    Response::from_parts(parts, ProxyBody::empty())
}

fn simple(status: StatusCode, msg: &str) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(format!(
        "<!doctype html><title>{msg}</title><h1>{msg}</h1>\n"
    )));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn bad_gateway(upstream: &url::Url, e: &str) -> Response<ProxyBody> {
    tracing::error!(upstream = %upstream, error = e, "upstream request failed");
    simple(
        StatusCode::BAD_GATEWAY,
        "502 Bad Gateway: the site's server did not answer",
    )
}

/// Why a request to the origin failed: the message for the log, and the kind for metrics and
/// passive health (`connect`, `timeout`, `protocol`).
struct SendError {
    msg: String,
    kind: &'static str,
}

/// The facts about a request that its upstream copies need, whichever address they go to.
struct UpstreamContext<'a> {
    peer: SocketAddr,
    host: &'a str,
    /// The consent-state tag, made when first needed.
    state: &'a OnceLock<String>,
    visitor: &'a Visitor,
    blocked: &'a ServiceSet,
    upgrade: Option<&'a HeaderValue>,
}
