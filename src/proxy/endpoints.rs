//! The proxy's own endpoints under the consent prefix (default `/__consent`):
//! `POST <prefix>` records a decision in the signed cookie; `GET <prefix>/state` reports it.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::body::ProxyBody;
use super::{assets, Proxy, Visitor};
use crate::catalog::Purpose;
use crate::decision::Decision;
use crate::matcher::ServiceSet;

/// What a receipt keeps about the request (nothing more).
struct RequestMeta {
    user_agent: String,
    lang: String,
    gpc: bool,
    peer: std::net::SocketAddr,
}

/// The `action` field of a consent form.
fn action_of(body: &Bytes) -> String {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "action")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The site a receipt belongs to: the host name, lower case, without port.
pub(super) fn site_name(host: &str) -> String {
    url::Url::parse(&format!("http://{host}"))
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_else(|| host.to_ascii_lowercase())
}

fn unavailable() -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(
        "<!doctype html><meta charset=\"utf-8\"><title>Please try again</title><h1>Your choice could not be saved</h1><p>We could not record your privacy choice just now, so nothing was changed: no service was enabled. Please go back and try again in a moment.</p>\n",
    ));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

fn json(v: &serde_json::Value) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(v.to_string()));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Our own HTML (the banner fragment, the settings page): per visitor, so never stored by a
/// shared cache.
fn html(body: String) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The `return` field of a consent form (the settings page's way back), if it is a path on
/// this site: anything else (`//evil.test`, `https://…`, `/\evil.test`) is ignored.
fn return_field(body: &Bytes) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "return")
        .map(|(_, v)| v.into_owned())
        .filter(|p| local_path(p))
}

fn local_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && !p.starts_with("/\\")
        && !p.chars().any(|c| c.is_control())
}

fn plain(status: StatusCode, msg: &str) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(format!("{msg}\n")));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `host[:port]` of an origin-like URL, with the scheme's default port made explicit, for
/// comparing against the request's `Host`.
fn authority_of(u: &url::Url) -> Option<(String, u16)> {
    Some((
        u.host_str()?.to_ascii_lowercase(),
        u.port_or_known_default()?,
    ))
}

fn host_authority(host: &str, default_port: u16) -> Option<(String, u16)> {
    let u = url::Url::parse(&format!("http://{host}")).ok()?;
    Some((
        u.host_str()?.to_ascii_lowercase(),
        u.port().unwrap_or(default_port),
    ))
}

/// Same-origin check for state-changing requests (CSRF): `Origin` if present, else
/// `Sec-Fetch-Site`, else `Referer`. A request with none of them is not from a browser form
/// and is accepted.
pub fn same_origin(headers: &HeaderMap, host: &str) -> Result<(), &'static str> {
    let same = |u: &url::Url| {
        let Some(a) = authority_of(u) else {
            return false;
        };
        host_authority(host, a.1).is_some_and(|h| h == a)
    };
    let get = |n: header::HeaderName| headers.get(n).and_then(|v| v.to_str().ok());
    if let Some(origin) = get(header::ORIGIN) {
        return match url::Url::parse(origin) {
            Ok(u) if same(&u) => Ok(()),
            _ => Err("cross-origin request (Origin)"),
        };
    }
    const SEC_FETCH_SITE: header::HeaderName = header::HeaderName::from_static("sec-fetch-site");
    if let Some(site) = headers.get(SEC_FETCH_SITE).and_then(|v| v.to_str().ok()) {
        return match site.trim() {
            "same-origin" | "none" => Ok(()),
            _ => Err("cross-site request (Sec-Fetch-Site)"),
        };
    }
    if let Some(referer) = get(header::REFERER) {
        return match url::Url::parse(referer) {
            Ok(u) if same(&u) => Ok(()),
            _ => Err("cross-origin request (Referer)"),
        };
    }
    Ok(())
}

