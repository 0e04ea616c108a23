//! The leak oracle: what would a browser fetch, or connect to, if it loaded this HTML?
//!
//! Independent of the rewriter on purpose: the page is parsed by html5ever (the tree builder a
//! browser implements), not lol_html; URLs are resolved with `url` against the page and the
//! document's first `<base href>`; hosts are matched by this file's own reading of the catalog's
//! `hosts` strings (not `consentgate::matcher`). Only the catalog's data is shared: it is the
//! definition of which host belongs to which service.
//!
//! Two readings of a document are walked: a browser with scripting (noscript content is text,
//! which is then parsed as HTML the way a browser without JavaScript parses it) and a browser
//! without scripting (the whole document parsed with `scripting_enabled = false`). Inline code
//! (executable inline scripts, event-handler attributes, `javascript:` URLs) is scanned for
//! host names: a loader that names a blocked service's host is a leak once it runs.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;

use html5ever::tendril::TendrilSink;
use html5ever::{parse_document, parse_fragment, ParseOpts, QualName};
use markup5ever_rcdom::{Handle, NodeData, RcDom};
use url::Url;

use consentgate::catalog::{Catalog, Purpose};
use consentgate::codec::Fragment;
use consentgate::decision::Decision;
use consentgate::matcher::ServiceSet;
use consentgate::policy::{Policy, RewriteLimits};
use consentgate::rewrite::{Charset, PageRewriter, RewriteStats};

const SVG: &str = "http://www.w3.org/2000/svg";
const XLINK: &str = "http://www.w3.org/1999/xlink";
const HTML: &str = "http://www.w3.org/1999/xhtml";

/// One `hosts` entry, as this oracle reads it: `host`, `*.host` (subdomains only), optionally
/// followed by a `/path` prefix (whole segments).
#[derive(Debug, Clone)]
struct Pattern {
    host: String,
    wildcard: bool,
    path: Option<String>,
}

impl Pattern {
    fn read(s: &str) -> Option<Pattern> {
        let s = s.trim();
        let (h, path) = match s.find('/') {
            Some(i) => (&s[..i], Some(s[i..].trim_end_matches('/').to_string())),
            None => (s, None),
        };
        let (wildcard, h) = match h.strip_prefix("*.") {
            Some(r) => (true, r),
            None => (false, h),
        };
        // `url` applies IDNA; a catalog may spell hosts in Unicode.
        let host = Url::parse(&format!("http://{h}/"))
            .ok()?
            .host_str()?
            .trim_end_matches('.')
            .to_string();
        Some(Pattern {
            host,
            wildcard,
            path: path.filter(|p| !p.is_empty()),
        })
    }

    /// How specific a match is (the most specific pattern names the owner of a URL).
    fn rank(&self) -> (bool, bool, usize) {
        (self.path.is_some(), !self.wildcard, self.host.len())
    }

    fn host_matches(&self, host: &str) -> bool {
        if self.wildcard {
            host.len() > self.host.len() + 1
                && host.ends_with(&self.host)
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        }
    }

    fn path_matches(&self, path: &str) -> bool {
        match &self.path {
            None => true,
            Some(p) => {
                path == p || (path.starts_with(p.as_str()) && path[p.len()..].starts_with('/'))
            }
        }
    }
}

/// A URL the browser would request (or connect to), and whose it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fetch {
    pub service: String,
    pub url: String,
    /// Where in the document: e.g. `img src`, `noscript > img src`, `inline script`.
    pub why: String,
}

/// The oracle for one catalog.
pub struct Oracle {
    services: Vec<(String, Purpose, Vec<Pattern>)>,
    host_token: regex::Regex,
}

impl Oracle {
    pub fn new(catalog: &Catalog) -> Oracle {
        let services = catalog
            .services()
            .iter()
            .map(|s| {
                let pats = s.hosts.iter().filter_map(|h| Pattern::read(h)).collect();
                (s.id.clone(), s.purpose, pats)
            })
            .collect();
        Oracle {
            services,
            // A host name, optionally followed by a path, as it appears in code or text.
            host_token: regex::Regex::new(
                r"(?i)(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9]\.?(?::[0-9]+)?(?:/[^\s'`<>()\\]*)?",
            )
            .expect("static regex"),
        }
    }

