//! Appending to a gzip body without re-compressing it (the idea of zlib's `gzappend`): the
//! origin's deflate blocks pass through as they are, except that the last block's BFINAL bit is
//! cleared; the appended bytes follow as a stored block that ends the stream, and the trailer's
//! CRC-32 and length are combined from the origin's and the appended bytes'. A fully consented
//! gzip page then costs a scan of its Huffman codes instead of an inflate and a deflate.
//!
//! Finding a block's end needs its codes decoded (deflate marks no boundaries), so `Scanner`
//! decodes symbols without producing any output: it only tracks bit positions. It resumes at
//! symbol granularity when input arrives in pieces, so the body streams through holding at most
//! a few hundred bytes. Anything that is not a well-formed single gzip member is an error, as
//! for a decoder.

use std::sync::{Arc, OnceLock};

use crate::error::RewriteError;

fn bad(msg: &'static str) -> RewriteError {
    RewriteError::Decode {
        encoding: "gzip",
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, msg),
    }
}

/// A canonical Huffman code: codes up to `FAST_BITS` long are looked up in one step, longer
/// ones bit by bit (as in zlib's `puff`).
struct Huffman {
    /// Number of codes of each length (index 0 unused).
    count: [u16; 16],
    /// Symbols ordered by code.
    symbol: [u16; 288],
    /// Indexed by the next `bits` input bits: (symbol, length, extra bits that follow it),
    /// length 0 when longer (or a symbol deflate does not allow, left to the slow path to
    /// report). Room for `FAST_BITS`; only the first `1 << bits` entries are in use.
    fast: Vec<(u16, u8, u8)>,
    /// What the symbols are: how many extra bits follow each.
    alphabet: Alphabet,
    /// The lookup width: `FAST_BITS`, or the longest code if shorter. A flushed stream is many
    /// small blocks whose distance and code-length codes are short: filling 1024 entries for
    /// each of them cost more than walking the block.
    bits: u32,
    mask: u64,
    /// `fast` is all zeros (new, not built yet).
    clean: bool,
}

const FAST_BITS: u32 = 10;

/// The three alphabets of deflate, for the extra bits after a symbol.
#[derive(Clone, Copy)]
enum Alphabet {
    LiteralLength,
    Distance,
    CodeLength,
}

impl Alphabet {
    /// Extra bits after `sym`, `None` for a symbol deflate does not allow.
    fn extra(self, sym: u16) -> Option<u8> {
        match self {
            Alphabet::LiteralLength if sym <= 256 => Some(0),
            Alphabet::LiteralLength => LEN_EXTRA.get(usize::from(sym - 257)).copied(),
            Alphabet::Distance => DIST_EXTRA.get(usize::from(sym)).copied(),
            Alphabet::CodeLength => Some(0),
        }
    }
}

impl Huffman {
    fn empty(alphabet: Alphabet) -> Self {
        Huffman {
            count: [0; 16],
            symbol: [0; 288],
            fast: vec![(0, 0, 0); 1 << FAST_BITS],
            alphabet,
            bits: 1,
            mask: 1,
            clean: true,
        }
    }

    fn new(alphabet: Alphabet, lengths: &[u8]) -> Result<Self, RewriteError> {
        let mut h = Huffman::empty(alphabet);
        h.build(lengths)?;
        Ok(h)
    }

    /// Makes this the code of `lengths` (at most 288), reusing the tables' memory.
    fn build(&mut self, lengths: &[u8]) -> Result<(), RewriteError> {
        if lengths.len() > self.symbol.len() {
            return Err(bad("too many Huffman codes"));
        }
        let mut count = [0u16; 16];
        for &l in lengths {
            count[usize::from(l & 15)] += 1;
        }
        count[0] = 0;
        // Over-subscribed codes are invalid; incomplete ones fail when a missing code is met.
        let mut left: i32 = 1;
        for &c in &count[1..] {
            left = (left << 1) - i32::from(c);
            if left < 0 {
                return Err(bad("over-subscribed Huffman code"));
            }
        }
        let mut offs = [0u16; 16];
        for len in 1..15 {
            offs[len + 1] = offs[len] + count[len];
        }
        for (s, &l) in lengths.iter().enumerate() {
            if l != 0 {
                let o = &mut offs[usize::from(l & 15)];
                self.symbol[usize::from(*o)] = s as u16;
                *o += 1;
            }
        }
        self.count = count;
        let longest = (1..16u32)
            .rev()
            .find(|&l| count[l as usize] != 0)
            .unwrap_or(1);
        let bits = longest.min(FAST_BITS);
        self.bits = bits;
        self.mask = (1 << bits) - 1;
        let fast = &mut self.fast[..1 << bits];
        // Entries no code of up to `bits` covers (the prefixes of longer codes, the gaps of an
        // incomplete code) must read as length 0; when the short codes cover all, every entry
        // is written below anyway.
        let covered: u32 = (1..=bits)
            .map(|l| u32::from(count[l as usize]) << (bits - l))
            .sum();
        if covered != 1 << bits && !self.clean {
            fast.fill((0, 0, 0));
        }
        self.clean = false;
        // Codes in canonical order, reversed into the order deflate sends their bits.
        let (mut code, mut index) = (0u32, 0usize);
        for len in 1..=bits {
            for _ in 0..count[len as usize] {
                let rev = code.reverse_bits() >> (32 - len);
                let sym = self.symbol[index];
                let entry = match self.alphabet.extra(sym) {
                    Some(extra) => (sym, len as u8, extra),
                    None => (sym, 0, 0),
                };
                let mut k = rev;
                while k < (1 << bits) {
                    fast[k as usize] = entry;
                    k += 1 << len;
                }
                code += 1;
                index += 1;
            }
            code <<= 1;
        }
        Ok(())
    }

