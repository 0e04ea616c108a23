//! Rewriter throughput (MB/s) on realistic pages: a 60 KB and a 1 MB page built from the demo's
//! real-world snippets and ordinary markup, with no decision (everything blocked), partial
//! consent, and full consent through the rewriter (what a page costs when the proxy must still
//! parse it). Also lol_html with no handlers on the same input: the ceiling to compare with.
//!
//! Run: cargo bench --bench rewriter

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use consentgate::catalog::Catalog;
use consentgate::decision::Decision;
use consentgate::demo;
use consentgate::policy::{Policy, RewriteLimits};
use consentgate::rewrite::{Charset, PageRewriter};

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

fn rewrite(policy: &Arc<Policy>, d: &Decision, html: &[u8]) -> usize {
    let page = url::Url::parse("https://shop.example/").unwrap();
    let mut rw = PageRewriter::new(policy.clone(), policy.blocked(d), page, Charset::default());
    let mut out = Vec::with_capacity(html.len() + 4096);
    for chunk in html.chunks(16 * 1024) {
        rw.write(chunk, &mut out).unwrap();
    }
    rw.finish(&mut out).unwrap();
    out.len()
}

fn ceiling(html: &[u8]) -> usize {
    let mut out = Vec::with_capacity(html.len());
    let mut rw = lol_html::HtmlRewriter::new(lol_html::Settings::new(), |c: &[u8]| {
        out.extend_from_slice(c)
    });
    for chunk in html.chunks(16 * 1024) {
        rw.write(chunk).unwrap();
    }
    rw.end().unwrap();
    out.len()
}

fn bench(c: &mut Criterion) {
    let catalog = Catalog::builtin().unwrap();
    let policy = Arc::new(Policy::new(catalog.clone(), RewriteLimits::default()).unwrap());
    let none = Decision::undecided();
    let mut partial = Decision::undecided();
    partial.decided = true;
    for id in ["youtube", "zendesk-chat"] {
        partial.granted.insert(catalog.index_of(id).unwrap());
    }
    let mut all = Decision::undecided();
    all.decided = true;
    for i in 0..catalog.len() {
        all.granted.insert(i);
    }
    let mut g = c.benchmark_group("rewriter");
    for (name, size) in [("60KB", 60 * 1024), ("1MB", 1024 * 1024)] {
        let html = page(size);
        g.throughput(Throughput::Bytes(html.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("lol_html_no_handlers", name),
            &html,
            |b, h| b.iter(|| ceiling(h)),
        );
        g.bench_with_input(
            BenchmarkId::new("blocked_no_decision", name),
            &html,
            |b, h| b.iter(|| rewrite(&policy, &none, h)),
        );
        g.bench_with_input(BenchmarkId::new("partial_consent", name), &html, |b, h| {
            b.iter(|| rewrite(&policy, &partial, h))
        });
        g.bench_with_input(
            BenchmarkId::new("allowed_all_through_rewriter", name),
            &html,
            |b, h| b.iter(|| rewrite(&policy, &all, h)),
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
