//! The origin's addresses: round-robin with passive health. An address whose connection fails
//! is left out for `upstream.fail_timeout`, then tried again; when every address is out, the one
//! that comes back soonest is tried anyway (a guess beats a certain 502).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct Upstreams {
    urls: Vec<url::Url>,
    /// Per address, made once: `scheme://authority/base-path` (requests append their path) and
    /// the authority alone (for `Host` when `upstream.host_header = "upstream"`).
    prefixes: Vec<(String, String)>,
    next: AtomicUsize,
    /// Per address: milliseconds since `epoch` until which it is left out (0: healthy).
    down_until: Vec<AtomicU64>,
    epoch: Instant,
    fail_timeout: Duration,
}

impl Upstreams {
    pub fn new(config: &crate::config::UpstreamConfig) -> Upstreams {
        let urls: Vec<url::Url> = config.urls().cloned().collect();
        Upstreams {
            down_until: urls.iter().map(|_| AtomicU64::new(0)).collect(),
            prefixes: urls
                .iter()
                .map(|u| {
                    let authority = authority(u);
                    let path = u.path().trim_end_matches('/');
                    (format!("{}://{authority}{path}", u.scheme()), authority)
                })
                .collect(),
            urls,
            next: AtomicUsize::new(0),
            epoch: Instant::now(),
            fail_timeout: config.fail_timeout,
        }
    }

    /// How many addresses (at least one).
    pub fn count(&self) -> usize {
        self.urls.len()
    }

    pub fn url(&self, i: usize) -> &url::Url {
        &self.urls[i % self.urls.len()]
    }

    /// `scheme://authority/base-path` of address `i`, to which a request's path is appended.
    pub fn prefix(&self, i: usize) -> &str {
        &self.prefixes[i % self.prefixes.len()].0
    }

    /// The `host[:port]` of address `i`.
    pub fn authority(&self, i: usize) -> &str {
        &self.prefixes[i % self.prefixes.len()].1
    }

    fn now_ms(&self) -> u64 {
        // +1: 0 means "healthy", so a failure in the first millisecond still counts.
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// The address for the next attempt, skipping those in `tried` (indices already tried for
    /// this request) and those left out, unless nothing else is left.
    pub fn pick(&self, tried: &[usize]) -> usize {
        let n = self.urls.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let candidates = (0..n)
            .map(|k| (start + k) % n)
            .filter(|i| !tried.contains(i));
        let mut soonest: Option<(u64, usize)> = None;
        for i in candidates {
            let until = self.down_until[i].load(Ordering::Relaxed);
            if until <= now {
                return i;
            }
            if soonest.is_none_or(|(u, _)| until < u) {
                soonest = Some((until, i));
            }
        }
        soonest.map_or(start % n, |(_, i)| i)
    }

    /// A connection to address `i` failed: leave it out for the fail timeout. True when it was
    /// in until now (a new ejection, worth counting).
    pub fn failed(&self, i: usize) -> bool {
        let now = self.now_ms();
        let before = self.down_until[i].swap(
            now + self.fail_timeout.as_millis() as u64,
            Ordering::Relaxed,
        );
        let ejected = before <= now;
        if ejected {
            tracing::warn!(
                upstream = %self.urls[i],
                retry_in = ?self.fail_timeout,
                healthy = self.healthy(),
                of = self.urls.len(),
                "upstream address failed: left out"
            );
        }
        ejected
    }

    /// Address `i` answered: healthy again.
    pub fn succeeded(&self, i: usize) {
        if self.down_until[i].swap(0, Ordering::Relaxed) != 0 {
            tracing::info!(upstream = %self.urls[i], "upstream address is back");
        }
    }

    /// Addresses not currently left out.
    pub fn healthy(&self) -> usize {
        let now = self.now_ms();
        self.down_until
            .iter()
            .filter(|d| d.load(Ordering::Relaxed) <= now)
            .count()
    }
}

/// `host[:port]` of a URL, IPv6 hosts in brackets.
fn authority(u: &url::Url) -> String {
    let host = u.host_str().unwrap_or("");
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstreams(n: usize, fail: Duration) -> Upstreams {
        let mut c = crate::config::Config::defaults().unwrap().upstream;
        c.others = (1..n)
            .map(|i| url::Url::parse(&format!("http://10.0.0.{i}:80")).unwrap())
            .collect();
        c.fail_timeout = fail;
        Upstreams::new(&c)
    }

    #[test]
    fn request_targets_are_prefix_and_path() {
        let mut c = crate::config::Config::defaults().unwrap().upstream;
        c.url = url::Url::parse("http://origin.test:8080/app/").unwrap();
        c.others = ["https://[::1]/", "http://10.0.0.2"]
            .iter()
            .map(|u| url::Url::parse(u).unwrap())
            .collect();
        let u = Upstreams::new(&c);
        let got: Vec<(&str, &str)> = (0..3).map(|i| (u.prefix(i), u.authority(i))).collect();
        assert_eq!(
            got,
            [
                ("http://origin.test:8080/app", "origin.test:8080"),
                ("https://[::1]", "[::1]"),
                ("http://10.0.0.2", "10.0.0.2"),
            ]
        );
    }

    #[test]
    fn round_robin_over_healthy_addresses() {
        let u = upstreams(3, Duration::from_secs(60));
        let picks: Vec<usize> = (0..6).map(|_| u.pick(&[])).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        u.failed(1);
        let picks: Vec<usize> = (0..4).map(|_| u.pick(&[])).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        assert_eq!(u.healthy(), 2);
        u.succeeded(1);
        assert_eq!(u.healthy(), 3);
    }

    #[test]
    fn tried_addresses_are_skipped_and_all_down_still_picks_one() {
        let u = upstreams(2, Duration::from_secs(60));
        let first = u.pick(&[]);
        assert_ne!(u.pick(&[first]), first);
        u.failed(0);
        std::thread::sleep(Duration::from_millis(2));
        u.failed(1);
        // Both out: the one that comes back first.
        assert_eq!(u.pick(&[]), 0);
        assert_eq!(u.pick(&[0]), 1);
    }

    #[test]
    fn a_left_out_address_comes_back_after_the_timeout() {
        let u = upstreams(2, Duration::from_millis(20));
        u.failed(0);
        assert_eq!(u.healthy(), 1);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(u.healthy(), 2);
    }
}
