//! Many sites in one process, over real TCP: Host picks the site (exact, `*.` pattern,
//! default, 421 without one), each site keeps its own upstream and settings, several origin
//! addresses are balanced round-robin with passive health, and HTTP/2 to the origin.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use common::*;
use consentgate::config::Config;
use consentgate::proxy::{serve_current, Sites};

const PAGE: &str = "<html><head></head><body><h1>shop</h1>\
    <script src=\"https://www.googletagmanager.com/gtag/js?id=G-1\"></script></body></html>";

async fn start(text: &str) -> (SocketAddr, Arc<Sites>) {
    let config = Config::parse(text).unwrap_or_else(|e| panic!("{e}"));
    let (sites, _) = Sites::new(config).unwrap();
    let sites = Arc::new(sites);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = sites.clone();
    tokio::spawn(serve_current(
        Arc::new(move || s.clone()),
        listener,
        std::future::pending(),
    ));
    (addr, sites)
}

fn page_request(_addr: SocketAddr, host: &str, path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", host)
        .header("sec-fetch-dest", "document")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// An address nothing listens on (bound, then released).
async fn dead_address() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn host_picks_the_site_and_each_keeps_its_settings() {
    let a = origin(|_| OriginResponse::html(PAGE)).await;
    let b = origin(|_| OriginResponse::html(PAGE)).await;
    let c = origin(|_| OriginResponse::html(PAGE)).await;
    let text = format!(
        r#"
[consent]
key = "{KEY}"
[receipts]
store = "off"

[[site]]
name = "shop"
hosts = ["shop.test", "www.shop.test"]
upstream.url = "http://{a}"
csp.mode = "enforce"

[[site]]
name = "blog"
hosts = ["*.blog.test"]
upstream.url = "http://{b}"
consent.banner = false
csp.mode = "off"

[[site]]
name = "other"
default = true
upstream.url = "http://{c}"
"#,
        a = a.addr,
        b = b.addr,
        c = c.addr
    );
    let (addr, sites) = start(&text).await;

    let shop = send(addr, page_request(addr, "WWW.shop.test:8080", "/p")).await;
    assert_eq!(shop.status, 200);
    assert_eq!(a.count(), 1, "shop.test goes to the shop's origin");
    assert_eq!(a.last().headers["host"], "WWW.shop.test:8080");
    assert!(shop.header("content-security-policy").is_some());
    assert!(shop.text().contains("data-consentgate=\"banner\""));
    assert!(!shop
        .text()
        .contains(" src=\"https://www.googletagmanager.com"));

    let blog = send(addr, page_request(addr, "de.news.blog.test", "/")).await;
    assert_eq!(blog.status, 200);
    assert_eq!(b.count(), 1, "*.blog.test goes to the blog's origin");
    assert!(blog.header("content-security-policy").is_none());
    assert!(blog.header("content-security-policy-report-only").is_none());
    assert!(!blog.text().contains("data-consentgate=\"banner\""));
    // Its own settings, the same promise: the tracker is still blocked.
    assert!(!blog
        .text()
        .contains(" src=\"https://www.googletagmanager.com"));

    let other = send(addr, page_request(addr, "unknown.test", "/")).await;
    assert_eq!(other.status, 200);
    assert_eq!(c.count(), 1, "an unknown host goes to the default site");
    // The bare domain is not covered by `*.blog.test`.
    send(addr, page_request(addr, "blog.test", "/")).await;
    assert_eq!((b.count(), c.count()), (1, 2));

    let metrics = sites.primary().metrics.render();
    for site in ["shop", "blog", "other"] {
        assert!(
            metrics.contains(&format!(
                "consentgate_pages_rewritten_total{{site=\"{site}\""
            )),
            "{site} missing in\n{metrics}"
        );
    }
}

#[tokio::test]
async fn a_decision_on_one_site_is_no_decision_on_another() {
    let a = origin(|_| OriginResponse::html(PAGE)).await;
    let text = format!(
        r#"
[upstream]
url = "http://{a}"
[receipts]
store = "off"
[[site]]
name = "one"
hosts = ["one.test"]
consent.key = "{KEY}"
[[site]]
name = "two"
hosts = ["two.test"]
consent.key = "another-key-another-key-another-key-1"
"#,
        a = a.addr
    );
    let (addr, _) = start(&text).await;
    let req = Request::post("/__consent")
        .header("host", "one.test")
        .header("origin", "http://one.test")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(b"action=accept-all")))
        .unwrap();
    let r = send(addr, req).await;
    assert_eq!(r.status, 303);
    let cookie = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let with_cookie = |host: &str| {
        Request::get("/")
            .header("host", host)
            .header("cookie", cookie.clone())
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let one = send(addr, with_cookie("one.test")).await;
    assert!(one
        .text()
        .contains(" src=\"https://www.googletagmanager.com/gtag/js?id=G-1\""));
    // Signed with site one's key: worthless on site two.
    let two = send(addr, with_cookie("two.test")).await;
    assert!(!two
        .text()
        .contains(" src=\"https://www.googletagmanager.com/gtag/js?id=G-1\""));
}

