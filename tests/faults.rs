//! Faults over real TCP: an origin that resets, stalls, sends broken chunked framing, corrupt or
//! truncated gzip/br, or lies in Content-Length; clients that vanish mid-stream; hundreds of
//! slow clients at once. Whatever happens, the proxy must not panic, must never hand a client
//! a well-formed response whose HTML still loads a refused service (a broken page is aborted,
//! visibly incomplete), and must go on serving.

mod common;
mod oracle;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use common::*;
use oracle::Oracle;

/// Panics on the runtime's worker threads (the proxy's tasks), counted by a hook.
static WORKER_PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_worker_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let name = std::thread::current().name().unwrap_or("").to_string();
            if name.starts_with("tokio-runtime-worker") {
                WORKER_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            prev(info);
        }));
    });
}

fn no_worker_panics() {
    assert_eq!(
        WORKER_PANICS.load(Ordering::SeqCst),
        0,
        "the proxy panicked"
    );
}

/// A page of about 64 KB with trackers at both ends, so it streams in many chunks.
fn page() -> String {
    page_of(64 * 1024)
}

fn page_of(size: usize) -> String {
    let mut s = String::from("<!doctype html><html><head><title>Shop</title>");
    s.push_str(consentgate::demo::ANALYTICS);
    s.push_str("</head><body>");
    while s.len() < size {
        s.push_str("<p>Lorem ipsum dolor sit amet, <a href=\"/p\">consectetur</a>.</p>\n<img src=\"https://static.zdassets.com/p.png\">\n");
    }
    s.push_str(consentgate::demo::ZENDESK);
    s.push_str("</body></html>");
    s
}

/// Services refused when the visitor has not decided.
fn refused(o: &Oracle) -> std::collections::BTreeSet<String> {
    o.blocked_ids(&[])
}

/// What the origin does on one connection, after reading the request head.
#[derive(Clone)]
enum Script {
    /// Write these bytes, then close (FIN).
    Send(Vec<u8>),
    /// Write these bytes, then reset the connection (RST).
    SendThenReset(Vec<u8>),
    /// Write these bytes, then hold the connection open without writing.
    SendThenStall(Vec<u8>),
}

/// A raw TCP origin: every connection gets `script(path)`.
async fn raw_origin(script: impl Fn(&str) -> Script + Send + Sync + 'static) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let script = std::sync::Arc::new(script);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let script = script.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let path = text.split(' ').nth(1).unwrap_or("/").to_string();
                match script(&path) {
                    Script::Send(b) => {
                        let _ = s.write_all(&b).await;
                        let _ = s.shutdown().await;
                    }
                    Script::SendThenReset(b) => {
                        let _ = s.write_all(&b).await;
                        let _ = s.flush().await;
                        if let Ok(std) = s.into_std() {
                            reset(std);
                        }
                    }
                    Script::SendThenStall(b) => {
                        let _ = s.write_all(&b).await;
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                }
            });
        }
    });
    addr
}

/// Closes with SO_LINGER 0, so the peer gets a reset instead of an orderly end.
fn reset(s: std::net::TcpStream) {
    let t = tokio::net::TcpSocket::from_std_stream(s);
    let _ = t.set_zero_linger();
    drop(t);
}

fn head(extra: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n{extra}\r\n").into_bytes()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn brotli(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(b).unwrap();
    }
    out
}

fn decode(coding: Option<&str>, body: &[u8]) -> Vec<u8> {
    match coding {
        Some("gzip") => {
            let mut d = flate2::write::GzDecoder::new(Vec::new());
            // A truncated stream decodes to what it has: that prefix is what a browser renders.
            let _ = d.write_all(body);
            let _ = d.try_finish();
            d.get_ref().clone()
        }
        Some("br") => {
            let mut out = Vec::new();
            let mut d = brotli::DecompressorWriter::new(&mut out, 4096);
            let _ = d.write_all(body);
            let _ = d.flush();
            drop(d);
            out
        }
        _ => body.to_vec(),
    }
}

/// What a client saw: the status (if a head came), the body bytes it received before the end
/// or the error, and whether the body ended cleanly.
#[derive(Debug)]
struct Seen {
    status: Option<u16>,
    coding: Option<String>,
    body: Vec<u8>,
    complete: bool,
}

