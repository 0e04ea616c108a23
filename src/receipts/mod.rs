//! Proof of consent (GDPR Art. 7(1)): every decision is a receipt, chained per site by hash so
//! that tampering shows, written off the request path in batches, and never missing: the consent
//! endpoint sets no cookie until its receipt is committed.
//!
//! A receipt holds no personal data beyond what proof needs: a random id (also in the consent
//! cookie), the time, the site, the policy version, the language shown, the services granted and
//! refused, the method, the user-agent family, optionally a truncated IP, and the id of the same
//! visitor's previous receipt (so a visitor's history can be handed over).

mod log;
mod postgres;
pub mod query;
mod sqlite;

pub use log::{Opener, ReceiptLog, RecordError};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How a decision was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    AcceptAll,
    RejectAll,
    Save,
    /// A chat facade's "open chat".
    Grant,
    /// A decision that withdrew earlier consent.
    Revoke,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::AcceptAll => "accept-all",
            Method::RejectAll => "reject-all",
            Method::Save => "save",
            Method::Grant => "grant",
            Method::Revoke => "revoke",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "accept-all" => Method::AcceptAll,
            "reject-all" => Method::RejectAll,
            "save" => Method::Save,
            "grant" => Method::Grant,
            "revoke" => Method::Revoke,
            _ => return None,
        })
    }
}

/// One consent decision, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub id: String,
    /// Milliseconds since the Unix epoch, UTC.
    pub ts_ms: i64,
    pub site: String,
    pub policy_version: String,
    pub lang: String,
    pub granted: Vec<String>,
    pub refused: Vec<String>,
    pub method: Method,
    /// `Sec-GPC: 1` was present.
    pub gpc: bool,
    pub user_agent: String,
    /// Truncated to /24 (IPv4) or /48 (IPv6), only when configured.
    pub ip: Option<String>,
    /// The same visitor's previous receipt.
    pub previous_receipt: Option<String>,
    /// Hash of the site's previous receipt (the chain).
    pub prev_hash: String,
    /// Hash of this receipt's content and `prev_hash`.
    pub hash: String,
    /// Erased on request: personal fields cleared, hash kept so the chain still verifies.
    pub erased: bool,
}

/// A stored comma-separated service list.
pub(crate) fn split_ids(s: String) -> Vec<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// A new random receipt id (128 bits, hex).
pub fn new_id() -> String {
    crate::hex(&rand::random::<[u8; 16]>())
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The user-agent family, the only part of the user agent a receipt keeps.
pub fn ua_family(ua: &str) -> &'static str {
    // Order matters: Edge and Opera say "Chrome", Chrome says "Safari".
    if ua.contains("Edg/") {
        "Edge"
    } else if ua.contains("OPR/") {
        "Opera"
    } else if ua.contains("Firefox/") {
        "Firefox"
    } else if ua.contains("Chrome/") || ua.contains("Chromium/") {
        "Chrome"
    } else if ua.contains("Safari/") {
        "Safari"
    } else if ua.is_empty() {
        "none"
    } else {
        "other"
    }
}

/// An IP truncated to its /24 (IPv4) or /48 (IPv6) network.
pub fn truncate_ip(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

impl Receipt {
    /// The hash of the content and the previous hash: any change to a stored receipt, or a
    /// removed or reordered one, breaks the chain.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        let fields = [
            "v1",
            &self.id,
            &self.ts_ms.to_string(),
            &self.site,
            &self.policy_version,
            &self.lang,
            &self.granted.join(","),
            &self.refused.join(","),
            self.method.as_str(),
            if self.gpc { "gpc" } else { "" },
            &self.user_agent,
            self.ip.as_deref().unwrap_or(""),
            self.previous_receipt.as_deref().unwrap_or(""),
            &self.prev_hash,
        ];
        for f in fields {
            h.update((f.len() as u64).to_le_bytes());
            h.update(f.as_bytes());
        }
        crate::hex(&h.finalize())
    }

    /// Links this receipt after `prev_hash` and seals it.
    pub fn seal(&mut self, prev_hash: &str) {
        self.prev_hash = prev_hash.to_string();
        self.hash = self.compute_hash();
    }

    /// The tombstone left by an erasure: what proves the chain, nothing about the visitor.
    pub fn tombstone(&mut self) {
        self.lang.clear();
        self.granted.clear();
        self.refused.clear();
        self.user_agent.clear();
        self.ip = None;
        self.previous_receipt = None;
        self.gpc = false;
        self.erased = true;
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("receipt store: {0}")]
    Backend(String),
}

