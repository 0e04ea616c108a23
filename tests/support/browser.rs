//! The real-browser harness shared by `tests/browser.rs` and `tests/browser_consent.rs`
//! (included by each with `#[path = "support/browser.rs"] mod support;`).
//!
//! Every test starts, on loopback only:
//! - the demo origin and a consentgate proxy in front of it (own tokio runtime): [`Site`];
//! - a logging HTTP proxy that records the host of every request it gets (`CONNECT host:443`
//!   for https, `GET http://host/...` for http), answers `502 Bad Gateway` and closes:
//!   [`LogProxy`];
//! - a headless Chromium (Debian's `chromium`, or `$CONSENTGATE_CHROMIUM`) with
//!   `--proxy-server` pointing at the logging proxy, driven over the DevTools protocol:
//!   [`Browser`].
//!
//! Chromium never sends loopback traffic to a proxy (its implicit bypass rules; `<-loopback>`
//! would be needed to change that), so the pages on 127.0.0.1 load directly while every
//! third-party host ends up in the log: nothing leaves the machine, and what the log holds is
//! exactly what the browser tried to reach. [`assert_no_loopback`] verifies the bypass.

// Each test binary uses a different subset of the harness.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use consentgate::catalog::Catalog;
use consentgate::config::{parse_upstream_url, Config};
use consentgate::proxy::Proxy;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
pub const PAGES: [&str; 6] = [
    "/",
    "/zendesk",
    "/zopim",
    "/freshchat",
    "/analytics",
    "/youtube",
];
/// How long the network must be silent after `load` before a page counts as done. Freshchat's
/// loader runs in a `load` listener, so requests can start right after the event.
pub const QUIET: Duration = Duration::from_millis(400);
/// Upper bound for settling one page; past it the test goes on (and says so).
pub const SETTLE_MAX: Duration = Duration::from_secs(8);
/// Upper bound for any single DevTools round trip or page load.
pub const CDP_TIMEOUT: Duration = Duration::from_secs(20);
/// Upper bound for the expected requests to show up after consent.
pub const EXPECT_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The logging proxy

#[derive(Debug, Clone)]
pub struct Hit {
    pub host: String,
    pub request_line: String,
}

pub struct LogProxy {
    pub addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    last: Arc<Mutex<Option<Instant>>>,
    stop: Arc<AtomicBool>,
}

impl LogProxy {
    pub fn start() -> LogProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the logging proxy");
        let addr = listener.local_addr().expect("logging proxy address");
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let last: Arc<Mutex<Option<Instant>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (h, l, s) = (hits.clone(), last.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (h, l) = (h.clone(), l.clone());
                thread::spawn(move || log_one(conn, &h, &l));
            }
        });
        LogProxy {
            addr,
            hits,
            last,
            stop,
        }
    }

    pub fn len(&self) -> usize {
        self.hits.lock().unwrap().len()
    }

    pub fn since(&self, mark: usize) -> Vec<Hit> {
        self.hits.lock().unwrap()[mark..].to_vec()
    }

    pub fn last_hit_at(&self) -> Option<Instant> {
        *self.last.lock().unwrap()
    }
}

impl Drop for LogProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn log_one(mut conn: TcpStream, hits: &Mutex<Vec<Hit>>, last: &Mutex<Option<Instant>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Read the whole head (no request we get has a body) so closing does not reset the
    // connection under Chromium's feet.
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    if buf.is_empty() {
        return; // the shutdown wake-up, or a connection that said nothing
    }
    let head = String::from_utf8_lossy(&buf);
    let line = head.lines().next().unwrap_or("").to_string();
    let host = host_of_request_line(&line).unwrap_or_else(|| format!("<unparsed: {line}>"));
    hits.lock().unwrap().push(Hit {
        host,
        request_line: line,
    });
    *last.lock().unwrap() = Some(Instant::now());
    let _ = conn
        .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = conn.shutdown(std::net::Shutdown::Both);
}

/// `CONNECT host:443 HTTP/1.1` or `GET http://host[:port]/path HTTP/1.1` → `host`.
pub fn host_of_request_line(line: &str) -> Option<String> {
    let mut parts = line.split_whitespace();
    let method = parts.next()?;
    let target = parts.next()?;
    let authority = if method.eq_ignore_ascii_case("CONNECT") {
        target
    } else {
        let rest = target.split_once("://")?.1;
        rest.split(['/', '?', '#']).next()?
    };
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.trim_end_matches('.').to_ascii_lowercase())
}

// ---------------------------------------------------------------------------------------------
// The catalog, as host patterns

pub struct ServiceHosts {
    /// (service id, host without `*.` or path, wildcard)
    entries: Vec<(String, String, bool)>,
}

impl ServiceHosts {
    pub fn builtin() -> ServiceHosts {
        let catalog = Catalog::builtin().expect("built-in catalog");
        let mut entries = Vec::new();
        for s in catalog.services() {
            for h in &s.hosts {
                let h = h.trim().to_ascii_lowercase();
                let h = h.split('/').next().unwrap_or_default();
                let (host, wildcard) = match h.strip_prefix("*.") {
                    Some(rest) => (rest, true),
                    None => (h, false),
                };
                entries.push((s.id.clone(), host.to_string(), wildcard));
            }
        }
        assert!(!entries.is_empty(), "the built-in catalog has no hosts");
        ServiceHosts { entries }
    }

