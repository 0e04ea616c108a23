//! Matchers compiled once per catalog: URL → service, inline script text → services.

use crate::FastMap;

use aho_corasick::AhoCorasick;
use regex::Regex;

use crate::catalog::{Catalog, HostPattern};

/// A set of services by catalog index: a small bitset, cheap to copy and compare.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ServiceSet(Vec<u64>);

impl ServiceSet {
    pub fn new() -> Self {
        ServiceSet(Vec::new())
    }

    pub fn one(i: usize) -> Self {
        let mut s = ServiceSet::new();
        s.insert(i);
        s
    }

    pub fn insert(&mut self, i: usize) {
        let (w, b) = (i / 64, i % 64);
        if self.0.len() <= w {
            self.0.resize(w + 1, 0);
        }
        self.0[w] |= 1 << b;
    }

    pub fn remove(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w &= !(1 << (i % 64));
        }
    }

    pub fn contains(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(wi, &w)| {
            (0..64)
                .filter(move |b| w & (1 << b) != 0)
                .map(move |b| wi * 64 + b)
        })
    }

    /// Adds every service of `other`.
    pub fn insert_all(&mut self, other: &ServiceSet) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (w, o) in self.0.iter_mut().zip(&other.0) {
            *w |= o;
        }
    }

    /// Keeps only the services that are also in `other`.
    pub fn retain_in(&mut self, other: &ServiceSet) {
        for (i, w) in self.0.iter_mut().enumerate() {
            *w &= other.0.get(i).copied().unwrap_or(0);
        }
    }

    /// The raw words, for hashing into a state fingerprint.
    pub fn words(&self) -> impl Iterator<Item = u64> + '_ {
        let used = self.0.iter().rposition(|w| *w != 0).map_or(0, |p| p + 1);
        self.0[..used].iter().copied()
    }
}

#[derive(Debug, Clone)]
struct HostRule {
    service: usize,
    path: Option<String>,
}

/// Host (+ optional path prefix) → service. Lookups walk the host's parent domains, so cost is
/// a few hash probes per URL whatever the catalog size.
#[derive(Debug, Default)]
pub struct HostMatcher {
    exact: FastMap<String, Vec<HostRule>>,
    wildcard: FastMap<String, Vec<HostRule>>,
}

fn path_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/'),
        None => false,
    }
}

fn pick(rules: &[HostRule], path: &str) -> Option<usize> {
    // A path-scoped rule is more specific than a host-wide one on the same host.
    rules
        .iter()
        .filter(|r| r.path.as_deref().is_some_and(|p| path_matches(p, path)))
        .map(|r| r.service)
        .next()
        .or_else(|| rules.iter().find(|r| r.path.is_none()).map(|r| r.service))
}

impl HostMatcher {
    pub fn new(catalog: &Catalog) -> Self {
        let mut m = HostMatcher::default();
        for (i, svc) in catalog.services().iter().enumerate() {
            for h in &svc.hosts {
                // Validated at config load; an invalid entry here matches nothing.
                let Ok(p) = HostPattern::parse(h) else {
                    continue;
                };
                let map = if p.wildcard {
                    &mut m.wildcard
                } else {
                    &mut m.exact
                };
                map.entry(p.host).or_default().push(HostRule {
                    service: i,
                    path: p.path,
                });
            }
        }
        m
    }

    /// `host` must be lower-case ASCII (as `url` produces); a trailing dot is ignored.
    pub fn lookup(&self, host: &str, path: &str) -> Option<usize> {
        let host = host.strip_suffix('.').unwrap_or(host);
        if let Some(s) = self.exact.get(host).and_then(|r| pick(r, path)) {
            return Some(s);
        }
        let mut rest = host;
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            if let Some(s) = self.wildcard.get(rest).and_then(|r| pick(r, path)) {
                return Some(s);
            }
        }
        None
    }

    /// Every service with a rule on this host, whatever the rule's path: what a connection to the
    /// host alone (preconnect, dns-prefetch) reveals to.
    pub fn services_on_host(&self, host: &str) -> ServiceSet {
        let host = host.strip_suffix('.').unwrap_or(host);
        let mut set = ServiceSet::new();
        let mut add = |rules: Option<&Vec<HostRule>>| {
            for r in rules.into_iter().flatten() {
                set.insert(r.service);
            }
        };
        add(self.exact.get(host));
        let mut rest = host;
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            add(self.wildcard.get(rest));
        }
        set
    }

    /// Whether any rule (whatever its path) names this host: a relative URL under a base on an
    /// unknown host cannot belong to a service.
    pub fn knows_host(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host);
        if self.exact.contains_key(host) {
            return true;
        }
        let mut rest = host;
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            if self.wildcard.contains_key(rest) {
                return true;
            }
        }
        false
    }

    pub fn lookup_url(&self, url: &url::Url) -> Option<usize> {
        match url.scheme() {
            "http" | "https" | "ws" | "wss" => {}
            _ => return None,
        }
        let host = url.host_str()?;
        self.lookup(host, url.path())
    }
}

