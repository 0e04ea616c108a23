//! The CSP backstop and its violation reports, over real TCP.

mod common;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use common::*;
use consentgate::csp::CspMode;

const PAGE: &str = "<body><p>x</p></body>";

fn policy_of(got: &Got, name: &str) -> Vec<String> {
    got.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn report_only_by_default_with_no_service_allowed_before_consent() {
    let o = origin(|_| OriginResponse::html(PAGE)).await;
    let g = gate(o.addr).await;
    let got = fetch(g.addr, "/").await;
    let p = policy_of(&got, "content-security-policy-report-only");
    assert_eq!(p.len(), 1, "{:?}", got.headers);
    assert!(p[0].starts_with("default-src 'self' "), "{}", p[0]);
    assert!(
        !p[0].contains("zdassets") && !p[0].contains("facebook"),
        "{}",
        p[0]
    );
    assert!(p[0].contains("report-uri /__consent/csp-report"));
    assert_eq!(
        got.header("reporting-endpoints"),
        Some("consentgate-csp=\"/__consent/csp-report\"")
    );
    assert!(got.header("content-security-policy").is_none());
    // With every service granted each source is listed once: a header that proxies and CDNs
    // in front of us accept (nginx's default proxy buffer is 4-8 KB for the whole head).
    let all = consent(g.addr, "action=accept-all").await;
    let got = fetch_with_cookie(g.addr, "/", &all).await;
    let p = policy_of(&got, "content-security-policy-report-only");
    assert!(p[0].contains("static.zdassets.com"), "{}", p[0]);
    assert!(p[0].len() < 4096, "{} bytes: {}", p[0].len(), p[0]);
}

#[tokio::test]
async fn enforced_policy_follows_consent_and_keeps_the_origins_own() {
    let o = origin(|_| {
        OriginResponse::html(PAGE).header("content-security-policy", "frame-ancestors 'none'")
    })
    .await;
    let g = gate_with(o.addr, |c| {
        c.csp.mode = CspMode::Enforce;
        c.csp.allow = vec!["https://cdn.example.org".into()];
    })
    .await;
    let got = fetch(g.addr, "/").await;
    let p = policy_of(&got, "content-security-policy");
    assert_eq!(p.len(), 2, "ours is added, the origin's kept: {p:?}");
    assert_eq!(p[0], "frame-ancestors 'none'");
    assert!(
        p[1].contains("https://cdn.example.org") && !p[1].contains("connect.facebook.net"),
        "{}",
        p[1]
    );
    let meta = consent(g.addr, "action=save&service=meta-pixel").await;
    let got = fetch_with_cookie(g.addr, "/", &meta).await;
    let p = policy_of(&got, "content-security-policy");
    assert!(
        p[1].contains("connect.facebook.net") && p[1].contains("www.facebook.com/tr"),
        "{}",
        p[1]
    );
    assert!(!p[1].contains("zdassets"), "{}", p[1]);
    // Non-HTML responses carry no policy.
    let o = origin(|_| OriginResponse {
        status: 200,
        headers: vec![("content-type".into(), "image/png".into())],
        body: OriginBody::Full(vec![1, 2]),
    })
    .await;
    let g = gate_with(o.addr, |c| c.csp.mode = CspMode::Enforce).await;
    assert!(fetch(g.addr, "/x.png")
        .await
        .header("content-security-policy")
        .is_none());
}

#[tokio::test]
async fn csp_off_sends_nothing() {
    let o = origin(|_| OriginResponse::html(PAGE)).await;
    let g = gate_with(o.addr, |c| c.csp.mode = CspMode::Off).await;
    let got = fetch(g.addr, "/").await;
    assert!(got.header("content-security-policy").is_none());
    assert!(got.header("content-security-policy-report-only").is_none());
}

async fn report(addr: std::net::SocketAddr, ctype: &str, body: Vec<u8>) -> u16 {
    send(
        addr,
        Request::post("/__consent/csp-report")
            .header("host", "x")
            .header("content-type", ctype)
            .body(Full::new(Bytes::from(body)))
            .unwrap(),
    )
    .await
    .status
}

#[tokio::test]
async fn violation_reports_are_validated_limited_and_aggregated() {
    let o = origin(|_| OriginResponse::html(PAGE)).await;
    let g = gate(o.addr).await;
    let legacy = br#"{"csp-report":{"effective-directive":"script-src-elem","blocked-uri":"https://connect.facebook.net/en_US/fbevents.js"}}"#.to_vec();
    assert_eq!(
        report(g.addr, "application/csp-report", legacy.clone()).await,
        204
    );
    let modern = br#"[{"type":"csp-violation","body":{"effectiveDirective":"connect-src","blockedURL":"https://www.google-analytics.com/g/collect"}}]"#.to_vec();
    assert_eq!(
        report(g.addr, "application/reports+json", modern).await,
        204
    );
    assert_eq!(
        report(g.addr, "application/csp-report", b"{}".to_vec()).await,
        400
    );
    assert_eq!(report(g.addr, "text/plain", legacy.clone()).await, 415);
    assert_eq!(
        report(g.addr, "application/csp-report", vec![b' '; 100_000]).await,
        413
    );
    let snap = g.proxy.reports.snapshot();
    assert_eq!(snap["violations"].as_array().unwrap().len(), 2, "{snap}");
    // A flood from one client is cut off.
    let mut limited = 0;
    for _ in 0..40 {
        if report(g.addr, "application/csp-report", legacy.clone()).await == 429 {
            limited += 1;
        }
    }
    assert!(limited > 0);
    assert_eq!(o.count(), 0, "reports never reach the origin");
}