    /// The next symbol at bit `pos`, and its length; `None` when more input is needed.
    fn decode(&self, r: &Bits<'_>, pos: usize) -> Result<Option<(u16, u32)>, RewriteError> {
        let avail = r.avail(pos);
        // One read for the longest code; bits past the input read as 0 and are never used.
        let mut peek = r.peek(pos, 15.min(avail));
        let (sym, len, _) = self.fast[(u64::from(peek) & self.mask) as usize];
        if len != 0 && u32::from(len) <= avail {
            return Ok(Some((sym, u32::from(len))));
        }
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16u32 {
            if len > avail {
                return Ok(None);
            }
            code |= (peek & 1) as i32;
            peek >>= 1;
            let count = i32::from(self.count[len as usize]);
            if code - count < first {
                let i = (index + code - first) as usize;
                return Ok(Some((self.symbol[i], len)));
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err(bad("invalid Huffman code"))
    }
}

/// Bits of a byte buffer, least significant bit first, as deflate packs them.
struct Bits<'a>(&'a [u8]);

impl Bits<'_> {
    fn avail(&self, pos: usize) -> u32 {
        (self.0.len() * 8).saturating_sub(pos).min(64) as u32
    }

    /// `n` (at most 32) bits from `pos`; bits past the end read as 0.
    fn peek(&self, pos: usize, n: u32) -> u32 {
        let (byte, shift) = (pos / 8, pos % 8);
        let v = match self.0.get(byte..byte + 8) {
            Some(b) => u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            None => {
                let mut v = 0u64;
                for (i, b) in self.0.iter().skip(byte).take(5).enumerate() {
                    v |= u64::from(*b) << (8 * i);
                }
                v
            }
        };
        ((v >> shift) & ((1u64 << n) - 1)) as u32
    }
}

const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// Extra bits after length symbol `sym` (257..=285); 286 and 287 are invalid.
fn len_extra(sym: u16) -> Result<u32, RewriteError> {
    let i = usize::from(sym.saturating_sub(257));
    LEN_EXTRA
        .get(i)
        .map(|&e| u32::from(e))
        .ok_or_else(|| bad("invalid length"))
}

/// Extra bits after distance symbol `d`; 30 and 31 are invalid.
fn dist_extra(d: u16) -> Result<u32, RewriteError> {
    DIST_EXTRA
        .get(usize::from(d))
        .map(|&e| u32::from(e))
        .ok_or_else(|| bad("invalid distance"))
}

const CL_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// A Huffman block's literal/length and distance codes.
type Codes = (Huffman, Huffman);

enum Block {
    /// At a block header.
    Header,
    /// Inside a stored block: bytes left to skip (after its length fields).
    Stored(usize),
    /// Inside a Huffman block (the fixed codes are built once and shared).
    Codes(Arc<Codes>),
}

/// The fixed codes of RFC 1951 §3.2.6: a stream flushed often is mostly short fixed blocks.
fn fixed_codes() -> Result<Arc<Codes>, RewriteError> {
    static FIXED: OnceLock<Option<Arc<Codes>>> = OnceLock::new();
    FIXED
        .get_or_init(|| {
            let mut lengths = [8u8; 288];
            lengths[144..256].fill(9);
            lengths[256..280].fill(7);
            let codes = (
                Huffman::new(Alphabet::LiteralLength, &lengths).ok()?,
                Huffman::new(Alphabet::Distance, &[5; 30]).ok()?,
            );
            Some(Arc::new(codes))
        })
        .clone()
        .ok_or_else(|| bad("fixed Huffman codes"))
}

