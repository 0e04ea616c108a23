//! The visitor's consent experience over real TCP: banner injection, settings control, chat
//! facade, languages, GPC, revocation, policy version, assets.

mod common;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use common::*;

const PAGE: &str = "<!doctype html><html><head><title>t</title></head><body><p>shop</p><script src=\"https://static.zdassets.com/ekr/snippet.js?key=k\"></script></body></html>";

fn doc(addr: std::net::SocketAddr, path: &str) -> http::request::Builder {
    get(addr, path)
        .header("sec-fetch-dest", "document")
        .header("accept", "text/html")
}

async fn page(addr: std::net::SocketAddr, cookie: Option<&str>, extra: &[(&str, &str)]) -> Got {
    let mut b = doc(addr, "/");
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    send(addr, b.body(Full::default()).unwrap()).await
}

async fn site() -> (Origin, Gate) {
    let o = origin(|_| OriginResponse::html(PAGE)).await;
    let g = gate(o.addr).await;
    (o, g)
}

#[tokio::test]
async fn first_visit_gets_the_banner_before_body_end() {
    let (_o, g) = site().await;
    let got = page(g.addr, None, &[]).await;
    let html = got.text();
    let banner = html
        .find("data-consentgate=\"banner\"")
        .expect("banner injected");
    assert!(banner > html.find("<p>shop</p>").unwrap());
    assert!(
        html.ends_with("</body></html>"),
        "injected before </body>: {html}"
    );
    for a in ["accept-all", "reject-all", "save"] {
        assert!(
            html.contains(&format!("data-consentgate-action=\"{a}\"")),
            "{a}"
        );
    }
    assert!(html.contains("<form class=\"cg-form\" method=\"post\" action=\"/__consent\">"));
    assert!(!html.contains(" checked"), "nothing pre-checked");
    assert!(!html.contains("data-consentgate-action=\"settings\""));
    assert!(html.contains("data-consentgate-open=\"true\""));
    assert!(
        !html.contains("data-consentgate=\"receipts\""),
        "no receipts before a decision"
    );
    // The chat widget on the page is replaced by a facade.
    assert!(html.contains("data-consentgate-placeholder=\"zendesk-chat\""));
    assert!(html.contains("sends data to Zendesk, Inc., United States."));
    // Assets come from our own endpoint, cache-busted.
    assert!(html.contains("/__consent/assets/consentgate.js?v="));
    assert!(html.contains("/__consent/assets/consentgate.css?v="));
}

#[tokio::test]
async fn fragments_and_subresources_get_no_banner() {
    let (_o, g) = site().await;
    let got = fetch_req(g.addr, get(g.addr, "/").header("sec-fetch-dest", "empty")).await;
    assert!(!got.text().contains("data-consentgate=\"banner\""));
    // Still rewritten: blocking does not depend on where the HTML goes.
    assert!(got
        .text()
        .contains("data-consentgate-service=\"zendesk-chat\""));
}

