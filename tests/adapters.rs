//! Enforcing another consent manager's decision, over real TCP.

mod common;

use common::*;
use consentgate::cmp::CmpKind;
use consentgate::config::Adapter;

const PAGE: &str = "<body><iframe src=\"https://www.youtube.com/embed/x\"></iframe><script src=\"https://www.googletagmanager.com/gtag/js?id=G-1\"></script></body>";

async fn onetrust_site() -> Gate {
    let o = origin(|_| OriginResponse::html(PAGE)).await;
    let o = Box::leak(Box::new(o));
    gate_with(o.addr, |c| {
        let idx = |id: &str| c.catalog.index_of(id).unwrap();
        c.consent.banner = false;
        c.consent.adapter = Some(Adapter {
            kind: CmpKind::OneTrust,
            cookie_name: None,
            services: vec![
                (idx("youtube"), vec!["C0003".into()]),
                (idx("google-analytics"), vec!["C0002".into()]),
            ],
        });
    })
    .await
}

async fn with_cookie(g: &Gate, cookie: &str) -> String {
    fetch_req(g.addr, get(g.addr, "/").header("cookie", cookie))
        .await
        .text()
}

#[tokio::test]
async fn onetrust_decision_is_enforced_per_mapped_group() {
    let g = onetrust_site().await;
    let ot = "OptanonConsent=isGpcEnabled=0&datestamp=Mon+Nov+23+2026&version=202409.1.0&interactionCount=1&groups=C0001%3A1%2CC0002%3A0%2CC0003%3A1%2CC0004%3A0";
    let out = with_cookie(&g, ot).await;
    assert!(
        out.contains("<iframe src=\"https://www.youtube.com/embed/x\">"),
        "{out}"
    );
    assert!(
        out.contains("data-consentgate-service=\"google-analytics\""),
        "{out}"
    );
    // Analytics granted, video refused.
    let ot2 = ot
        .replace("C0002%3A0", "C0002%3A1")
        .replace("C0003%3A1", "C0003%3A0");
    let out = with_cookie(&g, &ot2).await;
    assert!(
        out.contains("data-consentgate-service=\"youtube\""),
        "{out}"
    );
    assert!(
        out.contains("<script src=\"https://www.googletagmanager.com/gtag/js?id=G-1\">"),
        "{out}"
    );
}

#[tokio::test]
async fn missing_malformed_or_default_foreign_cookies_grant_nothing() {
    let g = onetrust_site().await;
    for cookie in [
        "other=1",
        "OptanonConsent=%E0%A4%A",
        "OptanonConsent=groups=C0003",
        // Banner defaults before any interaction are not a decision.
        "OptanonConsent=interactionCount=0&groups=C0001%3A1%2CC0003%3A1",
    ] {
        let out = with_cookie(&g, cookie).await;
        assert!(
            out.contains("data-consentgate-service=\"youtube\""),
            "{cookie}: {out}"
        );
        assert!(
            out.contains("data-consentgate-service=\"google-analytics\""),
            "{cookie}: {out}"
        );
    }
}

#[tokio::test]
async fn state_endpoint_reports_the_foreign_decision() {
    let g = onetrust_site().await;
    let ot = "OptanonConsent=interactionCount=2&groups=C0001%3A1%2CC0003%3A1";
    let got = fetch_req(g.addr, get(g.addr, "/__consent/state").header("cookie", ot)).await;
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(v["decided"], true);
    assert_eq!(v["services"]["youtube"], true);
    assert_eq!(v["services"]["google-analytics"], false);
}