/// Walks a raw deflate stream held in a buffer, to the bit.
/// The page's first byte, as far as a BOM check needs it (read off the first block's first
/// symbol, with the tables the walk builds anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum First {
    /// The first block header is not read yet.
    Pending,
    Byte(u8),
    /// The page is empty.
    Empty,
    /// Not at hand (an empty first block, or its first symbol not in yet): inflate to see.
    Unknown,
}

struct Scanner {
    first: First,
    block: Block,
    /// Tables kept for the next dynamic block: the code-length code, and the last dynamic
    /// block's codes once it is done (rebuilt in place rather than allocated per block).
    tables: Tables,
    /// The block being walked is the last one (its BFINAL bit was set).
    last: bool,
}

/// What the scanner found in the bytes it was given.
enum Step {
    /// Needs more input; everything before bit `pos` is walked.
    More,
    /// A block header at bit `at`, with BFINAL set: the last block.
    LastHeader { at: usize },
    /// The last block ended at bit `end`.
    End { end: usize },
}

impl Scanner {
    fn new() -> Self {
        Scanner {
            first: First::Pending,
            block: Block::Header,
            tables: Tables::default(),
            last: false,
        }
    }

    /// Walks from bit `*pos` as far as the input allows, stopping early at the last block's
    /// header (so its BFINAL bit can be cleared before the byte leaves).
    fn walk(&mut self, buf: &[u8], pos: &mut usize) -> Result<Step, RewriteError> {
        let r = Bits(buf);
        loop {
            match &mut self.block {
                Block::Header => {
                    let Some((p, block, last)) = read_header(&r, *pos, &mut self.tables)? else {
                        return Ok(Step::More);
                    };
                    if self.first == First::Pending {
                        self.first = first_of(&r, p, &block, last)?;
                    }
                    let at = *pos;
                    *pos = p;
                    self.block = block;
                    if last {
                        self.last = true;
                        return Ok(Step::LastHeader { at });
                    }
                }
                Block::Stored(left) => {
                    let have = (buf.len() * 8).saturating_sub(*pos) / 8;
                    let n = have.min(*left);
                    *left -= n;
                    *pos += n * 8;
                    if *left > 0 {
                        return Ok(Step::More);
                    }
                    if let Some(step) = self.block_done(*pos) {
                        return Ok(step);
                    }
                }
                Block::Codes(codes) => {
                    let (lit, dist) = (&codes.0, &codes.1);
                    loop {
                        if walk_fast(lit, dist, buf, pos)? {
                            break;
                        }
                        // A long code, or near the end of the input: one symbol carefully.
                        match walk_one(lit, dist, &r, pos)? {
                            None => return Ok(Step::More),
                            Some(true) => break,
                            Some(false) => {}
                        }
                    }
                    if let Some(step) = self.block_done(*pos) {
                        return Ok(step);
                    }
                }
            }
        }
    }

    fn block_done(&mut self, pos: usize) -> Option<Step> {
        if let Block::Codes(codes) = std::mem::replace(&mut self.block, Block::Header) {
            // Only a dynamic block's codes are ours alone (the fixed ones are shared).
            if Arc::strong_count(&codes) == 1 {
                self.tables.spare = Some(codes);
            }
        }
        self.last.then_some(Step::End { end: pos })
    }
}

/// Walks symbols while 8 input bytes are readable at `*pos`. Each 64-bit read serves several
/// symbols: a literal/length code, its extra bits, the distance code and its extra bits (at
/// most 38 bits with codes up to `FAST_BITS` long) are taken off it for as long as they fit
/// in the bits it has left. Stops at a code longer than `FAST_BITS` (or one deflate does not
/// allow), left to `walk_one`; true at the block's end.
fn walk_fast(
    lit: &Huffman,
    dist: &Huffman,
    buf: &[u8],
    pos: &mut usize,
) -> Result<bool, RewriteError> {
    while let Some(w) = buf.get(*pos / 8..*pos / 8 + 8) {
        let Ok(w) = <[u8; 8]>::try_from(w) else {
            break;
        };
        let shift = (*pos % 8) as u32;
        let mut v = u64::from_le_bytes(w) >> shift;
        // Bits of `v` that are input. A table entry whose length fits in them was looked up
        // correctly: an entry depends only on its code's own bits, not on the zeros above.
        let mut left = 64 - shift;
        let stop = loop {
            let (sym, n, extra) = lit.fast[(v & lit.mask) as usize];
            let n = u32::from(n);
            if n == 0 {
                // Too few bits left to tell a code of up to `bits` from a longer one: read on.
                break (left >= lit.bits).then_some(false);
            }
            if n > left {
                break None;
            }
            if sym < 256 {
                v >>= n;
                left -= n;
                continue;
            }
            if sym == 256 {
                left -= n;
                break Some(true);
            }
            let used = n + u32::from(extra);
            let (_, dn, dextra) = dist.fast[((v >> used) & dist.mask) as usize];
            if dn == 0 {
                break (left >= used + dist.bits).then_some(false);
            }
            let used = used + u32::from(dn) + u32::from(dextra);
            if used > left {
                break None;
            }
            v >>= used;
            left -= used;
        };
        *pos += (64 - shift - left) as usize;
        match stop {
            Some(true) => return Ok(true),
            Some(false) => return Ok(false),
            None => {}
        }
    }
    Ok(false)
}

