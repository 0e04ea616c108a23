//! The service catalog: which third parties exist, where they live on the network, how their
//! inline loaders look, which cookies they set, and the facts a privacy notice needs.
//!
//! The built-in catalog is `config/services/*.toml`, embedded at build time. Users add services
//! or override built-in ones (same `id`) in their config.

use std::fmt;

use include_dir::{include_dir, Dir};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

static BUILTIN: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/config/services");

/// Why a service is used; the banner groups services by purpose. `Necessary` services are never
/// blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    Necessary,
    Functional,
    Statistics,
    Marketing,
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Purpose::Necessary => "necessary",
            Purpose::Functional => "functional",
            Purpose::Statistics => "statistics",
            Purpose::Marketing => "marketing",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Processor {
    pub name: String,
    pub address: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    pub third_country: bool,
    pub basis: String,
}

/// A service's texts in one language (the top-level fields are the English ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceText {
    pub description: String,
    #[serde(default)]
    pub data_categories: Vec<String>,
}

/// What the chat facade needs: a blocked chat widget is replaced by a small launcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facade {
    /// JavaScript run once the widget's scripts have loaded, to open it (e.g.
    /// `zE('messenger', 'open')`). Empty: the widget shows its own launcher.
    #[serde(default)]
    pub open: String,
}

/// One third-party service, as written in a catalog file or a `[[services]]` config block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub purpose: Purpose,
    pub description: String,
    /// `host`, `*.domain` (subdomains only), each optionally followed by a `/path` prefix.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Case-sensitive substrings that identify an inline loader script.
    #[serde(default)]
    pub inline_signatures: Vec<String>,
    /// Regexes (Rust `regex` syntax) for loader shapes a literal cannot express.
    #[serde(default)]
    pub inline_patterns: Vec<String>,
    /// Cookie names; a trailing `*` is a prefix glob.
    #[serde(default)]
    pub cookies: Vec<String>,
    /// First-party request paths that are this service's beacons (a server-side tag manager,
    /// an analytics proxy): answered 204 and never forwarded without consent. Segment-aware
    /// prefixes, like host paths.
    #[serde(default)]
    pub beacon_paths: Vec<String>,
    #[serde(default)]
    pub data_categories: Vec<String>,
    pub legal_basis: String,
    pub privacy_policy_url: String,
    pub processor: Processor,
    pub transfer: Transfer,
    /// Localized texts by language code (`de`, `fr`, ...); English is the top level.
    #[serde(default)]
    pub i18n: std::collections::BTreeMap<String, ServiceText>,
    /// Present for chat widgets: shown as a launcher while blocked.
    #[serde(default)]
    pub facade: Option<Facade>,
}

impl Service {
    /// The description and data categories in `lang`, falling back to English.
    pub fn text(&self, lang: &str) -> (&str, &[String]) {
        match self.i18n.get(lang) {
            Some(t) => (
                &t.description,
                if t.data_categories.is_empty() {
                    &self.data_categories
                } else {
                    &t.data_categories
                },
            ),
            None => (&self.description, &self.data_categories),
        }
    }

    /// Structural checks beyond what serde enforces; every problem is reported with the key
    /// path prefix given.
    pub fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        let mut err = |key: &str, msg: String| {
            errors.push(ConfigError::new(format!("{path}.{key}"), msg));
        };
        if self.id.is_empty()
            || !self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            err(
                "id",
                format!(
                    "`{}` must be non-empty and use only a-z, 0-9 and -",
                    self.id
                ),
            );
        }
        for (i, h) in self.hosts.iter().enumerate() {
            if let Err(msg) = HostPattern::parse(h) {
                err(&format!("hosts[{i}]"), msg);
            }
        }
        for (i, s) in self.inline_signatures.iter().enumerate() {
            if s.len() < 3 {
                err(
                    &format!("inline_signatures[{i}]"),
                    format!("`{s}` is too short to identify a service (3 characters at least)"),
                );
            }
        }
        for (i, p) in self.inline_patterns.iter().enumerate() {
            if let Err(e) = regex::Regex::new(p) {
                err(
                    &format!("inline_patterns[{i}]"),
                    format!("invalid regex: {e}"),
                );
            }
        }
        for (i, c) in self.cookies.iter().enumerate() {
            let name = c.strip_suffix('*').unwrap_or(c);
            if name.is_empty() || name.contains(['*', ';', '=', ' ', ',']) {
                err(
                    &format!("cookies[{i}]"),
                    format!("`{c}` is not a cookie name (a trailing * is the only glob)"),
                );
            }
        }
        for (i, p) in self.beacon_paths.iter().enumerate() {
            if !p.starts_with('/') || p.len() < 2 || p.contains(['?', '#', ' ']) {
                err(
                    &format!("beacon_paths[{i}]"),
                    format!("`{p}` must be a path like /g/collect"),
                );
            }
        }
        if self.processor.country.len() != 2
            || !self
                .processor
                .country
                .bytes()
                .all(|b| b.is_ascii_uppercase())
        {
            err(
                "processor.country",
                format!(
                    "`{}` is not an ISO 3166-1 alpha-2 code",
                    self.processor.country
                ),
            );
        }
    }
}

