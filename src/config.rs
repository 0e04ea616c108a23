//! TOML configuration. Every section is optional; `consentgate --listen A --upstream U` runs
//! with no file at all. `check` reports every problem at once, each with its key path and line.

use std::net::SocketAddr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::catalog::{Catalog, Service};
use crate::error::{ConfigError, ConfigErrors};
use crate::policy::RewriteLimits;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    trust_forwarded_headers: Option<bool>,
    workers: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    url: Option<OneOrMany>,
    host_header: Option<String>,
    connect_timeout_ms: Option<u64>,
    read_timeout_ms: Option<u64>,
    ca_file: Option<String>,
    fail_timeout_secs: Option<u64>,
    protocol: Option<String>,
    pool_idle_timeout_secs: Option<u64>,
    pool_max_idle_per_host: Option<usize>,
}

/// `url = "http://a"` or `url = ["http://a", "http://b"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsent {
    endpoint_prefix: Option<String>,
    cookie_name: Option<String>,
    max_age_days: Option<u32>,
    key: Option<String>,
    banner: Option<bool>,
    default_language: Option<String>,
    privacy_policy_url: Option<String>,
    settings_position: Option<String>,
    adapter: Option<RawAdapter>,
    referrer_policy: Option<String>,
    services: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdapter {
    kind: crate::cmp::CmpKind,
    cookie_name: Option<String>,
    #[serde(default)]
    services: std::collections::BTreeMap<String, Vec<String>>,
}

/// Reads another consent manager's cookie and maps its vocabulary to our services.
#[derive(Debug, Clone)]
pub struct Adapter {
    pub kind: crate::cmp::CmpKind,
    pub cookie_name: Option<String>,
    /// Catalog index → the foreign ids that must all be granted for the service to be allowed.
    pub services: Vec<(usize, Vec<String>)>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRewrite {
    inline_script_max_bytes: Option<usize>,
    max_memory_bytes: Option<usize>,
}

const SECTIONS: &[&str] = &[
    "server", "upstream", "consent", "rewrite", "services", "texts", "beacons", "csp", "admin",
    "receipts", "privacy", "limits", "tls", "site",
];

/// The sections a `[[site]]` may set for itself; the rest are process-wide.
const SITE_SECTIONS: &[&str] = &[
    "upstream", "consent", "rewrite", "services", "texts", "beacons", "csp", "privacy",
];

/// The keys of a `[[site]]` besides its sections.
const SITE_KEYS: &[&str] = &["name", "hosts", "default", "tls"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    listen: Option<String>,
    redirect_listen: Option<String>,
    #[serde(default)]
    certs: Vec<RawCert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCert {
    cert: String,
    key: String,
    #[serde(default)]
    hosts: Vec<String>,
}

/// TLS termination.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub listen: SocketAddr,
    /// A plain-HTTP listener that redirects everything to HTTPS.
    pub redirect_listen: Option<SocketAddr>,
    pub certs: Vec<crate::tls::CertSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_connections: Option<usize>,
    header_read_timeout_ms: Option<u64>,
    max_headers: Option<usize>,
    max_header_bytes: Option<usize>,
    shutdown_timeout_secs: Option<u64>,
    endpoint_body_bytes: Option<usize>,
    endpoint_body_timeout_ms: Option<u64>,
    decompression_ratio: Option<u64>,
}

/// Resource limits, each with a safe default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Time a client has to send a request head (slowloris); also bounds idle keep-alive.
    pub header_read_timeout: Duration,
    /// Request header fields at most (HTTP/1: 431 beyond).
    pub max_headers: usize,
    /// Bytes of request head at most (HTTP/1 read buffer; HTTP/2 header list).
    pub max_header_bytes: usize,
    /// How long in-flight requests may finish after SIGTERM/SIGINT.
    pub shutdown_timeout: Duration,
    /// Request body of our own endpoints (consent form, CSP reports).
    pub endpoint_body_bytes: usize,
    /// Time a client has to send that body.
    pub endpoint_body_timeout: Duration,
    /// A compressed HTML body may expand this many times (compression bombs), beyond 1 MiB.
    pub decompression_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            max_headers: 100,
            max_header_bytes: 64 * 1024,
            shutdown_timeout: Duration::from_secs(30),
            endpoint_body_bytes: 16 * 1024,
            endpoint_body_timeout: Duration::from_secs(10),
            decompression_ratio: 200,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrivacy {
    controller: Option<String>,
    dpo: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceipts {
    store: Option<String>,
    path: Option<String>,
    url: Option<String>,
    retention_days: Option<u32>,
    ip: Option<String>,
    queue: Option<usize>,
}

/// Where consent receipts are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptStore {
    Sqlite(std::path::PathBuf),
    Postgres(String),
    /// No proof is kept (development only: not compliant with Art. 7(1)).
    Off,
}

#[derive(Debug, Clone)]
pub struct ReceiptsConfig {
    pub store: ReceiptStore,
    pub retention: Duration,
    /// Keep the client IP truncated to /24 or /48 in receipts.
    pub truncated_ip: bool,
    pub queue: usize,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCsp {
    mode: Option<String>,
    allow: Option<Vec<String>>,
    report: Option<bool>,
    directives: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
    token: Option<String>,
}

/// The admin listener: a separate address, bearer-token protected.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub token: String,
}

/// How the `Host` header sent upstream is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostHeader {
    /// The client's `Host` (the default: the origin serves the public site name).
    Client,
    /// The host (and port) of `upstream.url`.
    Upstream,
    /// A fixed value.
    Fixed(String),
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Keep and extend incoming `X-Forwarded-*`/`Forwarded` (only behind a trusted proxy).
    pub trust_forwarded_headers: bool,
    /// Threads serving requests; `None`: one per CPU (or `TOKIO_WORKER_THREADS`); 1: the
    /// single-threaded scheduler.
    pub workers: Option<usize>,
}

/// The protocol spoken to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 only (the default; needed for WebSocket and other upgrades).
    Http1,
    /// HTTP/2 only: prior knowledge on http, ALPN h2 on https.
    Http2,
    /// ALPN picks h2 or HTTP/1.1 on https; HTTP/1.1 on plain http.
    Auto,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The origin's (first) address.
    pub url: url::Url,
    /// Further addresses of the same origin, balanced round-robin with `url`.
    pub others: Vec<url::Url>,
    /// How long an address that refused or failed a connection is left out.
    pub fail_timeout: Duration,
    pub protocol: UpstreamProtocol,
    /// Idle keep-alive connections are closed after this long.
    pub pool_idle_timeout: Duration,
    /// Idle keep-alive connections kept per address at most.
    pub pool_max_idle_per_host: usize,
    pub host_header: HostHeader,
    pub connect_timeout: Duration,
    /// Time allowed for the response head, and between two body chunks.
    pub read_timeout: Duration,
    /// Extra trust anchors for an https upstream (an internal CA), besides the public roots.
    pub ca_certs: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl UpstreamConfig {
    /// Every address, `url` first.
    pub fn urls(&self) -> impl Iterator<Item = &url::Url> {
        std::iter::once(&self.url).chain(&self.others)
    }
}

