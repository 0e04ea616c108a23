//! The admin listener over real TCP: bearer auth, discovery, CSP reports.

mod common;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use common::*;

const TOKEN: &str = "admin-token-for-tests-0123456789";

async fn admin(g: &Gate) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(
        g.proxy
            .clone()
            .serve_admin(l, TOKEN.into(), std::future::pending()),
    );
    addr
}

async fn admin_get(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> Got {
    let mut b = get(addr, path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    send(addr, b.body(Full::default()).unwrap()).await
}

#[tokio::test]
async fn wrong_or_missing_token_is_401() {
    let o = origin(|_| OriginResponse::html("x")).await;
    let g = gate(o.addr).await;
    let a = admin(&g).await;
    assert_eq!(admin_get(a, "/healthz", None).await.status, 401);
    let got = admin_get(a, "/discovery", Some("wrong-token-wrong-token")).await;
    assert_eq!(got.status, 401);
    assert_eq!(got.header("www-authenticate"), Some("Bearer"));
    assert_eq!(admin_get(a, "/healthz", Some(TOKEN)).await.text(), "ok\n");
    // The public port does not serve the admin API.
    assert_eq!(
        admin_get(g.addr, "/discovery", Some(TOKEN)).await.text(),
        "x"
    );
}

#[tokio::test]
async fn discovery_lists_third_party_origins_with_their_service() {
    let page = "<script src=\"https://static.zdassets.com/ekr/snippet.js\"></script><script src=\"https://cdn.jsdelivr.example/npm/lib.js\"></script><img src=\"https://static.zdassets.com/a.png\"><img src=\"/local.png\">";
    let o = origin(move |_| OriginResponse::html(page)).await;
    let g = gate(o.addr).await;
    let a = admin(&g).await;
    fetch(g.addr, "/").await;
    fetch(g.addr, "/other").await;
    let got = admin_get(a, "/discovery", Some(TOKEN)).await;
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(v[0]["origin"], "https://static.zdassets.com", "{v}");
    assert_eq!(v[0]["service"], "zendesk-chat");
    assert_eq!(v[0]["references"], 4);
    assert_eq!(v[0]["pages"], 2);
    assert_eq!(v[1]["origin"], "https://cdn.jsdelivr.example");
    assert_eq!(v[1]["service"], "unknown");
    assert_eq!(
        v.as_array().unwrap().len(),
        2,
        "first-party URLs are not listed: {v}"
    );
}

#[tokio::test]
async fn csp_reports_are_exposed() {
    let o = origin(|_| OriginResponse::html("x")).await;
    let g = gate(o.addr).await;
    let a = admin(&g).await;
    let got = send(
        g.addr,
        Request::post("/__consent/csp-report")
            .header("host", "x")
            .header("content-type", "application/csp-report")
            .body(Full::new(Bytes::from_static(br#"{"csp-report":{"effective-directive":"img-src","blocked-uri":"https://px.ads.linkedin.com/collect?x=1"}}"#)))
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, 204);
    let v: serde_json::Value =
        serde_json::from_slice(&admin_get(a, "/csp-reports", Some(TOKEN)).await.body).unwrap();
    assert_eq!(v["violations"][0]["blocked"], "https://px.ads.linkedin.com");
    assert_eq!(v["violations"][0]["directive"], "img-src");
}

#[tokio::test]
async fn metrics_reflect_traffic() {
    let page = "<iframe src=\"https://www.youtube.com/embed/x\"></iframe><img src=\"https://www.facebook.com/tr?id=1\"><img src=\"https://www.facebook.com/tr?id=2\">";
    let o = origin(move |_| OriginResponse::html(page)).await;
    let g = gate(o.addr).await;
    let a = admin(&g).await;
    for _ in 0..3 {
        fetch(g.addr, "/").await;
    }
    consent(g.addr, "action=accept-all").await;
    assert_eq!(fetch(g.addr, "/g/collect").await.status, 204);
    let got = admin_get(a, "/metrics", Some(TOKEN)).await;
    assert_eq!(
        got.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = got.text();
    for line in [
        "consentgate_requests_total{site=\"default\",method=\"GET\",status_class=\"2xx\"} 4",
        "consentgate_requests_total{site=\"default\",method=\"POST\",status_class=\"3xx\"} 1",
        "consentgate_pages_rewritten_total{site=\"default\",mode=\"blocking\"} 3",
        "consentgate_elements_neutralized_total{site=\"default\",service=\"meta-pixel\"} 6",
        "consentgate_elements_neutralized_total{site=\"default\",service=\"youtube\"} 3",
        "consentgate_decisions_total{site=\"default\",method=\"accept-all\"} 1",
        "consentgate_receipts_committed_total 1",
        "consentgate_request_duration_seconds_count{site=\"default\",kind=\"html\"} 3",
        "consentgate_request_duration_seconds_count{site=\"default\",kind=\"beacon\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    // Upstream errors are counted by kind.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let g2 = gate(dead).await;
    let a2 = admin(&g2).await;
    assert_eq!(fetch(g2.addr, "/").await.status, 502);
    let text = admin_get(a2, "/metrics", Some(TOKEN)).await.text();
    assert!(
        text.contains("consentgate_upstream_errors_total{site=\"default\",kind=\"connect\"} 1"),
        "{text}"
    );
}
