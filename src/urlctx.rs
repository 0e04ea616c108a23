//! Resolving attribute URLs the way a browser does (page URL, then `<base href>`), and deciding
//! which service, if any, a URL belongs to.
//!
//! lol_html hands attribute values over raw, so they are entity-decoded here first with the
//! WHATWG attribute rules (`htmlize`): `&#47;&#47;host` is `//host`. `url` then applies the WHATWG rules: case, IDNA to punycode, `user@host`,
//! backslashes, stripped tabs and newlines, IPv4 forms.

use url::Url;

use crate::matcher::{HostMatcher, ServiceSet};

/// Third-party origins a document referenced: origin → (service, references).
pub type Origins = std::collections::BTreeMap<String, (Option<usize>, u32)>;

/// References recorded per document at most (a page listing thousands of hosts stays bounded).
const MAX_ORIGINS_PER_DOC: usize = 256;

/// The document's URL context while it streams.
#[derive(Debug, Clone)]
pub struct UrlContext {
    page: Url,
    base: Option<Url>,
    /// The page's registrable domain: hosts under it are first-party.
    site: String,
    /// Discovery: the third-party origins seen (interior mutability keeps lookups `&self`).
    seen: std::cell::RefCell<Origins>,
    /// Whether the host matcher knows the base's host (cached: asked for every relative URL;
    /// a context is used with one matcher, its document's).
    base_known: std::cell::Cell<Option<bool>>,
}

/// The registrable domain of a host (the host itself for IPs and unknown suffixes).
pub fn site_of(host: &str) -> String {
    let host = host.trim_end_matches('.');
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return host.to_string();
    }
    psl::domain_str(host).unwrap_or(host).to_ascii_lowercase()
}

/// True when `s` is certainly a relative reference that keeps the base's host (a path, query
/// or fragment), so it can be classified without parsing. Anything unusual takes the slow path.
fn is_plain_relative(s: &str) -> bool {
    let b = s.as_bytes();
    if b.iter()
        .any(|&c| c == b'\t' || c == b'\n' || c == b'\r' || c == b'\\')
    {
        return false;
    }
    match b.first() {
        None => true,
        Some(b'/') => b.get(1) != Some(&b'/'),
        Some(_) => match b
            .iter()
            .position(|&c| matches!(c, b':' | b'/' | b'?' | b'#'))
        {
            Some(i) => b[i] != b':',
            None => true,
        },
    }
}

impl UrlContext {
    pub fn new(page: Url) -> Self {
        let site = site_of(page.host_str().unwrap_or(""));
        UrlContext {
            page,
            base: None,
            site,
            seen: Default::default(),
            base_known: Default::default(),
        }
    }

    /// The third-party origins referenced so far, with the service each belongs to.
    pub fn take_origins(&self) -> Origins {
        std::mem::take(&mut *self.seen.borrow_mut())
    }

    fn observe(&self, u: &Url, service: Option<usize>) {
        let Some(host) = u.host_str() else {
            return;
        };
        if !matches!(u.scheme(), "http" | "https" | "ws" | "wss") || site_of(host) == self.site {
            return;
        }
        let mut seen = self.seen.borrow_mut();
        let origin = u.origin().ascii_serialization();
        if let Some(e) = seen.get_mut(&origin) {
            e.1 += 1;
        } else if seen.len() < MAX_ORIGINS_PER_DOC {
            seen.insert(origin, (service, 1));
        }
    }

    pub fn page(&self) -> &Url {
        &self.page
    }

    /// The first `<base href>` wins (HTML §4.2.3); later ones are ignored by browsers.
    pub fn set_base(&mut self, href: &str) {
        if self.base.is_some() {
            return;
        }
        // Raw attribute text: `https&#x3a;//host/` is a third-party base to the browser.
        if let Ok(u) = self.page.join(decode(href).trim()) {
            if matches!(u.scheme(), "http" | "https") {
                self.base = Some(u);
                self.base_known.set(None);
            }
        }
    }

