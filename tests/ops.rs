//! Operating limits and protocol handling over real TCP: slowloris, oversized heads, the
//! connection cap, compression bombs, upgrades (WebSocket and raw), graceful drain, request ids,
//! HTTP/2 with a real client.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;

use common::*;

#[tokio::test]
async fn slowloris_is_cut_off() {
    let o = origin(|_| OriginResponse::html("x")).await;
    let g = gate_with(o.addr, |c| {
        c.limits.header_read_timeout = Duration::from_millis(300)
    })
    .await;
    let addr = g.addr;
    let closed_after = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 512];
        // The proxy answers 408 or just closes; either way the read ends well before 5 s.
        let _ = s.read(&mut buf);
        start.elapsed()
    })
    .await
    .unwrap();
    assert!(
        closed_after < Duration::from_secs(3),
        "held for {closed_after:?}"
    );
    assert_eq!(o.count(), 0);
    let metrics = g.proxy.metrics.render();
    assert!(
        metrics.contains("consentgate_limits_hit_total{limit=\"header_read_timeout\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn oversized_request_heads_are_refused() {
    let o = origin(|_| OriginResponse::html("x")).await;
    let g = gate_with(o.addr, |c| {
        c.limits.max_headers = 20;
        c.limits.max_header_bytes = 8192;
    })
    .await;
    let addr = g.addr;
    let statuses = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for head in [
            (0..40)
                .map(|i| format!("X-H{i}: v\r\n"))
                .collect::<String>(),
            format!("X-Big: {}\r\n", "a".repeat(20_000)),
        ] {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(format!("GET / HTTP/1.1\r\nHost: x\r\n{head}\r\n").as_bytes());
            let mut resp = String::new();
            let _ = s.read_to_string(&mut resp);
            out.push(resp.lines().next().unwrap_or("").to_string());
        }
        out
    })
    .await
    .unwrap();
    for st in &statuses {
        assert!(st.starts_with("HTTP/1.1 431"), "{statuses:?}");
    }
    assert_eq!(o.count(), 0);
    let metrics = g.proxy.metrics.render();
    assert!(
        metrics.contains("consentgate_limits_hit_total{limit=\"max_header_bytes\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn connections_beyond_the_limit_wait() {
    let o = origin(|_| OriginResponse::html("x")).await;
    let g = gate_with(o.addr, |c| c.limits.max_connections = 1).await;
    let addr = g.addr;
    // One client holds the only slot with an idle keep-alive connection.
    let holder = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = tokio::time::timeout(Duration::from_millis(500), fetch(addr, "/")).await;
    assert!(
        waiting.is_err(),
        "a second connection was served beyond the limit"
    );
    drop(holder);
    let got = tokio::time::timeout(Duration::from_secs(5), fetch(addr, "/")).await;
    assert_eq!(got.expect("served once the slot is free").status, 200);
}

#[tokio::test]
async fn a_gzip_bomb_is_stopped() {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(b"<html><body><iframe src=\"https://www.youtube.com/embed/x\"></iframe>")
        .unwrap();
    e.write_all(&vec![b' '; 200 * 1024 * 1024]).unwrap();
    let bomb = e.finish().unwrap();
    assert!(bomb.len() < 1024 * 1024);
    let o = origin(move |_| {
        OriginResponse::html("")
            .header("content-encoding", "gzip")
            .with_body(bomb.clone())
    })
    .await;
    let g = gate(o.addr).await;
    let req = get(g.addr, "/")
        .header("accept-encoding", "gzip")
        .body(Full::<Bytes>::default())
        .unwrap();
    let started = Instant::now();
    match try_send(g.addr, req).await {
        Err(_) => {}
        Ok(resp) => {
            let mut body = resp.into_body();
            let mut total = 0usize;
            let mut failed = false;
            while let Some(f) = body.frame().await {
                match f {
                    Ok(f) => total += f.into_data().map(|d| d.len()).unwrap_or(0),
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            assert!(failed, "the bomb's body ended normally after {total} bytes");
            assert!(
                total < 8 * 1024 * 1024,
                "sent {total} bytes before stopping"
            );
        }
    }
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// A WebSocket echo origin (tungstenite, its own thread).
fn ws_echo_origin() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in l.incoming().flatten() {
            std::thread::spawn(move || {
                let Ok(mut ws) = tungstenite::accept(stream) else {
                    return;
                };
                while let Ok(msg) = ws.read() {
                    if msg.is_close() {
                        break;
                    }
                    if ws.send(msg).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let origin = ws_echo_origin();
    echo_through(&gate(origin).await).await;
}

/// HTTP/2 has no `Upgrade`: with the origin spoken to in HTTP/2, a WebSocket still goes over
/// HTTP/1.1 (the echo origin speaks nothing else).
#[tokio::test]
async fn websocket_with_an_http2_upstream() {
    let origin = ws_echo_origin();
    let g = gate_with(origin, |c| {
        c.upstream.protocol = consentgate::config::UpstreamProtocol::Http2
    })
    .await;
    echo_through(&g).await;
}

async fn echo_through(g: &Gate) {
    let url = format!("ws://{}/socket", g.addr);
    let echoed = tokio::task::spawn_blocking(move || {
        let (mut ws, resp) = tungstenite::connect(url).expect("handshake through the proxy");
        assert_eq!(resp.status(), 101);
        let mut got = Vec::new();
        for text in ["hello", "consent", &"x".repeat(100_000)] {
            ws.send(tungstenite::Message::text(text)).unwrap();
            got.push(ws.read().unwrap().into_text().unwrap().to_string());
        }
        ws.send(tungstenite::Message::binary(vec![0u8, 1, 2, 255]))
            .unwrap();
        let bin = ws.read().unwrap().into_data();
        let _ = ws.close(None);
        (got, bin.to_vec())
    })
    .await
    .unwrap();
    assert_eq!(echoed.0[0], "hello");
    assert_eq!(echoed.0[1], "consent");
    assert_eq!(echoed.0[2].len(), 100_000);
    assert_eq!(echoed.1, vec![0u8, 1, 2, 255]);
}

#[tokio::test]
async fn other_upgrades_are_tunnelled_untouched() {
    // An origin speaking a made-up protocol after 101: it echoes raw bytes reversed.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = l.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
                head.push(b[0]);
            }
            let head = String::from_utf8_lossy(&head).to_lowercase();
            assert!(head.contains("upgrade: reverse/1"), "{head}");
            s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: reverse/1\r\n\r\n").unwrap();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap();
            let mut r = buf[..n].to_vec();
            r.reverse();
            s.write_all(&r).unwrap();
        }
    });
    let g = gate(origin).await;
    let addr = g.addr;
    let reply = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(
            b"GET /raw HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: reverse/1\r\n\r\n",
        )
        .unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
            head.push(b[0]);
        }
        assert!(
            String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        s.write_all(b"\x00consent\xff").unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap();
        buf[..n].to_vec()
    })
    .await
    .unwrap();
    assert_eq!(reply, b"\xfftnesnoc\x00");
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_stops_accepting() {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let rx = std::sync::Mutex::new(Some(rx));
    let o = origin(move |_| OriginResponse {
        status: 200,
        headers: vec![("content-type".into(), "text/html".into())],
        body: OriginBody::Stream(rx.lock().unwrap().take().expect("one request")),
    })
    .await;
    let mut config = consentgate::config::Config::defaults().unwrap();
    config.upstream.url =
        consentgate::config::parse_upstream_url(&format!("http://{}", o.addr)).unwrap();
    config.consent.key = Some(KEY.into());
    config.receipts.store = consentgate::config::ReceiptStore::Sqlite(temp_db());
    config.limits.shutdown_timeout = Duration::from_secs(10);
    let (proxy, _) = consentgate::proxy::Proxy::new(config).unwrap();
    let proxy = std::sync::Arc::new(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(proxy.serve(listener, async {
        let _ = stopped.await;
    }));
    tx.send(Bytes::from_static(b"<p>first half</p>"))
        .await
        .unwrap();
    let resp = send_streaming(addr, get(addr, "/").body(Full::default()).unwrap()).await;
    // Shut down while the response is still streaming.
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "new connections must be refused once shutting down"
    );
    tx.send(Bytes::from_static(b"<p>second half</p>"))
        .await
        .unwrap();
    drop(tx);
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("the in-flight response completes")
        .to_bytes();
    assert_eq!(&body[..], b"<p>first half</p><p>second half</p>");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve returns once drained")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn every_request_has_an_id_for_the_origin_and_the_client() {
    let o = origin(|_| OriginResponse::html("x")).await;
    let g = gate(o.addr).await;
    let got = fetch(g.addr, "/").await;
    let id = got.header("x-request-id").expect("response id").to_string();
    assert_eq!(id.len(), 24);
    assert_eq!(o.last().headers["x-request-id"], id.as_str());
    // An untrusted client cannot choose it.
    let got = fetch_req(g.addr, get(g.addr, "/").header("x-request-id", "forged")).await;
    assert_ne!(got.header("x-request-id"), Some("forged"));
    // Behind a trusted front proxy its id is kept.
    let g = gate_with(o.addr, |c| c.server.trust_forwarded_headers = true).await;
    let got = fetch_req(g.addr, get(g.addr, "/").header("x-request-id", "front-123")).await;
    assert_eq!(got.header("x-request-id"), Some("front-123"));
    assert_eq!(o.last().headers["x-request-id"], "front-123");
}

#[tokio::test]
async fn http2_clients_get_the_same_rewriting() {
    let o = origin(|_| {
        OriginResponse::html("<iframe src=\"https://www.youtube.com/embed/x\"></iframe>")
    })
    .await;
    let g = gate(o.addr).await;
    let stream = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 (prior knowledge) handshake");
    tokio::spawn(conn);
    let req = Request::get(format!("http://{}/", g.addr))
        .body(Full::<Bytes>::default())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("data-consentgate-service=\"youtube\""));
}

/// An origin that promises 1000 bytes, sends a few and hangs up.
async fn lying_origin() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000\r\n\r\n<p>short")
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_origin_body_cut_short_is_aborted_and_counted() {
    let g = gate(lying_origin().await).await;
    for path in ["/page", "/image.png"] {
        let resp = send_streaming(
            g.addr,
            get(g.addr, path)
                .header("sec-fetch-dest", "document")
                .body(Full::default())
                .unwrap(),
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert!(
            resp.into_body().collect().await.is_err(),
            "{path}: the client sees a broken body, not a complete short one"
        );
    }
    let metrics = g.proxy.metrics.render();
    assert!(
        metrics.contains("consentgate_upstream_errors_total{site=\"default\",kind=\"body\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_trickled_consent_form_times_out() {
    let o = origin(|_| OriginResponse::html("x")).await;
    let g = gate_with(o.addr, |c| {
        c.limits.endpoint_body_timeout = Duration::from_millis(300)
    })
    .await;
    let addr = g.addr;
    let status = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // Promises 100 bytes, sends 10 and waits.
        s.write_all(
            format!(
                "POST /__consent HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\naction=acc"
            )
            .as_bytes(),
        )
        .unwrap();
        let mut resp = String::new();
        let mut buf = [0u8; 1024];
        if let Ok(n) = s.read(&mut buf) {
            resp.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        resp.lines().next().unwrap_or("").to_string()
    })
    .await
    .unwrap();
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    assert!(g
        .proxy
        .metrics
        .render()
        .contains("consentgate_limits_hit_total{limit=\"endpoint_body_timeout\"} 1"));
}
