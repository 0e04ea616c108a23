//! Content codings for rewritten bodies: decode what the origin sent, re-encode the rewritten
//! HTML the same way. Synchronous writers with an explicit flush per chunk, so the client sees
//! bytes as they are produced (an encoder that holds output until EOF breaks streaming).
//!
//! Input is fed in slices of at most `FEED` bytes and output drained after each one, so one
//! compressed chunk never expands into more than a bounded buffer at a time.

use std::io::Write;
use std::sync::Mutex;

use crate::error::RewriteError;

const FEED: usize = 4096;
/// Compressed bytes decoded per step: deflate expands at most ~1032:1, so one step yields at
/// most about 1 MiB before the output is drained and the ratio checked.
const DECODE_FEED: usize = 1024;

/// A `Content-Encoding` we can decode and re-encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

impl Coding {
    /// Parses a `Content-Encoding` value; `None` for codings we do not support (or stacked ones),
    /// which the caller must not rewrite.
    pub fn from_header(v: Option<&str>) -> Option<Coding> {
        let v = match v {
            None => return Some(Coding::Identity),
            Some(v) => v.trim(),
        };
        if v.contains(',') {
            return None;
        }
        match v.to_ascii_lowercase().as_str() {
            "" | "identity" => Some(Coding::Identity),
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "deflate" => Some(Coding::Deflate),
            "br" => Some(Coding::Brotli),
            "zstd" => Some(Coding::Zstd),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }
}

enum Dec {
    Identity,
    /// `deflate` is zlib-wrapped per RFC 9110, but some servers send raw deflate: decided on
    /// the first two bytes.
    DeflateUnknown(Vec<u8>),
    Gzip(flate2::write::GzDecoder<Vec<u8>>),
    Zlib(flate2::write::ZlibDecoder<Vec<u8>>),
    RawDeflate(flate2::write::DeflateDecoder<Vec<u8>>),
    Brotli(Box<brotli::DecompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Decoder<'static, Vec<u8>>),
}

/// Streaming decoder for one body.
pub struct Decoder {
    coding: Coding,
    inner: Dec,
    consumed: u64,
    produced: u64,
    /// Output may exceed input this many times (beyond `BOMB_FLOOR`); 0 = unlimited.
    max_ratio: u64,
}

/// Small bodies may expand freely: a ratio guard only bites past this much output.
const BOMB_FLOOR: u64 = 1024 * 1024;

fn derr(coding: Coding, source: std::io::Error) -> RewriteError {
    RewriteError::Decode {
        encoding: coding.name(),
        source,
    }
}

impl Decoder {
    /// Whether output is the input unchanged.
    pub fn is_identity(&self) -> bool {
        matches!(self.inner, Dec::Identity)
    }

    pub fn new(coding: Coding) -> Result<Self, RewriteError> {
        let inner = match coding {
            Coding::Identity => Dec::Identity,
            Coding::Gzip => Dec::Gzip(flate2::write::GzDecoder::new(Vec::new())),
            Coding::Deflate => Dec::DeflateUnknown(Vec::new()),
            Coding::Brotli => {
                Dec::Brotli(Box::new(brotli::DecompressorWriter::new(Vec::new(), FEED)))
            }
            Coding::Zstd => Dec::Zstd(
                zstd::stream::write::Decoder::new(Vec::new()).map_err(|e| derr(coding, e))?,
            ),
        };
        Ok(Decoder {
            coding,
            inner,
            consumed: 0,
            produced: 0,
            max_ratio: 0,
        })
    }

    /// Refuses to expand the body more than `ratio` times (compression bombs).
    pub fn with_max_ratio(mut self, ratio: u64) -> Self {
        self.max_ratio = ratio;
        self
    }

    fn check_ratio(&self) -> Result<(), RewriteError> {
        if self.max_ratio > 0
            && self.produced > BOMB_FLOOR
            && self.produced > self.consumed.saturating_mul(self.max_ratio)
        {
            return Err(derr(
                self.coding,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "decompressed size exceeds {}x the compressed size (compression bomb?)",
                        self.max_ratio
                    ),
                ),
            ));
        }
        Ok(())
    }