#[derive(Debug, Clone)]
pub struct ConsentConfig {
    pub endpoint_prefix: String,
    pub cookie_name: String,
    pub max_age: Duration,
    /// HMAC key for the consent cookie; `None` means "from CONSENTGATE_KEY, else random".
    pub key: Option<String>,
    /// Inject the banner and settings control into pages.
    pub banner: bool,
    /// The site's privacy policy, linked from the banner.
    pub privacy_policy_url: String,
    pub settings_corner: crate::banner::Corner,
    /// Another consent manager whose decision is enforced (for the services it maps).
    pub adapter: Option<Adapter>,
    /// Added to HTML responses that carry no `Referrer-Policy`; `None` leaves them alone.
    pub referrer_policy: Option<String>,
    /// The services this site uses (catalog indices): the banner lists only these, and
    /// "Accept all" grants only these. `None`: every catalog service.
    pub shown: Option<Vec<usize>>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub consent: ConsentConfig,
    pub rewrite: RewriteLimits,
    /// The built-in catalog with the user's `[[services]]` applied.
    pub catalog: Catalog,
    /// Banner texts: built-in languages with the user's `[texts.<lang>]` applied.
    pub languages: crate::i18n::Languages,
    pub csp: crate::csp::CspConfig,
    /// `None`: no admin listener.
    pub admin: Option<AdminConfig>,
    pub receipts: ReceiptsConfig,
    /// Controller and DPO for the privacy statement.
    pub privacy: crate::privacy::PrivacyConfig,
    pub limits: Limits,
    /// `None`: plain HTTP only.
    pub tls: Option<TlsConfig>,
    /// The `[[site]]` blocks; empty when the file has none, and the top level is the one site.
    pub sites: Vec<Site>,
}

/// One site of a multi-site configuration: the host names it serves and its own configuration
/// (the top level's site sections with the block's own applied over them).
#[derive(Debug, Clone)]
pub struct Site {
    /// Unique; the `site` label of metrics and the name in logs.
    pub name: String,
    /// Exact host names and `*.domain` patterns (any subdomain depth), lower case, no port.
    pub hosts: Vec<String>,
    /// Serves requests whose Host matches no site.
    pub default: bool,
    pub config: Config,
    /// The site's certificate (`tls = { cert, key }`), for its hosts.
    pub cert: Option<crate::tls::CertSpec>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_UPSTREAM: &str = "http://127.0.0.1:9000";

impl Config {
    /// Whole years of receipt retention, for the privacy texts.
    pub fn retention_years(&self) -> u64 {
        (self.receipts.retention.as_secs() / (365 * 86_400)).max(1)
    }

    /// The configuration used when no file is given.
    pub fn defaults() -> Result<Config, ConfigErrors> {
        Config::parse("")
    }

    /// Parses and validates a TOML document, collecting every problem.
    pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
        let doc = match toml_edit::ImDocument::parse(text.to_string()) {
            Ok(d) => d,
            Err(e) => {
                let line = e
                    .span()
                    .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
                return Err(ConfigErrors(vec![ConfigError {
                    path: "(syntax)".into(),
                    line,
                    message: e.message().trim().to_string(),
                }]));
            }
        };
        let table: toml::Table = match toml::from_str(text) {
            Ok(t) => t,
            Err(e) => {
                return Err(ConfigErrors(vec![ConfigError::new(
                    "(syntax)",
                    e.message().to_string(),
                )]))
            }
        };
        let mut config = Config::from_table(&table);
        let sites = match table.get("site") {
            None => Ok(Vec::new()),
            Some(v) => sites(&table, v, config.as_ref().err().map_or(&[][..], |e| &e[..])),
        };
        let errors: Vec<ConfigError> = match (&mut config, sites) {
            (Ok(c), Ok(sites)) => {
                c.adopt_site_certificates(&sites);
                c.sites = sites;
                Vec::new()
            }
            (Ok(_), Err(e)) => e,
            (Err(e), Ok(_)) => std::mem::take(e),
            (Err(e), Err(mut s)) => {
                let mut all = std::mem::take(e);
                all.append(&mut s);
                all
            }
        };
        let mut errors = errors;
        if let Ok(Config { tls: Some(t), .. }) = &config {
            if t.certs.is_empty() {
                errors.push(ConfigError::new(
                    "tls.certs",
                    "add at least one [[tls.certs]] with cert, key and hosts, or `tls` to a [[site]]",
                ));
            }
        }
        if errors.is_empty() {
            return config.map_err(ConfigErrors);
        }
        for e in &mut errors {
            e.line = e.line.or_else(|| line_of(&doc, text, &e.path));
        }
        Err(ConfigErrors(errors))
    }

