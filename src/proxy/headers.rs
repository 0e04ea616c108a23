//! Header jobs of a reverse proxy, one function each: hop-by-hop removal, forwarding headers,
//! content-coding negotiation, and the cache-safety rules for consent-dependent HTML.

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The items of a list-valued header (RFC 9110 §5.6.1) across all its field lines: split at
/// commas outside quoted strings (an ETag or a `no-cache="a, b"` may hold one), trimmed, empty
/// items dropped. Lines that are not visible ASCII are skipped, as a value that cannot be read
/// cannot be acted on.
pub(crate) fn list_items(
    h: &HeaderMap,
    name: impl http::header::AsHeaderName,
) -> impl Iterator<Item = &str> {
    h.get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| ListItems { rest: Some(line) })
}

/// The items of one field line (see `list_items`).
struct ListItems<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for ListItems<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            let line = self.rest?;
            let (mut quoted, mut escaped) = (false, false);
            let comma = line.bytes().position(|b| {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' if quoted => escaped = true,
                    b'"' => quoted = !quoted,
                    b',' if !quoted => return true,
                    _ => {}
                }
                false
            });
            let item = match comma {
                Some(i) => {
                    self.rest = Some(&line[i + 1..]);
                    &line[..i]
                }
                None => {
                    self.rest = None;
                    line
                }
            };
            let item = item.trim();
            if !item.is_empty() {
                return Some(item);
            }
        }
    }
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1): `Connection` and every header it names, plus
/// the fixed list.
// Names as constants: a `&str` name is parsed and validated on every use.
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const SEC_FETCH_DEST: HeaderName = HeaderName::from_static("sec-fetch-dest");

pub fn remove_hop_by_hop(h: &mut HeaderMap) {
    // One pass over the names first: most messages carry none of these, and removing each
    // name of the list would hash it.
    if !h.keys().any(|n| HOP_BY_HOP.contains(n)) {
        return;
    }
    let named: Vec<HeaderName> = list_items(h, header::CONNECTION)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
}

const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

/// The protocol a request asks to switch to (`Upgrade` with `Connection: upgrade`), if any.
pub fn upgrade_of(h: &HeaderMap) -> Option<HeaderValue> {
    let asks = list_items(h, header::CONNECTION).any(|t| t.eq_ignore_ascii_case("upgrade"));
    if asks {
        h.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// Sets `X-Forwarded-For/-Proto/-Host` and `Forwarded` (RFC 7239). Incoming values are kept and
/// extended only when the peer is trusted; otherwise they are replaced, so a client cannot forge
/// its address for the origin.
pub fn set_forwarding(h: &mut HeaderMap, peer: SocketAddr, host: &str, proto: &str, trust: bool) {
    use std::fmt::Write as _;
    // Each value is written once into its own buffer and handed over without a copy.
    let mut xff = String::new();
    if let Some(p) = prior(h, &X_FORWARDED_FOR, trust) {
        xff.reserve(p.len() + 48);
        xff.push_str(p);
        xff.push_str(", ");
    }
    let ip_at = xff.len();
    let _ = write!(xff, "{}", peer.ip());
    let ip = &xff[ip_at..];
    let mut fwd = String::new();
    if let Some(p) = prior(h, &header::FORWARDED, trust) {
        fwd.reserve(p.len() + 80 + host.len());
        fwd.push_str(p);
        fwd.push_str(", ");
    }
    if peer.is_ipv6() {
        let _ = write!(fwd, "for=\"[{ip}]\";proto={proto}");
    } else {
        let _ = write!(fwd, "for={ip};proto={proto}");
    }
    if !host.is_empty() && host.bytes().all(|b| b.is_ascii_graphic() && b != b'"') {
        fwd.push_str(";host=\"");
        fwd.push_str(host);
        fwd.push('"');
    }
    let set = |h: &mut HeaderMap, name: HeaderName, v: String| {
        if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(v)) {
            h.insert(name, v);
        }
    };
    set(h, X_FORWARDED_FOR, xff);
    if !(trust && h.contains_key(&X_FORWARDED_PROTO)) {
        if let Ok(v) = HeaderValue::from_str(proto) {
            h.insert(X_FORWARDED_PROTO, v);
        }
    }
    if !(trust && h.contains_key(&X_FORWARDED_HOST)) {
        if let Ok(v) = HeaderValue::from_str(host) {
            h.insert(X_FORWARDED_HOST, v);
        }
    }
    set(h, header::FORWARDED, fwd);
}

/// A forwarding header's value from a trusted front proxy, if it has one.
fn prior<'h>(h: &'h HeaderMap, name: &HeaderName, trust: bool) -> Option<&'h str> {
    h.get(name)
        .filter(|_| trust)
        .and_then(|v| v.to_str().ok())
        .filter(|p| !p.trim().is_empty())
}

