//! Many sites in one process: each `[[site]]` is a `Proxy` of its own (upstreams, consent,
//! banner texts, CSP, catalog), chosen per request by Host. Exact names win over `*.` patterns,
//! the longest pattern wins among those, and a Host that matches nothing goes to the default
//! site, or gets `421 Misdirected Request` when there is none. Metrics, discovery, CSP reports
//! and the receipt write path are shared by all sites (receipts carry the host they were given
//! on, metrics a `site` label).

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{simple, KeySource, Proxy, ProxyBody};
use crate::config::{Config, Site, TlsConfig};

pub struct Sites {
    /// Each named by its `site`.
    proxies: Vec<Arc<Proxy>>,
    exact: crate::FastMap<String, usize>,
    /// `*.example.com` is stored as `example.com`.
    wildcard: crate::FastMap<String, usize>,
    default: Option<usize>,
    /// The TLS listener's settings this set was started with (process-wide, not per site).
    tls: Option<TlsConfig>,
}

/// A site's proxy with the hosts it serves.
struct Built {
    hosts: Vec<String>,
    default: bool,
    proxy: Arc<Proxy>,
}

/// The sites of a configuration: the top level alone when there is no `[[site]]`.
fn sites_of(config: Config) -> Vec<Site> {
    if !config.sites.is_empty() {
        return config.sites;
    }
    vec![Site {
        name: "default".into(),
        hosts: Vec::new(),
        default: true,
        cert: None,
        config,
    }]
}

impl Sites {
    /// Builds every site of a configuration; the key source is the weakest of them (so the
    /// binary warns when any site signs with a random key).
    pub fn new(config: Config) -> Result<(Sites, KeySource), String> {
        let tls = config.tls.clone();
        let mut weakest = KeySource::Config;
        let mut built: Vec<Built> = Vec::new();
        for site in sites_of(config) {
            let (proxy, key) = match built.first() {
                None => Proxy::new(site.config)?,
                Some(first) => {
                    let (mut p, key) =
                        Proxy::new_with_receipts(site.config, Some(first.proxy.receipts.clone()))?;
                    p.share_state(&first.proxy);
                    (p, key)
                }
            };
            weakest = match (weakest, key) {
                (KeySource::Random, _) | (_, KeySource::Random) => KeySource::Random,
                (KeySource::Environment, _) | (_, KeySource::Environment) => KeySource::Environment,
                _ => KeySource::Config,
            };
            built.push(Built {
                hosts: site.hosts,
                default: site.default,
                proxy: Arc::new(proxy.named(&site.name)),
            });
        }
        Ok((Sites::assemble(built, tls), weakest))
    }

    /// One proxy serving every Host.
    pub fn single(proxy: Arc<Proxy>) -> Sites {
        let tls = proxy.config.tls.clone();
        Sites::assemble(
            vec![Built {
                hosts: Vec::new(),
                default: true,
                proxy,
            }],
            tls,
        )
    }

    fn assemble(built: Vec<Built>, tls: Option<TlsConfig>) -> Sites {
        let mut sites = Sites {
            proxies: Vec::new(),
            exact: crate::FastMap::default(),
            wildcard: crate::FastMap::default(),
            default: None,
            tls,
        };
        for (i, b) in built.into_iter().enumerate() {
            for h in b.hosts {
                match h.strip_prefix("*.") {
                    Some(domain) => sites.wildcard.insert(domain.to_string(), i),
                    None => sites.exact.insert(h, i),
                };
            }
            if b.default {
                sites.default = Some(i);
            }
            sites.proxies.push(b.proxy);
        }
        sites
    }

    /// The sites of a new configuration, keeping the running state: each site keeps what its
    /// namesake had (a generated key), all share the first one's metrics and receipt path.
    pub fn reconfigured(&self, config: Config) -> Result<Sites, String> {
        let tls = config.tls.clone();
        let mut built: Vec<Built> = Vec::new();
        for site in sites_of(config) {
            let old = self
                .proxies
                .iter()
                .find(|p| p.site == site.name)
                .unwrap_or(self.primary());
            let next = match built.first() {
                None => old.reconfigured(site.config)?,
                Some(first) => old.reconfigured_sharing(site.config, Some(&first.proxy))?,
            };
            built.push(Built {
                hosts: site.hosts,
                default: site.default,
                proxy: Arc::new(next.named(&site.name)),
            });
        }
        Ok(Sites::assemble(built, tls))
    }

