//! Attribute names read off a start tag's raw bytes, the way the HTML tokenizer reads them
//! (HTML §13.2.5.8–13.2.5.40), without lol_html materializing the attributes.
//!
//! Why: a selector such as `[ping]` or `[onclick]` makes lol_html parse and allocate every
//! element's attributes to test it; on a typical page that was a quarter of the rewriter's work
//! while almost no element has those attributes. One `*` handler that scans the tag's bytes
//! answers "does this element carry an attribute we must look at" for a fraction of that, and
//! reads lol_html's attributes only when it does.
//!
//! Only names matter here: values are skipped (quoted, unquoted), character references cannot
//! occur in names, and the delimiters are ASCII bytes that no ASCII-compatible encoding uses
//! inside a multi-byte character, so the scan works on the document's bytes as they are.

/// The attributes on a start tag the rewriter must look at, as a small bit set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Notable(u8);

impl Notable {
    /// Some `on…` attribute: an event handler, i.e. inline code.
    pub const EVENT_HANDLER: Notable = Notable(1);
    /// `background`: a legacy presentational URL the browser still fetches.
    pub const BACKGROUND: Notable = Notable(2);
    /// `ping`: hyperlink auditing.
    pub const PING: Notable = Notable(4);

    /// What one attribute name (any case, as written) adds.
    pub fn of_name(name: &[u8]) -> Notable {
        let lower = |n: &[u8], want: &[u8]| n.eq_ignore_ascii_case(want);
        if name.len() > 2 && lower(&name[..2], b"on") {
            Notable::EVENT_HANDLER
        } else if lower(name, b"background") {
            Notable::BACKGROUND
        } else if lower(name, b"ping") {
            Notable::PING
        } else {
            Notable::default()
        }
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, other: Notable) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Notable {
    type Output = Notable;
    fn bitor(self, rhs: Notable) -> Notable {
        Notable(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Notable {
    fn bitor_assign(&mut self, rhs: Notable) {
        self.0 |= rhs.0;
    }
}

/// What a start tag's bytes say: its name as written, and its notable attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawTag<'a> {
    pub name: &'a [u8],
    pub notable: Notable,
}

/// Reads `tag`, which must be exactly one start tag from `<` to its closing `>`, and hands
/// each attribute's name and value to `visit` (see `walk`). `None` when it is not one start
/// tag (the caller then asks lol_html): a `>` before the last byte, no `>` at the end, or no
/// tag name.
pub(crate) fn read(tag: &[u8], mut visit: impl FnMut(Span, Span)) -> Option<RawTag<'_>> {
    let mut notable = Notable::default();
    let name = walk(tag, |name, value| {
        notable |= Notable::of_name(&tag[name.clone()]);
        visit(name, value);
    })?;
    Some(RawTag { name, notable })
}

/// The value of the first attribute of `tag` named `name` (ASCII, any case), given the
/// attribute spans `read` handed out for it: as written between its quotes (character
/// references not decoded: what lol_html's `get_attribute` gives, before decoding from the
/// document's encoding); empty for a name written without a value. The tokenizer drops later
/// attributes of the same name, so the first one is the one that counts.
pub(crate) fn find<'a>(tag: &'a [u8], spans: &[(Span, Span)], name: &str) -> Option<&'a [u8]> {
    let (_, v) = spans.iter().find(|(n, _)| {
        tag.get(n.clone())
            .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    })?;
    tag.get(v.clone())
}

/// `find` on a tag read on its own. `Some(None)`: no such attribute; `None`: `tag` is not one
/// start tag (see `read`).
#[cfg(test)]
pub(crate) fn value<'a>(tag: &'a [u8], name: &str) -> Option<Option<&'a [u8]>> {
    let mut spans = Vec::new();
    read(tag, |n, v| spans.push((n, v)))?;
    Some(find(tag, &spans, name))
}

/// Where an attribute's name or value lies in its tag.
pub(crate) type Span = std::ops::Range<usize>;