/// Keeps only the content codings the rewriter can undo, so an HTML body never arrives in one
/// it cannot read. Codings with `q=0` are left out.
pub fn filter_accept_encoding(h: &mut HeaderMap) {
    let kept = |t: &&str| {
        let mut parts = t.split(';');
        let name = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        !refused
            && ["gzip", "x-gzip", "deflate", "br", "zstd", "identity"]
                .iter()
                .any(|c| name.eq_ignore_ascii_case(c))
    };
    let tokens = || list_items(h, header::ACCEPT_ENCODING);
    // What browsers send ("gzip, deflate, br, zstd") is kept as it came, without a copy.
    let mut lines = h.get_all(header::ACCEPT_ENCODING).iter();
    let one_line = matches!((lines.next(), lines.next()), (Some(v), None) if v.to_str().is_ok());
    if one_line && tokens().all(|t| kept(&t)) {
        return;
    }
    let kept = tokens().filter(kept).collect::<Vec<&str>>().join(", ");
    if kept.is_empty() {
        h.remove(header::ACCEPT_ENCODING);
    } else if let Ok(v) = HeaderValue::from_str(&kept) {
        h.insert(header::ACCEPT_ENCODING, v);
    }
}

/// Removes from the `Cookie` header(s) sent upstream every cookie `refused` says belongs to a
/// service without consent, so server-side code cannot read them. Others pass as they were.
/// Returns how many were removed.
pub fn filter_request_cookies(h: &mut HeaderMap, refused: impl Fn(&str) -> bool) -> usize {
    let values: Vec<String> = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    if values.is_empty() {
        return 0;
    }
    let mut removed = 0;
    let mut kept: Vec<&str> = Vec::new();
    for v in &values {
        for pair in v.split(';') {
            let name = pair.split('=').next().unwrap_or("").trim();
            if name.is_empty() {
                continue;
            }
            if refused(name) {
                removed += 1;
            } else {
                kept.push(pair.trim());
            }
        }
    }
    if removed == 0 {
        return 0;
    }
    h.remove(header::COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
            h.insert(header::COOKIE, v);
        }
    }
    removed
}

/// Drops every `Set-Cookie` whose cookie `refused` says belongs to a service without consent.
/// Returns the names dropped.
pub fn filter_set_cookies(h: &mut HeaderMap, refused: impl Fn(&str) -> bool) -> Vec<String> {
    let all: Vec<HeaderValue> = h.get_all(header::SET_COOKIE).iter().cloned().collect();
    let mut dropped = Vec::new();
    let kept: Vec<HeaderValue> = all
        .into_iter()
        .filter(|v| {
            let name = v
                .to_str()
                .ok()
                .and_then(|s| s.split(['=', ';']).next())
                .unwrap_or("")
                .trim();
            let refuse = !name.is_empty() && refused(name);
            if refuse {
                dropped.push(name.to_string());
            }
            !refuse
        })
        .collect();
    if !dropped.is_empty() {
        h.remove(header::SET_COOKIE);
        for v in kept {
            h.append(header::SET_COOKIE, v);
        }
    }
    dropped
}

