//! Proof of consent over real TCP: a receipt for every decision, no cookie without one, the
//! visitor's own export, the admin API (access, erasure, evidence export, stats), retention, and
//! `consentgate receipts verify` on a tampered store.

mod common;

use std::process::Command;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use common::*;
use consentgate::config::ReceiptStore;
use consentgate::receipts::{SqliteStore, Store};

const TOKEN: &str = "admin-token-for-receipt-tests-01";

async fn site_with(
    db: std::path::PathBuf,
    tweak: impl FnOnce(&mut consentgate::config::Config),
) -> (Origin, Gate) {
    let o = origin(|_| OriginResponse::html("<p>x</p>")).await;
    let g = gate_with(o.addr, move |c| {
        c.receipts.store = ReceiptStore::Sqlite(db);
        tweak(c);
    })
    .await;
    (o, g)
}

async fn decide(g: &Gate, form: &str, cookie: Option<&str>, extra: &[(&str, &str)]) -> Got {
    let host = "shop.example";
    let mut b = Request::post("/__consent")
        .header("host", host)
        .header("origin", format!("http://{host}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        )
        .header("accept-language", "de");
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    send(
        g.addr,
        b.body(Full::new(Bytes::from(form.to_string()))).unwrap(),
    )
    .await
}

fn cookie_of(got: &Got) -> String {
    got.header("set-cookie")
        .expect("a cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// The receipt id inside a consent cookie (its payload is `issued|version|receipt|ids`).
fn receipt_id(_g: &Gate, cookie: &str) -> String {
    let value = cookie.split_once('=').unwrap().1;
    let payload = value.split('.').nth(1).unwrap();
    use base64::Engine;
    let text = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    text.split('|').nth(2).unwrap().to_string()
}

#[tokio::test]
async fn every_decision_is_a_receipt_linked_to_the_previous_one() {
    let db = temp_db();
    let (_o, g) = site_with(db.clone(), |_| {}).await;
    let first = decide(&g, "action=accept-all", None, &[("sec-gpc", "1")]).await;
    assert_eq!(first.status, 303);
    let c1 = cookie_of(&first);
    let id1 = receipt_id(&g, &c1);
    let second = decide(&g, "action=save&service=youtube", Some(&c1), &[]).await;
    let c2 = cookie_of(&second);
    let id2 = receipt_id(&g, &c2);
    let third = decide(&g, "action=grant&service=zendesk-chat", Some(&c2), &[]).await;
    let id3 = receipt_id(&g, &cookie_of(&third));

    let mut s = SqliteStore::open(&db).unwrap();
    let r1 = s.get(&id1).unwrap().unwrap();
    assert_eq!(r1.method.as_str(), "accept-all");
    assert_eq!(r1.site, "shop.example");
    assert_eq!(r1.lang, "de");
    assert_eq!(r1.user_agent, "Firefox");
    assert!(r1.gpc);
    assert!(r1.ip.is_none(), "no IP by default");
    assert!(r1.granted.contains(&"meta-pixel".to_string()) && r1.refused.is_empty());
    let r2 = s.get(&id2).unwrap().unwrap();
    assert_eq!(
        r2.method.as_str(),
        "revoke",
        "withdrawing consent is recorded as such"
    );
    assert_eq!(r2.granted, vec!["youtube"]);
    assert!(r2.refused.contains(&"meta-pixel".to_string()));
    assert_eq!(r2.previous_receipt.as_deref(), Some(id1.as_str()));
    assert_eq!(r2.prev_hash, r1.hash, "one chain per site");
    let r3 = s.get(&id3).unwrap().unwrap();
    assert_eq!(r3.method.as_str(), "grant");
    assert_eq!(r3.granted, vec!["youtube", "zendesk-chat"], "catalog order");
    assert_eq!(
        consentgate::receipts::verify(&mut s, "shop.example").unwrap(),
        consentgate::receipts::Verified::Intact { receipts: 3 }
    );

    // The visitor downloads their own receipts with their cookie.
    let got = fetch_with_cookie(g.addr, "/__consent/receipt", &cookie_of(&third)).await;
    assert_eq!(
        got.header("content-disposition"),
        Some("attachment; filename=\"consent-receipts.json\"")
    );
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    let ids: Vec<&str> = v["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id3.as_str(), id2.as_str(), id1.as_str()]);
    assert!(v["receipts"][0]["utc"].as_str().unwrap().ends_with('Z'));
    let none: serde_json::Value =
        serde_json::from_slice(&fetch(g.addr, "/__consent/receipt").await.body).unwrap();
    assert_eq!(none["receipts"], serde_json::json!([]));
}

#[tokio::test]
async fn truncated_ip_when_configured() {
    let db = temp_db();
    let (_o, g) = site_with(db.clone(), |c| c.receipts.truncated_ip = true).await;
    let got = decide(&g, "action=reject-all", None, &[]).await;
    let id = receipt_id(&g, &cookie_of(&got));
    let r = SqliteStore::open(&db).unwrap().get(&id).unwrap().unwrap();
    assert_eq!(r.ip.as_deref(), Some("127.0.0.0/24"));
}

#[tokio::test]
async fn no_consent_without_proof_when_the_store_is_down() {
    // A database path that cannot exist: every open fails.
    let (o, g) = site_with("/dev/null/not-a-dir/receipts.db".into(), |_| {}).await;
    let got = decide(&g, "action=accept-all", None, &[]).await;
    assert_eq!(got.status, 503);
    assert!(
        got.header("set-cookie").is_none(),
        "no cookie without a receipt"
    );
    assert!(got.text().contains("could not be saved"));
    // Not ready for consent decisions, though alive.
    let a = admin(&g).await;
    assert_eq!(admin_req(a, "GET", "/readyz").await.status, 503);
    assert_eq!(admin_req(a, "GET", "/healthz").await.status, 200);
    // Browsing is unaffected.
    assert_eq!(fetch(g.addr, "/").await.status, 200);
    assert_eq!(o.count(), 1);
}

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

async fn admin_req(a: std::net::SocketAddr, method: &str, path: &str) -> Got {
    send(
        a,
        Request::builder()
            .method(method)
            .uri(path)
            .header("host", "admin")
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Full::default())
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn admin_access_erasure_export_and_stats() {
    let db = temp_db();
    let (_o, g) = site_with(db.clone(), |_| {}).await;
    let a = admin(&g).await;
    let mut ids = Vec::new();
    for form in [
        "action=accept-all",
        "action=reject-all",
        "action=save&service=youtube",
    ] {
        ids.push(receipt_id(
            &g,
            &cookie_of(&decide(&g, form, None, &[]).await),
        ));
    }
    assert_eq!(admin_req(a, "GET", "/readyz").await.text(), "ready\n");
    // Access.
    let got = admin_req(a, "GET", &format!("/receipts/{}", ids[2])).await;
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(v["granted"], serde_json::json!(["youtube"]));
    assert_eq!(admin_req(a, "GET", "/receipts/nope").await.status, 404);
    // Unauthenticated.
    let got = fetch_req(a, get(a, &format!("/receipts/{}", ids[2]))).await;
    assert_eq!(got.status, 401);
    // Erasure leaves a tombstone; the chain still verifies.
    assert_eq!(
        admin_req(a, "DELETE", &format!("/receipts/{}", ids[1]))
            .await
            .status,
        204
    );
    let v: serde_json::Value = serde_json::from_slice(
        &admin_req(a, "GET", &format!("/receipts/{}", ids[1]))
            .await
            .body,
    )
    .unwrap();
    assert_eq!(v["erased"], true);
    assert_eq!(v["user_agent"], "");
    let mut s = SqliteStore::open(&db).unwrap();
    assert_eq!(
        consentgate::receipts::verify(&mut s, "shop.example").unwrap(),
        consentgate::receipts::Verified::Intact { receipts: 3 }
    );
    // Evidence export, CSV and JSON, with filters.
    let csv = admin_req(a, "GET", "/receipts?site=shop.example&format=csv").await;
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let text = csv.text();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.starts_with("id,utc,site,"));
    let json = admin_req(a, "GET", "/receipts?format=json&from=2000-01-01").await;
    let v: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    let future = admin_req(a, "GET", "/receipts?from=2999-01-01").await;
    assert_eq!(future.text(), "[]");
    assert_eq!(
        admin_req(a, "GET", "/receipts?from=yesterday").await.status,
        400
    );
    // Stats: consent rate per service.
    let v: serde_json::Value =
        serde_json::from_slice(&admin_req(a, "GET", "/stats").await.body).unwrap();
    assert_eq!(v["services"]["youtube"]["granted"], 2);
    assert_eq!(v["services"]["meta-pixel"]["granted"], 1);
    assert_eq!(
        v["days"][0]["decisions"], 2,
        "the erased receipt is not counted: {v}"
    );
}

#[tokio::test]
async fn retention_purges_old_receipts_and_the_chain_still_verifies() {
    let db = temp_db();
    let (_o, g) = site_with(db.clone(), |c| {
        c.receipts.retention = std::time::Duration::from_secs(86_400)
    })
    .await;
    for _ in 0..3 {
        decide(&g, "action=reject-all", None, &[]).await;
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    // Age the first two receipts by two days.
    conn.execute(
        "UPDATE receipts SET ts_ms = ts_ms - 172800000 WHERE seq <= 2",
        [],
    )
    .unwrap();
    // Their hashes no longer match (we edited them), but they are about to be purged.
    assert_eq!(g.proxy.purge_expired().await.unwrap(), 2);
    let mut s = SqliteStore::open(&db).unwrap();
    assert_eq!(
        consentgate::receipts::verify(&mut s, "shop.example").unwrap(),
        consentgate::receipts::Verified::Intact { receipts: 1 }
    );
}

#[tokio::test]
async fn receipts_verify_reports_the_first_broken_link() {
    let db = temp_db();
    let (_o, g) = site_with(db.clone(), |_| {}).await;
    let mut ids = Vec::new();
    for form in [
        "action=accept-all",
        "action=reject-all",
        "action=save&service=youtube",
        "action=reject-all",
    ] {
        ids.push(receipt_id(
            &g,
            &cookie_of(&decide(&g, form, None, &[]).await),
        ));
    }
    let cfg = db.with_file_name("verify.toml");
    std::fs::write(
        &cfg,
        format!(
            "[receipts]\nstore = \"sqlite\"\npath = {:?}\n",
            db.display().to_string()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_consentgate");
    let out = Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .args(["receipts", "verify"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("shop.example: intact (4 receipts)"));
    // Someone rewrites history: the reject-all becomes an accept-all.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE receipts SET method = 'accept-all' WHERE id = ?1",
        [&ids[1]],
    )
    .unwrap();
    let out = Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .args(["receipts", "verify", "--site", "shop.example"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("BROKEN at receipt {}", ids[1])),
        "{text}"
    );
}
