//! The visitor's consent decision and its signed cookie.
//!
//! Cookie value: `1.<payload>.<mac>`, both base64url without padding. The payload is
//! `<issued unix seconds>|<policy version>|<granted id>,<granted id>...`; the MAC is HMAC-SHA256
//! over `1.<payload>` with the site key. Service ids (not catalog positions) are stored. The policy
//! version is a hash of the catalog entries and texts in use: when they change, the old decision no
//! longer applies and the visitor is asked again. Anything that does not verify, or was made under
//! another policy version, is "no decision": every non-necessary service stays blocked.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::catalog::{Catalog, Purpose};
use crate::matcher::ServiceSet;

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "1";
/// Cookies longer than this are not parsed (a real one holds a few dozen ids).
const MAX_COOKIE_LEN: usize = 4096;

/// What the visitor decided, in catalog indices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// False until the visitor has answered the banner.
    pub decided: bool,
    /// Services the visitor consented to (necessary services are implied, not stored).
    pub granted: ServiceSet,
    /// When the decision was made (unix seconds), 0 when undecided.
    pub issued: u64,
    /// The receipt that proves it.
    pub receipt: Option<String>,
}

impl Decision {
    pub fn undecided() -> Self {
        Decision::default()
    }

    /// Whether the visitor may be served `service` (by catalog index).
    pub fn allows(&self, catalog: &Catalog, service: usize) -> bool {
        self.granted.contains(service)
            || catalog
                .get(service)
                .is_some_and(|s| s.purpose == Purpose::Necessary)
    }
}

/// Signs and verifies consent cookies with one key, for one policy version.
#[derive(Clone)]
pub struct CookieSigner {
    /// HMAC with the key already absorbed (its inner and outer pads hashed once, not per
    /// cookie): cloned for each signature.
    keyed: HmacSha256,
    version: String,
}

impl std::fmt::Debug for CookieSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieSigner(..)")
    }
}

impl CookieSigner {
    pub fn new(key: &[u8]) -> Self {
        CookieSigner {
            // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
            keyed: <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!()),
            version: String::new(),
        }
    }

    /// A random key; decisions signed with it do not survive a restart.
    pub fn random() -> Self {
        let key: [u8; 32] = rand::random();
        CookieSigner::new(&key)
    }

    /// Binds cookies to a policy version (no `|`): others no longer decode.
    pub fn with_version(mut self, version: &str) -> Self {
        self.version = version.replace('|', "");
        self
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }

    /// The cookie value for a decision.
    pub fn encode(&self, catalog: &Catalog, d: &Decision) -> String {
        let ids: Vec<&str> = d
            .granted
            .iter()
            .filter_map(|i| catalog.get(i).map(|s| s.id.as_str()))
            .collect();
        let receipt = d.receipt.as_deref().unwrap_or("");
        let payload = B64.encode(format!(
            "{}|{}|{receipt}|{}",
            d.issued,
            self.version,
            ids.join(",")
        ));
        let signed = format!("{VERSION}.{payload}");
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        let tag = B64.encode(mac.finalize().into_bytes());
        format!("{signed}.{tag}")
    }

    /// The decision in a cookie value, or `None` when it is missing, malformed, or not signed by
    /// this key. Unknown service ids (removed from the catalog) are ignored.
    pub fn decode(&self, catalog: &Catalog, value: &str) -> Option<Decision> {
        if value.len() > MAX_COOKIE_LEN {
            return None;
        }
        let (signed, tag) = value.rsplit_once('.')?;
        let (ver, payload) = signed.split_once('.')?;
        if ver != VERSION {
            return None;
        }
        let tag = B64.decode(tag).ok()?;
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        mac.verify_slice(&tag).ok()?;
        let payload = String::from_utf8(B64.decode(payload).ok()?).ok()?;
        let mut fields = payload.splitn(4, '|');
        let (issued, version, receipt, ids) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        if version != self.version {
            return None;
        }
        let issued = issued.parse().ok()?;
        let mut granted = ServiceSet::new();
        for id in ids.split(',').filter(|s| !s.is_empty()) {
            if let Some(i) = catalog.index_of(id) {
                granted.insert(i);
            }
        }
        Some(Decision {
            decided: true,
            granted,
            issued,
            receipt: (!receipt.is_empty()).then(|| receipt.to_string()),
        })
    }
}

/// The value of the cookie `name` in a `Cookie` header (RFC 6265 §5.4 shape). The first one wins
/// if a name repeats, as browsers send the most specific path first.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Catalog, CookieSigner) {
        (Catalog::builtin().unwrap(), CookieSigner::new(b"test key"))
    }

    #[test]
    fn round_trip() {
        let (c, s) = setup();
        let mut d = Decision {
            decided: true,
            issued: 1_700_000_000,
            receipt: Some("0123abcd".into()),
            ..Decision::default()
        };
        d.granted.insert(c.index_of("youtube").unwrap());
        d.granted.insert(c.index_of("intercom").unwrap());
        let v = s.encode(&c, &d);
        assert!(v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        assert_eq!(s.decode(&c, &v), Some(d));
    }

    #[test]
    fn tampered_or_foreign_cookies_are_no_decision() {
        let (c, s) = setup();
        let d = Decision {
            decided: true,
            issued: 5,
            ..Decision::default()
        };
        let v = s.encode(&c, &d);
        // Flip one payload character: the MAC no longer verifies.
        let mut bad = v.clone().into_bytes();
        bad[3] = if bad[3] == b'A' { b'B' } else { b'A' };
        assert_eq!(s.decode(&c, std::str::from_utf8(&bad).unwrap()), None);
        // Same payload, other key.
        assert_eq!(CookieSigner::new(b"other").decode(&c, &v), None);
        // Forged payload granting everything, old MAC.
        let (_, tag) = v.rsplit_once('.').unwrap();
        let forged = format!("1.{}.{tag}", B64.encode("5|||youtube,meta-pixel"));
        assert_eq!(s.decode(&c, &forged), None);
        for junk in [
            "",
            "1",
            "1..",
            "2.x.y",
            "1.!!.??",
            "....",
            &"a".repeat(5000),
        ] {
            assert_eq!(s.decode(&c, junk), None, "{junk}");
        }
    }

    #[test]
    fn unknown_ids_are_ignored() {
        let (c, s) = setup();
        let signed = format!("1.{}", B64.encode("9|||gone-service,youtube"));
        let mut mac = s.mac();
        mac.update(signed.as_bytes());
        let v = format!("{signed}.{}", B64.encode(mac.finalize().into_bytes()));
        let d = s.decode(&c, &v).unwrap();
        assert_eq!(
            d.granted.iter().collect::<Vec<_>>(),
            vec![c.index_of("youtube").unwrap()]
        );
    }

    #[test]
    fn another_policy_version_is_no_decision() {
        let (c, s) = setup();
        let d = Decision {
            decided: true,
            issued: 5,
            ..Decision::default()
        };
        let v1 = s.clone().with_version("v1");
        let cookie = v1.encode(&c, &d);
        assert_eq!(v1.decode(&c, &cookie), Some(d));
        assert_eq!(s.with_version("v2").decode(&c, &cookie), None);
    }

    #[test]
    fn cookie_header_parsing() {
        let h = "a=1; consentgate=xyz; b=\"q\"";
        assert_eq!(cookie_value(h, "consentgate"), Some("xyz"));
        assert_eq!(cookie_value(h, "b"), Some("q"));
        assert_eq!(cookie_value(h, "c"), None);
        assert_eq!(cookie_value("consentgatex=1", "consentgate"), None);
    }
}