/// Cookie name → the service that sets it (catalog names and `prefix*` patterns).
#[derive(Debug, Default)]
pub struct CookieMatcher {
    exact: FastMap<String, usize>,
    prefixes: Vec<(String, usize)>,
}

impl CookieMatcher {
    pub fn new(catalog: &Catalog) -> Self {
        let mut m = CookieMatcher::default();
        for (i, svc) in catalog.services().iter().enumerate() {
            for c in &svc.cookies {
                match c.strip_suffix('*') {
                    Some(prefix) => m.prefixes.push((prefix.to_string(), i)),
                    None => {
                        m.exact.entry(c.clone()).or_insert(i);
                    }
                }
            }
        }
        // Longest prefix first: the most specific pattern names the service.
        m.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        m
    }

    pub fn service_of(&self, name: &str) -> Option<usize> {
        self.exact.get(name).copied().or_else(|| {
            self.prefixes
                .iter()
                .find(|(p, _)| name.starts_with(p.as_str()))
                .map(|(_, i)| *i)
        })
    }
}

/// First-party request path → the service whose beacon it is.
#[derive(Debug, Default)]
pub struct BeaconMatcher {
    paths: Vec<(String, usize)>,
}

impl BeaconMatcher {
    pub fn new(catalog: &Catalog) -> Self {
        let mut paths: Vec<(String, usize)> = catalog
            .services()
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                s.beacon_paths
                    .iter()
                    .map(move |p| (p.trim_end_matches('/').to_string(), i))
            })
            .collect();
        paths.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        BeaconMatcher { paths }
    }

    pub fn service_of(&self, path: &str) -> Option<usize> {
        self.paths
            .iter()
            .find(|(p, _)| path_matches(p, path))
            .map(|(_, i)| *i)
    }
}

/// Inline script text → the services whose loader it contains.
#[derive(Debug)]
pub struct ScriptMatcher {
    literals: Option<AhoCorasick>,
    /// The same literals, leftmost-first: only to ask whether any occurs, which lets
    /// aho-corasick use its SIMD prefilter (the overlapping search cannot).
    any_literal: Option<AhoCorasick>,
    literal_service: Vec<usize>,
    /// One regex per pattern rather than a `RegexSet`: each gets its own literal prefilter
    /// (`zE(` in `(^|[^.\w$])zE\(`), so a script without the literal costs a `memchr` pass, where
    /// a set runs its automaton over every byte of every inline script.
    patterns: Vec<Regex>,
    pattern_service: Vec<usize>,
}