    fn base_known(&self, hosts: &HostMatcher) -> bool {
        if let Some(known) = self.base_known.get() {
            return known;
        }
        let known = hosts.knows_host(self.base().host_str().unwrap_or(""));
        self.base_known.set(Some(known));
        known
    }

    pub fn base(&self) -> &Url {
        self.base.as_ref().unwrap_or(&self.page)
    }

    /// The service a single URL attribute value (raw, as in the source) belongs to.
    pub fn service_of(&self, raw: &str, hosts: &HostMatcher) -> Option<usize> {
        self.service_of_decoded(&decode(raw), hosts)
    }

    /// The service of a URL in text that has no character references (script content such
    /// as an import map: `&#46;` there is literally `&#46;`).
    pub fn service_of_text(&self, text: &str, hosts: &HostMatcher) -> Option<usize> {
        self.service_of_decoded(text, hosts)
    }

    fn service_of_decoded(&self, v: &str, hosts: &HostMatcher) -> Option<usize> {
        let v = v.trim_matches(|c: char| c <= ' ');
        if v.is_empty() {
            return None;
        }
        let base = self.base();
        if is_plain_relative(v) && !self.base_known(hosts) {
            return None;
        }
        let mut u = base.join(v).ok()?;
        if u.path().contains('%') {
            // The server decodes %XX of unreserved characters (RFC 3986 §6.2.2.2): `/%74r` is
            // `/tr` to it, so path prefixes must see the decoded form.
            let path = decode_unreserved(u.path());
            u.set_path(&path);
        }
        let service = hosts.lookup_url(&u);
        self.observe(&u, service);
        service
    }

    /// The services with any rule on the host a URL points to (for `preconnect`/`dns-prefetch`,
    /// which contact the host whatever the path).
    pub fn services_on_host_of(&self, raw: &str, hosts: &HostMatcher) -> ServiceSet {
        let v = decode(raw);
        let v = v.trim_matches(|c: char| c <= ' ');
        match self.base().join(v) {
            Ok(u) if matches!(u.scheme(), "http" | "https" | "ws" | "wss") => {
                hosts.services_on_host(u.host_str().unwrap_or(""))
            }
            _ => ServiceSet::new(),
        }
    }

    /// The first service among the candidates of a `srcset` (or `imagesrcset`) value for which
    /// `wanted` holds: the browser may pick any candidate, so a blocked one after an allowed
    /// one still counts.
    pub fn service_in_srcset(
        &self,
        srcset: &str,
        hosts: &HostMatcher,
        wanted: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        // Without a scheme, a `//`, a backslash, a character reference or a tab or newline (which
        // URL parsing strips, so `/\n/` is `//`), every candidate is a path, query or fragment
        // relative to the base: none of a service's when no service lives on the base's host.
        let b = srcset.as_bytes();
        if !self.base_known(hosts)
            && !b
                .iter()
                .any(|c| matches!(c, b':' | b'\\' | b'&' | b'\t' | b'\n' | b'\r' | b'\x0c'))
            && !b.windows(2).any(|w| w == b"//")
        {
            return None;
        }
        srcset_urls(&decode(srcset))
            .filter_map(|u| self.service_of_decoded(u, hosts))
            .find(|&s| wanted(s))
    }

    /// The first service among space-separated URLs (`<a ping>`).
    pub fn service_in_list(&self, list: &str, hosts: &HostMatcher) -> Option<usize> {
        decode(list)
            .split_ascii_whitespace()
            .find_map(|u| self.service_of_decoded(u, hosts))
    }
}

/// `path` with percent-escapes of unreserved characters (ALPHA, DIGIT, `-._~`) decoded.
fn decode_unreserved(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                let c = (h * 16 + l) as u8;
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                    out.push(c as char);
                    i += 3;
                    continue;
                }
            }
        }
        // Non-ASCII never appears in a serialized path: it is percent-encoded.
        out.push(b[i] as char);
        i += 1;
    }
    out
}

/// A raw attribute value with its character references decoded.
pub fn decode(raw: &str) -> std::borrow::Cow<'_, str> {
    if raw.contains('&') {
        htmlize::unescape_attribute(raw)
    } else {
        std::borrow::Cow::Borrowed(raw)
    }
}

