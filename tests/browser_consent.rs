//! The consent banner in a real browser: what a visitor sees and can do, and what reaches the
//! network as a result.
//!
//! Same harness as `tests/browser.rs` (see `support/browser.rs`): the demo origin behind
//! consentgate, a headless Chromium whose every non-loopback request goes to a logging proxy
//! (which answers 502, so nothing leaves the machine). Each test walks a visitor's flow in
//! steps; after every step it prints the hosts the browser tried to reach and checks them
//! against the catalog. Clicks are real mouse events at the element's centre, refused if
//! something covers it; key presses are real key events.
//!
//! `tests/browser.rs` holds the control runs (the origin without consentgate does reach the
//! services, so "nothing contacted" here means something).

#[path = "support/browser.rs"]
mod support;

use std::path::Path;
use std::time::Duration;

use consentgate::catalog::Catalog;
use serde_json::{json, Value};
use support::*;

const BANNER: &str = r#"[data-consentgate="banner"]"#;
const SETTINGS: &str = r#"[data-consentgate-action="settings"]"#;
const ZENDESK_FACADE: &str = r#"[data-consentgate-placeholder="zendesk-chat"]"#;
const EXPECT: Duration = Duration::from_secs(10);

/// A banner button: `reject-all`, `save` or `accept-all`.
fn banner_button(action: &str) -> String {
    format!(r#"{BANNER} button[data-consentgate-action="{action}"]"#)
}

fn banner_checkbox(service: &str) -> String {
    format!(r#"{BANNER} input[data-consentgate-service="{service}"]"#)
}

/// One visitor's flow: the site, the logging proxy, the browser, and what the proxy saw at
/// each step (every request lands in exactly one step).
struct Flow {
    // Dropped in this order: the browser before the proxy it uses, the site last.
    browser: Browser,
    log: LogProxy,
    site: Site,
    case: &'static str,
    services: ServiceHosts,
    steps: Vec<PageLog>,
    mark: usize,
}

impl Flow {
    fn start(case: &'static str, launch: &Launch) -> Flow {
        let services = ServiceHosts::builtin();
        let site = Site::start();
        let log = LogProxy::start();
        let browser = Browser::launch_with(&log, launch);
        Flow {
            case,
            services,
            site,
            log,
            browser,
            steps: Vec::new(),
            mark: 0,
        }
    }

    fn url(&self, path: &str) -> String {
        self.site.proxy_url(path)
    }

    /// Loads a demo page through consentgate and records the step.
    fn visit(&mut self, path: &str, label: &str) -> usize {
        let url = self.url(path);
        self.browser.visit(&url, &self.log);
        self.browser.assert_demo_page(&url);
        self.step(label)
    }

    /// Waits for quiet, then files everything the logging proxy got since the last step under
    /// `label`, prints it, and returns the step's index.
    fn step(&mut self, label: &str) -> usize {
        self.browser.settle(&self.log);
        let hits = self.log.since(self.mark);
        self.mark += hits.len();
        let page = PageLog {
            url: label.to_string(),
            hits,
        };
        eprint!(
            "{}",
            describe(self.case, std::slice::from_ref(&page), &self.services)
        );
        self.steps.push(page);
        self.steps.len() - 1
    }

    /// Waits until every host in `expected` has been requested since the last step.
    fn wait_for_hosts(&mut self, expected: &[&str]) -> bool {
        let (log, mark) = (&self.log, self.mark);
        self.browser.wait_until(EXPECT, || {
            let seen: Vec<String> = log.since(mark).into_iter().map(|h| h.host).collect();
            expected.iter().all(|e| seen.iter().any(|h| h == e))
        })
    }

    /// Fails if any step from `from` on reached a catalog service.
    fn assert_nothing_contacted(&self, from: usize) {
        assert_no_service_requests(self.case, &self.steps[from..], &self.services);
    }

    fn assert_only(&self, from: usize, allowed: &[&str]) {
        assert_no_service_requests_except(self.case, &self.steps[from..], &self.services, allowed);
    }

    fn assert_seen(&self, from: usize, hosts: &[&str]) {
        assert_hosts_seen(self.case, &all_hosts(&self.steps[from..]), hosts);
    }

    fn state(&mut self) -> Value {
        let state = consent_state(&mut self.browser, &self.site, &self.log);
        self.step("/__consent/state");
        eprintln!("[{}] /__consent/state: {state}", self.case);
        state
    }

    fn set_marker(&mut self) {
        self.browser.eval("window.__marker = 'same page'");
    }

    fn has_marker(&mut self) -> bool {
        self.browser.eval("window.__marker === 'same page'") == Value::Bool(true)
    }

    /// Waits for the runtime to close the banner after an in-place decision.
    fn wait_banner_closed(&mut self) {
        let closed = self.browser.wait_for_js(
            EXPECT,
            &format!(
                "(() => {{ const b = document.querySelector({}); \
                 return !!b && b.getAttribute('data-consentgate-open') === 'false' \
                 && !!document.querySelector({}); }})()",
                js_str(BANNER),
                js_str(SETTINGS)
            ),
        );
        assert!(
            closed,
            "[{}] the banner did not close (or no settings control appeared) within {EXPECT:?}",
            self.case
        );
    }

    fn finish(&self) {
        assert_no_loopback(self.case, &self.log);
    }
}

fn assert_state(case: &str, state: &Value, expected: &[(&str, bool)]) {
    assert_eq!(state["decided"], true, "[{case}] {state}");
    for (id, granted) in expected {
        assert_eq!(
            state["services"][*id],
            Value::Bool(*granted),
            "[{case}] {id} should be {granted}: {state}"
        );
    }
}

/// First visit: the banner is on screen with its three choices in view, nothing is ticked,
/// there is no settings control yet, and no service is contacted.
#[test]
fn first_visit_shows_the_banner_and_contacts_nothing() {
    let mut f = Flow::start("first visit", &Launch::default());
    let s = f.visit("/", "first visit /");
    let case = f.case;
    let b = &mut f.browser;
    b.assert_visible(case, BANNER);
    assert_eq!(
        b.attribute(BANNER, "data-consentgate-open").as_deref(),
        Some("true")
    );
    assert_eq!(
        b.attribute(BANNER, "data-consentgate-decided").as_deref(),
        Some("false")
    );
    // The choices need no scrolling: refusing is as immediate as accepting.
    for a in ["reject-all", "save", "accept-all"] {
        b.assert_visible(case, &banner_button(a));
    }
    assert_eq!(
        b.count(&format!("{BANNER} input:checked")),
        0,
        "[{case}] a service is pre-ticked"
    );
    assert_eq!(
        b.count(SETTINGS),
        0,
        "[{case}] settings control before a decision"
    );
    f.assert_nothing_contacted(s);
    f.finish();
}

/// "Reject all" closes the banner in place, puts up the settings control and contacts nothing;
/// the decision holds on the next page load.
#[test]
fn reject_all_contacts_nothing_and_sticks() {
    let mut f = Flow::start("reject all", &Launch::default());
    let first = f.visit("/", "first visit /");
    f.set_marker();
    f.browser.click(&banner_button("reject-all"));
    f.wait_banner_closed();
    f.step("after reject-all");
    let case = f.case;
    f.browser.assert_not_rendered(case, BANNER);
    f.browser.assert_visible(case, SETTINGS);
    assert!(f.has_marker(), "[{case}] rejecting reloaded the page");

    let docs = f.browser.documents_len();
    let reload = f.url("/");
    f.browser.expect_navigation("reload", &f.log, |b| {
        b.call("Page.reload", json!({}));
    });
    f.step("reload /");
    assert_eq!(f.browser.documents_since(docs).len(), 1);
    f.browser.assert_demo_page(&reload);
    // A decided visitor's pages carry the settings control, not the banner.
    assert_eq!(
        f.browser.count(BANNER),
        0,
        "[{case}] banner on a decided page"
    );
    f.browser.assert_visible(case, SETTINGS);
    f.assert_nothing_contacted(first);

    let state = f.state();
    let catalog = Catalog::builtin().expect("catalog");
    let all_off: Vec<(&str, bool)> = catalog
        .services()
        .iter()
        .map(|s| (s.id.as_str(), false))
        .collect();
    assert_state(case, &state, &all_off);
    f.assert_nothing_contacted(first);
    f.finish();
}

/// Ticking YouTube alone and saving loads the video in place (no reload) and nothing else.
#[test]
fn granular_save_loads_only_the_ticked_service() {
    let mut f = Flow::start("save youtube only", &Launch::default());
    let first = f.visit("/", "first visit /");
    f.assert_nothing_contacted(first);
    f.set_marker();
    f.browser.click(&banner_checkbox("youtube"));
    assert_eq!(
        f.browser.eval(&format!(
            "document.querySelector({}).checked",
            js_str(&banner_checkbox("youtube"))
        )),
        Value::Bool(true),
        "the click did not tick the box"
    );
    f.browser.click(&banner_button("save"));
    let arrived = f.wait_for_hosts(&["www.youtube-nocookie.com"]);
    f.wait_banner_closed();
    let after = f.step("after save (youtube ticked)");
    let case = f.case;
    assert!(
        arrived,
        "[{case}] www.youtube-nocookie.com not requested within {EXPECT:?}"
    );
    f.assert_seen(after, &["www.youtube-nocookie.com"]);
    f.assert_only(after, &["youtube"]);
    assert!(f.has_marker(), "[{case}] saving reloaded the page");
    f.browser.assert_visible(case, SETTINGS);

    let state = f.state();
    assert_state(
        case,
        &state,
        &[
            ("youtube", true),
            ("zendesk-chat", false),
            ("google-analytics", false),
            ("google-tag-manager", false),
            ("meta-pixel", false),
            ("freshchat", false),
        ],
    );
    f.assert_only(first, &["youtube"]);
    f.finish();
}

/// "Accept all" loads the chat, the video and the tag in place, without a reload.
#[test]
fn accept_all_loads_services_in_place() {
    let mut f = Flow::start("accept all", &Launch::default());
    let first = f.visit("/", "first visit /");
    f.assert_nothing_contacted(first);
    f.set_marker();
    f.browser.click(&banner_button("accept-all"));
    let expected = [
        "static.zdassets.com",
        "www.youtube-nocookie.com",
        "www.googletagmanager.com",
    ];
    let arrived = f.wait_for_hosts(&expected);
    f.wait_banner_closed();
    let after = f.step("after accept-all");
    let case = f.case;
    assert!(
        arrived,
        "[{case}] not all of {expected:?} requested within {EXPECT:?}"
    );
    f.assert_seen(after, &expected);
    assert!(f.has_marker(), "[{case}] accepting reloaded the page");
    f.browser.assert_not_rendered(case, BANNER);
    f.browser.assert_visible(case, SETTINGS);
    let state = f.state();
    assert_state(
        case,
        &state,
        &[
            ("zendesk-chat", true),
            ("youtube", true),
            ("google-analytics", true),
            ("meta-pixel", true),
        ],
    );
    f.finish();
}

/// Revoking through the settings control: the banner reopens; "Reject all" reloads the page,
/// the trackers' cookies are gone (the site's own stay), and the fresh page contacts nothing.
#[test]
fn revoking_through_settings_reloads_clean() {
    let mut f = Flow::start("revoke", &Launch::default());
    f.visit("/", "first visit /");
    f.browser.click(&banner_button("accept-all"));
    let arrived = f.wait_for_hosts(&["static.zdassets.com", "www.youtube-nocookie.com"]);
    f.wait_banner_closed();
    f.step("after accept-all");
    let case = f.case;
    assert!(
        arrived,
        "[{case}] the services did not load after accept-all"
    );

    // What the trackers would have left behind, and a cookie of the site itself.
    f.browser.eval(
        "document.cookie = '_ga=GA1.1.1; path=/'; document.cookie = '_fbp=fb.1; path=/'; \
         document.cookie = 'session=1; path=/'",
    );
    let before = f.browser.document_cookie();
    for c in ["_ga=GA1.1.1", "_fbp=fb.1", "session=1"] {
        assert!(before.contains(c), "[{case}] could not set {c}: {before}");
    }
    f.set_marker();

    f.browser.click(SETTINGS);
    let opened = f.browser.wait_for_js(
        EXPECT,
        &format!(
            "document.querySelector({}).getAttribute('data-consentgate-open') === 'true'",
            js_str(BANNER)
        ),
    );
    assert!(
        opened,
        "[{case}] the settings control did not reopen the banner"
    );
    f.browser.assert_visible(case, BANNER);
    f.browser.assert_visible(case, &banner_button("reject-all"));
    // The banner shows the choice in force.
    assert_eq!(
        f.browser.eval(&format!(
            "document.querySelector({}).checked",
            js_str(&banner_checkbox("youtube"))
        )),
        Value::Bool(true)
    );
    f.step("settings reopened");

    let docs = f.browser.documents_len();
    f.browser
        .expect_navigation("reject-all after accepting", &f.log, |b| {
            b.click(&banner_button("reject-all"))
        });
    let after = f.step("after reject-all (reloaded)");
    assert!(
        !f.has_marker(),
        "[{case}] revoking must reload the page (what ran cannot be unloaded)"
    );
    let reloads = f.browser.documents_since(docs);
    assert_eq!(
        reloads.len(),
        1,
        "[{case}] expected one reload: {reloads:?}"
    );
    assert_eq!(reloads[0].url, f.url("/"), "{reloads:?}");
    let cookies = f.browser.document_cookie();
    eprintln!("[{case}] document.cookie after revoking: {cookies:?}");
    for gone in ["_ga=", "_fbp="] {
        assert!(
            !cookies.split("; ").any(|c| c.starts_with(gone)),
            "[{case}] {gone} survived the revocation: {cookies:?}"
        );
    }
    assert!(
        cookies.split("; ").any(|c| c == "session=1"),
        "[{case}] the site's own cookie was deleted: {cookies:?}"
    );
    f.browser.assert_not_rendered(case, BANNER);
    f.browser.assert_visible(case, SETTINGS);
    f.assert_nothing_contacted(after);

    let state = f.state();
    assert_state(
        case,
        &state,
        &[
            ("zendesk-chat", false),
            ("youtube", false),
            ("google-analytics", false),
            ("meta-pixel", false),
        ],
    );
    f.assert_nothing_contacted(after);

    // A page loaded after the decision carries only the control: the banner comes from the
    // server when it is opened, showing the choice in force, and works as on the first page.
    f.visit("/", "back to /");
    assert_eq!(
        f.browser.count(BANNER),
        0,
        "[{case}] banner on a decided page"
    );
    f.browser.click(SETTINGS);
    let opened = f.browser.wait_for_js(
        EXPECT,
        &format!(
            "(() => {{ const b = document.querySelector({}); \
             return !!b && b.getAttribute('data-consentgate-open') === 'true'; }})()",
            js_str(BANNER)
        ),
    );
    assert!(
        opened,
        "[{case}] the settings control did not open the banner"
    );
    f.browser.assert_visible(case, BANNER);
    assert_eq!(f.browser.count(&format!("{BANNER} input:checked")), 0);
    let reopened = f.step("settings opened on a fresh page");
    f.assert_nothing_contacted(reopened);
    f.set_marker();
    f.browser.click(&banner_button("accept-all"));
    let arrived = f.wait_for_hosts(&["static.zdassets.com", "www.youtube-nocookie.com"]);
    f.wait_banner_closed();
    f.step("accept-all from the fetched banner");
    assert!(arrived, "[{case}] the services did not load in place");
    assert!(f.has_marker(), "[{case}] a grant must not reload the page");
    f.finish();
}

/// The Zendesk facade: one sentence naming the service and who gets the data; its button
/// loads the chat (and only the chat) in place and records the consent.
fn chat_facade_flow(case: &'static str, viewport: Option<(u32, u32)>) {
    let mut f = Flow::start(case, &Launch::default());
    if let Some((w, h)) = viewport {
        f.browser.set_viewport(w, h);
    }
    let first = f.visit("/zendesk", "first visit /zendesk");
    f.assert_nothing_contacted(first);
    // While the banner is open it is the one place to decide (it lists the chat too): the
    // facade waits, so it never sits under the banner or in the tab order behind it.
    f.browser.assert_not_rendered(case, ZENDESK_FACADE);
    f.browser.click(&banner_button("reject-all"));
    f.wait_banner_closed();
    let s = f.step("after reject-all");
    f.assert_nothing_contacted(s);

    let catalog = Catalog::builtin().expect("catalog");
    let zendesk = catalog
        .services()
        .iter()
        .find(|s| s.id == "zendesk-chat")
        .expect("zendesk-chat in the catalog");
    f.browser.assert_visible(case, ZENDESK_FACADE);
    let text = f
        .browser
        .text(&format!("{ZENDESK_FACADE} .cg-facade-text"))
        .unwrap_or_default();
    eprintln!("[{case}] facade text: {text:?}");
    assert!(
        text.contains(&zendesk.name) && text.contains(&zendesk.processor.name),
        "[{case}] the facade must name {:?} and {:?}: {text:?}",
        zendesk.name,
        zendesk.processor.name
    );
    assert!(
        text.ends_with('.') && one_sentence(&text),
        "[{case}] the facade text is not one sentence: {text:?}"
    );

    f.set_marker();
    let load = format!(r#"{ZENDESK_FACADE} [data-consentgate-action="load"]"#);
    f.browser.click(&load);
    let arrived = f.wait_for_hosts(&["static.zdassets.com"]);
    let gone = f.browser.wait_for_js(
        EXPECT,
        &format!("!document.querySelector({})", js_str(ZENDESK_FACADE)),
    );
    f.wait_banner_closed();
    let after = f.step("after the facade's load button");
    assert!(
        arrived,
        "[{case}] static.zdassets.com not requested within {EXPECT:?}"
    );
    assert!(gone, "[{case}] the placeholder is still there");
    assert!(f.has_marker(), "[{case}] the facade reloaded the page");
    f.assert_only(after, &["zendesk-chat"]);

    let state = f.state();
    assert_state(
        case,
        &state,
        &[
            ("zendesk-chat", true),
            ("youtube", false),
            ("meta-pixel", false),
            ("google-analytics", false),
        ],
    );
    f.assert_only(first, &["zendesk-chat"]);
    f.finish();
}

/// No sentence boundary inside: a stop followed by a space and a capital letter ("Inc., " is
/// not one).
fn one_sentence(text: &str) -> bool {
    let t = text.trim().trim_end_matches(['.', '!', '?']);
    let chars: Vec<char> = t.chars().collect();
    !chars
        .windows(3)
        .any(|w| matches!(w[0], '.' | '!' | '?') && w[1] == ' ' && w[2].is_uppercase())
}

/// After "Reject all" the facade is how a visitor who declined gets the chat.
#[test]
fn chat_facade_loads_the_chat_on_request() {
    chat_facade_flow("chat facade, after reject-all", None);
}

/// The same on a phone-sized screen.
#[test]
fn chat_facade_on_a_small_screen() {
    chat_facade_flow("chat facade, 320x640", Some((320, 640)));
}

/// Without JavaScript the banner is a plain form: "Reject all" posts and comes back (303)
/// with the banner closed; the settings control is a link to the settings page, whose form
/// comes back to the page; "Accept all" brings in the YouTube iframe, which needs no script.
#[test]
fn without_javascript_the_banner_works_as_a_form() {
    let mut f = Flow::start(
        "no JavaScript",
        &Launch {
            javascript: false,
            ..Launch::default()
        },
    );
    let first = f.visit("/", "first visit /");
    let case = f.case;
    // The runtime is on the page; with scripts on it would send the forms with fetch (no
    // navigation), so the POST and 303 below also prove that scripts are off.
    assert_eq!(f.browser.count(r#"script[data-consentgate="runtime"]"#), 1);
    f.browser.assert_visible(case, BANNER);
    f.browser.assert_visible(case, &banner_button("reject-all"));

    let home = f.url("/");
    let docs = f.browser.documents_len();
    f.browser
        .expect_navigation("reject-all (form post)", &f.log, |b| {
            b.click(&banner_button("reject-all"))
        });
    f.step("after reject-all (POST, 303)");
    assert_post_redirect_get(
        case,
        &f.browser.documents_since(docs),
        &f.url("/__consent"),
        &home,
    );
    f.browser.assert_demo_page(&home);
    f.browser.assert_not_rendered(case, BANNER);
    f.browser.assert_visible(case, SETTINGS);
    f.assert_nothing_contacted(first);

    let docs = f.browser.documents_len();
    f.browser
        .expect_navigation("settings link", &f.log, |b| b.click(SETTINGS));
    let opened = f.browser.documents_since(docs);
    assert_eq!(
        opened.iter().map(|d| d.url.as_str()).collect::<Vec<_>>(),
        [f.url("/__consent/settings").as_str()],
        "[{case}] the settings link: {opened:?}"
    );
    f.browser.assert_visible(case, BANNER);
    f.browser.assert_visible(case, &banner_button("accept-all"));
    // The choice in force is shown: nothing ticked after "Reject all".
    assert_eq!(f.browser.count(&format!("{BANNER} input:checked")), 0);
    f.step("settings page");
    f.assert_nothing_contacted(first);

    let docs = f.browser.documents_len();
    f.browser
        .expect_navigation("accept-all (form post)", &f.log, |b| {
            b.click(&banner_button("accept-all"))
        });
    // The iframe is requested while the page loads, before `load`.
    let after = f.step("after accept-all (POST, 303)");
    assert_post_redirect_get(
        case,
        &f.browser.documents_since(docs),
        &f.url("/__consent"),
        &home,
    );
    f.assert_seen(after, &["www.youtube-nocookie.com"]);
    f.browser.assert_not_rendered(case, BANNER);
    f.browser.assert_visible(case, SETTINGS);
    f.finish();
}

fn assert_post_redirect_get(case: &str, docs: &[DocumentRequest], endpoint: &str, back: &str) {
    let seq: Vec<(String, String, Option<u64>)> = docs
        .iter()
        .map(|d| (d.method.clone(), d.url.clone(), d.redirected_by))
        .collect();
    assert_eq!(
        seq,
        vec![
            ("POST".to_string(), endpoint.to_string(), None),
            ("GET".to_string(), back.to_string(), Some(303)),
        ],
        "[{case}] expected the form to POST to {endpoint} and be sent back to {back} with 303"
    );
}

/// With `Accept-Language: de` the banner is German, with the texts of config/i18n/de.toml.
#[test]
fn banner_speaks_the_visitors_language() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/i18n/de.toml");
    let de: toml::Table = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let t = |k: &str| {
        de.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("{k} missing in {}", path.display()))
            .to_string()
    };
    let mut f = Flow::start(
        "Accept-Language: de",
        &Launch {
            accept_language: Some("de".into()),
            ..Launch::default()
        },
    );
    let first = f.visit("/", "first visit /");
    let case = f.case;
    f.browser.assert_visible(case, BANNER);
    assert_eq!(f.browser.attribute(BANNER, "lang").as_deref(), Some("de"));
    assert_eq!(
        f.browser.text(&format!("{BANNER} .cg-title")),
        Some(t("banner_title"))
    );
    for (action, key) in [
        ("accept-all", "accept_all"),
        ("reject-all", "reject_all"),
        ("save", "save"),
    ] {
        let label = f.browser.text(&banner_button(action));
        eprintln!("[{case}] {action}: {label:?}");
        assert_eq!(label, Some(t(key)), "[{case}] the {action} button");
    }
    f.assert_nothing_contacted(first);
    f.finish();
}

// ---------------------------------------------------------------------------------------------
// Accessibility

const AXE_TAGS: &str = "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']";

fn axe_source() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/a11y/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core is not installed ({}: {e}); run: npm ci --prefix tests/a11y",
            path.display()
        )
    })
}

