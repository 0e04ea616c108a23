//! Reading another consent manager's decision from its cookie.
//!
//! Sites that already run a consent manager (CMP) can have the proxy enforce *that* CMP's
//! decision instead of showing our own banner. This module is the pure part of that: it reads
//! the cookie(s) of seven CMPs and returns what the visitor accepted, in the CMP's own vocabulary
//! ([`ForeignConsent::granted`]). Mapping that vocabulary to catalog services happens elsewhere.
//!
//! Every parser fails closed: anything missing, malformed, oversized, ambiguous or "not a
//! decision" yields `None` ("no decision", so every non-necessary service stays blocked). Nothing
//! here panics, and the work and memory spent are bounded by the size of the cookie, which is
//! itself capped at `MAX_VALUE_LEN` (4096) bytes (what browsers store per cookie).
//!
//! Cookie lookup: names match exactly (after trimming ASCII whitespace); when a name occurs more
//! than once, the first occurrence wins, as in the CMPs' own `document.cookie` readers (browsers
//! send the most specific path first). A value wrapped in double quotes (RFC 6265 allows it) is
//! unwrapped.
//!
//! Per CMP (facts checked against the vendors' public code; decisions marked **Decision**):
//!
//! * **OneTrust** (`OptanonConsent`): a query string whose values are percent-encoded;
//!   `groups=C0001:1,C0002:0,…` lists group ids with 1 (accepted) or 0. OneTrust writes this
//!   cookie on the first page view with the banner's *defaults* (`interactionCount=0`), which are
//!   all-accepted under opt-out templates. **Decision:** it is a decision only if the visitor
//!   interacted: `interactionCount` ≥ 1, or the `OptanonAlertBoxClosed` cookie (set when the
//!   visitor closes or answers the banner) is present; otherwise `None`. `AwaitingReconsent=true`
//!   is still honoured (OneTrust keeps applying the stored groups until the visitor answers again).
//!   An id listed with 0 anywhere is not granted; any entry not of the form `id:0|1` rejects the
//!   cookie.
//! * **Cookiebot** (`CookieConsent`): a percent-encoded JavaScript object literal (unquoted keys,
//!   single-quoted strings). Granted: those of `necessary`, `preferences`, `statistics`,
//!   `marketing` that are `true`. Cookiebot's documented special values: `0` = declined (granted
//!   `necessary` only); `-1` = "consent not required for this visitor's region".
//!   **Decision:** `-1`, the equivalent `stamp:'-1'`, and `method:'implied'` (consent "given
//!   automatically", per Cookiebot's developer docs) all yield `None`: none of them is a consent
//!   the visitor gave.
//! * **Klaro** (`klaro`, renamable): JSON object `{"service": true|false, …}`, percent-encoded
//!   since Klaro 0.2.15 (raw JSON before that); a base64-encoded object is also accepted. Granted:
//!   the services with `true`.
//! * **cookieconsent** by orestbida (`cc_cookie`, renamable): JSON, percent-encoded in v3 and in
//!   v2 with `use_rfc_cookie` (raw otherwise). v3 has `categories`, `services` and a `consentId`
//!   (required, as the library itself requires it); v2 has `level` (and, from 2.8, `categories`).
//!   Granted: the categories, plus `category:service` for each v3 service listed under a granted
//!   category.
//! * **Complianz** (WordPress, `cmplz_` prefix, `cmplz_rt_` on a multisite main site; the
//!   `cookie_name` override replaces the prefix): one cookie per category (`functional`,
//!   `preferences`, `statistics`, `statistics-anonymous`, `marketing`) holding `allow` or `deny`,
//!   and `banner-status`. **Decision:** a decision needs `banner-status=dismissed` (set by every
//!   consent action of Complianz ≥ 6) and at least one category cookie holding `allow`/`deny`;
//!   Complianz sets `statistics=allow` by itself (without interaction) when a site force-enables
//!   anonymous statistics, and closing the banner sets `dismissed` without any category.
//!   Complianz ≤ 5 cookies (`complianz_consent_status`, …) are not read.
//! * **Borlabs Cookie** (`borlabs-cookie`): percent-encoded JSON with a `consents` object mapping
//!   each *accepted* group to the list of accepted service ids (v2 and v3 alike). **Decision:** a
//!   group key that is present counts as accepted, even with an empty list. Granted: the groups,
//!   plus `group:service` for each listed service.
//! * **IAB TCF v2.x** (`euconsent-v2`, renamable for e.g. `eupubconsent-v2`): the core segment of
//!   the TC string (base64url, 6 bits a character). Granted: `purpose:<n>`, `vendor:<id>`,
//!   `special-feature:<n>`. Rejected: version ≠ 2, truncated data (including a truncated vendor
//!   legitimate-interest section, which is walked but not reported), vendor id 0, ranges with
//!   end < start or beyond MaxVendorId, and more than `MAX_TCF_VENDORS` (10,000) consented vendor ids in
//!   total (range entries are counted before de-duplication, so overlapping ranges cannot blow
//!   the budget up either).

use std::collections::BTreeSet;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::Value;

/// Cookie values longer than this (in bytes, as sent) are not parsed. Browsers store at most
/// 4096 bytes of name and value per cookie, so a CMP cannot have written a longer one.
const MAX_VALUE_LEN: usize = 4096;

/// Most consented vendors a TC string may grant. The Global Vendor List's highest vendor id is
/// about 1,500 today; the format allows 65,535, which a ~40-byte range entry could claim.
const MAX_TCF_VENDORS: usize = 10_000;

/// The consent managers whose cookies we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CmpKind {
    #[serde(alias = "onetrust")]
    OneTrust,
    Cookiebot,
    Klaro,
    Cookieconsent,
    Complianz,
    Borlabs,
    Tcf,
}

impl CmpKind {
    /// Cookie names this CMP uses by default (Complianz: the `cmplz_` prefix family; give the names you read).
    pub fn cookie_names(self) -> &'static [&'static str] {
        match self {
            CmpKind::OneTrust => &["OptanonConsent", "OptanonAlertBoxClosed"],
            CmpKind::Cookiebot => &["CookieConsent"],
            CmpKind::Klaro => &["klaro"],
            CmpKind::Cookieconsent => &["cc_cookie"],
            CmpKind::Complianz => &[
                "cmplz_banner-status",
                "cmplz_functional",
                "cmplz_preferences",
                "cmplz_statistics",
                "cmplz_statistics-anonymous",
                "cmplz_marketing",
            ],
            CmpKind::Borlabs => &["borlabs-cookie"],
            CmpKind::Tcf => &["euconsent-v2"],
        }
    }
}

/// A decision read from another CMP's cookie, in that CMP's own vocabulary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForeignConsent {
    /// Identifiers the visitor accepted: OneTrust group ids ("C0002"), Cookiebot categories
    /// ("statistics"), Klaro service names, cookieconsent categories (and "category:service" for
    /// v3 services), Complianz categories, Borlabs groups (and "group:service"), TCF "purpose:<n>" and
    /// "vendor:<id>" (and "special-feature:<n>").
    pub granted: BTreeSet<String>,
}

/// Reads the decision of `kind` from the request's cookies (name, raw value as sent in the Cookie
/// header, i.e. possibly percent-encoded). `cookie_name` overrides the CMP's default cookie name
/// (Klaro and cookieconsent let sites rename their cookie). `None` = no decision: cookie missing,
/// malformed, or a decision not yet made. Never panics on any input.
///
/// The override names the main cookie of every CMP (for OneTrust `OptanonConsent`, the
/// `OptanonAlertBoxClosed` name stays), and is the name *prefix* for Complianz. An empty override
/// counts as no override.
pub fn read(
    kind: CmpKind,
    cookies: &[(&str, &str)],
    cookie_name: Option<&str>,
) -> Option<ForeignConsent> {
    let name = cookie_name
        .filter(|n| !n.is_empty())
        .unwrap_or(kind.cookie_names()[0]);
    let granted = match kind {
        CmpKind::OneTrust => onetrust(cookies, name)?,
        CmpKind::Cookiebot => cookiebot(find(cookies, name)?)?,
        CmpKind::Klaro => klaro(find(cookies, name)?)?,
        CmpKind::Cookieconsent => cookieconsent(find(cookies, name)?)?,
        CmpKind::Complianz => complianz(
            cookies,
            cookie_name.filter(|n| !n.is_empty()).unwrap_or("cmplz_"),
        )?,
        CmpKind::Borlabs => borlabs(find(cookies, name)?)?,
        CmpKind::Tcf => tcf(find(cookies, name)?)?,
    };
    Some(ForeignConsent { granted })
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// The value of the first cookie called `name`, unquoted; `None` when absent or oversized.
fn find<'a>(cookies: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    let value = cookies
        .iter()
        .find(|(n, _)| n.trim_matches(|c: char| c.is_ascii_whitespace()) == name)?
        .1
        .trim_matches(|c: char| c.is_ascii_whitespace());
    if value.len() > MAX_VALUE_LEN {
        return None;
    }
    let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner,
        None => value,
    };
    Some(value)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Strict percent-decoding, like JavaScript's `decodeURIComponent`: a `%` not followed by two
