//! One HTML body's way through the proxy, without sockets: decode the content coding, settle the
//! character encoding, rewrite, re-encode. Bytes in, bytes out, chunk by chunk.
//!
//! Encoding, in the browser's order: a BOM wins, then the `Content-Type` charset, then
//! `<meta charset>` (lol_html follows it when nothing earlier decided). With nothing declared we
//! start as windows-1252, which maps every byte and back, so text we re-emit (inline scripts) is
//! never altered whatever the real encoding; `<meta charset>` still switches it. Encodings lol_html
//! cannot parse (UTF-16, ISO-2022-JP) are transcoded to UTF-8 and a UTF-8 BOM is emitted first,
//! which browsers honour above any header.

use std::sync::Arc;

use encoding_rs::Encoding;
use lol_html::AsciiCompatibleEncoding;

use crate::codec::{Coding, Decoder, Encoder, Fragment};
use crate::error::RewriteError;
use crate::gzappend::{First, GzipAppend};
use crate::matcher::ServiceSet;
use crate::policy::Policy;
use crate::rewrite::{Charset, Injection, PageRewriter, RewriteStats};

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
/// Bytes that settle whether a page starts with a BOM (the longest, UTF-8's, has three).
const BOM_SNIFF: usize = 3;

enum Stage {
    /// Waiting for enough bytes to see whether there is a BOM.
    Sniffing(Vec<u8>),
    Rewriting {
        transcoder: Option<encoding_rs::Decoder>,
        rewriter: Box<PageRewriter>,
    },
    /// Nothing is blocked and the encoding is ASCII-compatible: the page passes unparsed and
    /// the injection is appended at its end (where the HTML parser places it in the body), as
    /// UTF-8 when the page is UTF-8, else as ASCII with character references.
    Appending { utf8: bool },
}

/// Rewrites one (possibly compressed) HTML body as it streams.
pub struct BodyRewriter {
    decoder: Option<Decoder>,
    encoder: Option<Encoder>,
    stage: Stage,
    start: Start,
    stats: RewriteStats,
    /// Nothing blocked, gzip: the compressed page passes through and the injection is
    /// appended to the stream (see `gzappend`), unless its first bytes rule that out. The
    /// decoder and encoder are made only if they do (a pooled deflate stream dropped unused
    /// would leave the pool).
    gz_pass: Option<GzPass>,
    coding: Coding,
    max_ratio: Option<u64>,
}

struct GzPass {
    append: GzipAppend,
    /// The compressed input until the page's first bytes are known; `None` after.
    held: Option<Vec<u8>>,
    /// What `append` gave for it, held as long (dropped if the page falls back to decoding).
    early: Vec<u8>,
    /// The page is UTF-8 (else the injection goes as ASCII with character references).
    utf8: bool,
}

/// What starting the page rewriter needs once the encoding is settled.
struct Start {
    policy: Arc<Policy>,
    blocked: ServiceSet,
    /// Made only when a parser starts: a page that passes unparsed never needs its URL.
    page: Option<PageUrl>,
    /// From `Content-Type`, if it named a known charset.
    declared: Option<&'static Encoding>,
    inject: Option<Injection>,
    /// The encoder splices the injection in, pre-encoded (gzip): the rewriter only marks where.
    splice: bool,
}

impl std::fmt::Debug for BodyRewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyRewriter(..)")
    }
}

/// The page's URL (relative URLs in it resolve against it), asked for only when the page is
/// parsed: parsing a URL costs more than the rest of a passed-through page's set-up.
pub type PageUrl = Box<dyn FnOnce() -> url::Url + Send>;

/// The charset parameter of a `Content-Type` value.
pub fn charset_param(content_type: &str) -> Option<&'static Encoding> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| Encoding::for_label(v.trim().trim_matches('"').as_bytes()))
            .flatten()
    })
}