/// Walks `tag` (exactly one start tag, see `read`) as the tokenizer does and calls `visit` with
/// where each attribute's name and value lie in it, in order (a name without a value: an empty
/// value). Returns the tag name as written.
///
/// The tokenizer's states (HTML §13.2.5.8-13.2.5.40) are the loop's steps; names and unquoted
/// values are skipped in tight loops over a byte class table and quoted values with `memchr`,
/// since most tags are a few short names and values.
fn walk(tag: &[u8], mut visit: impl FnMut(Span, Span)) -> Option<&[u8]> {
    let n = tag.len();
    if tag.first() != Some(&b'<') || !tag.get(1)?.is_ascii_alphabetic() {
        return None;
    }
    // The closing `>` at `i` must be the tag's last byte.
    let closes = |i: usize| i + 1 == n;
    let skip = |mut i: usize, class: u8| {
        while tag
            .get(i)
            .is_some_and(|&b| CLASS[usize::from(b)] & class == 0)
        {
            i += 1;
        }
        i
    };
    let skip_spaces = |mut i: usize| {
        while tag
            .get(i)
            .is_some_and(|&b| CLASS[usize::from(b)] & SPACE != 0)
        {
            i += 1;
        }
        i
    };
    // Tag name state.
    let mut i = skip(2, TAG_NAME_END);
    let name = &tag[1..i];
    loop {
        // Before attribute name (also where a value, `/` or a missing space leaves off).
        i = skip_spaces(i);
        match *tag.get(i)? {
            b'>' => return closes(i).then_some(name),
            b'/' => {
                // Self-closing start tag: `/>` ends it, anything else is read again as
                // before an attribute name.
                i += 1;
                if *tag.get(i)? == b'>' {
                    return closes(i).then_some(name);
                }
                continue;
            }
            _ => {}
        }
        // Attribute name: its first byte may be anything left, `=` included.
        let start = i;
        i = skip(i + 1, ATTR_NAME_END);
        let attr = start..i;
        // After attribute name.
        i = skip_spaces(i);
        match *tag.get(i)? {
            b'=' => {}
            b'>' => {
                visit(attr, i..i);
                return closes(i).then_some(name);
            }
            // `/` or the start of the next name: this one had no value.
            _ => {
                visit(attr, i..i);
                continue;
            }
        }
        // Before attribute value.
        i = skip_spaces(i + 1);
        match *tag.get(i)? {
            quote @ (b'"' | b'\'') => {
                let from = i + 1;
                let to = from + find_quote(quote, tag.get(from..)?)?;
                visit(attr, from..to);
                // After the quoted value: `>`, `/`, a space or (a missing space) a name.
                i = to + 1;
            }
            b'>' => {
                visit(attr, i..i);
                return closes(i).then_some(name);
            }
            _ => {
                let to = skip(i + 1, UNQUOTED_END);
                visit(attr, i..to);
                i = to;
            }
        }
    }
}

/// The first `quote` in `value`: most values are short, where a plain loop beats `memchr`'s
/// set-up; long ones (srcset, style, event handlers) go to `memchr`.
fn find_quote(quote: u8, value: &[u8]) -> Option<usize> {
    const SHORT: usize = 24;
    let head = value.get(..SHORT).unwrap_or(value);
    match head.iter().position(|&b| b == quote) {
        Some(at) => Some(at),
        None if value.len() > SHORT => Some(SHORT + memchr::memchr(quote, &value[SHORT..])?),
        None => None,
    }
}

/// Byte classes for `walk`. The tokenizer's whitespace (a CR never reaches it: input
/// preprocessing turns it into LF, but a raw tag is read before that).
const SPACE: u8 = 1;
/// Ends a tag name: whitespace, `/`, `>`.
const TAG_NAME_END: u8 = 2;
/// Ends an attribute name: whitespace, `/`, `>`, `=`.
const ATTR_NAME_END: u8 = 4;
/// Ends an unquoted value: whitespace, `>`.
const UNQUOTED_END: u8 = 8;

const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let spaces = [b'\t', b'\n', b'\x0C', b' ', b'\r'];
    let mut k = 0;
    while k < spaces.len() {
        t[spaces[k] as usize] = SPACE | TAG_NAME_END | ATTR_NAME_END | UNQUOTED_END;
        k += 1;
    }
    t[b'/' as usize] = TAG_NAME_END | ATTR_NAME_END;
    t[b'>' as usize] = TAG_NAME_END | ATTR_NAME_END | UNQUOTED_END;
    t[b'=' as usize] = ATTR_NAME_END;
    t
};

#[cfg(test)]
mod tests {
    use super::*;
    use lol_html::html_content::Element;
    use lol_html::{element, HtmlRewriter, Settings};

    /// One start tag as lol_html parsed it: its raw bytes, lower-case name, notable set, and
    /// each attribute's lower-case name with the value `get_attribute` gives for it.
    struct Parsed {
        raw: String,
        name: String,
        notable: Notable,
        values: Vec<(String, Option<String>)>,
    }

    /// Every start tag of `html` as lol_html parses it, so the scan is checked against the
    /// parser whose source locations it reads.
    fn by_lol_html(html: &str) -> Vec<Parsed> {
        let found = std::cell::RefCell::new(Vec::new());
        let record = |el: &mut Element<'_, '_>| {
            let raw = html[el.source_location().bytes()].to_string();
            let names: Vec<String> = el.attributes().iter().map(|a| a.name()).collect();
            let notable = names.iter().fold(Notable::default(), |n, a| {
                n | Notable::of_name(a.as_bytes())
            });
            let values = names
                .into_iter()
                .chain(["src".to_string(), "nope".to_string()])
                .map(|n| {
                    let v = el.get_attribute(&n);
                    (n, v)
                })
                .collect();
            found.borrow_mut().push(Parsed {
                raw,
                name: el.tag_name(),
                notable,
                values,
            });
            Ok(())
        };
        let mut rw = HtmlRewriter::new(
            Settings::new().append_element_content_handler(element!("*", record)),
            |_: &[u8]| {},
        );
        rw.write(html.as_bytes()).expect("write");
        rw.end().expect("end");
        found.into_inner()
    }