/// One symbol (with its distance) at `*pos`, decoded bit by bit where needed: `Some(true)` at
/// the block's end, `None` when the input stops first (then `*pos` is unchanged).
fn walk_one(
    lit: &Huffman,
    dist: &Huffman,
    r: &Bits<'_>,
    pos: &mut usize,
) -> Result<Option<bool>, RewriteError> {
    let mut p = *pos;
    let Some((sym, n)) = lit.decode(r, p)? else {
        return Ok(None);
    };
    p += n as usize;
    if sym <= 256 {
        *pos = p;
        return Ok(Some(sym == 256));
    }
    p += len_extra(sym)? as usize;
    let Some((d, n)) = dist.decode(r, p)? else {
        return Ok(None);
    };
    p += n as usize;
    p += dist_extra(d)? as usize;
    if p > r.0.len() * 8 {
        return Ok(None);
    }
    *pos = p;
    Ok(Some(false))
}

/// A block header at `pos`: where its data starts, what it is, and BFINAL. `None` when the
/// header is not all in `r` yet.
fn read_header(
    r: &Bits<'_>,
    pos: usize,
    tables: &mut Tables,
) -> Result<Option<(usize, Block, bool)>, RewriteError> {
    if r.avail(pos) < 3 {
        return Ok(None);
    }
    let last = r.peek(pos, 1) == 1;
    let kind = r.peek(pos + 1, 2);
    let mut p = pos + 3;
    let block = match kind {
        0 => {
            p = p.div_ceil(8) * 8;
            if r.avail(p) < 32 {
                return Ok(None);
            }
            let (len, nlen) = (r.peek(p, 16), r.peek(p + 16, 16));
            if len != !nlen & 0xffff {
                return Err(bad("stored block length check failed"));
            }
            p += 32;
            Block::Stored(len as usize)
        }
        1 => Block::Codes(fixed_codes()?),
        2 => match read_dynamic(r, p, tables)? {
            Some((q, codes)) => {
                p = q;
                Block::Codes(codes)
            }
            None => return Ok(None),
        },
        _ => return Err(bad("invalid block type")),
    };
    Ok(Some((p, block, last)))
}

/// Memory for the code tables of dynamic blocks, reused from block to block.
#[derive(Default)]
struct Tables {
    cl: Option<Huffman>,
    spare: Option<Arc<Codes>>,
}

/// The code tables of a dynamic block whose header data starts at `pos`.
fn read_dynamic(
    r: &Bits<'_>,
    mut p: usize,
    tables: &mut Tables,
) -> Result<Option<(usize, Arc<Codes>)>, RewriteError> {
    if r.avail(p) < 14 {
        return Ok(None);
    }
    let nlen = r.peek(p, 5) as usize + 257;
    let ndist = r.peek(p + 5, 5) as usize + 1;
    let ncode = r.peek(p + 10, 4) as usize + 4;
    p += 14;
    if nlen > 286 || ndist > 30 {
        return Err(bad("too many length or distance codes"));
    }
    let mut cl = [0u8; 19];
    for &i in CL_ORDER.iter().take(ncode) {
        if r.avail(p) < 3 {
            return Ok(None);
        }
        cl[i] = r.peek(p, 3) as u8;
        p += 3;
    }
    let clcode = tables
        .cl
        .get_or_insert_with(|| Huffman::empty(Alphabet::CodeLength));
    clcode.build(&cl)?;
    let mut lengths = [0u8; 286 + 30];
    let mut i = 0;
    while i < nlen + ndist {
        let Some((sym, n)) = clcode.decode(r, p)? else {
            return Ok(None);
        };
        p += n as usize;
        let (value, bits, base) = match sym {
            0..=15 => {
                lengths[i] = sym as u8;
                i += 1;
                continue;
            }
            16 => {
                let prev = i
                    .checked_sub(1)
                    .ok_or_else(|| bad("repeat with no length"))?;
                (lengths[prev], 2, 3)
            }
            17 => (0, 3, 3),
            _ => (0, 7, 11),
        };
        if r.avail(p) < bits {
            return Ok(None);
        }
        let times = base + r.peek(p, bits) as usize;
        p += bits as usize;
        if i + times > nlen + ndist {
            return Err(bad("too many code lengths"));
        }
        lengths[i..i + times].fill(value);
        i += times;
    }
    if lengths[256] == 0 {
        return Err(bad("no end-of-block code"));
    }
    // The spare is the last block's, kept only when nothing else held it.
    let (mut lit, mut dist) = tables
        .spare
        .take()
        .and_then(|c| Arc::try_unwrap(c).ok())
        .unwrap_or_else(|| {
            (
                Huffman::empty(Alphabet::LiteralLength),
                Huffman::empty(Alphabet::Distance),
            )
        });
    lit.build(&lengths[..nlen])?;
    dist.build(&lengths[nlen..nlen + ndist])?;
    Ok(Some((p, Arc::new((lit, dist)))))
}