/// Runs axe on `context` (a JavaScript expression: an element or an axe context object) and
/// fails with every violation it reports.
fn assert_axe_clean(case: &str, browser: &mut Browser, context: &str) {
    let r = browser.eval_async(
        &format!(
            "axe.run({context}, {{ runOnly: {{ type: 'tag', values: {AXE_TAGS} }} }}).then(r => ({{ \
               passes: r.passes.length, \
               incomplete: r.incomplete.map(v => v.id + ' x' + v.nodes.length + ': ' + \
                 [...new Set(v.nodes.map(n => n.any.concat(n.all, n.none).map(c => c.message).join(' ')))].join(' | ')), \
               violations: r.violations.map(v => ({{ id: v.id, impact: v.impact, help: v.help, \
                 nodes: v.nodes.map(n => ({{ html: n.html, summary: n.failureSummary }})) }})) }}))"
        ),
        Duration::from_secs(20),
    );
    eprintln!(
        "[{case}] axe on {context}: {} rules passed, incomplete (needs a human): {}",
        r["passes"], r["incomplete"]
    );
    let violations = r["violations"].as_array().cloned().unwrap_or_default();
    let mut report = String::new();
    for v in &violations {
        report.push_str(&format!(
            "- {} ({}): {}\n",
            v["id"].as_str().unwrap_or_default(),
            v["impact"].as_str().unwrap_or("?"),
            v["help"].as_str().unwrap_or_default()
        ));
        for n in v["nodes"].as_array().into_iter().flatten() {
            report.push_str(&format!(
                "    {}\n      {}\n",
                n["html"].as_str().unwrap_or_default(),
                n["summary"]
                    .as_str()
                    .unwrap_or_default()
                    .replace('\n', "\n      ")
            ));
        }
    }
    assert!(
        violations.is_empty(),
        "[{case}] axe found {} violation(s) in {context}:\n{report}",
        violations.len()
    );
}