impl BodyRewriter {
    pub fn new(
        policy: Arc<Policy>,
        blocked: ServiceSet,
        page: impl FnOnce() -> url::Url + Send + 'static,
        coding: Coding,
        content_type: Option<&str>,
        inject: Option<Injection>,
    ) -> Result<Self, RewriteError> {
        let gz_pass = coding == Coding::Gzip && blocked.is_empty();
        let (decoder, encoder) = if gz_pass {
            (None, None)
        } else {
            (Some(Decoder::new(coding)?), Some(Encoder::new(coding)?))
        };
        Ok(BodyRewriter {
            decoder,
            encoder,
            coding,
            max_ratio: None,
            stage: Stage::Sniffing(Vec::new()),
            start: Start {
                policy,
                blocked,
                page: Some(Box::new(page)),
                declared: content_type.and_then(charset_param),
                inject,
                splice: coding == Coding::Gzip,
            },
            stats: RewriteStats::default(),
            gz_pass: gz_pass.then(|| GzPass {
                append: GzipAppend::new(),
                held: Some(Vec::new()),
                early: Vec::new(),
                utf8: false,
            }),
        })
    }

    /// Refuses bodies that decompress to more than `ratio` times their size (compression bombs).
    pub fn with_decompression_ratio(mut self, ratio: u64) -> Self {
        self.decoder = self.decoder.map(|d| d.with_max_ratio(ratio));
        self.max_ratio = Some(ratio);
        self
    }