enum Phase {
    /// Reading the member header (passed on unchanged once complete).
    Header,
    /// Walking the deflate blocks.
    Deflate,
    /// The last block ended `used` bits into `buf[0]` (0: at a byte boundary, `buf[0]` is
    /// the trailer's first byte); the trailer and anything after it are in `buf`.
    Trailer { used: usize },
}

/// Bytes after the member's end held for `finish` (a trailer is 8): more is an error.
const MAX_AFTER_MEMBER: usize = 64 * 1024;

/// A gzip body streamed through with bytes appended at its end (see the module docs).
pub struct GzipAppend {
    phase: Phase,
    /// Input not passed on yet: the header so far, the byte holding a block header not read
    /// yet and what follows it, or the last byte and the trailer.
    buf: Vec<u8>,
    /// Bit position in `buf` up to which the blocks are walked.
    pos: usize,
    scanner: Scanner,
}

impl Default for GzipAppend {
    fn default() -> Self {
        Self::new()
    }
}

impl GzipAppend {
    pub fn new() -> Self {
        GzipAppend {
            phase: Phase::Header,
            buf: Vec::new(),
            pos: 0,
            scanner: Scanner::new(),
        }
    }

    /// The page's first byte as far as the walk has seen it.
    pub fn first(&self) -> First {
        self.scanner.first
    }

