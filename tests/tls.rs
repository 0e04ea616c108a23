//! TLS termination over real TLS: SNI picks the certificate, ALPN h2 with a real client,
//! requests know they came over TLS, the redirect listener, and clear errors for bad PEMs.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};

use common::*;
use consentgate::config::Config;

struct Pki {
    ca: CertificateDer<'static>,
    dir: std::path::PathBuf,
}

/// A CA and two leaf certificates written as PEM files: `a.pem` for a.example (+ www),
/// `b.pem` for *.b.example.
fn pki() -> Pki {
    let (ca, p) = own_pki();
    for (name, sans) in [
        ("a", &["a.example", "www.a.example"][..]),
        ("b", &["*.b.example"]),
    ] {
        let (cert, key) = (
            p.dir.join(format!("{name}.pem")),
            p.dir.join(format!("{name}.key")),
        );
        ca.issue(sans, 1, &cert, &key);
    }
    p
}

/// A CA and an empty directory of its own, for a test that writes its certificate files.
fn own_pki() -> (TestCa, Pki) {
    let dir = common::temp_db().parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let ca = TestCa::new();
    let p = Pki {
        ca: ca.der.clone(),
        dir,
    };
    (ca, p)
}

/// A configuration serving one certificate, for a.example.
fn one_cert_config(
    upstream: std::net::SocketAddr,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> String {
    format!(
        "[upstream]\nurl = \"http://{upstream}\"\n[consent]\nkey = \"{KEY}\"\n[receipts]\nstore = \"off\"\n[tls]\nlisten = \"127.0.0.1:0\"\n[[tls.certs]]\ncert = {:?}\nkey = {:?}\nhosts = [\"a.example\"]\n",
        cert.display().to_string(),
        key.display().to_string(),
    )
}

fn tls_config(p: &Pki, upstream: std::net::SocketAddr) -> Config {
    let text = format!(
        "[upstream]\nurl = \"http://{upstream}\"\n[consent]\nkey = \"{KEY}\"\n[receipts]\nstore = \"off\"\n[tls]\nlisten = \"127.0.0.1:0\"\nredirect_listen = \"127.0.0.1:0\"\n[[tls.certs]]\ncert = {:?}\nkey = {:?}\nhosts = [\"a.example\", \"www.a.example\"]\n[[tls.certs]]\ncert = {:?}\nkey = {:?}\nhosts = [\"*.b.example\"]\n",
        p.dir.join("a.pem").display().to_string(),
        p.dir.join("a.key").display().to_string(),
        p.dir.join("b.pem").display().to_string(),
        p.dir.join("b.key").display().to_string(),
    );
    Config::parse(&text).unwrap_or_else(|e| panic!("{e}"))
}

async fn start_tls(config: Config) -> std::net::SocketAddr {
    let acceptor = consentgate::tls::acceptor(&config.tls.as_ref().unwrap().certs).unwrap();
    let (sites, _) = consentgate::proxy::Sites::new(config).unwrap();
    let sites = Arc::new(sites);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(consentgate::proxy::serve_tls(
        Arc::new(move || sites.clone()),
        l,
        acceptor,
        std::future::pending(),
    ));
    addr
}

async fn connect(
    p: &Pki,
    addr: std::net::SocketAddr,
    sni: &str,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(p.ca.clone()).unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
        .unwrap_or_else(|e| panic!("handshake with SNI {sni}: {e}"))
}

#[tokio::test]
async fn sni_picks_the_certificate_and_verification_succeeds() {
    let p = pki();
    let o = origin(|_| OriginResponse::html("<p>x</p>")).await;
    let addr = start_tls(tls_config(&p, o.addr)).await;
    // Verification against each name proves the right certificate was served.
    for sni in ["a.example", "www.a.example", "shop.b.example"] {
        let s = connect(&p, addr, sni, &[b"http/1.1"]).await;
        assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    }
}

#[tokio::test]
async fn h2_over_tls_with_alpn_and_requests_know_they_are_secure() {
    let p = pki();
    let o = origin(|_| {
        OriginResponse::html("<iframe src=\"https://www.youtube.com/embed/x\"></iframe>")
    })
    .await;
    let addr = start_tls(tls_config(&p, o.addr)).await;
    let s = connect(&p, addr, "a.example", &[b"h2", b"http/1.1"]).await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(
            Request::get("https://a.example/")
                .body(Full::<Bytes>::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("data-consentgate-service=\"youtube\""));
    assert_eq!(o.last().headers["x-forwarded-proto"], "https");
    // A consent decision over TLS sets a Secure cookie.
    let resp = sender
        .send_request(
            Request::post("https://a.example/__consent")
                .header("origin", "https://a.example")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from_static(b"action=reject-all")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

/// A renewed certificate written over the old files is served after a reload, without a
/// restart; files that do not load refuse the reload and the certificate in force stays.
#[tokio::test]
async fn certificates_are_read_again_on_reload() {
    let (ca, p) = own_pki();
    let o = origin(|_| OriginResponse::html("<p>x</p>")).await;
    let (cert, key) = (p.dir.join("renewed.pem"), p.dir.join("renewed.key"));
    let issue = |serial| ca.issue(&["a.example"], serial, &cert, &key);
    let first = issue(1);
    let config_file = p.dir.join("consentgate.toml");
    std::fs::write(&config_file, one_cert_config(o.addr, &cert, &key)).unwrap();
    let source = consentgate::server::ConfigSource {
        path: Some(config_file),
        ..Default::default()
    };
    let config = source.load().unwrap();
    let certs = consentgate::tls::Certificates::load(&config.tls.as_ref().unwrap().certs).unwrap();
    let (sites, _) = consentgate::proxy::Sites::new(config).unwrap();
    let server = consentgate::server::Server::new(Arc::new(sites), source);
    server.serve_certificates(certs.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(consentgate::proxy::serve_tls(
        server.resolver(),
        l,
        certs.acceptor().unwrap(),
        std::future::pending(),
    ));
    let served = |s: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| {
        s.get_ref().1.peer_certificates().unwrap()[0].clone()
    };
    let open = connect(&p, addr, "a.example", &[b"http/1.1"]).await;
    assert_eq!(served(&open), first);

    let second = issue(2);
    assert_ne!(first, second);
    let reload = |server: Arc<consentgate::server::Server>| async move {
        tokio::task::spawn_blocking(move || server.reload())
            .await
            .unwrap()
    };
    let msg = reload(server.clone()).await.unwrap();
    assert!(msg.contains("1 TLS certificate(s) read again"), "{msg}");
    let s = connect(&p, addr, "a.example", &[b"http/1.1"]).await;
    assert_eq!(served(&s), second, "the renewed certificate is served");
    // The connection opened before the reload keeps its certificate (and still works).
    assert_eq!(served(&open), first);

    // A broken renewal: the reload is refused, the certificate in force stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    let err = reload(server.clone()).await.unwrap_err();
    assert!(err.contains("no CERTIFICATE"), "{err}");
    let s = connect(&p, addr, "a.example", &[b"http/1.1"]).await;
    assert_eq!(served(&s), second);
}

/// What is served is what the configuration was validated with: the files are read once, so
/// a certificate rewritten between validation and serving (a renewal half written) can neither
/// slip in unchecked nor fail the start after the configuration was accepted.
#[tokio::test]
async fn the_certificate_served_is_the_one_validated() {
    let (ca, p) = own_pki();
    let (cert, key) = (p.dir.join("validated.pem"), p.dir.join("validated.key"));
    let validated = ca.issue(&["a.example"], 1, &cert, &key);
    let o = origin(|_| OriginResponse::html("<p>x</p>")).await;
    let config =
        Config::parse(&one_cert_config(o.addr, &cert, &key)).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&cert, "not a certificate").unwrap();
    let addr = start_tls(config).await;
    let s = connect(&p, addr, "a.example", &[b"http/1.1"]).await;
    assert_eq!(s.get_ref().1.peer_certificates().unwrap()[0], validated);
}

#[tokio::test]
async fn plain_http_is_redirected_to_https() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(consentgate::proxy::serve_redirect(
        l,
        8443,
        std::future::pending(),
    ));
    let got = send(
        addr,
        Request::post("/shop/cart?item=3")
            .header("host", "a.example")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, 308);
    assert_eq!(
        got.header("location"),
        Some("https://a.example:8443/shop/cart?item=3")
    );
}

#[tokio::test]
async fn bad_pems_are_clear_config_errors() {
    let p = pki();
    let junk = p.dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let cases = [
        (
            junk.display().to_string(),
            p.dir.join("a.key").display().to_string(),
            "no CERTIFICATE",
        ),
        (
            "/no/such.pem".to_string(),
            p.dir.join("a.key").display().to_string(),
            "cannot read",
        ),
        (
            p.dir.join("a.pem").display().to_string(),
            junk.display().to_string(),
            "no usable private key",
        ),
        (
            p.dir.join("a.pem").display().to_string(),
            p.dir.join("b.key").display().to_string(),
            "do not form a usable pair",
        ),
    ];
    for (cert, key, want) in cases {
        let text = format!("[tls]\nlisten = \"127.0.0.1:0\"\n[[tls.certs]]\ncert = {cert:?}\nkey = {key:?}\nhosts = [\"a.example\"]\n");
        let errs = Config::parse(&text).unwrap_err().0;
        assert_eq!(errs[0].path, "tls.certs[0]", "{errs:?}");
        assert!(errs[0].message.contains(want), "{want}: {errs:?}");
        assert!(errs[0].line.is_some());
    }
    let errs = Config::parse("[tls]\nlisten = \"127.0.0.1:0\"\n")
        .unwrap_err()
        .0;
    assert_eq!(errs[0].path, "tls.certs");
}

#[tokio::test]
async fn each_site_brings_its_certificate_and_its_origin() {
    let p = pki();
    let a = origin(|_| OriginResponse::html("<p>site a</p>")).await;
    let b = origin(|_| OriginResponse::html("<p>site b</p>")).await;
    let text = format!(
        r#"
[consent]
key = "{KEY}"
[receipts]
store = "off"
[tls]
listen = "127.0.0.1:0"
[[site]]
name = "a"
hosts = ["a.example", "www.a.example"]
upstream.url = "http://{}"
tls = {{ cert = {:?}, key = {:?} }}
[[site]]
name = "b"
hosts = ["*.b.example"]
upstream.url = "http://{}"
tls = {{ cert = {:?}, key = {:?} }}
"#,
        a.addr,
        p.dir.join("a.pem").display().to_string(),
        p.dir.join("a.key").display().to_string(),
        b.addr,
        p.dir.join("b.pem").display().to_string(),
        p.dir.join("b.key").display().to_string(),
    );
    let config = Config::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.tls.as_ref().unwrap().certs.len(), 2);
    let addr = start_tls(config).await;
    for (sni, want) in [("www.a.example", "site a"), ("shop.b.example", "site b")] {
        // The handshake verifies the name: the site's own certificate was served.
        let s = connect(&p, addr, sni, &[b"h2"]).await;
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
                .await
                .unwrap();
        tokio::spawn(conn);
        let resp = sender
            .send_request(
                Request::get(format!("https://{sni}/"))
                    .body(Full::<Bytes>::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(
            String::from_utf8_lossy(&body).contains(want),
            "{sni}: {body:?}"
        );
    }
    assert_eq!((a.count(), b.count()), (1, 1));
}
