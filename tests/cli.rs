//! The command line as a user meets it: the real binary, real files, real TCP.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_consentgate");

/// Kills the child when the test ends, whatever happens.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A blocking HTTP/1.0 GET (the server closes after the response).
fn http_get(port: u16, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(mut s) => {
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").unwrap();
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                return out;
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("nothing listening on {port}: {e}"),
        }
    }
}

/// Sends `signal` (`-HUP`, `-TERM`) to process `pid`.
fn signal(pid: u32, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {signal} {pid}");
}

/// Polls `done` every 50 ms; fails with `what` after `secs` seconds.
fn wait_until(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("consentgate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::File::create(&p)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    p
}

#[test]
fn check_config_reports_every_problem_with_path_and_line() {
    let bad = write_file(
        "bad.toml",
        "[server]\nlisten = \"not an address\"\n\n[consent]\nmax_age_days = 0\nkey = \"short\"\n",
    );
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2: server.listen"), "{err}");
    assert!(err.contains("line 5: consent.max_age_days"), "{err}");
    assert!(err.contains("line 6: consent.key"), "{err}");
    assert!(err.contains("3 problem(s)"), "{err}");

    let good = write_file("good.toml", "[upstream]\nurl = \"http://127.0.0.1:9\"\n");
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = Command::new(BIN)
        .arg("check-config")
        .arg("/no/such/file.toml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn the_example_config_is_valid() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/consentgate.example.toml"
    );
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(example)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn help_and_version() {
    for args in [
        &["--help"][..],
        &["check-config", "--help"],
        &["demo", "--help"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage:"),
            "{args:?}"
        );
    }
    // `consentgate <version> (git <rev>)`: rev is 12 hex digits, `-dirty` when tracked files
    // were modified, or `unknown` when built outside a git checkout (build.rs).
    let out = Command::new(BIN).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let rev = version
        .strip_prefix(&format!("consentgate {} (git ", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected --version output: {version}"));
    let hash = rev.strip_suffix("-dirty").unwrap_or(rev);
    assert!(
        rev == "unknown"
            || (hash.len() == 12 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))),
        "unexpected --version output: {version}"
    );
}

#[test]
fn runs_with_flags_only_and_blocks_by_default() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let origin = rt.block_on(common::origin(|_| {
        common::OriginResponse::html(
            "<script src=\"https://static.zdassets.com/ekr/snippet.js\"></script>",
        )
    }));
    let port = free_port();
    let _p = Running(
        Command::new(BIN)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--upstream",
                &format!("http://{}", origin.addr),
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let resp = http_get(port, "/");
    assert!(
        resp.starts_with("HTTP/1.0 200") || resp.starts_with("HTTP/1.1 200"),
        "{resp}"
    );
    assert!(
        resp.contains("data-consentgate-service=\"zendesk-chat\""),
        "{resp}"
    );
    drop(rt);
}

/// The binary with `workers` threads in front of an origin answering `html`, until dropped:
/// the origin's runtime, the port and the process.
fn run_with_workers(
    workers: usize,
    html: &'static str,
) -> (tokio::runtime::Runtime, common::Origin, u16, Running) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let origin = rt.block_on(common::origin(move |_| common::OriginResponse::html(html)));
    let port = free_port();
    let cfg = write_file(
        &format!("workers-{workers}.toml"),
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nworkers = {workers}\n[upstream]\nurl = \"http://{}\"\n",
            origin.addr
        ),
    );
    let p = Running(
        Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .env_remove("TOKIO_WORKER_THREADS")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    (rt, origin, port, p)
}

/// Threads of process `pid` that tokio made (its workers and blocking threads).
fn tokio_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("tokio-r"))
        .count()
}

#[test]
fn runs_from_a_config_file() {
    let (_rt, _origin, port, p) = run_with_workers(7, "<p>from file</p>");
    assert!(http_get(port, "/").contains("<p>from file</p>"));
    // server.workers sets the runtime's thread count (tokio names its blocking threads, e.g.
    // for name resolution, the same way: allow a couple).
    let workers = tokio_threads(p.0.id());
    assert!((7..=9).contains(&workers), "{workers} runtime threads");
}

#[test]
fn one_worker_runs_on_one_thread() {
    let (_rt, _origin, port, p) = run_with_workers(1, "<p>one thread</p>");
    // Several pages, the banner's endpoints and a reload (which runs on a blocking thread).
    for _ in 0..3 {
        assert!(http_get(port, "/").contains("<p>one thread</p>"));
    }
    assert!(http_get(port, "/__consent/policy").contains(" 200 "));
    let pid = p.0.id();
    signal(pid, "-HUP");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(http_get(port, "/").contains("<p>one thread</p>"));
    // The single-threaded scheduler: no pool of worker threads (a pool of one would show one
    // `tokio-runtime-worker` before any blocking work); at most the blocking thread the reload
    // used.
    let n = tokio_threads(pid);
    assert!(n <= 1, "{n} runtime threads");
}