    pub fn builtin() -> Oracle {
        Oracle::new(&Catalog::builtin().expect("catalog"))
    }

    /// The services that are not necessary and not in `granted`.
    pub fn blocked_ids(&self, granted: &[&str]) -> BTreeSet<String> {
        self.services
            .iter()
            .filter(|(id, p, _)| *p != Purpose::Necessary && !granted.contains(&id.as_str()))
            .map(|(id, _, _)| id.clone())
            .collect()
    }

    /// The service a fetched URL belongs to (the most specific pattern wins). `host_only`: the
    /// browser contacts the host whatever the path (preconnect, dns-prefetch), so any pattern on
    /// that host counts.
    pub fn service_of(&self, u: &Url, host_only: bool) -> Option<&str> {
        self.services_of(u, host_only).into_iter().next()
    }

    /// The owner of a fetched URL; for `host_only` every service with a pattern on the host.
    pub fn services_of(&self, u: &Url, host_only: bool) -> Vec<&str> {
        if !matches!(u.scheme(), "http" | "https" | "ws" | "wss") {
            return vec![];
        }
        let Some(host) = u.host_str() else {
            return vec![];
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host_only {
            return self
                .services
                .iter()
                .filter(|(_, _, pats)| pats.iter().any(|p| p.host_matches(&host)))
                .map(|(id, _, _)| id.as_str())
                .collect();
        }
        // The server sees the path with %XX of unreserved characters decoded.
        let path = percent_decode(u.path(), true);
        let mut best: Option<(&str, (bool, bool, usize))> = None;
        for (id, _, pats) in &self.services {
            for p in pats {
                if p.host_matches(&host) && p.path_matches(&path) {
                    let r = p.rank();
                    if best.is_none_or(|(_, b)| r > b) {
                        best = Some((id.as_str(), r));
                    }
                }
            }
        }
        best.map(|(id, _)| id).into_iter().collect()
    }

    /// Every fetch of the document (`page` is its URL) that reaches a service in `blocked`.
    pub fn leaks(&self, html: &[u8], page: &Url, blocked: &BTreeSet<String>) -> Vec<Fetch> {
        let mut all = self.fetches(html, page);
        all.retain(|f| blocked.contains(&f.service));
        all
    }

    /// Every fetch of the document that reaches some catalog service.
    pub fn fetches(&self, html: &[u8], page: &Url) -> Vec<Fetch> {
        let text = String::from_utf8_lossy(html);
        let mut out = BTreeSet::new();
        for scripting in [true, false] {
            let dom = parse(&text, scripting, None);
            let base = document_base(&dom.document, page);
            let mut w = Walk {
                oracle: self,
                base,
                scripting,
                out: &mut out,
                depth: 0,
            };
            w.node(&dom.document, "");
        }
        out.into_iter().collect()
    }

    /// Host names in code (an inline loader), as fetches.
    fn scan_code(&self, code: &str, why: &str, out: &mut BTreeSet<Fetch>) {
        for m in self.host_token.find_iter(code) {
            let Ok(u) = Url::parse(&format!("https://{}", m.as_str())) else {
                continue;
            };
            if let Some(s) = self.service_of(&u, false) {
                out.insert(Fetch {
                    service: s.to_string(),
                    url: m.as_str().to_string(),
                    why: format!("{why} (code names the host)"),
                });
            }
        }
    }
}

fn percent_decode(p: &str, unreserved_only: bool) -> String {
    let b = p.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            let v = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            // Only unreserved characters are equivalent to their escapes (RFC 3986 §6.2.2.2).
            if let Some(v) =
                v.filter(|c| !unreserved_only || c.is_ascii_alphanumeric() || b"-._~".contains(c))
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn opts(scripting: bool, srcdoc: bool) -> ParseOpts {
    let mut o = ParseOpts::default();
    o.tree_builder.scripting_enabled = scripting;
    o.tree_builder.iframe_srcdoc = srcdoc;
    o
}

fn parse(text: &str, scripting: bool, srcdoc: Option<()>) -> RcDom {
    parse_document(RcDom::default(), opts(scripting, srcdoc.is_some())).one(text)
}

/// Noscript text as a browser without JavaScript parses it: a fragment in a `<body>`.
fn parse_noscript(text: &str) -> RcDom {
    let ctx = QualName::new(None, HTML.into(), "body".into());
    parse_fragment(RcDom::default(), opts(false, false), ctx, vec![], false).one(text)
}

/// An attribute as (namespace URI, local name, value).
type Attr = (String, String, String);

fn element(h: &Handle) -> Option<(&QualName, Vec<Attr>)> {
    match &h.data {
        NodeData::Element { name, attrs, .. } => Some((
            name,
            attrs
                .borrow()
                .iter()
                .map(|a| {
                    (
                        a.name.ns.to_string(),
                        a.name.local.to_string(),
                        a.value.to_string(),
                    )
                })
                .collect(),
        )),
        _ => None,
    }
}

fn attr<'a>(attrs: &'a [(String, String, String)], local: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(ns, l, _)| ns.is_empty() && l == local)
        .map(|(_, _, v)| v.as_str())
}