/// hex digits, or bytes that are not UTF-8, fail. `plus_as_space` adds form decoding of `+`.
fn percent_decode(s: &str, plus_as_space: bool) -> Option<String> {
    let needs_work = s.contains('%') || (plus_as_space && s.contains('+'));
    if !needs_work {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let pair = bytes.get(i + 1..i + 3)?;
                out.push(hex(pair[0])? << 4 | hex(pair[1])?);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Parses a cookie holding JSON, raw or percent-encoded (what `JSON.parse(decodeURIComponent(v))`
/// accepts, and the raw JSON some CMP versions write).
fn json_value(raw: &str) -> Option<Value> {
    if let Ok(v) = serde_json::from_str(raw) {
        return Some(v);
    }
    serde_json::from_str(&percent_decode(raw, false)?).ok()
}

/// A JSON array of strings.
fn string_list(v: &Value) -> Option<Vec<&str>> {
    v.as_array()?.iter().map(Value::as_str).collect()
}

fn set_of<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> BTreeSet<String> {
    items.into_iter().map(Into::into).collect()
}

// ---------------------------------------------------------------------------------------------
// OneTrust

fn onetrust(cookies: &[(&str, &str)], name: &str) -> Option<BTreeSet<String>> {
    let raw = find(cookies, name)?;
    let fields = match onetrust_fields(raw)? {
        // Tolerate a value that was percent-encoded as a whole.
        OtFields { groups: None, .. } if raw.contains('%') => {
            onetrust_fields(&percent_decode(raw, false)?)?
        }
        fields => fields,
    };
    let interacted = fields.interaction_count.is_some_and(|n| n >= 1)
        || find(cookies, "OptanonAlertBoxClosed").is_some_and(|v| !v.is_empty());
    if !interacted {
        return None;
    }
    let groups = fields.groups?;
    let mut granted = BTreeSet::new();
    let mut denied = BTreeSet::new();
    for entry in groups.split(',').filter(|e| !e.is_empty()) {
        let (id, flag) = entry.split_once(':')?;
        if id.is_empty() {
            return None;
        }
        match flag {
            "1" => granted.insert(id),
            "0" => denied.insert(id),
            _ => return None,
        };
    }
    if granted.is_empty() && denied.is_empty() {
        return None;
    }
    Some(set_of(granted.difference(&denied).copied()))
}

struct OtFields {
    groups: Option<String>,
    interaction_count: Option<u32>,
}

/// The fields of an `OptanonConsent` query string we use; `None` on a malformed or repeated one.
fn onetrust_fields(query: &str) -> Option<OtFields> {
    let mut fields = OtFields {
        groups: None,
        interaction_count: None,
    };
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "groups" => {
                if fields.groups.is_some() {
                    return None;
                }
                fields.groups = Some(percent_decode(value, true)?);
            }
            "interactionCount" => {
                fields.interaction_count = percent_decode(value, true)?.trim().parse().ok();
            }
            _ => {}
        }
    }
    Some(fields)
}

// ---------------------------------------------------------------------------------------------
// Cookiebot

const COOKIEBOT_CATEGORIES: [&str; 4] = ["necessary", "preferences", "statistics", "marketing"];

fn cookiebot(raw: &str) -> Option<BTreeSet<String>> {
    let decoded = percent_decode(raw, false)?;
    let text = decoded.trim();
    match text {
        "-1" => return None,
        "0" => return Some(set_of(["necessary"])),
        _ => {}
    }
    let mut granted = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for (key, value) in js_object(text)? {
        match key.as_str() {
            "stamp" if value.text() == "-1" => return None,
            "method" if value.text() == "implied" => return None,
            k if COOKIEBOT_CATEGORIES.contains(&k) => {
                if !seen.insert(key.clone()) {
                    return None;
                }
                match value.text() {
                    "true" => {
                        granted.insert(key);
                    }
                    "false" => {}
                    _ => return None,
                }
            }
            _ => {}
        }
    }
    if seen.is_empty() {
        return None;
    }
    Some(granted)
}

enum JsValue {
    /// A quoted string, unescaped.
    Str(String),
    /// Anything else (`true`, `1`, `null`, `{…}`), as written.
    Bare(String),
}

impl JsValue {
    fn text(&self) -> &str {
        match self {
            JsValue::Str(s) | JsValue::Bare(s) => s,
        }
    }
}

/// Parses a flat JavaScript object literal `{key: value, …}` (keys bare or quoted, strings in
/// single or double quotes). Values that are themselves objects or arrays are kept as bare text.
fn js_object(s: &str) -> Option<Vec<(String, JsValue)>> {
    let b = s.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut out = Vec::new();
    loop {
        skip_ws(&mut i);
        match b.get(i)? {
            b'}' if out.is_empty() => {
                i += 1;
                break;
            }
            _ => {}
        }
        let key = match b[i] {
            b'\'' | b'"' => js_string(b, &mut i)?,
            _ => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$')
                {
                    i += 1;
                }
                if start == i {
                    return None;
                }
                s[start..i].to_owned()
            }
        };
        skip_ws(&mut i);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        skip_ws(&mut i);
        let value = match b.get(i)? {
            b'\'' | b'"' => JsValue::Str(js_string(b, &mut i)?),
            _ => {
                let start = i;
                let mut depth = 0usize;
                while i < b.len() {
                    match b[i] {
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' if depth > 0 => depth -= 1,
                        b',' | b'}' if depth == 0 => break,
                        b'\'' | b'"' => {
                            js_string(b, &mut i)?;
                            continue;
                        }
                        _ => {}
                    }
                    i += 1;
                }
                let text = s[start..i].trim();
                if text.is_empty() || depth != 0 {
                    return None;
                }
                JsValue::Bare(text.to_owned())
            }
        };
        out.push((key, value));
        skip_ws(&mut i);
        match b.get(i)? {
            b',' => i += 1,
            b'}' => {
                i += 1;
                break;
            }
            _ => return None,
        }
    }
    skip_ws(&mut i);
    (i == b.len()).then_some(out)
}

