//! consentgate: a streaming reverse proxy that makes any website honour GDPR consent.
//!
//! The rewriting core (`catalog`, `matcher`, `urlctx`, `policy`, `rewrite`) is pure: bytes in,
//! bytes out, no sockets. The proxy (`proxy`) is a thin streaming shell around it.

pub mod banner;
pub mod catalog;
pub mod cmp;
pub mod codec;
pub mod config;
pub mod csp;
pub mod decision;
pub mod demo;
pub mod discovery;
pub mod error;
pub mod gzappend;
pub mod i18n;
pub mod matcher;
pub mod metrics;
pub mod pipeline;
pub mod policy;
pub mod privacy;
pub mod proxy;
pub(crate) mod rawtag;
pub mod receipts;
pub mod reports;
pub mod rewrite;
pub mod scan;
pub mod server;
pub mod tls;
pub mod urlctx;

/// Maps built from configuration (or bounded) and looked up on every request: foldhash, seeded
/// per process, instead of SipHash. Their keys are not an attacker's to choose en masse, and
/// SipHash lookups were ~5 % of a small page's CPU.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Lower-case hex of `bytes`, in one allocation (ids, hashes, version tags).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}
