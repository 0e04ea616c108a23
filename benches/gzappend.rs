//! Appending the settings control to a gzip page (`consentgate::gzappend`, what a page with
//! nothing to block costs) against the path it replaced: inflate the page, append, deflate at
//! level 1. Five streams of the same 60 KB page: compressed in one go at level 9 (a static
//! `.gz`: a few large dynamic blocks), and flushed as an origin that streams its rendering
//! would: at level 1 every 512 bytes (many small fixed blocks), at level 6 every 2 KB (many
//! small dynamic blocks, each with its own code tables); and in one go at level 6 (gzip's
//! default) and level 1 (nginx's `gzip_comp_level` default).
//!
//! Run: `cargo bench --bench gzappend` (best of 7 interleaved rounds, `std::time`; prints
//! microseconds per page and the ratio). `GZAPPEND_FILE=<file.gz>` adds a stream read from a
//! file (stream 5). `GZAPPEND_PROFILE=<stream 0-5>:<n>` only appends to that stream n times,
//! for callgrind (subtract a run with n = 0).

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use consentgate::codec::{decode_all, Coding, Encoder};
use consentgate::gzappend::GzipAppend;

const CONTROL: &[u8] = br#"<a href="/__consent/settings" class="cg-settings">Privacy settings</a>"#;

fn page() -> Vec<u8> {
    let mut html = b"<!doctype html><html><head><meta charset=utf-8></head><body>".to_vec();
    let mut i = 0u32;
    while html.len() < 60_000 {
        writeln!(
            html,
            "<article><h2>Product {i}</h2><img src=\"/img/{i}.jpg\" alt=\"\"><p>Text &amp; more about item {}</p><a href=\"/p/{i}\">Buy</a></article>",
            i.wrapping_mul(2654435761) % 9973
        )
        .expect("write to a Vec");
        i += 1;
    }
    html.extend_from_slice(b"</body></html>\n");
    html
}

fn gzip(data: &[u8], level: u32, flush_every: Option<usize>) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    for c in data.chunks(flush_every.unwrap_or(data.len())) {
        e.write_all(c).expect("gzip");
        if flush_every.is_some() {
            e.flush().expect("gzip");
        }
    }
    e.finish().expect("gzip")
}

fn append(gz: &[u8]) -> usize {
    let mut a = GzipAppend::new();
    let mut out = Vec::with_capacity(gz.len() + 256);
    for c in gz.chunks(16 * 1024) {
        a.write(c, &mut out).expect("append");
    }
    a.finish(CONTROL, &mut out).expect("append");
    out.len()
}

fn recompress(gz: &[u8]) -> usize {
    let mut plain = decode_all(Coding::Gzip, gz).expect("inflate");
    plain.extend_from_slice(CONTROL);
    let mut enc = Encoder::new(Coding::Gzip).expect("encoder");
    let mut out = Vec::new();
    for c in plain.chunks(16 * 1024) {
        enc.write(c, &mut out).expect("deflate");
    }
    enc.finish(&mut out).expect("deflate");
    out.len()
}

/// Best time per call over `rounds` rounds of `per_round` each.
fn best(f: &dyn Fn() -> usize, per_round: Duration, best_so_far: &mut Duration) {
    let (start, mut n) = (Instant::now(), 0u32);
    while start.elapsed() < per_round {
        black_box(f());
        n += 1;
    }
    *best_so_far = (*best_so_far).min(start.elapsed() / n.max(1));
}

fn main() {
    let html = page();
    let mut streams = vec![
        ("level 9, one piece".to_string(), gzip(&html, 9, None)),
        (
            "level 1, flushed every 512 B".to_string(),
            gzip(&html, 1, Some(512)),
        ),
        (
            "level 6, flushed every 2 KB".to_string(),
            gzip(&html, 6, Some(2048)),
        ),
        // What a `.gz` beside the page (gzip's default level) and nginx's `gzip on` (level 1)
        // send: the common cases.
        ("level 6, one piece".to_string(), gzip(&html, 6, None)),
        ("level 1, one piece".to_string(), gzip(&html, 1, None)),
    ];
    // A gzip file of one's own, e.g. the load test's page: benches/load/gen_pages.py writes
    // page-60k.html.gz.
    if let Ok(path) = std::env::var("GZAPPEND_FILE") {
        let gz = std::fs::read(&path).expect("GZAPPEND_FILE");
        streams.push((format!("file {path}"), gz));
    }
    if let Ok(p) = std::env::var("GZAPPEND_PROFILE") {
        let (i, n) = p.split_once(':').expect("GZAPPEND_PROFILE=<stream>:<n>");
        let gz = &streams[i.parse::<usize>().expect("stream")].1;
        for _ in 0..n.parse::<usize>().expect("n") {
            black_box(append(gz));
        }
        return;
    }
    for (name, gz) in &streams {
        let mut appended = decode_all(Coding::Gzip, gz).expect("inflate");
        appended.extend_from_slice(CONTROL);
        let mut out = Vec::new();
        let mut a = GzipAppend::new();
        a.write(gz, &mut out).expect("append");
        a.finish(CONTROL, &mut out).expect("append");
        assert_eq!(decode_all(Coding::Gzip, &out).expect("valid"), appended);
        let (mut t_append, mut t_recompress) = (Duration::MAX, Duration::MAX);
        for _ in 0..7 {
            best(&|| append(gz), Duration::from_millis(150), &mut t_append);
            best(
                &|| recompress(gz),
                Duration::from_millis(150),
                &mut t_recompress,
            );
        }
        println!(
            "{name} ({} KB page, {} bytes gzip): append {:.1} us, inflate+deflate {:.1} us, ratio {:.2}",
            appended.len() / 1000,
            gz.len(),
            t_append.as_secs_f64() * 1e6,
            t_recompress.as_secs_f64() * 1e6,
            t_append.as_secs_f64() / t_recompress.as_secs_f64()
        );
    }
}