    /// Checks every start tag lol_html finds in `html`; returns how many there were.
    fn check(html: &str) -> usize {
        let tags = by_lol_html(html);
        let n = tags.len();
        for t in tags {
            let (raw, bytes) = (&t.raw, t.raw.as_bytes());
            let got = read(bytes, |_, _| {});
            assert_eq!(
                got.map(|t| t.notable),
                Some(t.notable),
                "{raw:?} in {html:?}"
            );
            let got = got.map(|t| t.name.to_ascii_lowercase());
            assert_eq!(got, Some(t.name.into_bytes()), "{raw:?} in {html:?}");
            // Names lol_html will not look up (with `=` in them) are never asked for.
            for (name, want) in t.values.into_iter().filter(|(n, _)| !n.contains('=')) {
                let got = value(bytes, &name).map(|v| v.map(|v| String::from_utf8_lossy(v)));
                assert_eq!(
                    got,
                    Some(want.map(Into::into)),
                    "{name} of {raw:?} in {html:?}"
                );
                // Names are matched in any case.
                let upper = value(bytes, &name.to_ascii_uppercase());
                assert_eq!(upper, value(bytes, &name), "{raw:?}");
            }
        }
        n
    }

    #[test]
    fn names_as_the_tokenizer_reads_them() {
        for html in [
            "<a href=x ping=y>",
            "<a PING='y'>",
            "<img src=x onerror=alert(1)>",
            "<img src=x ONLOAD=\"f()\">",
            "<img alt=\"onload=x\" title='ping'>",
            "<img alt=onload=x>",
            "<td background=x.png>",
            "<a href=\"x\"onclick=\"f()\">",
            "<a href='x'ping='y'>",
            "<a/onclick=f()>",
            "<a / ping>",
            "<br/>",
            "<br / >",
            "<svg onload=f()/>",
            "<a =onclick>",
            "<a ==onclick>",
            "<a on>",
            "<a x=\"a>b\" ping>",
            "<a x='a\"b' onfocus=f>",
            "<a\tping\n=\ny>",
            "<a\x0Conmouseover=f>",
            "<a x= onclick=f>",
            "<a x = \"1\" background = 'b'>",
            "<a <onclick=f>",
            "<a x<onclick=f>",
            "<a \"onclick=f>",
            "<a 'ping>",
            "<a x=y/onclick=f>",
            "<a x=`y` ping>",
            "<DIV OnPageShow=f>",
            "<a pinger=1 backgrounds=2 o=3>",
            "<a x=\"\" y='' z= >",
            "<p>text<a ping>more</a>",
            "<a=b onclick=f>",
            "<img/src=x/onerror=f>",
            "<img src=a src=b>",
            "<img SRC='a' src=\"b\">",
            "<img src>",
            "<img src=>",
            "<img src= >",
            "<img src/>",
            "<img src = 'x y' alt=z>",
            "<img alt=x src=\"\">",
            "<img src=\"https://a.test/x?y=1&amp;z=2\">",
            "<img src=\"&#104;ttps://a.test/\">",
            "<img srcset=\"a.png 1x, b.png 2x\"src=c>",
            "<img data-src=x src=y>",
            "<img xsrc=x>",
            // Quoted values around the length where the scan hands over to memchr.
            "<img alt=\"a value with > in it, longer than the short scan\" src=x>",
            "<img alt='123456789012345678901234' src=x ping>",
            "<img alt='1234567890123456789012345' src=x ping>",
            "<img alt='12345678901234567890123' src=x ping>",
        ] {
            assert!(check(html) > 0, "no start tag in {html:?}");
        }
    }

    #[test]
    fn not_one_complete_start_tag() {
        for raw in [
            &b""[..],
            b"<",
            b"<a",
            b"<a ping",
            b"<a x=\"y>",
            b"<a x=\"123456789012345678901234567890>",
            b"<a>b>",
            b"<a x=y>z",
            b"a>",
            b"</a>",
            b"<!-- x -->",
            b"< a>",
        ] {
            assert_eq!(
                read(raw, |_, _| {}),
                None,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    /// Random tags built from the bytes that steer the tokenizer, checked against lol_html.
    #[test]
    fn agrees_with_lol_html_on_random_tags() {
        const PIECES: &[&str] = &[
            " ",
            "\t",
            "\n",
            "/",
            "=",
            "\"",
            "'",
            "<",
            "`",
            "on",
            "ONLOAD",
            "onclick",
            "ping",
            "background",
            "x",
            "src",
            "&amp;",
            "é",
            "-",
            "1",
        ];
        // A small deterministic generator: no new dependency for one test.
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut tags = 0;
        for _ in 0..20_000 {
            let mut html = String::from("<a");
            let len = next() % 12;
            for _ in 0..len {
                html.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            // Close an open quote so most cases are one complete tag.
            html.push_str(["", "\"", "'"][(next() % 3) as usize]);
            html.push('>');
            tags += check(&html);
        }
        assert!(tags > 10_000, "only {tags} complete tags generated");
    }
}
