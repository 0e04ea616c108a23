//! Reading receipts: a visitor's own history, evidence exports (CSV, JSON lines of an array),
//! consent statistics, and the UTC time format they use.

use std::collections::BTreeMap;

use super::{Receipt, Store, StoreError};

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-23T08:15:30.123Z`
pub fn utc(ts_ms: i64) -> String {
    let secs = ts_ms.div_euclid(1000);
    let ms = ts_ms.rem_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS[.fff]Z` or milliseconds since the epoch.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let num = |a: usize, b: usize| s.get(a..b).and_then(|x| x.parse::<i64>().ok());
    if s.len() < 10 || s.as_bytes()[4] != b'-' || s.as_bytes()[7] != b'-' {
        return None;
    }
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(y, m as u32, d as u32) * 86_400_000;
    if s.len() > 10 {
        let rest = s[10..].strip_prefix('T')?.strip_suffix('Z')?;
        let (hms, frac) = rest.split_once('.').unwrap_or((rest, "0"));
        let mut p = hms.split(':').map(|x| x.parse::<i64>().ok());
        let (h, mi, se) = (p.next()??, p.next()??, p.next()??);
        if h > 23 || mi > 59 || se > 60 {
            return None;
        }
        let frac: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
        ms += ((h * 60 + mi) * 60 + se) * 1000 + frac;
    }
    Some(ms)
}

/// A receipt as exported (adds the UTC time).
pub fn to_json(r: &Receipt) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["utc"] = serde_json::Value::String(utc(r.ts_ms));
    v
}

pub const CSV_HEADER: &str = "id,utc,site,policy_version,lang,method,gpc,granted,refused,user_agent,ip,previous_receipt,prev_hash,hash,erased\n";

fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// One CSV line (RFC 4180 quoting); service lists are space-separated.
pub fn csv_row(r: &Receipt) -> String {
    let mut o = String::with_capacity(256);
    let fields = [
        r.id.clone(),
        utc(r.ts_ms),
        r.site.clone(),
        r.policy_version.clone(),
        r.lang.clone(),
        r.method.as_str().to_string(),
        r.gpc.to_string(),
        r.granted.join(" "),
        r.refused.join(" "),
        r.user_agent.clone(),
        r.ip.clone().unwrap_or_default(),
        r.previous_receipt.clone().unwrap_or_default(),
        r.prev_hash.clone(),
        r.hash.clone(),
        r.erased.to_string(),
    ];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        csv_field(&mut o, f);
    }
    o.push('\n');
    o
}

/// A visitor's receipts, newest first, following `previous_receipt` links from `latest`.
pub fn history(
    store: &mut dyn Store,
    latest: &str,
    max: usize,
) -> Result<Vec<Receipt>, StoreError> {
    let mut out = Vec::new();
    let mut next = Some(latest.to_string());
    while let Some(id) = next.take() {
        if out.len() >= max || out.iter().any(|r: &Receipt| r.id == id) {
            break;
        }
        match store.get(&id)? {
            Some(r) => {
                next = r.previous_receipt.clone();
                out.push(r);
            }
            None => break,
        }
    }
    Ok(out)
}

/// Decisions per day, per service and per purpose (granted / refused), and consent rates.
/// `purpose_of` maps service ids to purposes (receipts keep ids only).
pub fn stats(
    store: &mut dyn Store,
    purpose_of: &BTreeMap<String, String>,
    site: Option<&str>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
) -> Result<serde_json::Value, StoreError> {
    #[derive(Default)]
    struct Day {
        decisions: u64,
        services: BTreeMap<String, (u64, u64)>,
        purposes: BTreeMap<String, (u64, u64)>,
    }
    let mut days: BTreeMap<String, Day> = BTreeMap::new();
    let mut totals: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    store.list(site, from_ms, to_ms, &mut |r| {
        if r.erased {
            return true;
        }
        let day = days.entry(utc(r.ts_ms)[..10].to_string()).or_default();
        day.decisions += 1;
        for (list, granted) in [(&r.granted, true), (&r.refused, false)] {
            for id in list {
                let bump = |e: &mut (u64, u64)| if granted { e.0 += 1 } else { e.1 += 1 };
                bump(day.services.entry(id.clone()).or_default());
                bump(totals.entry(id.clone()).or_default());
                if let Some(p) = purpose_of.get(id) {
                    bump(day.purposes.entry(p.clone()).or_default());
                }
            }
        }
        true
    })?;
    let pair = |(g, r): &(u64, u64)| {
        let rate = if g + r == 0 {
            0.0
        } else {
            *g as f64 / (g + r) as f64
        };
        serde_json::json!({"granted": g, "refused": r, "consent_rate": (rate * 1000.0).round() / 1000.0})
    };
    Ok(serde_json::json!({
        "days": days.iter().map(|(d, x)| serde_json::json!({
            "day": d,
            "decisions": x.decisions,
            "services": x.services.iter().map(|(k, v)| (k.clone(), pair(v))).collect::<serde_json::Map<_, _>>(),
            "purposes": x.purposes.iter().map(|(k, v)| (k.clone(), pair(v))).collect::<serde_json::Map<_, _>>(),
        })).collect::<Vec<_>>(),
        "services": totals.iter().map(|(k, v)| (k.clone(), pair(v))).collect::<serde_json::Map<_, _>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trips() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_795_424_130_123), "2026-11-23T08:55:30.123Z");
        assert_eq!(
            parse_time("2026-11-23T08:55:30.123Z"),
            Some(1_795_424_130_123)
        );
        assert_eq!(parse_time("2026-11-23"), Some(1_795_392_000_000));
        assert_eq!(
            parse_time("2024-02-29"),
            Some(days_from_civil(2024, 2, 29) * 86_400_000)
        );
        assert_eq!(parse_time("1795424130123"), Some(1_795_424_130_123));
        for bad in [
            "",
            "2026-13-01",
            "yesterday",
            "2026-11-23T25:00:00Z",
            "2026/11/23",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        for ms in [0, 951_782_400_000, 4_102_444_800_000, 1_795_424_130_123] {
            assert_eq!(parse_time(&utc(ms)), Some(ms));
        }
    }

    #[test]
    fn csv_quotes() {
        let mut r = super::super::tests::sample("s");
        r.user_agent = "a,\"b\"".into();
        let row = csv_row(&r);
        assert!(row.contains(",\"a,\"\"b\"\"\","), "{row}");
        // 14 separators plus the one inside the quoted field.
        assert_eq!(
            row.matches(',').count(),
            CSV_HEADER.matches(',').count() + 1
        );
    }
}