    /// The service a logged host belongs to. Only the host is known for `CONNECT`, so a
    /// path-scoped entry (`www.facebook.com/tr`) counts for the whole host: conservative.
    pub fn service_of(&self, host: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(_, h, wildcard)| {
                host == h
                    || (*wildcard
                        && host.len() > h.len()
                        && host.ends_with(h.as_str())
                        && host.as_bytes()[host.len() - h.len() - 1] == b'.')
            })
            .map(|(id, _, _)| id.as_str())
    }
}

pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost" || host.starts_with("127.") || host == "::1"
}

/// One page's log, for output and assertions.
pub struct PageLog {
    pub url: String,
    pub hits: Vec<Hit>,
}

impl PageLog {
    pub fn hosts(&self) -> BTreeSet<String> {
        self.hits.iter().map(|h| h.host.clone()).collect()
    }
}

pub fn describe(case: &str, pages: &[PageLog], services: &ServiceHosts) -> String {
    let mut out = String::new();
    for p in pages {
        let listed: Vec<String> = p
            .hosts()
            .into_iter()
            .map(|h| {
                let n = p.hits.iter().filter(|x| x.host == h).count();
                let times = if n > 1 {
                    format!(" x{n}")
                } else {
                    String::new()
                };
                match services.service_of(&h) {
                    Some(id) => format!("{h}{times} [{id}]"),
                    None => format!("{h}{times} [not in catalog]"),
                }
            })
            .collect();
        out.push_str(&format!(
            "[{case}] {} -> {}\n",
            p.url,
            if listed.is_empty() {
                "(no requests)".to_string()
            } else {
                listed.join(", ")
            }
        ));
    }
    out
}

pub fn all_hosts(pages: &[PageLog]) -> BTreeSet<String> {
    pages.iter().flat_map(|p| p.hosts()).collect()
}

/// Every logged request to a catalog service, with the page that caused it.
pub fn service_hits<'a>(
    pages: &'a [PageLog],
    services: &ServiceHosts,
    allowed: &[&str],
) -> Vec<(&'a str, &'a Hit, String)> {
    let mut out = Vec::new();
    for p in pages {
        for h in &p.hits {
            if let Some(id) = services.service_of(&h.host) {
                if !allowed.contains(&id) {
                    out.push((p.url.as_str(), h, id.to_string()));
                }
            }
        }
    }
    out
}

pub fn assert_no_loopback(case: &str, log: &LogProxy) {
    let bad: Vec<Hit> = log
        .since(0)
        .into_iter()
        .filter(|h| is_loopback_host(&h.host))
        .collect();
    assert!(
        bad.is_empty(),
        "[{case}] Chromium sent loopback traffic to the logging proxy (the proxy bypass did not \
         work, so the pages did not load directly): {bad:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The demo origin and the consentgate proxy

pub struct Site {
    pub origin: SocketAddr,
    pub proxy: SocketAddr,
    shutdown: Vec<tokio::sync::oneshot::Sender<()>>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Site {
    pub fn start() -> Site {
        Site::start_with(|_| {})
    }

    /// The demo site behind a proxy whose config `tweak` adjusts.
    pub fn start_with(tweak: impl FnOnce(&mut Config) + Send + 'static) -> Site {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let (origin, proxy, shutdown) = rt.block_on(async {
            let ol = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind origin");
            let origin = ol.local_addr().unwrap();
            let (otx, orx) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(consentgate::demo::serve_origin(ol, async {
                let _ = orx.await;
            }));

            let mut config = Config::defaults().expect("default config");
            config.upstream.url = parse_upstream_url(&format!("http://{origin}")).unwrap();
            config.consent.key = Some("k".repeat(32));
            config.receipts.store = consentgate::config::ReceiptStore::Sqlite(
                std::env::temp_dir()
                    .join(format!(
                        "consentgate-browser-{}",
                        consentgate::receipts::new_id()
                    ))
                    .join("receipts.db"),
            );
            tweak(&mut config);
            let (p, _key_source) = Proxy::new(config).expect("proxy");
            let p = Arc::new(p);
            let pl = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind proxy");
            let proxy = pl.local_addr().unwrap();
            let (ptx, prx) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(p.serve(pl, async {
                let _ = prx.await;
            }));
            (origin, proxy, vec![otx, ptx])
        });
        Site {
            origin,
            proxy,
            shutdown,
            rt: Some(rt),
        }
    }

    pub fn origin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.origin)
    }

    pub fn proxy_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        for tx in self.shutdown.drain(..) {
            let _ = tx.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Chromium

pub fn chromium_binary() -> PathBuf {
    let bin = std::env::var_os("CONSENTGATE_CHROMIUM")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CHROMIUM));
    assert!(
        bin.is_file(),
        "Chromium not found at {} — install chromium: apt-get install -y chromium \
         (or set CONSENTGATE_CHROMIUM to a Chromium binary)",
        bin.display()
    );
    bin
}

