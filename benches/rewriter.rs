//! Rewriter throughput on realistic pages (5 KB, 60 KB, 1 MB, built from the demo's real-world
//! snippets and ordinary markup), next to lol_html's own ceilings on the same input:
//!
//! - `lol_html_no_handlers`: lol_html with no handlers at all (the ceiling for full consent);
//! - `lol_html_noop_handlers`: no-op handlers on exactly the selectors the policy registers when
//!   something is blocked (`Policy::handler_selectors`, so this cannot drift from the rewriter);
//! - `lol_html_body_only`: a no-op handler on `body` alone, what lol_html costs for the one thing
//!   full consent still needs (the settings control goes before `</body>`);
//! - `no_decision` (everything blocked), `partial_consent` (YouTube and Zendesk granted) and
//!   `full_consent` (nothing blocked; the settings control injected before `</body>`), each with
//!   the banner or control injection the proxy adds to a document;
//! - `full_consent_served`: full consent as the proxy serves it (`pipeline::BodyRewriter`): an
//!   ASCII-compatible page passes unparsed, chunk by chunk, and the settings control is appended
//!   at its end. `full_consent` above is lol_html's path, taken only by pages that must be
//!   transcoded (UTF-16).
//!
//! The charset is declared (as with `Content-Type: text/html; charset=utf-8`), input arrives in
//! 16 KiB chunks, as from the network. After criterion, a summary measured with `std::time`
//! (best of several interleaved rounds, robust on a shared machine) prints each case's ratio to
//! its own ceiling.
//!
//! Run: `cargo bench --bench rewriter`
//! Summary only (fast): `REWRITER_BENCH=summary cargo bench --bench rewriter`
//! One case in a loop, for a profiler:
//! `REWRITER_BENCH=profile:no_decision:60KB:200 valgrind --tool=callgrind target/release/deps/rewriter-*`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};

use consentgate::catalog::Catalog;
use consentgate::codec::{Coding, Fragment};
use consentgate::decision::Decision;
use consentgate::demo;
use consentgate::matcher::ServiceSet;
use consentgate::pipeline::BodyRewriter;
use consentgate::policy::{HandlerSelector, Policy, RewriteLimits};
use consentgate::rewrite::{Charset, Injection, PageRewriter};

const CHUNK: usize = 16 * 1024;
const SIZES: [(&str, usize); 3] = [("5KB", 5 * 1024), ("60KB", 60 * 1024), ("1MB", 1024 * 1024)];

/// A page of about `size` bytes: head with trackers, body with articles, images, links, first-party
/// scripts, a YouTube embed and a chat widget at the end.
fn page(size: usize) -> Vec<u8> {
    let mut s =
        String::from("<!doctype html><html><head><meta charset=\"utf-8\"><title>Shop</title>\n");
    s.push_str("<link rel=\"stylesheet\" href=\"/css/site.css\"><script src=\"/js/app.js\" defer></script>\n");
    s.push_str(demo::ANALYTICS);
    s.push_str("</head><body><header><nav><a href=\"/\">Home</a> <a href=\"/shop\">Shop</a></nav></header>\n");
    let block = "<article class=\"product\"><h2>Product name</h2><img src=\"/img/p.jpg\" srcset=\"/img/p.jpg 1x, /img/p@2x.jpg 2x\" alt=\"\" loading=\"lazy\"><p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation.</p><a href=\"/p/1\" class=\"btn\">Buy</a><script>window.analyticsQueue=(window.analyticsQueue||[]).concat([{sku:1}]);</script></article>\n";
    let tail_len = demo::YOUTUBE.len() + demo::ZENDESK.len() + demo::FRESHCHAT.len() + 64;
    while s.len() + block.len() + tail_len < size {
        s.push_str(block);
    }
    s.push_str(demo::YOUTUBE);
    s.push_str(demo::ZENDESK);
    s.push_str(demo::FRESHCHAT);
    s.push_str("</body></html>\n");
    s.into_bytes()
}

struct Setup {
    policy: Arc<Policy>,
    none: ServiceSet,
    partial: ServiceSet,
    all: ServiceSet,
}

impl Setup {
    fn new() -> Setup {
        let catalog = Catalog::builtin().expect("built-in catalog");
        let policy = Arc::new(Policy::new(catalog, RewriteLimits::default()).expect("policy"));
        let mut partial = Decision::undecided();
        partial.decided = true;
        for id in ["youtube", "zendesk-chat"] {
            partial
                .granted
                .insert(policy.catalog.index_of(id).expect(id));
        }
        let mut all = Decision::undecided();
        all.decided = true;
        for i in 0..policy.catalog.len() {
            all.granted.insert(i);
        }
        Setup {
            none: policy.blocked(&Decision::undecided()),
            partial: policy.blocked(&partial),
            all: policy.blocked(&all),
            policy,
        }
    }
}