/// A parsed `hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower-case ASCII (punycode) host, without the `*.` prefix.
    pub host: String,
    /// `true` for `*.host`: any subdomain of `host`, not `host` itself.
    pub wildcard: bool,
    /// Path prefix (segment-aware), if the host is shared with unrelated content.
    pub path: Option<String>,
}

impl HostPattern {
    pub fn parse(s: &str) -> Result<HostPattern, String> {
        let s = s.trim();
        let (host_part, path) = match s.find('/') {
            Some(i) => (&s[..i], Some(&s[i..])),
            None => (s, None),
        };
        let (wildcard, bare) = match host_part.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host_part),
        };
        if bare.is_empty() || bare.contains(['*', ':', '@', ' ', '?', '#']) {
            return Err(format!(
                "`{s}` is not a host pattern (use `host`, `*.domain`, optionally with `/path`)"
            ));
        }
        // IDNA: the catalog may be written with Unicode hosts; the matcher compares punycode.
        let ascii = url::Host::parse(bare)
            .map_err(|e| format!("`{s}`: invalid host: {e}"))?
            .to_string();
        let host = ascii.trim_end_matches('.').to_string();
        let path = match path {
            Some(p) if p.len() > 1 => Some(p.trim_end_matches('/').to_string()),
            Some(_) => None,
            None => None,
        };
        Ok(HostPattern {
            host,
            wildcard,
            path,
        })
    }
}

/// The services in force for a configuration: built-ins, then the user's additions and
/// overrides, in a stable order (the index of a service is its position here).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    services: Vec<Service>,
    by_id: crate::FastMap<String, usize>,
}

impl Catalog {
    /// The built-in catalog. Its files are part of the binary, so a broken file is a build
    /// defect: the tests load it, and this reports rather than panics.
    pub fn builtin() -> Result<Catalog, Vec<ConfigError>> {
        let mut files: Vec<_> = BUILTIN
            .files()
            .filter(|f| f.path().extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort_by_key(|f| f.path().to_path_buf());
        let mut errors = Vec::new();
        let mut catalog = Catalog::default();
        for f in files {
            let name = f.path().display().to_string();
            let text = f.contents_utf8().unwrap_or("");
            match toml::from_str::<Service>(text) {
                Ok(svc) => {
                    let stem = f
                        .path()
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or_default();
                    if svc.id != stem {
                        errors.push(ConfigError::new(
                            format!("services/{name}.id"),
                            format!("id `{}` must equal the file name `{stem}`", svc.id),
                        ));
                    }
                    svc.validate(&format!("services/{name}"), &mut errors);
                    catalog.upsert(svc);
                }
                Err(e) => errors.push(ConfigError::new(
                    format!("services/{name}"),
                    e.message().to_string(),
                )),
            }
        }
        if errors.is_empty() {
            Ok(catalog)
        } else {
            Err(errors)
        }
    }

    /// Adds a service, or replaces the one with the same id in place.
    pub fn upsert(&mut self, svc: Service) {
        match self.by_id.get(&svc.id) {
            Some(&i) => self.services[i] = svc,
            None => {
                self.by_id.insert(svc.id.clone(), self.services.len());
                self.services.push(svc);
            }
        }
    }

    pub fn services(&self) -> &[Service] {
        &self.services
    }

    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    pub fn get(&self, idx: usize) -> Option<&Service> {
        self.services.get(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_parse() {
        let p = HostPattern::parse("*.ZDassets.com").unwrap();
        assert_eq!(
            p,
            HostPattern {
                host: "zdassets.com".into(),
                wildcard: true,
                path: None
            }
        );
        let p = HostPattern::parse("www.facebook.com/tr/").unwrap();
        assert_eq!(p.path.as_deref(), Some("/tr"));
        let p = HostPattern::parse("bücher.example").unwrap();
        assert_eq!(p.host, "xn--bcher-kva.example");
        assert!(HostPattern::parse("*.").is_err());
        assert!(HostPattern::parse("a*b.com").is_err());
        assert!(HostPattern::parse("user@host.com").is_err());
    }

    #[test]
    fn builtin_catalog_loads_and_has_required_ids() {
        let c = Catalog::builtin().unwrap_or_else(|e| panic!("{e:?}"));
        for id in [
            "zendesk-chat",
            "freshchat",
            "intercom",
            "drift",
            "tawkto",
            "livechat",
            "crisp",
            "hubspot",
            "tidio",
            "olark",
            "smartsupp",
            "jivochat",
            "google-analytics",
            "google-tag-manager",
            "meta-pixel",
            "hotjar",
            "linkedin-insight",
            "microsoft-clarity",
            "youtube",
            "google-maps",
        ] {
            let i = c.index_of(id).unwrap_or_else(|| panic!("missing {id}"));
            let s = c.get(i).unwrap();
            assert!(!s.hosts.is_empty(), "{id} has no hosts");
            assert_ne!(s.purpose, Purpose::Necessary, "{id}");
        }
    }

    #[test]
    fn upsert_overrides_in_place() {
        let mut c = Catalog::builtin().unwrap();
        let i = c.index_of("youtube").unwrap();
        let mut s = c.get(i).unwrap().clone();
        s.name = "YT".into();
        c.upsert(s);
        assert_eq!(c.index_of("youtube"), Some(i));
        assert_eq!(c.get(i).unwrap().name, "YT");
    }
}