    /// Validates one parsed document (the top level, or a site merged with it); errors carry
    /// key paths but no lines yet.
    fn from_table(table: &toml::Table) -> Result<Config, Vec<ConfigError>> {
        let table = table.clone();
        let mut errors = Vec::new();
        for key in table.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                errors.push(ConfigError::new(
                    key.clone(),
                    format!("unknown section; expected one of {}", SECTIONS.join(", ")),
                ));
            }
        }
        let server: RawServer = section(&table, "server", &mut errors);
        let upstream: RawUpstream = section(&table, "upstream", &mut errors);
        let consent: RawConsent = section(&table, "consent", &mut errors);
        let rewrite: RawRewrite = section(&table, "rewrite", &mut errors);

        if server.workers.is_some_and(|n| n > 1024) {
            errors.push(ConfigError::new(
                "server.workers",
                "at most 1024 (0 or absent: one per CPU)",
            ));
        }
        let listen = server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen.parse::<SocketAddr>().unwrap_or_else(|e| {
            errors.push(ConfigError::new(
                "server.listen",
                format!("`{listen}` is not an address:port ({e})"),
            ));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });

        let url_texts = match upstream.url {
            None => vec![(String::from("upstream.url"), DEFAULT_UPSTREAM.to_string())],
            Some(OneOrMany::One(u)) => vec![("upstream.url".into(), u)],
            Some(OneOrMany::Many(list)) => {
                if list.is_empty() {
                    errors.push(ConfigError::new(
                        "upstream.url",
                        "list at least one address of the origin",
                    ));
                }
                list.into_iter()
                    .enumerate()
                    .map(|(i, u)| (format!("upstream.url[{i}]"), u))
                    .collect()
            }
        };
        let mut urls = Vec::new();
        for (key, text) in &url_texts {
            match parse_upstream_url(text) {
                Ok(u) if urls.contains(&u) => {
                    errors.push(ConfigError::new(key, format!("`{text}` is listed twice")))
                }
                Ok(u) => urls.push(u),
                Err(msg) => errors.push(ConfigError::new(key, msg)),
            }
        }
        let mut urls = urls.into_iter();
        let url = urls.next().unwrap_or_else(|| {
            url::Url::parse(DEFAULT_UPSTREAM).unwrap_or_else(|_| unreachable!())
        });
        let others: Vec<url::Url> = urls.collect();
        let protocol = match upstream.protocol.as_deref() {
            None | Some("http1") => UpstreamProtocol::Http1,
            Some("http2") => UpstreamProtocol::Http2,
            Some("auto") => UpstreamProtocol::Auto,
            Some(other) => {
                errors.push(ConfigError::new(
                    "upstream.protocol",
                    format!("`{other}`: use \"http1\", \"http2\" or \"auto\""),
                ));
                UpstreamProtocol::Http1
            }
        };
        let host_header = match upstream.host_header.as_deref() {
            None | Some("client") => HostHeader::Client,
            Some("upstream") => HostHeader::Upstream,
            Some(v) if !v.is_empty() && http::HeaderValue::from_str(v).is_ok() => {
                HostHeader::Fixed(v.to_string())
            }
            Some(v) => {
                errors.push(ConfigError::new(
                    "upstream.host_header",
                    format!("`{v}`: use \"client\", \"upstream\" or a host name"),
                ));
                HostHeader::Client
            }
        };
        let at_least_1 =
            |v: Option<u64>, default: u64, key: &str, errors: &mut Vec<ConfigError>| {
                let v = v.unwrap_or(default);
                if v == 0 {
                    errors.push(ConfigError::new(key, "must be greater than 0"));
                }
                v.max(1)
            };
        let ms = |v, default, key: &str, errors: &mut Vec<ConfigError>| {
            Duration::from_millis(at_least_1(v, default, key, errors))
        };
        let secs = |v, default, key: &str, errors: &mut Vec<ConfigError>| {
            Duration::from_secs(at_least_1(v, default, key, errors))
        };
        let connect_timeout = ms(
            upstream.connect_timeout_ms,
            5_000,
            "upstream.connect_timeout_ms",
            &mut errors,
        );
        let read_timeout = ms(
            upstream.read_timeout_ms,
            30_000,
            "upstream.read_timeout_ms",
            &mut errors,
        );
        let fail_timeout = secs(
            upstream.fail_timeout_secs,
            10,
            "upstream.fail_timeout_secs",
            &mut errors,
        );
        let pool_idle_timeout = secs(
            upstream.pool_idle_timeout_secs,
            60,
            "upstream.pool_idle_timeout_secs",
            &mut errors,
        );
        let pool_max_idle_per_host = upstream.pool_max_idle_per_host.unwrap_or(64);

        let ca_certs = match &upstream.ca_file {
            None => Vec::new(),
            Some(path) => load_ca_file(path).unwrap_or_else(|msg| {
                errors.push(ConfigError::new("upstream.ca_file", msg));
                Vec::new()
            }),
        };

        let prefix = consent
            .endpoint_prefix
            .unwrap_or_else(|| "/__consent".to_string());
        if !prefix.starts_with('/')
            || prefix.len() < 2
            || prefix.ends_with('/')
            || prefix.contains(['?', '#', ' '])
        {
            errors.push(ConfigError::new(
                "consent.endpoint_prefix",
                format!("`{prefix}` must be a path like /__consent (leading /, no trailing /)"),
            ));
        }
        let cookie_name = consent
            .cookie_name
            .unwrap_or_else(|| "consentgate".to_string());
        if cookie_name.is_empty()
            || !cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            errors.push(ConfigError::new(
                "consent.cookie_name",
                format!("`{cookie_name}` is not a valid cookie name (A-Z a-z 0-9 - _ .)"),
            ));
        }
        let days = consent.max_age_days.unwrap_or(180);
        if days == 0 || days > 395 {
            errors.push(ConfigError::new(
                "consent.max_age_days",
                format!("{days}: must be between 1 and 395 (13 months)"),
            ));
        }
        if let Some(k) = &consent.key {
            if k.len() < 32 {
                errors.push(ConfigError::new(
                    "consent.key",
                    "must be at least 32 characters (use a random string, e.g. `openssl rand -hex 32`)",
                ));
            }
        }

        let privacy_policy_url = consent
            .privacy_policy_url
            .clone()
            .unwrap_or_else(|| "/privacy".to_string());
        if privacy_policy_url.trim().is_empty() || privacy_policy_url.contains(['"', '<', '>']) {
            errors.push(ConfigError::new(
                "consent.privacy_policy_url",
                "must be a URL or path (no quotes or angle brackets)",
            ));
        }
        let settings_corner = match consent.settings_position.as_deref() {
            None | Some("bottom-left") => crate::banner::Corner::BottomLeft,
            Some("bottom-right") => crate::banner::Corner::BottomRight,
            Some(other) => {
                errors.push(ConfigError::new(
                    "consent.settings_position",
                    format!("`{other}`: use \"bottom-left\" or \"bottom-right\""),
                ));
                crate::banner::Corner::BottomLeft
            }
        };
        let texts: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> =
            section(&table, "texts", &mut errors);
        let default_language = consent
            .default_language
            .clone()
            .unwrap_or_else(|| "en".to_string());
        let languages = match crate::i18n::Languages::new(&default_language, &texts) {
            Ok(l) => Some(l),
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        };

        let raw_csp: RawCsp = section(&table, "csp", &mut errors);
        let mode = match raw_csp.mode.as_deref() {
            None | Some("report-only") => crate::csp::CspMode::ReportOnly,
            Some("enforce") => crate::csp::CspMode::Enforce,
            Some("off") => crate::csp::CspMode::Off,
            Some(m) => {
                errors.push(ConfigError::new(
                    "csp.mode",
                    format!("`{m}`: use \"off\", \"report-only\" or \"enforce\""),
                ));
                crate::csp::CspMode::Off
            }
        };
        let allow = raw_csp.allow.unwrap_or_default();
        for (i, src) in allow.iter().enumerate() {
            if !crate::csp::valid_source(src) {
                errors.push(ConfigError::new(
                    format!("csp.allow[{i}]"),
                    format!("`{src}` is not a CSP source expression"),
                ));
            }
        }
        let directives = raw_csp.directives.unwrap_or_default();
        for (dir, sources) in &directives {
            if !crate::csp::DIRECTIVES.contains(&dir.as_str()) {
                errors.push(ConfigError::new(
                    format!("csp.directives.{dir}"),
                    format!(
                        "not a directive consentgate sets; one of {}",
                        crate::csp::DIRECTIVES.join(", ")
                    ),
                ));
            }
            for (i, src) in sources.iter().enumerate() {
                if !crate::csp::valid_source(src) {
                    errors.push(ConfigError::new(
                        format!("csp.directives.{dir}[{i}]"),
                        format!("`{src}` is not a CSP source expression"),
                    ));
                }
            }
        }
        let csp = crate::csp::CspConfig {
            mode,
            allow,
            directives,
            report_path: raw_csp
                .report
                .unwrap_or(true)
                .then(|| format!("{prefix}/csp-report")),
        };
        let raw_admin: RawAdmin = section(&table, "admin", &mut errors);
        // Default 127.0.0.1:9901 when a token exists; never open without one.
        let env_token = std::env::var("CONSENTGATE_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty());
        let admin_listen = raw_admin.listen.clone().or_else(|| {
            (raw_admin.token.is_some() || env_token.is_some()).then(|| "127.0.0.1:9901".to_string())
        });
        let admin = match admin_listen {
            None => None,
            Some(l) => {
                let listen = l.parse::<SocketAddr>().map_err(|e| {
                    errors.push(ConfigError::new(
                        "admin.listen",
                        format!("`{l}` is not an address:port ({e})"),
                    ));
                });
                let token = raw_admin.token.or(env_token).filter(|t| !t.is_empty());
                match (&token, listen) {
                    (Some(t), _) if t.len() < 16 => {
                        errors.push(ConfigError::new(
                            "admin.token",
                            "must be at least 16 characters",
                        ));
                        None
                    }
                    (None, _) => {
                        errors.push(ConfigError::new(
                            "admin.token",
                            "the admin listener needs a bearer token (admin.token or CONSENTGATE_ADMIN_TOKEN)",
                        ));
                        None
                    }
                    (Some(t), Ok(listen)) => Some(AdminConfig {
                        listen,
                        token: t.clone(),
                    }),
                    (Some(_), Err(())) => None,
                }
            }
        };

        let raw_receipts: RawReceipts = section(&table, "receipts", &mut errors);
        let store = match raw_receipts.store.as_deref() {
            None | Some("sqlite") => ReceiptStore::Sqlite(
                raw_receipts
                    .path
                    .clone()
                    .unwrap_or_else(|| "consentgate-receipts.db".into())
                    .into(),
            ),
            Some("postgres") => match raw_receipts
                .url
                .clone()
                .or_else(|| std::env::var("CONSENTGATE_RECEIPTS_URL").ok())
                .filter(|u| !u.is_empty())
            {
                Some(u) => ReceiptStore::Postgres(u),
                None => {
                    errors.push(ConfigError::new(
                        "receipts.url",
                        "store = \"postgres\" needs a connection URL (receipts.url or CONSENTGATE_RECEIPTS_URL)",
                    ));
                    ReceiptStore::Off
                }
            },
            Some("off") => ReceiptStore::Off,
            Some(other) => {
                errors.push(ConfigError::new(
                    "receipts.store",
                    format!("`{other}`: use \"sqlite\", \"postgres\" or \"off\""),
                ));
                ReceiptStore::Off
            }
        };
        let retention_days = raw_receipts.retention_days.unwrap_or(3 * 365);
        if retention_days == 0 {
            errors.push(ConfigError::new(
                "receipts.retention_days",
                "must be at least 1",
            ));
        }
        let truncated_ip = match raw_receipts.ip.as_deref() {
            None | Some("none") => false,
            Some("truncated") => true,
            Some(other) => {
                errors.push(ConfigError::new(
                    "receipts.ip",
                    format!("`{other}`: use \"none\" or \"truncated\" (/24, /48)"),
                ));
                false
            }
        };
        let receipts = ReceiptsConfig {
            store,
            retention: Duration::from_secs(u64::from(retention_days.max(1)) * 86_400),
            truncated_ip,
            queue: raw_receipts.queue.unwrap_or(1024).max(1),
        };

        let raw_privacy: RawPrivacy = section(&table, "privacy", &mut errors);
        let privacy = crate::privacy::PrivacyConfig {
            controller: raw_privacy.controller.filter(|s| !s.trim().is_empty()),
            dpo: raw_privacy.dpo.filter(|s| !s.trim().is_empty()),
        };

        let tls = match table.get("tls") {
            None => None,
            Some(_) => {
                let raw: RawTls = section(&table, "tls", &mut errors);
                let addr = |v: Option<String>, key: &str, errors: &mut Vec<ConfigError>| {
                    v.and_then(|l| {
                        l.parse::<SocketAddr>()
                            .map_err(|e| {
                                errors.push(ConfigError::new(
                                    format!("tls.{key}"),
                                    format!("`{l}` is not an address:port ({e})"),
                                ))
                            })
                            .ok()
                    })
                };
                let listen = addr(
                    raw.listen.or(Some("0.0.0.0:443".into())),
                    "listen",
                    &mut errors,
                );
                let redirect_listen = addr(raw.redirect_listen, "redirect_listen", &mut errors);
                // No certificate at all is reported by `parse`, once sites added theirs.
                let mut certs = Vec::new();
                for (i, c) in raw.certs.into_iter().enumerate() {
                    let (spec, checked) = crate::tls::CertSpec::load(c.cert, c.key, c.hosts);
                    if let Err(e) = checked {
                        errors.push(ConfigError::new(format!("tls.certs[{i}]"), e));
                    }
                    certs.push(spec);
                }
                listen.map(|listen| TlsConfig {
                    listen,
                    redirect_listen,
                    certs,
                })
            }
        };
        let raw_limits: RawLimits = section(&table, "limits", &mut errors);
        let d = Limits::default();
        let mut positive = |v: Option<u64>, key: &str, default: u64| -> u64 {
            match v {
                Some(0) => {
                    errors.push(ConfigError::new(
                        format!("limits.{key}"),
                        "must be greater than 0",
                    ));
                    default
                }
                Some(v) => v,
                None => default,
            }
        };
        let resource_limits = Limits {
            max_connections: positive(
                raw_limits.max_connections.map(|v| v as u64),
                "max_connections",
                d.max_connections as u64,
            ) as usize,
            header_read_timeout: Duration::from_millis(positive(
                raw_limits.header_read_timeout_ms,
                "header_read_timeout_ms",
                d.header_read_timeout.as_millis() as u64,
            )),
            max_headers: positive(
                raw_limits.max_headers.map(|v| v as u64),
                "max_headers",
                d.max_headers as u64,
            ) as usize,
            max_header_bytes: positive(
                raw_limits.max_header_bytes.map(|v| v as u64),
                "max_header_bytes",
                d.max_header_bytes as u64,
            )
            .max(8192) as usize,
            shutdown_timeout: Duration::from_secs(positive(
                raw_limits.shutdown_timeout_secs,
                "shutdown_timeout_secs",
                d.shutdown_timeout.as_secs(),
            )),
            endpoint_body_bytes: positive(
                raw_limits.endpoint_body_bytes.map(|v| v as u64),
                "endpoint_body_bytes",
                d.endpoint_body_bytes as u64,
            ) as usize,
            endpoint_body_timeout: Duration::from_millis(positive(
                raw_limits.endpoint_body_timeout_ms,
                "endpoint_body_timeout_ms",
                d.endpoint_body_timeout.as_millis() as u64,
            )),
            decompression_ratio: positive(
                raw_limits.decompression_ratio,
                "decompression_ratio",
                d.decompression_ratio,
            ),
        };

        let defaults = RewriteLimits::default();
        let limits = RewriteLimits {
            inline_script_max_bytes: rewrite
                .inline_script_max_bytes
                .unwrap_or(defaults.inline_script_max_bytes),
            max_memory_bytes: rewrite
                .max_memory_bytes
                .unwrap_or(defaults.max_memory_bytes),
        };
        if limits.inline_script_max_bytes < 1024 {
            errors.push(ConfigError::new(
                "rewrite.inline_script_max_bytes",
                "must be at least 1024",
            ));
        }
        if limits.max_memory_bytes < 64 * 1024 {
            errors.push(ConfigError::new(
                "rewrite.max_memory_bytes",
                "must be at least 65536",
            ));
        }

        let mut catalog = match Catalog::builtin() {
            Ok(c) => c,
            Err(mut e) => {
                errors.append(&mut e);
                Catalog::default()
            }
        };
        match table.get("services") {
            None => {}
            Some(toml::Value::Array(items)) => {
                let mut seen = std::collections::HashSet::new();
                for (i, item) in items.iter().enumerate() {
                    let path = format!("services[{i}]");
                    match serde_path_to_error::deserialize::<_, Service>(item.clone()) {
                        Ok(svc) => {
                            svc.validate(&path, &mut errors);
                            if !seen.insert(svc.id.clone()) {
                                errors.push(ConfigError::new(
                                    format!("{path}.id"),
                                    format!("`{}` is defined twice in this file", svc.id),
                                ));
                            }
                            catalog.upsert(svc);
                        }
                        Err(e) => errors.push(located(&path, e)),
                    }
                }
            }
            Some(_) => errors.push(ConfigError::new(
                "services",
                "must be an array of tables: [[services]]",
            )),
        }

        let beacons: std::collections::BTreeMap<String, Vec<String>> =
            section(&table, "beacons", &mut errors);
        for (id, paths) in beacons {
            let path = format!("beacons.{id}");
            let Some(i) = catalog.index_of(&id) else {
                errors.push(ConfigError::new(
                    path,
                    format!("no service `{id}` in the catalog"),
                ));
                continue;
            };
            let mut svc = catalog.get(i).cloned().unwrap_or_else(|| unreachable!());
            svc.beacon_paths.extend(paths);
            svc.validate(&path, &mut errors);
            catalog.upsert(svc);
        }
        let referrer_policy = match consent.referrer_policy.as_deref() {
            None => Some("strict-origin-when-cross-origin".to_string()),
            Some("") => None,
            Some(v) => {
                const VALID: &[&str] = &[
                    "no-referrer",
                    "no-referrer-when-downgrade",
                    "origin",
                    "origin-when-cross-origin",
                    "same-origin",
                    "strict-origin",
                    "strict-origin-when-cross-origin",
                    "unsafe-url",
                ];
                if !VALID.contains(&v) {
                    errors.push(ConfigError::new(
                        "consent.referrer_policy",
                        format!("`{v}` is not a Referrer-Policy value (or \"\" to add none)"),
                    ));
                }
                Some(v.to_string())
            }
        };
        let shown = consent.services.as_ref().map(|ids| {
            let mut out = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                match catalog.index_of(id) {
                    Some(x) => out.push(x),
                    None => errors.push(ConfigError::new(
                        format!("consent.services[{i}]"),
                        format!("no service `{id}` in the catalog"),
                    )),
                }
            }
            out
        });
        let adapter = consent.adapter.map(|a| {
            let mut services = Vec::new();
            for (id, foreign) in a.services {
                let path = format!("consent.adapter.services.{id}");
                match catalog.index_of(&id) {
                    None => errors.push(ConfigError::new(
                        path,
                        format!("no service `{id}` in the catalog"),
                    )),
                    Some(_)
                        if foreign.is_empty() || foreign.iter().any(|f| f.trim().is_empty()) =>
                    {
                        errors.push(ConfigError::new(
                            path,
                            "list the consent manager's ids (non-empty)",
                        ))
                    }
                    Some(i) => services.push((i, foreign)),
                }
            }
            if services.is_empty() {
                errors.push(ConfigError::new(
                    "consent.adapter.services",
                    "map at least one service to the consent manager's ids",
                ));
            }
            Adapter {
                kind: a.kind,
                cookie_name: a.cookie_name,
                services,
            }
        });

        let Some(languages) = languages.filter(|_| errors.is_empty()) else {
            return Err(errors);
        };
        Ok(Config {
            server: ServerConfig {
                listen,
                trust_forwarded_headers: server.trust_forwarded_headers.unwrap_or(false),
                workers: server.workers.filter(|&n| n > 0),
            },
            upstream: UpstreamConfig {
                url,
                others,
                fail_timeout,
                protocol,
                pool_idle_timeout,
                pool_max_idle_per_host,
                host_header,
                connect_timeout,
                read_timeout,
                ca_certs,
            },
            consent: ConsentConfig {
                endpoint_prefix: prefix,
                cookie_name,
                max_age: Duration::from_secs(u64::from(days) * 86_400),
                key: consent.key,
                banner: consent.banner.unwrap_or(true),
                privacy_policy_url,
                settings_corner,
                adapter,
                referrer_policy,
                shown,
            },
            rewrite: limits,
            catalog,
            languages,
            csp,
            admin,
            receipts,
            privacy,
            limits: resource_limits,
            tls,
            sites: Vec::new(),
        })
    }

    /// Reads and parses a file; I/O problems are reported like config problems.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError::new(
                path.display().to_string(),
                format!("cannot read: {e}"),
            )])
        })?;
        Config::parse(&text)
    }
}