#[tokio::test]
async fn after_a_decision_pages_carry_only_the_settings_control() {
    let (_o, g) = site().await;
    let cookie = consent(g.addr, "action=save&service=youtube").await;
    let html = page(g.addr, Some(&cookie), &[]).await.text();
    // A link to the settings page (the runtime opens the banner in place instead).
    assert!(
        html.contains(r#"<a href="/__consent/settings" class="cg-settings cg-left" aria-haspopup="dialog" data-consentgate-action="settings">"#),
        "{html}"
    );
    assert!(!html.contains("data-consentgate=\"banner\""), "{html}");
}

#[tokio::test]
async fn the_settings_fragment_shows_the_choices_in_force() {
    let (_o, g) = site().await;
    let cookie = consent(g.addr, "action=save&service=youtube").await;
    let got = fetch_with_cookie(g.addr, "/__consent/banner", &cookie).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(got.header("cache-control"), Some("no-store"));
    let html = got.text();
    assert!(html.starts_with("<div id=\"consentgate-banner\""), "{html}");
    assert!(html.contains("data-consentgate-open=\"false\""));
    assert!(html.contains("data-consentgate-decided=\"true\""));
    // The settings view links to the visitor's own receipts.
    assert!(
        html.contains("href=\"/__consent/receipt\" download data-consentgate=\"receipts\""),
        "{html}"
    );
    assert!(html.contains("value=\"youtube\" data-consentgate-service=\"youtube\" checked"));
    assert_eq!(html.matches(" checked").count(), 1);
    // Before any decision it is the open, unticked banner.
    let html = fetch(g.addr, "/__consent/banner").await.text();
    assert!(html.contains("data-consentgate-open=\"true\""));
    assert!(!html.contains(" checked"));
}

#[tokio::test]
async fn the_settings_page_works_without_javascript_and_returns_to_the_page() {
    let (_o, g) = site().await;
    let cookie = consent(g.addr, "action=accept-all").await;
    let referer = format!("http://{}/shop/item?id=7", g.addr);
    let got = send(
        g.addr,
        doc(g.addr, "/__consent/settings")
            .header("cookie", &cookie)
            .header("referer", &referer)
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("cache-control"), Some("no-store"));
    let html = got.text();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains("data-consentgate-open=\"true\""), "{html}");
    assert!(html.contains(r#"<input type="hidden" name="return" value="/shop/item?id=7">"#));
    // No runtime: the plain form and its redirect are the whole flow.
    assert!(!html.contains("consentgate.js"));

    // Refusing from the settings page goes back to the page the control was on.
    let post = |form: &'static str| {
        Request::post("/__consent")
            .header("host", format!("{}", g.addr))
            .header("origin", format!("http://{}", g.addr))
            .header("referer", format!("http://{}/__consent/settings", g.addr))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))
            .unwrap()
    };
    let got = send(
        g.addr,
        post("action=reject-all&return=%2Fshop%2Fitem%3Fid%3D7"),
    )
    .await;
    assert_eq!(got.status, 303);
    assert_eq!(got.header("location"), Some("/shop/item?id=7"));
    // A return field that leaves the site is ignored (the Referer is used).
    for evil in [
        "%2F%2Fevil.test%2F",
        "https%3A%2F%2Fevil.test%2F",
        "%2F%5Cevil.test",
    ] {
        let form: &'static str =
            Box::leak(format!("action=reject-all&return={evil}").into_boxed_str());
        let got = send(g.addr, post(form)).await;
        assert_eq!(
            got.header("location"),
            Some("/__consent/settings"),
            "{evil}"
        );
    }
    // Opened from the settings page itself (or without a Referer), it returns home.
    let html = fetch_with_cookie(g.addr, "/__consent/settings", &cookie)
        .await
        .text();
    assert!(html.contains(r#"<input type="hidden" name="return" value="/">"#));
}

#[tokio::test]
async fn full_consent_page_is_the_origins_plus_our_control() {
    let (_o, g) = site().await;
    let cookie = consent(g.addr, "action=accept-all").await;
    let html = page(g.addr, Some(&cookie), &[]).await.text();
    // The origin's bytes, then the control at the document end (no element handlers at all:
    // the parser puts it in the body).
    let control = html
        .strip_prefix(PAGE)
        .unwrap_or_else(|| panic!("not the origin's page first: {html}"));
    assert!(
        control.starts_with("<link rel=\"stylesheet\" href=\"/__consent/assets"),
        "{control}"
    );
    assert!(
        control.contains("data-consentgate-action=\"settings\""),
        "{control}"
    );
    // The banner itself stays on the server until the visitor opens the settings.
    assert!(
        control.len() < 1024,
        "{} bytes added: {control}",
        control.len()
    );
    assert!(
        !html.contains("data-consentgate-placeholder"),
        "no facade once allowed"
    );
}

#[tokio::test]
async fn banner_can_be_switched_off() {
    let o = origin(|_| OriginResponse::html(PAGE)).await;
    let g = gate_with(o.addr, |c| c.consent.banner = false).await;
    let html = page(g.addr, None, &[]).await.text();
    assert!(!html.contains("data-consentgate=\"banner\""));
    assert!(html.contains("data-consentgate-service=\"zendesk-chat\""));
    let cookie = consent(g.addr, "action=accept-all").await;
    assert_eq!(page(g.addr, Some(&cookie), &[]).await.text(), PAGE);
}

#[tokio::test]
async fn language_follows_accept_language() {
    let (_o, g) = site().await;
    let de = page(
        g.addr,
        None,
        &[("accept-language", "de-DE,de;q=0.9,en;q=0.5")],
    )
    .await
    .text();
    assert!(de.contains("lang=\"de\""));
    assert!(de.contains("Alle ablehnen"), "German reject button");
    // Service facts are localized from the catalog too.
    let ru = page(g.addr, None, &[("accept-language", "ru")])
        .await
        .text();
    assert!(ru.contains("lang=\"ru\""));
    assert!(ru.contains("Отклонить все"));
    let other = page(g.addr, None, &[("accept-language", "ja")])
        .await
        .text();
    assert!(other.contains("lang=\"en\"") && other.contains("Reject all"));
    // Different languages never share a cached page.
    let a = page(g.addr, None, &[("accept-language", "de")]).await;
    let b = page(g.addr, None, &[("accept-language", "fr")]).await;
    assert!(a.header("etag").is_none() || a.header("etag") != b.header("etag"));
}

#[tokio::test]
async fn texts_can_be_overridden_per_site() {
    let o = origin(|_| OriginResponse::html(PAGE)).await;
    let g = gate_with(o.addr, |c| {
        let mut map = std::collections::BTreeMap::new();
        map.insert(
            "en".to_string(),
            std::collections::BTreeMap::from([(
                "accept_all".to_string(),
                "Allow everything".to_string(),
            )]),
        );
        c.languages = consentgate::i18n::Languages::new("en", &map).unwrap();
    })
    .await;
    assert!(page(g.addr, None, &[])
        .await
        .text()
        .contains("Allow everything"));
}

#[tokio::test]
async fn legacy_charset_page_gets_a_correctly_encoded_banner() {
    let body = "<html><body><p>Caf\u{e9}</p></body></html>";
    let (latin1, _, _) = encoding_rs::WINDOWS_1252.encode(body);
    let latin1 = latin1.into_owned();
    let o = origin(move |_| OriginResponse {
        status: 200,
        headers: vec![(
            "content-type".into(),
            "text/html; charset=windows-1252".into(),
        )],
        body: OriginBody::Full(latin1.clone()),
    })
    .await;
    let g = gate(o.addr).await;
    let got = page(g.addr, None, &[("accept-language", "ru")]).await;
    let (text, _, malformed) = encoding_rs::WINDOWS_1252.decode(&got.body);
    assert!(!malformed);
    assert!(text.contains("<p>Café</p>"));
    // Cyrillic has no windows-1252 bytes: it must arrive as character references, not '?'.
    assert!(
        text.contains("&#1054;") || text.contains("&#x41e;") || text.contains("&#X41E;"),
        "{}",
        &text[..400.min(text.len())]
    );
    assert!(!text.contains("??????"));
}

#[tokio::test]
async fn gpc_is_honoured_and_said() {
    let (_o, g) = site().await;
    let html = page(g.addr, None, &[("sec-gpc", "1")]).await.text();
    assert!(html.contains("data-consentgate=\"gpc\""));
    assert!(html.contains("data-consentgate-service=\"zendesk-chat\""));
    let html = page(g.addr, None, &[]).await.text();
    assert!(!html.contains("data-consentgate=\"gpc\""));
}

async fn post_json(
    addr: std::net::SocketAddr,
    form: &str,
    cookie: Option<&str>,
    host: &str,
) -> Got {
    let mut b = Request::post("/__consent")
        .header("host", host)
        .header("origin", format!("http://{host}"))
        .header("accept", "application/json")
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    send(
        addr,
        b.body(Full::new(Bytes::from(form.to_string()))).unwrap(),
    )
    .await
}

#[tokio::test]
async fn facade_grant_adds_one_service_to_earlier_choices() {
    let (_o, g) = site().await;
    let host = g.addr.to_string();
    let yt = consent(g.addr, "action=save&service=youtube").await;
    let got = post_json(
        g.addr,
        "action=grant&service=zendesk-chat",
        Some(&yt),
        &host,
    )
    .await;
    assert_eq!(got.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(v["services"]["youtube"], true);
    assert_eq!(v["services"]["zendesk-chat"], true);
    assert_eq!(v["services"]["meta-pixel"], false);
    assert_eq!(v["revoked"], serde_json::json!([]));
}

#[tokio::test]
async fn revocation_expires_the_services_cookies_on_host_and_parent_domain() {
    let (_o, g) = site().await;
    let host = "www.shop.example.com";
    let all = {
        let got = post_json(g.addr, "action=accept-all", None, host).await;
        got.header("set-cookie")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    };
    let cookies = format!("{all}; _ga=GA1.1.1; _ga_ABC123=GS1; _fbp=fb.1; session=keep");
    let got = post_json(g.addr, "action=reject-all", Some(&cookies), host).await;
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    let revoked: Vec<&str> = v["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(
        revoked.contains(&"google-analytics") && revoked.contains(&"meta-pixel"),
        "{v}"
    );
    let set: Vec<&str> = got
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    for expected in [
        "_ga=; Max-Age=0; Path=/",
        "_ga=; Max-Age=0; Path=/; Domain=example.com",
        "_ga=; Max-Age=0; Path=/; Domain=www.shop.example.com",
        "_ga_ABC123=; Max-Age=0; Path=/; Domain=example.com",
        "_fbp=; Max-Age=0; Path=/; Domain=example.com",
    ] {
        assert!(set.contains(&expected), "{expected} missing in {set:#?}");
    }
    assert!(
        !set.iter().any(|c| c.starts_with("session=")),
        "essential cookies are never touched"
    );
    assert!(
        set[0].starts_with("consentgate="),
        "the new decision comes first: {set:?}"
    );
    // Without an earlier grant nothing is revoked, nothing expired.
    let got = post_json(g.addr, "action=reject-all", None, host).await;
    assert_eq!(got.headers.get_all("set-cookie").iter().count(), 1);
}

#[tokio::test]
async fn a_changed_policy_asks_again() {
    let (_o, g) = site().await;
    let cookie = consent(g.addr, "action=accept-all").await;
    let o2 = origin(|_| OriginResponse::html(PAGE)).await;
    // Same key, different texts: a different policy version.
    let g2 = gate_with(o2.addr, |c| {
        let mut map = std::collections::BTreeMap::new();
        map.insert(
            "en".to_string(),
            std::collections::BTreeMap::from([(
                "banner_intro".to_string(),
                "New wording.".to_string(),
            )]),
        );
        c.languages = consentgate::i18n::Languages::new("en", &map).unwrap();
    })
    .await;
    let html = page(g2.addr, Some(&cookie), &[]).await.text();
    assert!(
        html.contains("data-consentgate-open=\"true\""),
        "asked again"
    );
    assert!(
        html.contains("data-consentgate-service=\"zendesk-chat\""),
        "and blocked meanwhile"
    );
    // The same cookie on the unchanged proxy still holds.
    let html = page(g.addr, Some(&cookie), &[]).await.text();
    assert!(html.contains("data-consentgate-action=\"settings\""));
    assert!(!html.contains("data-consentgate=\"banner\""));
}

#[tokio::test]
async fn assets_are_served_with_long_lived_cache_headers() {
    let (o, g) = site().await;
    for (path, ctype) in [
        (
            "/__consent/assets/consentgate.js",
            "text/javascript; charset=utf-8",
        ),
        (
            "/__consent/assets/consentgate.css",
            "text/css; charset=utf-8",
        ),
    ] {
        let got = fetch(g.addr, path).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("content-type"), Some(ctype));
        assert_eq!(
            got.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert!(!got.body.is_empty());
    }
    assert_eq!(
        fetch(g.addr, "/__consent/assets/other.js").await.status,
        404
    );
    assert_eq!(o.count(), 0);
}

#[tokio::test]
async fn the_banner_offers_and_accept_all_grants_only_the_sites_services() {
    let o = origin(|_| OriginResponse::html(PAGE)).await;
    let g = gate_with(o.addr, |c| {
        c.consent.shown = Some(vec![
            c.catalog.index_of("youtube").unwrap(),
            c.catalog.index_of("zendesk-chat").unwrap(),
        ]);
    })
    .await;
    let html = page(g.addr, None, &[]).await.text();
    assert_eq!(html.matches("type=\"checkbox\"").count(), 2, "{html}");
    let all = consent(g.addr, "action=accept-all").await;
    let v: serde_json::Value = serde_json::from_slice(
        &fetch_with_cookie(g.addr, "/__consent/state", &all)
            .await
            .body,
    )
    .unwrap();
    assert_eq!(v["services"]["youtube"], true);
    assert_eq!(v["services"]["zendesk-chat"], true);
    assert_eq!(
        v["services"]["meta-pixel"], false,
        "never shown, never granted"
    );
}

#[tokio::test]
async fn the_privacy_statement_is_served_in_the_visitors_language() {
    let (o, g) = site().await;
    let got = fetch_req(
        g.addr,
        get(g.addr, "/__consent/policy").header("accept-language", "fr"),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some("text/html; charset=utf-8"));
    let html = got.text();
    assert!(html.contains("<html lang=\"fr\">"));
    assert!(html.contains("<h2>Zendesk Chat</h2>"));
    assert_eq!(o.count(), 0);
}
