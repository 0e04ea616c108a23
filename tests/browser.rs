//! Real-browser proof that consentgate keeps third parties off the wire until the visitor
//! consents, and lets them through afterwards.
//!
//! The harness (logging proxy, demo site, Chromium driver) is in `support/browser.rs`; its
//! module documentation explains the setup. Each test checks that the page really loaded and
//! that no loopback request reached the logging proxy, so the proxy bypass is verified, not
//! assumed.
//!
//! The control tests load the origin directly (no consentgate) and show the log does see the
//! services; without them a "zero requests" result through the proxy would prove nothing.

#[path = "support/browser.rs"]
mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::*;

/// Control: straight from the origin, with JavaScript, the browser does reach the services,
/// and the logging proxy sees it. Without this, "zero requests" below would prove nothing.
#[test]
fn control_origin_direct_with_javascript_reaches_services() {
    let case = "control, origin direct, JS on";
    let services = ServiceHosts::builtin();
    let site = Site::start();
    let log = LogProxy::start();
    let mut browser = Browser::launch(&log, true);
    let pages = visit_all(&mut browser, &log, &origin_pages(&site));
    eprint!("{}", describe(case, &pages, &services));
    assert_no_loopback(case, &log);

    let seen = all_hosts(&pages);
    assert_hosts_seen(
        case,
        &seen,
        &[
            "static.zdassets.com",
            "www.googletagmanager.com",
            "www.youtube-nocookie.com",
        ],
    );
    // Every page of the demo is a working control for the proxied run of the same page.
    for p in &pages {
        assert!(
            p.hits
                .iter()
                .any(|h| services.service_of(&h.host).is_some()),
            "[{case}] {} reached no catalog service directly: the harness cannot see its leaks",
            p.url
        );
    }
}

/// No decision, JavaScript on: through consentgate, no page reaches any catalog service.
#[test]
fn no_decision_with_javascript_reaches_no_service() {
    let case = "no decision, proxy, JS on";
    let services = ServiceHosts::builtin();
    let site = Site::start();
    let log = LogProxy::start();
    let mut browser = Browser::launch(&log, true);
    let pages = visit_all(&mut browser, &log, &proxy_pages(&site));
    eprint!("{}", describe(case, &pages, &services));
    assert_no_loopback(case, &log);
    assert_no_service_requests(case, &pages, &services);
}

/// Control for the no-JavaScript mode: straight from the origin, the Meta pixel's
/// `<noscript>` image (www.facebook.com/tr) is requested, and nothing that needs a script is.
#[test]
fn control_origin_direct_without_javascript_requests_noscript_pixel() {
    let case = "control, origin direct, JS off";
    let services = ServiceHosts::builtin();
    let site = Site::start();
    let log = LogProxy::start();
    let mut browser = Browser::launch(&log, false);
    let pages = visit_all(&mut browser, &log, &origin_pages(&site));
    eprint!("{}", describe(case, &pages, &services));
    assert_no_loopback(case, &log);

    let seen = all_hosts(&pages);
    assert_hosts_seen(
        case,
        &seen,
        &["www.facebook.com", "www.youtube-nocookie.com"],
    );
    let pixel = pages.iter().flat_map(|p| &p.hits).find(|h| {
        h.host == "www.facebook.com"
            && (h.request_line.starts_with("CONNECT") || h.request_line.contains("/tr?"))
    });
    assert!(
        pixel.is_some(),
        "[{case}] no request for the noscript pixel"
    );
    // Scripts really are off: had they run, the GA4 and Meta loaders would have been fetched.
    assert!(
        !seen.contains("connect.facebook.net"),
        "[{case}] connect.facebook.net requested: JavaScript is not disabled"
    );
}

/// No decision, JavaScript off: through consentgate, nothing reaches a service, in particular
/// not the Meta pixel's `<noscript>` image.
#[test]
fn no_decision_without_javascript_reaches_no_service() {
    let case = "no decision, proxy, JS off";
    let services = ServiceHosts::builtin();
    let site = Site::start();
    let log = LogProxy::start();
    let mut browser = Browser::launch(&log, false);
    let pages = visit_all(&mut browser, &log, &proxy_pages(&site));
    eprint!("{}", describe(case, &pages, &services));
    assert_no_loopback(case, &log);
    assert!(
        !all_hosts(&pages).contains("www.facebook.com"),
        "[{case}] LEAK: the Meta pixel noscript image (www.facebook.com/tr) was requested"
    );
    assert_no_service_requests(case, &pages, &services);
}