/// Where receipts live. Each user (the writer, an admin request) opens its own connection.
pub trait Store: Send {
    /// Appends receipts in order, each sealed after the last receipt of its site, atomically.
    fn append(&mut self, receipts: &mut [Receipt]) -> Result<(), StoreError>;
    fn get(&mut self, id: &str) -> Result<Option<Receipt>, StoreError>;
    /// Replaces a receipt by its tombstone; `false` if there is none with that id.
    fn erase(&mut self, id: &str) -> Result<bool, StoreError>;
    /// Receipts in chain order (per site, oldest first), filtered; `each` returns `false` to stop.
    fn list(
        &mut self,
        site: Option<&str>,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        each: &mut dyn FnMut(Receipt) -> bool,
    ) -> Result<(), StoreError>;
    /// Deletes receipts older than `before_ms`; returns how many.
    fn purge(&mut self, before_ms: i64) -> Result<u64, StoreError>;
    fn sites(&mut self) -> Result<Vec<String>, StoreError>;
}

/// The result of walking one site's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    Intact {
        receipts: u64,
    },
    /// The first receipt whose content or link does not match.
    Broken {
        receipts_checked: u64,
        id: String,
        reason: String,
    },
}

/// Walks a site's chain: each receipt must link to the one before it and (unless erased) hash to
/// its stored hash. The oldest remaining receipt is the anchor (retention purges older ones).
pub fn verify(store: &mut dyn Store, site: &str) -> Result<Verified, StoreError> {
    let mut prev: Option<String> = None;
    let mut n = 0u64;
    let mut broken = None;
    store.list(Some(site), None, None, &mut |r| {
        n += 1;
        if let Some(p) = &prev {
            if &r.prev_hash != p {
                broken = Some((
                    r.id.clone(),
                    "does not link to the receipt before it".to_string(),
                ));
                return false;
            }
        }
        if !r.erased && r.compute_hash() != r.hash {
            broken = Some((r.id.clone(), "content does not match its hash".to_string()));
            return false;
        }
        prev = Some(r.hash.clone());
        true
    })?;
    Ok(match broken {
        None => Verified::Intact { receipts: n },
        Some((id, reason)) => Verified::Broken {
            receipts_checked: n,
            id,
            reason,
        },
    })
}

/// How long to wait for a batch to fill before committing it.
pub const BATCH_WINDOW: Duration = Duration::from_millis(20);

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(site: &str) -> Receipt {
        Receipt {
            id: new_id(),
            ts_ms: now_ms(),
            site: site.into(),
            policy_version: "abcd".into(),
            lang: "en".into(),
            granted: vec!["youtube".into()],
            refused: vec!["meta-pixel".into()],
            method: Method::Save,
            gpc: false,
            user_agent: "Firefox".into(),
            ip: None,
            previous_receipt: None,
            prev_hash: String::new(),
            hash: String::new(),
            erased: false,
        }
    }

    #[test]
    fn hashes_cover_every_field() {
        let mut r = sample("s");
        r.seal("");
        let h = r.hash.clone();
        let mut t = r.clone();
        t.granted.push("meta-pixel".into());
        assert_ne!(t.compute_hash(), h);
        let mut t = r.clone();
        t.seal("x");
        assert_ne!(t.hash, h);
        // Field boundaries are unambiguous.
        let mut a = sample("s");
        a.lang = "en".into();
        a.policy_version = "ab".into();
        let mut b = a.clone();
        b.lang = "".into();
        b.policy_version = "aben".into();
        assert_ne!(a.compute_hash(), b.compute_hash());
    }

    #[test]
    fn ua_and_ip() {
        assert_eq!(ua_family("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"), "Chrome");
        assert_eq!(
            ua_family("Mozilla/5.0 ... Chrome/120.0 Safari/537.36 Edg/120.0"),
            "Edge"
        );
        assert_eq!(
            ua_family("Mozilla/5.0 (X11; rv:120.0) Gecko/20100101 Firefox/120.0"),
            "Firefox"
        );
        assert_eq!(
            ua_family(
                "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1"
            ),
            "Safari"
        );
        assert_eq!(
            truncate_ip("203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            truncate_ip("2001:db8:85a3:8d3:1319:8a2e:370:7348".parse().unwrap()),
            "2001:db8:85a3::/48"
        );
    }
}
