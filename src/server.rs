//! A reloadable server: the proxy in force can be replaced while serving. Each request takes the
//! proxy current when it starts, so requests in flight finish on the old configuration; an
//! invalid new configuration is refused with its errors and the old one stays.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

use crate::config::{parse_upstream_url, Config};
use crate::proxy::{Current, Sites};
use crate::tls::{Certificates, SniResolver};

/// Where the configuration comes from: a file (re-read on reload) and command-line overrides.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    pub path: Option<PathBuf>,
    pub listen: Option<std::net::SocketAddr>,
    pub upstream: Option<String>,
}

impl ConfigSource {
    /// Reads and validates the configuration, overrides applied.
    pub fn load(&self) -> Result<Config, String> {
        let mut config = match &self.path {
            Some(p) => Config::load(p).map_err(|e| e.to_string())?,
            None => Config::defaults().map_err(|e| e.to_string())?,
        };
        if let Some(l) = self.listen {
            config.server.listen = l;
        }
        if let Some(u) = &self.upstream {
            // Sites take their upstream from their own blocks: one flag cannot say which.
            if !config.sites.is_empty() {
                return Err(format!(
                    "--upstream {u}: the configuration has [[site]] blocks; set upstream.url in the \
                     file (top level or per site) instead"
                ));
            }
            config.upstream.url = parse_upstream_url(u)?;
        }
        Ok(config)
    }
}

pub struct Server {
    current: RwLock<Arc<Sites>>,
    source: ConfigSource,
    /// The TLS listener's certificates, reloaded with the configuration.
    certs: OnceLock<Arc<Certificates>>,
}

impl Server {
    pub fn new(sites: Arc<Sites>, source: ConfigSource) -> Arc<Server> {
        Arc::new(Server {
            current: RwLock::new(sites),
            source,
            certs: OnceLock::new(),
        })
    }

    /// The certificates the TLS listener serves: a reload re-reads them.
    pub fn serve_certificates(&self, certs: Arc<Certificates>) {
        let _ = self.certs.set(certs);
    }

    /// The sites in force.
    pub fn current(&self) -> Arc<Sites> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A resolver for the accept loops.
    pub fn resolver(self: &Arc<Self>) -> Current {
        let me = self.clone();
        Arc::new(move || me.current())
    }

    /// Re-reads and validates the configuration and the TLS certificates and swaps them in
    /// atomically. Listen addresses and the worker count apply at the next restart; everything
    /// else takes effect for new requests (`[limits]` on connections: for new connections;
    /// certificates: for new handshakes).
    pub fn reload(&self) -> Result<String, String> {
        let config = self.source.load().map_err(|e| {
            tracing::error!(errors = %e, "reload refused: invalid configuration, the old one stays");
            e
        })?;
        let old = self.current();
        let was = &old.primary().config;
        if config.server.listen != was.server.listen
            || config.server.workers != was.server.workers
            || config.tls.as_ref().map(|t| (t.listen, t.redirect_listen))
                != old.tls().map(|t| (t.listen, t.redirect_listen))
        {
            tracing::warn!(
                "server.listen, server.workers and the TLS listeners change at the next restart"
            );
        }
        // The files are read again even when their paths did not change (renewing a
        // certificate usually writes over the old files): once, by the validation above, and
        // the resolver serves what it read.
        let certs = match (self.certs.get(), &config.tls) {
            (Some(_), Some(tls)) => Some(SniResolver::new(&tls.certs).map_err(|e| {
                tracing::error!(error = %e, "reload refused: TLS certificates, the old ones stay");
                e
            })?),
            _ => None,
        };
        let next = old.reconfigured(config).map_err(|e| {
            tracing::error!(error = %e, "reload refused, the old configuration stays");
            e
        })?;
        let tls_note = match (self.certs.get(), certs) {
            (Some(c), Some(resolver)) => {
                c.replace(resolver);
                let n = next.tls().map_or(0, |t| t.certs.len());
                format!("; {n} TLS certificate(s) read again")
            }
            _ => String::new(),
        };
        let msg = match next.count() {
            1 => format!(
                "configuration reloaded: upstream {}, {} services",
                next.primary().config.upstream.url,
                next.primary().policy.catalog.len()
            ),
            n => format!(
                "configuration reloaded: {n} sites ({})",
                next.iter()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let msg = msg + &tls_note;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        tracing::info!("{msg}");
        Ok(msg)
    }
}
