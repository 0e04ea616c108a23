//! Test harness: a real origin server (hyper, loopback TCP) whose responses each test scripts,
//! the proxy in front of it, and a small HTTP/1.1 client.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use consentgate::config::{parse_upstream_url, Config};
use consentgate::proxy::Proxy;

pub const KEY: &str = "test-key-test-key-test-key-test-key!";

/// What the origin saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub version: http::Version,
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
}

/// The body the origin answers with.
pub enum OriginBody {
    Full(Vec<u8>),
    /// Chunks sent as the test pushes them; the body ends when the sender is dropped.
    Stream(mpsc::Receiver<Bytes>),
}

pub struct OriginResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: OriginBody,
}

impl OriginResponse {
    pub fn html(body: &str) -> Self {
        OriginResponse {
            status: 200,
            headers: vec![("content-type".into(), "text/html; charset=utf-8".into())],
            body: OriginBody::Full(body.as_bytes().to_vec()),
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }

    pub fn with_body(mut self, b: Vec<u8>) -> Self {
        self.body = OriginBody::Full(b);
        self
    }

    pub fn status(mut self, s: u16) -> Self {
        self.status = s;
        self
    }
}

type Handler = Arc<dyn Fn(&Seen) -> OriginResponse + Send + Sync>;

pub struct Origin {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// TCP connections accepted so far.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl Origin {
    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("origin saw no request")
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

pub async fn origin(handler: impl Fn(&Seen) -> OriginResponse + Send + Sync + 'static) -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    origin_on(listener, handler).await
}

/// An origin on a listener the test bound itself (a given address).
pub async fn origin_on(
    listener: TcpListener,
    handler: impl Fn(&Seen) -> OriginResponse + Send + Sync + 'static,
) -> Origin {
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let handler: Handler = Arc::new(handler);
    let seen2 = seen.clone();
    let connections: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
    let conns = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            conns.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (handler, seen) = (handler.clone(), seen2.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (handler, seen) = (handler.clone(), seen.clone());
                    async move {
                        let s = Seen {
                            version: req.version(),
                            method: req.method().to_string(),
                            uri: req.uri().to_string(),
                            headers: req.headers().clone(),
                        };
                        seen.lock().unwrap().push(s.clone());
                        let r = handler(&s);
                        let body = match r.body {
                            OriginBody::Full(b) => Full::new(Bytes::from(b))
                                .map_err(|never| match never {})
                                .boxed(),
                            OriginBody::Stream(rx) => ChannelBody(rx).boxed(),
                        };
                        let mut resp = Response::new(body);
                        *resp.status_mut() = StatusCode::from_u16(r.status).unwrap();
                        for (k, v) in r.headers {
                            resp.headers_mut().append(
                                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                                http::HeaderValue::from_str(&v).unwrap(),
                            );
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Origin {
        addr,
        seen,
        connections,
    }
}

/// A body fed by the test through a channel; it ends when the sender is dropped.
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// A fresh receipt database path under the temp dir.
pub fn temp_db() -> std::path::PathBuf {
    std::env::temp_dir()
        .join(format!(
            "consentgate-test-{}",
            consentgate::receipts::new_id()
        ))
        .join("receipts.db")
}

/// The proxy in front of an origin, with a fixed signing key.
pub struct Gate {
    pub addr: SocketAddr,
    pub proxy: Arc<Proxy>,
}

pub async fn gate_with(origin: SocketAddr, tweak: impl FnOnce(&mut Config)) -> Gate {
    let mut config = Config::defaults().unwrap();
    config.upstream.url = parse_upstream_url(&format!("http://{origin}")).unwrap();
    config.consent.key = Some(KEY.into());
    config.upstream.read_timeout = Duration::from_secs(5);
    config.receipts.store = consentgate::config::ReceiptStore::Sqlite(temp_db());
    tweak(&mut config);
    let (proxy, _) = Proxy::new(config).unwrap();
    let proxy = Arc::new(proxy);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(proxy.clone().serve(listener, std::future::pending()));
    Gate { addr, proxy }
}

pub async fn gate(origin: SocketAddr) -> Gate {
    gate_with(origin, |_| {}).await
}

/// A response as the client saw it.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Got {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).and_then(|v| v.to_str().ok())
    }
}

/// Sends one request on a fresh HTTP/1.1 connection and reads the whole response.
pub async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Got {
    let resp = send_streaming(addr, req).await;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes().to_vec();
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// Sends one request on a fresh HTTP/1.1 connection; the error is the caller's to judge (a
/// response aborted before its head is complete).
pub async fn try_send(
    addr: SocketAddr,
    req: Request<Full<Bytes>>,
) -> Result<Response<Incoming>, hyper::Error> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("response in time")
}

pub async fn send_streaming(addr: SocketAddr, req: Request<Full<Bytes>>) -> Response<Incoming> {
    try_send(addr, req).await.expect("response")
}

pub fn get(addr: SocketAddr, path: &str) -> http::request::Builder {
    Request::get(path).header("host", format!("{addr}"))
}

/// Sends a request without a body (the builder's method, path and headers) on a fresh
/// connection and reads the whole response.
pub async fn fetch_req(addr: SocketAddr, req: http::request::Builder) -> Got {
    send(addr, req.body(Full::default()).expect("request")).await
}

pub async fn fetch(addr: SocketAddr, path: &str) -> Got {
    send(addr, get(addr, path).body(Full::default()).unwrap()).await
}

pub async fn fetch_with_cookie(addr: SocketAddr, path: &str, cookie: &str) -> Got {
    send(
        addr,
        get(addr, path)
            .header("cookie", cookie)
            .body(Full::default())
            .unwrap(),
    )
    .await
}

/// Posts a consent form from the site itself and returns the `name=value` cookie pair.
pub async fn consent(addr: SocketAddr, form: &str) -> String {
    let got = send(
        addr,
        Request::post("/__consent")
            .header("host", format!("{addr}"))
            .header("origin", format!("http://{addr}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form.to_string())))
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, 303, "consent POST: {}", got.text());
    let sc = got.header("set-cookie").expect("set-cookie").to_string();
    sc.split(';').next().unwrap().to_string()
}

/// A throwaway certificate authority for TLS tests.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// Its certificate, for a client's roots.
    pub der: rustls::pki_types::CertificateDer<'static>,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let der = params.self_signed(&key).unwrap().der().clone();
        TestCa {
            issuer: Issuer::new(params, key),
            der,
        }
    }

    /// Writes a leaf certificate for `hosts` (serial number `serial`) and its key as PEM files;
    /// returns the certificate.
    pub fn issue(
        &self,
        hosts: &[&str],
        serial: u8,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> rustls::pki_types::CertificateDer<'static> {
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let names = hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.serial_number = Some(vec![serial].into());
        let leaf = params.signed_by(&leaf_key, &self.issuer).unwrap();
        std::fs::write(cert, leaf.pem()).unwrap();
        std::fs::write(key, leaf_key.serialize_pem()).unwrap();
        leaf.der().clone()
    }
}
