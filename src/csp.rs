//! The Content-Security-Policy backstop. Rewriting stops what is in the HTML; a first-party bundle
//! can still inject a tracker at runtime. The browser enforces this policy on everything: the
//! site's allowlist plus the hosts of the services this visitor consented to. It is sent as an
//! additional header, so an origin's own CSP is never weakened (browsers enforce both).

use std::collections::BTreeMap;

use crate::catalog::{Catalog, HostPattern};
use crate::decision::Decision;

/// How the policy is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CspMode {
    Off,
    /// `Content-Security-Policy-Report-Only`: nothing is blocked, violations are reported.
    ReportOnly,
    /// `Content-Security-Policy`: the browser blocks what is not allowed.
    Enforce,
}

/// The directives we set: every kind of fetch a tracker uses.
pub const DIRECTIVES: &[&str] = &[
    "script-src",
    "connect-src",
    "img-src",
    "frame-src",
    "style-src",
    "font-src",
    "media-src",
    "object-src",
];

/// Each catalog service's CSP source expressions (by catalog index), derived once per
/// configuration rather than per response.
#[derive(Debug, Clone, Default)]
pub struct ServiceSources(Vec<Vec<String>>);

impl ServiceSources {
    pub fn new(catalog: &Catalog) -> Self {
        ServiceSources(
            catalog
                .services()
                .iter()
                .map(|svc| {
                    svc.hosts
                        .iter()
                        .filter_map(|h| HostPattern::parse(h).ok())
                        .flat_map(|p| sources_for(&p))
                        .collect()
                })
                .collect(),
        )
    }
}

/// Per-site CSP settings, compiled once.
#[derive(Debug, Clone)]
pub struct CspConfig {
    pub mode: CspMode,
    /// Sources allowed in every directive (the site's own CDNs and non-service third parties).
    pub allow: Vec<String>,
    /// Extra sources per directive.
    pub directives: BTreeMap<String, Vec<String>>,
    /// Where violation reports go (`<prefix>/csp-report`), or `None` for no reporting.
    pub report_path: Option<String>,
}

impl CspConfig {
    pub fn header_name(&self) -> Option<&'static str> {
        match self.mode {
            CspMode::Off => None,
            CspMode::ReportOnly => Some("content-security-policy-report-only"),
            CspMode::Enforce => Some("content-security-policy"),
        }
    }

    /// The policy for a visitor: defaults a working site needs, the allowlist, and the hosts of
    /// the services the visitor consented to.
    ///
    /// The sources are written once, in `default-src`, which every fetch directive falls back
    /// to; a directive is spelled out only when the configuration adds to it. (Written per
    /// directive, a fully consented visitor's policy was a 23 KB header on every page: more
    /// than many proxies in front of us accept, nginx's default buffer being 4-8 KB.)
    pub fn policy(&self, catalog: &Catalog, services: &ServiceSources, d: &Decision) -> String {
        let mut consented: Vec<&str> = Vec::new();
        for (i, sources) in services.0.iter().enumerate() {
            if d.allows(catalog, i) {
                consented.extend(sources.iter().map(String::as_str));
            }
        }
        consented.sort_unstable();
        consented.dedup();
        let mut out = String::new();
        let mut directive = |dir: &str, keywords: &[&str], extra: &[String]| {
            out.push_str(dir);
            for s in ["'self'"].iter().chain(keywords) {
                out.push(' ');
                out.push_str(s);
            }
            for s in self
                .allow
                .iter()
                .map(String::as_str)
                .chain(consented.iter().copied())
            {
                out.push(' ');
                out.push_str(s);
            }
            for s in extra {
                out.push(' ');
                out.push_str(s);
            }
            out.push_str("; ");
        };
        // Inline code of the site keeps working (a nonce would disable 'unsafe-inline'), and
        // data:/blob: URLs stay usable: in default-src each keyword applies where it means
        // something.
        directive("default-src", &["'unsafe-inline'", "data:", "blob:"], &[]);
        for &dir in DIRECTIVES {
            let Some(extra) = self.directives.get(dir).filter(|e| !e.is_empty()) else {
                continue;
            };
            match dir {
                "object-src" => {}
                "script-src" | "style-src" => directive(dir, &["'unsafe-inline'"], extra),
                "img-src" | "media-src" => directive(dir, &["data:", "blob:"], extra),
                "font-src" => directive(dir, &["data:"], extra),
                _ => directive(dir, &[], extra),
            }
        }
        // Plugins are never a consent-managed service: none unless configured.
        match self.directives.get("object-src").filter(|e| !e.is_empty()) {
            Some(extra) => {
                out.push_str("object-src");
                for s in extra {
                    out.push(' ');
                    out.push_str(s);
                }
                out.push_str("; ");
            }
            None => out.push_str("object-src 'none'; "),
        }
        if let Some(path) = &self.report_path {
            out.push_str("report-uri ");
            out.push_str(path);
            out.push_str("; report-to consentgate-csp");
        } else {
            out.truncate(out.trim_end_matches("; ").len());
        }
        out
    }
}