/// `http(s)://host[:port]` with an optional path prefix; query and fragment make no sense.
pub fn parse_upstream_url(s: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(s).map_err(|e| format!("`{s}` is not a URL ({e})"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("`{s}`: scheme must be http or https"));
    }
    if u.host_str().is_none() {
        return Err(format!("`{s}`: no host"));
    }
    if u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() {
        return Err(format!("`{s}`: no query, fragment or credentials allowed"));
    }
    Ok(u)
}

/// The certificates of a PEM file; an unreadable file or one without certificates is an error.
fn load_ca_file(path: &str) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read `{path}`: {e}"))?;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("`{path}` is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("`{path}` contains no CERTIFICATE block"));
    }
    Ok(certs)
}

fn located(prefix: &str, e: serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
    let inner = e.path().to_string();
    let path = if inner == "." || inner.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}.{inner}")
    };
    ConfigError::new(path, e.into_inner().message().to_string())
}

impl Config {
    /// Site certificates join `[tls]` (a listener on 0.0.0.0:443 when there is no `[tls]`).
    fn adopt_site_certificates(&mut self, sites: &[Site]) {
        for site in sites {
            let Some(cert) = &site.cert else { continue };
            let tls = self.tls.get_or_insert_with(|| TlsConfig {
                listen: SocketAddr::from(([0, 0, 0, 0], 443)),
                redirect_listen: None,
                certs: Vec::new(),
            });
            tls.certs.push(cert.clone());
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSiteTls {
    cert: String,
    key: String,
}

/// The `[[site]]` blocks. Each is validated as the top level with its own sections merged over
/// the top level's; a problem in a site's own keys is reported under `site[i].`, one inherited
/// from the top level only once (`top` holds what the top level already reported).
fn sites(
    top_table: &toml::Table,
    value: &toml::Value,
    top: &[ConfigError],
) -> Result<Vec<Site>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let Some(blocks) = value.as_array().filter(|a| a.iter().all(|v| v.is_table())) else {
        return Err(vec![ConfigError::new(
            "site",
            "must be an array of tables: [[site]]",
        )]);
    };
    let mut out = Vec::new();
    let mut names = std::collections::HashSet::new();
    let mut hosts_seen: std::collections::HashMap<String, usize> = Default::default();
    let mut default_site = None;
    for (i, block) in blocks.iter().enumerate() {
        let at = format!("site[{i}]");
        let Some(block) = block.as_table() else {
            continue;
        };
        for key in block.keys() {
            if SITE_SECTIONS.contains(&key.as_str()) || SITE_KEYS.contains(&key.as_str()) {
                continue;
            }
            let why = if SECTIONS.contains(&key.as_str()) {
                "is process-wide: set it at the top level, not per site".to_string()
            } else {
                format!(
                    "unknown key; a site has {} and the sections {}",
                    SITE_KEYS.join(", "),
                    SITE_SECTIONS.join(", ")
                )
            };
            errors.push(ConfigError::new(format!("{at}.{key}"), why));
        }
        let name = match block.get("name").map(|v| v.as_str()) {
            Some(Some(n))
                if !n.is_empty()
                    && n.len() <= 64
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
            {
                n.to_string()
            }
            None => {
                errors.push(ConfigError::new(
                    format!("{at}.name"),
                    "every site needs a name (A-Z a-z 0-9 - _ ., for logs and metrics)",
                ));
                format!("site{i}")
            }
            Some(_) => {
                errors.push(ConfigError::new(
                    format!("{at}.name"),
                    "must be 1 to 64 characters of A-Z a-z 0-9 - _ .",
                ));
                format!("site{i}")
            }
        };
        if !names.insert(name.clone()) {
            errors.push(ConfigError::new(
                format!("{at}.name"),
                format!("`{name}` names two sites"),
            ));
        }
        let default = match block.get("default") {
            None => false,
            Some(toml::Value::Boolean(b)) => *b,
            Some(_) => {
                errors.push(ConfigError::new(
                    format!("{at}.default"),
                    "must be true or false",
                ));
                false
            }
        };
        if default {
            if let Some(first) = default_site.replace(i) {
                errors.push(ConfigError::new(
                    format!("{at}.default"),
                    format!("site[{first}] is already the default; only one site can be"),
                ));
            }
        }
        let mut hosts = Vec::new();
        match block.get("hosts") {
            None if default => {}
            None => errors.push(ConfigError::new(
                format!("{at}.hosts"),
                "list the host names this site serves (or make it the default site)",
            )),
            Some(toml::Value::Array(list)) => {
                for (j, h) in list.iter().enumerate() {
                    let key = format!("{at}.hosts[{j}]");
                    match h.as_str().map(host_pattern) {
                        Some(Ok(p)) => {
                            if let Some(other) = hosts_seen.insert(p.clone(), i) {
                                errors.push(ConfigError::new(
                                    key,
                                    format!("`{p}` is also a host of site[{other}]"),
                                ));
                            }
                            hosts.push(p);
                        }
                        Some(Err(msg)) => errors.push(ConfigError::new(key, msg)),
                        None => errors.push(ConfigError::new(key, "must be a string")),
                    }
                }
                if list.is_empty() && !default {
                    errors.push(ConfigError::new(
                        format!("{at}.hosts"),
                        "list at least one host name (or make it the default site)",
                    ));
                }
            }
            Some(_) => errors.push(ConfigError::new(
                format!("{at}.hosts"),
                "must be an array of host names",
            )),
        }
        let cert = match block.get("tls") {
            None => None,
            Some(v) => match serde_path_to_error::deserialize::<_, RawSiteTls>(v.clone()) {
                Err(e) => {
                    errors.push(located(&format!("{at}.tls"), e));
                    None
                }
                Ok(t) => {
                    let (spec, checked) = crate::tls::CertSpec::load(t.cert, t.key, hosts.clone());
                    if let Err(e) = checked {
                        errors.push(ConfigError::new(format!("{at}.tls"), e));
                    }
                    Some(spec)
                }
            },
        };
        let merged = merge_site(top_table, block);
        match Config::from_table(&merged) {
            Ok(config) => out.push(Site {
                name,
                hosts,
                default,
                config,
                cert,
            }),
            Err(site_errors) => {
                for e in site_errors {
                    if top
                        .iter()
                        .any(|t| t.path == e.path && t.message == e.message)
                    {
                        continue;
                    }
                    if set_by(block, &e.path) {
                        errors.push(ConfigError::new(format!("{at}.{}", e.path), e.message));
                    } else {
                        errors.push(ConfigError::new(
                            at.clone(),
                            format!("{} (inherited from the top level): {}", e.path, e.message),
                        ));
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// A site's host pattern, normalized: `example.com` or `*.example.com`.
fn host_pattern(h: &str) -> Result<String, String> {
    let p = h.trim().trim_end_matches('.').to_ascii_lowercase();
    let name = p.strip_prefix("*.").unwrap_or(&p);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(p)
    } else {
        Err(format!(
            "`{h}` is not a host name or `*.domain` pattern (no scheme, port or path; IDNs in punycode)"
        ))
    }
}

/// The top level with a site's sections applied over it: tables merge key by key, other
/// values replace; a site's `[[services]]` replace the top level's of the same id. TLS stays
/// with the top level (certificates load once).
fn merge_site(top: &toml::Table, site: &toml::Table) -> toml::Table {
    fn merge(into: &mut toml::Table, from: &toml::Table) {
        for (k, v) in from {
            match (into.get_mut(k), v) {
                (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
                _ => {
                    into.insert(k.clone(), v.clone());
                }
            }
        }
    }
    let mut out = top.clone();
    out.remove("site");
    out.remove("tls");
    for key in SITE_SECTIONS {
        let Some(v) = site.get(*key) else { continue };
        match (*key, out.get_mut(*key), v) {
            ("services", Some(toml::Value::Array(inherited)), toml::Value::Array(own)) => {
                let id = |v: &toml::Value| v.get("id").and_then(|x| x.as_str()).map(str::to_string);
                let own_ids: Vec<_> = own.iter().filter_map(id).collect();
                // The site's own first, so `services[j]` in an error is the site's j-th.
                let mut list = own.clone();
                list.extend(
                    inherited
                        .iter()
                        .filter(|s| id(s).is_none_or(|i| !own_ids.contains(&i)))
                        .cloned(),
                );
                *inherited = list;
            }
            (_, Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            _ => {
                out.insert(key.to_string(), v.clone());
            }
        }
    }
    out
}

/// Whether the key path an error names (`upstream.url[1]`, `services[0].hosts`) exists in a
/// site's own block.
fn set_by(block: &toml::Table, path: &str) -> bool {
    let mut item = None::<&toml::Value>;
    for (key, index) in key_path(path) {
        let next = match item {
            None => block.get(key),
            Some(v) => v.get(key),
        };
        let Some(mut next) = next else {
            return false;
        };
        if let Some(i) = index {
            match next.get(i) {
                Some(x) => next = x,
                None => return false,
            }
        }
        item = Some(next);
    }
    item.is_some()
}

/// The segments of an error's key path: `a.b[2].c` → (a, None), (b, Some(2)), (c, None).
fn key_path(path: &str) -> impl Iterator<Item = (&str, Option<usize>)> {
    path.split('.').map(|seg| match seg.find('[') {
        Some(i) => (
            &seg[..i],
            seg[i + 1..].trim_end_matches(']').parse::<usize>().ok(),
        ),
        None => (seg, None),
    })
}

fn section<T: DeserializeOwned + Default>(
    table: &toml::Table,
    key: &str,
    errors: &mut Vec<ConfigError>,
) -> T {
    match table.get(key) {
        None => T::default(),
        Some(v) => serde_path_to_error::deserialize(v.clone()).unwrap_or_else(|e| {
            errors.push(located(key, e));
            T::default()
        }),
    }
}

/// The 1-based line of the deepest item of `path` (`a.b[2].c`) present in the document.
fn line_of(doc: &toml_edit::ImDocument<String>, text: &str, path: &str) -> Option<usize> {
    let mut item: &toml_edit::Item = doc.as_item();
    let mut span = None;
    for (key, index) in key_path(path) {
        let Some(next) = item.get(key) else { break };
        item = next;
        span = item.span().or(span);
        if let Some(i) = index {
            let Some(next) = item.get(i) else { break };
            item = next;
            span = item.span().or(span);
        }
    }
    let start = span?.start.min(text.len());
    Some(text[..start].matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_default() {
        let c = Config::defaults().unwrap();
        assert_eq!(c.server.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.consent.endpoint_prefix, "/__consent");
        assert_eq!(c.consent.max_age, Duration::from_secs(180 * 86_400));
        assert!(c.catalog.index_of("zendesk-chat").is_some());
    }

    #[test]
    fn every_problem_is_reported_with_path_and_line() {
        let text = r#"
[server]
listen = "nope"

[upstream]
url = "ftp://x"
connect_timeout_ms = "fast"

[consent]
max_age_days = 0
colour = "blue"

[[services]]
id = "Bad Id"
name = "x"
purpose = "spying"
"#;
        let errs = Config::parse(text).unwrap_err().0;
        let paths: Vec<_> = errs.iter().map(|e| (e.path.as_str(), e.line)).collect();
        assert!(paths.contains(&("server.listen", Some(3))), "{errs:?}");
        assert!(
            paths.iter().any(|(p, _)| p.starts_with("upstream")),
            "{errs:?}"
        );
        assert!(
            paths.iter().any(|(p, _)| p.starts_with("consent")),
            "{errs:?}"
        );
        assert!(
            paths
                .iter()
                .any(|(p, l)| p.starts_with("services[0]") && l.is_some()),
            "{errs:?}"
        );
    }

    #[test]
    fn semantic_errors_are_all_collected() {
        let text = r#"
[upstream]
url = "ftp://x"
[consent]
max_age_days = 0
key = "short"
endpoint_prefix = "nope"
"#;
        let errs = Config::parse(text).unwrap_err().0;
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        for p in [
            "upstream.url",
            "consent.max_age_days",
            "consent.key",
            "consent.endpoint_prefix",
        ] {
            assert!(paths.contains(&p), "{p} missing in {errs:?}");
        }
        assert_eq!(
            errs.iter().find(|e| e.path == "consent.key").unwrap().line,
            Some(6)
        );
    }

    #[test]
    fn ca_file_problems_are_reported() {
        let errs = Config::parse("[upstream]\nca_file = \"/no/such.pem\"\n")
            .unwrap_err()
            .0;
        assert_eq!(errs[0].path, "upstream.ca_file");
        assert_eq!(errs[0].line, Some(2));
        let p = std::env::temp_dir().join(format!("cg-not-pem-{}.pem", std::process::id()));
        std::fs::write(&p, "hello").unwrap();
        let errs = Config::parse(&format!(
            "[upstream]\nca_file = {:?}\n",
            p.display().to_string()
        ))
        .unwrap_err()
        .0;
        assert!(errs[0].message.contains("no CERTIFICATE"), "{errs:?}");
    }

    #[test]
    fn adapter_config() {
        let c = Config::parse(
            "[consent.adapter]\nkind = \"onetrust\"\n[consent.adapter.services]\ngoogle-analytics = [\"C0002\"]\n",
        )
        .unwrap();
        let a = c.consent.adapter.unwrap();
        assert_eq!(a.kind, crate::cmp::CmpKind::OneTrust);
        assert_eq!(
            a.services,
            vec![(
                c.catalog.index_of("google-analytics").unwrap(),
                vec!["C0002".to_string()]
            )]
        );
        let errs = Config::parse("[consent.adapter]\nkind = \"nope\"\n")
            .unwrap_err()
            .0;
        assert!(errs[0].path.starts_with("consent.adapter"), "{errs:?}");
        let errs = Config::parse(
            "[consent.adapter]\nkind = \"tcf\"\n[consent.adapter.services]\nno-such = [\"purpose:1\"]\nyoutube = []\n",
        )
        .unwrap_err()
        .0;
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert!(
            paths.contains(&"consent.adapter.services.no-such"),
            "{errs:?}"
        );
        assert!(
            paths.contains(&"consent.adapter.services.youtube"),
            "{errs:?}"
        );
    }

    #[test]
    fn csp_and_admin_config() {
        let c = Config::parse("[csp]\nmode = \"enforce\"\nallow = [\"https://cdn.example.org\"]\n[admin]\nlisten = \"127.0.0.1:9902\"\ntoken = \"0123456789abcdef0123\"\n").unwrap();
        assert_eq!(c.csp.mode, crate::csp::CspMode::Enforce);
        assert_eq!(c.admin.unwrap().listen.port(), 9902);
        let c = Config::parse("[admin]\ntoken = \"0123456789abcdef0123\"\n").unwrap();
        assert_eq!(
            c.admin.unwrap().listen.to_string(),
            "127.0.0.1:9901",
            "the default address"
        );
        let errs = Config::parse("[csp]\nmode = \"strict\"\nallow = [\"x; script-src *\"]\n[csp.directives]\nworker-src = []\n[admin]\nlisten = \"127.0.0.1:9901\"\n").unwrap_err().0;
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        for p in [
            "csp.mode",
            "csp.allow[0]",
            "csp.directives.worker-src",
            "admin.token",
        ] {
            assert!(paths.contains(&p), "{p} missing: {errs:?}");
        }
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let errs = Config::parse("[server]\nlisten = \n").unwrap_err().0;
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, Some(2));
    }

    #[test]
    fn sites_inherit_the_top_level_and_override_it() {
        let text = r#"
[upstream]
connect_timeout_ms = 1234
[consent]
max_age_days = 30
[csp]
mode = "enforce"

[[site]]
name = "shop"
hosts = ["Shop.Example", "*.shop.example."]
[site.upstream]
url = ["http://10.0.0.1:8080", "http://10.0.0.2:8080"]
protocol = "auto"
[site.consent]
services = ["zendesk-chat"]

[[site]]
name = "blog"
default = true
[site.csp]
mode = "off"
[[site.services]]
id = "acme-chat"
name = "Acme Chat"
purpose = "functional"
description = "Chat"
hosts = ["chat.acme.test"]
legal_basis = "Consent"
privacy_policy_url = "https://acme.test/p"
processor = { name = "Acme", address = "1 Road", country = "DE" }
transfer = { third_country = false, basis = "None needed" }
"#;
        let c = Config::parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.sites.len(), 2);
        let (shop, blog) = (&c.sites[0], &c.sites[1]);
        assert_eq!(shop.hosts, ["shop.example", "*.shop.example"]);
        assert!(!shop.default && blog.default);
        let urls: Vec<_> = shop.config.upstream.urls().map(|u| u.to_string()).collect();
        assert_eq!(urls, ["http://10.0.0.1:8080/", "http://10.0.0.2:8080/"]);
        assert_eq!(shop.config.upstream.protocol, UpstreamProtocol::Auto);
        // Inherited from the top level, overridden only where the site says so.
        assert_eq!(
            shop.config.upstream.connect_timeout,
            Duration::from_millis(1234)
        );
        assert_eq!(
            shop.config.consent.max_age,
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(shop.config.csp.mode, crate::csp::CspMode::Enforce);
        assert_eq!(blog.config.csp.mode, crate::csp::CspMode::Off);
        assert!(shop.config.consent.shown.is_some());
        assert!(blog.config.consent.shown.is_none());
        assert!(blog.config.catalog.index_of("acme-chat").is_some());
        assert!(shop.config.catalog.index_of("acme-chat").is_none());
    }

    #[test]
    fn site_problems_are_reported_under_the_site_with_lines() {
        let text = r#"
[[site]]
name = "a"
hosts = ["a.example", "http://b.example/"]
admin = { token = "x" }
[site.upstream]
url = ["http://10.0.0.1", "ftp://x"]
[site.consent]
max_age_days = 0

[[site]]
name = "a"
hosts = ["a.example"]
default = true

[[site]]
hosts = []
default = true
"#;
        let errs = Config::parse(text).unwrap_err().0;
        let find = |p: &str| {
            errs.iter()
                .find(|e| e.path == p)
                .unwrap_or_else(|| panic!("{p} missing in {errs:#?}"))
        };
        assert_eq!(find("site[0].hosts[1]").line, Some(4));
        assert!(find("site[0].admin").message.contains("process-wide"));
        assert_eq!(find("site[0].upstream.url[1]").line, Some(7));
        assert_eq!(find("site[0].consent.max_age_days").line, Some(9));
        assert!(find("site[1].name").message.contains("two sites"));
        assert!(find("site[1].hosts[0]").message.contains("site[0]"));
        assert!(find("site[2].name").message.contains("needs a name"));
        assert!(find("site[2].default")
            .message
            .contains("already the default"));
    }

    #[test]
    fn upstream_addresses_and_settings() {
        let c = Config::parse(
            "[upstream]\nurl = [\"http://127.0.0.1:9001\", \"https://10.0.0.2\"]\nfail_timeout_secs = 3\nprotocol = \"http2\"\npool_idle_timeout_secs = 5\npool_max_idle_per_host = 2\n",
        )
        .unwrap();
        assert_eq!(c.upstream.urls().count(), 2);
        assert_eq!(c.upstream.fail_timeout, Duration::from_secs(3));
        assert_eq!(c.upstream.protocol, UpstreamProtocol::Http2);
        assert_eq!(c.upstream.pool_idle_timeout, Duration::from_secs(5));
        assert_eq!(c.upstream.pool_max_idle_per_host, 2);
        let errs = Config::parse(
            "[upstream]\nurl = [\"http://a\", \"http://a\"]\nprotocol = \"spdy\"\nfail_timeout_secs = 0\n",
        )
        .unwrap_err()
        .0;
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        for p in [
            "upstream.url[1]",
            "upstream.protocol",
            "upstream.fail_timeout_secs",
        ] {
            assert!(paths.contains(&p), "{p} missing: {errs:?}");
        }
        let errs = Config::parse("[upstream]\nurl = []\n").unwrap_err().0;
        assert_eq!(errs[0].path, "upstream.url");
    }

    #[test]
    fn user_services_extend_and_override() {
        let text = r#"
[[services]]
id = "acme-chat"
name = "Acme Chat"
purpose = "functional"
description = "Chat"
hosts = ["chat.acme.test"]
legal_basis = "Consent"
privacy_policy_url = "https://acme.test/p"
processor = { name = "Acme", address = "1 Road", country = "DE" }
transfer = { third_country = false, basis = "None needed" }
"#;
        let c = Config::parse(text).unwrap();
        assert!(c.catalog.index_of("acme-chat").is_some());
        assert!(c.catalog.index_of("youtube").is_some());
    }
}