/// Whether a `Content-Type` is a document the rewriter handles. A missing type counts: browsers
/// sniff such bodies and may render them as HTML, so they are rewritten (fail closed).
pub fn is_html(content_type: Option<&HeaderValue>) -> bool {
    let Some(ct) = content_type else {
        return true;
    };
    let Ok(ct) = ct.to_str() else {
        return true;
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence.is_empty()
        || essence.eq_ignore_ascii_case("text/html")
        || essence.eq_ignore_ascii_case("application/xhtml+xml")
}

const TAG_MARK: &str = "-cg.";

/// Makes an origin ETag specific to the consent state: `W/"<opaque>-cg.<state>"`. Weak, because
/// the bytes differ from the origin's and a re-encoded body is not byte-stable.
pub fn tag_etag(v: &HeaderValue, state: &str) -> Option<HeaderValue> {
    let s = v.to_str().ok()?.trim();
    let opaque = s.strip_prefix("W/").unwrap_or(s);
    let inner = opaque.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('"') {
        return None;
    }
    HeaderValue::from_str(&format!("W/\"{inner}{TAG_MARK}{state}\"")).ok()
}

/// Rewrites `If-None-Match` for the origin: our state-tagged ETags of *this* state become the
/// origin's ETag again; tags of another consent state are dropped (the client must get a fresh
/// page); foreign tags pass. Returns whether any tag was ours, i.e. this is a page revalidation.
/// `state` is asked only when a tag is ours.
pub fn translate_if_none_match<'s>(h: &mut HeaderMap, state: impl FnOnce() -> &'s str) -> bool {
    if !h.contains_key(header::IF_NONE_MATCH) {
        return false;
    }
    let mut ours = false;
    let (mut state, mut asked) = (Some(state), "");
    let mut kept = Vec::new();
    for tag in list_items(h, header::IF_NONE_MATCH) {
        let opaque = tag.strip_prefix("W/").unwrap_or(tag);
        let inner = opaque.trim_matches('"');
        match inner.rfind(TAG_MARK) {
            Some(i) => {
                ours = true;
                if let Some(f) = state.take() {
                    asked = f();
                }
                if &inner[i + TAG_MARK.len()..] == asked {
                    // If-None-Match compares weakly, so the weak form matches either kind.
                    kept.push(format!("W/\"{}\"", &inner[..i]));
                }
            }
            None => kept.push(tag.to_string()),
        }
    }
    if kept.is_empty() {
        h.remove(header::IF_NONE_MATCH);
    } else if let Ok(v) = HeaderValue::from_str(&kept.join(", ")) {
        h.insert(header::IF_NONE_MATCH, v);
    }
    ours
}

/// Whether a request is for a document a browser will render (a navigation or a frame): its
/// response is HTML we rewrite.
pub fn is_document_request(h: &HeaderMap) -> bool {
    match h.get(SEC_FETCH_DEST).and_then(|v| v.to_str().ok()) {
        Some(dest) => matches!(
            dest.trim(),
            "document" | "iframe" | "frame" | "embed" | "object"
        ),
        None => h
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html")),
    }
}

/// For a document request, validators that are not ours (a page cached before consentgate was
/// deployed, or by another path) must not reach the origin: a 304 would bring back a page that
/// was never rewritten. Only our tags of the current state stay.
pub fn drop_foreign_validators(h: &mut HeaderMap) {
    h.remove(header::IF_MODIFIED_SINCE);
    if !h.contains_key(header::IF_NONE_MATCH) {
        return;
    }
    let kept = list_items(h, header::IF_NONE_MATCH)
        .filter(|t| t.contains(TAG_MARK))
        .collect::<Vec<&str>>()
        .join(", ");
    if kept.is_empty() {
        h.remove(header::IF_NONE_MATCH);
    } else if let Ok(v) = HeaderValue::from_str(&kept) {
        h.insert(header::IF_NONE_MATCH, v);
    }
}