/// CSP source expressions for a catalog host pattern. CSP's `*.host` has our semantics
/// (subdomains only); a path becomes an exact path and a prefix (`/tr` and `/tr/`).
fn sources_for(p: &HostPattern) -> Vec<String> {
    let host = if p.wildcard {
        format!("*.{}", p.host)
    } else {
        p.host.clone()
    };
    match &p.path {
        None => vec![host],
        Some(path) => vec![format!("{host}{path}"), format!("{host}{path}/")],
    }
}

/// Whether a string is a plausible CSP source expression (no separators that would let a config
/// value inject a directive).
pub fn valid_source(s: &str) -> bool {
    !s.is_empty()
        && !s.contains([';', ',', ' ', '\t', '\n', '\r'])
        && s.is_ascii()
        && (!s.starts_with('\'') || (s.ends_with('\'') && s.len() > 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(mode: CspMode) -> CspConfig {
        CspConfig {
            mode,
            allow: vec!["https://cdn.example.org".into()],
            directives: BTreeMap::from([(
                "script-src".to_string(),
                vec!["'unsafe-eval'".to_string()],
            )]),
            report_path: Some("/__consent/csp-report".into()),
        }
    }

    #[test]
    fn undecided_policy_allows_no_service() {
        let c = Catalog::builtin().unwrap();
        let p = cfg(CspMode::Enforce).policy(&c, &ServiceSources::new(&c), &Decision::undecided());
        assert_eq!(
            p,
            "default-src 'self' 'unsafe-inline' data: blob: https://cdn.example.org; \
             script-src 'self' 'unsafe-inline' https://cdn.example.org 'unsafe-eval'; \
             object-src 'none'; \
             report-uri /__consent/csp-report; report-to consentgate-csp"
        );
        assert!(p.ends_with("report-uri /__consent/csp-report; report-to consentgate-csp"));
        assert!(!p.contains("zdassets") && !p.contains("facebook"));
    }

    #[test]
    fn consented_services_hosts_are_allowed() {
        let c = Catalog::builtin().unwrap();
        let mut d = Decision {
            decided: true,
            ..Decision::default()
        };
        d.granted.insert(c.index_of("zendesk-chat").unwrap());
        d.granted.insert(c.index_of("meta-pixel").unwrap());
        let p = cfg(CspMode::ReportOnly).policy(&c, &ServiceSources::new(&c), &d);
        let connect = p
            .split("; ")
            .find(|d| d.starts_with("default-src"))
            .unwrap();
        for s in [
            "static.zdassets.com",
            "*.zdassets.com",
            "connect.facebook.net",
            "www.facebook.com/tr",
            "www.facebook.com/tr/",
        ] {
            assert!(
                connect.split(' ').any(|x| x == s),
                "{s} missing in {connect}"
            );
        }
        assert!(!p.contains("youtube"));
        // Every service granted: each source once, not once per directive.
        let mut all = Decision {
            decided: true,
            ..Decision::default()
        };
        for i in 0..c.len() {
            all.granted.insert(i);
        }
        let p = cfg(CspMode::ReportOnly).policy(&c, &ServiceSources::new(&c), &all);
        assert_eq!(
            p.matches("static.zdassets.com").count(),
            2,
            "default-src and script-src"
        );
        assert!(p.len() < 8 * 1024, "{} bytes", p.len());
    }

    #[test]
    fn sources_are_validated() {
        assert!(valid_source("https://cdn.example.org"));
        assert!(valid_source("'unsafe-eval'"));
        assert!(valid_source("*.example.org"));
        assert!(!valid_source("a; script-src *"));
        assert!(!valid_source("a b"));
        assert!(!valid_source("'"));
    }
}