async fn get_page(proxy: SocketAddr, path: &str) -> Seen {
    let req = get(proxy, path)
        .header("sec-fetch-dest", "document")
        .header("accept-encoding", "gzip, br")
        .body(Full::<Bytes>::default())
        .unwrap();
    let run = async {
        let resp = match try_send(proxy, req).await {
            Ok(r) => r,
            Err(_) => {
                return Seen {
                    status: None,
                    coding: None,
                    body: vec![],
                    complete: false,
                }
            }
        };
        let status = resp.status().as_u16();
        let coding = resp
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = resp.into_body();
        let mut got = Vec::new();
        let complete = loop {
            match body.frame().await {
                None => break true,
                Some(Err(_)) => break false,
                Some(Ok(f)) => {
                    if let Some(d) = f.data_ref() {
                        got.extend_from_slice(d);
                    }
                }
            }
        };
        Seen {
            status: Some(status),
            coding,
            body: got,
            complete,
        }
    };
    // A hang guard, not a timing assertion: a stalled origin must end in an error eventually.
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the proxy never ended the response")
}

/// The rules for a faulty origin: no leak in anything the client received; a 200 that ended
/// cleanly is only acceptable if the origin's body was in fact complete (`origin_complete`).
fn judge(o: &Oracle, what: &str, seen: &Seen, origin_complete: bool) {
    let html = decode(seen.coding.as_deref(), &seen.body);
    let leaks = o.leaks(&html, &oracle::page(), &refused(o));
    assert!(
        leaks.is_empty(),
        "{what}: the client received HTML that loads refused services: {leaks:#?}"
    );
    if seen.status == Some(200) && seen.complete && !origin_complete {
        panic!(
            "{what}: a truncated page was finished as if whole ({} bytes)",
            html.len()
        );
    }
}

async fn still_serves(o: &Oracle, gate: SocketAddr) {
    let seen = get_page(gate, "/ok").await;
    assert_eq!(seen.status, Some(200), "the proxy stopped serving");
    assert!(seen.complete);
    let html = decode(seen.coding.as_deref(), &seen.body);
    assert!(html.len() > 60 * 1024, "{}", html.len());
    judge(o, "good page after the fault", &seen, true);
}

/// Bytes of a well-formed response for `/ok`, else `fault`.
fn or_ok(path: &str, fault: Script) -> Script {
    if path == "/ok" {
        let p = page();
        let mut b = head(&format!("content-length: {}\r\n", p.len()));
        b.extend_from_slice(p.as_bytes());
        Script::Send(b)
    } else {
        fault
    }
}