fn fresh_profile_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "consentgate-browser-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("create the Chromium profile directory");
    dir
}

/// Kills the browser's whole process group and removes its profile, on every path.
struct ProcessGuard {
    child: Child,
    profile: PathBuf,
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        // The browser leads its own process group (see `process_group(0)`): renderers, zygotes
        // and the crash handler go with it.
        let pgid = self.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// At most this many browsers at once, whatever the test harness's thread count.
const MAX_BROWSERS: usize = 2;
static BROWSERS: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

struct BrowserSlot;

impl BrowserSlot {
    fn acquire() -> BrowserSlot {
        let (lock, cvar) = &BROWSERS;
        let mut n = lock.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= MAX_BROWSERS {
            n = cvar.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        BrowserSlot
    }
}

impl Drop for BrowserSlot {
    fn drop(&mut self) {
        let (lock, cvar) = &BROWSERS;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        cvar.notify_one();
    }
}

pub struct Browser {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    session: String,
    /// The page target's id, which is also its main frame's id.
    main_frame: String,
    /// `Page.*` events not consumed yet.
    events: VecDeque<Value>,
    /// Requests of the page target that have started and not finished: id → URL.
    inflight: HashMap<String, String>,
    last_network_event: Instant,
    /// Every main-frame document request of the page, in order (see [`DocumentRequest`]).
    documents: Vec<DocumentRequest>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    // Dropped last: the process outlives the socket, the slot outlives the process.
    process: ProcessGuard,
    _slot: BrowserSlot,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ask for a clean exit first (Chromium then reaps its own children); the guard kills
        // whatever is left.
        let msg = json!({ "id": 0, "method": "Browser.close" }).to_string();
        if self.ws.send(Message::text(msg)).is_ok() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if !matches!(self.process.child.try_wait(), Ok(None)) {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// How to start a browser: [`Browser::launch_with`].
#[derive(Debug, Clone)]
pub struct Launch {
    pub javascript: bool,
    /// Sent as `Accept-Language` (and reported as `navigator.languages`), via
    /// `Emulation.setUserAgentOverride`; `None` keeps Chromium's default.
    pub accept_language: Option<String>,
}

impl Default for Launch {
    fn default() -> Launch {
        Launch {
            javascript: true,
            accept_language: None,
        }
    }
}

/// A main-frame document request as DevTools reported it.
#[derive(Debug, Clone)]
pub struct DocumentRequest {
    pub method: String,
    pub url: String,
    /// The status of the redirect that led to this request, if it is one.
    pub redirected_by: Option<u64>,
}

/// An element's box (CSS pixels, relative to the viewport).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

impl Rect {
    fn from_json(v: &Value) -> Rect {
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        Rect {
            x: f("x"),
            y: f("y"),
            width: f("width"),
            height: f("height"),
        }
    }
}

/// What a visitor would see of one element: [`Browser::inspect`].
#[derive(Debug, Clone)]
pub struct Seen {
    pub rect: Rect,
    /// Viewport width and height (without scroll bars).
    pub viewport: (f64, f64),
    pub display: String,
    pub visibility: String,
    pub opacity: f64,
    /// `display` is not `none` on the element or any ancestor (it has layout boxes).
    pub rendered: bool,
    /// What `elementFromPoint` finds at the centre of the element's visible part: itself or a
    /// descendant (`None`), or the element that covers it.
    pub covered_by: Option<String>,
}

impl Seen {
    /// Rendered, non-empty, not hidden or transparent, entirely inside the viewport (±1px),
    /// and not covered by another element.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let (r, (vw, vh)) = (self.rect, self.viewport);
        if !self.rendered || self.display == "none" {
            out.push(format!("not rendered (display: {})", self.display));
        }
        if r.width < 1.0 || r.height < 1.0 {
            out.push(format!("empty box {r:?}"));
        }
        if r.x < -1.0 || r.y < -1.0 || r.x + r.width > vw + 1.0 || r.y + r.height > vh + 1.0 {
            out.push(format!("box {r:?} not inside the {vw}x{vh} viewport"));
        }
        if self.visibility != "visible" {
            out.push(format!("visibility: {}", self.visibility));
        }
        if self.opacity < 0.1 {
            out.push(format!("opacity: {}", self.opacity));
        }
        if let Some(c) = &self.covered_by {
            out.push(format!("covered by {c}"));
        }
        out
    }

    pub fn is_visible(&self) -> bool {
        self.problems().is_empty()
    }
}

/// `selector` as a JavaScript string literal.
pub fn js_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// Where to click an element (after scrolling it into view, in every scroll container), and
/// what covers that point if it is not the element. Runs as page-independent DevTools code, so
/// it works with the page's JavaScript disabled too.
const CLICK_POINT_JS: &str = r#"(sel) => {
  const el = document.querySelector(sel);
  if (!el) return { error: 'no element matches ' + sel };
  el.scrollIntoView({ block: 'nearest', inline: 'nearest', behavior: 'instant' });
  const r = el.getBoundingClientRect();
  if (r.width < 1 || r.height < 1) return { error: sel + ' has no box: ' + JSON.stringify(r) };
  const vw = document.documentElement.clientWidth, vh = document.documentElement.clientHeight;
  const x = (Math.max(r.left, 0) + Math.min(r.right, vw)) / 2;
  const y = (Math.max(r.top, 0) + Math.min(r.bottom, vh)) / 2;
  const hit = document.elementFromPoint(x, y);
  const owner = hit && hit.parentElement && hit.parentElement.closest('[id]');
  const covered = hit && (hit === el || el.contains(hit)) ? null
    : (hit ? hit.outerHTML.slice(0, 160) + (owner ? ' (inside #' + owner.id + ')' : '')
      : 'nothing (outside the viewport)');
  return { x, y, covered };
}"#;

const INSPECT_JS: &str = r#"(sel) => {
  const el = document.querySelector(sel);
  if (!el) return null;
  const r = el.getBoundingClientRect();
  const cs = getComputedStyle(el);
  const vw = document.documentElement.clientWidth, vh = document.documentElement.clientHeight;
  let covered = null;
  if (r.width >= 1 && r.height >= 1) {
    const x = (Math.max(r.left, 0) + Math.min(r.right, vw)) / 2;
    const y = (Math.max(r.top, 0) + Math.min(r.bottom, vh)) / 2;
    const hit = document.elementFromPoint(x, y);
    const owner = hit && hit.parentElement && hit.parentElement.closest('[id]');
    covered = hit && (hit === el || el.contains(hit)) ? null
      : (hit ? hit.outerHTML.slice(0, 160) + (owner ? ' (inside #' + owner.id + ')' : '')
        : 'nothing (outside the viewport)');
  }
  return { rect: { x: r.x, y: r.y, width: r.width, height: r.height }, vw, vh,
    display: cs.display, visibility: cs.visibility, opacity: parseFloat(cs.opacity),
    rendered: el.getClientRects().length > 0, covered };
}"#;

/// Switches that keep Chromium's own requests off the network (see `Browser::launch_with`).
pub const BACKGROUND_OFF: &[&str] = &[
    "--gaia-url=http://127.0.0.1:9/",
    "--google-base-url=http://127.0.0.1:9/",
    "--gcm-checkin-url=http://127.0.0.1:9/",
    "--disable-features=PreconnectToSearch,SearchEnginePreconnector,SearchEnginePreconnect2,\
PrewarmDefaultSearchEngine,SearchWarmup,OptimizationHints,OptimizationGuideModelDownloading,\
OptimizationHintsFetching,OptimizationTargetPrediction,NetworkTimeServiceQuerying",
];

impl Browser {
    pub fn launch(log: &LogProxy, javascript: bool) -> Browser {
        Browser::launch_with(
            log,
            &Launch {
                javascript,
                ..Launch::default()
            },
        )
    }