fn xlink_href(attrs: &[(String, String, String)]) -> Option<&str> {
    attrs
        .iter()
        .find(|(ns, l, _)| (ns == XLINK && l == "href") || (ns.is_empty() && l == "xlink:href"))
        .map(|(_, _, v)| v.as_str())
}

fn text_of(h: &Handle) -> String {
    let mut s = String::new();
    for c in h.children.borrow().iter() {
        if let NodeData::Text { contents } = &c.data {
            s.push_str(&contents.borrow());
        }
    }
    s
}

/// The document base URL: the first `<base href>` in tree order, resolved against `fallback`
/// (HTML §2.4.1 "frozen base URL"); a base that does not parse falls back.
fn document_base(doc: &Handle, fallback: &Url) -> Url {
    fn find(h: &Handle) -> Option<String> {
        if let Some((name, attrs)) = element(h) {
            if &*name.ns == HTML && &*name.local == "base" {
                if let Some(v) = attr(&attrs, "href") {
                    return Some(v.to_string());
                }
            }
        }
        h.children.borrow().iter().find_map(find)
    }
    find(doc)
        .and_then(|href| fallback.join(href.trim()).ok())
        .filter(|u| !matches!(u.scheme(), "data" | "javascript"))
        .unwrap_or_else(|| fallback.clone())
}

/// HTML §4.12.1: does a script element with this type/language run as JavaScript? Parameters
/// after `;` are accepted (stricter than the spec's essence match: a browser that ran it would
/// leak, and the oracle must over-approximate).
fn executable(ty: Option<&str>, language: Option<&str>) -> bool {
    let ty = match (ty, language) {
        (Some(t), _) => t.to_string(),
        (None, Some(l)) if !l.is_empty() => format!("text/{l}"),
        _ => return true,
    };
    let t = ty.trim_matches(|c: char| c.is_ascii_whitespace());
    if t.is_empty() {
        return true;
    }
    let essence = t
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "module"
        || [
            "application/ecmascript",
            "application/javascript",
            "application/x-ecmascript",
            "application/x-javascript",
            "text/ecmascript",
            "text/javascript",
            "text/javascript1.0",
            "text/javascript1.1",
            "text/javascript1.2",
            "text/javascript1.3",
            "text/javascript1.4",
            "text/javascript1.5",
            "text/jscript",
            "text/livescript",
            "text/x-ecmascript",
            "text/x-javascript",
        ]
        .contains(&essence.as_str())
}

/// `<link rel>` keywords that make the browser fetch or connect.
const FETCHING_RELS: &[&str] = &[
    "stylesheet",
    "preload",
    "modulepreload",
    "prefetch",
    "prerender",
    "preconnect",
    "dns-prefetch",
    "icon",
    "apple-touch-icon",
    "apple-touch-icon-precomposed",
    "mask-icon",
    "manifest",
    "next",
    "import",
    "fluid-icon",
];

