//! A reloadable server: the proxy in force can be replaced while serving. Each request takes the
//! proxy current when it starts, so requests in flight finish on the old configuration; an
//! invalid new configuration is refused with its errors and the old one stays.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::config::{parse_upstream_url, Config};
use crate::proxy::{Current, Proxy};

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
            config.upstream.url = parse_upstream_url(u)?;
        }
        Ok(config)
    }
}

pub struct Server {
    current: RwLock<Arc<Proxy>>,
    source: ConfigSource,
}

impl Server {
    pub fn new(proxy: Arc<Proxy>, source: ConfigSource) -> Arc<Server> {
        Arc::new(Server {
            current: RwLock::new(proxy),
            source,
        })
    }

    /// The proxy in force.
    pub fn current(&self) -> Arc<Proxy> {
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

    /// Re-reads and validates the configuration and swaps it in atomically. Listen address
    /// and limits apply at the next restart; everything else takes effect for new requests.
    pub fn reload(&self) -> Result<String, String> {
        let config = self.source.load().map_err(|e| {
            tracing::error!(errors = %e, "reload refused: invalid configuration, the old one stays");
            e
        })?;
        let old = self.current();
        if config.server.listen != old.config.server.listen || config.limits != old.config.limits {
            tracing::warn!("server.listen and [limits] changes take effect at the next restart");
        }
        let next = old.reconfigured(config).map_err(|e| {
            tracing::error!(error = %e, "reload refused, the old configuration stays");
            e
        })?;
        let msg = format!(
            "configuration reloaded: upstream {}, {} services",
            next.config.upstream.url,
            next.policy.catalog.len()
        );
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        tracing::info!("{msg}");
        Ok(msg)
    }
}