#[test]
fn invalid_config_file_refuses_to_start() {
    let cfg = write_file("invalid.toml", "[upstream]\nurl = \"ftp://x\"\n");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("upstream.url"));
}

#[test]
fn demo_prints_its_url_and_serves_neutralized_pages() {
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _p = Running(child);
    let mut lines = BufReader::new(stdout).lines();
    let url_line = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("open this in a browser"))
        .expect("demo prints the URL to open");
    assert!(
        url_line.contains(&format!("http://127.0.0.1:{port}/")),
        "{url_line}"
    );
    let page = http_get(port, "/");
    for service in [
        "zendesk-chat",
        "freshchat",
        "google-analytics",
        "meta-pixel",
        "youtube",
    ] {
        assert!(
            page.contains(&format!("data-consentgate-service=\"{service}\"")),
            "{service} not neutralized in the demo"
        );
    }
    assert!(http_get(port, "/zopim").contains("data-consentgate-service=\"zendesk-chat\""));
}

#[test]
fn scan_reports_services_unknown_origins_and_a_snippet() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let origin = rt.block_on(common::origin(|s| {
        let body = match s.uri.as_str() {
            "/" => "<a href=\"/a\">a</a> <a href=\"b#top\">b</a> <a href=\"https://elsewhere.example/\">x</a><script src=\"https://static.zdassets.com/ekr/snippet.js\"></script>",
            "/a" => "<iframe src=\"https://www.youtube.com/embed/x\"></iframe><script src=\"https://cdn.unknown-cdn.example/lib.js\"></script><a href=\"/\">home</a>",
            "/b" => "<script>window.$zopim||(function(){})()</script><img src=\"https://cdn.unknown-cdn.example/p.png\"><a href=\"/c\">c</a>",
            _ => "<p>deep</p>",
        };
        common::OriginResponse::html(body)
    }));
    let out = Command::new(BIN)
        .args(["scan", &format!("http://{}/", origin.addr), "--pages", "3"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Scanned 3 page(s)"), "{text}");
    assert!(
        text.contains("zendesk-chat") && text.contains("youtube"),
        "{text}"
    );
    assert!(text.contains("https://cdn.unknown-cdn.example"), "{text}");
    assert!(
        text.contains("allow = [\"https://cdn.unknown-cdn.example\"]"),
        "{text}"
    );
    assert!(
        text.contains("## Zendesk Chat") && text.contains("## YouTube"),
        "{text}"
    );
    assert!(
        !text.contains("elsewhere.example"),
        "other sites are not crawled: {text}"
    );
    // Only same-site pages, bounded: /c was never fetched.
    assert!(!origin.seen.lock().unwrap().iter().any(|s| s.uri == "/c"));
    drop(rt);
}

#[test]
fn scan_of_an_unreachable_site_fails_clearly() {
    let port = free_port();
    let out = Command::new(BIN)
        .args(["scan", &format!("http://127.0.0.1:{port}/")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no HTML page could be fetched"));
}

fn i18n(lang: &str, key: &str) -> String {
    let path = format!("{}/config/i18n/{lang}.toml", env!("CARGO_MANIFEST_DIR"));
    let table: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    table[key]
        .as_str()
        .unwrap_or_else(|| panic!("{lang}.{key}"))
        .to_string()
}

#[test]
fn policy_in_two_languages_and_formats() {
    let cfg = write_file(
        "policy.toml",
        "[consent]\nservices = [\"meta-pixel\", \"zendesk-chat\"]\n[privacy]\ncontroller = \"Shop GmbH, Hauptstr. 1, 10115 Berlin\"\ndpo = \"dpo@shop.example\"\n[receipts]\nstore = \"off\"\n",
    );
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let en = run(&["policy"]);
    assert!(
        en.starts_with(&format!("# {}", i18n("en", "policy_title"))),
        "{en}"
    );
    assert!(en.contains("## Meta Pixel") && en.contains("## Zendesk Chat"));
    assert!(!en.contains("## YouTube"), "only the site's services");
    assert!(en.contains("Shop GmbH") && en.contains("dpo@shop.example"));
    assert!(en.contains("C(2023) 4745"));
    let de = run(&["policy", "--lang", "de", "--format", "html"]);
    assert!(
        de.starts_with("<!doctype html>\n<html lang=\"de\">"),
        "{de}"
    );
    assert!(de.contains(&i18n("de", "policy_title")), "{de}");
    assert!(de.contains(&i18n("de", "legal_basis_consent")), "{de}");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .args(["policy", "--lang", "tlh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // Art. 30 records.
    let csv = run(&["records"]);
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv
        .lines()
        .nth(1)
        .unwrap()
        .starts_with("meta-pixel,Meta Pixel,marketing,"));
    let json: serde_json::Value =
        serde_json::from_str(&run(&["records", "--format", "json"])).unwrap();
    assert_eq!(json[1]["recipient"], "Zendesk, Inc.");
    assert_eq!(json[1]["third_country_transfer"], true);
}

#[test]
fn the_hardened_config_is_valid_with_the_admin_token_from_the_environment() {
    let hardened = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/consentgate.hardened.toml"
    );
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(hardened)
        .env(
            "CONSENTGATE_ADMIN_TOKEN",
            "0123456789abcdef0123456789abcdef",
        )
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The token lives only in the environment: without it the admin listener is refused, never
    // started unprotected.
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(hardened)
        .env_remove("CONSENTGATE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin.token"));
}

#[test]
fn the_systemd_unit_matches_the_hardened_config() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let unit_text = std::fs::read_to_string(format!("{dir}/config/consentgate.service")).unwrap();
    let config_text =
        std::fs::read_to_string(format!("{dir}/config/consentgate.hardened.toml")).unwrap();

    // `Key=Value` lines of the [Service] section (keys may repeat, e.g. SystemCallFilter).
    let mut section = "";
    let mut service: Vec<(&str, &str)> = Vec::new();
    for line in unit_text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]" {
            let (k, v) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("bad line: {line}"));
            service.push((k.trim(), v.trim()));
        }
    }
    let get = |key: &str| -> Vec<&str> {
        service
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .collect()
    };
    assert_eq!(get("DynamicUser"), ["yes"]);
    assert_eq!(get("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    assert_eq!(get("Type"), ["simple"]);

    let config: toml::Table = config_text.parse().unwrap();
    // Secrets come from the unit's EnvironmentFile, never from the world-readable config.
    assert!(get("EnvironmentFile")
        .iter()
        .any(|v| v.trim_start_matches('-') == "/etc/consentgate/env"));
    assert!(config["consent"].get("key").is_none());
    assert!(config["admin"].get("token").is_none());

    // The config ExecStart loads lives in the unit's ConfigurationDirectory.
    let [config_dir] = get("ConfigurationDirectory")[..] else {
        panic!("one ConfigurationDirectory expected");
    };
    let [exec_start] = get("ExecStart")[..] else {
        panic!("one ExecStart expected");
    };
    assert!(
        exec_start.ends_with(&format!(" --config /etc/{config_dir}/consentgate.toml")),
        "{exec_start}"
    );

    // systemd's SIGKILL must not cut the graceful drain short.
    let [stop] = get("TimeoutStopSec")[..] else {
        panic!("one TimeoutStopSec expected");
    };
    let stop: i64 = stop.parse().unwrap();
    let drain = config["limits"]["shutdown_timeout_secs"]
        .as_integer()
        .unwrap();
    assert!(
        drain < stop,
        "shutdown_timeout_secs {drain} >= TimeoutStopSec {stop}"
    );

    // Receipts go to the unit's StateDirectory, the only writable place under
    // ProtectSystem=strict, and the unit names the same file.
    assert_eq!(get("ProtectSystem"), ["strict"]);
    let [state_dir] = get("StateDirectory")[..] else {
        panic!("one StateDirectory expected");
    };
    assert_eq!(config["receipts"]["store"].as_str(), Some("sqlite"));
    let receipts = config["receipts"]["path"].as_str().unwrap();
    assert_eq!(
        std::path::Path::new(receipts).parent(),
        Some(std::path::Path::new(&format!("/var/lib/{state_dir}"))),
        "receipts.path {receipts} is outside StateDirectory={state_dir}"
    );
    assert!(
        unit_text.contains(receipts),
        "the unit does not mention {receipts}"
    );
}

/// The leaf certificate a TLS listener on `port` serves for `sni` (verified against `ca`).
async fn served_certificate(
    port: u16,
    sni: &str,
    ca: &rustls::pki_types::CertificateDer<'static>,
) -> Option<rustls::pki_types::CertificateDer<'static>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).ok()?;
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .ok()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).ok()?;
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(name, tcp)
        .await
        .ok()?;
    Some(tls.get_ref().1.peer_certificates()?.first()?.clone())
}

