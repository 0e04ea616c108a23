//! What slips past script tags, over real TCP: tracking cookies both ways, first-party beacon
//! endpoints, hyperlink auditing, referrers.

mod common;

use http_body_util::Full;

use common::*;

#[tokio::test]
async fn tracking_set_cookies_are_dropped_until_consent() {
    let o = origin(|_| {
        OriginResponse::html("<p>x</p>")
            .header(
                "set-cookie",
                "_ga=GA1.1.123; Path=/; Domain=example.com; Max-Age=63072000",
            )
            .header("set-cookie", "_ga_ABC123=GS1.1; Path=/")
            .header("set-cookie", "_fbp=fb.1.1; Path=/")
            .header("set-cookie", "session=s1; HttpOnly; Path=/")
    })
    .await;
    let g = gate(o.addr).await;
    let names = |got: &Got| -> Vec<String> {
        got.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split('=').next().unwrap().to_string())
            .collect()
    };
    let got = fetch(g.addr, "/").await;
    assert_eq!(
        names(&got),
        vec!["session"],
        "only the essential cookie before consent"
    );
    let ga_only = consent(g.addr, "action=save&service=google-analytics").await;
    let got = fetch_with_cookie(g.addr, "/", &ga_only).await;
    assert_eq!(names(&got), vec!["_ga", "_ga_ABC123", "session"]);
    let all = consent(g.addr, "action=accept-all").await;
    assert_eq!(names(&fetch_with_cookie(g.addr, "/", &all).await).len(), 4);
    // Non-HTML responses are filtered too.
    let o = origin(|_| OriginResponse {
        status: 200,
        headers: vec![
            ("content-type".into(), "image/gif".into()),
            ("set-cookie".into(), "_fbp=fb.1; Path=/".into()),
        ],
        body: OriginBody::Full(b"GIF89a".to_vec()),
    })
    .await;
    let g = gate(o.addr).await;
    let got = fetch(g.addr, "/p.gif").await;
    assert!(got.header("set-cookie").is_none());
    assert_eq!(got.body, b"GIF89a");
}

#[tokio::test]
async fn the_origin_never_reads_refused_tracking_cookies() {
    let o = origin(|_| OriginResponse::html("<p>x</p>")).await;
    let g = gate(o.addr).await;
    fetch_with_cookie(
        g.addr,
        "/",
        "session=s1; _ga=GA1.1; _ga_X=1; _fbp=fb.1; __zlcmid=z; theme=dark",
    )
    .await;
    assert_eq!(o.last().headers["cookie"], "session=s1; theme=dark");
    let ga = consent(g.addr, "action=save&service=google-analytics").await;
    fetch_with_cookie(
        g.addr,
        "/",
        &format!("{ga}; session=s1; _ga=GA1.1; _fbp=fb.1"),
    )
    .await;
    let seen = o.last().headers["cookie"].to_str().unwrap().to_string();
    assert!(
        seen.contains("_ga=GA1.1") && seen.contains("session=s1"),
        "{seen}"
    );
    assert!(!seen.contains("_fbp"), "{seen}");
}

#[tokio::test]
async fn first_party_beacons_are_answered_locally_until_consent() {
    let o = origin(|_| OriginResponse::html("")).await;
    let g = gate(o.addr).await;
    let got = send(
        g.addr,
        http::Request::post("/g/collect?v=2&tid=G-1&en=page_view")
            .header("host", "x")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, 204);
    assert_eq!(
        o.count(),
        0,
        "a beacon without consent never reaches the origin"
    );
    // A configured beacon path of another service.
    let g2 = gate_with(o.addr, |c| {
        let i = c.catalog.index_of("meta-pixel").unwrap();
        let mut s = c.catalog.get(i).unwrap().clone();
        s.beacon_paths.push("/tr".into());
        c.catalog.upsert(s);
    })
    .await;
    assert_eq!(fetch(g2.addr, "/tr?id=1&ev=PageView").await.status, 204);
    assert_eq!(fetch(g2.addr, "/tracks").await.status, 200, "segment-aware");
    assert_eq!(o.count(), 1);
    // With consent the beacon is forwarded.
    let ga = consent(g.addr, "action=save&service=google-analytics").await;
    let got = fetch_with_cookie(g.addr, "/g/collect?v=2", &ga).await;
    assert_eq!(got.status, 200);
    assert_eq!(o.count(), 2);
}

#[tokio::test]
async fn pings_are_dropped_and_a_referrer_policy_is_set() {
    let o = origin(|s| {
        let r = OriginResponse::html(
            "<a href=\"/next\" ping=\"/audit https://www.facebook.com/tr\">n</a>",
        );
        if s.uri == "/own-policy" {
            r.header("referrer-policy", "no-referrer")
        } else {
            r
        }
    })
    .await;
    let g = gate(o.addr).await;
    let got = fetch(g.addr, "/").await;
    assert_eq!(got.text(), "<a href=\"/next\">n</a>");
    assert_eq!(
        got.header("referrer-policy"),
        Some("strict-origin-when-cross-origin")
    );
    assert_eq!(
        fetch(g.addr, "/own-policy").await.header("referrer-policy"),
        Some("no-referrer")
    );
    let g = gate_with(o.addr, |c| c.consent.referrer_policy = None).await;
    assert!(fetch(g.addr, "/").await.header("referrer-policy").is_none());
}