    pub fn launch_with(log: &LogProxy, launch: &Launch) -> Browser {
        let javascript = launch.javascript;
        let bin = chromium_binary();
        let slot = BrowserSlot::acquire();
        let profile = fresh_profile_dir();
        let mut cmd = Command::new(&bin);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ])
        // The browser's own traffic, which reaches the logging proxy like a page's and would
        // count as a leak (www.google.com is Google Analytics' host too). Chromium 148 makes it
        // despite --disable-background-networking: a preconnect to the default search engine,
        // Google account and GCM check-ins, optimization-guide models, network time. Its Google
        // endpoints go to a closed loopback port (loopback bypasses the proxy); the rest are
        // features turned off. `browser_itself_sends_nothing` (tests/browser.rs) notices new ones.
        .args(BACKGROUND_OFF)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--proxy-server=http://{}", log.addr))
        .arg("--remote-debugging-port=0");
        if !javascript {
            cmd.arg("--blink-settings=scriptEnabled=false");
        }
        cmd.arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&profile);
                panic!(
                    "cannot start Chromium at {}: {e} — install chromium: apt-get install -y chromium",
                    bin.display()
                );
            }
        };
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let process = ProcessGuard { child, profile };

        // Drain stderr for the whole life of the browser (a full pipe would block it), keep the
        // tail for failure messages, and pass on the DevTools address.
        let stderr: Arc<Mutex<VecDeque<String>>> = Arc::default();
        let (tx, rx) = mpsc::channel::<String>();
        {
            let stderr = stderr.clone();
            thread::spawn(move || {
                for line in BufReader::new(stderr_pipe).lines() {
                    let Ok(line) = line else { break };
                    if let Some(url) = line.strip_prefix("DevTools listening on ") {
                        let _ = tx.send(url.trim().to_string());
                    }
                    let mut s = stderr.lock().unwrap();
                    if s.len() == 60 {
                        s.pop_front();
                    }
                    s.push_back(line);
                }
            });
        }
        let tail = |s: &Arc<Mutex<VecDeque<String>>>| {
            s.lock()
                .unwrap()
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        };
        let ws_url = match rx.recv_timeout(CDP_TIMEOUT) {
            Ok(u) => u,
            Err(_) => panic!(
                "Chromium ({}) did not print its DevTools address within {CDP_TIMEOUT:?}; stderr:\n{}",
                bin.display(),
                tail(&stderr)
            ),
        };
        let authority = ws_url
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("unexpected DevTools address {ws_url}"));
        let addr: SocketAddr = authority
            .parse()
            .unwrap_or_else(|e| panic!("DevTools address {ws_url}: {e}"));
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to DevTools at {addr}: {e}"));
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
        stream.set_nodelay(true).ok();
        let (ws, _) = tungstenite::client(ws_url.as_str(), stream)
            .unwrap_or_else(|e| panic!("DevTools WebSocket handshake with {ws_url}: {e}"));
        // From now on reads poll, so every wait is bounded by its own deadline.
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(50)))
            .ok();

        let mut b = Browser {
            ws,
            next_id: 0,
            session: String::new(),
            main_frame: String::new(),
            events: VecDeque::new(),
            inflight: HashMap::new(),
            last_network_event: Instant::now(),
            documents: Vec::new(),
            stderr,
            process,
            _slot: slot,
        };
        let target = b.call_on(None, "Target.createTarget", json!({ "url": "about:blank" }));
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        b.main_frame = target_id.clone();
        let attached = b.call_on(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        b.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        b.call("Page.enable", json!({}));
        b.call("Page.setLifecycleEventsEnabled", json!({ "enabled": true }));
        b.call("Network.enable", json!({}));
        if let Some(lang) = &launch.accept_language {
            let ua = b.call_on(None, "Browser.getVersion", json!({}))["userAgent"]
                .as_str()
                .expect("userAgent")
                .to_string();
            b.call(
                "Emulation.setUserAgentOverride",
                json!({ "userAgent": ua, "acceptLanguage": lang }),
            );
        }
        b
    }

    pub fn stderr_tail(&self) -> String {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Reads one DevTools message, or `None` at `deadline`. Network events of our page are
    /// folded into the in-flight set here, whoever is waiting.
    fn read_one(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            if Instant::now() >= deadline {
                return None;
            }
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(t.as_str())
                        .unwrap_or_else(|e| panic!("DevTools sent bad JSON ({e}): {t}"));
                    self.track_network(&v);
                    return Some(v);
                }
                Ok(Message::Close(_)) => panic!(
                    "Chromium closed the DevTools connection; stderr:\n{}",
                    self.stderr_tail()
                ),
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) => panic!(
                    "DevTools connection failed: {e}; Chromium stderr:\n{}",
                    self.stderr_tail()
                ),
            }
        }
    }

    fn track_network(&mut self, v: &Value) {
        if v["sessionId"].as_str() != Some(self.session.as_str()) {
            return;
        }
        let Some(method) = v["method"].as_str() else {
            return;
        };
        let id = v["params"]["requestId"].as_str().unwrap_or_default();
        match method {
            "Network.requestWillBeSent" => {
                let url = v["params"]["request"]["url"].as_str().unwrap_or_default();
                self.inflight.insert(id.to_string(), url.to_string());
                // A page target's id is its main frame's id.
                if v["params"]["type"] == "Document"
                    && v["params"]["frameId"].as_str() == Some(self.main_frame.as_str())
                {
                    self.documents.push(DocumentRequest {
                        method: v["params"]["request"]["method"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        url: url.to_string(),
                        redirected_by: v["params"]["redirectResponse"]["status"].as_u64(),
                    });
                }
            }
            "Network.loadingFinished" | "Network.loadingFailed" => {
                self.inflight.remove(id);
            }
            _ => {}
        }
        if method.starts_with("Network.") {
            self.last_network_event = Instant::now();
        }
    }

    /// Sends a command and waits for its answer; events met meanwhile are queued. Panics if
    /// the command fails.
    pub fn call_on(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        match self.try_call_on(session, method, params) {
            Ok(v) => v,
            Err(e) => panic!("{method} failed: {e}"),
        }
    }

    /// Like [`Browser::call_on`], but a failed command is returned as its `error` object.
    pub fn try_call_on(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = Value::String(s.to_string());
        }
        if let Err(e) = self.ws.send(Message::text(msg.to_string())) {
            panic!(
                "DevTools send {method}: {e}; stderr:\n{}",
                self.stderr_tail()
            );
        }
        let deadline = Instant::now() + CDP_TIMEOUT;
        loop {
            let Some(v) = self.read_one(deadline) else {
                panic!(
                    "no answer to {method} within {CDP_TIMEOUT:?}; Chromium stderr:\n{}",
                    self.stderr_tail()
                );
            };
            if v["id"].as_u64() == Some(id) {
                if !v["error"].is_null() {
                    return Err(v["error"].clone());
                }
                return Ok(v["result"].clone());
            }
            self.queue_event(v);
        }
    }

    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.call_on(Some(&session), method, params)
    }

    /// A command on the page's session that may fail (e.g. `DOM.getBoxModel` of a node
    /// without a box).
    pub fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let session = self.session.clone();
        self.try_call_on(Some(&session), method, params)
    }

    fn queue_event(&mut self, v: Value) {
        if v["sessionId"].as_str() == Some(self.session.as_str())
            && v["method"].as_str().is_some_and(|m| m.starts_with("Page."))
        {
            self.events.push_back(v);
        }
    }

    /// Waits for the first event of our page (queued or new) that satisfies `pred`.
    pub fn wait_event(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.events.iter().position(&pred) {
            return self.events.drain(..=i).next_back().unwrap_or_default();
        }
        let deadline = Instant::now() + CDP_TIMEOUT;
        loop {
            let Some(v) = self.read_one(deadline) else {
                panic!(
                    "{what}: nothing within {CDP_TIMEOUT:?}; requests in flight: {:?}",
                    self.inflight.values().collect::<Vec<_>>()
                );
            };
            if v["sessionId"].as_str() == Some(self.session.as_str()) && pred(&v) {
                return v;
            }
            self.queue_event(v);
        }
    }

    /// Waits for the `load` event of the document that `loader_id` brings in: a stale event of
    /// an earlier document cannot satisfy it.
    pub fn wait_load(&mut self, loader_id: &Value, what: &str) {
        self.wait_event(&format!("{what}: waiting for load"), |e| {
            e["method"] == "Page.lifecycleEvent"
                && e["params"]["name"] == "load"
                && e["params"]["loaderId"] == *loader_id
        });
    }

    /// Navigates and waits for `load`, then for the network to go quiet.
    pub fn visit(&mut self, url: &str, log: &LogProxy) {
        self.events.clear();
        let r = self.call("Page.navigate", json!({ "url": url }));
        if let Some(err) = r["errorText"].as_str() {
            panic!("navigation to {url} failed: {err}");
        }
        self.wait_load(&r["loaderId"], &format!("loading {url}"));
        self.settle(log);
    }

    /// Runs `expression` (which must start a navigation, e.g. a form submission) and waits for
    /// the next main-frame document's `load`, then for quiet.
    pub fn navigate_by_script(&mut self, expression: &str, log: &LogProxy) {
        self.events.clear();
        self.eval(expression);
        let what = format!("after `{expression}`");
        let nav = self.wait_event(&format!("{what}: waiting for a navigation"), |e| {
            e["method"] == "Page.frameNavigated" && e["params"]["frame"]["parentId"].is_null()
        });
        self.wait_load(&nav["params"]["frame"]["loaderId"], &what);
        self.settle(log);
    }

    /// Returns once no request of the page is in flight and neither DevTools nor the logging
    /// proxy has seen network activity for `QUIET`; gives up (with a note) after `SETTLE_MAX`.
    pub fn settle(&mut self, log: &LogProxy) {
        let start = Instant::now();
        loop {
            let now = Instant::now();
            let last = [
                Some(start),
                Some(self.last_network_event),
                log.last_hit_at(),
            ]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(start);
            if self.inflight.is_empty() && now.duration_since(last) >= QUIET {
                return;
            }
            if now.duration_since(start) >= SETTLE_MAX {
                eprintln!(
                    "note: network not quiet after {SETTLE_MAX:?}; still in flight: {:?}",
                    self.inflight.values().collect::<Vec<_>>()
                );
                self.inflight.clear();
                return;
            }
            if let Some(v) = self.read_one(now + Duration::from_millis(50)) {
                self.queue_event(v);
            }
        }
    }

    /// Keeps the DevTools connection serviced until `done` holds or `timeout` passes.
    pub fn wait_until(&mut self, timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            if let Some(v) = self.read_one(Instant::now() + Duration::from_millis(50)) {
                self.queue_event(v);
            }
        }
    }

    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        if !r["exceptionDetails"].is_null() {
            panic!("`{expression}` threw: {}", r["exceptionDetails"]);
        }
        r["result"]["value"].clone()
    }

    /// The current document's URL and serialized HTML (DOM domain: works without JavaScript).
    pub fn document(&mut self) -> (String, String) {
        let d = self.call("DOM.getDocument", json!({ "depth": 0 }));
        let url = d["root"]["documentURL"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let node = d["root"]["nodeId"].clone();
        let html = self.call("DOM.getOuterHTML", json!({ "nodeId": node }))["outerHTML"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (url, html)
    }

    /// Fails unless the current document is the demo page at `url`.
    pub fn assert_demo_page(&mut self, url: &str) {
        let (doc_url, html) = self.document();
        assert_eq!(doc_url, url, "the browser is not on the expected page");
        assert!(
            html.contains("<title>Demo shop:"),
            "{url} did not load the demo page (an error page?):\n{}",
            html.chars().take(600).collect::<String>()
        );
    }

    /// Calls the JavaScript function `function` (source text) with `arg` in the page and
    /// returns its value. DevTools code runs even with the page's JavaScript disabled.
    pub fn call_js(&mut self, function: &str, arg: &str) -> Value {
        self.eval(&format!("({function})({})", js_str(arg)))
    }

    /// Evaluates `expression` and awaits the promise it returns.
    pub fn eval_async(&mut self, expression: &str, timeout: Duration) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({
                "expression": expression,
                "returnByValue": true,
                "awaitPromise": true,
                "timeout": timeout.as_millis() as u64,
            }),
        );
        if !r["exceptionDetails"].is_null() {
            panic!("`{expression}` threw: {}", r["exceptionDetails"]);
        }
        r["result"]["value"].clone()
    }

    /// What a visitor sees of the first element matching `selector`, or `None` if there is
    /// none.
    pub fn inspect(&mut self, selector: &str) -> Option<Seen> {
        let v = self.call_js(INSPECT_JS, selector);
        if v.is_null() {
            return None;
        }
        Some(Seen {
            rect: Rect::from_json(&v["rect"]),
            viewport: (
                v["vw"].as_f64().unwrap_or(0.0),
                v["vh"].as_f64().unwrap_or(0.0),
            ),
            display: v["display"].as_str().unwrap_or_default().to_string(),
            visibility: v["visibility"].as_str().unwrap_or_default().to_string(),
            opacity: v["opacity"].as_f64().unwrap_or(0.0),
            rendered: v["rendered"].as_bool().unwrap_or(false),
            covered_by: v["covered"].as_str().map(str::to_string),
        })
    }

    /// Fails unless `selector` matches an element a visitor can see (see [`Seen::problems`]).
    pub fn assert_visible(&mut self, case: &str, selector: &str) -> Seen {
        let Some(seen) = self.inspect(selector) else {
            panic!("[{case}] {selector}: no such element");
        };
        let problems = seen.problems();
        assert!(
            problems.is_empty(),
            "[{case}] {selector} is not visible: {}\n({seen:?})",
            problems.join("; ")
        );
        seen
    }

    /// Fails if `selector` matches an element that is rendered (absent or `display: none`
    /// somewhere up the tree is fine).
    pub fn assert_not_rendered(&mut self, case: &str, selector: &str) {
        if let Some(seen) = self.inspect(selector) {
            assert!(
                !seen.rendered && seen.rect.width == 0.0 && seen.rect.height == 0.0,
                "[{case}] {selector} is still shown: {seen:?}"
            );
        }
    }

    /// An attribute of the first element matching `selector` (`None`: no element or no
    /// attribute).
    pub fn attribute(&mut self, selector: &str, name: &str) -> Option<String> {
        let v = self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); \
             return e ? e.getAttribute({}) : null; }})()",
            js_str(selector),
            js_str(name)
        ));
        v.as_str().map(str::to_string)
    }

    /// The text of the first element matching `selector`, whitespace collapsed.
    pub fn text(&mut self, selector: &str) -> Option<String> {
        let v = self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); \
             return e ? e.textContent.replace(/\\s+/g, ' ').trim() : null; }})()",
            js_str(selector)
        ));
        v.as_str().map(str::to_string)
    }

    pub fn count(&mut self, selector: &str) -> u64 {
        self.eval(&format!(
            "document.querySelectorAll({}).length",
            js_str(selector)
        ))
        .as_u64()
        .unwrap_or(0)
    }

    /// Computed style properties of the first element matching `selector`.
    pub fn computed_style(
        &mut self,
        selector: &str,
        properties: &[&str],
    ) -> HashMap<String, String> {
        let v = self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return null; \
             const cs = getComputedStyle(e); const out = {{}}; \
             for (const p of {}) out[p] = cs.getPropertyValue(p); return out; }})()",
            js_str(selector),
            serde_json::to_string(properties).expect("names serialize")
        ));
        let Some(map) = v.as_object() else {
            panic!("{selector}: no such element");
        };
        map.iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect()
    }

    /// `document.cookie`.
    pub fn document_cookie(&mut self) -> String {
        self.eval("document.cookie")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Clicks the element matching `selector` as a visitor would: scrolls it into view, checks
    /// that nothing covers it, and sends a real mouse press and release at its centre
    /// (`Input.dispatchMouseEvent`; works with the page's JavaScript disabled).
    pub fn click(&mut self, selector: &str) {
        let p = self.call_js(CLICK_POINT_JS, selector);
        if let Some(e) = p["error"].as_str() {
            panic!("cannot click: {e}");
        }
        if let Some(c) = p["covered"].as_str() {
            panic!("cannot click {selector}: a visitor could not, it is covered by {c}");
        }
        let (x, y) = (p["x"].as_f64().expect("x"), p["y"].as_f64().expect("y"));
        self.call(
            "Input.dispatchMouseEvent",
            json!({ "type": "mouseMoved", "x": x, "y": y }),
        );
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1 }),
            );
        }
    }

    /// Presses and releases Tab (Shift+Tab with `shift`), as a keyboard would.
    pub fn press_tab(&mut self, shift: bool) {
        let modifiers = if shift { 8 } else { 0 };
        for kind in ["rawKeyDown", "keyUp"] {
            self.call(
                "Input.dispatchKeyEvent",
                json!({
                    "type": kind, "modifiers": modifiers, "key": "Tab", "code": "Tab",
                    "windowsVirtualKeyCode": 9, "nativeVirtualKeyCode": 9,
                }),
            );
        }
    }

    /// Polls the JavaScript `condition` until it is true or `timeout` passes.
    pub fn wait_for_js(&mut self, timeout: Duration, condition: &str) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.eval(condition) == Value::Bool(true) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            let until = Instant::now() + Duration::from_millis(50);
            if let Some(v) = self.read_one(until) {
                self.queue_event(v);
            }
        }
    }

    /// Runs `action`, which must start a main-frame navigation (a form post, a reload), and
    /// waits for the new document's `load`, then for quiet.
    pub fn expect_navigation(
        &mut self,
        what: &str,
        log: &LogProxy,
        action: impl FnOnce(&mut Self),
    ) {
        self.events.clear();
        action(self);
        let nav = self.wait_event(&format!("{what}: waiting for a navigation"), |e| {
            e["method"] == "Page.frameNavigated" && e["params"]["frame"]["parentId"].is_null()
        });
        self.wait_load(&nav["params"]["frame"]["loaderId"], what);
        self.settle(log);
    }

    /// Runs `action`, which must navigate within the document (a `#fragment` link), and waits
    /// for it; returns the new URL.
    pub fn expect_same_document_navigation(
        &mut self,
        what: &str,
        action: impl FnOnce(&mut Self),
    ) -> String {
        self.events.clear();
        action(self);
        let nav = self.wait_event(
            &format!("{what}: waiting for a same-document navigation"),
            |e| e["method"] == "Page.navigatedWithinDocument",
        );
        nav["params"]["url"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Emulates a `width`×`height` CSS-pixel viewport (a desktop browser window of that size).
    pub fn set_viewport(&mut self, width: u32, height: u32) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        );
    }

    /// Back to the window's own viewport.
    pub fn reset_viewport(&mut self) {
        self.call("Emulation.clearDeviceMetricsOverride", json!({}));
    }

    /// Emulates the visitor's `prefers-reduced-motion: reduce` (no smooth scrolling, so
    /// geometry can be read right after keyboard focus moves).
    pub fn prefer_reduced_motion(&mut self) {
        self.call(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-reduced-motion", "value": "reduce" }] }),
        );
    }

    /// The main-frame document requests so far (a mark for [`Browser::documents_since`]).
    pub fn documents_len(&self) -> usize {
        self.documents.len()
    }

    pub fn documents_since(&self, mark: usize) -> Vec<DocumentRequest> {
        self.documents[mark..].to_vec()
    }
}