/// Certificate renewal as ops do it: new files over the old ones, then `systemctl reload`
/// (SIGHUP). New connections get the new certificate; the process keeps running.
#[test]
fn sighup_serves_a_renewed_certificate() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let origin = rt.block_on(common::origin(|_| common::OriginResponse::html("<p>x</p>")));
    let ca = common::TestCa::new();
    let (cert, key) = (write_file("renew.pem", ""), write_file("renew.key", ""));
    let issue = |serial| ca.issue(&["shop.example"], serial, &cert, &key);
    let first = issue(1);
    let (port, tls_port) = (free_port(), free_port());
    let cfg = write_file(
        "renew.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[upstream]\nurl = \"http://{}\"\n[receipts]\nstore = \"off\"\n[tls]\nlisten = \"127.0.0.1:{tls_port}\"\n[[tls.certs]]\ncert = {:?}\nkey = {:?}\nhosts = [\"shop.example\"]\n",
            origin.addr,
            cert.display().to_string(),
            key.display().to_string(),
        ),
    );
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let _p = Running(child);
    let served = || rt.block_on(served_certificate(tls_port, "shop.example", &ca.der));
    wait_until(15, "the TLS listener never answered", || served().is_some());
    assert_eq!(served(), Some(first));
    let second = issue(2);
    signal(pid, "-HUP");
    wait_until(
        10,
        "SIGHUP did not bring in the renewed certificate",
        || served().as_ref() == Some(&second),
    );
}