/// Response headers of an HTML page that depends on the consent state: no shared cache may
/// store it, a browser must revalidate it (with the state-specific ETag), and `Last-Modified`
/// goes, since `If-Modified-Since` cannot tell consent states apart.
pub fn make_consent_dependent(h: &mut HeaderMap, state: &str) {
    if let Some(tagged) = h.get(header::ETAG).and_then(|v| tag_etag(v, state)) {
        h.insert(header::ETAG, tagged);
    } else {
        h.remove(header::ETAG);
    }
    h.remove(header::LAST_MODIFIED);
    h.remove(header::EXPIRES);
    // The origin's other directives (no-store, must-revalidate, extensions) are kept after
    // ours, written straight into one string: most pages have none to keep.
    let mut value = String::from("private, no-cache");
    for d in list_items(h, header::CACHE_CONTROL) {
        let name = d.split('=').next().unwrap_or("").trim();
        let ours = [
            "public",
            "s-maxage",
            "immutable",
            "private",
            "no-cache",
            "max-age",
        ]
        .iter()
        .any(|o| name.eq_ignore_ascii_case(o));
        if !ours {
            value.push_str(", ");
            value.push_str(d);
        }
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
        h.insert(header::CACHE_CONTROL, v);
    }
    let has_cookie_vary =
        list_items(h, header::VARY).any(|t| t == "*" || t.eq_ignore_ascii_case("cookie"));
    if !has_cookie_vary {
        h.append(header::VARY, HeaderValue::from_static("Cookie"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert("connection", hv("close, X-Secret"));
        h.insert("x-secret", hv("1"));
        h.insert("keep-alive", hv("timeout=5"));
        h.insert("transfer-encoding", hv("chunked"));
        h.insert("x-kept", hv("1"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
        // Nothing hop-by-hop: left as it was (the early return).
        let mut h = HeaderMap::new();
        h.insert("x-kept", hv("1"));
        h.append("x-kept", hv("2"));
        h.insert("accept", hv("*/*"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 3);
        // A proxy-only name alone still goes.
        let mut h = HeaderMap::new();
        h.insert("proxy-authorization", hv("Basic x"));
        remove_hop_by_hop(&mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn forwarding_replaces_untrusted_chain() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", hv("6.6.6.6"));
        let peer: SocketAddr = "10.0.0.1:5555".parse().unwrap();
        set_forwarding(&mut h, peer, "site.test", "http", false);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
        assert_eq!(h["forwarded"], "for=10.0.0.1;proto=http;host=\"site.test\"");
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", hv("1.2.3.4"));
        set_forwarding(&mut h, "[::1]:1".parse().unwrap(), "s", "https", true);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, ::1");
        assert!(h["forwarded"]
            .to_str()
            .unwrap()
            .starts_with("for=\"[::1]\""));
        // A trusted front proxy's chains are extended; an untrusted one's replaced.
        for (trust, xff, fwd) in [
            (
                true,
                "9.9.9.9, 10.0.0.1",
                "for=9.9.9.9, for=10.0.0.1;proto=https;host=\"site.test\"",
            ),
            (
                false,
                "10.0.0.1",
                "for=10.0.0.1;proto=https;host=\"site.test\"",
            ),
        ] {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", hv("9.9.9.9"));
            h.insert("forwarded", hv("for=9.9.9.9"));
            h.insert("x-forwarded-proto", hv("http"));
            set_forwarding(&mut h, peer, "site.test", "https", trust);
            assert_eq!(h["x-forwarded-for"], xff);
            assert_eq!(h["forwarded"], fwd);
            let proto = if trust { "http" } else { "https" };
            assert_eq!(h["x-forwarded-proto"], proto);
            assert_eq!(h["x-forwarded-host"], "site.test");
        }
    }

    #[test]
    fn accept_encoding_is_narrowed() {
        let mut h = HeaderMap::new();
        h.insert(
            "accept-encoding",
            hv("gzip, compress, br;q=0.9, zstd;q=0, sdch"),
        );
        filter_accept_encoding(&mut h);
        assert_eq!(h["accept-encoding"], "gzip, br;q=0.9");
        let mut h = HeaderMap::new();
        h.insert("accept-encoding", hv("compress"));
        filter_accept_encoding(&mut h);
        assert!(!h.contains_key("accept-encoding"));
        // Nothing to drop: the value stays as sent (any case); a second header is read too,
        // and what is kept goes as one.
        let mut h = HeaderMap::new();
        h.insert("accept-encoding", hv("GZIP, deflate, br, zstd"));
        filter_accept_encoding(&mut h);
        assert_eq!(h["accept-encoding"], "GZIP, deflate, br, zstd");
        h.append("accept-encoding", hv("sdch, x-gzip"));
        filter_accept_encoding(&mut h);
        let all: Vec<_> = h.get_all("accept-encoding").iter().collect();
        assert_eq!(all, vec!["GZIP, deflate, br, zstd, x-gzip"]);
        // A value that is not visible ASCII cannot be read: it does not go upstream.
        let mut h = HeaderMap::new();
        h.insert(
            "accept-encoding",
            HeaderValue::from_bytes(b"gzip, \xFFbr").unwrap(),
        );
        filter_accept_encoding(&mut h);
        assert!(!h.contains_key("accept-encoding"));
    }

    #[test]
    fn list_items_across_lines_and_quotes() {
        let mut h = HeaderMap::new();
        h.append("x", hv(" a, ,b ,\"c, d\", e=\"f\\\"g, h\",,"));
        h.append("x", HeaderValue::from_bytes(b"\xFFskipped, too").unwrap());
        h.append("x", hv("W/\"i,j\""));
        h.append("x", hv(""));
        let items: Vec<_> = list_items(&h, "x").collect();
        assert_eq!(
            items,
            ["a", "b", "\"c, d\"", "e=\"f\\\"g, h\"", "W/\"i,j\""]
        );
        // An unterminated quote runs to the end of its line only.
        let mut h = HeaderMap::new();
        h.append("x", hv("a, \"b, c"));
        h.append("x", hv("d"));
        assert_eq!(
            list_items(&h, "x").collect::<Vec<_>>(),
            ["a", "\"b, c", "d"]
        );
    }

    #[test]
    fn etags_are_state_specific() {
        assert_eq!(tag_etag(&hv("\"abc\""), "s1").unwrap(), "W/\"abc-cg.s1\"");
        assert_eq!(tag_etag(&hv("W/\"abc\""), "s1").unwrap(), "W/\"abc-cg.s1\"");
        assert!(tag_etag(&hv("abc"), "s1").is_none());
        let mut h = HeaderMap::new();
        h.insert(
            "if-none-match",
            hv("W/\"abc-cg.s1\", \"other\", W/\"old-cg.s0\""),
        );
        assert!(translate_if_none_match(&mut h, || "s1"));
        assert_eq!(h["if-none-match"], "W/\"abc\", \"other\"");
        let mut h = HeaderMap::new();
        h.insert("if-none-match", hv("W/\"abc-cg.s0\""));
        assert!(translate_if_none_match(&mut h, || "s1"));
        assert!(!h.contains_key("if-none-match"));
        // Our tag on a second line, and an ETag with a comma in it, are read whole.
        let etag = tag_etag(&hv("\"a,b\""), "s1").unwrap();
        let mut h = HeaderMap::new();
        h.append("if-none-match", hv("\"other\""));
        h.append("if-none-match", etag);
        assert!(translate_if_none_match(&mut h, || "s1"));
        let all: Vec<_> = h.get_all("if-none-match").iter().collect();
        assert_eq!(all, vec!["\"other\", W/\"a,b\""]);
    }

    #[test]
    fn document_requests_lose_foreign_validators() {
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-dest", hv("document"));
        assert!(is_document_request(&h));
        h.insert("sec-fetch-dest", hv("image"));
        assert!(!is_document_request(&h));
        let mut h = HeaderMap::new();
        h.insert("accept", hv("text/html,application/xhtml+xml;q=0.9"));
        assert!(is_document_request(&h));
        h.insert("if-none-match", hv("\"origin\", W/\"p-cg.s1\""));
        h.insert("if-modified-since", hv("Mon, 01 Jan 2024 00:00:00 GMT"));
        drop_foreign_validators(&mut h);
        assert_eq!(h["if-none-match"], "W/\"p-cg.s1\"");
        assert!(!h.contains_key("if-modified-since"));
    }

    #[test]
    fn consent_dependent_headers() {
        let mut h = HeaderMap::new();
        h.insert("cache-control", hv("public, max-age=600, must-revalidate"));
        h.insert("last-modified", hv("Tue, 01 Jan 2030 00:00:00 GMT"));
        h.insert("etag", hv("\"v1\""));
        h.insert("vary", hv("Accept-Encoding"));
        make_consent_dependent(&mut h, "st");
        assert_eq!(h["cache-control"], "private, no-cache, must-revalidate");
        assert!(!h.contains_key("last-modified"));
        assert_eq!(h["etag"], "W/\"v1-cg.st\"");
        let vary: Vec<_> = h.get_all("vary").iter().collect();
        assert_eq!(vary, vec!["Accept-Encoding", "Cookie"]);
        // Several headers, names in any case, empty items: ours first, the rest kept in order.
        let mut h = HeaderMap::new();
        h.append("cache-control", hv("Public, S-MAXAGE=60,, no-store"));
        h.append(
            "cache-control",
            hv("Max-Age=5, stale-if-error=30, IMMUTABLE"),
        );
        make_consent_dependent(&mut h, "st");
        let cc: Vec<_> = h.get_all("cache-control").iter().collect();
        assert_eq!(cc, vec!["private, no-cache, no-store, stale-if-error=30"]);
        // A quoted list inside a directive is one item: it goes with its directive.
        let mut h = HeaderMap::new();
        h.insert(
            "cache-control",
            hv("no-cache=\"Set-Cookie, X-Id\", private=\"a,b\", no-transform"),
        );
        make_consent_dependent(&mut h, "st");
        assert_eq!(h["cache-control"], "private, no-cache, no-transform");
    }

    #[test]
    fn cookie_filters() {
        let refused = |n: &str| n == "_ga" || n.starts_with("_ga_");
        let mut h = HeaderMap::new();
        h.insert("cookie", hv("session=abc; _ga=GA1.1; _ga_X=1;theme=dark"));
        assert_eq!(filter_request_cookies(&mut h, refused), 2);
        assert_eq!(h["cookie"], "session=abc; theme=dark");
        let mut h = HeaderMap::new();
        h.insert("cookie", hv("_ga=1"));
        filter_request_cookies(&mut h, refused);
        assert!(!h.contains_key("cookie"));
        let mut h = HeaderMap::new();
        h.append("set-cookie", hv("_ga=GA1.1; Path=/; Domain=example.com"));
        h.append("set-cookie", hv("session=1; HttpOnly"));
        h.append("set-cookie", hv("_ga_ABC=2"));
        assert_eq!(filter_set_cookies(&mut h, refused), vec!["_ga", "_ga_ABC"]);
        let left: Vec<_> = h.get_all("set-cookie").iter().collect();
        assert_eq!(left, vec!["session=1; HttpOnly"]);
    }

    #[test]
    fn html_detection() {
        assert!(is_html(Some(&hv("text/html; charset=utf-8"))));
        assert!(is_html(Some(&hv("Application/XHTML+XML"))));
        assert!(is_html(None));
        assert!(!is_html(Some(&hv("application/json"))));
        assert!(!is_html(Some(&hv("image/png"))));
    }
}