    fn sink(&mut self) -> Option<&mut Vec<u8>> {
        match &mut self.inner {
            Dec::Identity | Dec::DeflateUnknown(_) => None,
            Dec::Gzip(d) => Some(d.get_mut()),
            Dec::Zlib(d) => Some(d.get_mut()),
            Dec::RawDeflate(d) => Some(d.get_mut()),
            Dec::Brotli(d) => Some(d.get_mut()),
            Dec::Zstd(d) => Some(d.get_mut()),
        }
    }

    /// Decodes `input`, calling `emit` with each piece of plain output as it becomes available.
    pub fn write(
        &mut self,
        input: &[u8],
        emit: &mut dyn FnMut(&[u8]) -> Result<(), RewriteError>,
    ) -> Result<(), RewriteError> {
        let coding = self.coding;
        if let Dec::DeflateUnknown(head) = &mut self.inner {
            head.extend_from_slice(input);
            if head.len() < 2 {
                return Ok(());
            }
            let head = std::mem::take(head);
            let (cmf, flg) = (head[0], head[1]);
            let zlib = cmf & 0x0f == 8 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0;
            self.inner = if zlib {
                Dec::Zlib(flate2::write::ZlibDecoder::new(Vec::new()))
            } else {
                Dec::RawDeflate(flate2::write::DeflateDecoder::new(Vec::new()))
            };
            return self.write(&head, emit);
        }
        if let Dec::Identity = self.inner {
            return emit(input);
        }
        for piece in input.chunks(DECODE_FEED) {
            let mut rest = piece;
            while !rest.is_empty() {
                let n = match &mut self.inner {
                    Dec::Gzip(d) => d.write(rest),
                    Dec::Zlib(d) => d.write(rest),
                    Dec::RawDeflate(d) => d.write(rest),
                    Dec::Brotli(d) => d.write(rest),
                    Dec::Zstd(d) => d.write(rest),
                    Dec::Identity | Dec::DeflateUnknown(_) => Ok(rest.len()),
                }
                .map_err(|e| derr(coding, e))?;
                if n == 0 {
                    // Input after the end of the compressed stream.
                    return Err(derr(
                        coding,
                        std::io::Error::new(std::io::ErrorKind::InvalidData, "trailing data"),
                    ));
                }
                rest = &rest[n..];
                self.consumed += n as u64;
                self.drain(emit)?;
            }
        }
        Ok(())
    }

    fn drain(
        &mut self,
        emit: &mut dyn FnMut(&[u8]) -> Result<(), RewriteError>,
    ) -> Result<(), RewriteError> {
        if let Some(buf) = self.sink() {
            if !buf.is_empty() {
                let out = std::mem::take(buf);
                self.produced += out.len() as u64;
                self.check_ratio()?;
                emit(&out)?;
                // Give the allocation back to the decoder for the next piece.
                if let Some(b) = self.sink() {
                    *b = out;
                    b.clear();
                }
            }
        }
        Ok(())
    }

    /// Ends the stream; a truncated compressed body is an error.
    pub fn finish(
        self,
        emit: &mut dyn FnMut(&[u8]) -> Result<(), RewriteError>,
    ) -> Result<(), RewriteError> {
        let coding = self.coding;
        let truncated = || {
            derr(
                coding,
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated stream"),
            )
        };
        let tail = match self.inner {
            Dec::Identity => Vec::new(),
            Dec::DeflateUnknown(head) => {
                if head.is_empty() {
                    Vec::new()
                } else {
                    return Err(truncated());
                }
            }
            Dec::Gzip(d) => d.finish().map_err(|e| derr(coding, e))?,
            Dec::Zlib(d) => d.finish().map_err(|e| derr(coding, e))?,
            Dec::RawDeflate(d) => d.finish().map_err(|e| derr(coding, e))?,
            Dec::Brotli(d) => d.into_inner().map_err(|_| truncated())?,
            Dec::Zstd(mut d) => {
                d.flush().map_err(|e| derr(coding, e))?;
                d.into_inner()
            }
        };
        if !tail.is_empty() {
            emit(&tail)?;
        }
        Ok(())
    }
}

/// Decodes a whole body at once (tests, small bodies).
pub fn decode_all(coding: Coding, data: &[u8]) -> Result<Vec<u8>, RewriteError> {
    let mut out = Vec::new();
    let mut dec = Decoder::new(coding)?;
    let mut sink = |b: &[u8]| {
        out.extend_from_slice(b);
        Ok(())
    };
    dec.write(data, &mut sink)?;
    dec.finish(&mut sink)?;
    Ok(out)
}