/// The URL of `<meta http-equiv=refresh content>` (HTML §4.2.5.3, leniently).
fn refresh_target(content: &str) -> Option<String> {
    let s = content.trim_start();
    let s = s.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    let s = s.trim_start();
    let s = s.strip_prefix([';', ',']).unwrap_or(s).trim_start();
    let s = if s.len() >= 3 && s[..3].eq_ignore_ascii_case("url") {
        let r = s[3..].trim_start();
        match r.strip_prefix('=') {
            Some(r) => r.trim_start(),
            None => s,
        }
    } else {
        s
    };
    let s = match s.chars().next() {
        Some(q @ ('"' | '\'')) => s[1..].split(q).next().unwrap_or(""),
        _ => s,
    };
    (!s.trim().is_empty()).then(|| s.trim().to_string())
}

/// srcset candidates' URLs (HTML §4.8.4.3.10, without descriptors).
fn srcset_urls(s: &str) -> Vec<String> {
    let mut urls = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ',');
        if rest.is_empty() {
            return urls;
        }
        let end = rest
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let u = &rest[..end];
        rest = &rest[end..];
        if let Some(u) = u.strip_suffix(',') {
            urls.push(u.trim_end_matches(',').to_string());
            continue;
        }
        urls.push(u.to_string());
        // Descriptors run to the next comma outside parentheses.
        let mut depth = 0i32;
        let mut cut = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth <= 0 => {
                    cut = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &rest[cut..];
    }
}

struct Walk<'a> {
    oracle: &'a Oracle,
    base: Url,
    scripting: bool,
    out: &'a mut BTreeSet<Fetch>,
    depth: usize,
}