/// The URLs of a `srcset` attribute (HTML §4.8.4.3.11, without the descriptors).
pub fn srcset_urls(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = s;
    std::iter::from_fn(move || {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ',');
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let mut url = &rest[..end];
        rest = &rest[end..];
        if url.ends_with(',') {
            url = url.trim_end_matches(',');
        } else {
            // Skip descriptors up to the next comma outside parentheses.
            let mut depth = 0u32;
            let mut cut = rest.len();
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth = depth.saturating_sub(1),
                    ',' if depth == 0 => {
                        cut = i + 1;
                        break;
                    }
                    _ => {}
                }
            }
            rest = &rest[cut..];
        }
        Some(url)
    })
}

/// The services of the URLs that code spells out (`https://host/path`, `//host/path`, and the
/// JSON-escaped `https:\/\/host\/path`), whatever the catalog's inline signatures say: a loader
/// that names any host of a service fetches from it. Only hosts after `//` count, so a script
/// that merely mentions a domain name in prose or data is left alone.
pub fn services_in_code(code: &str, hosts: &HostMatcher) -> ServiceSet {
    let mut set = ServiceSet::new();
    let b = code.as_bytes();
    let mut from = 0;
    while let Some(i) = code[from..].find('/').map(|i| from + i) {
        from = i + 1;
        // `//` or `\/\/`: the authority starts after the second slash.
        let start = if b.get(i + 1) == Some(&b'/') {
            i + 2
        } else if b.get(i + 1) == Some(&b'\\') && b.get(i + 2) == Some(&b'/') {
            i + 3
        } else {
            continue;
        };
        // A `//` comment is followed by a space, so this costs a byte or two.
        let rest = &code[start..];
        let auth_end = rest
            .find(|c: char| {
                matches!(
                    c,
                    '/' | '\\'
                        | '?'
                        | '#'
                        | '"'
                        | '\''
                        | '`'
                        | '('
                        | ')'
                        | ';'
                        | ','
                        | '<'
                        | '>'
                        | '{'
                        | '}'
                        | '['
                        | ']'
                ) || c.is_whitespace()
            })
            .unwrap_or(rest.len());
        let auth = &rest[..auth_end];
        let host = auth.rsplit('@').next().unwrap_or(auth);
        let host = match host.rfind(':') {
            Some(c) if host[c + 1..].bytes().all(|d| d.is_ascii_digit()) => &host[..c],
            _ => host,
        };
        if !host.contains('.')
            || !host
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-')
        {
            continue;
        }
        let host = host.to_ascii_lowercase();
        // The path up to the end of the string literal, with `\/` read as `/`.
        let tail = &rest[auth_end..];
        let path_end = tail
            .find(|c: char| {
                matches!(
                    c,
                    '?' | '#' | '"' | '\'' | '`' | ')' | ';' | ',' | '<' | '>'
                ) || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let path = tail[..path_end].replace("\\/", "/");
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        if let Some(svc) = hosts.lookup(&host, &path) {
            set.insert(svc);
        }
        from = start + auth_end;
    }
    set
}

/// The URL of a `<meta http-equiv=refresh content="5; url=...">`.
pub fn refresh_url(content: &str) -> Option<&str> {
    let s = content.trim_start();
    let s = s.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    let s = s.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ';' || c == ',');
    if s.is_empty() {
        return None;
    }
    let s = if s.len() >= 3 && s[..3].eq_ignore_ascii_case("url") {
        let t = s[3..].trim_start();
        t.strip_prefix('=').map(str::trim_start).unwrap_or(s)
    } else {
        s
    };
    let s = s.trim_matches(|c| c == '\'' || c == '"');
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn svc(ctx: &UrlContext, v: &str) -> Option<String> {
        let c = Catalog::builtin().unwrap();
        let m = HostMatcher::new(&c);
        ctx.service_of(v, &m).map(|i| c.get(i).unwrap().id.clone())
    }

    fn in_code(code: &str) -> Vec<String> {
        let c = Catalog::builtin().unwrap();
        let m = HostMatcher::new(&c);
        services_in_code(code, &m)
            .iter()
            .map(|i| c.get(i).unwrap().id.clone())
            .collect()
    }

    #[test]
    fn urls_spelled_out_in_code() {
        // A loader naming a host that is not among the service's inline signatures.
        assert_eq!(
            in_code(r#"s.src="https://cdn.zopim.io/x.js""#),
            ["zendesk-chat"]
        );
        assert_eq!(in_code("s.src='//cdn.zopim.io/x.js'"), ["zendesk-chat"]);
        // JSON-escaped slashes (wp_localize_script and friends), upper case, userinfo, port,
        // trailing dot.
        assert_eq!(
            in_code(r#"{"u":"https:\/\/CDN.ZOPIM.IO\/x.js"}"#),
            ["zendesk-chat"]
        );
        assert_eq!(
            in_code("f('https://u:p@cdn.zopim.io:443/x')"),
            ["zendesk-chat"]
        );
        assert_eq!(in_code("f('https://cdn.zopim.io./x')"), ["zendesk-chat"]);
        // Path-scoped hosts count only on their path: a share link is not the pixel.
        assert!(in_code("open('https://www.facebook.com/sharer.php?u=1')").is_empty());
        assert_eq!(
            in_code("i.src='https://www.facebook.com/tr?id=1'"),
            ["meta-pixel"]
        );
        // Comments, prose, division and a bare domain name are not URLs.
        assert!(in_code("// see cdn.zopim.io\nvar a = b / c; x = 'cdn.zopim.io';").is_empty());
        assert!(in_code("a//b; //\n//.//").is_empty());
        // Every URL counts, not just the first.
        assert_eq!(
            in_code(
                "a('https://example.org/'); b('https://cdn.zopim.io/'); c('//www.facebook.com/tr')"
            )
            .len(),
            2
        );
    }

    #[test]
    fn plain_relative_detection() {
        for s in ["a.js", "/a.js", "?x", "#f", "a/b:c", "", "./x"] {
            assert!(is_plain_relative(s), "{s}");
        }
        for s in ["//h/x", "http:x", "/\\h", "\\\\h", "java\nscript:x", "a:b"] {
            assert!(!is_plain_relative(s), "{s}");
        }
    }

    #[test]
    fn url_forms_resolve_to_services() {
        let ctx = UrlContext::new(Url::parse("https://shop.example/p/x.html").unwrap());
        let z = Some("zendesk-chat".to_string());
        assert_eq!(svc(&ctx, "https://static.zdassets.com/ekr/snippet.js"), z);
        assert_eq!(svc(&ctx, "//static.zdassets.com/x"), z);
        assert_eq!(svc(&ctx, "HTTPS://STATIC.ZDASSETS.COM/x"), z);
        assert_eq!(svc(&ctx, "https://static.zdassets.com./x"), z);
        assert_eq!(svc(&ctx, "https://user:pw@static.zdassets.com/x"), z);
        assert_eq!(svc(&ctx, "  https://static.zd\tassets.com/x  "), z);
        assert_eq!(svc(&ctx, "/\\static.zdassets.com/x"), z);
        assert_eq!(svc(&ctx, "/local.js"), None);
        assert_eq!(svc(&ctx, "local.js"), None);
        assert_eq!(svc(&ctx, "data:text/javascript,1"), None);
        assert_eq!(svc(&ctx, "https://example.com/x"), None);
    }

    #[test]
    fn idn_hosts_match_punycode_patterns() {
        let c = Catalog::builtin().unwrap();
        let mut svc_def = c.get(0).unwrap().clone();
        svc_def.id = "idn".into();
        svc_def.hosts = vec!["xn--bcher-kva.example".into()];
        let mut c = c;
        c.upsert(svc_def);
        let m = HostMatcher::new(&c);
        let ctx = UrlContext::new(Url::parse("https://shop.example/").unwrap());
        let i = c.index_of("idn");
        assert_eq!(ctx.service_of("https://BÜCHER.example/x", &m), i);
        assert_eq!(ctx.service_of("https://xn--bcher-kva.example/x", &m), i);
    }

    #[test]
    fn relative_urls_follow_base() {
        let mut ctx = UrlContext::new(Url::parse("https://shop.example/").unwrap());
        ctx.set_base("https://static.zdassets.com/ekr/");
        ctx.set_base("https://ignored.example/");
        assert_eq!(svc(&ctx, "snippet.js"), Some("zendesk-chat".into()));
        assert_eq!(svc(&ctx, "/x"), Some("zendesk-chat".into()));
        let mut ctx = UrlContext::new(Url::parse("https://shop.example/").unwrap());
        ctx.set_base("//www.facebook.com/");
        assert_eq!(svc(&ctx, "tr?id=1"), Some("meta-pixel".into()));
        assert_eq!(svc(&ctx, "profile"), None);
    }

    #[test]
    fn third_party_origins_are_observed() {
        let c = Catalog::builtin().unwrap();
        let m = HostMatcher::new(&c);
        let ctx = UrlContext::new(Url::parse("https://www.shop.example/").unwrap());
        for u in [
            "/a.js",
            "https://cdn.shop.example/x.js",
            "https://static.zdassets.com/s.js",
            "https://static.zdassets.com/t.js",
            "https://cdn.other.test/lib.js",
            "data:image/png,1",
        ] {
            ctx.service_of(u, &m);
        }
        let o = ctx.take_origins();
        assert_eq!(o.len(), 2, "{o:?}");
        assert_eq!(
            o["https://static.zdassets.com"],
            (c.index_of("zendesk-chat"), 2)
        );
        assert_eq!(o["https://cdn.other.test"], (None, 1));
        assert_eq!(site_of("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(site_of("127.0.0.1"), "127.0.0.1");
    }

    #[test]
    fn srcset_shortcut_keeps_every_form_that_leaves_the_base() {
        let c = Catalog::builtin().unwrap();
        let m = HostMatcher::new(&c);
        let z = c.index_of("zendesk-chat");
        let ctx = UrlContext::new(Url::parse("https://shop.example/").unwrap());
        assert_eq!(
            ctx.service_in_srcset("/a.png 1x, b.png 2x", &m, |_| true),
            None
        );
        for v in [
            "/a.png 1x, //static.zdassets.com/b.png 2x",
            "a.png 1x, https://static.zdassets.com/b.png 2x",
            "&#47;&#47;static.zdassets.com/b.png",
            "/\\static.zdassets.com/b.png",
        ] {
            assert_eq!(ctx.service_in_srcset(v, &m, |_| true), z, "{v}");
        }
        let mut ctx = UrlContext::new(Url::parse("https://shop.example/").unwrap());
        ctx.set_base("https://static.zdassets.com/");
        assert_eq!(
            ctx.service_in_srcset("/a.png 1x, b.png 2x", &m, |_| true),
            z
        );
    }

    #[test]
    fn srcset_parsing() {
        let v: Vec<_> = srcset_urls("a.png 1x, https://x.test/b.png 2x,c.png").collect();
        assert_eq!(v, vec!["a.png", "https://x.test/b.png", "c.png"]);
        let v: Vec<_> = srcset_urls("a.png,b.png").collect();
        assert_eq!(v, vec!["a.png,b.png"]);
        let v: Vec<_> = srcset_urls(" a.png (x, y) 2x , b.png").collect();
        assert_eq!(v, vec!["a.png", "b.png"]);
        assert_eq!(srcset_urls("").count(), 0);
    }

    #[test]
    fn refresh_parsing() {
        assert_eq!(
            refresh_url("5; url=https://x.test/"),
            Some("https://x.test/")
        );
        assert_eq!(refresh_url("0;URL='/a'"), Some("/a"));
        assert_eq!(refresh_url("0, https://x.test"), Some("https://x.test"));
        assert_eq!(refresh_url("10"), None);
    }
}