/// After "Accept all", clicked in the page itself, the services load.
#[test]
fn accept_all_lets_services_load() {
    let case = "accept all, proxy, JS on";
    let services = ServiceHosts::builtin();
    let site = Site::start();
    let log = LogProxy::start();
    let mut browser = Browser::launch(&log, true);

    let home = site.proxy_url("/");
    let before = visit_all(&mut browser, &log, std::slice::from_ref(&home));
    eprint!("{}", describe("before consent", &before, &services));
    assert_no_service_requests("before consent", &before, &services);

    let mark = log.len();
    // The runtime posts the decision and activates the services in place: no reload.
    browser.eval("window.__consentgateMarker = 'same page'");
    browser.eval("document.querySelector('button[name=action][value=accept-all]').click()");
    let expected = ["static.zdassets.com", "www.youtube-nocookie.com"];
    let arrived = browser.wait_until(EXPECT_TIMEOUT, || {
        let seen: BTreeSet<String> = log.since(mark).into_iter().map(|h| h.host).collect();
        expected.iter().all(|h| seen.contains(*h))
    });
    browser.settle(&log);
    let after = vec![PageLog {
        url: home.clone(),
        hits: log.since(mark),
    }];
    eprint!("{}", describe(case, &after, &services));
    assert_no_loopback(case, &log);
    assert!(
        arrived,
        "[{case}] expected requests did not arrive within {EXPECT_TIMEOUT:?}"
    );
    assert_hosts_seen(case, &all_hosts(&after), &expected);
    assert_eq!(
        browser.eval("window.__consentgateMarker || 'reloaded'"),
        Value::String("same page".into()),
        "[{case}] activation must not reload the page"
    );

    let state = consent_state(&mut browser, &site, &log);
    eprintln!("[{case}] /__consent/state: {state}");
    assert_eq!(state["decided"], true, "{state}");
    assert_eq!(state["services"]["zendesk-chat"], true, "{state}");
    assert_eq!(state["services"]["youtube"], true, "{state}");
}

/// Consent to YouTube only: the video loads, the chat and the trackers stay off the wire.
#[test]
fn partial_consent_loads_only_the_granted_service() {
    let case = "youtube only, proxy, JS on";
    let services = ServiceHosts::builtin();
    let site = Site::start();
    let log = LogProxy::start();
    let mut browser = Browser::launch(&log, true);

    let home = site.proxy_url("/");
    let before = visit_all(&mut browser, &log, std::slice::from_ref(&home));
    assert_no_service_requests("before consent", &before, &services);

    let mark = log.len();
    browser.eval(
        "(() => { const box = document.querySelector('input[name=service][value=youtube]'); \
         box.checked = true; box.form.querySelector('button').click(); })()",
    );
    let arrived = browser.wait_until(EXPECT_TIMEOUT, || {
        log.since(mark)
            .iter()
            .any(|h| h.host == "www.youtube-nocookie.com")
    });
    browser.settle(&log);
    let after = vec![PageLog {
        url: home.clone(),
        hits: log.since(mark),
    }];
    eprint!("{}", describe(case, &after, &services));
    assert_no_loopback(case, &log);
    assert!(
        arrived,
        "[{case}] www.youtube-nocookie.com was not requested within {EXPECT_TIMEOUT:?}"
    );
    // Everything else on the page stays blocked: Zendesk, Freshchat, GA4, Meta pixel.
    assert_no_service_requests_except(case, &after, &services, &["youtube"]);

    let state = consent_state(&mut browser, &site, &log);
    eprintln!("[{case}] /__consent/state: {state}");
    assert_eq!(state["decided"], true, "{state}");
    assert_eq!(state["services"]["youtube"], true, "{state}");
    assert_eq!(state["services"]["zendesk-chat"], false, "{state}");
    assert_eq!(state["services"]["google-analytics"], false, "{state}");
    assert_eq!(state["services"]["meta-pixel"], false, "{state}");
}

#[test]
fn request_line_parsing() {
    assert_eq!(
        host_of_request_line("CONNECT static.zdassets.com:443 HTTP/1.1").as_deref(),
        Some("static.zdassets.com")
    );
    assert_eq!(
        host_of_request_line("GET http://v2.zopim.com/?DEMOKEY HTTP/1.1").as_deref(),
        Some("v2.zopim.com")
    );
    assert_eq!(
        host_of_request_line("GET http://WWW.Example.com:8080 HTTP/1.1").as_deref(),
        Some("www.example.com")
    );
    let s = ServiceHosts::builtin();
    assert_eq!(s.service_of("static.zdassets.com"), Some("zendesk-chat"));
    assert_eq!(s.service_of("foo.zdassets.com"), Some("zendesk-chat"));
    assert_eq!(s.service_of("evilzdassets.com"), None);
    assert_eq!(s.service_of("www.facebook.com"), Some("meta-pixel"));
    assert_eq!(s.service_of("eu.zendesk.com"), Some("zendesk-chat"));
    assert_eq!(s.service_of("127.0.0.1"), None);
}