    /// The TLS listener's settings (its certificates are served from `tls::Certificates`,
    /// which a reload replaces).
    pub fn tls(&self) -> Option<&TlsConfig> {
        self.tls.as_ref()
    }

    /// The first site: holds the state all sites share (metrics, receipts, discovery).
    pub fn primary(&self) -> &Arc<Proxy> {
        &self.proxies[0]
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<Proxy>)> {
        self.proxies.iter().map(|p| (p.site.as_str(), p))
    }

    /// How many sites (at least one: a configuration without `[[site]]` is one site).
    pub fn count(&self) -> usize {
        self.proxies.len()
    }

    /// The site serving a Host value (`name`, `name:port`, `[v6]:port`).
    pub fn route(&self, host: &str) -> Option<&Arc<Proxy>> {
        if self.exact.is_empty() && self.wildcard.is_empty() {
            return self.default.map(|i| &self.proxies[i]);
        }
        let name = host_name(host);
        let hit = self.exact.get(name.as_str()).copied().or_else(|| {
            // Longest suffix first: a.b.example.com tries b.example.com, then example.com, …
            name.match_indices('.')
                .find_map(|(dot, _)| self.wildcard.get(&name[dot + 1..]).copied())
        });
        hit.or(self.default).map(|i| &self.proxies[i])
    }

    /// Serves one request on the site its Host names.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<ProxyBody> {
        let host = super::request_host(&req);
        match self.route(host) {
            Some(proxy) => proxy.handle(req, peer).await,
            None => {
                tracing::debug!(host, %peer, "no site for this Host: 421");
                let m = &self.primary().metrics;
                let method = crate::metrics::method_label(req.method().as_str());
                m.requests.inc(&["_unmatched", method, "4xx"]);
                simple(
                    StatusCode::MISDIRECTED_REQUEST,
                    "421 Misdirected Request: no site is configured for this host",
                )
            }
        }
    }
}

/// The host name of a Host value: lower case, without port and trailing dot.
fn host_name(host: &str) -> String {
    let h = host.trim();
    let name = if let Some(rest) = h.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        h.rsplit_once(':').map_or(h, |(n, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                n
            } else {
                h
            }
        })
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites(text: &str) -> Sites {
        let config = Config::parse(text).unwrap();
        Sites::new(config).unwrap().0
    }

    fn routed<'a>(s: &'a Sites, host: &str) -> Option<&'a str> {
        s.route(host).map(|p| p.site.as_str())
    }

    #[test]
    fn host_names() {
        assert_eq!(host_name("Example.COM:8080"), "example.com");
        assert_eq!(host_name("example.com."), "example.com");
        assert_eq!(host_name("[::1]:8080"), "::1");
        assert_eq!(host_name("shop.example"), "shop.example");
    }

    #[test]
    fn exact_then_longest_wildcard_then_default() {
        let s = sites(
            r#"
[receipts]
store = "off"
[[site]]
name = "shop"
hosts = ["shop.example", "*.shop.example"]
[[site]]
name = "eu"
hosts = ["*.eu.shop.example"]
[[site]]
name = "fallback"
default = true
"#,
        );
        assert_eq!(s.count(), 3);
        assert_eq!(routed(&s, "shop.example"), Some("shop"));
        assert_eq!(routed(&s, "WWW.Shop.Example:443"), Some("shop"));
        assert_eq!(routed(&s, "a.b.shop.example"), Some("shop"));
        assert_eq!(routed(&s, "de.eu.shop.example"), Some("eu"));
        assert_eq!(routed(&s, "x.de.eu.shop.example"), Some("eu"));
        // `*.eu.shop.example` does not cover eu.shop.example itself.
        assert_eq!(routed(&s, "eu.shop.example"), Some("shop"));
        assert_eq!(routed(&s, "other.example"), Some("fallback"));
        assert_eq!(routed(&s, ""), Some("fallback"));
    }

    #[test]
    fn no_default_means_no_site() {
        let s =
            sites("[receipts]\nstore = \"off\"\n[[site]]\nname = \"a\"\nhosts = [\"a.example\"]\n");
        assert_eq!(routed(&s, "a.example"), Some("a"));
        assert_eq!(routed(&s, "b.example"), None);
    }

    #[test]
    fn without_sites_the_top_level_serves_every_host() {
        let s = sites("[receipts]\nstore = \"off\"\n");
        assert_eq!(routed(&s, "anything.example"), Some("default"));
    }
}
