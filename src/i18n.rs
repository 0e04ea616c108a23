//! The banner's texts: built-in languages (`config/i18n/<code>.toml`, embedded at build time),
//! per-site overrides from the config, and the choice of language by `Accept-Language`.

use std::collections::BTreeMap;

use include_dir::{include_dir, Dir};

use crate::error::ConfigError;

static BUILTIN: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/config/i18n");

/// The texts of one language: flat keys, plus country names by ISO code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Texts {
    pub strings: BTreeMap<String, String>,
    pub countries: BTreeMap<String, String>,
}

impl Texts {
    fn parse(text: &str) -> Result<Texts, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let mut t = Texts::default();
        for (k, v) in table {
            match (k.as_str(), v) {
                ("countries", toml::Value::Table(c)) => {
                    for (code, name) in c {
                        match name {
                            toml::Value::String(s) => {
                                t.countries.insert(code, s);
                            }
                            _ => return Err(format!("countries.{code} must be a string")),
                        }
                    }
                }
                (_, toml::Value::String(s)) => {
                    t.strings.insert(k, s);
                }
                _ => return Err(format!("`{k}` must be a string")),
            }
        }
        Ok(t)
    }
}

/// All languages in force for a site.
#[derive(Debug, Clone)]
pub struct Languages {
    langs: BTreeMap<String, Texts>,
    default: String,
}

/// Where a text is missing everywhere: visible, never a panic.
const MISSING: &str = "";

impl Languages {
    /// The built-in languages with `overrides` (`[texts.<code>]` from the config) applied.
    /// Errors carry config key paths.
    pub fn new(
        default: &str,
        overrides: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<Languages, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut langs = BTreeMap::new();
        for f in BUILTIN.files() {
            let Some(code) = f.path().file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            match Texts::parse(f.contents_utf8().unwrap_or("")) {
                Ok(t) => {
                    langs.insert(code.to_string(), t);
                }
                Err(e) => errors.push(ConfigError::new(format!("i18n/{code}.toml"), e)),
            }
        }
        let english_keys: Vec<String> = langs
            .get("en")
            .map(|t| t.strings.keys().cloned().collect())
            .unwrap_or_default();
        for (code, map) in overrides {
            let t = langs.entry(code.clone()).or_default();
            for (k, v) in map {
                if !english_keys.contains(k) {
                    errors.push(ConfigError::new(
                        format!("texts.{code}.{k}"),
                        "unknown text key (see config/i18n/en.toml for the keys)",
                    ));
                }
                t.strings.insert(k.clone(), v.clone());
            }
        }
        if !langs.contains_key(default) {
            errors.push(ConfigError::new(
                "consent.default_language",
                format!(
                    "`{default}` has no texts; available: {}",
                    langs.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if errors.is_empty() {
            Ok(Languages {
                langs,
                default: default.to_string(),
            })
        } else {
            Err(errors)
        }
    }

    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.langs.keys().map(String::as_str)
    }

    /// The best language for an `Accept-Language` header (RFC 9110 §12.5.4 weights, primary
    /// subtag match), else the default.
    pub fn pick(&self, accept_language: Option<&str>) -> &str {
        let mut best: Option<(f32, &str)> = None;
        for (pos, item) in accept_language.unwrap_or("").split(',').enumerate() {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next()
                .unwrap_or(1.0);
            if q <= 0.0 {
                continue;
            }
            let primary = tag.split('-').next().unwrap_or("").to_ascii_lowercase();
            let Some((code, _)) = self.langs.get_key_value(primary.as_str()) else {
                continue;
            };
            // Earlier entries win ties, as clients list preferences in order.
            let score = q - pos as f32 * 1e-4;
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, code.as_str()));
            }
        }
        best.map(|(_, c)| c).unwrap_or(&self.default)
    }

    /// A text in `lang`, falling back to the default language, then English.
    pub fn get<'a>(&'a self, lang: &str, key: &str) -> &'a str {
        [lang, self.default.as_str(), "en"]
            .iter()
            .find_map(|l| self.langs.get(*l).and_then(|t| t.strings.get(key)))
            .map(String::as_str)
            .unwrap_or(MISSING)
    }

    /// A country's name in `lang`, else its code.
    pub fn country<'a>(&'a self, lang: &str, code: &'a str) -> &'a str {
        [lang, self.default.as_str(), "en"]
            .iter()
            .find_map(|l| self.langs.get(*l).and_then(|t| t.countries.get(code)))
            .map(String::as_str)
            .unwrap_or(code)
    }

    /// Every text in force, for the policy version hash.
    pub fn fingerprint_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (code, t) in &self.langs {
            out.extend_from_slice(code.as_bytes());
            for (k, v) in t.strings.iter().chain(t.countries.iter()) {
                out.extend_from_slice(k.as_bytes());
                out.push(0);
                out.extend_from_slice(v.as_bytes());
                out.push(0);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn langs() -> Languages {
        Languages::new("en", &BTreeMap::new()).unwrap()
    }

    #[test]
    fn english_is_complete() {
        let l = langs();
        for key in [
            "banner_title",
            "accept_all",
            "reject_all",
            "save",
            "settings_button",
            "facade_text",
        ] {
            assert!(!l.get("en", key).is_empty(), "{key}");
        }
        assert_eq!(l.country("en", "US"), "United States");
        assert_eq!(l.country("en", "ZZ"), "ZZ");
    }

    #[test]
    fn accept_language_negotiation() {
        let l = langs();
        assert_eq!(l.pick(None), "en");
        assert_eq!(l.pick(Some("xx-YY, zz")), "en");
        assert_eq!(l.pick(Some("en-GB,en;q=0.9")), "en");
        if l.codes().any(|c| c == "de") {
            assert_eq!(l.pick(Some("de-CH, en;q=0.5")), "de");
            assert_eq!(l.pick(Some("en;q=0.5, de;q=0.8")), "de");
            assert_eq!(l.pick(Some("de;q=0, en")), "en");
        }
    }

    #[test]
    fn overrides_apply_and_unknown_keys_are_errors() {
        let mut o = BTreeMap::new();
        o.insert(
            "en".to_string(),
            BTreeMap::from([("accept_all".to_string(), "Yes please".to_string())]),
        );
        let l = Languages::new("en", &o).unwrap();
        assert_eq!(l.get("en", "accept_all"), "Yes please");
        o.insert(
            "en".to_string(),
            BTreeMap::from([("acept_all".to_string(), "typo".to_string())]),
        );
        let e = Languages::new("en", &o).unwrap_err();
        assert_eq!(e[0].path, "texts.en.acept_all");
        assert!(Languages::new("tlh", &BTreeMap::new()).is_err());
    }
}
