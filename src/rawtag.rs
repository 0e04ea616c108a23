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

/// The tokenizer's whitespace (a CR never reaches it: input preprocessing turns it into LF).
fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0C' | b' ' | b'\r')
}

#[derive(Clone, Copy)]
enum State {
    TagName,
    BeforeName,
    Name(usize),
    AfterName,
    BeforeValue,
    DoubleQuoted,
    SingleQuoted,
    Unquoted(usize),
    AfterQuoted,
    SelfClosing,
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

/// The value of the first attribute of `tag` named `name` (ASCII, any case), as written between
/// its quotes (character references not decoded: what lol_html's `get_attribute` gives, before
/// decoding from the document's encoding); empty for a name written without a value. The
/// tokenizer drops later attributes of the same name, so the first one is the one that counts.
/// `Some(None)`: no such attribute; `None`: `tag` is not one start tag (see `read`).
#[cfg(test)]
pub(crate) fn value<'a>(tag: &'a [u8], name: &str) -> Option<Option<&'a [u8]>> {
    let mut found = None;
    walk(tag, |n, v| {
        if found.is_none() && tag[n].eq_ignore_ascii_case(name.as_bytes()) {
            found = Some(&tag[v]);
        }
    })?;
    Some(found)
}

/// Where an attribute's name or value lies in its tag.
pub(crate) type Span = std::ops::Range<usize>;

/// Walks `tag` (exactly one start tag, see `read`) as the tokenizer does and calls `visit` with
/// where each attribute's name and value lie in it, in order (a name without a value: an empty
/// value). Returns the tag name as written.
fn walk(tag: &[u8], mut visit: impl FnMut(Span, Span)) -> Option<&[u8]> {
    let (&b'<', rest) = tag.split_first()? else {
        return None;
    };
    if !rest.first()?.is_ascii_alphabetic() {
        return None;
    }
    // The tag name ends where the tag-name state leaves (whitespace, `/` or `>`).
    let mut tag_name = rest;
    // An attribute name whose value (if any) is not read yet (in `rest`).
    let mut pending: Option<Span> = None;
    // `rest` starts one byte into `tag`.
    let mut emit = |name: Span, value: Span| {
        visit(name.start + 1..name.end + 1, value.start + 1..value.end + 1);
    };
    let mut state = State::TagName;
    let mut i = 1;
    // The tag's closing `>` at `i`: the walk succeeds only if it is the last byte.
    let close = |i: usize, pending: Option<Span>, emit: &mut dyn FnMut(Span, Span)| {
        if let Some(n) = pending {
            emit(n, i..i);
        }
        i + 1 == rest.len()
    };
    while let Some(&b) = rest.get(i) {
        // Each arm either moves on to the next byte or, for "reconsume", leaves `i` as it is.
        let mut next = i + 1;
        state = match state {
            State::TagName => {
                let ends = b == b'>' || b == b'/' || is_space(b);
                if ends {
                    tag_name = &rest[..i];
                }
                match b {
                    b'>' => return close(i, pending.clone(), &mut emit).then_some(tag_name),
                    b'/' => State::SelfClosing,
                    _ if is_space(b) => State::BeforeName,
                    _ => State::TagName,
                }
            }
            State::BeforeName => match b {
                b'>' => return close(i, pending.clone(), &mut emit).then_some(tag_name),
                b'/' => State::SelfClosing,
                _ if is_space(b) => State::BeforeName,
                // Anything else, `=` included, starts a name.
                _ => State::Name(i),
            },
            State::Name(start) => {
                if !(matches!(b, b'=' | b'>' | b'/') || is_space(b)) {
                    State::Name(start)
                } else {
                    pending = Some(start..i);
                    match b {
                        b'=' => State::BeforeValue,
                        b'>' | b'/' => {
                            // The after-name state reads it.
                            next = i;
                            State::AfterName
                        }
                        _ => State::AfterName,
                    }
                }
            }
            State::AfterName => match b {
                b'=' => State::BeforeValue,
                _ if is_space(b) => State::AfterName,
                // The name had no value.
                b'>' => return close(i, pending.clone(), &mut emit).then_some(tag_name),
                _ => {
                    if let Some(n) = pending.take() {
                        emit(n, i..i);
                    }
                    if b == b'/' {
                        State::SelfClosing
                    } else {
                        State::Name(i)
                    }
                }
            },
            State::BeforeValue => match b {
                b'"' => State::DoubleQuoted,
                b'\'' => State::SingleQuoted,
                b'>' => return close(i, pending.clone(), &mut emit).then_some(tag_name),
                _ if is_space(b) => State::BeforeValue,
                _ => State::Unquoted(i),
            },
            // Values are most of a tag's bytes: jump to the closing quote.
            State::DoubleQuoted | State::SingleQuoted => {
                let quote = if matches!(state, State::DoubleQuoted) {
                    b'"'
                } else {
                    b'\''
                };
                let end = i + memchr::memchr(quote, &rest[i..])?;
                if let Some(n) = pending.take() {
                    emit(n, i..end);
                }
                next = end + 1;
                State::AfterQuoted
            }
            State::Unquoted(start) => {
                let ends = b == b'>' || is_space(b);
                if ends {
                    if let Some(n) = pending.take() {
                        emit(n, start..i);
                    }
                }
                match b {
                    b'>' => return (i + 1 == rest.len()).then_some(tag_name),
                    _ if is_space(b) => State::BeforeName,
                    _ => State::Unquoted(start),
                }
            }
            State::AfterQuoted => match b {
                b'>' => return close(i, pending.clone(), &mut emit).then_some(tag_name),
                b'/' => State::SelfClosing,
                _ if is_space(b) => State::BeforeName,
                // A missing space between attributes: reconsume as the start of a name.
                _ => {
                    next = i;
                    State::BeforeName
                }
            },
            State::SelfClosing => match b {
                b'>' => return close(i, pending.clone(), &mut emit).then_some(tag_name),
                _ => {
                    next = i;
                    State::BeforeName
                }
            },
        };
        i = next;
    }
    None
}

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