/// Loads each page in turn and returns what the logging proxy saw for each (a request that
/// arrives late is counted for the page being loaded then). A last entry holds whatever
/// arrived after the last page settled, so nothing the browser sent goes unchecked.
pub fn visit_all(browser: &mut Browser, log: &LogProxy, urls: &[String]) -> Vec<PageLog> {
    let mut out = Vec::new();
    let start = log.len();
    for url in urls {
        let mark = log.len();
        browser.visit(url, log);
        browser.assert_demo_page(url);
        out.push(PageLog {
            url: url.clone(),
            hits: log.since(mark),
        });
    }
    let mark = start + out.iter().map(|p| p.hits.len()).sum::<usize>();
    let late = log.since(mark);
    if !late.is_empty() {
        out.push(PageLog {
            url: "(after the last page)".into(),
            hits: late,
        });
    }
    out
}

pub fn origin_pages(site: &Site) -> Vec<String> {
    PAGES.iter().map(|p| site.origin_url(p)).collect()
}

pub fn proxy_pages(site: &Site) -> Vec<String> {
    PAGES.iter().map(|p| site.proxy_url(p)).collect()
}

/// The consent state as the proxy sees the browser's cookie.
pub fn consent_state(browser: &mut Browser, site: &Site, log: &LogProxy) -> Value {
    let url = site.proxy_url("/__consent/state");
    browser.visit(&url, log);
    let text = browser.eval("(document.querySelector('pre') || document.body).textContent");
    let text = text.as_str().unwrap_or_default().to_string();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url} is not JSON ({e}): {text}"))
}

