//! Hot reload over real TCP: the configuration is swapped under load without losing a request;
//! an invalid configuration is refused and the old one keeps serving; `POST /reload` on the
//! admin listener does the same; metrics and receipts carry over.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};

use common::*;
use consentgate::proxy::{serve_admin_current, serve_current, Reload, Sites};
use consentgate::server::{ConfigSource, Server};

fn config_text(upstream: std::net::SocketAddr, db: &std::path::Path) -> String {
    format!(
        "[upstream]\nurl = \"http://{upstream}\"\n[consent]\nkey = \"{KEY}\"\n[receipts]\npath = {:?}\n",
        db.display().to_string()
    )
}

struct Running {
    server: Arc<Server>,
    addr: std::net::SocketAddr,
    cfg: std::path::PathBuf,
    db: std::path::PathBuf,
}

async fn start(origin: std::net::SocketAddr) -> Running {
    let db = temp_db();
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let cfg = db.with_file_name("consentgate.toml");
    std::fs::write(&cfg, config_text(origin, &db)).unwrap();
    let source = ConfigSource {
        path: Some(cfg.clone()),
        ..ConfigSource::default()
    };
    let (sites, _) = Sites::new(source.load().unwrap()).unwrap();
    let server = Server::new(Arc::new(sites), source);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_current(
        server.resolver(),
        listener,
        std::future::pending(),
    ));
    Running {
        server,
        addr,
        cfg,
        db,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_loses_no_request() {
    let a = origin(|_| OriginResponse::html("<p>A</p>")).await;
    let b = origin(|_| OriginResponse::html("<p>B</p>")).await;
    let r = start(a.addr).await;
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (addr, ok, failed) = (r.addr, ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            // One keep-alive connection per client, many requests each.
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            // Until the reload has been seen (the clients must not all finish before it),
            // at least 150 requests, with a bound.
            let (mut seen_b, mut sent) = (false, 0usize);
            while (!seen_b || sent < 150) && sent < 100_000 {
                sent += 1;
                let req = get(addr, "/").body(Full::<Bytes>::default()).unwrap();
                match sender.send_request(req).await {
                    Ok(resp) if resp.status() == 200 => {
                        let body = resp.into_body().collect().await.unwrap().to_bytes();
                        seen_b |= body.as_ref() == b"<p>B</p>";
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            (seen_b, sent)
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    std::fs::write(&r.cfg, config_text(b.addr, &r.db)).unwrap();
    let server = r.server.clone();
    let msg = tokio::task::spawn_blocking(move || server.reload())
        .await
        .unwrap()
        .unwrap();
    assert!(msg.contains(&b.addr.to_string()), "{msg}");
    let (mut all_saw_b, mut sent) = (true, 0);
    for c in clients {
        let (saw_b, n) = c.await.unwrap();
        all_saw_b &= saw_b;
        sent += n;
    }
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests lost during the reload"
    );
    assert_eq!(ok.load(Ordering::SeqCst), sent);
    assert!(sent >= 600);
    assert!(
        all_saw_b,
        "even keep-alive connections move to the new configuration"
    );
    assert_eq!(fetch(r.addr, "/").await.text(), "<p>B</p>");
    // Metrics carried over: every request of both configurations is counted.
    let text = r.server.current().primary().metrics.render();
    let counted = format!(
        "consentgate_requests_total{{site=\"default\",method=\"GET\",status_class=\"2xx\"}} {}",
        sent + 1
    );
    assert!(text.contains(&counted), "{counted} in {text}");
}

/// The status line a request with an `X-Big` header of `size` bytes gets on a new connection.
async fn with_big_header(addr: std::net::SocketAddr, size: usize) -> String {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let head = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
            "a".repeat(size)
        );
        let _ = s.write_all(head.as_bytes());
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp.lines().next().unwrap_or("").to_string()
    })
    .await
    .unwrap()
}

/// `[limits]` reload too: a connection opened after the reload is served under the new ones.
#[tokio::test]
async fn reloaded_limits_apply_to_new_connections() {
    let a = origin(|_| OriginResponse::html("<p>A</p>")).await;
    let r = start(a.addr).await;
    assert!(with_big_header(r.addr, 10_000).await.contains(" 200 "));
    let text = config_text(a.addr, &r.db) + "[limits]\nmax_header_bytes = 8192\n";
    std::fs::write(&r.cfg, text).unwrap();
    let server = r.server.clone();
    tokio::task::spawn_blocking(move || server.reload())
        .await
        .unwrap()
        .unwrap();
    // The first connection after the reload already (the accept loop was waiting for it
    // under the old limits).
    let status = with_big_header(r.addr, 10_000).await;
    assert!(status.starts_with("HTTP/1.1 431"), "{status}");
    assert!(with_big_header(r.addr, 1_000).await.contains(" 200 "));
}

#[tokio::test]
async fn an_invalid_configuration_is_refused_and_the_old_one_serves() {
    let a = origin(|_| OriginResponse::html("<p>A</p>")).await;
    let r = start(a.addr).await;
    std::fs::write(
        &r.cfg,
        "[upstream]\nurl = \"ftp://nope\"\n[consent]\nmax_age_days = 0\n",
    )
    .unwrap();
    let server = r.server.clone();
    let err = tokio::task::spawn_blocking(move || server.reload())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        err.contains("upstream.url") && err.contains("consent.max_age_days"),
        "{err}"
    );
    assert_eq!(fetch(r.addr, "/").await.text(), "<p>A</p>");
}

#[tokio::test]
async fn admin_post_reload_and_decisions_survive_it() {
    let a = origin(|_| {
        OriginResponse::html("<iframe src=\"https://www.youtube.com/embed/x\"></iframe>")
    })
    .await;
    let b = origin(|_| {
        OriginResponse::html("<iframe src=\"https://www.youtube.com/embed/y\"></iframe>")
    })
    .await;
    let r = start(a.addr).await;
    let token = "admin-token-for-reload-tests-0123";
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = l.local_addr().unwrap();
    let server = r.server.clone();
    let reload: Reload = Arc::new(move || server.reload());
    tokio::spawn(serve_admin_current(
        r.server.resolver(),
        Some(reload),
        l,
        token.into(),
        std::future::pending(),
    ));
    let cookie = consent(r.addr, "action=accept-all").await;

    std::fs::write(&r.cfg, config_text(b.addr, &r.db)).unwrap();
    let post = |auth: Option<&str>| {
        let mut b = Request::post("/reload").header("host", "admin");
        if let Some(t) = auth {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(Full::<Bytes>::default()).unwrap()
    };
    assert_eq!(send(admin, post(None)).await.status, 401);
    let got = send(admin, post(Some(token))).await;
    assert_eq!(got.status, 200, "{}", got.text());
    // New origin, and the visitor's decision still holds (same key, same policy).
    let page = fetch_with_cookie(r.addr, "/", &cookie).await.text();
    assert!(
        page.contains("embed/y") && !page.contains("data-consentgate-service"),
        "{page}"
    );
    // Invalid: 422 with the problems.
    std::fs::write(&r.cfg, "[csp]\nmode = \"strict\"\n").unwrap();
    let got = send(admin, post(Some(token))).await;
    assert_eq!(got.status, 422);
    assert!(got.text().contains("csp.mode"));
}