/// Roughly what the proxy injects: the banner before a decision, the settings control after.
fn injection(decided: bool) -> Injection {
    Box::new(move |stats| {
        let html = if decided {
            "<div data-consentgate-action=\"settings\"><a href=\"#consentgate-banner\">Privacy settings</a></div>".to_string()
        } else {
            format!(
                "<div data-consentgate=\"banner\" data-seen=\"{}\"><form method=\"post\" action=\"/__consent\"><button>Accept all</button></form></div>",
                stats.neutralized
            )
        };
        Arc::new(Fragment::new(html))
    })
}

fn rewrite(policy: &Arc<Policy>, blocked: &ServiceSet, decided: bool, html: &[u8]) -> usize {
    let page = url::Url::parse("https://shop.example/").expect("url");
    let charset = Charset {
        encoding: lol_html::AsciiCompatibleEncoding::utf_8(),
        from_meta: false,
    };
    let mut rw = PageRewriter::with_injection(
        policy.clone(),
        blocked.clone(),
        page,
        charset,
        Some(injection(decided)),
    );
    let mut out = Vec::with_capacity(html.len() + 4096);
    for chunk in html.chunks(CHUNK) {
        rw.write(chunk, &mut out).expect("rewrite");
    }
    rw.finish(&mut out).expect("finish");
    out.len()
}

/// Full consent as the proxy serves an identity page: chunks the body rewriter lets pass are
/// forwarded as they came (copied here, as the ceilings copy lol_html's output), then its end.
/// Returns the output and how many chunks went through the rewriter instead.
fn served(policy: &Arc<Policy>, blocked: &ServiceSet, html: &[u8]) -> (Vec<u8>, usize) {
    let page = || url::Url::parse("https://shop.example/").expect("url");
    let mut br = BodyRewriter::new(
        policy.clone(),
        blocked.clone(),
        page,
        Coding::Identity,
        Some("text/html; charset=utf-8"),
        Some(injection(true)),
    )
    .expect("body rewriter");
    let (mut out, mut written) = (Vec::with_capacity(html.len() + 4096), 0);
    for chunk in html.chunks(CHUNK) {
        if br.passes_through_chunk(chunk) {
            out.extend_from_slice(chunk);
        } else {
            out.extend(br.write(chunk).expect("write"));
            written += 1;
        }
    }
    out.extend(br.finish().expect("finish"));
    (out, written)
}

/// Issue 7's yardstick: no-op handlers on every URL-bearing selector a naive policy would
/// use (`script` with its text), plus `body` for the banner.
const URL_SELECTORS: &[HandlerSelector] = &[
    HandlerSelector {
        css: "script",
        text: true,
    },
    HandlerSelector {
        css: "iframe",
        text: false,
    },
    HandlerSelector {
        css: "img",
        text: false,
    },
    HandlerSelector {
        css: "link",
        text: false,
    },
    HandlerSelector {
        css: "source",
        text: false,
    },
    HandlerSelector {
        css: "embed",
        text: false,
    },
    HandlerSelector {
        css: "object",
        text: false,
    },
    HandlerSelector {
        css: "a[ping]",
        text: false,
    },
    HandlerSelector {
        css: "body",
        text: false,
    },
];

/// lol_html alone, with no-op handlers on the policy's selectors when something is blocked
/// (`blocking`) and/or on `body` (`inject`); with neither, the bare parser's ceiling.
fn ceiling(policy: &Policy, blocking: bool, inject: bool, html: &[u8]) -> usize {
    noop_handlers(&policy.handler_selectors(blocking, inject), html)
}