#[test]
fn sighup_reloads_and_sigterm_stops_cleanly() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let a = rt.block_on(common::origin(|_| {
        common::OriginResponse::html("<p>from A</p>")
    }));
    let b = rt.block_on(common::origin(|_| {
        common::OriginResponse::html("<p>from B</p>")
    }));
    let port = free_port();
    let db = common::temp_db();
    let cfg_for = |o: std::net::SocketAddr| {
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[upstream]\nurl = \"http://{o}\"\n[receipts]\npath = {:?}\n",
            db.display().to_string()
        )
    };
    let cfg = write_file("signals.toml", &cfg_for(a.addr));
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut p = Running(child);
    assert!(http_get(port, "/").contains("from A"));
    std::fs::write(&cfg, cfg_for(b.addr)).unwrap();
    signal(pid, "-HUP");
    wait_until(10, "SIGHUP did not switch the upstream", || {
        http_get(port, "/").contains("from B")
    });
    signal(pid, "-TERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = p.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "SIGTERM did not stop the process"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let mut err = String::new();
    p.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(
        err.contains("configuration reloaded") && err.contains("stopped"),
        "{err}"
    );
    drop(rt);
}

#[test]
fn a_multi_site_config_is_checked_and_described_per_site() {
    let cfg = write_file(
        "sites.toml",
        r#"
[receipts]
store = "off"
[[site]]
name = "shop"
hosts = ["shop.example", "*.shop.example"]
upstream.url = ["http://10.0.0.1:8080", "http://10.0.0.2:8080"]
consent.services = ["zendesk-chat"]
privacy.controller = "Shop GmbH, Berlin"
[[site]]
name = "blog"
hosts = ["blog.example"]
consent.services = ["youtube"]
privacy.controller = "Blog Ltd, Dublin"
"#,
    );
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("OK (2 sites)"), "{text}");
    assert!(
        text.contains(
            "shop: shop.example, *.shop.example -> http://10.0.0.1:8080/ http://10.0.0.2:8080/"
        ),
        "{text}"
    );
    assert!(text.contains("other hosts: 421"), "{text}");

    let policy = |site: Option<&str>| {
        let mut c = Command::new(BIN);
        c.arg("--config").arg(&cfg).arg("policy");
        if let Some(s) = site {
            c.args(["--site", s]);
        }
        c.output().unwrap()
    };
    let out = policy(None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pick one with --site (shop, blog)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shop = String::from_utf8(policy(Some("shop")).stdout).unwrap();
    assert!(
        shop.contains("Shop GmbH") && shop.contains("Zendesk"),
        "{shop}"
    );
    assert!(!shop.contains("YouTube"), "{shop}");
    let blog = String::from_utf8(policy(Some("blog")).stdout).unwrap();
    assert!(
        blog.contains("Blog Ltd") && blog.contains("YouTube"),
        "{blog}"
    );
    assert!(!policy(Some("nope")).status.success());

    // --upstream cannot say which site it means: refused, not silently applied to some.
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .args(["--upstream", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[[site]] blocks"), "{err}");
}