    /// Feeds compressed input; appends to `out` what can go on already.
    pub fn write(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        // The held bytes and the input are walked where they go, at the end of `out` (one
        // copy of the input); what cannot go yet is moved back into `buf` (a few bytes).
        let start = out.len();
        out.extend_from_slice(&self.buf);
        out.extend_from_slice(input);
        self.buf.clear();
        match self.walk_held(out, start) {
            Ok(held) => {
                self.buf.extend_from_slice(&out[held..]);
                out.truncate(held);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// Walks `out[from..]`; returns where the bytes that cannot go yet start.
    fn walk_held(&mut self, out: &mut [u8], mut from: usize) -> Result<usize, RewriteError> {
        if let Phase::Header = self.phase {
            let Some(n) = header_len(&out[from..])? else {
                return Ok(from);
            };
            from += n;
            self.phase = Phase::Deflate;
        }
        if let Phase::Trailer { .. } = self.phase {
            // Only the trailer is needed here; a second member after it is kept for the end,
            // but not without bound.
            if out.len() - from > MAX_AFTER_MEMBER {
                return Err(bad("too much data after the gzip member"));
            }
        }
        if let Phase::Deflate = self.phase {
            let held = &mut out[from..];
            loop {
                match self.scanner.walk(held, &mut self.pos)? {
                    Step::More => break,
                    Step::LastHeader { at } => {
                        // The origin's last block is ours no longer: clear its BFINAL bit.
                        held[at / 8] &= !(1u8 << (at % 8));
                    }
                    Step::End { end } => {
                        self.phase = Phase::Trailer { used: end % 8 };
                        self.pos = 0;
                        return Ok(from + end / 8);
                    }
                }
            }
            // Whole bytes behind the walk go on; the byte the walk stands in stays.
            let done = self.pos / 8;
            self.pos -= done * 8;
            from += done;
        }
        Ok(from)
    }

    /// Ends the body with `tail` appended; writes the rest of the stream and the trailer.
    pub fn finish(mut self, tail: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        let Phase::Trailer { used } = self.phase else {
            return Err(bad("gzip stream ends early"));
        };
        let deflate_end = usize::from(used > 0);
        let trailer = self
            .buf
            .get(deflate_end..deflate_end + 8)
            .ok_or_else(|| bad("gzip trailer cut short"))?;
        let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        let after = self.buf.split_off(deflate_end + 8);
        // Stored blocks (at most 65,535 bytes each), the first one starting `used` bits into
        // the last byte of the origin's data; only the last is final.
        let mut pieces = tail.chunks(0xffff).peekable();
        let mut first = true;
        loop {
            let piece = pieces.next().unwrap_or_default();
            let last = pieces.peek().is_none();
            let bfinal = u8::from(last);
            if first && used > 0 {
                // BFINAL at bit `used`, then BTYPE 00 and padding: one or two bytes.
                out.push((self.buf[0] & ((1u8 << used) - 1)) | (bfinal << used));
                if used + 3 > 8 {
                    out.push(0);
                }
            } else {
                out.push(bfinal);
            }
            first = false;
            let len = piece.len() as u16;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(piece);
            if last {
                break;
            }
        }
        let mut sum = crc32fast::Hasher::new_with_initial_len(crc, u64::from(size));
        let mut added = crc32fast::Hasher::new();
        added.update(tail);
        sum.combine(&added);
        out.extend_from_slice(&sum.finalize().to_le_bytes());
        out.extend_from_slice(&size.wrapping_add(tail.len() as u32).to_le_bytes());
        // A second member after the first goes on as it came (browsers ignore it).
        out.extend_from_slice(&after);
        Ok(())
    }
}

/// The first byte of the page, from the first block whose data starts at bit `p`.
fn first_of(r: &Bits<'_>, p: usize, block: &Block, last: bool) -> Result<First, RewriteError> {
    Ok(match block {
        Block::Stored(0) if last => First::Empty,
        Block::Stored(0) | Block::Header => First::Unknown,
        Block::Stored(_) => r.0.get(p / 8).map_or(First::Unknown, |b| First::Byte(*b)),
        Block::Codes(codes) => match codes.0.decode(r, p)? {
            Some((s, _)) if s < 256 => First::Byte(s as u8),
            Some((256, _)) if last => First::Empty,
            _ => First::Unknown,
        },
    })
}

/// The first `n` bytes of the page in the gzip stream `gz` has so far (fewer if the page is
/// shorter), or `None` while more input could still yield more. Inflates only that far.
pub fn peek_plain(gz: &[u8], n: usize) -> Result<Option<Vec<u8>>, RewriteError> {
    let Some(h) = header_len(gz)? else {
        return Ok(None);
    };
    let mut inflate = flate2::Decompress::new(false);
    let mut out = vec![0u8; n];
    let status = inflate
        .decompress(&gz[h..], &mut out, flate2::FlushDecompress::None)
        .map_err(|_| bad("corrupt deflate data"))?;
    let got = usize::try_from(inflate.total_out()).unwrap_or(n).min(n);
    out.truncate(got);
    Ok((got == n || status == flate2::Status::StreamEnd).then_some(out))
}

/// The length of the gzip member header at the start of `b` (RFC 1952 §2.3), `None` while
/// incomplete.
fn header_len(b: &[u8]) -> Result<Option<usize>, RewriteError> {
    if b.len() < 10 {
        return Ok(None);
    }
    if b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 || b[3] & 0xe0 != 0 {
        return Err(bad("not a gzip member header"));
    }
    let flags = b[3];
    let mut n = 10;
    if flags & 4 != 0 {
        let Some(x) = b.get(n..n + 2) else {
            return Ok(None);
        };
        n += 2 + usize::from(u16::from_le_bytes([x[0], x[1]]));
    }
    for bit in [8, 16] {
        if flags & bit != 0 {
            let Some(z) = b.get(n..).and_then(|r| memchr::memchr(0, r)) else {
                return Ok(None);
            };
            n += z + 1;
        }
    }
    if flags & 2 != 0 {
        n += 2;
    }
    Ok((b.len() >= n).then_some(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn gunzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data).read_to_end(&mut out)?;
        Ok(out)
    }

    /// Text with repeats (so there are matches of every distance) and noise (literals).
    fn page(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let mut out = Vec::with_capacity(len);
        let words: [&[u8]; 6] = [
            b"<p>consent ",
            b"gateway ",
            b"</div>\n",
            b"\xc3\xa4 ",
            b"tracker ",
            b"<script src=x>",
        ];
        while out.len() < len {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            match x >> 61 {
                0 => out.push((x >> 24) as u8),
                1 if out.len() > 40 => {
                    let from = (x >> 20) as usize % out.len();
                    let n = ((x >> 8) as usize % 40).min(out.len() - from);
                    out.extend_from_within(from..from + n);
                }
                _ => out.extend_from_slice(words[(x >> 33) as usize % words.len()]),
            }
        }
        out.truncate(len);
        out
    }

    fn gzip(data: &[u8], level: u32, flush_every: usize, name: bool) -> Vec<u8> {
        let mut b = flate2::GzBuilder::new();
        if name {
            b = b.filename("page.html").comment("c").extra(vec![1, 2, 3]);
        }
        let mut e = b.write(Vec::new(), flate2::Compression::new(level));
        for c in data.chunks(flush_every.max(1)) {
            e.write_all(c).unwrap();
            if flush_every > 0 {
                e.flush().unwrap();
            }
        }
        e.finish().unwrap()
    }

    fn append(gz: &[u8], chunk: usize, tail: &[u8]) -> Result<Vec<u8>, RewriteError> {
        let mut a = GzipAppend::new();
        let mut out = Vec::new();
        for c in gz.chunks(chunk.max(1)) {
            a.write(c, &mut out)?;
        }
        a.finish(tail, &mut out)?;
        Ok(out)
    }

    /// Every level (stored, fixed and dynamic blocks), flushes (empty stored blocks, blocks
    /// ending on any bit), header fields, chunkings and tail sizes (over one stored block's
    /// 65,535 bytes too): the result is a valid gzip member of the page followed by the tail.
    #[test]
    fn appended_streams_decode_to_page_and_tail() {
        let tails: [&[u8]; 3] = [
            b"",
            b"<a href=/__consent/settings>Privacy settings</a>",
            &[b'x'; 70_000],
        ];
        let mut cases = 0;
        for (seed, len) in [(1, 0), (2, 1), (3, 700), (4, 20_000), (5, 150_000)] {
            let data = page(seed, len);
            for level in [0, 1, 6, 9] {
                for flush in [0, 997] {
                    let gz = gzip(&data, level, flush, seed % 2 == 0);
                    for chunk in [1, 5, 64, 4096, usize::MAX] {
                        if chunk == 1 && len > 20_000 {
                            continue;
                        }
                        for tail in tails {
                            let out = append(&gz, chunk, tail).unwrap();
                            let mut want = data.clone();
                            want.extend_from_slice(tail);
                            assert_eq!(
                                gunzip(&out).expect("valid gzip"),
                                want,
                                "len {len} level {level} flush {flush} chunk {chunk}"
                            );
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert!(cases > 400);
    }

    /// Tables are rebuilt in place from block to block: a block whose literal code has codes
    /// longer than the lookup width (their prefixes must read as "longer") after one whose short
    /// codes filled every entry, and short blocks again after it.
    #[test]
    fn blocks_with_long_codes_after_short_ones() {
        let mut x = 7u64;
        let mut skewed = Vec::new();
        while skewed.len() < 60_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Geometric-ish over all 256 bytes: rare bytes get codes of 12-15 bits.
            let rare = ((x >> 33) as u8).leading_zeros() as u8;
            skewed.push(rare.wrapping_mul(31).wrapping_add((x >> 59) as u8));
            if x >> 62 == 0 {
                skewed.push((x >> 40) as u8);
            }
        }
        let small = b"abba abab baba ".repeat(100);
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        let mut data = Vec::new();
        for part in [&small[..], &skewed, &small, &skewed, &small] {
            e.write_all(part).unwrap();
            e.flush().unwrap();
            data.extend_from_slice(part);
        }
        let gz = e.finish().unwrap();
        for chunk in [7, 4096, usize::MAX] {
            let out = append(&gz, chunk, b"<a>tail</a>").unwrap();
            let mut want = data.clone();
            want.extend_from_slice(b"<a>tail</a>");
            assert_eq!(gunzip(&out).expect("valid gzip"), want, "chunk {chunk}");
        }
    }

    /// The first byte for the BOM check, off the first block's first symbol; an empty page is
    /// empty; a stream still in its header is pending; an empty first block is left to
    /// `peek_plain`, which inflates.
    #[test]
    fn the_first_byte_for_the_bom_check() {
        let first = |gz: &[u8]| {
            let mut a = GzipAppend::new();
            a.write(gz, &mut Vec::new()).unwrap();
            a.first()
        };
        for (page, want) in [
            (&b"<!doctype html>"[..], First::Byte(b'<')),
            (b"\xef\xbb\xbf<p>", First::Byte(0xef)),
            (b"\xff\xfe<\x00", First::Byte(0xff)),
            (b"", First::Empty),
        ] {
            for level in [0, 1, 9] {
                let gz = gzip(page, level, usize::MAX, true);
                assert_eq!(first(&gz), want, "{page:?} {level}");
                assert_eq!(first(&gz[..10]), First::Pending);
            }
        }
        // Written a byte at a time, zlib-rs's level 1 starts with an empty block.
        let gz = gzip(b"<!doctype html>", 1, 0, false);
        assert_eq!(first(&gz), First::Unknown);
        assert_eq!(peek_plain(&gz, 3).unwrap().as_deref(), Some(&b"<!d"[..]));
        assert_eq!(peek_plain(&gz[..12], 3).unwrap(), None);
    }

    /// The origin's bytes go on as they came but for one bit: appending nothing to a stream
    /// changes only the last block's BFINAL, the end and the trailer.
    #[test]
    fn the_page_passes_through() {
        let data = page(9, 30_000);
        let gz = gzip(&data, 6, 0, false);
        let out = append(&gz, 4096, b"<p>end</p>").unwrap();
        let same = gz.iter().zip(&out).filter(|(a, b)| a == b).count();
        assert!(same >= gz.len() - 8 - 3, "{same} of {}", gz.len());
    }

    /// What follows the member (a second one) goes on after the appended end, up to a bound.
    #[test]
    fn data_after_the_member_is_kept_within_a_bound() {
        let gz = gzip(b"<p>first</p>", 6, usize::MAX, false);
        let mut two = gz.clone();
        two.extend_from_slice(&gzip(b"<p>second</p>", 6, usize::MAX, false));
        let out = append(&two, 7, b"<p>tail</p>").unwrap();
        assert_eq!(gunzip(&out).unwrap(), b"<p>first</p><p>tail</p>");
        assert!(out.ends_with(&two[gz.len()..]));
        let mut big = gz.clone();
        big.extend(std::iter::repeat_n(0u8, 100_000));
        assert!(append(&big, 4096, b"").is_err());
    }

    /// Truncated or damaged input is an error, never a panic or a stream that looks whole.
    /// A gzip member around one fixed-code block of `symbols` (literal/length symbols, each
    /// with the distance symbol that follows a length), written as deflate packs them.
    fn fixed_block(symbols: &[(u16, Option<u16>)]) -> Vec<u8> {
        let (mut out, mut acc, mut n) = (vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff], 0u64, 0);
        let mut put = |v: u64, bits: u32, out: &mut Vec<u8>| {
            acc |= v << n;
            n += bits;
            while n >= 8 {
                out.push(acc as u8);
                acc >>= 8;
                n -= 8;
            }
        };
        // Huffman codes go most significant bit first.
        let code = |c: u32, len: u32| u64::from(c.reverse_bits() >> (32 - len));
        put(0b011, 3, &mut out); // BFINAL, fixed codes
        for &(sym, dist) in symbols {
            let (c, len) = match sym {
                0..=143 => (0x30 + u32::from(sym), 8),
                144..=255 => (0x190 + u32::from(sym) - 144, 9),
                256..=279 => (u32::from(sym) - 256, 7),
                _ => (0xc0 + u32::from(sym) - 280, 8),
            };
            put(code(c, len), len, &mut out);
            if let Some(d) = dist {
                put(code(u32::from(d), 5), 5, &mut out);
            }
        }
        put(0, 7 + 7, &mut out); // end of block, then padding
        out.extend_from_slice(&[0; 8]); // trailer (not checked by the walk)
        out
    }

    #[test]
    fn symbols_deflate_does_not_allow_are_errors() {
        // Enough literals first that the bad symbol is met by the fast walk, and a short run
        // that only the careful one sees.
        for lead in [0, 3, 40] {
            let lits = vec![(u16::from(b'a'), None); lead];
            let ok = fixed_block(&[lits.clone(), vec![(257, Some(0))]].concat());
            assert!(append(&ok, 4096, b"t").is_ok(), "lead {lead}");
            if lead > 0 {
                // The writer above is right: inflate reads the control stream as meant.
                let mut plain = Vec::new();
                flate2::read::DeflateDecoder::new(&ok[10..ok.len() - 8])
                    .read_to_end(&mut plain)
                    .expect("inflate");
                assert_eq!(plain, vec![b'a'; lead + 3]);
            }
            for bad in [
                (286, Some(0)),
                (287, Some(0)),
                (257, Some(30)),
                (257, Some(31)),
            ] {
                let gz = fixed_block(&[lits.clone(), vec![bad]].concat());
                for chunk in [1, 7, 4096] {
                    assert!(
                        append(&gz, chunk, b"t").is_err(),
                        "lead {lead}, {bad:?}, chunk {chunk}"
                    );
                }
            }
        }
    }

    #[test]
    fn broken_streams_are_errors() {
        let data = page(7, 5000);
        let gz = gzip(&data, 6, 0, false);
        for cut in [0, 5, 10, 11, 100, gz.len() - 9, gz.len() - 8, gz.len() - 1] {
            assert!(append(&gz[..cut], 64, b"t").is_err(), "cut at {cut}");
        }
        assert!(append(b"not gzip at all", 4, b"").is_err());
        // Bit flips: an error, or (when the damage still decodes) a stream whose CRC the
        // client checks; never a panic.
        for i in (10..gz.len()).step_by(7) {
            let mut bad = gz.clone();
            bad[i] ^= 0x5a;
            if let Ok(out) = append(&bad, 64, b"t") {
                let _ = gunzip(&out);
            }
        }
    }
}