pub fn assert_no_service_requests(case: &str, pages: &[PageLog], services: &ServiceHosts) {
    let leaks = service_hits(pages, services, &[]);
    let others: Vec<String> = all_hosts(pages)
        .into_iter()
        .filter(|h| services.service_of(h).is_none())
        .collect();
    assert!(
        leaks.is_empty(),
        "[{case}] LEAK: requests reached catalog services without consent:\n{}\n\
         (hosts outside the catalog, not a failure by themselves: {others:?})",
        leaks
            .iter()
            .map(|(page, hit, id)| format!(
                "  page {page}: {} [{id}] via `{}`",
                hit.host, hit.request_line
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

pub fn assert_hosts_seen(case: &str, seen: &BTreeSet<String>, expected: &[&str]) {
    let missing: Vec<&&str> = expected.iter().filter(|h| !seen.contains(**h)).collect();
    assert!(
        missing.is_empty(),
        "[{case}] expected requests to {missing:?}, the logging proxy saw only {seen:?}"
    );
}

pub fn assert_no_service_requests_except(
    case: &str,
    pages: &[PageLog],
    services: &ServiceHosts,
    allowed: &[&str],
) {
    let leaks = service_hits(pages, services, allowed);
    assert!(
        leaks.is_empty(),
        "[{case}] LEAK: requests reached services outside the consent ({allowed:?}):\n{}",
        leaks
            .iter()
            .map(|(page, hit, id)| format!(
                "  page {page}: {} [{id}] via `{}`",
                hit.host, hit.request_line
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
