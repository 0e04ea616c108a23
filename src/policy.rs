//! `Policy`: everything compiled once per configuration that the rewriter needs: the catalog,
//! its matchers, CSS selectors and limits. Per request only the set of blocked services varies.

use crate::catalog::{Catalog, Purpose};
use crate::decision::Decision;
use crate::matcher::{BeaconMatcher, CookieMatcher, HostMatcher, ScriptMatcher, ServiceSet};

/// Bounds on per-document work, stated up front (as lol_html does for its own buffers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewriteLimits {
    /// Inline `<script>` text buffered to classify it; over this the script is neutralized
    /// unclassified (fail closed) and streamed on.
    pub inline_script_max_bytes: usize,
    /// lol_html's own buffer limit per document; over it the response is aborted.
    pub max_memory_bytes: usize,
}

impl Default for RewriteLimits {
    fn default() -> Self {
        RewriteLimits {
            inline_script_max_bytes: 1024 * 1024,
            max_memory_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Compiled CSS selectors (parsing them per request would dominate small pages). Few on purpose:
/// lol_html compiles its selector program for every document and runs it on every start tag, so
/// elements are told apart by name in Rust (`element_rule`) in one handler on `*`.
pub(crate) struct Selectors {
    pub body: lol_html::Selector,
    pub script: lol_html::Selector,
    pub noscript: lol_html::Selector,
    /// Every element: its rule by tag name, and the attributes any element may carry (`ping`,
    /// `background`, event handlers), both read off the start tag's bytes (see `rawtag`).
    pub any: lol_html::Selector,
}

/// How an attribute holds URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlKind {
    One,
    Srcset,
}

pub(crate) type UrlAttr = (&'static str, UrlKind);

const SRC: &[UrlAttr] = &[("src", UrlKind::One)];
const IMG: &[UrlAttr] = &[("src", UrlKind::One), ("srcset", UrlKind::Srcset)];
const VIDEO: &[UrlAttr] = &[("src", UrlKind::One), ("poster", UrlKind::One)];
const OBJECT: &[UrlAttr] = &[("data", UrlKind::One)];
const SVG_HREF: &[UrlAttr] = &[("href", UrlKind::One), ("xlink:href", UrlKind::One)];
/// `<image>`: SVG's fetches via href; in HTML the tree builder turns `<image src>` into
/// `<img src>`, so src and srcset count too.
const IMAGE: &[UrlAttr] = &[
    ("href", UrlKind::One),
    ("xlink:href", UrlKind::One),
    ("src", UrlKind::One),
    ("srcset", UrlKind::Srcset),
];
/// Legacy presentational attribute on any element; still fetched by browsers.
pub(crate) const BACKGROUND: &[UrlAttr] = &[("background", UrlKind::One)];

/// What the rewriter checks on an element, chosen by its tag name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ElementRule {
    /// `<base href>`: the URL context, or inert when on a refused service's host.
    Base,
    /// `<link>`: removed when it points at a refused service.
    Link,
    /// `<meta http-equiv=refresh>` to a refused service: removed.
    Meta,
    /// `<iframe>`: `src` made inert, `srcdoc` rewritten as a document of its own.
    Iframe,
    /// URL attributes moved aside in place.
    Inert(&'static [UrlAttr]),
}

/// The rule for an element by its tag name, in any ASCII case (`None`: nothing to check beyond
/// the attributes any element may carry). Names are lower-cased into a buffer on the stack, so
/// every name below must fit in it.
pub(crate) fn element_rule(name: &[u8]) -> Option<ElementRule> {
    let mut buf = [0u8; 16];
    let lower = buf.get_mut(..name.len())?;
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    Some(match &*lower {
        b"base" => ElementRule::Base,
        b"link" => ElementRule::Link,
        b"meta" => ElementRule::Meta,
        b"iframe" => ElementRule::Iframe,
        b"frame" | b"input" | b"audio" | b"track" | b"embed" => ElementRule::Inert(SRC),
        b"img" | b"source" => ElementRule::Inert(IMG),
        b"video" => ElementRule::Inert(VIDEO),
        b"object" => ElementRule::Inert(OBJECT),
        // SVG: <image>, <use>, <feImage> fetch via href / xlink:href.
        b"image" => ElementRule::Inert(IMAGE),
        b"use" | b"feimage" => ElementRule::Inert(SVG_HREF),
        _ => return None,
    })
}

/// `<iframe src>`.
pub(crate) const IFRAME: &[UrlAttr] = SRC;

const BODY: &str = "body";
const SCRIPT: &str = "script";
const NOSCRIPT: &str = "noscript";
/// Attribute-only selectors (`[ping]`, `[onclick]`, `[background]`) and one selector per element
/// name made lol_html parse every element's attributes and run a longer program per tag; one
/// handler on every element that reads the raw tag costs less.
const ANY: &str = "*";

/// One selector the top-level rewriter registers handlers on, and whether it also has a text
/// handler. Exported so benchmarks can put no-op handlers on exactly the same selectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandlerSelector {
    pub css: &'static str,
    pub text: bool,
}

impl Selectors {
    fn new() -> Result<Self, String> {
        let p = |s: &str| {
            s.parse::<lol_html::Selector>()
                .map_err(|e| format!("selector `{s}`: {e}"))
        };
        Ok(Selectors {
            body: p(BODY)?,
            script: p(SCRIPT)?,
            noscript: p(NOSCRIPT)?,
            any: p(ANY)?,
        })
    }
}

/// What the rewriter needs, compiled once per configuration.
pub struct Policy {
    pub catalog: Catalog,
    pub hosts: HostMatcher,
    pub scripts: ScriptMatcher,
    pub cookies: CookieMatcher,
    pub beacons: BeaconMatcher,
    pub limits: RewriteLimits,
    pub(crate) selectors: Selectors,
    /// Services inline code can be recognised by (inline signatures, patterns, or hosts a
    /// loader would spell out): only when one of them is blocked do inline scripts need
    /// buffering.
    pub(crate) known_in_code: ServiceSet,
    necessary: ServiceSet,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("services", &self.catalog.len())
            .field("limits", &self.limits)
            .finish()
    }
}

impl Policy {
    pub fn new(catalog: Catalog, limits: RewriteLimits) -> Result<Policy, String> {
        let mut known_in_code = ServiceSet::new();
        let mut necessary = ServiceSet::new();
        for (i, s) in catalog.services().iter().enumerate() {
            if !s.inline_signatures.is_empty()
                || !s.inline_patterns.is_empty()
                || !s.hosts.is_empty()
            {
                known_in_code.insert(i);
            }
            if s.purpose == Purpose::Necessary {
                necessary.insert(i);
            }
        }
        Ok(Policy {
            hosts: HostMatcher::new(&catalog),
            scripts: ScriptMatcher::new(&catalog),
            cookies: CookieMatcher::new(&catalog),
            beacons: BeaconMatcher::new(&catalog),
            selectors: Selectors::new()?,
            catalog,
            limits,
            known_in_code,
            necessary,
        })
    }

    /// The services to neutralize for this decision: every non-necessary service not granted.
    pub fn blocked(&self, d: &Decision) -> ServiceSet {
        let mut set = ServiceSet::new();
        for i in 0..self.catalog.len() {
            if !self.necessary.contains(i) && !d.granted.contains(i) {
                set.insert(i);
            }
        }
        set
    }

    /// The selectors a top-level document rewriter registers element (and text) handlers on,
    /// in order, when `blocked_any` services are blocked and a banner or control is injected.
    pub fn handler_selectors(&self, blocked_any: bool, inject: bool) -> Vec<HandlerSelector> {
        let h = |css, text| HandlerSelector { css, text };
        let mut v = Vec::new();
        if blocked_any {
            v.extend([h(SCRIPT, true), h(ANY, false), h(NOSCRIPT, true)]);
        }
        if inject {
            v.push(h(BODY, false));
        }
        v
    }

    /// Space-separated ids of the services in `set`.
    pub fn ids(&self, set: &ServiceSet) -> String {
        let mut out = String::new();
        for i in set.iter() {
            if let Some(s) = self.catalog.get(i) {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(&s.id);
            }
        }
        out
    }
}