impl Walk<'_> {
    fn url(&mut self, raw: &str, why: String, host_only: bool) {
        let Ok(u) = self
            .base
            .join(raw.trim_matches(|c: char| c.is_ascii_whitespace()))
        else {
            return;
        };
        if u.scheme() == "javascript" {
            let code = url_decode_lossy(u.as_str());
            self.oracle.scan_code(&code, &why, self.out);
            return;
        }
        for s in self.oracle.services_of(&u, host_only) {
            self.out.insert(Fetch {
                service: s.to_string(),
                url: u.to_string(),
                why: why.clone(),
            });
        }
    }

    fn node(&mut self, h: &Handle, path: &str) {
        let mut here = path.to_string();
        if let Some((name, attrs)) = element(h) {
            let local = name.local.to_string();
            here = if path.is_empty() {
                local.clone()
            } else {
                format!("{path} > {local}")
            };
            self.element(h, &name.ns, &local, &attrs, &here);
            if let NodeData::Element {
                template_contents, ..
            } = &h.data
            {
                // Template content is not rendered, but script can clone it: over-approximate.
                if let Some(t) = template_contents.borrow().as_ref() {
                    self.node(t, &here);
                }
            }
        }
        for c in h.children.borrow().iter() {
            self.node(c, &here);
        }
    }

    fn element(
        &mut self,
        h: &Handle,
        ns: &str,
        local: &str,
        attrs: &[(String, String, String)],
        here: &str,
    ) {
        let a = |n: &str| attr(attrs, n).map(str::to_string);
        // Event handlers run code in any element of any namespace.
        if self.scripting {
            for (ans, l, v) in attrs {
                if ans.is_empty() && l.len() > 2 && l.starts_with("on") {
                    self.oracle.scan_code(v, &format!("{here} {l}"), self.out);
                }
            }
        }
        // Legacy presentational attribute (body, table, td, th): still fetched.
        if let Some(v) = a("background") {
            self.url(&v, format!("{here} background"), false);
        }
        if ns == SVG {
            let href = a("href").or_else(|| xlink_href(attrs).map(str::to_string));
            match local {
                "script" if executable(a("type").as_deref(), None) => {
                    if let Some(v) = href {
                        self.url(&v, format!("{here} href"), false);
                    } else if self.scripting {
                        self.oracle
                            .scan_code(&text_of(h), &format!("{here} (inline)"), self.out);
                    }
                }
                "image" | "feImage" => {
                    if let Some(v) = href {
                        self.url(&v, format!("{here} href"), false);
                    }
                }
                "use" => {
                    // `#id` refers into this document; anything else loads an external file.
                    if let Some(v) = href.filter(|v| !v.trim().starts_with('#')) {
                        self.url(&v, format!("{here} href"), false);
                    }
                }
                _ => {}
            }
            return;
        }
        if ns != HTML {
            return;
        }
        let one = |w: &mut Self, attr: &str| {
            if let Some(v) = a(attr) {
                w.url(&v, format!("{here} {attr}"), false);
            }
        };
        let set = |w: &mut Self, attr: &str| {
            if let Some(v) = a(attr) {
                for u in srcset_urls(&v) {
                    w.url(&u, format!("{here} {attr}"), false);
                }
            }
        };
        match local {
            "script" => {
                let ty = a("type");
                let is_map = ty
                    .as_deref()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("importmap"));
                if is_map {
                    if self.scripting {
                        self.import_map(&text_of(h), here);
                    }
                } else if executable(ty.as_deref(), a("language").as_deref()) {
                    if a("src").is_some() {
                        one(self, "src");
                    } else if self.scripting {
                        self.oracle
                            .scan_code(&text_of(h), &format!("{here} (inline)"), self.out);
                    }
                }
            }
            "iframe" => {
                one(self, "src");
                if let Some(doc) = a("srcdoc") {
                    self.srcdoc(&doc, here);
                }
            }
            "frame" | "embed" | "audio" | "track" | "input" => one(self, "src"),
            "img" => {
                one(self, "src");
                set(self, "srcset");
            }
            "source" => {
                one(self, "src");
                set(self, "srcset");
            }
            "video" => {
                one(self, "src");
                one(self, "poster");
            }
            "object" => one(self, "data"),
            "link" => {
                let rel = a("rel").unwrap_or_default().to_ascii_lowercase();
                let rels: Vec<&str> = rel.split_ascii_whitespace().collect();
                if rels.iter().any(|r| FETCHING_RELS.contains(r)) {
                    let host_only = rels
                        .iter()
                        .any(|r| *r == "preconnect" || *r == "dns-prefetch");
                    if let Some(v) = a("href") {
                        self.url(&v, format!("{here} href rel={rel}"), host_only);
                    }
                    set(self, "imagesrcset");
                }
            }
            "a" | "area" => {
                if let Some(p) = a("ping") {
                    for u in p.split_ascii_whitespace() {
                        self.url(u, format!("{here} ping"), false);
                    }
                }
                if let Some(v) = a("href") {
                    if v.trim_start()
                        .to_ascii_lowercase()
                        .starts_with("javascript:")
                    {
                        self.url(&v, format!("{here} href"), false);
                    }
                }
            }
            "meta" => {
                let refresh =
                    a("http-equiv").is_some_and(|v| v.trim().eq_ignore_ascii_case("refresh"));
                if refresh {
                    if let Some(t) = a("content").as_deref().and_then(refresh_target) {
                        self.url(&t, format!("{here} refresh"), false);
                    }
                }
            }
            "noscript" if self.scripting => {
                // Scripting on: the content is text. A browser without JavaScript parses it.
                let frag = parse_noscript(&text_of(h));
                let mut w = Walk {
                    oracle: self.oracle,
                    base: self.base.clone(),
                    scripting: false,
                    out: self.out,
                    depth: self.depth,
                };
                w.node(&frag.document, here);
            }
            _ => {}
        }
    }

    fn srcdoc(&mut self, doc: &str, here: &str) {
        if self.depth > 8 {
            return;
        }
        // about:srcdoc documents resolve against their parent's base URL.
        for scripting in [true, false] {
            let dom = parse(doc, scripting, Some(()));
            let base = document_base(&dom.document, &self.base);
            let mut w = Walk {
                oracle: self.oracle,
                base,
                scripting: scripting && self.scripting,
                out: self.out,
                depth: self.depth + 1,
            };
            w.node(&dom.document, &format!("{here} srcdoc"));
        }
    }

    fn import_map(&mut self, json: &str, here: &str) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
            return; // browsers ignore an invalid map
        };
        let mut targets = Vec::new();
        if let Some(m) = v.get("imports").and_then(|m| m.as_object()) {
            targets.extend(m.values().filter_map(|t| t.as_str().map(str::to_string)));
        }
        if let Some(s) = v.get("scopes").and_then(|s| s.as_object()) {
            for m in s.values().filter_map(|m| m.as_object()) {
                targets.extend(m.values().filter_map(|t| t.as_str().map(str::to_string)));
            }
        }
        for t in targets {
            self.url(&t, format!("{here} importmap"), false);
        }
    }
}