/// Reads a quoted string starting at `b[*i]` (the quote); leaves `*i` after the closing quote.
fn js_string(b: &[u8], i: &mut usize) -> Option<String> {
    let quote = b[*i];
    let mut out = Vec::new();
    *i += 1;
    loop {
        match *b.get(*i)? {
            c if c == quote => {
                *i += 1;
                return String::from_utf8(out).ok();
            }
            b'\\' => {
                out.push(*b.get(*i + 1)?);
                *i += 2;
            }
            c => {
                out.push(c);
                *i += 1;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Klaro

fn klaro(raw: &str) -> Option<BTreeSet<String>> {
    let value = json_value(raw).or_else(|| {
        let decoded = percent_decode(raw, false)?;
        let bytes = base64_lenient(decoded.trim())?;
        serde_json::from_slice(&bytes).ok()
    })?;
    let mut granted = BTreeSet::new();
    for (service, consent) in value.as_object()? {
        if consent.as_bool()? {
            granted.insert(service.clone());
        }
    }
    Some(granted)
}

/// Base64 in either alphabet, with or without padding.
fn base64_lenient(s: &str) -> Option<Vec<u8>> {
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let alphabet = if s.contains(['-', '_']) {
        &alphabet::URL_SAFE
    } else {
        &alphabet::STANDARD
    };
    GeneralPurpose::new(alphabet, config).decode(s).ok()
}

// ---------------------------------------------------------------------------------------------
// cookieconsent (orestbida)

fn cookieconsent(raw: &str) -> Option<BTreeSet<String>> {
    let value = json_value(raw)?;
    let obj = value.as_object()?;
    let v3 = [
        "consentId",
        "services",
        "consentTimestamp",
        "lastConsentTimestamp",
    ]
    .iter()
    .any(|k| obj.contains_key(*k));
    let categories = if v3 {
        // v3 itself treats a cookie without a consent id as no consent.
        if obj.get("consentId")?.as_str()?.is_empty() {
            return None;
        }
        string_list(obj.get("categories")?)?
    } else {
        // v2 ≥ 2.8 writes `categories` and its copy `level`; older v2 only `level`.
        string_list(obj.get("categories").or_else(|| obj.get("level"))?)?
    };
    let mut granted = set_of(categories.iter().copied());
    if v3 {
        if let Some(services) = obj.get("services") {
            for (category, list) in services.as_object()? {
                let list = string_list(list)?;
                if categories.contains(&category.as_str()) {
                    granted.extend(list.iter().map(|s| format!("{category}:{s}")));
                }
            }
        }
    }
    Some(granted)
}

// ---------------------------------------------------------------------------------------------
// Complianz

const COMPLIANZ_CATEGORIES: [&str; 5] = [
    "functional",
    "preferences",
    "statistics",
    "statistics-anonymous",
    "marketing",
];

fn complianz(cookies: &[(&str, &str)], prefix: &str) -> Option<BTreeSet<String>> {
    if find(cookies, &format!("{prefix}banner-status"))? != "dismissed" {
        return None;
    }
    let mut decided = false;
    let mut granted = BTreeSet::new();
    for category in COMPLIANZ_CATEGORIES {
        match find(cookies, &format!("{prefix}{category}")) {
            Some("allow") => {
                decided = true;
                granted.insert(category.to_owned());
            }
            Some("deny") => decided = true,
            _ => {}
        }
    }
    decided.then_some(granted)
}

// ---------------------------------------------------------------------------------------------
// Borlabs Cookie

fn borlabs(raw: &str) -> Option<BTreeSet<String>> {
    let value = json_value(raw)?;
    let mut granted = BTreeSet::new();
    for (group, services) in value.get("consents")?.as_object()? {
        granted.insert(group.clone());
        for service in string_list(services)? {
            granted.insert(format!("{group}:{service}"));
        }
    }
    Some(granted)
}

// ---------------------------------------------------------------------------------------------
// IAB TCF v2

/// Bit widths of the core segment fields before SpecialFeatureOptIns: Created, LastUpdated,
/// CmpId, CmpVersion, ConsentScreen, ConsentLanguage, VendorListVersion, TcfPolicyVersion,
/// IsServiceSpecific, UseNonStandardTexts.
const TCF_SKIP_AFTER_VERSION: usize = 36 + 36 + 12 + 12 + 6 + 12 + 12 + 6 + 1 + 1;
/// PurposesLITransparency, PurposeOneTreatment, PublisherCC.
const TCF_SKIP_AFTER_PURPOSES: usize = 24 + 1 + 12;

fn tcf(raw: &str) -> Option<BTreeSet<String>> {
    let decoded;
    let raw = if raw.contains('%') {
        decoded = percent_decode(raw, false)?;
        decoded.as_str()
    } else {
        raw
    };
    let core = raw.split('.').next()?.trim_end_matches('=');
    if core.is_empty() {
        return None;
    }
    let sextets = core
        .bytes()
        .map(base64_sextet)
        .collect::<Option<Vec<u8>>>()?;
    let mut bits = Bits {
        sextets: &sextets,
        pos: 0,
    };
    if bits.read(6)? != 2 {
        return None;
    }
    bits.skip(TCF_SKIP_AFTER_VERSION)?;
    let special_features = bits.read(12)?;
    let purposes = bits.read(24)?;
    bits.skip(TCF_SKIP_AFTER_PURPOSES)?;
    let vendors = tcf_vendor_section(&mut bits, true)?;
    // Legitimate-interest vendors: not reported, but a cut or broken section rejects the string.
    tcf_vendor_section(&mut bits, false)?;

    let mut granted = BTreeSet::new();
    for n in 1..=12 {
        if special_features >> (12 - n) & 1 == 1 {
            granted.insert(format!("special-feature:{n}"));
        }
    }
    for n in 1..=24 {
        if purposes >> (24 - n) & 1 == 1 {
            granted.insert(format!("purpose:{n}"));
        }
    }
    granted.extend(vendors.iter().map(|id| format!("vendor:{id}")));
    Some(granted)
}

/// Reads a vendor section (MaxVendorId, IsRangeEncoding, bitfield or range entries). With
/// `collect`, returns the vendor ids (at most `MAX_TCF_VENDORS`, counted before
/// de-duplication); otherwise only validates and returns an empty list.
fn tcf_vendor_section(bits: &mut Bits<'_>, collect: bool) -> Option<Vec<u16>> {
    let max_vendor_id = bits.read(16)?;
    let mut ids = Vec::new();
    if bits.read(1)? == 0 {
        // Bitfield: MaxVendorId bits, vendor n at position n. Its cost is paid in input bits.
        for id in 1..=max_vendor_id {
            if bits.read(1)? == 1 && collect {
                ids.push(id as u16);
            }
        }
        if ids.len() > MAX_TCF_VENDORS {
            return None;
        }
    } else {
        let entries = bits.read(12)?;
        let mut budget = MAX_TCF_VENDORS;
        for _ in 0..entries {
            let is_range = bits.read(1)? == 1;
            let start = bits.read(16)?;
            let end = if is_range { bits.read(16)? } else { start };
            if start == 0 || end < start || end > max_vendor_id {
                return None;
            }
            if collect {
                let count = (end - start + 1) as usize;
                budget = budget.checked_sub(count)?;
                ids.extend((start..=end).map(|id| id as u16));
            }
        }
    }
    Some(ids)
}

fn base64_sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' | b'+' => Some(62),
        b'_' | b'/' => Some(63),
        _ => None,
    }
}

/// A big-endian bit reader over base64 characters already mapped to their 6-bit values.
struct Bits<'a> {
    sextets: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        if end > self.sextets.len() * 6 {
            return None;
        }
        self.pos = end;
        Some(())
    }

    /// Reads `n` ≤ 32 bits.
    fn read(&mut self, n: usize) -> Option<u32> {
        let start = self.pos;
        self.skip(n)?;
        let mut value = 0u32;
        for pos in start..start + n {
            let bit = (self.sextets[pos / 6] >> (5 - pos % 6)) & 1;
            value = value << 1 | u32::from(bit);
        }
        Some(value)
    }
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(items: &[&str]) -> Option<ForeignConsent> {
        Some(ForeignConsent {
            granted: items.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn one(kind: CmpKind, name: &str, value: &str) -> Option<ForeignConsent> {
        read(kind, &[(name, value)], None)
    }

    /// JavaScript's `encodeURIComponent`, to build cookies the way the CMPs write them.
    fn encode_uri_component(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    // -----------------------------------------------------------------------------------------
    // Interface

    #[test]
    fn kinds_serialize_in_kebab_case() {
        let names: Vec<String> = [
            CmpKind::OneTrust,
            CmpKind::Cookiebot,
            CmpKind::Klaro,
            CmpKind::Cookieconsent,
            CmpKind::Complianz,
            CmpKind::Borlabs,
            CmpKind::Tcf,
        ]
        .iter()
        .map(|k| serde_json::to_string(k).unwrap())
        .collect();
        assert_eq!(
            names,
            [
                "\"one-trust\"",
                "\"cookiebot\"",
                "\"klaro\"",
                "\"cookieconsent\"",
                "\"complianz\"",
                "\"borlabs\"",
                "\"tcf\""
            ]
        );
        let kind: CmpKind = serde_json::from_str("\"one-trust\"").unwrap();
        assert_eq!(kind, CmpKind::OneTrust);
    }

    #[test]
    fn cookie_names_start_with_the_main_cookie() {
        assert_eq!(CmpKind::OneTrust.cookie_names()[0], "OptanonConsent");
        assert_eq!(CmpKind::Cookiebot.cookie_names(), ["CookieConsent"]);
        assert_eq!(CmpKind::Klaro.cookie_names(), ["klaro"]);
        assert_eq!(CmpKind::Cookieconsent.cookie_names(), ["cc_cookie"]);
        assert!(CmpKind::Complianz
            .cookie_names()
            .iter()
            .all(|n| n.starts_with("cmplz_")));
        assert_eq!(CmpKind::Borlabs.cookie_names(), ["borlabs-cookie"]);
        assert_eq!(CmpKind::Tcf.cookie_names(), ["euconsent-v2"]);
    }

    #[test]
    fn missing_cookie_is_no_decision() {
        for kind in ALL_KINDS {
            assert_eq!(read(kind, &[], None), None, "{kind:?}");
            assert_eq!(read(kind, &[("other", "1")], None), None, "{kind:?}");
        }
    }

    #[test]
    fn first_occurrence_wins_and_whitespace_and_quotes_are_tolerated() {
        let cookies = [
            (" klaro ", " \"%7B%22a%22%3Atrue%7D\" "),
            ("klaro", "%7B%22b%22%3Atrue%7D"),
        ];
        assert_eq!(read(CmpKind::Klaro, &cookies, None), granted(&["a"]));
    }

    #[test]
    fn oversized_values_are_not_parsed() {
        let big = format!("{{\"a\":true,\"pad\":\"{}\"}}", "x".repeat(MAX_VALUE_LEN));
        assert_eq!(one(CmpKind::Klaro, "klaro", &big), None);
        let ok = "{\"a\":true}";
        assert_eq!(one(CmpKind::Klaro, "klaro", ok), granted(&["a"]));
    }

    // -----------------------------------------------------------------------------------------
    // OneTrust

    /// The example from the task brief: a complete cookie after one interaction.
    const OT_BRIEF: &str = "isGpcEnabled=0&datestamp=Mon+Nov+23+2026+10%3A00%3A00+GMT%2B0100+(Central+European+Standard+Time)&version=202409.1.0&isIABGlobal=false&hosts=&consentId=5ddc4e2c-3b7c-4d1b-a8f2-2f3e1c1c4c1a&interactionCount=1&landingPath=NotLandingPage&groups=C0001%3A1%2CC0002%3A0%2CC0003%3A1%2CC0004%3A0&AwaitingReconsent=false";

    /// From ethyca/fides clients/privacy-center/cypress/e2e/onetrust-migration.cy.ts
    /// (`otConsentCookieMixed` and `otConsentCookieAllRejected`, without the leading
    /// "OptanonConsent=").
    const OT_FIDES_MIXED: &str = "isGpcEnabled=0&datestamp=Fri+Mar+07+2025+19%3A51%3A06+GMT%2B0100&version=202409.1.0&isIABGlobal=false&hosts=&consentId=f9c105b8-48e3-401a-87e9-363ad1f77531&interactionCount=1&landingPath=NotLandingPage&groups=C0001%3A1%2CC0002%3A1%2CC0004%3A0";
    const OT_FIDES_REJECTED: &str = "isGpcEnabled=0&datestamp=Fri+Mar+07+2025+19%3A51%3A06+GMT%2B0100&version=202409.1.0&isIABGlobal=false&hosts=&consentId=f9c105b8-48e3-401a-87e9-363ad1f77531&interactionCount=1&landingPath=NotLandingPage&groups=C0001%3A0%2CC0002%3A0%2CC0004%3A0";

    /// From uBlockOrigin/uAssets filters/annoyances-cookies.txt (thetrainline.com rule): a
    /// `groups`-only value, and a numeric-id one (legacy Optanon group ids).
    const OT_UBO_TRAINLINE: &str = "groups=C0001%3A1%2CC0002%3A0%2CC0008%3A0";
    const OT_UBO_NUMERIC: &str =
        "groups=1%3A1%2C2%3A0%2C3%3A1%2C4%3A0%2C5%3A1%2CBG57%3A0%2CBG58%3A0%2CBG59%3A0";

    #[test]
    fn onetrust_real_cookies() {
        assert_eq!(
            one(CmpKind::OneTrust, "OptanonConsent", OT_BRIEF),
            granted(&["C0001", "C0003"])
        );
        assert_eq!(
            one(CmpKind::OneTrust, "OptanonConsent", OT_FIDES_MIXED),
            granted(&["C0001", "C0002"])
        );
        // Everything rejected is still a decision.
        assert_eq!(
            one(CmpKind::OneTrust, "OptanonConsent", OT_FIDES_REJECTED),
            granted(&[])
        );
    }

    #[test]
    fn onetrust_needs_an_interaction() {
        // No interactionCount, no OptanonAlertBoxClosed: the banner's defaults, not a decision.
        assert_eq!(
            one(CmpKind::OneTrust, "OptanonConsent", OT_UBO_TRAINLINE),
            None
        );
        let closed = ("OptanonAlertBoxClosed", "2024-01-08T16:40:37.807Z");
        assert_eq!(
            read(
                CmpKind::OneTrust,
                &[("OptanonConsent", OT_UBO_TRAINLINE), closed],
                None
            ),
            granted(&["C0001"])
        );
        assert_eq!(
            read(
                CmpKind::OneTrust,
                &[("OptanonConsent", OT_UBO_NUMERIC), closed],
                None
            ),
            granted(&["1", "3", "5"])
        );
        // interactionCount=0 (first page view; shape of a real cookie) is defaults...
        let defaults = OT_FIDES_MIXED.replace("interactionCount=1", "interactionCount=0");
        assert_eq!(one(CmpKind::OneTrust, "OptanonConsent", &defaults), None);
        // ...unless the visitor closed the banner.
        assert_eq!(
            read(
                CmpKind::OneTrust,
                &[("OptanonConsent", &defaults), closed],
                None
            ),
            granted(&["C0001", "C0002"])
        );
        // An empty OptanonAlertBoxClosed proves nothing.
        assert_eq!(
            read(
                CmpKind::OneTrust,
                &[("OptanonConsent", &defaults), ("OptanonAlertBoxClosed", "")],
                None
            ),
            None
        );
        let many = OT_FIDES_MIXED.replace("interactionCount=1", "interactionCount=7");
        assert_eq!(
            one(CmpKind::OneTrust, "OptanonConsent", &many),
            granted(&["C0001", "C0002"])
        );
    }

    #[test]
    fn onetrust_whole_value_percent_encoded_and_renamed() {
        let encoded = encode_uri_component(OT_FIDES_MIXED);
        assert_eq!(
            one(CmpKind::OneTrust, "OptanonConsent", &encoded),
            granted(&["C0001", "C0002"])
        );
        assert_eq!(
            read(
                CmpKind::OneTrust,
                &[("OtherName", OT_FIDES_MIXED)],
                Some("OtherName")
            ),
            granted(&["C0001", "C0002"])
        );
    }

    #[test]
    fn onetrust_a_zero_anywhere_wins() {
        let v = "interactionCount=1&groups=C0002%3A1%2CC0002%3A0%2CC0001%3A1";
        assert_eq!(
            one(CmpKind::OneTrust, "OptanonConsent", v),
            granted(&["C0001"])
        );
    }

    #[test]
    fn onetrust_broken_cookies() {
        let ot = |v: &str| one(CmpKind::OneTrust, "OptanonConsent", v);
        for bad in [
            "",
            "interactionCount=1",
            "interactionCount=1&groups=",
            "interactionCount=1&groups=%2C%2C",
            "interactionCount=1&groups=C0001%3A2",
            "interactionCount=1&groups=C0001%3Ayes",
            "interactionCount=1&groups=C0001",
            "interactionCount=1&groups=%3A1",
            "interactionCount=1&groups=C0001%3A1%3A1",
            "interactionCount=1&groups=C0001%3",
            "interactionCount=1&groups=C0001%3A1%FF",
            "interactionCount=1&groups=C0001%3A1&groups=C0002%3A1",
            "interactionCount=one&groups=C0001%3A1",
            "interactionCount=-1&groups=C0001%3A1",
            "%ZZ",
            "isGpcEnabled=0&datestamp=Mon+Nov+23+2026",
        ] {
            assert_eq!(ot(bad), None, "{bad}");
        }
        // Truncations of a real cookie never panic, and never grant a group not in the prefix.
        for cut in 0..OT_BRIEF.len() {
            if let Some(c) = ot(&OT_BRIEF[..cut]) {
                assert!(c.granted.iter().all(|g| g == "C0001" || g == "C0003"));
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Cookiebot

    /// From uBlockOrigin/uAssets filters/annoyances-cookies.txt ("! cookiebot" rules for
    /// plaion.com, ekstrabladet.dk, rmg.co.uk and lidl.*): values as Cookiebot writes them.
    const CB_UBO_PLAION: &str = "{stamp:%27BvqlZ34xqOpzSOaxY1VgwOy5CZ1lfC4Xs2JNiDqz9M4rNuyyAY56Jg==%27%2Cnecessary:true%2Cpreferences:false%2Cstatistics:false%2Cmarketing:false%2Cmethod:%27explicit%27%2Cver:1%2Cutc:1697932000537}";
    const CB_UBO_EKSTRABLADET: &str = "{stamp:%27fbbiPQWa8SRQm47Ge8hRVOAPAgw2jXlG8o/+hp1euVVi1qtFQj1O3w==%27%2Cnecessary:true%2Cpreferences:true%2Cstatistics:true%2Cmarketing:true%2Cmethod:%27explicit%27%2Cver:4}";
    const CB_UBO_RMG: &str = "{stamp:%27IGA8uzBNs1DBQ0+vp/j0/Pjdqka8o6XzxQ05fqYJv31Y3xQgSRvliw==%27%2Cnecessary:true%2Cpreferences:false%2Cstatistics:false%2Cmarketing:false%2Cmethod:%27explicit%27%2Cver:1%2Cutc:1%2Cregion:%27null%27}";
    const CB_UBO_LIDL: &str =
        "{necessary:true%2Cpreferences:false%2Cstatistics:false%2Cmarketing:true}";

    /// From umbraco/UmbracoDocs 13/umbraco-engage/security-and-privacy/gdpr/
    /// how-to-become-gdpr-compliant-using-cookiebot.md ("Sample JSON cookie payload", decoded).
    const CB_UMBRACO_DECODED: &str = "{stamp:'Ov4gD1JVnDnBaJv8K2wYQlyWlnNlT/AKO768tibZYdQGNj/EolraLw==',necessary:true,preferences:false,statistics:true,marketing:false,method:'explicit',ver:1,utc:1698057791350,region:'gb'}";

    /// From CybotAS/CookiebotWP tests/unit/Test_Cookie_Consent.php (`COOKIE`, quoted keys and
    /// values); that test expects `necessary` and `preferences`.
    const CB_WP_TEST: &str = r#"{"stamp":"0boMmPgsG8gUTRvMkOLtyZ1uLvOFJobBbNb23IZO/TpY3eETvRxFfg==","necessary":"true","preferences":"true","statistics":"false","marketing":"false","ver":"1","utc":"1557479161596"}"#;

    #[test]
    fn cookiebot_real_cookies() {
        let cb = |v: &str| one(CmpKind::Cookiebot, "CookieConsent", v);
        assert_eq!(cb(CB_UBO_PLAION), granted(&["necessary"]));
        assert_eq!(
            cb(CB_UBO_EKSTRABLADET),
            granted(&["necessary", "preferences", "statistics", "marketing"])
        );
        assert_eq!(cb(CB_UBO_RMG), granted(&["necessary"]));
        assert_eq!(cb(CB_UBO_LIDL), granted(&["necessary", "marketing"]));
        assert_eq!(
            cb(CB_UMBRACO_DECODED),
            granted(&["necessary", "statistics"])
        );
        // The same cookie encoded the way Cookiebot writes it (`'` and `,` escaped).
        let encoded = CB_UMBRACO_DECODED.replace('\'', "%27").replace(',', "%2C");
        assert_eq!(cb(&encoded), granted(&["necessary", "statistics"]));
        // The Umbraco docs show it pretty-printed.
        let spaced = CB_UMBRACO_DECODED
            .replace(',', ",\n   ")
            .replace(':', " : ");
        assert_eq!(cb(&spaced), granted(&["necessary", "statistics"]));
        assert_eq!(cb(CB_WP_TEST), granted(&["necessary", "preferences"]));
    }

    #[test]
    fn cookiebot_special_values() {
        let cb = |v: &str| one(CmpKind::Cookiebot, "CookieConsent", v);
        // CybotAS/CookiebotWP documentation/CookiebotAPI.md: "0" = not accepted (strictly
        // necessary only), "-1" = not within a region that requires consent.
        assert_eq!(cb("0"), granted(&["necessary"]));
        assert_eq!(cb("-1"), None);
        // The newer spelling of "-1" (shape seen in public code for visitors outside the EU).
        let region_free = "{stamp:%27-1%27%2Cnecessary:true%2Cpreferences:true%2Cstatistics:true%2Cmarketing:true%2Cmethod:%27implied%27%2Cver:1%2Cutc:1695456095624%2Cregion:%27CN%27}";
        assert_eq!(cb(region_free), None);
        // Consent given automatically (a real stamp) is not the visitor's consent either.
        let implied = CB_UBO_EKSTRABLADET.replace("explicit", "implied");
        assert_eq!(cb(&implied), None);
        // Cookies from before the `method` field existed are honoured.
        let old = "{stamp:%27e98aHKJpBGxwmrzOejAnJPlefBy5AnuACz9BftjhJOx2aaxDeCFUEQ==%27%2Cnecessary:true%2Cpreferences:true%2Cstatistics:true%2Cmarketing:false%2Cver:1%2Cutc:1615214322795%2Cregion:%27bg%27}";
        assert_eq!(
            cb(old),
            granted(&["necessary", "preferences", "statistics"])
        );
    }

    #[test]
    fn cookiebot_broken_cookies() {
        let cb = |v: &str| one(CmpKind::Cookiebot, "CookieConsent", v);
        for bad in [
            "",
            "{}",
            "{stamp:%27abc",
            "{necessary:true",
            "{necessary:true%2C}",
            "{necessary:yes}",
            "{necessary:1}",
            "{necessary:'maybe'}",
            "{necessary:true,necessary:false}",
            "{necessary:true}garbage",
            "{necessary}",
            "{:true}",
            "necessary:true%2C%20preference:true",
            "{necessary:true%2Cpreferences:%E0%A4%A}",
            "{necessary:true%2Cstamp:%27%C3%28%27}",
            "{necessary:[true}",
            "only_necessary",
            "mandatory|external",
            "%7B%22Mode%22%3A0%7D",
            "1.0.0.0.0",
        ] {
            assert_eq!(cb(bad), None, "{bad}");
        }
        // Unknown fields of any shape are skipped.
        assert_eq!(
            cb("{iab2:'CP..',gacm:{a:[1,'}'],b:2},necessary:true}"),
            granted(&["necessary"])
        );
        for cut in 0..CB_UBO_EKSTRABLADET.len() {
            let _ = cb(&CB_UBO_EKSTRABLADET[..cut]);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Klaro

    /// From OhMyGuus/I-Still-Dont-Care-About-Cookies src/data/js/6_cookieHandler.js (the
    /// creopard.de rule): Klaro's `encodeURIComponent(JSON.stringify(consents))`.
    const KLARO_CREOPARD: &str = "%7B%22klaro%22%3Atrue%2C%22cms%22%3Atrue%2C%22adsense%22%3Afalse%2C%22youtube%22%3Afalse%2C%22twitter%22%3Afalse%2C%22matomo%22%3Afalse%7D";

    #[test]
    fn klaro_real_cookies() {
        assert_eq!(
            one(CmpKind::Klaro, "klaro", KLARO_CREOPARD),
            granted(&["klaro", "cms"])
        );
        // Before kiprotect/klaro commit 62b2032 ("Encode/decode cookie when saving/loading
        // consents", 2020) the JSON was stored raw.
        let raw = percent_decode(KLARO_CREOPARD, false).unwrap();
        assert_eq!(
            one(CmpKind::Klaro, "klaro", &raw),
            granted(&["klaro", "cms"])
        );
        // Sites rename the cookie with `storageName` / `cookieName`.
        assert_eq!(
            read(
                CmpKind::Klaro,
                &[("klaro", "{}"), ("my-consent", KLARO_CREOPARD)],
                Some("my-consent")
            ),
            granted(&["klaro", "cms"])
        );
        assert_eq!(one(CmpKind::Klaro, "klaro", "{}"), granted(&[]));
    }

    #[test]
    fn klaro_base64() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let json = r#"{"google-analytics":true,"youtube":false,"x?>":true}"#;
        for encoded in [STANDARD.encode(json), URL_SAFE_NO_PAD.encode(json)] {
            assert_eq!(
                one(CmpKind::Klaro, "klaro", &encoded),
                granted(&["google-analytics", "x?>"]),
                "{encoded}"
            );
            let escaped = encoded.replace('=', "%3D");
            assert_eq!(
                one(CmpKind::Klaro, "klaro", &escaped),
                granted(&["google-analytics", "x?>"])
            );
        }
    }

    #[test]
    fn klaro_broken_cookies() {
        for bad in [
            "",
            "%7B%22a%22%3Atrue",
            "%7B%22a%22%3A1%7D",
            "%7B%22a%22%3A%22true%22%7D",
            "%7B%22a%22%3Anull%7D",
            "[true]",
            "true",
            "%7B%22a%22%3Atrue%7D%FF",
            "%E0%A4%A",
            "bm90IGpzb24=",
            "!!!!",
            "{\"a\":true,}",
        ] {
            assert_eq!(one(CmpKind::Klaro, "klaro", bad), None, "{bad}");
        }
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert_eq!(one(CmpKind::Klaro, "klaro", &deep[..4000]), None);
    }

    // -----------------------------------------------------------------------------------------
    // cookieconsent (orestbida)

    /// From lazybulbik/calories-tracker MistralLLM.py: chat.mistral.ai's `cc_cookie` (v3), with
    /// services accepted under two categories.
    const CC_V3_MISTRAL: &str = "%7B%22categories%22%3A%5B%22necessary%22%2C%22analytics%22%2C%22support%22%5D%2C%22revision%22%3A1%2C%22data%22%3Anull%2C%22consentTimestamp%22%3A%222024-12-01T12%3A54%3A15.906Z%22%2C%22consentId%22%3A%22104021a8-9e58-491c-927f-f3d1e0c21adb%22%2C%22services%22%3A%7B%22necessary%22%3A%5B%5D%2C%22analytics%22%3A%5B%22posthog%22%5D%2C%22support%22%3A%5B%22intercom%22%5D%7D%2C%22lastConsentTimestamp%22%3A%222024-12-01T12%3A54%3A15.906Z%22%2C%22expirationTime%22%3A1748782455907%7D";
    /// Same file, an earlier version: only `necessary` accepted.
    const CC_V3_MISTRAL_NECESSARY: &str = "%7B%22categories%22%3A%5B%22necessary%22%5D%2C%22revision%22%3A1%2C%22data%22%3Anull%2C%22consentTimestamp%22%3A%222024-11-20T19%3A02%3A36.823Z%22%2C%22consentId%22%3A%2212fd04af-4af6-48a3-8531-b7cf317849d1%22%2C%22services%22%3A%7B%22necessary%22%3A%5B%5D%2C%22analytics%22%3A%5B%5D%2C%22support%22%3A%5B%5D%7D%2C%22lastConsentTimestamp%22%3A%222024-11-20T19%3A02%3A36.823Z%22%2C%22expirationTime%22%3A1747854156824%7D";
    /// From the task brief (v3, unencoded).
    const CC_V3_BRIEF: &str = r#"{"categories":["necessary","analytics"],"revision":0,"data":null,"consentTimestamp":"2024-05-01T10:00:00.000Z","consentId":"0f3e8a34-0000-4000-8000-000000000000","services":{"necessary":[],"analytics":["ga"]},"languageCode":"en","lastConsentTimestamp":"2024-05-01T10:00:00.000Z","expirationTime":1730000000000}"#;
    /// From uBlockOrigin/uAssets filters/annoyances-cookies.txt: v2 cookies as written without
    /// `use_rfc_cookie` (raw JSON): ≤ 2.7 (`level` only) and 2.8+ (`categories` + `level`).
    const CC_V2_UBO: &str =
        r#"{"level":["necessary"],"revision":0,"data":null,"rfc_cookie":false}"#;
    const CC_V2_UBO_TECNICI: &str =
        r#"{"level":["tecnici"],"revision":0,"data":null,"rfc_cookie":false}"#;
    const CC_V29_UBO: &str = r#"{"categories":["necessary"],"level":["necessary"],"revision":1,"data":null,"rfc_cookie":true,"consent_date":"1","consent_uuid":"1","last_consent_update":"1"}"#;
    /// From uBlockOrigin/uAssets filters/annoyances-cookies.txt (onlinestempel.ch rule): a v2
    /// cookie renamed to `consent`, written with `use_rfc_cookie`.
    const CC_V2_UBO_RENAMED_RFC: &str = "%7B%22level%22%3A%5B%22necessary%22%5D%2C%22revision%22%3A0%2C%22data%22%3A%7B%22id%22%3A%22DarYF7gx7v%22%7D%2C%22rfc_cookie%22%3Atrue%7D";

    #[test]
    fn cookieconsent_real_cookies() {
        let cc = |v: &str| one(CmpKind::Cookieconsent, "cc_cookie", v);
        assert_eq!(
            cc(CC_V3_MISTRAL),
            granted(&[
                "necessary",
                "analytics",
                "support",
                "analytics:posthog",
                "support:intercom"
            ])
        );
        assert_eq!(cc(CC_V3_MISTRAL_NECESSARY), granted(&["necessary"]));
        assert_eq!(
            cc(CC_V3_BRIEF),
            granted(&["necessary", "analytics", "analytics:ga"])
        );
        assert_eq!(
            cc(&encode_uri_component(CC_V3_BRIEF)),
            granted(&["necessary", "analytics", "analytics:ga"])
        );
        assert_eq!(cc(CC_V2_UBO), granted(&["necessary"]));
        assert_eq!(cc(CC_V2_UBO_TECNICI), granted(&["tecnici"]));
        assert_eq!(cc(CC_V29_UBO), granted(&["necessary"]));
        assert_eq!(
            read(
                CmpKind::Cookieconsent,
                &[("consent", CC_V2_UBO_RENAMED_RFC)],
                Some("consent")
            ),
            granted(&["necessary"])
        );
        // The brief's v2 example, percent-encoded.
        let v2 =
            r#"{"level":["necessary","analytics"],"revision":0,"data":null,"rfc_cookie":false}"#;
        assert_eq!(
            cc(&encode_uri_component(v2)),
            granted(&["necessary", "analytics"])
        );
    }

    #[test]
    fn cookieconsent_services_only_under_granted_categories() {
        let v = r#"{"categories":["necessary"],"consentId":"x","services":{"necessary":["s1"],"ads":["pixel"]}}"#;
        assert_eq!(
            one(CmpKind::Cookieconsent, "cc_cookie", v),
            granted(&["necessary", "necessary:s1"])
        );
    }

    #[test]
    fn cookieconsent_broken_cookies() {
        let cc = |v: &str| one(CmpKind::Cookieconsent, "cc_cookie", v);
        for bad in [
            "",
            "{}",
            r#"{"revision":0}"#,
            r#"{"level":"necessary"}"#,
            r#"{"level":[1]}"#,
            r#"{"level":["necessary",null]}"#,
            r#"{"categories":{"necessary":true}}"#,
            // v3 without a consent id: the library itself treats it as no consent.
            r#"{"categories":["necessary"],"services":{},"consentTimestamp":"2024"}"#,
            r#"{"categories":["necessary"],"consentId":""}"#,
            r#"{"categories":["necessary"],"consentId":7}"#,
            r#"{"categories":["necessary"],"consentId":"x","services":[]}"#,
            r#"{"categories":["necessary"],"consentId":"x","services":{"necessary":"s"}}"#,
            r#"{"categories":["necessary"],"consentId":"x","services":{"necessary":[1]}}"#,
            "%7B%22level%22%3A%5B%22necessary%22%5D",
            "%7B%22level%22%3A%5B%22n%FF%22%5D%7D",
            "[\"necessary\"]",
        ] {
            assert_eq!(cc(bad), None, "{bad}");
        }
        for cut in 0..CC_V3_MISTRAL.len() {
            let _ = cc(&CC_V3_MISTRAL[..cut]);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Complianz

    /// Values as complianz.js writes them (Really-Simple-Plugins/complianz-gdpr
    /// cookiebanner/js/complianz.js: `cmplz_set_consent`, `cmplz_set_banner_status`).
    fn cmplz(prefix: &str, pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (format!("{prefix}{k}"), v.to_string()))
            .collect()
    }

    fn read_owned(
        kind: CmpKind,
        cookies: &[(String, String)],
        name: Option<&str>,
    ) -> Option<ForeignConsent> {
        let borrowed: Vec<(&str, &str)> = cookies
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        read(kind, &borrowed, name)
    }

    #[test]
    fn complianz_accept_all_and_deny_all() {
        let accept_all = cmplz(
            "cmplz_",
            &[
                ("functional", "allow"),
                ("preferences", "allow"),
                ("statistics", "allow"),
                ("marketing", "allow"),
                ("banner-status", "dismissed"),
                ("policy_id", "14"),
            ],
        );
        assert_eq!(
            read_owned(CmpKind::Complianz, &accept_all, None),
            granted(&["functional", "preferences", "statistics", "marketing"])
        );
        // cmplz_deny_all: every category denied, but functional is always "allow".
        let deny_all = cmplz(
            "cmplz_",
            &[
                ("functional", "allow"),
                ("preferences", "deny"),
                ("statistics", "deny"),
                ("marketing", "deny"),
                ("banner-status", "dismissed"),
            ],
        );
        assert_eq!(
            read_owned(CmpKind::Complianz, &deny_all, None),
            granted(&["functional"])
        );
        let anonymous = cmplz(
            "cmplz_",
            &[
                ("statistics-anonymous", "allow"),
                ("marketing", "deny"),
                ("banner-status", "dismissed"),
            ],
        );
        assert_eq!(
            read_owned(CmpKind::Complianz, &anonymous, None),
            granted(&["statistics-anonymous"])
        );
    }

    #[test]
    fn complianz_needs_a_dismissed_banner_and_a_category() {
        // Closing the banner (".cmplz-close") dismisses it without any category decision.
        let closed = cmplz("cmplz_", &[("banner-status", "dismissed")]);
        assert_eq!(read_owned(CmpKind::Complianz, &closed, None), None);
        // forceEnableStats sets statistics=allow before the visitor answers.
        let forced = cmplz("cmplz_", &[("statistics", "allow")]);
        assert_eq!(read_owned(CmpKind::Complianz, &forced, None), None);
        let shown = cmplz(
            "cmplz_",
            &[("statistics", "allow"), ("banner-status", "show")],
        );
        assert_eq!(read_owned(CmpKind::Complianz, &shown, None), None);
        let garbage = cmplz(
            "cmplz_",
            &[("marketing", "allowed"), ("banner-status", "dismissed")],
        );
        assert_eq!(read_owned(CmpKind::Complianz, &garbage, None), None);
        assert_eq!(read(CmpKind::Complianz, &[], None), None);
    }

    #[test]
    fn complianz_prefix_override() {
        // Multisite main site without "set cookies on root": prefix `cmplz_rt_`
        // (class-banner-loader.php get_cookie_prefix).
        let rt = cmplz(
            "cmplz_rt_",
            &[
                ("functional", "allow"),
                ("marketing", "allow"),
                ("statistics", "deny"),
                ("banner-status", "dismissed"),
            ],
        );
        assert_eq!(read_owned(CmpKind::Complianz, &rt, None), None);
        assert_eq!(
            read_owned(CmpKind::Complianz, &rt, Some("cmplz_rt_")),
            granted(&["functional", "marketing"])
        );
    }

    // -----------------------------------------------------------------------------------------
    // Borlabs Cookie

    /// Real `borlabs-cookie` values seen in public GitHub code (scripts replaying a browser's
    /// Cookie header; found with the code search, file not recorded): kreativ-welt.de (v2,
    /// `"version":"2"`) and hartware.de (v3, `"v3":true`).
    const BORLABS_V2_KREATIV: &str = "%7B%22consents%22%3A%7B%22essential%22%3A%5B%22borlabs-cookie%22%5D%2C%22statistics%22%3A%5B%22google-analytics%22%5D%2C%22marketing%22%3A%5B%22google-adsense%22%2C%22facebook-pixel%22%5D%2C%22external-media%22%3A%5B%22facebook%22%2C%22googlemaps%22%2C%22youtube%22%5D%7D%2C%22domainPath%22%3A%22kreativ-welt.crnd.de%2F%22%2C%22expires%22%3A%22Sat%2C%2018%20Feb%202023%2009%3A06%3A19%20GMT%22%2C%22uid%22%3A%22mnep763s-rd6x72ar-cp4vilgp-78z4hijv%22%2C%22version%22%3A%222%22%7D";
    const BORLABS_V3_HARTWARE: &str = "%7B%22consents%22%3A%7B%22essential%22%3A%5B%22borlabs-cookie%22%5D%7D%2C%22domainPath%22%3A%22www.hartware.de%2F%22%2C%22expires%22%3A%22Sun%2C%2011%20Jan%202026%2008%3A07%3A14%20GMT%22%2C%22uid%22%3A%22wzlxoy59-rj2wkzg9-8d2klvs7-xapfslgp%22%2C%22v3%22%3Atrue%2C%22version%22%3A1%7D";
    /// From the task brief (v2, unencoded).
    const BORLABS_BRIEF: &str = r#"{"consents":{"essential":["borlabs-cookie"],"statistics":["google-analytics"],"marketing":["facebook-pixel"]},"domainPath":"example.com/","expires":"Tue, 23 Nov 2027 10:00:00 GMT","uid":"abc","version":"1"}"#;

    #[test]
    fn borlabs_real_cookies() {
        let bc = |v: &str| one(CmpKind::Borlabs, "borlabs-cookie", v);
        assert_eq!(
            bc(BORLABS_V2_KREATIV),
            granted(&[
                "essential",
                "essential:borlabs-cookie",
                "statistics",
                "statistics:google-analytics",
                "marketing",
                "marketing:google-adsense",
                "marketing:facebook-pixel",
                "external-media",
                "external-media:facebook",
                "external-media:googlemaps",
                "external-media:youtube",
            ])
        );
        assert_eq!(
            bc(BORLABS_V3_HARTWARE),
            granted(&["essential", "essential:borlabs-cookie"])
        );
        assert_eq!(
            bc(&encode_uri_component(BORLABS_BRIEF)),
            granted(&[
                "essential",
                "essential:borlabs-cookie",
                "statistics",
                "statistics:google-analytics",
                "marketing",
                "marketing:facebook-pixel",
            ])
        );
        // A present group counts as accepted even without services.
        assert_eq!(
            bc(r#"{"consents":{"essential":[],"statistics":[]}}"#),
            granted(&["essential", "statistics"])
        );
        assert_eq!(bc("%7B%22consents%22%3A%7B%7D%7D"), granted(&[]));
    }

    #[test]
    fn borlabs_broken_cookies() {
        let bc = |v: &str| one(CmpKind::Borlabs, "borlabs-cookie", v);
        for bad in [
            "",
            "%7B%7D",
            r#"{"consents":[]}"#,
            r#"{"consents":{"essential":"borlabs-cookie"}}"#,
            r#"{"consents":{"essential":[1]}}"#,
            r#"{"consents":{"essential":null}}"#,
            r#"["consents"]"#,
            "%7B%22consents%22%3A%7B%22essential%22%3A%5B%22borlabs-cookie%22%5D",
            "%7B%22consents%22%3A%7B%22e%C3%28%22%3A%5B%5D%7D%7D",
        ] {
            assert_eq!(bc(bad), None, "{bad}");
        }
        for cut in 0..BORLABS_V2_KREATIV.len() {
            let _ = bc(&BORLABS_V2_KREATIV[..cut]);
        }
    }

    // -----------------------------------------------------------------------------------------
    // IAB TCF v2

    fn tc(s: &str) -> Option<ForeignConsent> {
        one(CmpKind::Tcf, "euconsent-v2", s)
    }

    fn tc_set(purposes: &[u32], special: &[u32], vendors: &[u32]) -> Option<ForeignConsent> {
        let mut set = BTreeSet::new();
        set.extend(purposes.iter().map(|n| format!("purpose:{n}")));
        set.extend(special.iter().map(|n| format!("special-feature:{n}")));
        set.extend(vendors.iter().map(|n| format!("vendor:{n}")));
        Some(ForeignConsent { granted: set })
    }

    #[test]
    fn tcf_iab_java_fixtures() {
        // InteractiveAdvertisingBureau/iabtcf-java iabtcf-decoder/src/test/java/com/iabtcf/
        // decoder/TCStringV2Test.java.
        // testCanConstructTCModelFromBase64String: special features {1}, purposes {2, 10}
        // (MaxVendorId is 0: no vendors).
        assert_eq!(
            tc("COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA"),
            tc_set(&[2, 10], &[1], &[])
        );
        // testConstructConsentsFromBitFields: bitfield vendor section, purposes 3..=9, vendors
        // {23, 37, 47, 48, 53, 65, 98}; special feature 1 read by our own decoder (and an
        // independent Python one), not asserted there.
        let bitfield =
            "COrEAV4OrXx94ACABBENAHCIAD-AAAAAAACAAxAAAAgAIAwgAgAAAAEAgQAAAAAEAYQAQAAAACAAAABAAA";
        assert_eq!(
            tc(bitfield),
            tc_set(&[3, 4, 5, 6, 7, 8, 9], &[1], &[23, 37, 47, 48, 53, 65, 98])
        );
        // testCanParseAllParts: further segments (one with base64 padding) are ignored.
        assert_eq!(
            tc(&format!(
                "{bitfield}.IBAgAAAgAIAwgAgAAAAEAAAACA.QAagAQAgAIAwgA.cAAAAAAAITg="
            )),
            tc_set(&[3, 4, 5, 6, 7, 8, 9], &[1], &[23, 37, 47, 48, 53, 65, 98])
        );
        // testRange: range-encoded vendor sections, {702, 703} and {703}.
        assert_eq!(
            tc("COwBOpCOwBOpCLqAAAENAPCAAAAAAAAAAAAAFfwAYFfAV-BVkAGBVYFWAAA.IFoEUQQgAIQwgIwQABAEAAAAOIAACAIAAAAQAIAgEAACEAAAAAgAQBAAAAAAAGBAAgAAAAAAAFAAECAAAgAAQARAEQAAAAAJAAIAAgAAAYQEAAAQmAgBC3ZAYzUw"),
            tc_set(&[], &[], &[702, 703])
        );
        assert_eq!(
            tc("COwBOpCOwBOpCLqAAAENAPCAAAAAAAAAAAAAFfwAQFfgUbABAUaAAA"),
            tc_set(&[], &[], &[703])
        );
        // testCanParseRangeEncodedVendorLegitimateInterests: LI vendor 128 beyond consent
        // MaxVendorId 127 is fine (its own MaxVendorId is 128).
        assert_eq!(
            tc("COv__-wOv__-wC2AAAENAPCgAAAAAAAAAAAAA_wAQA_gEBABAEAAAA"),
            tc_set(&[], &[], &[127])
        );
        // testPurposesConsent: purposes 1 and 2.
        assert_eq!(
            tc("COwxsONOwxsONKpAAAENAdCAAMAAAAAAAAAAAAAAAAAA"),
            tc_set(&[1, 2], &[], &[])
        );
    }

    #[test]
    fn tcf_liveramp_fixtures() {
        // LiveRamp/iabconsent v2_parsed_consent_fixture_test.go: every field documented.
        // Range-encoded: purposes {1,3,4,7}, special feature {1}, vendors {2, 37, 61}.
        assert_eq!(
            tc("COvzTO5OvzTO5BRAAAENAPCoALIAADgAAAAAAewAwABAAlAB6ABBFADBQAQA9hAAAcAA"),
            tc_set(&[1, 3, 4, 7], &[1], &[2, 37, 61])
        );
        // Range-encoded with disclosed/allowed vendor segments: vendors {12, 23, 163, 707}.
        assert_eq!(
            tc("COvzTO5OvzTO5B7ABCENAPCYAKdAADkAAIqIFhwBAAGAAXAFGAsMAhYAgAMAAegBYAEKAAA.IFoEUQQgAIQwgIwQABAEAAAAOIAACAIAAAAQAIAgEAACEAAAAAgAQBAAAAAAAGBAAgAAAAAAAFAAECAAAgAAQARAEQAAAAAJAAIAAgAAAYQEAAAQmAgBC3ZAYzUw.QE5QAwCvgHyATkA"),
            tc_set(&[1, 3, 6, 7, 8, 10], &[1], &[12, 23, 163, 707])
        );
        // "Valid TCF v2.2" (policy version 4): purpose 1, special feature 1, bitfield vendor 1.
        assert_eq!(
            tc("COvzTO5OvzTO5B7ABCENAPEYAIAAAIAAAIqIAAoAAoAA.QAAo.IAAo"),
            tc_set(&[1], &[1], &[1])
        );
        // Bitfield of 720 vendors, nothing consented but vendors.
        let vendors = [
            2, 6, 8, 12, 18, 23, 37, 42, 47, 48, 53, 61, 65, 66, 72, 88, 98, 127, 128, 129, 133,
            153, 163, 192, 205, 215, 224, 243, 248, 281, 294, 304, 350, 351, 358, 371, 422, 424,
            440, 447, 467, 486, 498, 502, 512, 516, 553, 556, 571, 587, 612, 613, 618, 626, 648,
            653, 656, 657, 665, 676, 681, 683, 684, 686, 687, 688, 690, 691, 694, 702, 703, 707,
            708, 711, 712, 714, 716, 719, 720,
        ];
        assert_eq!(
            tc("COvzTO5OvzTO5BZAFMENAPCgAAAAAAAAAAwIFoEUQQgAIQwgIwQABAEAAAAOIAACAIAAAAQAIAgEAACEAAAAAgAQBAAAAAAAGBAAgAAAAAAAFAAECAAAgAAQARAEQAAAAAJAAIAAgAAAYQEAAAQmAgBC3ZAYzUwLQIoghAAQhhARggACAIAAAAcQAAEAQAAAAgAQBAIAAEIAAAABAAgCAAAAAAAMCABAAAAAAAAKAAIEAABAAAgAiAIgAAAAASAAQABAAAAwgIAAAhMBACFuyAxmpgAA"),
            tc_set(&[], &[], &vendors)
        );
        // TestNonV2Input: a TCF v1 string.
        assert_eq!(tc("BONMj34ONMj34ABACDENALqAAAAAplY"), None);
    }

    #[test]
    fn tcf_reject_all_is_a_decision() {
        // From uBlockOrigin/uAssets filters/annoyances-cookies.txt (fandom.com rule): nothing
        // consented (decoded by us: MaxVendorId 0, no purposes).
        assert_eq!(
            tc("CPt3fQAPt3fQACNAFAENDLCgAAAAAAAAACiQAAAOCgDAB-AIsAZ8A6QDBAHBAAAA.YAAAAAAAAAAA"),
            tc_set(&[], &[], &[])
        );
        // Publisher TC cookie under its own name.
        assert_eq!(
            read(
                CmpKind::Tcf,
                &[(
                    "eupubconsent-v2",
                    "COwxsONOwxsONKpAAAENAdCAAMAAAAAAAAAAAAAAAAAA"
                )],
                Some("eupubconsent-v2")
            ),
            tc_set(&[1, 2], &[], &[])
        );
    }

    #[test]
    fn tcf_truncations_are_rejected() {
        let s = "COvzTO5OvzTO5BRAAAENAPCoALIAADgAAAAAAewAwABAAlAB6ABBFADBQAQA9hAAAcAA";
        // The LI section ends at bit 318, i.e. in character 53.
        for cut in 0..53 {
            assert_eq!(tc(&s[..cut]), None, "cut at {cut}");
        }
        assert!(tc(&s[..53]).is_some());
        let bitfield =
            "COrEAV4OrXx94ACABBENAHCIAD-AAAAAAACAAxAAAAgAIAwgAgAAAAEAgQAAAAAEAYQAQAAAACAAAABAAA";
        for cut in 0..bitfield.len() - 3 {
            assert_eq!(tc(&bitfield[..cut]), None, "cut at {cut}");
        }
    }

    /// Writes TC strings bit by bit.
    struct TcWriter {
        bits: Vec<bool>,
    }

    impl TcWriter {
        /// Version 2 header up to and including PublisherCC, with `purposes` consented.
        fn core(purposes: u32) -> Self {
            let mut w = TcWriter { bits: Vec::new() };
            w.put(2, 6);
            w.put(0, TCF_SKIP_AFTER_VERSION);
            w.put(0, 12);
            w.put(purposes, 24);
            w.put(0, TCF_SKIP_AFTER_PURPOSES);
            w
        }

        fn put(&mut self, value: u32, width: usize) -> &mut Self {
            for i in (0..width).rev() {
                self.bits.push(i < 32 && value >> i & 1 == 1);
            }
            self
        }

        /// A range section: (start, Some(end)) or (id, None).
        fn ranges(&mut self, max: u32, entries: &[(u32, Option<u32>)]) -> &mut Self {
            self.put(max, 16).put(1, 1).put(entries.len() as u32, 12);
            for &(start, end) in entries {
                match end {
                    Some(end) => self.put(1, 1).put(start, 16).put(end, 16),
                    None => self.put(0, 1).put(start, 16),
                };
            }
            self
        }

        fn empty_li(&mut self) -> &mut Self {
            self.put(0, 16).put(0, 1)
        }

        fn encode(&self) -> String {
            const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            self.bits
                .chunks(6)
                .map(|c| {
                    let v = (0..6).fold(0, |v, i| v << 1 | usize::from(c.get(i) == Some(&true)));
                    A[v] as char
                })
                .collect()
        }
    }

    #[test]
    fn tcf_crafted_vendor_sections() {
        let ok = TcWriter::core(0b1100 << 20)
            .ranges(700, &[(1, Some(3)), (600, None), (698, Some(700))])
            .empty_li()
            .encode();
        assert_eq!(
            tc(&ok),
            tc_set(&[1, 2], &[], &[1, 2, 3, 600, 698, 699, 700])
        );
        // Vendor ids up to 65535 are fine in small numbers.
        let high = TcWriter::core(0)
            .ranges(65535, &[(65530, Some(65535))])
            .empty_li()
            .encode();
        assert_eq!(
            tc(&high),
            tc_set(&[], &[], &[65530, 65531, 65532, 65533, 65534, 65535])
        );
        let bad_sections: [&[(u32, Option<u32>)]; 5] = [
            &[(5, Some(4))],   // end < start
            &[(1, Some(701))], // beyond MaxVendorId
            &[(701, None)],    // beyond MaxVendorId
            &[(0, Some(3))],   // vendor 0
            &[(0, None)],      // vendor 0
        ];
        for entries in bad_sections {
            let s = TcWriter::core(0).ranges(700, entries).empty_li().encode();
            assert_eq!(tc(&s), None, "{entries:?}");
        }
        // A wrong version.
        let mut v3 = TcWriter { bits: Vec::new() };
        v3.put(3, 6);
        v3.bits.extend_from_slice(&TcWriter::core(0).bits[6..]);
        v3.ranges(1, &[(1, None)]).empty_li();
        assert_eq!(tc(&v3.encode()), None);
        // A broken LI section rejects the string.
        let bad_li = TcWriter::core(0)
            .ranges(10, &[(1, None)])
            .ranges(10, &[(11, None)])
            .encode();
        assert_eq!(tc(&bad_li), None);
    }

    #[test]
    fn tcf_huge_ranges_are_bounded() {
        // One entry claiming every vendor id the format allows.
        let all = TcWriter::core(0)
            .ranges(65535, &[(1, Some(65535))])
            .empty_li()
            .encode();
        assert!(all.len() < 60);
        assert_eq!(tc(&all), None);
        // The same small range repeated: counted before de-duplication.
        let entries = vec![(1, Some(2000)); 6];
        let repeated = TcWriter::core(0).ranges(2000, &entries).empty_li().encode();
        assert_eq!(tc(&repeated), None);
        // Just within budget.
        let entries = vec![(1, Some(2000)); 5];
        let within = TcWriter::core(0).ranges(2000, &entries).empty_li().encode();
        assert_eq!(tc(&within).unwrap().granted.len(), 2000);
        // A long bitfield is paid for in input and capped by the cookie size.
        let mut big = TcWriter::core(0);
        big.put(24000, 16).put(0, 1);
        big.bits.extend(vec![true; 24000]);
        big.empty_li();
        assert_eq!(tc(&big.encode()), None);
    }

    #[test]
    fn tcf_broken_strings() {
        for bad in [
            "",
            ".",
            ".COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA",
            "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAA!",
            "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA%",
            "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAA AAAAAA",
            "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA%FF",
            "C",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "//////////////////////////////////////////////",
        ] {
            assert_eq!(tc(bad), None, "{bad}");
        }
        // Percent-encoded (harmless) and the standard base64 alphabet are accepted.
        let std_alphabet =
            "COrEAV4OrXx94ACABBENAHCIAD+AAAAAAACAAxAAAAgAIAwgAgAAAAEAgQAAAAAEAYQAQAAAACAAAABAAA";
        assert_eq!(
            tc(std_alphabet),
            tc_set(&[3, 4, 5, 6, 7, 8, 9], &[1], &[23, 37, 47, 48, 53, 65, 98])
        );
        assert_eq!(
            tc("COwxsONOwxsONKpAAAENAdCAAMAAAAAAAAAAAAAAAAAA%2EYAAAAAAAAAAA"),
            tc_set(&[1, 2], &[], &[])
        );
    }

    // -----------------------------------------------------------------------------------------
    // Never panics

    const ALL_KINDS: [CmpKind; 7] = [
        CmpKind::OneTrust,
        CmpKind::Cookiebot,
        CmpKind::Klaro,
        CmpKind::Cookieconsent,
        CmpKind::Complianz,
        CmpKind::Borlabs,
        CmpKind::Tcf,
    ];

    /// xorshift64*: deterministic, good enough to shake parsers.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Feeds `value` to every parser under every cookie name it may read.
    fn feed_all(value: &str) {
        for kind in ALL_KINDS {
            let mut names: Vec<&str> = kind.cookie_names().to_vec();
            names.push("x");
            let cookies: Vec<(&str, &str)> = names.iter().map(|n| (*n, value)).collect();
            let mut with_closed = cookies.clone();
            with_closed.push(("cmplz_banner-status", "dismissed"));
            for c in [&cookies, &with_closed] {
                let _ = read(kind, c, None);
                let _ = read(kind, c, Some("x"));
            }
            if let (CmpKind::Tcf, Some(found)) = (kind, read(kind, &cookies, None)) {
                let vendors = found
                    .granted
                    .iter()
                    .filter(|g| g.starts_with("vendor:"))
                    .count();
                assert!(vendors <= MAX_TCF_VENDORS);
            }
        }
    }

    #[test]
    fn random_inputs_never_panic() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        const SPICY: &[u8] = b"%{}[]\"':,=&+-_./\\ 0123456789aAfFtrueflsnC:1%27%2C%7B%22";
        for round in 0..3000 {
            let len = rng.below(200);
            let bytes: Vec<u8> = (0..len)
                .map(|_| match round % 3 {
                    0 => rng.next() as u8,
                    _ => SPICY[rng.below(SPICY.len())],
                })
                .collect();
            feed_all(&String::from_utf8_lossy(&bytes));
        }
        // Random base64url strings, with and without a TCF v2 header.
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for round in 0..3000 {
            let len = rng.below(400);
            let mut s: String = (0..len).map(|_| B64[rng.below(64)] as char).collect();
            if round % 2 == 0 {
                s.insert(0, 'C');
            }
            if round % 5 == 0 {
                s.push_str(".YAAAAAAAAAAA");
            }
            feed_all(&s);
        }
    }

    #[test]
    fn mutated_real_cookies_never_panic() {
        let mut rng = Rng(42);
        let samples = [
            (CmpKind::OneTrust, OT_BRIEF),
            (CmpKind::OneTrust, OT_FIDES_MIXED),
            (CmpKind::Cookiebot, CB_UBO_PLAION),
            (CmpKind::Cookiebot, CB_UMBRACO_DECODED),
            (CmpKind::Cookiebot, CB_WP_TEST),
            (CmpKind::Klaro, KLARO_CREOPARD),
            (CmpKind::Cookieconsent, CC_V3_MISTRAL),
            (CmpKind::Cookieconsent, CC_V29_UBO),
            (CmpKind::Borlabs, BORLABS_V2_KREATIV),
            (CmpKind::Borlabs, BORLABS_BRIEF),
            (
                CmpKind::Tcf,
                "COvzTO5OvzTO5BRAAAENAPCoALIAADgAAAAAAewAwABAAlAB6ABBFADBQAQA9hAAAcAA",
            ),
            (
                CmpKind::Tcf,
                "COrEAV4OrXx94ACABBENAHCIAD-AAAAAAACAAxAAAAgAIAwgAgAAAAEAgQAAAAAEAYQAQAAAACAAAABAAA",
            ),
        ];
        // Some mutants must still parse, or this would only be exercising the first checks.
        let mut parsed = [0usize; 12];
        for round in 0..4000 {
            let (kind, sample) = samples[round % samples.len()];
            let mut bytes = sample.as_bytes().to_vec();
            for _ in 0..1 + rng.below(4) {
                if bytes.is_empty() {
                    break;
                }
                let at = rng.below(bytes.len());
                match rng.below(4) {
                    0 => bytes[at] = rng.next() as u8,
                    1 => {
                        bytes.remove(at);
                    }
                    2 => bytes.insert(at, b"%{}\",:'[]-_A/"[rng.below(13)]),
                    _ => bytes.truncate(at),
                }
            }
            let value = String::from_utf8_lossy(&bytes);
            feed_all(&value);
            if one(kind, kind.cookie_names()[0], &value).is_some() {
                parsed[round % samples.len()] += 1;
            }
        }
        assert!(parsed.iter().all(|&n| n > 0), "{parsed:?}");
    }

    #[test]
    fn huge_values_never_panic() {
        for value in [
            "%".repeat(100_000),
            "{".repeat(100_000),
            "[".repeat(4000),
            format!("{{{}}}", "a:true,".repeat(580)),
            "A".repeat(100_000),
            format!("C{}", "_".repeat(4095)),
        ] {
            feed_all(&value);
        }
    }
}
