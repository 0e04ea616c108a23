//! TLS termination: certificates per host name, chosen by SNI (exact names first, then `*.`
//! wildcards, then the first certificate as the default), ALPN h2 and http/1.1, rustls'
//! safe defaults (TLS 1.2 and 1.3 only).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// One certificate as configured.
#[derive(Debug, Clone)]
pub struct CertSpec {
    pub cert_file: String,
    pub key_file: String,
    /// Host names it serves: exact, or `*.domain` for one level of subdomains.
    pub hosts: Vec<String>,
    /// The pair as read when the configuration was validated, so what is served is what was
    /// checked, and a (re)load reads the files once. `None` if they did not load (the
    /// configuration is then refused) or for a spec made in code (read when served).
    pub loaded: Option<Arc<CertifiedKey>>,
}

impl CertSpec {
    /// Reads and checks the pair; the spec keeps it (see `loaded`).
    pub fn load(
        cert_file: String,
        key_file: String,
        hosts: Vec<String>,
    ) -> (CertSpec, Result<(), String>) {
        let mut spec = CertSpec {
            cert_file,
            key_file,
            hosts,
            loaded: None,
        };
        let checked = load_certified_key(&spec).map(|k| spec.loaded = Some(Arc::new(k)));
        (spec, checked)
    }
}

/// Loads a certificate chain and its key, checking that they belong together.
pub fn load_certified_key(spec: &CertSpec) -> Result<CertifiedKey, String> {
    let certs = CertificateDer::pem_file_iter(&spec.cert_file)
        .map_err(|e| format!("`{}`: cannot read certificates: {e}", spec.cert_file))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("`{}`: invalid PEM: {e}", spec.cert_file))?;
    if certs.is_empty() {
        return Err(format!(
            "`{}` contains no CERTIFICATE block",
            spec.cert_file
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&spec.key_file).map_err(|e| {
        format!(
            "`{}`: no usable private key (PKCS#8, PKCS#1 or SEC1 PEM expected): {e}",
            spec.key_file
        )
    })?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(certs, key, &provider).map_err(|e| {
        format!(
            "`{}` and `{}` do not form a usable pair: {e}",
            spec.cert_file, spec.key_file
        )
    })
}

/// SNI → certificate.
#[derive(Debug)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    pub fn new(specs: &[CertSpec]) -> Result<SniResolver, String> {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut default = None;
        for spec in specs {
            let key = match &spec.loaded {
                Some(k) => k.clone(),
                None => Arc::new(load_certified_key(spec)?),
            };
            default.get_or_insert_with(|| key.clone());
            for h in &spec.hosts {
                let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
                match h.strip_prefix("*.") {
                    Some(domain) => wildcard.insert(domain.to_string(), key.clone()),
                    None => exact.insert(h, key.clone()),
                };
            }
        }
        Ok(SniResolver {
            exact,
            wildcard,
            default: default.ok_or("tls.certs is empty")?,
        })
    }

    pub fn pick(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = sni.map(|n| n.trim_end_matches('.').to_ascii_lowercase()) else {
            return self.default.clone();
        };
        if let Some(k) = self.exact.get(&name) {
            return k.clone();
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(k) = self.wildcard.get(parent) {
                return k.clone();
            }
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()))
    }
}

/// The certificates in force, replaceable while serving: a reload re-reads the files (a renewed
/// certificate is usually written over the old one) and handshakes after it get the new ones;
/// connections already open keep theirs.
#[derive(Debug)]
pub struct Certificates {
    current: RwLock<Arc<SniResolver>>,
}

impl Certificates {
    pub fn load(specs: &[CertSpec]) -> Result<Arc<Certificates>, String> {
        Ok(Arc::new(Certificates {
            current: RwLock::new(Arc::new(SniResolver::new(specs)?)),
        }))
    }

    /// Puts certificates loaded with `SniResolver::new` in force.
    pub fn replace(&self, next: SniResolver) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
    }

    fn resolver(&self) -> Arc<SniResolver> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The acceptor for the TLS listener: rustls safe defaults, ALPN h2 and http/1.1, the
    /// certificate picked by SNI from what is in force at each handshake.
    pub fn acceptor(self: &Arc<Self>) -> Result<tokio_rustls::TlsAcceptor, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.resolver().pick(hello.server_name()))
    }
}

/// The acceptor for a TLS listener whose certificates never change.
pub fn acceptor(specs: &[CertSpec]) -> Result<tokio_rustls::TlsAcceptor, String> {
    Certificates::load(specs)?.acceptor()
}