/// Accept and reject look the same: same size (±1px), background, text colour, weight and
/// size of type.
fn assert_equal_buttons(case: &str, browser: &mut Browser, where_: &str) {
    let props = ["background-color", "color", "font-weight", "font-size"];
    let accept = banner_button("accept-all");
    let reject = banner_button("reject-all");
    let (a, r) = (
        browser.assert_visible(case, &accept).rect,
        browser.assert_visible(case, &reject).rect,
    );
    eprintln!("[{case}] {where_}: accept-all {a:?}, reject-all {r:?}");
    assert!(
        (a.width - r.width).abs() <= 1.0 && (a.height - r.height).abs() <= 1.0,
        "[{case}] {where_}: accept-all is {}x{}, reject-all {}x{}",
        a.width,
        a.height,
        r.width,
        r.height
    );
    let (sa, sr) = (
        browser.computed_style(&accept, &props),
        browser.computed_style(&reject, &props),
    );
    assert_eq!(
        sa, sr,
        "[{case}] {where_}: accept-all and reject-all differ"
    );
}

/// The focused element, as the Tab walk sees it.
const FOCUS_JS: &str = r#"(banner) => {
  const e = document.activeElement, b = document.querySelector(banner);
  if (!e || e === document.body || !b || !b.contains(e)) return { inBanner: false };
  const cs = getComputedStyle(e), r = e.getBoundingClientRect();
  const x = r.left + r.width / 2, y = r.top + r.height / 2;
  const hit = document.elementFromPoint(x, y);
  return { inBanner: true, html: e.outerHTML.slice(0, 120),
    action: e.getAttribute('data-consentgate-action'), tag: e.tagName,
    outlineStyle: cs.outlineStyle, outlineWidth: parseFloat(cs.outlineWidth) || 0,
    focusVisible: e.matches(':focus-visible'),
    covered: hit && (hit === e || e.contains(hit)) ? null : (hit ? hit.outerHTML.slice(0, 120) : 'outside the viewport') };
}"#;