enum Enc {
    Identity,
    /// Raw deflate inside gzip framing written here, so the deflate stream can be pooled and
    /// a pre-compressed `Fragment` spliced in (flate2's writers have no full flush).
    Gzip {
        deflate: flate2::Compress,
        crc: flate2::Crc,
        /// The member header has gone out (with the first output).
        started: bool,
    },
    Zlib(flate2::write::ZlibEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

/// The gzip member header (RFC 1952): deflate, no flags, no mtime, fastest level, unknown OS (as flate2 writes).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 0xff];

fn gzip_start(started: &mut bool, out: &mut Vec<u8>) {
    if !std::mem::replace(started, true) {
        out.extend_from_slice(&GZIP_HEADER);
    }
}

/// Runs `deflate` over all of `input` with `flush`, appending what it produces to `out` (the
/// loop flate2's writers run, which give no access to a full flush).
fn deflate_into(
    deflate: &mut flate2::Compress,
    mut input: &[u8],
    out: &mut Vec<u8>,
    flush: flate2::FlushCompress,
) -> std::io::Result<()> {
    loop {
        // Level 1 rarely expands; a flush adds a few bytes, the gzip trailer is separate.
        out.reserve(input.len() / 2 + 64);
        let before = deflate.total_in();
        let status = deflate
            .compress_vec(input, out, flush)
            .map_err(std::io::Error::other)?;
        let used = usize::try_from(deflate.total_in() - before).unwrap_or(input.len());
        input = input.get(used..).unwrap_or_default();
        // Done once all input is taken and the stream stopped with output space to spare
        // (a flush is complete), or at the stream's end.
        let spare = out.len() < out.capacity();
        match status {
            flate2::Status::StreamEnd => return Ok(()),
            _ if input.is_empty() && spare && flush != flate2::FlushCompress::Finish => {
                return Ok(())
            }
            flate2::Status::BufError if input.is_empty() && spare => return Ok(()),
            _ => {}
        }
    }
}

/// HTML that goes into many responses (the banner, the settings control): rendered once per
/// consent state and kept with its own deflate blocks, made on first use. On a small page the
/// banner is most of the output, so compressing it once instead of on every gzip response is
/// most of the encoding work saved.
pub struct Fragment {
    html: Box<str>,
    deflated: std::sync::OnceLock<Option<Vec<u8>>>,
}

impl Fragment {
    pub fn new(html: impl Into<Box<str>>) -> Self {
        Fragment {
            html: html.into(),
            deflated: std::sync::OnceLock::new(),
        }
    }

    pub fn html(&self) -> &str {
        &self.html
    }

    /// Raw deflate blocks of the HTML, from an empty window, not final, ending on a byte
    /// boundary (a sync flush): they can follow any full flush of another deflate stream.
    /// Compressed at the best level, once. `None` if compression failed (then it is encoded
    /// with the page, as before).
    pub(crate) fn deflated(&self) -> Option<&[u8]> {
        self.deflated
            .get_or_init(|| {
                let mut c = flate2::Compress::new(flate2::Compression::best(), false);
                let mut out = Vec::new();
                deflate_into(
                    &mut c,
                    self.html.as_bytes(),
                    &mut out,
                    flate2::FlushCompress::Sync,
                )
                .ok()
                .map(|_| out)
            })
            .as_deref()
    }
}

impl std::fmt::Debug for Fragment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fragment({} bytes)", self.html.len())
    }
}

/// Fragments shorter than this are compressed with the page rather than spliced in (the
/// banner is tens of KB; the settings control a few hundred bytes).
const MIN_SPLICED: usize = 4096;

/// Deflate streams kept for the next response, at most this many of each kind (~400 KB each).
const POOLED_DEFLATE: usize = 8;

/// Finished deflate streams, reset for reuse. A new one allocates ~400 KB and zeroes 256 KB of
/// it (zlib-rs: window, prev chain, hash head); a reset one zeroes only its 128 KB hash head.
/// On a small page that difference was a tenth of the proxy's CPU. Streams go back only after
/// a clean finish; one dropped mid-body is freed.
struct Pool<T>(Mutex<Vec<T>>);

impl<T> Pool<T> {
    const fn new() -> Self {
        Pool(Mutex::new(Vec::new()))
    }

