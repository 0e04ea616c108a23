//! The CSP backstop in a real browser: a first-party bundle (`/app.js` on the demo's `/injected`
//! page) adds the Meta pixel and an analytics beacon at runtime, which no HTML rewriting can see.
//! With `csp.mode = "enforce"` the browser itself refuses them until the visitor consents.

#[path = "support/browser.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use consentgate::csp::CspMode;
use support::*;

const INJECTED: [&str; 3] = [
    "connect.facebook.net",
    "www.facebook.com",
    "www.google-analytics.com",
];

fn hosts_after(log: &LogProxy, mark: usize) -> BTreeSet<String> {
    log.since(mark).into_iter().map(|h| h.host).collect()
}

fn service_hosts(seen: &BTreeSet<String>, services: &ServiceHosts) -> Vec<String> {
    seen.iter()
        .filter(|h| services.service_of(h).is_some())
        .cloned()
        .collect()
}

/// Without the proxy the bundle really does reach the trackers: the harness can see it.
#[test]
fn control_the_bundle_reaches_the_trackers_from_the_origin() {
    let site = Site::start();
    let log = LogProxy::start();
    let mut browser = Browser::launch(&log, true);
    let mark = log.len();
    browser.visit(&site.origin_url("/injected"), &log);
    let mut seen = BTreeSet::new();
    let arrived = browser.wait_until(Duration::from_secs(10), || {
        seen = hosts_after(&log, mark);
        seen.contains("connect.facebook.net")
    });
    eprintln!("[control, origin] {seen:?}");
    assert!(
        arrived,
        "the injected pixel never reached the network: {seen:?}"
    );
}

/// Report-only (the default) does not block: rewriting alone cannot stop runtime injection.
#[test]
fn report_only_lets_the_injection_through() {
    let site = Site::start();
    let log = LogProxy::start();
    let mut browser = Browser::launch(&log, true);
    let mark = log.len();
    browser.visit(&site.proxy_url("/injected"), &log);
    let mut seen = BTreeSet::new();
    let arrived = browser.wait_until(Duration::from_secs(10), || {
        seen = hosts_after(&log, mark);
        seen.contains("connect.facebook.net")
    });
    eprintln!("[report-only, proxy] {seen:?}");
    assert!(
        arrived,
        "expected the injection to pass in report-only mode: {seen:?}"
    );
}

/// Enforced: nothing reaches a tracker before consent; after "Accept all" the page reloads
/// under a policy that allows the consented services, and the pixel loads.
#[test]
fn enforced_csp_blocks_runtime_injection_until_consent() {
    let services = ServiceHosts::builtin();
    let site = Site::start_with(|c| c.csp.mode = CspMode::Enforce);
    let log = LogProxy::start();
    let mut browser = Browser::launch(&log, true);
    let mark = log.len();
    browser.visit(&site.proxy_url("/injected"), &log);
    browser.settle(&log);
    let before = hosts_after(&log, mark);
    eprintln!("[enforce, before consent] {before:?}");
    let leaked = service_hosts(&before, &services);
    assert!(
        leaked.is_empty(),
        "blocked by CSP expected, but reached: {leaked:?}"
    );
    // The bundle did run: it is the CSP, not a broken page, that stopped it.
    assert_eq!(
        browser.eval("document.querySelectorAll('script[src*=\"connect.facebook.net\"]').length"),
        serde_json::json!(1)
    );

    let mark = log.len();
    browser.click(r#"[data-consentgate="banner"] button[data-consentgate-action="accept-all"]"#);
    let mut after = BTreeSet::new();
    let arrived = browser.wait_until(Duration::from_secs(15), || {
        after = hosts_after(&log, mark);
        after.contains("connect.facebook.net")
    });
    eprintln!("[enforce, after accept-all] {after:?}");
    assert!(arrived, "after consent the pixel should load: {after:?}");
    for h in INJECTED {
        assert!(
            services.service_of(h).is_some(),
            "{h} is a catalog host, so the test means what it says"
        );
    }
}