/// Tabs from the top of the page through the banner: every control in it gets focus in turn,
/// with a visible focus indicator, not hidden under anything (the sticky buttons included).
fn assert_keyboard_walk(case: &str, browser: &mut Browser, where_: &str) {
    browser.eval("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)");
    // Every control a visitor can see (the links inside closed <details> are not shown).
    let controls = browser
        .eval(&format!(
            "[...document.querySelectorAll({})].filter(e => e.checkVisibility()).length",
            js_str(&format!(
                "{BANNER} input, {BANNER} button, {BANNER} summary, {BANNER} a[href]"
            ))
        ))
        .as_u64()
        .unwrap_or(0);
    let mut reached: Vec<String> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let mut stops = 0;
    for _ in 0..400 {
        browser.press_tab(false);
        let f = browser.call_js(FOCUS_JS, BANNER);
        if f["inBanner"] != true {
            if stops > 0 {
                break; // left the banner
            }
            continue;
        }
        stops += 1;
        let html = f["html"].as_str().unwrap_or_default().to_string();
        if f["outlineStyle"] == "none" || f["outlineWidth"].as_f64().unwrap_or(0.0) < 1.0 {
            problems.push(format!(
                "no focus outline ({} {}px): {html}",
                f["outlineStyle"], f["outlineWidth"]
            ));
        }
        if f["focusVisible"] != true {
            problems.push(format!("not :focus-visible after Tab: {html}"));
        }
        if let Some(c) = f["covered"].as_str() {
            problems.push(format!("focused but covered by {c}: {html}"));
        }
        if let Some(a) = f["action"].as_str() {
            reached.push(a.to_string());
        }
    }
    eprintln!("[{case}] {where_}: {stops} tab stops in the banner ({controls} controls), buttons reached: {reached:?}");
    for a in ["reject-all", "save", "accept-all"] {
        assert!(
            reached.iter().any(|r| r == a),
            "[{case}] {where_}: the {a} button is not reachable with Tab (reached: {reached:?})"
        );
    }
    assert_eq!(
        stops, controls,
        "[{case}] {where_}: Tab did not visit every control of the banner"
    );
    assert!(
        problems.is_empty(),
        "[{case}] {where_}: keyboard focus problems:\n  {}",
        problems.join("\n  ")
    );
}