    /// A list of reset streams, poisoned or not.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self, make: impl FnOnce() -> T) -> T {
        let pooled = self.lock().pop();
        pooled.unwrap_or_else(make)
    }

    fn give(&self, stream: T) {
        let mut p = self.lock();
        if p.len() < POOLED_DEFLATE {
            p.push(stream);
        }
    }
}

/// Raw deflate streams (gzip's body) and zlib-wrapped ones (`deflate`).
static RAW_DEFLATE: Pool<flate2::Compress> = Pool::new();
static ZLIB: Pool<flate2::write::ZlibEncoder<Vec<u8>>> = Pool::new();

/// Streaming encoder: levels chosen for speed, since the body is re-encoded on every request
/// (gzip/deflate level 1 as nginx's `gzip_comp_level` default; brotli 4; zstd 3).
pub struct Encoder {
    coding: Coding,
    inner: Enc,
}

fn eerr(coding: Coding, source: std::io::Error) -> RewriteError {
    RewriteError::Encode {
        encoding: coding.name(),
        source,
    }
}

impl Encoder {
    /// Whether output is the input unchanged.
    pub fn is_identity(&self) -> bool {
        matches!(self.inner, Enc::Identity)
    }

    pub fn new(coding: Coding) -> Result<Self, RewriteError> {
        let inner = match coding {
            Coding::Identity => Enc::Identity,
            Coding::Gzip => Enc::Gzip {
                deflate: RAW_DEFLATE
                    .take(|| flate2::Compress::new(flate2::Compression::fast(), false)),
                crc: flate2::Crc::new(),
                started: false,
            },
            Coding::Deflate => {
                Enc::Zlib(ZLIB.take(|| {
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast())
                }))
            }
            Coding::Brotli => Enc::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                FEED,
                4,
                22,
            ))),
            Coding::Zstd => Enc::Zstd(
                zstd::stream::write::Encoder::new(Vec::new(), 3).map_err(|e| eerr(coding, e))?,
            ),
        };
        Ok(Encoder { coding, inner })
    }

    /// Encodes `input` and flushes, appending everything produced to `out`.
    pub fn write(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        let c = self.coding;
        let buf = match &mut self.inner {
            Enc::Identity => {
                out.extend_from_slice(input);
                return Ok(());
            }
            Enc::Gzip {
                deflate,
                crc,
                started,
            } => {
                gzip_start(started, out);
                crc.update(input);
                return deflate_into(deflate, input, out, flate2::FlushCompress::Sync)
                    .map_err(|x| eerr(c, x));
            }
            Enc::Zlib(e) => {
                e.write_all(input)
                    .and_then(|_| e.flush())
                    .map_err(|x| eerr(c, x))?;
                e.get_mut()
            }
            Enc::Brotli(e) => {
                e.write_all(input)
                    .and_then(|_| e.flush())
                    .map_err(|x| eerr(c, x))?;
                e.get_mut()
            }
            Enc::Zstd(e) => {
                e.write_all(input)
                    .and_then(|_| e.flush())
                    .map_err(|x| eerr(c, x))?;
                e.get_mut()
            }
        };
        out.append(buf);
        Ok(())
    }

    /// Encodes `f`'s HTML as if it were written, appending the output to `out`. gzip splices
    /// in the fragment's own deflate blocks, compressed once (after a full flush, so nothing
    /// that follows refers back across them); the other codings compress it here.
    pub fn insert(&mut self, f: &Fragment, out: &mut Vec<u8>) -> Result<(), RewriteError> {
        let c = self.coding;
        let Enc::Gzip {
            deflate,
            crc,
            started,
        } = &mut self.inner
        else {
            return self.write(f.html.as_bytes(), out);
        };
        // The full flush clears the stream's 128 KB hash head: below a few KB, compressing
        // the fragment with the page costs less.
        let blocks = match (f.html.len() >= MIN_SPLICED).then(|| f.deflated()) {
            Some(Some(b)) => b,
            _ => return self.write(f.html.as_bytes(), out),
        };
        gzip_start(started, out);
        deflate_into(deflate, &[], out, flate2::FlushCompress::Full).map_err(|x| eerr(c, x))?;
        out.extend_from_slice(blocks);
        crc.update(f.html.as_bytes());
        Ok(())
    }

    /// Ends the stream (trailer, checksum), appending the last bytes to `out`.
    pub fn finish(self, out: &mut Vec<u8>) -> Result<(), RewriteError> {
        let c = self.coding;
        let mut tail = match self.inner {
            Enc::Identity => return Ok(()),
            Enc::Gzip {
                mut deflate,
                crc,
                mut started,
            } => {
                gzip_start(&mut started, out);
                deflate_into(&mut deflate, &[], out, flate2::FlushCompress::Finish)
                    .map_err(|x| eerr(c, x))?;
                out.extend_from_slice(&crc.sum().to_le_bytes());
                out.extend_from_slice(&crc.amount().to_le_bytes());
                deflate.reset();
                RAW_DEFLATE.give(deflate);
                return Ok(());
            }
            Enc::Zlib(mut e) => {
                let tail = e.reset(Vec::new()).map_err(|x| eerr(c, x))?;
                ZLIB.give(e);
                tail
            }
            Enc::Brotli(mut e) => {
                e.flush().map_err(|x| eerr(c, x))?;
                e.into_inner()
            }
            Enc::Zstd(e) => e.finish().map_err(|x| eerr(c, x))?,
        };
        out.append(&mut tail);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(coding: Coding, data: &[u8], chunk: usize) -> Vec<u8> {
        let mut enc = Encoder::new(coding).unwrap();
        let mut compressed = Vec::new();
        for c in data.chunks(chunk) {
            enc.write(c, &mut compressed).unwrap();
        }
        enc.finish(&mut compressed).unwrap();
        let mut dec = Decoder::new(coding).unwrap();
        let mut plain = Vec::new();
        let mut sink = |b: &[u8]| {
            plain.extend_from_slice(b);
            Ok(())
        };
        for c in compressed.chunks(chunk) {
            dec.write(c, &mut sink).unwrap();
        }
        dec.finish(&mut sink).unwrap();
        plain
    }

    /// Pooled deflate streams: the gzip framing written here is flate2's byte for byte, and a
    /// stream reused after a finished or an abandoned body starts clean.
    #[test]
    fn pooled_streams_start_clean() {
        let page: Vec<u8> = b"<p>consent</p>".repeat(500);
        let mut reference = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for c in page.chunks(1000) {
            reference.write_all(c).unwrap();
            reference.flush().unwrap();
        }
        let reference = reference.finish().unwrap();
        for round in 0..(2 * POOLED_DEFLATE) {
            // An abandoned body in between: its stream is dropped, not pooled.
            let mut abandoned = Encoder::new(Coding::Gzip).unwrap();
            abandoned.write(b"<p>half", &mut Vec::new()).unwrap();
            drop(abandoned);
            for coding in [Coding::Gzip, Coding::Deflate] {
                let mut enc = Encoder::new(coding).unwrap();
                let mut out = Vec::new();
                for c in page.chunks(1000) {
                    enc.write(c, &mut out).unwrap();
                }
                enc.finish(&mut out).unwrap();
                assert_eq!(decode_all(coding, &out).unwrap(), page, "round {round}");
                if coding == Coding::Gzip {
                    assert_eq!(out, reference, "round {round}");
                }
            }
        }
    }

    /// A fragment inserted between writes reads back in place in every coding; in gzip a large
    /// one's deflate blocks (made once, at the best level) are in the output as they are, and
    /// a small one is compressed with the page.
    #[test]
    fn fragments_read_back_where_inserted() {
        let large = Fragment::new("<div class=banner>Accept or refuse</div>".repeat(150));
        let small = Fragment::new("<a href=/__consent/settings>Privacy settings</a>");
        let page: Vec<u8> = b"<p>consent matters</p>".repeat(300);
        for (f, coding) in [&large, &small].into_iter().flat_map(|f| {
            [
                Coding::Identity,
                Coding::Gzip,
                Coding::Deflate,
                Coding::Brotli,
                Coding::Zstd,
            ]
            .map(|c| (f, c))
        }) {
            for at in [0, 1, 4000, page.len()] {
                let mut enc = Encoder::new(coding).unwrap();
                let mut out = Vec::new();
                for c in page[..at].chunks(1000) {
                    enc.write(c, &mut out).unwrap();
                }
                enc.insert(f, &mut out).unwrap();
                for c in page[at..].chunks(1000) {
                    enc.write(c, &mut out).unwrap();
                }
                enc.finish(&mut out).unwrap();
                let mut want = page[..at].to_vec();
                want.extend_from_slice(f.html().as_bytes());
                want.extend_from_slice(&page[at..]);
                assert_eq!(
                    decode_all(coding, &out).unwrap(),
                    want,
                    "{coding:?} at {at}"
                );
                if std::ptr::eq(f, &small) {
                    assert!(small.deflated.get().is_none(), "made for {coding:?}");
                } else if coding == Coding::Gzip {
                    let blocks = f.deflated().unwrap();
                    assert!(out.windows(blocks.len()).any(|w| w == blocks), "at {at}");
                }
            }
        }
    }

    #[test]
    fn every_coding_round_trips_in_any_chunking() {
        let data: Vec<u8> = (0..200_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 7) as u8)
            .collect();
        for coding in [
            Coding::Identity,
            Coding::Gzip,
            Coding::Deflate,
            Coding::Brotli,
            Coding::Zstd,
        ] {
            // Byte-by-byte on a short prefix (slow in debug builds), larger chunks on all of it.
            assert_eq!(
                roundtrip(coding, &data[..3000], 1),
                &data[..3000],
                "{coding:?}"
            );
            for chunk in [1000, 70_000] {
                assert_eq!(roundtrip(coding, &data, chunk), data, "{coding:?} {chunk}");
            }
        }
    }

    #[test]
    fn raw_deflate_is_accepted() {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"<p>hello</p>").unwrap();
        let raw = e.finish().unwrap();
        let mut d = Decoder::new(Coding::Deflate).unwrap();
        let mut out = Vec::new();
        d.write(&raw, &mut |b| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        d.finish(&mut |b| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        assert_eq!(out, b"<p>hello</p>");
    }

    #[test]
    fn truncated_or_garbage_streams_are_errors() {
        let mut e = Encoder::new(Coding::Gzip).unwrap();
        let mut gz = Vec::new();
        e.write(&[b'x'; 5000], &mut gz).unwrap();
        e.finish(&mut gz).unwrap();
        for (coding, body) in [
            (Coding::Gzip, gz[..gz.len() - 6].to_vec()),
            (Coding::Gzip, b"not gzip at all".to_vec()),
            (Coding::Brotli, vec![0xff; 64]),
        ] {
            let mut d = Decoder::new(coding).unwrap();
            let r = d
                .write(&body, &mut |_| Ok(()))
                .and_then(|_| d.finish(&mut |_| Ok(())));
            assert!(r.is_err(), "{coding:?}");
        }
    }

    #[test]
    fn compression_bombs_are_refused() {
        let mut e = Encoder::new(Coding::Gzip).unwrap();
        let mut bomb = Vec::new();
        e.write(&vec![b' '; 50 * 1024 * 1024], &mut bomb).unwrap();
        e.finish(&mut bomb).unwrap();
        let mut d = Decoder::new(Coding::Gzip).unwrap().with_max_ratio(100);
        let mut out = 0usize;
        let r = d.write(&bomb, &mut |b| {
            out += b.len();
            Ok(())
        });
        assert!(
            r.is_err(),
            "a {}-byte gzip expanding to 50 MiB must be refused",
            bomb.len()
        );
        assert!(out < 4 * 1024 * 1024, "stopped early: {out} bytes emitted");
        // Ordinary HTML (varied text; gzip ratio well under 20) passes.
        let words = [
            "shop", "product", "price", "basket", "delivery", "review", "colour", "size",
        ];
        let mut x: u32 = 7;
        let mut page = String::new();
        while page.len() < 4 * 1024 * 1024 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            page.push_str(&format!(
                "<li data-id=\"{}\">{} {}</li>",
                x % 100_000,
                words[(x >> 8) as usize % 8],
                x >> 16
            ));
        }
        let mut e = Encoder::new(Coding::Gzip).unwrap();
        let mut gz = Vec::new();
        e.write(page.as_bytes(), &mut gz).unwrap();
        e.finish(&mut gz).unwrap();
        let mut d = Decoder::new(Coding::Gzip).unwrap().with_max_ratio(200);
        assert!(d.write(&gz, &mut |_| Ok(())).is_ok());
    }

    #[test]
    fn header_parsing() {
        assert_eq!(Coding::from_header(None), Some(Coding::Identity));
        assert_eq!(Coding::from_header(Some(" GZip ")), Some(Coding::Gzip));
        assert_eq!(Coding::from_header(Some("br")), Some(Coding::Brotli));
        assert_eq!(Coding::from_header(Some("gzip, br")), None);
        assert_eq!(Coding::from_header(Some("compress")), None);
    }
}