#[tokio::test]
async fn without_a_default_site_an_unknown_host_gets_421() {
    let a = origin(|_| OriginResponse::html(PAGE)).await;
    let text = format!(
        "[receipts]\nstore = \"off\"\n[consent]\nkey = \"{KEY}\"\n[[site]]\nname = \"a\"\nhosts = [\"a.test\"]\nupstream.url = \"http://{}\"\n",
        a.addr
    );
    let (addr, sites) = start(&text).await;
    let r = send(addr, page_request(addr, "evil.test", "/")).await;
    assert_eq!(r.status, 421);
    assert_eq!(
        a.count(),
        0,
        "nothing reaches an origin for an unknown host"
    );
    let r = send(addr, page_request(addr, "a.test", "/")).await;
    assert_eq!(r.status, 200);
    assert!(sites.primary().metrics.render().contains(
        "consentgate_requests_total{site=\"_unmatched\",method=\"GET\",status_class=\"4xx\"} 1"
    ));
}

#[tokio::test]
async fn addresses_are_balanced_and_a_dead_one_is_left_out() {
    let a = origin(|_| OriginResponse::html("<p>a</p>")).await;
    let b = origin(|_| OriginResponse::html("<p>b</p>")).await;
    let dead = dead_address().await;
    let text = format!(
        "[consent]\nkey = \"{KEY}\"\n[receipts]\nstore = \"off\"\n[upstream]\nurl = [\"http://{}\", \"http://{dead}\", \"http://{}\"]\nfail_timeout_secs = 60\n",
        a.addr, b.addr
    );
    let (addr, sites) = start(&text).await;
    for i in 0..12 {
        let r = send(addr, page_request(addr, "shop.test", &format!("/{i}"))).await;
        assert_eq!(
            r.status, 200,
            "GET {i}: a dead address costs a retry, not a 502"
        );
    }
    assert_eq!(a.count() + b.count(), 12);
    assert!(
        a.count() >= 4 && b.count() >= 4,
        "a {} b {}",
        a.count(),
        b.count()
    );
    // Requests with a body are not retried, but the dead address is out by now.
    for i in 0..6 {
        let req = Request::post("/form")
            .header("host", "shop.test")
            .body(Full::new(Bytes::from(format!("n={i}"))))
            .unwrap();
        assert_eq!(send(addr, req).await.status, 200, "POST {i}");
    }
    assert_eq!(a.count() + b.count(), 18);
    let metrics = sites.primary().metrics.render();
    assert!(
        metrics.contains(&format!(
            "consentgate_upstream_ejections_total{{site=\"default\",upstream=\"http://{dead}/\"}} 1"
        )),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_left_out_address_gets_traffic_again_after_the_fail_timeout() {
    let a = origin(|_| OriginResponse::html("<p>a</p>")).await;
    let dead = dead_address().await;
    let text = format!(
        "[consent]\nkey = \"{KEY}\"\n[receipts]\nstore = \"off\"\n[upstream]\nurl = [\"http://{dead}\", \"http://{}\"]\nfail_timeout_secs = 1\n",
        a.addr
    );
    let (addr, _) = start(&text).await;
    for _ in 0..3 {
        assert_eq!(
            send(addr, page_request(addr, "x.test", "/")).await.status,
            200
        );
    }
    assert_eq!(a.count(), 3);
    // The address comes back to life; after the fail timeout it is tried again.
    let revived = revive(dead).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for _ in 0..4 {
        assert_eq!(
            send(addr, page_request(addr, "x.test", "/")).await.status,
            200
        );
    }
    assert!(revived.count() >= 1, "the revived address got no request");
}

/// An origin on a given (released) address.
async fn revive(addr: SocketAddr) -> Origin {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    origin_on(listener, |_| OriginResponse::html("<p>revived</p>")).await
}

#[tokio::test]
async fn when_every_address_is_down_the_answer_is_a_502() {
    let (d1, d2) = (dead_address().await, dead_address().await);
    let text = format!(
        "[consent]\nkey = \"{KEY}\"\n[receipts]\nstore = \"off\"\n[upstream]\nurl = [\"http://{d1}\", \"http://{d2}\"]\n"
    );
    let (addr, sites) = start(&text).await;
    let r = send(addr, page_request(addr, "x.test", "/")).await;
    assert_eq!(r.status, 502);
    let metrics = sites.primary().metrics.render();
    assert!(
        metrics.contains("consentgate_upstream_errors_total{site=\"default\",kind=\"connect\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn http2_to_the_origin_with_prior_knowledge() {
    let a = origin(|_| OriginResponse::html(PAGE)).await;
    let text = format!(
        "[consent]\nkey = \"{KEY}\"\n[receipts]\nstore = \"off\"\n[upstream]\nurl = \"http://{}\"\nprotocol = \"http2\"\n",
        a.addr
    );
    let (addr, _) = start(&text).await;
    for _ in 0..3 {
        let r = send(addr, page_request(addr, "shop.test", "/")).await;
        assert_eq!(r.status, 200);
        assert!(!r.text().contains(" src=\"https://www.googletagmanager.com"));
        assert!(r
            .text()
            .contains("data-consentgate-src=\"https://www.googletagmanager.com"));
    }
    let seen = a.last();
    assert_eq!(seen.version, http::Version::HTTP_2);
    assert_eq!(seen.headers["host"], "shop.test");
    assert_eq!(
        a.connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one multiplexed connection"
    );
}

#[tokio::test]
async fn a_reload_adds_a_site_and_an_invalid_one_is_refused() {
    use consentgate::server::{ConfigSource, Server};
    let a = origin(|_| OriginResponse::html("<p>a</p>")).await;
    let b = origin(|_| OriginResponse::html("<p>b</p>")).await;
    let dir = temp_db().parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sites.toml");
    let site = |name: &str, host: &str, o: SocketAddr| {
        format!(
            "[[site]]\nname = \"{name}\"\nhosts = [\"{host}\"]\nupstream.url = \"http://{o}\"\n"
        )
    };
    let head = format!("[consent]\nkey = \"{KEY}\"\n[receipts]\nstore = \"off\"\n");
    std::fs::write(&file, format!("{head}{}", site("a", "a.test", a.addr))).unwrap();
    let source = ConfigSource {
        path: Some(file.clone()),
        ..ConfigSource::default()
    };
    let (sites, _) = Sites::new(source.load().unwrap()).unwrap();
    let server = Server::new(Arc::new(sites), source);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_current(
        server.resolver(),
        listener,
        std::future::pending(),
    ));
    assert_eq!(
        send(addr, page_request(addr, "a.test", "/")).await.status,
        200
    );
    assert_eq!(
        send(addr, page_request(addr, "b.test", "/")).await.status,
        421
    );

    std::fs::write(
        &file,
        format!(
            "{head}{}{}",
            site("a", "a.test", a.addr),
            site("b", "b.test", b.addr)
        ),
    )
    .unwrap();
    let msg = server.reload().unwrap();
    assert!(msg.contains("2 sites (a, b)"), "{msg}");
    assert_eq!(
        send(addr, page_request(addr, "b.test", "/")).await.status,
        200
    );
    assert_eq!(
        send(addr, page_request(addr, "a.test", "/")).await.status,
        200
    );
    assert_eq!((a.count(), b.count()), (2, 1));
    let metrics = server.current().primary().metrics.render();
    assert!(
        metrics.contains(
            "consentgate_requests_total{site=\"a\",method=\"GET\",status_class=\"2xx\"} 2"
        ),
        "metrics carry over a reload: {metrics}"
    );

    // Two sites claiming one host: refused, the running sites stay.
    std::fs::write(
        &file,
        format!(
            "{head}{}{}",
            site("a", "a.test", a.addr),
            site("b", "a.test", b.addr)
        ),
    )
    .unwrap();
    let err = server.reload().unwrap_err();
    assert!(err.contains("site[1].hosts[0]"), "{err}");
    assert_eq!(
        send(addr, page_request(addr, "b.test", "/")).await.status,
        200
    );
}

/// The admin API serves every site: discovery names each origin's service with the catalog of
/// the site that saw it, and stats take purposes from the site's own catalog (a service one
/// site adds is unknown to the other).
#[tokio::test]
async fn admin_reads_each_sites_own_catalog() {
    let a = origin(|_| {
        OriginResponse::html(
            "<html><body><script src=\"https://chat.acme.test/w.js\"></script>\
             <img src=\"https://static.zdassets.com/x.png\"></body></html>",
        )
    })
    .await;
    let db = temp_db();
    let text = format!(
        r#"
[upstream]
url = "http://{a}"
[consent]
key = "{KEY}"
[receipts]
store = "sqlite"
path = "{db}"
[[site]]
name = "one"
hosts = ["one.test"]
[[site]]
name = "two"
hosts = ["two.test"]
[[site.services]]
id = "acme-chat"
name = "Acme Chat"
purpose = "marketing"
description = "Chat"
hosts = ["chat.acme.test"]
legal_basis = "Consent"
privacy_policy_url = "https://acme.test/p"
processor = {{ name = "Acme", address = "1 Road", country = "DE" }}
transfer = {{ third_country = false, basis = "None needed" }}
"#,
        a = a.addr,
        db = db.display()
    );
    let (addr, sites) = start(&text).await;
    let token = "admin-token-for-sites-tests-012345";
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = l.local_addr().unwrap();
    let s = sites.clone();
    tokio::spawn(consentgate::proxy::serve_admin_current(
        Arc::new(move || s.clone()),
        None,
        l,
        token.into(),
        std::future::pending(),
    ));
    // Both sites serve the page once (discovery), and a visitor of site two grants its own
    // service (a receipt).
    for host in ["one.test", "two.test"] {
        assert_eq!(send(addr, page_request(addr, host, "/")).await.status, 200);
    }
    let post = Request::post("/__consent")
        .header("host", "two.test")
        .header("origin", "http://two.test")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(
            b"action=save&service=acme-chat",
        )))
        .unwrap();
    assert_eq!(send(addr, post).await.status, 303);
    let admin_get = |path: &str| {
        Request::get(path)
            .header("host", "admin")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::<Bytes>::default())
            .unwrap()
    };
    // Discovery is recorded when a body ends: wait for it.
    let mut rows = serde_json::Value::Null;
    for _ in 0..50 {
        let got = send(admin, admin_get("/discovery")).await;
        rows = serde_json::from_slice(&got.body).unwrap();
        if rows.as_array().is_some_and(|r| r.len() >= 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let service_of = |origin: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["origin"] == origin)
            .map(|r| r["service"].clone())
    };
    // Site one has no acme-chat: its sighting is unknown; site two's names it. The first
    // sighting with a service wins.
    assert_eq!(
        service_of("https://chat.acme.test"),
        Some("acme-chat".into()),
        "{rows}"
    );
    assert_eq!(
        service_of("https://static.zdassets.com"),
        Some("zendesk-chat".into()),
        "{rows}"
    );
    let got = send(admin, admin_get("/stats?site=two.test")).await;
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(v["services"]["acme-chat"]["granted"], 1, "{v}");
    assert_eq!(v["days"][0]["purposes"]["marketing"]["granted"], 1, "{v}");
    // Without a site, every site's catalog is asked.
    let got = send(admin, admin_get("/stats")).await;
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(v["days"][0]["purposes"]["marketing"]["granted"], 1, "{v}");
}
