//! An https origin over real TLS (rustls on both sides): verified against a configured CA,
//! refused without it.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

use common::*;

struct Pki {
    ca: CertificateDer<'static>,
    server_cert: CertificateDer<'static>,
    server_key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    Pki {
        ca: ca_cert.der().clone(),
        server_cert: cert.der().clone(),
        server_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

async fn tls_origin(pki: &Pki) -> SocketAddr {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![pki.server_cert.clone()], pki.server_key.clone_key())
    .unwrap();
    // Offers h2 like most origins do; the proxy's protocol setting decides what is used.
    let mut config = config;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let mut r = Response::new(Full::new(Bytes::from(format!(
                        "<p>secure origin</p><p>{:?}</p><iframe src=\"https://www.youtube.com/embed/x\"></iframe>",
                        req.version()
                    ))));
                    r.headers_mut()
                        .insert("content-type", "text/html".parse().unwrap());
                    Ok::<_, Infallible>(r)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_upstream_verified_with_configured_ca() {
    let pki = pki();
    let addr = tls_origin(&pki).await;
    let ca = pki.ca.clone();
    let g = gate_with(addr, move |c| {
        c.upstream.url = url::Url::parse(&format!("https://localhost:{}", addr.port())).unwrap();
        c.upstream.ca_certs = vec![ca];
    })
    .await;
    let got = fetch(g.addr, "/").await;
    assert_eq!(got.status, 200, "{}", got.text());
    let text = got.text();
    assert!(text.contains("<p>secure origin</p>"), "{text}");
    assert!(
        text.contains("<p>HTTP/1.1</p>"),
        "http1 is the default: {text}"
    );
    assert!(
        text.contains("data-consentgate-service=\"youtube\""),
        "{text}"
    );
}

#[tokio::test]
async fn https_upstream_with_unknown_ca_is_refused() {
    let pki = pki();
    let addr = tls_origin(&pki).await;
    let g = gate_with(addr, move |c| {
        c.upstream.url = url::Url::parse(&format!("https://localhost:{}", addr.port())).unwrap();
    })
    .await;
    let got = fetch(g.addr, "/").await;
    assert_eq!(got.status, 502);
}

#[tokio::test]
async fn https_upstream_speaks_h2_when_alpn_allows() {
    let pki = pki();
    let addr = tls_origin(&pki).await;
    for protocol in [
        consentgate::config::UpstreamProtocol::Auto,
        consentgate::config::UpstreamProtocol::Http2,
    ] {
        let ca = pki.ca.clone();
        let g = gate_with(addr, move |c| {
            c.upstream.url =
                url::Url::parse(&format!("https://localhost:{}", addr.port())).unwrap();
            c.upstream.ca_certs = vec![ca];
            c.upstream.protocol = protocol;
        })
        .await;
        let got = fetch(g.addr, "/").await;
        assert_eq!(got.status, 200, "{}", got.text());
        let text = got.text();
        assert!(text.contains("<p>HTTP/2.0</p>"), "{protocol:?}: {text}");
        assert!(
            text.contains("data-consentgate-service=\"youtube\""),
            "rewritten as ever: {text}"
        );
    }
}