/// axe (WCAG 2.0/2.1 A and AA) finds nothing in the banner, the settings control or the chat
/// facade; accept and reject are equal at three window widths; the keyboard reaches every
/// control with a visible focus indicator.
#[test]
fn banner_is_accessible_and_even_handed() {
    let axe = axe_source();
    let mut f = Flow::start("accessibility", &Launch::default());
    // Geometry is read right after focus moves: no smooth scrolling to wait for.
    f.browser.prefer_reduced_motion();
    let first = f.visit("/", "first visit /");
    let case = f.case;
    f.browser.eval(&format!("{axe}\n;true"));
    let version = f.browser.eval("axe.version");
    eprintln!("[{case}] axe-core {version}");

    assert_axe_clean(
        case,
        &mut f.browser,
        &format!("document.querySelector({})", js_str(BANNER)),
    );

    assert_equal_buttons(case, &mut f.browser, "default window");
    assert_keyboard_walk(case, &mut f.browser, "default window");
    for (w, h) in [(414, 800), (320, 640)] {
        f.browser.set_viewport(w, h);
        assert_equal_buttons(case, &mut f.browser, &format!("{w}x{h}"));
    }
    f.browser.set_viewport(414, 800);
    assert_keyboard_walk(case, &mut f.browser, "414x800");
    f.browser.reset_viewport();

    // After a decision: the settings control and the chat facade are ours too.
    f.browser.click(&banner_button("reject-all"));
    f.wait_banner_closed();
    f.step("after reject-all");
    f.browser.assert_visible(case, ZENDESK_FACADE);
    assert_axe_clean(
        case,
        &mut f.browser,
        &format!(
            "{{ include: [[{}], [{}]] }}",
            js_str(SETTINGS),
            js_str(ZENDESK_FACADE)
        ),
    );
    f.assert_nothing_contacted(first);

    // The settings page (what the control opens without JavaScript) is a whole document.
    let settings = f.url("/__consent/settings");
    f.browser.visit(&settings, &f.log);
    f.step("settings page");
    f.browser.eval(&format!("{axe}\n;true"));
    assert_axe_clean(case, &mut f.browser, "document");
    assert_equal_buttons(case, &mut f.browser, "settings page");
    f.assert_nothing_contacted(first);
    f.finish();
}