async fn gate_for(origin: SocketAddr) -> Gate {
    gate_with(origin, |c| {
        c.upstream.read_timeout = Duration::from_secs(2);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_faults_never_leak_and_never_look_complete() {
    count_worker_panics();
    let o = Oracle::builtin();
    let p = page();
    let half = p.len() / 2;
    let gz = gzip(p.as_bytes());
    let br = brotli(p.as_bytes());
    let faults: Vec<(&str, Script, bool)> = vec![
        (
            "reset mid-body (content-length)",
            Script::SendThenReset(
                [
                    head(&format!("content-length: {}\r\n", p.len())),
                    p.as_bytes()[..half].to_vec(),
                ]
                .concat(),
            ),
            false,
        ),
        (
            "reset mid-body (chunked)",
            Script::SendThenReset(
                [
                    head("transfer-encoding: chunked\r\n"),
                    format!("{:x}\r\n", half).into_bytes(),
                    p.as_bytes()[..half].to_vec(),
                    b"\r\n".to_vec(),
                ]
                .concat(),
            ),
            false,
        ),
        (
            "stall mid-body",
            Script::SendThenStall(
                [
                    head(&format!("content-length: {}\r\n", p.len())),
                    p.as_bytes()[..half].to_vec(),
                ]
                .concat(),
            ),
            false,
        ),
        (
            "stall before the head",
            Script::SendThenStall(vec![]),
            false,
        ),
        (
            "malformed chunk size",
            Script::Send(
                [
                    head("transfer-encoding: chunked\r\n"),
                    b"400\r\n".to_vec(),
                    p.as_bytes()[..0x400].to_vec(),
                    b"\r\nzz\r\nnot a chunk\r\n0\r\n\r\n".to_vec(),
                ]
                .concat(),
            ),
            false,
        ),
        (
            "chunk longer than announced",
            Script::Send(
                [
                    head("transfer-encoding: chunked\r\n"),
                    b"10\r\n".to_vec(),
                    p.as_bytes()[..0x400].to_vec(),
                    b"\r\n0\r\n\r\n".to_vec(),
                ]
                .concat(),
            ),
            false,
        ),
        (
            "chunked without the last chunk",
            Script::Send(
                [
                    head("transfer-encoding: chunked\r\n"),
                    format!("{:x}\r\n", half).into_bytes(),
                    p.as_bytes()[..half].to_vec(),
                    b"\r\n".to_vec(),
                ]
                .concat(),
            ),
            false,
        ),
        (
            "content-length longer than the body",
            Script::Send(
                [
                    head(&format!("content-length: {}\r\n", p.len() * 2)),
                    p.as_bytes().to_vec(),
                ]
                .concat(),
            ),
            false,
        ),
        (
            // The origin's framing says the page ends early: the proxy can only see a short
            // page, which it must still rewrite.
            "content-length shorter than the body",
            Script::Send(
                [
                    head(&format!("content-length: {half}\r\n")),
                    p.as_bytes().to_vec(),
                ]
                .concat(),
            ),
            true,
        ),
        (
            "invalid gzip",
            Script::Send(
                [
                    head("content-encoding: gzip\r\ncontent-length: 64\r\n"),
                    vec![0x1f; 64],
                ]
                .concat(),
            ),
            false,
        ),
        (
            "truncated gzip",
            Script::Send(
                [
                    head(&format!(
                        "content-encoding: gzip\r\ncontent-length: {}\r\n",
                        gz.len() / 2
                    )),
                    gz[..gz.len() / 2].to_vec(),
                ]
                .concat(),
            ),
            false,
        ),
        (
            "gzip corrupted in the middle",
            Script::Send({
                let mut g = gz.clone();
                let mid = g.len() / 2;
                for b in &mut g[mid..mid + 32] {
                    *b ^= 0x5a;
                }
                [
                    head(&format!(
                        "content-encoding: gzip\r\ncontent-length: {}\r\n",
                        g.len()
                    )),
                    g,
                ]
                .concat()
            }),
            false,
        ),
        (
            "invalid br",
            Script::Send(
                [
                    head("content-encoding: br\r\ncontent-length: 64\r\n"),
                    vec![0xff; 64],
                ]
                .concat(),
            ),
            false,
        ),
        (
            "truncated br",
            Script::Send(
                [
                    head(&format!(
                        "content-encoding: br\r\ncontent-length: {}\r\n",
                        br.len() / 2
                    )),
                    br[..br.len() / 2].to_vec(),
                ]
                .concat(),
            ),
            false,
        ),
        (
            "head then close",
            Script::Send(head(&format!("content-length: {}\r\n", p.len()))),
            false,
        ),
        (
            "garbage instead of a response",
            Script::Send(
                b"HTTX/9 nope\r\n\r\n<script src=https://static.zdassets.com/x.js></script>"
                    .to_vec(),
            ),
            false,
        ),
    ];
    for (name, script, origin_complete) in faults {
        let s2 = script.clone();
        let origin = raw_origin(move |path| or_ok(path, s2.clone())).await;
        let g = gate_for(origin).await;
        let seen = get_page(g.addr, "/page").await;
        judge(&o, name, &seen, origin_complete);
        still_serves(&o, g.addr).await;
        // The same proxy again, for a fault after a pooled upstream connection was used.
        let seen = get_page(g.addr, "/page").await;
        judge(&o, name, &seen, origin_complete);
        still_serves(&o, g.addr).await;
    }
    no_worker_panics();
}

/// The client goes away while the page streams: the proxy lets go of the origin and serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnects_mid_stream() {
    count_worker_panics();
    let o = Oracle::builtin();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let rx = std::sync::Mutex::new(Some(rx));
    let origin = origin(move |s| {
        if s.uri == "/slow" {
            if let Some(rx) = rx.lock().unwrap().take() {
                return OriginResponse {
                    status: 200,
                    headers: vec![("content-type".into(), "text/html".into())],
                    body: OriginBody::Stream(rx),
                };
            }
        }
        OriginResponse::html(&page())
    })
    .await;
    let g = gate_for(origin.addr).await;
    let mut c = TcpStream::connect(g.addr).await.unwrap();
    c.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\nsec-fetch-dest: document\r\n\r\n")
        .await
        .unwrap();
    let p = page();
    tx.send(Bytes::copy_from_slice(&p.as_bytes()[..4096]))
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = c.read(&mut buf).await.unwrap();
    assert!(n > 0);
    drop(c);
    // The origin keeps producing; the proxy must stop pulling (the channel closes) rather
    // than buffer the page for nobody. Loopback socket buffers alone can take tens of MB
    // (tcp_rmem's maximum is 32 MiB here) before a proxy that stopped reading holds the origin
    // up, so the bound is above that: 4 MB was, on a loaded machine, absorbed by the kernel
    // before the proxy saw the client go.
    const CHUNKS: usize = 1100;
    let mut sent = 0;
    for chunk in std::iter::repeat_n(&p.as_bytes()[4096..], CHUNKS) {
        match tokio::time::timeout(
            Duration::from_secs(20),
            tx.send(Bytes::copy_from_slice(chunk)),
        )
        .await
        {
            Ok(Ok(())) => sent += 1,
            Ok(Err(_)) => break,
            Err(_) => panic!("the proxy neither read nor dropped the origin's body"),
        }
    }
    assert!(
        sent < CHUNKS,
        "the proxy kept reading for a client that left ({} MB)",
        (sent * (p.len() - 4096)) >> 20
    );
    let seen = get_page(g.addr, "/ok").await;
    assert_eq!(seen.status, Some(200));
    judge(&o, "after a client left", &seen, true);
    no_worker_panics();
}

/// Hundreds of clients reading slowly at once all get the whole rewritten page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_slow_clients() {
    count_worker_panics();
    const CLIENTS: usize = 300;
    let o = std::sync::Arc::new(Oracle::builtin());
    // 16 KB each: the debug build rewrites all of them on two shared cores.
    let origin = origin(|_| OriginResponse::html(&page_of(16 * 1024))).await;
    // 300 debug-build rewrites share two cores: the origin's head may wait its turn for long.
    let g = gate_with(origin.addr, |c| {
        c.upstream.read_timeout = Duration::from_secs(60);
    })
    .await;
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let addr = g.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(
                format!("GET /p{i} HTTP/1.1\r\nhost: x\r\nsec-fetch-dest: document\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
            let mut all = Vec::new();
            let mut buf = vec![0u8; 2048];
            loop {
                let n = c.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
                // A slow reader: the proxy must hold back, not buffer without bound.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            all
        }));
    }
    let mut ok = 0;
    let mut first: Option<Vec<u8>> = None;
    for t in tasks {
        let raw = t.await.unwrap();
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
        if !body.ends_with("0\r\n\r\n") && head.contains("chunked") {
            panic!("{head}\n...{}", &body[body.len().saturating_sub(300)..]);
        }
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body.as_bytes())
        } else {
            body.as_bytes().to_vec()
        };
        assert!(body.ends_with(b"</html>"), "incomplete body");
        // Same page, same (absent) consent: every client must get the same bytes; the oracle
        // reads the first copy.
        match &first {
            None => {
                let leaks = o.leaks(&body, &oracle::page(), &refused(&o));
                assert!(leaks.is_empty(), "{leaks:#?}");
                first = Some(body);
            }
            Some(f) => assert!(*f == body, "client {ok} got another page"),
        }
        ok += 1;
    }
    assert_eq!(ok, CLIENTS);
    no_worker_panics();
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(i) = b.windows(2).position(|w| w == b"\r\n") else {
            panic!("chunked body ends without the last chunk");
        };
        let size = usize::from_str_radix(
            std::str::from_utf8(&b[..i])
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap();
        b = &b[i + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}