fn noop_handlers(selectors: &[HandlerSelector], html: &[u8]) -> usize {
    use lol_html::html_content::TextChunk;
    use lol_html::send::{Element, ElementContentHandlers, HtmlRewriter, Settings};
    let mut out = Vec::with_capacity(html.len());
    let mut settings = Settings::new_send();
    {
        for sel in selectors {
            let mut h = ElementContentHandlers::default().element(|_: &mut Element<'_, '_>| Ok(()));
            if sel.text {
                h = h.text(|_: &mut TextChunk<'_>| Ok(()));
            }
            settings = settings.append_element_content_handler((
                std::borrow::Cow::Owned(sel.css.parse().expect("selector")),
                h,
            ));
        }
    }
    let mut rw = HtmlRewriter::new(settings, |c: &[u8]| out.extend_from_slice(c));
    for chunk in html.chunks(CHUNK) {
        rw.write(chunk).expect("write");
    }
    rw.end().expect("end");
    out.len()
}

#[derive(Clone, Copy, PartialEq)]
enum Case {
    NoHandlers,
    NoopHandlers,
    NoopUrlSelectors,
    BodyOnly,
    NoDecision,
    Partial,
    Full,
    FullServed,
}

const CASES: [(Case, &str); 8] = [
    (Case::NoHandlers, "lol_html_no_handlers"),
    (Case::NoopHandlers, "lol_html_noop_handlers"),
    (Case::NoopUrlSelectors, "lol_html_noop_url_selectors"),
    (Case::BodyOnly, "lol_html_body_only"),
    (Case::NoDecision, "no_decision"),
    (Case::Partial, "partial_consent"),
    (Case::Full, "full_consent"),
    (Case::FullServed, "full_consent_served"),
];

fn run(s: &Setup, case: Case, html: &[u8]) -> usize {
    match case {
        Case::NoHandlers => ceiling(&s.policy, false, false, html),
        Case::NoopHandlers => ceiling(&s.policy, true, true, html),
        Case::NoopUrlSelectors => noop_handlers(URL_SELECTORS, html),
        Case::BodyOnly => ceiling(&s.policy, false, true, html),
        Case::NoDecision => rewrite(&s.policy, &s.none, false, html),
        Case::Partial => rewrite(&s.policy, &s.partial, true, html),
        Case::Full => rewrite(&s.policy, &s.all, true, html),
        Case::FullServed => served(&s.policy, &s.all, html).0.len(),
    }
}

fn criterion_benches(c: &mut Criterion, s: &Setup) {
    let mut g = c.benchmark_group("rewriter");
    for (name, size) in SIZES {
        let html = page(size);
        g.throughput(Throughput::Bytes(html.len() as u64));
        for (case, label) in CASES {
            g.bench_with_input(BenchmarkId::new(label, name), &html, |b, h| {
                b.iter(|| run(s, case, h))
            });
        }
    }
    g.finish();
}

/// MB/s of each case on each page: best of `rounds` interleaved rounds of ~`per_round` each.
fn summary(s: &Setup, rounds: usize, per_round: Duration) {
    println!("\nSummary: MB/s, best of {rounds} interleaved rounds (~{per_round:?} per case per round), 16 KiB chunks");
    println!(
        "{:<6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} | {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "page",
        "no_hdl",
        "noop",
        "url",
        "body",
        "no_dec",
        "partial",
        "full",
        "served",
        "nd/noop",
        "nd/url",
        "pc/noop",
        "full/nh",
        "full/bd",
        "srv/nh"
    );
    for (name, size) in SIZES {
        let html = page(size);
        // Iterations per round from one warm-up run of the slowest case.
        let t = Instant::now();
        run(s, Case::NoDecision, &html);
        let iters = (per_round.as_secs_f64() / t.elapsed().as_secs_f64().max(1e-6)).clamp(1.0, 1e6)
            as usize;
        let mut best = [f64::MAX; CASES.len()];
        for _ in 0..rounds {
            for (i, (case, _)) in CASES.iter().enumerate() {
                let t = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(run(s, *case, std::hint::black_box(&html)));
                }
                best[i] = best[i].min(t.elapsed().as_secs_f64() / iters as f64);
            }
        }
        let mbs = best.map(|secs| html.len() as f64 / secs / 1e6);
        println!(
            "{:<6} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} | {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2}",
            name,
            mbs[0],
            mbs[1],
            mbs[2],
            mbs[3],
            mbs[4],
            mbs[5],
            mbs[6],
            mbs[7],
            mbs[4] / mbs[1],
            mbs[4] / mbs[2],
            mbs[5] / mbs[1],
            mbs[6] / mbs[0],
            mbs[6] / mbs[3],
            mbs[7] / mbs[0]
        );
    }
    println!("columns: lol_html with no handlers, with no-op handlers on the policy's selectors, on issue 7's URL selectors (script, iframe, img, link, source, embed, object, a[ping], body), with a no-op body handler only; the rewriter with no decision, partial and full consent (lol_html's path); full consent as the proxy serves it (the page unparsed, the control appended)");
    println!("targets: nd/noop (no decision / no-op ceiling) >= 1.0; full/nh (full consent / no-handler ceiling) >= 0.8; full/bd = full consent / body-only ceiling; srv/nh = full consent as served / no-handler ceiling");
}

fn main() {
    let s = Setup::new();
    // The served path must be what it claims: the page as it came, the control after it.
    let html = page(5 * 1024);
    let (out, written) = served(&s.policy, &s.all, &html);
    assert_eq!(written, 0, "full consent passes every chunk");
    assert!(out.starts_with(&html) && out.ends_with(b"Privacy settings</a></div>"));
    let mode = std::env::var("REWRITER_BENCH").unwrap_or_default();
    if let Some(spec) = mode.strip_prefix("profile:") {
        // profile:<case>:<page>:<iterations>, e.g. profile:no_decision:60KB:200
        let parts: Vec<&str> = spec.split(':').collect();
        let case = CASES
            .iter()
            .find(|(_, l)| Some(l) == parts.first())
            .map(|(c, _)| *c)
            .expect("case: lol_html_no_handlers|lol_html_noop_handlers|lol_html_noop_url_selectors|lol_html_body_only|no_decision|partial_consent|full_consent|full_consent_served");
        let size = SIZES
            .iter()
            .find(|(n, _)| Some(n) == parts.get(1))
            .map(|(_, s)| *s)
            .expect("page: 5KB|60KB|1MB");
        let iters: usize = parts.get(2).and_then(|n| n.parse().ok()).unwrap_or(100);
        let html = page(size);
        let mut n = 0;
        for _ in 0..iters {
            n += run(&s, case, &html);
        }
        println!("{n} bytes out");
        return;
    }
    if mode != "summary" {
        let mut c = Criterion::default().configure_from_args();
        criterion_benches(&mut c, &s);
        c.final_summary();
    }
    summary(&s, 7, Duration::from_millis(150));
}