/// Where to send the visitor after a decision: back to the page they were on, if it was ours.
fn back_to(headers: &HeaderMap, host: &str) -> String {
    let r = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| url::Url::parse(r).ok());
    if let Some(u) = r {
        let ours = authority_of(&u)
            .zip(host_authority(
                host,
                u.port_or_known_default().unwrap_or(80),
            ))
            .is_some_and(|(a, b)| a == b);
        if ours {
            let mut p = u.path().to_string();
            if let Some(q) = u.query() {
                p.push('?');
                p.push_str(q);
            }
            if local_path(&p) {
                return p;
            }
        }
    }
    "/".to_string()
}

impl Proxy {
    /// What our banner is rendered for, for this visitor.
    fn view<'a>(&'a self, visitor: &'a Visitor) -> crate::banner::View<'a> {
        crate::banner::View {
            catalog: &self.policy.catalog,
            decision: &visitor.decision,
            texts: &self.languages,
            lang: &visitor.lang,
            opts: &self.banner,
            gpc: visitor.gpc,
        }
    }

    /// Reads the body of a request to our own endpoints, within `limits.endpoint_body_bytes`
    /// (413, "`what` too large") and `limits.endpoint_body_timeout` (408: a client trickling a
    /// body would hold a connection slot).
    async fn read_body(
        &self,
        body: hyper::body::Incoming,
        what: &str,
    ) -> Result<bytes::Bytes, Response<ProxyBody>> {
        let limits = &self.config.limits;
        let read = Limited::new(body, limits.endpoint_body_bytes).collect();
        match tokio::time::timeout(limits.endpoint_body_timeout, read).await {
            Ok(Ok(b)) => Ok(b.to_bytes()),
            Ok(Err(_)) => {
                self.metrics.limits_hit.inc(&["endpoint_body_bytes"]);
                Err(plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("{what} too large"),
                ))
            }
            Err(_) => {
                self.metrics.limits_hit.inc(&["endpoint_body_timeout"]);
                Err(plain(StatusCode::REQUEST_TIMEOUT, "request body too slow"))
            }
        }
    }

    pub(super) async fn endpoint(
        &self,
        req: Request<Incoming>,
        sub: &str,
        secure: bool,
        host: &str,
        visitor: &Visitor,
        peer: std::net::SocketAddr,
    ) -> Response<ProxyBody> {
        if sub == "/csp-report" {
            return self.csp_report(req, peer).await;
        }
        if let Some(name) = sub.strip_prefix("/assets/") {
            if matches!(*req.method(), Method::GET | Method::HEAD) {
                if let Some(r) = assets::serve(req.method(), name) {
                    return r;
                }
            }
            return plain(StatusCode::NOT_FOUND, "not found");
        }
        match (req.method(), sub) {
            (&Method::POST, "") => {
                self.record(
                    req,
                    secure,
                    host,
                    &visitor.decision,
                    &visitor.lang,
                    visitor.gpc,
                    peer,
                )
                .await
            }
            (&Method::GET, "/receipt") => self.own_receipts(&visitor.decision).await,
            (&Method::GET, "/policy") => self.policy_page(&visitor.lang),
            (&Method::GET, "/banner") => html(crate::banner::fragment(&self.view(visitor))),
            (&Method::GET, "/settings") => {
                // Back to the page the control was on; not to ourselves.
                let back = back_to(req.headers(), host);
                let back = if back.starts_with(&format!("{}/", self.banner.prefix)) {
                    "/".to_string()
                } else {
                    back
                };
                html(crate::banner::settings_page(&self.view(visitor), &back))
            }
            (&Method::GET | &Method::HEAD, "/state") => {
                json(&self.state_value(&visitor.decision, None))
            }
            (_, "") | (_, "/state") => {
                let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
                let allow = if sub.is_empty() { "POST" } else { "GET, HEAD" };
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                r
            }
            _ => plain(StatusCode::NOT_FOUND, "not found"),
        }
    }

    /// Browsers post violation reports here (no Origin check: reports carry no cookies and
    /// change no state beyond bounded counters).
    async fn csp_report(
        &self,
        req: Request<Incoming>,
        peer: std::net::SocketAddr,
    ) -> Response<ProxyBody> {
        if req.method() != Method::POST {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        let ctype = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if ![
            "application/csp-report",
            "application/reports+json",
            "application/json",
        ]
        .iter()
        .any(|t| ctype.starts_with(t))
        {
            return plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported report type",
            );
        }
        let body = match self.read_body(req.into_body(), "report").await {
            Ok(b) => b,
            Err(r) => return r,
        };
        match self.reports.accept(peer.ip(), &body) {
            Ok(directives) => {
                for d in directives {
                    self.metrics.csp_reports.inc(&[&self.site, &d]);
                }
                let mut r = Response::new(ProxyBody::empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
            Err(crate::reports::Refused::RateLimited) => {
                plain(StatusCode::TOO_MANY_REQUESTS, "too many reports")
            }
            Err(crate::reports::Refused::Invalid) => {
                plain(StatusCode::BAD_REQUEST, "not a CSP report")
            }
        }
    }

    /// The privacy-statement sections for the site's services, in the visitor's language.
    fn policy_page(&self, lang: &str) -> Response<ProxyBody> {
        use crate::privacy::{site_services, statement, Format};
        let c = &self.config;
        let services = site_services(&self.policy.catalog, c.consent.shown.as_deref());
        let html = statement(
            &services,
            &c.languages,
            lang,
            &c.privacy,
            c.retention_years(),
            Format::Html,
        );
        let mut r = Response::new(ProxyBody::full(html));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        r.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Accept-Language"));
        r
    }

    /// The visitor's own receipts (Art. 15 access, Art. 20 portability), found through the
    /// receipt id in their signed cookie, as a JSON download.
    async fn own_receipts(&self, d: &Decision) -> Response<ProxyBody> {
        let list = match (self.receipt_store.clone(), d.receipt.clone()) {
            (Some(open), Some(id)) => {
                let r = tokio::task::spawn_blocking(move || {
                    let mut s = open()?;
                    crate::receipts::query::history(&mut *s, &id, 100)
                })
                .await;
                match r {
                    Ok(Ok(list)) => list,
                    _ => return unavailable(),
                }
            }
            _ => Vec::new(),
        };
        let body = serde_json::json!({
            "receipts": list.iter().map(crate::receipts::query::to_json).collect::<Vec<_>>(),
        });
        let mut r = json(&body);
        r.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"consent-receipts.json\""),
        );
        r
    }

    /// `{"decided": bool, "services": {"<id>": bool}}`, plus `"revoked"` and `"added"` (services
    /// withdrawn and newly granted by this decision) after a POST.
    fn state_value(
        &self,
        d: &Decision,
        changes: Option<(&ServiceSet, &ServiceSet)>,
    ) -> serde_json::Value {
        let catalog = &self.policy.catalog;
        let services: serde_json::Map<String, serde_json::Value> = catalog
            .services()
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), serde_json::Value::Bool(d.allows(catalog, i))))
            .collect();
        let mut v = serde_json::json!({ "decided": d.decided, "services": services });
        if let Some((revoked, added)) = changes {
            let ids = |set: &ServiceSet| -> Vec<String> {
                set.iter()
                    .filter_map(|i| catalog.get(i).map(|s| s.id.clone()))
                    .collect()
            };
            v["revoked"] = serde_json::json!(ids(revoked));
            v["added"] = serde_json::json!(ids(added));
        }
        v
    }

    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        req: Request<Incoming>,
        secure: bool,
        host: &str,
        previous: &Decision,
        visitor_lang: &str,
        gpc: bool,
        peer: std::net::SocketAddr,
    ) -> Response<ProxyBody> {
        if let Err(why) = same_origin(req.headers(), host) {
            tracing::warn!(host, why, "consent POST refused");
            return plain(
                StatusCode::FORBIDDEN,
                "forbidden: cross-site consent request",
            );
        }
        let redirect = back_to(req.headers(), host);
        let meta = RequestMeta {
            user_agent: req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            lang: visitor_lang.to_string(),
            gpc,
            peer,
        };
        let wants_json = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json"));
        let request_cookies: Vec<String> = req
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|h| h.split(';'))
            .filter_map(|p| p.split_once('=').map(|(k, _)| k.trim().to_string()))
            .collect();
        let body = match self.read_body(req.into_body(), "form").await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let redirect = return_field(&body).unwrap_or(redirect);
        let decision = match self.decision_from_form(&body, previous) {
            Ok(d) => d,
            Err(msg) => return plain(StatusCode::BAD_REQUEST, msg),
        };
        let mut revoked = ServiceSet::new();
        if previous.decided {
            for i in previous.granted.iter() {
                if !decision.granted.contains(i) {
                    revoked.insert(i);
                }
            }
        }
        let mut added = ServiceSet::new();
        for i in decision.granted.iter() {
            if !previous.granted.contains(i) {
                added.insert(i);
            }
        }
        let mut decision = decision;
        if let Some(log) = &self.receipts {
            let receipt = self.receipt_for(
                &decision,
                previous,
                &revoked,
                &action_of(&body),
                host,
                &meta,
            );
            match log.record(receipt).await {
                Ok(r) => {
                    self.metrics.receipts_committed.inc();
                    self.metrics.decisions.inc(&[&self.site, r.method.as_str()]);
                    decision.receipt = Some(r.id);
                }
                Err(e) => {
                    self.metrics.receipt_errors.inc();
                    // No consent without proof: nothing is set, the visitor can retry.
                    tracing::error!(host, error = %e, "consent not recorded: receipt store refused");
                    return unavailable();
                }
            }
        }
        if self.receipts.is_none() {
            self.metrics.decisions.inc(&[&self.site, &action_of(&body)]);
        }
        let value = self.signer.encode(&self.policy.catalog, &decision);
        let consent = &self.config.consent;
        let mut cookie = format!(
            "{}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax",
            consent.cookie_name,
            consent.max_age.as_secs()
        );
        if secure {
            cookie.push_str("; Secure");
        }
        tracing::info!(
            host,
            granted = %self.policy.ids(&decision.granted),
            revoked = %self.policy.ids(&revoked),
            "consent decision recorded"
        );
        let mut r = if wants_json {
            json(&self.state_value(&decision, Some((&revoked, &added))))
        } else {
            let mut r = Response::new(ProxyBody::empty());
            *r.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(v) = HeaderValue::from_str(&redirect) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        };
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            h.append(header::SET_COOKIE, v);
        }
        for c in self.expiry_cookies(&revoked, &request_cookies, host) {
            if let Ok(v) = HeaderValue::from_str(&c) {
                h.append(header::SET_COOKIE, v);
            }
        }
        r
    }

    /// `Set-Cookie` lines that delete the cookies of revoked services: each cookie the browser
    /// sent whose name the catalog lists for the service (exactly or by `prefix*`), on the host,
    /// on its registrable parent domain (where trackers usually set them) and on the host as a
    /// domain.
    fn expiry_cookies(&self, revoked: &ServiceSet, present: &[String], host: &str) -> Vec<String> {
        let hostname = url::Url::parse(&format!("http://{host}"))
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        let is_ip = hostname.parse::<std::net::IpAddr>().is_ok() || hostname.starts_with('[');
        let mut domains: Vec<String> = Vec::new();
        if !is_ip && hostname.contains('.') {
            if let Some(d) = psl::domain_str(&hostname) {
                domains.push(d.to_string());
                if d != hostname {
                    domains.push(hostname.clone());
                }
            }
        }
        let mut out = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for i in revoked.iter() {
            let Some(svc) = self.policy.catalog.get(i) else {
                continue;
            };
            // Only cookies the browser sent exist for this site (trackers use Path=/).
            for pattern in &svc.cookies {
                let matches = |n: &&String| match pattern.strip_suffix('*') {
                    Some(prefix) => n.starts_with(prefix),
                    None => *n == pattern,
                };
                names.extend(present.iter().filter(matches).map(String::as_str));
            }
        }
        names.sort_unstable();
        names.dedup();
        for name in names {
            out.push(format!("{name}=; Max-Age=0; Path=/"));
            for d in &domains {
                out.push(format!("{name}=; Max-Age=0; Path=/; Domain={d}"));
            }
        }
        out
    }

    /// The receipt of a decision about to be set.
    fn receipt_for(
        &self,
        d: &Decision,
        previous: &Decision,
        revoked: &ServiceSet,
        action: &str,
        host: &str,
        meta: &RequestMeta,
    ) -> crate::receipts::Receipt {
        use crate::receipts::{self, Method as M};
        let catalog = &self.policy.catalog;
        let (mut granted, mut refused) = (Vec::new(), Vec::new());
        for (i, s) in catalog.services().iter().enumerate() {
            if s.purpose == Purpose::Necessary {
                continue;
            }
            if d.granted.contains(i) {
                granted.push(s.id.clone());
            } else {
                refused.push(s.id.clone());
            }
        }
        let method = if !revoked.is_empty() {
            M::Revoke
        } else {
            M::parse(action).unwrap_or(M::Save)
        };
        receipts::Receipt {
            id: receipts::new_id(),
            ts_ms: receipts::now_ms(),
            site: site_name(host),
            policy_version: self.signer.version().to_string(),
            lang: meta.lang.clone(),
            granted,
            refused,
            method,
            gpc: meta.gpc,
            user_agent: receipts::ua_family(&meta.user_agent).to_string(),
            ip: self
                .config
                .receipts
                .truncated_ip
                .then(|| receipts::truncate_ip(meta.peer.ip())),
            previous_receipt: previous.receipt.clone(),
            prev_hash: String::new(),
            hash: String::new(),
            erased: false,
        }
    }

    fn decision_from_form(
        &self,
        body: &Bytes,
        previous: &Decision,
    ) -> Result<Decision, &'static str> {
        let catalog = &self.policy.catalog;
        let mut action = None;
        let mut chosen = Vec::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            match k.as_ref() {
                "action" => action = Some(v.into_owned()),
                "service" => chosen.push(v.into_owned()),
                _ => {}
            }
        }
        let mut d = Decision {
            decided: true,
            issued: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            ..Decision::default()
        };
        match action.as_deref() {
            Some("accept-all") => {
                // Only what the banner showed: consent must be informed.
                for (i, s) in catalog.services().iter().enumerate() {
                    let shown = self.banner.shown.as_ref().is_none_or(|set| set.contains(i));
                    if s.purpose != Purpose::Necessary && shown {
                        d.granted.insert(i);
                    }
                }
            }
            Some("reject-all") => {}
            Some("grant") => {
                // One more service (the chat facade): the earlier choices stay.
                if previous.decided {
                    d.granted = previous.granted.clone();
                }
                for id in &chosen {
                    match catalog.index_of(id) {
                        Some(i) => d.granted.insert(i),
                        None => tracing::debug!(id, "consent form names an unknown service"),
                    }
                }
            }
            Some("save") => {
                for id in &chosen {
                    match catalog.index_of(id) {
                        Some(i) => d.granted.insert(i),
                        None => tracing::debug!(id, "consent form names an unknown service"),
                    }
                }
            }
            _ => return Err("action must be accept-all, reject-all, save or grant"),
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn origin_checks() {
        let host = "site.test:8080";
        assert!(same_origin(&h(&[("origin", "http://site.test:8080")]), host).is_ok());
        assert!(same_origin(&h(&[("origin", "http://SITE.test:8080")]), host).is_ok());
        assert!(same_origin(&h(&[("origin", "http://evil.test")]), host).is_err());
        assert!(same_origin(&h(&[("origin", "null")]), host).is_err());
        assert!(same_origin(&h(&[("origin", "https://site.test")]), "site.test").is_ok());
        assert!(same_origin(&h(&[("sec-fetch-site", "same-origin")]), host).is_ok());
        assert!(same_origin(&h(&[("sec-fetch-site", "cross-site")]), host).is_err());
        assert!(same_origin(&h(&[("sec-fetch-site", "same-site")]), host).is_err());
        assert!(same_origin(&h(&[("referer", "http://evil.test/x")]), host).is_err());
        assert!(same_origin(&h(&[]), host).is_ok());
    }

    #[test]
    fn redirect_targets() {
        let host = "site.test";
        assert_eq!(
            back_to(&h(&[("referer", "http://site.test/a/b?x=1")]), host),
            "/a/b?x=1"
        );
        assert_eq!(back_to(&h(&[("referer", "http://evil.test/a")]), host), "/");
        assert_eq!(back_to(&h(&[]), host), "/");
    }
}