    /// Whether `chunk` may leave exactly as it arrives (no coding either way, nothing to
    /// rewrite, only an injection at the end): the caller then forwards it itself, without
    /// copying it through `write`, and calls `finish` at the end as usual. The page's first
    /// chunk settles that when it holds enough bytes to rule out a BOM (the rewriter takes
    /// note as `write` would), so a page that arrives in one read is not copied at all.
    pub fn passes_through_chunk(&mut self, chunk: &[u8]) -> bool {
        if !self.identity_both_ways() {
            return false;
        }
        match self.stage {
            Stage::Appending { .. } => true,
            Stage::Sniffing(ref held) if held.is_empty() && chunk.len() >= BOM_SNIFF => {
                let (encoding, from_meta) = settle_encoding(chunk, self.start.declared);
                match appends(encoding, from_meta, &self.start) {
                    Some(utf8) => {
                        self.stage = Stage::Appending { utf8 };
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        }
    }

    fn identity_both_ways(&self) -> bool {
        self.decoder.as_ref().is_some_and(Decoder::is_identity)
            && self.encoder.as_ref().is_some_and(Encoder::is_identity)
    }

    /// Feeds compressed input; returns compressed output ready so far (maybe empty).
    pub fn write(&mut self, input: &[u8]) -> Result<Vec<u8>, RewriteError> {
        if self.gz_pass.is_some() {
            return self.write_gz_pass(input, false);
        }
        self.write_decoded(input)
    }

    /// The gzip pass-through: holds the input until the page's first bytes settle its
    /// encoding (as `feed_end_of_sniff` does), then passes it on; a page that needs
    /// transcoding falls back to decoding, with everything held so far.
    fn write_gz_pass(&mut self, input: &[u8], last: bool) -> Result<Vec<u8>, RewriteError> {
        let mut out = Vec::new();
        let Some(p) = self.gz_pass.as_mut() else {
            return Ok(out);
        };
        let Some(held) = p.held.as_mut() else {
            p.append.write(input, &mut out)?;
            return Ok(out);
        };
        held.extend_from_slice(input);
        p.append.write(input, &mut p.early)?;
        let head = match p.append.first() {
            First::Pending if !last => return Ok(out),
            First::Pending | First::Empty => Vec::new(),
            // No BOM starts with any other byte.
            First::Byte(b) if !matches!(b, 0xEF | 0xFE | 0xFF) => vec![b],
            First::Byte(_) | First::Unknown => {
                match crate::gzappend::peek_plain(held, UTF8_BOM.len())? {
                    Some(head) => head,
                    None if last => Vec::new(),
                    None => return Ok(out),
                }
            }
        };
        let (encoding, from_meta) = settle_encoding(&head, self.start.declared);
        let held = p.held.take().unwrap_or_default();
        if !encoding.is_ascii_compatible() {
            self.gz_pass = None;
            let mut decoder = Decoder::new(self.coding)?;
            if let Some(r) = self.max_ratio {
                decoder = decoder.with_max_ratio(r);
            }
            self.decoder = Some(decoder);
            self.encoder = Some(Encoder::new(self.coding)?);
            return self.write_decoded(&held);
        }
        p.utf8 = appends_utf8(encoding, from_meta);
        Ok(std::mem::take(&mut p.early))
    }

    fn write_decoded(&mut self, input: &[u8]) -> Result<Vec<u8>, RewriteError> {
        let mut plain_out = Vec::new();
        let Some(decoder) = self.decoder.as_mut() else {
            return Err(RewriteError::Finished);
        };
        let (stage, start) = (&mut self.stage, &mut self.start);
        decoder.write(input, &mut |plain| {
            feed(stage, plain, &mut plain_out, start)
        })?;
        let splice = self.take_splice();
        self.encode(plain_out, splice)
    }

    /// Ends the body; returns the last output.
    pub fn finish(&mut self) -> Result<Vec<u8>, RewriteError> {
        if self.gz_pass.is_some() {
            // Settles the encoding of a page that ended before its first bytes did.
            let mut out = self.write_gz_pass(&[], true)?;
            if let Some(p) = self.gz_pass.take() {
                let mut tail = Vec::new();
                if let Some(f) = self.start.inject.take() {
                    ascii_html(f(&self.stats).html(), p.utf8, &mut tail);
                }
                self.decoder = None;
                self.encoder = None;
                p.append.finish(&tail, &mut out)?;
                return Ok(out);
            }
            let mut rest = self.finish_decoded()?;
            out.append(&mut rest);
            return Ok(out);
        }
        self.finish_decoded()
    }

    fn finish_decoded(&mut self) -> Result<Vec<u8>, RewriteError> {
        let mut plain_out = Vec::new();
        let Some(decoder) = self.decoder.take() else {
            return Err(RewriteError::Finished);
        };
        let (stage, start) = (&mut self.stage, &mut self.start);
        decoder.finish(&mut |plain| feed(stage, plain, &mut plain_out, start))?;
        // A body shorter than a BOM is decided now.
        if let Stage::Sniffing(_) = stage {
            feed_end_of_sniff(stage, &mut plain_out, start)?;
        }
        if let Stage::Rewriting {
            transcoder,
            rewriter,
        } = &mut self.stage
        {
            if let Some(t) = transcoder.as_mut() {
                let mut s = String::new();
                transcode(t, &[], true, &mut s);
                rewriter.write(s.as_bytes(), &mut plain_out)?;
            }
            self.stats = rewriter.finish(&mut plain_out)?;
        }
        let splice = self.take_splice();
        if let Stage::Appending { utf8 } = self.stage {
            if let Some(f) = self.start.inject.take() {
                ascii_html(f(&self.stats).html(), utf8, &mut plain_out);
            }
        }
        let mut out = self.encode(plain_out, splice)?;
        if let Some(enc) = self.encoder.take() {
            enc.finish(&mut out)?;
        }
        Ok(out)
    }

    /// Where the rewriter left the injection for the encoder, in this call's plain output.
    fn take_splice(&mut self) -> Option<(usize, Arc<Fragment>)> {
        match &mut self.stage {
            Stage::Rewriting { rewriter, .. } => rewriter.take_splice(),
            _ => None,
        }
    }

    /// Encodes `plain`, with the injection spliced in at the given index.
    fn encode(
        &mut self,
        plain: Vec<u8>,
        splice: Option<(usize, Arc<Fragment>)>,
    ) -> Result<Vec<u8>, RewriteError> {
        let Some(enc) = self.encoder.as_mut() else {
            return Err(RewriteError::Finished);
        };
        if let Some((at, f)) = splice {
            let (before, after) = plain.split_at(at.min(plain.len()));
            let mut out = Vec::with_capacity(plain.len() / 2 + 64);
            if !before.is_empty() {
                enc.write(before, &mut out)?;
            }
            enc.insert(&f, &mut out)?;
            if !after.is_empty() {
                enc.write(after, &mut out)?;
            }
            return Ok(out);
        }
        // Identity: the rewritten bytes are the output (no copy into a second buffer).
        if enc.is_identity() || plain.is_empty() {
            return Ok(plain);
        }
        let mut out = Vec::with_capacity(plain.len() / 2);
        enc.write(&plain, &mut out)?;
        Ok(out)
    }

    /// What the rewrite did (complete after `finish`).
    pub fn stats(&self) -> RewriteStats {
        self.stats.clone()
    }
}

fn transcode(t: &mut encoding_rs::Decoder, input: &[u8], last: bool, out: &mut String) {
    out.reserve(
        t.max_utf8_buffer_length(input.len())
            .unwrap_or(input.len() * 3),
    );
    let mut rest = input;
    loop {
        let (result, read, _) = t.decode_to_string(rest, out, last);
        rest = &rest[read..];
        match result {
            encoding_rs::CoderResult::InputEmpty => break,
            encoding_rs::CoderResult::OutputFull => out.reserve(rest.len() * 3 + 16),
        }
    }
}

fn feed(
    stage: &mut Stage,
    plain: &[u8],
    out: &mut Vec<u8>,
    start: &mut Start,
) -> Result<(), RewriteError> {
    if let Stage::Sniffing(buf) = stage {
        if buf.is_empty() && plain.len() >= BOM_SNIFF {
            // Enough to settle on: no copy into the sniffing buffer.
            settle(stage, plain, out, start)?;
            return feed(stage, plain, out, start);
        }
        buf.extend_from_slice(plain);
        if buf.len() < BOM_SNIFF {
            return Ok(());
        }
        return feed_end_of_sniff(stage, out, start);
    }
    if let Stage::Rewriting {
        transcoder,
        rewriter,
    } = stage
    {
        match transcoder {
            Some(t) => {
                let mut s = String::new();
                transcode(t, plain, false, &mut s);
                rewriter.write(s.as_bytes(), out)?;
            }
            None => rewriter.write(plain, out)?,
        }
    }
    if let Stage::Appending { .. } = stage {
        out.extend_from_slice(plain);
    }
    Ok(())
}

/// HTML for the end of a page in any ASCII-compatible encoding: non-ASCII characters become
/// numeric character references (the injection has no inline script or style, where they would
/// not be decoded).
fn ascii_html(html: &str, utf8: bool, out: &mut Vec<u8>) {
    if utf8 || html.is_ascii() {
        out.extend_from_slice(html.as_bytes());
        return;
    }
    out.reserve(html.len() + html.len() / 8);
    let mut plain = 0;
    for (i, c) in html.char_indices().filter(|(_, c)| !c.is_ascii()) {
        out.extend_from_slice(&html.as_bytes()[plain..i]);
        out.extend_from_slice(b"&#");
        out.extend_from_slice(u32::from(c).to_string().as_bytes());
        out.push(b';');
        plain = i + c.len_utf8();
    }
    out.extend_from_slice(&html.as_bytes()[plain..]);
}

/// The page's encoding from its first bytes and the declared charset: a BOM wins, then
/// `Content-Type`, else windows-1252 until a `<meta charset>` says otherwise (`true`).
fn settle_encoding(head: &[u8], declared: Option<&'static Encoding>) -> (&'static Encoding, bool) {
    match (Encoding::for_bom(head).map(|(e, _)| e), declared) {
        (Some(e), _) | (None, Some(e)) => (e, false),
        (None, None) => (encoding_rs::WINDOWS_1252, true),
    }
}

/// Whether an injection appended unparsed may stay UTF-8 (else character references).
fn appends_utf8(encoding: &'static Encoding, from_meta: bool) -> bool {
    encoding == encoding_rs::UTF_8 && !from_meta
}

/// Decides the encoding from what was sniffed, starts rewriting, and feeds what was sniffed.
fn feed_end_of_sniff(
    stage: &mut Stage,
    out: &mut Vec<u8>,
    start: &mut Start,
) -> Result<(), RewriteError> {
    let Stage::Sniffing(head) = stage else {
        return Ok(());
    };
    let head = std::mem::take(head);
    settle(stage, &head, out, start)?;
    feed(stage, &head, out, start)
}

/// Whether a page in `encoding` (see `settle_encoding`) passes unparsed (`Some`, with whether
/// its injection may be UTF-8): nothing blocked and an ASCII-compatible encoding. A later
/// <meta charset> cannot matter to an ASCII injection.
fn appends(encoding: &'static Encoding, from_meta: bool, start: &Start) -> Option<bool> {
    (start.blocked.is_empty() && encoding.is_ascii_compatible())
        .then(|| appends_utf8(encoding, from_meta))
}

/// Leaves `Sniffing` for the stage the page's first bytes (`head`, at least `BOM_SNIFF` of
/// them unless the page is shorter) call for; `head` itself is not fed.
fn settle(
    stage: &mut Stage,
    head: &[u8],
    out: &mut Vec<u8>,
    start: &mut Start,
) -> Result<(), RewriteError> {
    let (encoding, from_meta) = settle_encoding(head, start.declared);
    if let Some(utf8) = appends(encoding, from_meta, start) {
        // No element to neutralize: no parser needed (lol_html is the cost of a full-consent
        // page otherwise).
        *stage = Stage::Appending { utf8 };
        return Ok(());
    }
    let (charset, transcoder) = match AsciiCompatibleEncoding::new(encoding) {
        Some(enc) => (
            Charset {
                encoding: enc,
                from_meta,
            },
            None,
        ),
        None => {
            out.extend_from_slice(UTF8_BOM);
            (
                Charset {
                    encoding: AsciiCompatibleEncoding::utf_8(),
                    from_meta: false,
                },
                // Strips the original BOM, if any.
                Some(encoding.new_decoder_with_bom_removal()),
            )
        }
    };
    // The stage leaves `Sniffing` once, so the URL is there.
    let page = start.page.take().ok_or(RewriteError::Finished)?;
    let mut rewriter = PageRewriter::with_injection(
        start.policy.clone(),
        start.blocked.clone(),
        page(),
        charset,
        start.inject.take(),
    );
    if start.splice {
        rewriter = rewriter.splice_injection();
    }
    *stage = Stage::Rewriting {
        transcoder,
        rewriter: Box::new(rewriter),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::decision::Decision;
    use crate::policy::RewriteLimits;

    fn run(coding: Coding, ct: Option<&str>, body: &[u8], chunk: usize) -> Vec<u8> {
        let policy =
            Arc::new(Policy::new(Catalog::builtin().unwrap(), RewriteLimits::default()).unwrap());
        let blocked = policy.blocked(&Decision::undecided());
        let page = url::Url::parse("https://site.test/").unwrap();
        let mut enc = Encoder::new(coding).unwrap();
        let mut compressed = Vec::new();
        enc.write(body, &mut compressed).unwrap();
        enc.finish(&mut compressed).unwrap();
        let mut br = BodyRewriter::new(policy, blocked, move || page, coding, ct, None).unwrap();
        crate::codec::decode_all(coding, &drive(&mut br, &compressed, chunk)).unwrap()
    }

    const PAGE: &str = r#"<p>Grüße</p><script src="https://static.zdassets.com/ekr/snippet.js?key=k"></script><script>var s="é";</script>"#;

    /// Everything `br` writes for `body` fed in chunks of `chunk` bytes, and its end.
    fn drive(br: &mut BodyRewriter, body: &[u8], chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for c in body.chunks(chunk) {
            out.extend(br.write(c).unwrap());
        }
        out.extend(br.finish().unwrap());
        out
    }

    /// The built-in policy and what it blocks with every service granted: nothing.
    fn full_consent() -> (Arc<Policy>, ServiceSet) {
        let policy =
            Arc::new(Policy::new(Catalog::builtin().unwrap(), RewriteLimits::default()).unwrap());
        let mut d = Decision::undecided();
        for i in 0..policy.catalog.len() {
            d.granted.insert(i);
        }
        d.decided = true;
        let blocked = policy.blocked(&d);
        assert!(blocked.is_empty());
        (policy, blocked)
    }

    /// Full consent with an injection: the page's bytes unparsed, the injection at the end in a
    /// form every ASCII-compatible encoding reads the same. Chunks are forwarded as they came
    /// while the rewriter `passes_through_chunk` (as the proxy does); also returns how many were, and
    /// whether the page's URL was asked for (only a parser needs it).
    fn append_only(coding: Coding, ct: &str, body: &[u8], chunk: usize) -> (Vec<u8>, usize, bool) {
        use std::sync::atomic::{AtomicBool, Ordering};
        let (policy, blocked) = full_consent();
        let page = url::Url::parse("https://site.test/").unwrap();
        let mut enc = Encoder::new(coding).unwrap();
        let mut compressed = Vec::new();
        enc.write(body, &mut compressed).unwrap();
        enc.finish(&mut compressed).unwrap();
        let inject: Injection =
            Box::new(|_: &RewriteStats| Arc::new(Fragment::new("<p>Einstellungen ä €</p>")));
        let asked = Arc::new(AtomicBool::new(false));
        let url = {
            let asked = asked.clone();
            move || {
                asked.store(true, Ordering::Relaxed);
                page
            }
        };
        let mut br =
            BodyRewriter::new(policy, blocked, url, coding, Some(ct), Some(inject)).unwrap();
        let (mut out, mut passed) = (Vec::new(), 0);
        for c in compressed.chunks(chunk) {
            if br.passes_through_chunk(c) {
                out.extend_from_slice(c);
                passed += 1;
            } else {
                out.extend(br.write(c).unwrap());
            }
        }
        out.extend(br.finish().unwrap());
        let out = crate::codec::decode_all(coding, &out).unwrap();
        (out, passed, asked.load(Ordering::Relaxed))
    }

    /// No decision, with a banner: for gzip the encoder splices in the banner's own deflate
    /// blocks where the rewriter marks the spot; decoded, the page is byte for byte what the
    /// identity path writes through lol_html, in any chunking, wherever the banner goes
    /// (before `</body>`, at the end without one, after scripts that were held back). Where
    /// the page is not UTF-8 at that point the banner is encoded with the page instead.
    #[test]
    fn banner_spliced_into_gzip_reads_as_written_inline() {
        let utf8 = Some("text/html; charset=utf-8");
        let pages = [
            (utf8, format!("<body>{PAGE}<p>x</p></body></html>\n"), true),
            (
                None,
                format!("<meta charset=utf-8>{PAGE}<p>no body end tag"),
                true,
            ),
            (
                utf8,
                "<body><script>var a=1;</script></body><script>var b=2;</script>".into(),
                true,
            ),
            (utf8, String::new(), true),
            (
                None,
                "<body><p>Gr\u{fc}\u{df}e</p></body>".to_string(),
                false,
            ),
        ];
        let banner = Arc::new(Fragment::new(
            "<div id=cg>Datenschutz ✓ ’</div>".repeat(200),
        ));
        let policy =
            Arc::new(Policy::new(Catalog::builtin().unwrap(), RewriteLimits::default()).unwrap());
        let blocked = policy.blocked(&Decision::undecided());
        let page = url::Url::parse("https://site.test/").unwrap();
        let rewrite = |coding: Coding, ct: Option<&str>, body: &[u8], chunk: usize| {
            let mut enc = Encoder::new(coding).unwrap();
            let mut compressed = Vec::new();
            enc.write(body, &mut compressed).unwrap();
            enc.finish(&mut compressed).unwrap();
            let b = banner.clone();
            let inject: Injection = Box::new(move |_: &RewriteStats| b);
            let mut br = BodyRewriter::new(
                policy.clone(),
                blocked.clone(),
                {
                    let p = page.clone();
                    move || p
                },
                coding,
                ct,
                Some(inject),
            )
            .unwrap();
            let out = drive(&mut br, &compressed, chunk);
            (crate::codec::decode_all(coding, &out).unwrap(), out)
        };
        for (ct, html, spliced) in &pages {
            let (want, _) = rewrite(Coding::Identity, *ct, html.as_bytes(), 1 << 20);
            let want = String::from_utf8_lossy(&want);
            assert_eq!(want.matches("<div id=cg>").count(), 200, "{html}");
            for chunk in [1, 3, 7, 64, 1 << 20] {
                let (got, gz) = rewrite(Coding::Gzip, *ct, html.as_bytes(), chunk);
                assert_eq!(String::from_utf8_lossy(&got), want, "chunk {chunk}: {html}");
                let blocks = banner.deflated().unwrap();
                let found = gz.windows(blocks.len()).any(|w| w == blocks);
                assert_eq!(found, *spliced, "chunk {chunk}: {html}");
            }
        }
    }

    /// Full consent, gzip: the origin's compressed bytes go on as they came (but for the last
    /// block's BFINAL bit and the end), with the injection appended to the stream; a UTF-16
    /// page (found by its BOM, which takes inflating the first bytes) is decoded and
    /// transcoded as before.
    #[test]
    fn full_consent_gzip_passes_the_compressed_page() {
        let (policy, blocked) = full_consent();
        let page = url::Url::parse("https://site.test/").unwrap();
        let run = |ct: &str, body: &[u8], chunk: usize| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut e, body).unwrap();
            let gz = e.finish().unwrap();
            let inject: Injection =
                Box::new(|_: &RewriteStats| Arc::new(Fragment::new("<p>Einstellungen ä</p>")));
            let mut br = BodyRewriter::new(
                policy.clone(),
                blocked.clone(),
                {
                    let p = page.clone();
                    move || p
                },
                Coding::Gzip,
                Some(ct),
                Some(inject),
            )
            .unwrap();
            let out = drive(&mut br, &gz, chunk);
            let plain = crate::codec::decode_all(Coding::Gzip, &out).unwrap();
            (gz, out, plain)
        };
        let html = "<p>Grüße, consent</p>\n".repeat(3000);
        for chunk in [1, 2, 3, 100, 1 << 20] {
            let (gz, out, plain) = run("text/html; charset=utf-8", html.as_bytes(), chunk);
            assert_eq!(plain, format!("{html}<p>Einstellungen ä</p>").as_bytes());
            let same = gz.iter().zip(&out).filter(|(a, b)| a == b).count();
            assert!(
                same + 16 > gz.len(),
                "chunk {chunk}: {same} of {}",
                gz.len()
            );
            let (_, _, plain) = run("text/html", html.as_bytes(), chunk);
            assert!(
                plain.ends_with(b"<p>Einstellungen &#228;</p>"),
                "chunk {chunk}"
            );
        }
        let mut bom_page = vec![0xFF, 0xFE];
        for u in "<p>\u{e4}</p>".encode_utf16() {
            bom_page.extend_from_slice(&u.to_le_bytes());
        }
        for chunk in [1, 4, 1 << 20] {
            let (_, _, plain) = run("text/html", &bom_page, chunk);
            let text = String::from_utf8(plain).unwrap();
            assert!(text.starts_with("\u{feff}<p>\u{e4}</p>"), "{text}");
            assert!(text.ends_with("<p>Einstellungen ä</p>"), "{text}");
        }
    }

    #[test]
    fn full_consent_passes_the_page_and_appends() {
        let latin1 = b"<p>Gr\xfc\xdfe</p><script src=\"https://static.zdassets.com/x.js\"></script></body></html>";
        for chunk in [1, 2, 5, 4096] {
            for coding in [Coding::Identity, Coding::Gzip] {
                let (out, passed, url) =
                    append_only(coding, "text/html; charset=windows-1252", latin1, chunk);
                assert!(!url, "a page that is not parsed needs no URL");
                // Identity chunks go out as they came, the first too when it is long enough
                // to settle the encoding; compressed ones are decoded and re-encoded.
                let chunks = latin1.len().div_ceil(chunk);
                let want_passed = match coding {
                    Coding::Identity if chunk >= BOM_SNIFF => chunks,
                    Coding::Identity => chunks - BOM_SNIFF.div_ceil(chunk),
                    _ => 0,
                };
                assert_eq!(passed, want_passed, "{coding:?} chunk {chunk}");
                let mut want = latin1.to_vec();
                want.extend_from_slice(b"<p>Einstellungen &#228; &#8364;</p>");
                assert_eq!(out, want, "{coding:?} chunk {chunk}");
                let (out, _, url) =
                    append_only(coding, "text/html; charset=utf-8", PAGE.as_bytes(), chunk);
                assert!(!url);
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    format!("{PAGE}<p>Einstellungen ä €</p>")
                );
                // Undeclared: a later <meta charset> decides, so ASCII it is.
                let (out, _, _) = append_only(coding, "text/html", PAGE.as_bytes(), chunk);
                assert!(out.ends_with(b"<p>Einstellungen &#228; &#8364;</p>"));
            }
        }
        // UTF-16 cannot take ASCII bytes: it goes through the transcoding rewriter as before.
        let utf16: Vec<u8> = "\u{feff}<p>x</p>"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        let (out, passed, url) = append_only(Coding::Identity, "text/html", &utf16, 3);
        assert_eq!(passed, 0, "transcoded, never passed through");
        assert!(url, "the parser resolves against the page's URL");
        assert!(out.starts_with(UTF8_BOM), "{out:?}");
        assert!(String::from_utf8_lossy(&out).ends_with("<p>Einstellungen ä €</p>"));
    }

    #[test]
    fn all_codings_rewrite() {
        for coding in [
            Coding::Identity,
            Coding::Gzip,
            Coding::Deflate,
            Coding::Brotli,
            Coding::Zstd,
        ] {
            for chunk in [1, 5, 4096] {
                let out = run(
                    coding,
                    Some("text/html; charset=utf-8"),
                    PAGE.as_bytes(),
                    chunk,
                );
                let s = String::from_utf8(out).unwrap();
                assert!(
                    s.contains("data-consentgate-src=\"https://static.zdassets.com"),
                    "{coding:?}: {s}"
                );
                assert!(
                    s.contains("<p>Grüße</p>") && s.contains("var s=\"é\";"),
                    "{coding:?}: {s}"
                );
            }
        }
    }

    #[test]
    fn legacy_charset_round_trips_bytes() {
        let (latin1, _, _) = encoding_rs::WINDOWS_1252.encode(PAGE);
        for ct in [Some("text/html; charset=ISO-8859-1"), None] {
            let out = run(Coding::Identity, ct, &latin1, 3);
            let (text, _, bad) = encoding_rs::WINDOWS_1252.decode(&out);
            assert!(!bad);
            assert!(
                text.contains("<p>Grüße</p>") && text.contains("var s=\"é\";"),
                "{text}"
            );
            assert!(text.contains("data-consentgate-src"), "{text}");
        }
        // Shift_JIS declared by <meta>: multi-byte text survives the rewrite untouched.
        let sjis_page = "<meta charset=\"shift_jis\"><p>日本語</p><script>var t='日本';</script><iframe src=\"https://www.youtube.com/embed/x\"></iframe>";
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(sjis_page);
        let out = run(Coding::Identity, Some("text/html"), &sjis, 2);
        let (text, _, bad) = encoding_rs::SHIFT_JIS.decode(&out);
        assert!(!bad);
        assert!(
            text.contains("<p>日本語</p>") && text.contains("var t='日本';"),
            "{text}"
        );
        assert!(
            text.contains("data-consentgate-src=\"https://www.youtube.com"),
            "{text}"
        );
    }

    #[test]
    fn utf16_is_transcoded_with_a_utf8_bom() {
        let mut body = vec![0xFF, 0xFE];
        for u in PAGE.encode_utf16() {
            body.extend_from_slice(&u.to_le_bytes());
        }
        let out = run(Coding::Gzip, Some("text/html"), &body, 7);
        assert!(out.starts_with(UTF8_BOM));
        let s = String::from_utf8(out[3..].to_vec()).unwrap();
        assert!(
            s.contains("data-consentgate-src") && s.contains("Grüße"),
            "{s}"
        );
    }

    #[test]
    fn tiny_bodies() {
        assert_eq!(run(Coding::Gzip, None, b"", 1), b"");
        assert_eq!(run(Coding::Identity, None, b"<p", 1), b"<p");
    }
}