impl ScriptMatcher {
    pub fn new(catalog: &Catalog) -> Self {
        let mut lits = Vec::new();
        let mut literal_service = Vec::new();
        let mut pats = Vec::new();
        let mut pattern_service = Vec::new();
        for (i, svc) in catalog.services().iter().enumerate() {
            for s in &svc.inline_signatures {
                lits.push(s.as_str());
                literal_service.push(i);
            }
            for p in &svc.inline_patterns {
                pats.push(p.as_str());
                pattern_service.push(i);
            }
        }
        // Both were validated with the config; on failure the matcher would miss loaders, so
        // log loudly rather than silently (config validation makes this unreachable).
        let literals = if lits.is_empty() {
            None
        } else {
            AhoCorasick::new(&lits)
                .map_err(|e| tracing::error!("inline signatures failed to compile: {e}"))
                .ok()
        };
        let any_literal = literals.as_ref().and_then(|_| {
            AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostFirst)
                .build(&lits)
                .ok()
        });
        let mut patterns = Vec::with_capacity(pats.len());
        let mut kept_service = Vec::with_capacity(pats.len());
        for (p, svc) in pats.iter().zip(pattern_service) {
            match Regex::new(p) {
                Ok(r) => {
                    patterns.push(r);
                    kept_service.push(svc);
                }
                Err(e) => tracing::error!("inline pattern `{p}` failed to compile: {e}"),
            }
        }
        let pattern_service = kept_service;
        ScriptMatcher {
            literals,
            any_literal,
            literal_service,
            patterns,
            pattern_service,
        }
    }

    /// Every service whose signature occurs in `text`.
    pub fn services_in(&self, text: &str) -> ServiceSet {
        let mut set = ServiceSet::new();
        // Most inline scripts name no service: one prefiltered scan says so before the slower
        // overlapping search that collects every service.
        let any = self.any_literal.as_ref().is_none_or(|ac| ac.is_match(text));
        if let Some(ac) = self.literals.as_ref().filter(|_| any) {
            for m in ac.find_overlapping_iter(text) {
                set.insert(self.literal_service[m.pattern().as_usize()]);
            }
        }
        for (re, &svc) in self.patterns.iter().zip(&self.pattern_service) {
            if !set.contains(svc) && re.is_match(text) {
                set.insert(svc);
            }
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn cat() -> Catalog {
        Catalog::builtin().unwrap()
    }

    #[test]
    fn set_union_and_intersection_across_lengths() {
        let mut a = ServiceSet::one(3);
        a.insert_all(&ServiceSet::one(70));
        assert_eq!(a.iter().collect::<Vec<_>>(), [3, 70]);
        let mut short = a.clone();
        short.retain_in(&ServiceSet::one(3));
        assert_eq!(short.iter().collect::<Vec<_>>(), [3]);
        let mut long = ServiceSet::one(130);
        long.insert(70);
        long.retain_in(&a);
        assert_eq!(long.iter().collect::<Vec<_>>(), [70]);
    }

    #[test]
    fn service_set_ops() {
        let mut s = ServiceSet::new();
        assert!(s.is_empty());
        s.insert(3);
        s.insert(70);
        assert!(s.contains(3) && s.contains(70) && !s.contains(4));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![3, 70]);
        s.remove(70);
        assert_eq!(s.words().count(), 1);
        let mut t = ServiceSet::new();
        t.insert(3);
        assert_eq!(s.words().collect::<Vec<_>>(), t.words().collect::<Vec<_>>());
    }

    #[test]
    fn path_prefix_is_segment_aware() {
        assert!(path_matches("/tr", "/tr"));
        assert!(path_matches("/tr", "/tr/"));
        assert!(!path_matches("/tr", "/tracks"));
        assert!(path_matches("/maps", "/maps/embed"));
        assert!(!path_matches("/maps", "/"));
    }

    #[test]
    fn hosts_match_exact_wildcard_and_path() {
        let c = cat();
        let m = HostMatcher::new(&c);
        let id = |h: &str, p: &str| m.lookup(h, p).map(|i| c.get(i).unwrap().id.clone());
        assert_eq!(id("static.zdassets.com", "/"), Some("zendesk-chat".into()));
        assert_eq!(id("a.b.zdassets.com", "/"), Some("zendesk-chat".into()));
        assert_eq!(id("static.zdassets.com.", "/"), Some("zendesk-chat".into()));
        assert_eq!(
            id("connect.facebook.net", "/en_US/fbevents.js"),
            Some("meta-pixel".into())
        );
        assert_eq!(id("www.facebook.com", "/tr"), Some("meta-pixel".into()));
        assert_eq!(id("www.facebook.com", "/someprofile"), None);
        assert_eq!(id("example.com", "/"), None);
        assert_eq!(id("notzdassets.com", "/"), None);
    }

    #[test]
    fn cookies_and_beacons() {
        let c = cat();
        let m = CookieMatcher::new(&c);
        let id = |n: &str| m.service_of(n).map(|i| c.get(i).unwrap().id.clone());
        assert_eq!(id("_ga"), Some("google-analytics".into()));
        assert_eq!(id("_ga_ABC123"), Some("google-analytics".into()));
        assert_eq!(id("_fbp"), Some("meta-pixel".into()));
        assert_eq!(id("__zlcmid"), Some("zendesk-chat".into()));
        assert_eq!(id("session"), None);
        assert_eq!(id("_gax"), None);
        let b = BeaconMatcher::new(&c);
        let bid = |p: &str| b.service_of(p).map(|i| c.get(i).unwrap().id.clone());
        assert_eq!(bid("/g/collect"), Some("google-analytics".into()));
        assert_eq!(bid("/g/collectors"), None);
        assert_eq!(bid("/shop"), None);
    }

    #[test]
    fn scripts_match_signatures() {
        let c = cat();
        let m = ScriptMatcher::new(&c);
        let ids = |t: &str| {
            m.services_in(t)
                .iter()
                .map(|i| c.get(i).unwrap().id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids("window.$zopim||(function(d,s){})"),
            vec!["zendesk-chat"]
        );
        assert_eq!(ids("var x = 1; console.log(x)"), Vec::<String>::new());
        assert!(ids("window.fcWidget.init({token:'x'})").contains(&"freshchat".to_string()));
    }
}
