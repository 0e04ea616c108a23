//! CSP violation reports: validated, size-limited by the endpoint, rate-limited per client, and
//! aggregated in bounded memory by directive and blocked origin, for the admin listener.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Distinct (directive, blocked origin) pairs kept; later new pairs are only counted.
const MAX_KEYS: usize = 1000;
/// Clients tracked for rate limiting; the oldest is forgotten when full.
const MAX_CLIENTS: usize = 4096;
/// Reports per client: a burst, then one per `REFILL`.
const BURST: f64 = 20.0;
const REFILL: Duration = Duration::from_secs(3);

#[derive(Default)]
struct Agg {
    counts: BTreeMap<(String, String), u64>,
    dropped_overflow: u64,
    dropped_rate: u64,
    clients: HashMap<IpAddr, (f64, Instant)>,
}

/// Aggregated violation reports of one site.
#[derive(Default)]
pub struct CspReports {
    inner: Mutex<Agg>,
}

/// Why a report was not counted.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    RateLimited,
    Invalid,
}

/// `scheme://host[:port]` of a blocked URL, or the CSP keyword (`inline`, `eval`, `data`).
fn blocked_origin(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(url) if url.has_host() => url.origin().ascii_serialization(),
        Ok(url) => url.scheme().to_string(),
        Err(_) => u.chars().take(32).collect(),
    }
}

fn violations(v: &serde_json::Value) -> Vec<(String, String)> {
    let pick = |o: &serde_json::Value, keys: &[&str]| {
        keys.iter()
            .find_map(|k| o.get(*k).and_then(|x| x.as_str()))
            .map(str::to_string)
    };
    let one = |o: &serde_json::Value| {
        let dir = pick(
            o,
            &[
                "effective-directive",
                "effectiveDirective",
                "violated-directive",
            ],
        )?;
        let blocked = pick(o, &["blocked-uri", "blockedURL"]).unwrap_or_default();
        let dir: String = dir
            .split_whitespace()
            .next()
            .unwrap_or("")
            .chars()
            .take(40)
            .collect();
        (!dir.is_empty()).then(|| (dir, blocked_origin(&blocked)))
    };
    if let Some(r) = v.get("csp-report") {
        return one(r).into_iter().collect();
    }
    match v.as_array() {
        Some(items) => items
            .iter()
            .filter(|i| i.get("type").and_then(|t| t.as_str()) == Some("csp-violation"))
            .filter_map(|i| i.get("body").and_then(one))
            .take(50)
            .collect(),
        None => Vec::new(),
    }
}

impl CspReports {
    /// Counts the violations in one report body from `client`; returns their directives.
    pub fn accept(&self, client: IpAddr, body: &[u8]) -> Result<Vec<String>, Refused> {
        let mut a = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if !a.clients.contains_key(&client) && a.clients.len() >= MAX_CLIENTS {
            if let Some(oldest) = a
                .clients
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(ip, _)| *ip)
            {
                a.clients.remove(&oldest);
            }
        }
        let (tokens, last) = a.clients.entry(client).or_insert((BURST, now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() / REFILL.as_secs_f64()).min(BURST);
        *last = now;
        if *tokens < 1.0 {
            a.dropped_rate += 1;
            return Err(Refused::RateLimited);
        }
        *tokens -= 1.0;
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|_| Refused::Invalid)?;
        let found = violations(&v);
        if found.is_empty() {
            return Err(Refused::Invalid);
        }
        let directives: Vec<String> = found.iter().map(|(d, _)| d.clone()).collect();
        for key in found {
            if let Some(c) = a.counts.get_mut(&key) {
                *c += 1;
            } else if a.counts.len() < MAX_KEYS {
                a.counts.insert(key, 1);
            } else {
                a.dropped_overflow += 1;
            }
        }
        Ok(directives)
    }

    /// `{"violations": [{"directive", "blocked", "count"}...], "dropped": {...}}`, most first.
    pub fn snapshot(&self) -> serde_json::Value {
        let a = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut rows: Vec<_> = a.counts.iter().collect();
        rows.sort_by(|x, y| y.1.cmp(x.1));
        serde_json::json!({
            "violations": rows.iter().map(|((d, b), c)| serde_json::json!({"directive": d, "blocked": b, "count": c})).collect::<Vec<_>>(),
            "dropped": {"rate_limited": a.dropped_rate, "over_capacity": a.dropped_overflow},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGACY: &str = r#"{"csp-report":{"document-uri":"https://shop.example/","referrer":"","violated-directive":"script-src-elem","effective-directive":"script-src-elem","original-policy":"script-src 'self'","disposition":"enforce","blocked-uri":"https://connect.facebook.net/en_US/fbevents.js","status-code":200,"script-sample":""}}"#;
    const MODERN: &str = r#"[{"type":"csp-violation","age":10,"url":"https://shop.example/","user_agent":"x","body":{"documentURL":"https://shop.example/","effectiveDirective":"connect-src","blockedURL":"https://www.google-analytics.com/g/collect?v=2","disposition":"report","statusCode":200}}]"#;

    #[test]
    fn both_report_formats_are_aggregated() {
        let r = CspReports::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            r.accept(ip, LEGACY.as_bytes()),
            Ok(vec!["script-src-elem".to_string()])
        );
        assert_eq!(r.accept(ip, LEGACY.as_bytes()).map(|d| d.len()), Ok(1));
        assert_eq!(
            r.accept(ip, MODERN.as_bytes()),
            Ok(vec!["connect-src".to_string()])
        );
        let s = r.snapshot();
        assert_eq!(s["violations"][0]["directive"], "script-src-elem");
        assert_eq!(
            s["violations"][0]["blocked"],
            "https://connect.facebook.net"
        );
        assert_eq!(s["violations"][0]["count"], 2);
        assert_eq!(
            s["violations"][1]["blocked"],
            "https://www.google-analytics.com"
        );
        assert_eq!(r.accept(ip, b"not json"), Err(Refused::Invalid));
        assert_eq!(r.accept(ip, b"{}"), Err(Refused::Invalid));
    }

    #[test]
    fn clients_are_rate_limited_and_memory_is_bounded() {
        let r = CspReports::default();
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        let ok = (0..100)
            .filter(|_| r.accept(ip, LEGACY.as_bytes()).is_ok())
            .count();
        assert_eq!(ok, BURST as usize);
        assert_eq!(r.snapshot()["dropped"]["rate_limited"], 100 - BURST as u64);
        // Many distinct blocked origins from many clients: bounded.
        for i in 0..1500u32 {
            let ip = IpAddr::from([10, 1, (i / 256) as u8, (i % 256) as u8]);
            let body = LEGACY.replace("connect.facebook.net", &format!("h{i}.example"));
            let _ = r.accept(ip, body.as_bytes());
        }
        let s = r.snapshot();
        assert_eq!(s["violations"].as_array().unwrap().len(), MAX_KEYS);
        assert!(s["dropped"]["over_capacity"].as_u64().unwrap() > 0);
    }
}