/// A `javascript:` URL runs its percent-decoded text.
fn url_decode_lossy(s: &str) -> String {
    percent_decode(s, false)
}

// ---------------------------------------------------------------------------------------------
// Driving the rewriter the way the proxy does, for the tests.

pub const PAGE: &str = "https://shop.example/dir/page.html";

pub fn page() -> Url {
    Url::parse(PAGE).expect("page url")
}

pub fn policy_with(limits: RewriteLimits) -> Arc<Policy> {
    Arc::new(Policy::new(Catalog::builtin().expect("catalog"), limits).expect("policy"))
}

pub fn policy() -> Arc<Policy> {
    policy_with(RewriteLimits::default())
}

/// The rewriter's blocked set for a visitor who granted `granted`.
pub fn blocked_set(p: &Policy, granted: &[&str]) -> ServiceSet {
    let mut d = Decision::undecided();
    d.decided = !granted.is_empty();
    for g in granted {
        d.granted
            .insert(p.catalog.index_of(g).unwrap_or_else(|| panic!("no {g}")));
    }
    p.blocked(&d)
}

pub const INJECT: &str = "<div data-oracle-injection></div>";

/// Rewrites `html` fed in chunks of `chunk` bytes (0: all at once), with a marker injection.
pub fn rewrite(
    p: &Arc<Policy>,
    blocked: &ServiceSet,
    html: &[u8],
    chunk: usize,
) -> Result<Vec<u8>, String> {
    let mut rw = PageRewriter::with_injection(
        p.clone(),
        blocked.clone(),
        page(),
        Charset::default(),
        Some(Box::new(|_: &RewriteStats| Arc::new(Fragment::new(INJECT)))),
    );
    // Fed in chunks, the injection is spliced in where the rewriter marks it (as the proxy
    // does for gzip); in one piece, lol_html writes it.
    let splice = chunk != 0;
    if splice {
        rw = rw.splice_injection();
    }
    let mut out = Vec::with_capacity(html.len() + 256);
    let size = if chunk == 0 { html.len().max(1) } else { chunk };
    let insert = |rw: &mut PageRewriter, out: &mut Vec<u8>| {
        if let Some((at, f)) = rw.take_splice() {
            assert!(splice, "a splice mark without splice_injection");
            out.splice(at..at, f.html().bytes());
        }
    };
    for c in html.chunks(size) {
        rw.write(c, &mut out).map_err(|e| e.to_string())?;
        insert(&mut rw, &mut out);
    }
    rw.finish(&mut out).map_err(|e| e.to_string())?;
    insert(&mut rw, &mut out);
    Ok(out)
}

/// The output without the marker injection (exactly one is expected).
pub fn strip_injection(out: &[u8]) -> Vec<u8> {
    let s = String::from_utf8_lossy(out);
    assert_eq!(
        s.matches(INJECT).count(),
        1,
        "one injection expected in {s}"
    );
    s.replacen(INJECT, "", 1).into_bytes()
}

/// The chunk sizes to try for a document of `len` bytes: every size from 1 to `len` for small
/// documents; for larger ones 16 consecutive small sizes, then a spread (powers of two and their
/// neighbours, primes) and the whole length, so the cost stays near-linear.
pub fn chunk_sizes(len: usize, every_up_to: usize) -> Vec<usize> {
    let len = len.max(1);
    if len <= every_up_to {
        return (1..=len).collect();
    }
    // Tiny chunks of a huge page cost a write call per byte: start where a chunking needs at
    // most ~20k calls.
    let lo = (len / 20_000).max(1);
    let mut s: BTreeSet<usize> = (lo..lo + 16).filter(|&c| c <= len).collect();
    let mut p = 64;
    while p < len {
        s.extend([p - 1, p, p + 1]);
        p *= 2;
    }
    for q in [97, 251, 509, 1021, 4093, 8191, 65521] {
        if q < len {
            s.insert(q);
        }
    }
    s.extend([len - 1, len]);
    s.into_iter().filter(|&c| c >= 1 && c <= len).collect()
}
