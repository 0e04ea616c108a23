//! The proxy over real TCP: an in-process origin, the proxy in front, a real HTTP client.

mod common;

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;

use common::*;

const ZD: &str = "https://static.zdassets.com/ekr/snippet.js?key=abc";

async fn through(html: &'static str) -> String {
    let o = origin(move |_| OriginResponse::html(html)).await;
    let g = gate(o.addr).await;
    let got = fetch(g.addr, "/").await;
    assert_eq!(got.status, 200);
    got.text()
}

/// One element kind or URL form: fetched through the proxy with no decision, it must come out
/// neutralized (no attribute still pointing at the service, the service named).
macro_rules! blocked {
    ($name:ident, $html:expr, $service:expr) => {
        #[tokio::test]
        async fn $name() {
            let out = through($html).await;
            // <base href> fetches nothing itself; what resolves against it is checked.
            let checked = match out.find("<base ") {
                Some(i) => format!(
                    "{}{}",
                    &out[..i],
                    &out[i + out[i..].find('>').unwrap() + 1..]
                ),
                None => out.clone(),
            };
            assert!(
                out.contains(concat!("data-consentgate-service=\"", $service, "\"")),
                "not neutralized: {out}"
            );
            for attr in [
                " src=\"",
                " srcset=\"",
                " poster=\"",
                " data=\"",
                " href=\"",
            ] {
                if let Some(i) = checked.find(attr) {
                    let rest = &checked[i + attr.len()..];
                    let val = &rest[..rest.find('"').unwrap_or(rest.len())];
                    assert!(
                        !val.contains("zdassets")
                            && !val.contains("facebook")
                            && !val.contains("youtube"),
                        "live URL left in {attr}: {out}"
                    );
                }
            }
        }
    };
}

blocked!(
    script_src_absolute,
    r#"<script src="https://static.zdassets.com/ekr/snippet.js?key=abc"></script>"#,
    "zendesk-chat"
);
blocked!(
    script_src_protocol_relative,
    r#"<script src="//static.zdassets.com/ekr/snippet.js"></script>"#,
    "zendesk-chat"
);
blocked!(
    script_src_mixed_case,
    r#"<script src="HTTPS://Static.ZDAssets.COM/ekr/snippet.js"></script>"#,
    "zendesk-chat"
);
blocked!(
    script_src_entity_encoded,
    r#"<script src="https:&#x2F;&#x2F;static&#46;zdassets.com/ekr/snippet.js"></script>"#,
    "zendesk-chat"
);
blocked!(
    script_src_trailing_dot,
    r#"<script src="https://static.zdassets.com./ekr/snippet.js"></script>"#,
    "zendesk-chat"
);
blocked!(
    script_src_userinfo,
    r#"<script src="https://user:pw@static.zdassets.com/ekr/snippet.js"></script>"#,
    "zendesk-chat"
);
blocked!(
    script_src_module,
    r#"<script type="module" src="https://static.zdassets.com/m.js"></script>"#,
    "zendesk-chat"
);
blocked!(
    script_src_nomodule,
    r#"<script nomodule src="https://static.zdassets.com/l.js"></script>"#,
    "zendesk-chat"
);
blocked!(
    script_src_relative_under_base,
    r#"<base href="https://static.zdassets.com/ekr/"><script src="snippet.js"></script>"#,
    "zendesk-chat"
);
blocked!(
    script_src_unquoted,
    r#"<script src=https://static.zdassets.com/ekr/snippet.js></script>"#,
    "zendesk-chat"
);
blocked!(
    inline_zopim_loader,
    r#"<script>window.$zopim||(function(d,s){var z=$zopim=function(c){z._.push(c)};$.src="//v2.zopim.com/?KEY";})(document,"script");</script>"#,
    "zendesk-chat"
);
blocked!(
    inline_freshchat,
    r#"<script>function initFreshChat(){window.fcWidget.init({token:"t",host:"https://wchat.freshchat.com"});}</script>"#,
    "freshchat"
);
blocked!(
    inline_intercom,
    r#"<script>window.intercomSettings = { app_id: "x" };(function(){var w=window;var ic=w.Intercom;})();</script>"#,
    "intercom"
);
blocked!(
    inline_tawkto,
    r#"<script>var Tawk_API=Tawk_API||{}, Tawk_LoadStart=new Date();</script>"#,
    "tawkto"
);
blocked!(
    inline_meta_pixel,
    r#"<script>!function(f,b,e,v){}(window,document,'script','https://connect.facebook.net/en_US/fbevents.js');fbq('init','1');</script>"#,
    "meta-pixel"
);
blocked!(
    iframe_src,
    r#"<iframe src="https://www.youtube.com/embed/x"></iframe>"#,
    "youtube"
);
blocked!(
    frame_src,
    r#"<frameset><frame src="https://www.youtube.com/embed/x"></frameset>"#,
    "youtube"
);
blocked!(
    img_src_pixel,
    r#"<img src="https://www.facebook.com/tr?id=1&amp;ev=PageView">"#,
    "meta-pixel"
);
blocked!(
    img_srcset,
    r#"<img srcset="/a.png 1x, https://i.ytimg.com/vi/x/hq.jpg 2x">"#,
    "youtube"
);
blocked!(
    picture_source_srcset,
    r#"<picture><source srcset="https://i.ytimg.com/vi/x/a.webp"><img src="/a.png"></picture>"#,
    "youtube"
);
blocked!(
    video_poster,
    r#"<video poster="https://i.ytimg.com/vi/x/p.jpg"></video>"#,
    "youtube"
);
blocked!(
    embed_src,
    r#"<embed src="https://www.youtube.com/v/x">"#,
    "youtube"
);
blocked!(
    object_data,
    r#"<object data="https://www.youtube.com/v/x"></object>"#,
    "youtube"
);
blocked!(
    noscript_pixel,
    r#"<noscript><img height="1" width="1" src="https://www.facebook.com/tr?id=1&ev=PageView&noscript=1"/></noscript>"#,
    "meta-pixel"
);
blocked!(
    punycode_idn_host,
    r#"<iframe src="https://www.YOUTUBE.com/embed/x"></iframe>"#,
    "youtube"
);

#[tokio::test]
async fn links_to_services_are_removed() {
    for rel in [
        "preconnect",
        "dns-prefetch",
        "preload",
        "prefetch",
        "modulepreload",
        "stylesheet",
        "icon",
    ] {
        let html = format!(
            r#"<link rel="{rel}" href="https://static.zdassets.com/x" as="script"><p>ok</p>"#
        );
        let html: &'static str = Box::leak(html.into_boxed_str());
        let out = through(html).await;
        assert_eq!(out, "<p>ok</p>", "{rel}");
    }
}

#[tokio::test]
async fn a_ping_to_a_service_is_dropped() {
    let out = through(r#"<a href="/next" ping="https://www.facebook.com/tr?x=1">next</a>"#).await;
    assert_eq!(out, r#"<a href="/next">next</a>"#);
}

#[tokio::test]
async fn comments_and_first_party_are_untouched() {
    let html = r#"<!-- <script src="https://static.zdassets.com/x.js"></script> --><script src="/app.js"></script><img src="https://cdn.example.org/x.png">"#;
    assert_eq!(through(html).await, html);
}

#[tokio::test]
async fn full_consent_is_byte_identical_and_partial_consent_blocks_the_rest() {
    let html = "<!doctype html><html><head><script src=\"https://static.zdassets.com/ekr/snippet.js\"></script></head><body><iframe src=\"https://www.youtube.com/embed/x\"></iframe>\u{e9}</body></html>";
    let o = origin(move |_| OriginResponse::html(html)).await;
    let g = gate(o.addr).await;
    let all = consent(g.addr, "action=accept-all").await;
    let got = fetch_with_cookie(g.addr, "/", &all).await;
    assert_eq!(got.body, html.as_bytes());

    let yt = consent(g.addr, "action=save&service=youtube").await;
    let got = fetch_with_cookie(g.addr, "/", &yt).await.text();
    assert!(
        got.contains("<iframe src=\"https://www.youtube.com/embed/x\">"),
        "{got}"
    );
    assert!(
        got.contains("data-consentgate-service=\"zendesk-chat\""),
        "{got}"
    );

    let none = consent(g.addr, "action=reject-all").await;
    let got = fetch_with_cookie(g.addr, "/", &none).await.text();
    assert!(
        got.contains("data-consentgate-service=\"youtube\""),
        "{got}"
    );
}

/// Full consent, gzip from the origin: the page as a browser navigates to it is the origin's
/// compressed bytes passed on (not inflated and deflated again), with the settings control
/// appended to the stream; the result is one valid gzip member (CRC and length checked).
#[tokio::test]
async fn full_consent_gzip_page_passes_compressed_with_the_control_appended() {
    let page = format!(
        "<!doctype html><html><head><meta charset=utf-8></head><body>{}<script src=\"{ZD}\"></script></body></html>",
        "<p>caf\u{e9} filler</p>\n".repeat(3000)
    );
    let gz = compress("gzip", page.as_bytes());
    let o = gzip_origin(gz.clone()).await;
    let g = gate(o.addr).await;
    let all = consent(g.addr, "action=accept-all").await;
    let got = fetch_req(
        g.addr,
        get(g.addr, "/")
            .header("accept-encoding", "gzip")
            .header("sec-fetch-dest", "document")
            .header("cookie", &all),
    )
    .await;
    assert_eq!(got.header("content-encoding"), Some("gzip"));
    let plain = String::from_utf8(decompress("gzip", &got.body)).unwrap();
    let (before, control) = plain.split_at(page.len());
    assert_eq!(before, page);
    assert!(
        control.contains("data-consentgate-action=\"settings\""),
        "{control}"
    );
    // All but the last block's first byte and the end are the origin's own bytes.
    let same = gz
        .iter()
        .zip(got.body.iter())
        .filter(|(a, b)| a == b)
        .count();
    assert!(
        same + 16 > gz.len(),
        "{same} of {} bytes passed on",
        gz.len()
    );
}

#[tokio::test]
async fn tampered_cookie_means_no_decision() {
    let html = "<iframe src=\"https://www.youtube.com/embed/x\"></iframe>";
    let o = origin(move |_| OriginResponse::html(html)).await;
    let g = gate(o.addr).await;
    let all = consent(g.addr, "action=accept-all").await;
    // Flip one character of the payload.
    let mut bytes = all.into_bytes();
    let i = "consentgate=1.".len() + 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    let got = fetch_with_cookie(g.addr, "/", &tampered).await.text();
    assert!(
        got.contains("data-consentgate-service=\"youtube\""),
        "{got}"
    );
    let state = fetch_with_cookie(g.addr, "/__consent/state", &tampered).await;
    assert!(
        state.text().contains("\"decided\":false"),
        "{}",
        state.text()
    );
    // A cookie signed with another key is no decision either.
    let got = fetch_with_cookie(g.addr, "/", "consentgate=1.MTIzfHlvdXR1YmU.AAAA")
        .await
        .text();
    assert!(
        got.contains("data-consentgate-service=\"youtube\""),
        "{got}"
    );
}

#[tokio::test]
async fn consent_endpoint_contract() {
    let o = origin(|_| OriginResponse::html("x")).await;
    let g = gate(o.addr).await;
    let addr = g.addr;
    let post = |headers: Vec<(&'static str, String)>, body: &'static str| {
        let mut b = Request::post("/__consent")
            .header("host", format!("{addr}"))
            .header("content-type", "application/x-www-form-urlencoded");
        for (k, v) in headers {
            b = b.header(k, v);
        }
        b.body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    };
    // Cross-site: refused, no cookie.
    let got = send(
        addr,
        post(
            vec![("origin", "https://evil.example".into())],
            "action=accept-all",
        ),
    )
    .await;
    assert_eq!(got.status, 403);
    assert!(got.header("set-cookie").is_none());
    let got = send(
        addr,
        post(
            vec![("sec-fetch-site", "cross-site".into())],
            "action=accept-all",
        ),
    )
    .await;
    assert_eq!(got.status, 403);
    // Same-origin: 303 back to the Referer path, cookie with the contract's attributes.
    let got = send(
        addr,
        post(
            vec![
                ("origin", format!("http://{addr}")),
                ("referer", format!("http://{addr}/shop/item?id=3")),
            ],
            "action=save&service=youtube&service=intercom&service=no-such",
        ),
    )
    .await;
    assert_eq!(got.status, 303);
    assert_eq!(got.header("location"), Some("/shop/item?id=3"));
    let sc = got.header("set-cookie").unwrap();
    for part in [
        "consentgate=",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=15552000",
    ] {
        assert!(sc.contains(part), "{part} missing in {sc}");
    }
    assert!(!sc.contains("Secure"), "{sc}");
    let cookie = sc.split(';').next().unwrap().to_string();
    let state: serde_json::Value = serde_json::from_slice(
        &fetch_with_cookie(addr, "/__consent/state", &cookie)
            .await
            .body,
    )
    .unwrap();
    assert_eq!(state["decided"], true);
    assert_eq!(state["services"]["youtube"], true);
    assert_eq!(state["services"]["intercom"], true);
    assert_eq!(state["services"]["meta-pixel"], false);
    // Over TLS (as told by the front proxy) the cookie is Secure; no Referer → back to /.
    let got = send(
        addr,
        post(
            vec![
                ("sec-fetch-site", "same-origin".into()),
                ("x-forwarded-proto", "https".into()),
            ],
            "action=reject-all",
        ),
    )
    .await;
    assert_eq!(got.status, 303);
    assert_eq!(got.header("location"), Some("/"));
    assert!(got.header("set-cookie").unwrap().contains("; Secure"));
    // Bad action, wrong method.
    let got = send(addr, post(vec![], "action=maybe")).await;
    assert_eq!(got.status, 400);
    let got = fetch(addr, "/__consent").await;
    assert_eq!(got.status, 405);
    // Undecided state.
    let got = fetch(addr, "/__consent/state").await;
    let state: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(state["decided"], false);
    assert_eq!(state["services"]["zendesk-chat"], false);
    assert_eq!(got.header("cache-control"), Some("no-store"));
    // The origin never saw any of it.
    assert_eq!(o.count(), 0);
}

fn compress(coding: &str, data: &[u8]) -> Vec<u8> {
    match coding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(data).unwrap();
            }
            out
        }
        "zstd" => zstd::encode_all(data, 3).unwrap(),
        _ => unreachable!(),
    }
}

fn decompress(coding: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match coding {
        "gzip" => flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .map(|_| ()),
        "deflate" => flate2::read::ZlibDecoder::new(data)
            .read_to_end(&mut out)
            .map(|_| ()),
        "br" => brotli::Decompressor::new(data, 4096)
            .read_to_end(&mut out)
            .map(|_| ()),
        "zstd" => zstd::stream::read::Decoder::new(data)
            .unwrap()
            .read_to_end(&mut out)
            .map(|_| ()),
        _ => unreachable!(),
    }
    .unwrap_or_else(|e| panic!("{coding} body does not decode: {e}"));
    out
}

/// A page a browser navigates to gets the banner in every coding, and decoded it is the same
/// page as the uncompressed one (gzip splices in the banner's deflate blocks, made once per
/// consent state; the second request reuses them).
#[tokio::test]
async fn the_banner_reads_the_same_in_every_coding() {
    let page = format!(
        "<!doctype html><html><head><meta charset=utf-8></head><body>{}<script src=\"{ZD}\"></script><p>after</p></body></html>",
        "<p>filler</p>".repeat(500)
    );
    let mut plain_pages = Vec::new();
    for coding in ["identity", "gzip", "deflate", "br", "zstd"] {
        let body = match coding {
            "identity" => page.clone().into_bytes(),
            c => compress(c, page.as_bytes()),
        };
        let o = origin(move |_| {
            let r = OriginResponse::html("").with_body(body.clone());
            match coding {
                "identity" => r,
                c => r.header("content-encoding", c),
            }
        })
        .await;
        let g = gate(o.addr).await;
        for round in 0..2 {
            let got = fetch_req(
                g.addr,
                get(g.addr, "/")
                    .header("accept-encoding", coding)
                    .header("sec-fetch-dest", "document"),
            )
            .await;
            let plain = match coding {
                "identity" => got.body.to_vec(),
                c => {
                    assert_eq!(got.header("content-encoding"), Some(c));
                    decompress(c, &got.body)
                }
            };
            let plain = String::from_utf8(plain).unwrap();
            assert_eq!(
                plain.matches("id=\"consentgate-banner\"").count(),
                1,
                "{coding}"
            );
            let banner_at = plain.find("id=\"consentgate-banner\"").unwrap();
            assert!(banner_at > plain.find("<p>after</p>").unwrap(), "{coding}");
            assert!(plain.ends_with("</body></html>"), "{coding} {round}");
            plain_pages.push((coding, round, plain));
        }
    }
    let (_, _, first) = &plain_pages[0];
    for (coding, round, p) in &plain_pages {
        assert_eq!(p, first, "{coding} round {round}");
    }
}

/// An origin that answers every request with `body` as a gzip-encoded HTML page.
async fn gzip_origin(body: Vec<u8>) -> Origin {
    origin(move |_| {
        OriginResponse::html("")
            .header("content-encoding", "gzip")
            .with_body(body.clone())
    })
    .await
}

#[tokio::test]
async fn compressed_pages_are_decoded_rewritten_and_reencoded() {
    let page = format!(
        "<html><body>{}<script src=\"{ZD}\"></script></body></html>",
        "<p>filler</p>".repeat(5000)
    );
    for coding in ["gzip", "deflate", "br", "zstd"] {
        let body = compress(coding, page.as_bytes());
        let len = body.len().to_string();
        let o = origin(move |_| {
            OriginResponse::html("")
                .header("content-encoding", coding)
                .header("content-length", &len)
                .with_body(body.clone())
        })
        .await;
        let g = gate(o.addr).await;
        let got = fetch_req(
            g.addr,
            get(g.addr, "/").header("accept-encoding", "gzip, deflate, br, zstd"),
        )
        .await;
        assert_eq!(got.header("content-encoding"), Some(coding));
        assert!(
            got.header("content-length").is_none(),
            "{coding}: stale length"
        );
        let plain = String::from_utf8(decompress(coding, &got.body)).unwrap();
        assert!(
            plain.contains("data-consentgate-src=\"https://static.zdassets.com"),
            "{coding}"
        );
        assert!(plain.ends_with("</script></body></html>"), "{coding}");
        assert_eq!(plain.matches("<p>filler</p>").count(), 5000, "{coding}");
        // The origin was only offered codings we can undo.
        assert_eq!(
            o.last().headers["accept-encoding"],
            "gzip, deflate, br, zstd"
        );
    }
}

#[tokio::test]
async fn broken_gzip_aborts_the_response() {
    let mut body = compress(
        "gzip",
        format!("<script src=\"{ZD}\"></script>{}", "x".repeat(100_000)).as_bytes(),
    );
    body.truncate(body.len() / 2);
    let o = gzip_origin(body).await;
    let g = gate(o.addr).await;
    // Either the head never completes or the body ends in an error: never a response that
    // looks complete.
    let req = get(g.addr, "/")
        .header("accept-encoding", "gzip")
        .body(Full::<Bytes>::default())
        .unwrap();
    match try_send(g.addr, req).await {
        Err(_) => {}
        Ok(resp) => assert!(
            resp.into_body().collect().await.is_err(),
            "truncated gzip looked complete"
        ),
    }
}

#[tokio::test]
async fn legacy_charset_page_keeps_its_bytes() {
    let page = "<p>Café crème — Grüße</p><script>var s='é';</script><iframe src=\"https://www.youtube.com/embed/x\"></iframe>";
    let (latin1, _, _) = encoding_rs::WINDOWS_1252.encode(page);
    let latin1 = latin1.into_owned();
    let o2 = origin(move |_| OriginResponse {
        status: 200,
        headers: vec![(
            "content-type".into(),
            "text/html; charset=windows-1252".into(),
        )],
        body: OriginBody::Full(latin1.clone()),
    })
    .await;
    let g = gate(o2.addr).await;
    let got = fetch(g.addr, "/").await;
    let (text, _, malformed) = encoding_rs::WINDOWS_1252.decode(&got.body);
    assert!(!malformed);
    assert!(text.contains("<p>Café crème — Grüße</p>"), "{text}");
    assert!(text.contains("var s='é';"), "{text}");
    assert!(
        text.contains("data-consentgate-src=\"https://www.youtube.com/embed/x\""),
        "{text}"
    );
}

#[tokio::test]
async fn first_bytes_arrive_before_the_origin_finishes() {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let rx = std::sync::Mutex::new(Some(rx));
    let o = origin(move |_| OriginResponse {
        status: 200,
        headers: vec![("content-type".into(), "text/html".into())],
        body: OriginBody::Stream(rx.lock().unwrap().take().expect("one request")),
    })
    .await;
    let g = gate(o.addr).await;
    let head = format!(
        "<html><head><title>t</title></head><body>{}",
        "<p>first part</p>".repeat(200)
    );
    tx.send(Bytes::from(head)).await.unwrap();
    let resp = send_streaming(g.addr, get(g.addr, "/").body(Full::default()).unwrap()).await;
    let mut body = resp.into_body();
    // The origin is still open; the proxy must already have sent rewritten bytes.
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first bytes while the origin is still sending")
        .unwrap()
        .unwrap();
    let first = frame.into_data().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("first part"));
    tx.send(Bytes::from(format!(
        "<script src=\"{ZD}\"></script></body></html>"
    )))
    .await
    .unwrap();
    drop(tx);
    let rest = body.collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&rest).contains("data-consentgate-src"));
}

#[tokio::test]
async fn large_html_streams_through_whole() {
    // 24 MB in 64 KB chunks: nothing lost, nothing reordered.
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let rx = std::sync::Mutex::new(Some(rx));
    let o = origin(move |_| OriginResponse {
        status: 200,
        headers: vec![("content-type".into(), "text/html".into())],
        body: OriginBody::Stream(rx.lock().unwrap().take().unwrap()),
    })
    .await;
    let g = gate(o.addr).await;
    let chunk = format!(
        "<p>{}</p><img src=\"https://www.facebook.com/tr?id=1\">",
        "y".repeat(65_000)
    );
    let n = 384;
    let producer = tokio::spawn(async move {
        for _ in 0..n {
            tx.send(Bytes::from(chunk.clone())).await.unwrap();
        }
    });
    let got = fetch(g.addr, "/").await;
    producer.await.unwrap();
    let text = got.text();
    assert_eq!(
        text.matches("data-consentgate-service=\"meta-pixel\"")
            .count(),
        n
    );
    assert_eq!(text.matches("<p>").count(), n);
}

#[tokio::test]
async fn non_html_passes_through_byte_for_byte() {
    let blob: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let expect = blob.clone();
    let o = origin(move |_| OriginResponse {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/octet-stream".into()),
            ("content-length".into(), "300000".into()),
            ("etag".into(), "\"blob1\"".into()),
        ],
        body: OriginBody::Full(blob.clone()),
    })
    .await;
    let g = gate(o.addr).await;
    let got = fetch(g.addr, "/file.bin").await;
    assert_eq!(got.body, expect);
    assert_eq!(got.header("content-length"), Some("300000"));
    assert_eq!(got.header("etag"), Some("\"blob1\""));
    // JavaScript mentioning a service is not HTML: untouched.
    let js = "document.write('<script src=\"https://static.zdassets.com/x.js\"></script>')";
    let o = origin(move |_| OriginResponse {
        status: 200,
        headers: vec![("content-type".into(), "application/javascript".into())],
        body: OriginBody::Full(js.as_bytes().to_vec()),
    })
    .await;
    let g = gate(o.addr).await;
    assert_eq!(fetch(g.addr, "/a.js").await.text(), js);
}

#[tokio::test]
async fn head_204_and_304_carry_no_body() {
    let o = origin(|s| match s.uri.as_str() {
        "/empty" => OriginResponse::html("").status(204),
        _ => OriginResponse::html("<script src=\"https://static.zdassets.com/x\"></script>")
            .header("etag", "\"e1\""),
    })
    .await;
    let g = gate(o.addr).await;
    let got = fetch_req(g.addr, Request::head("/").header("host", "x")).await;
    assert_eq!(got.status, 200);
    assert!(got.body.is_empty());
    assert!(got.header("etag").unwrap().starts_with("W/\"e1-cg."));
    let got = fetch(g.addr, "/empty").await;
    assert_eq!(got.status, 204);
    assert!(got.body.is_empty());
}

#[tokio::test]
async fn etags_are_consent_specific_and_revalidation_is_translated() {
    let o = origin(|s| {
        let inm = s.headers.get("if-none-match").and_then(|v| v.to_str().ok());
        if inm == Some("W/\"v1\"") {
            OriginResponse::html("")
                .status(304)
                .header("etag", "\"v1\"")
        } else {
            OriginResponse::html("<iframe src=\"https://www.youtube.com/embed/x\"></iframe>")
                .header("etag", "\"v1\"")
                .header("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT")
                .header("cache-control", "public, max-age=3600")
        }
    })
    .await;
    let g = gate(o.addr).await;
    let undecided = fetch(g.addr, "/").await;
    let tag_a = undecided.header("etag").unwrap().to_string();
    assert!(tag_a.starts_with("W/\"v1-cg."), "{tag_a}");
    assert_eq!(undecided.header("cache-control"), Some("private, no-cache"));
    assert!(undecided.header("last-modified").is_none());
    assert!(undecided
        .headers
        .get_all("vary")
        .iter()
        .any(|v| v == "Cookie"));

    let all = consent(g.addr, "action=accept-all").await;
    let consented = fetch_with_cookie(g.addr, "/", &all).await;
    let tag_b = consented.header("etag").unwrap().to_string();
    assert_ne!(tag_a, tag_b, "both consent states share one ETag");

    // Same state revalidates: the origin sees its own ETag and the client gets 304 + our tag.
    let got = fetch_req(
        g.addr,
        get(g.addr, "/")
            .header("cookie", &all)
            .header("if-none-match", &tag_b),
    )
    .await;
    assert_eq!(got.status, 304);
    assert_eq!(got.header("etag"), Some(tag_b.as_str()));
    assert_eq!(o.last().headers["if-none-match"], "W/\"v1\"");

    // Revoke: the browser holds the consented page (tag B) and now has no consent. The origin
    // must not be asked to confirm B: the visitor gets a fresh, rewritten page.
    let revoked = consent(g.addr, "action=reject-all").await;
    let got = fetch_req(
        g.addr,
        get(g.addr, "/")
            .header("cookie", &revoked)
            .header("if-none-match", &tag_b),
    )
    .await;
    assert_eq!(got.status, 200);
    assert!(got.text().contains("data-consentgate-service=\"youtube\""));
    assert!(o.last().headers.get("if-none-match").is_none());
    assert_ne!(got.header("etag"), Some(tag_b.as_str()));
}

#[tokio::test]
async fn range_requests_for_html_get_the_whole_rewritten_page() {
    let page = "<p>0123456789</p><iframe src=\"https://www.youtube.com/embed/x\"></iframe>";
    let o = origin(move |s| {
        if s.headers.contains_key("range") {
            OriginResponse::html("<p>0123")
                .status(206)
                .header("content-range", "bytes 0-6/70")
        } else {
            OriginResponse::html(page).header("accept-ranges", "bytes")
        }
    })
    .await;
    let g = gate(o.addr).await;
    let got = fetch_req(g.addr, get(g.addr, "/").header("range", "bytes=0-6")).await;
    assert_eq!(got.status, 200);
    assert!(got.text().contains("data-consentgate-service=\"youtube\""));
    assert!(got.header("content-range").is_none());
    assert!(got.header("accept-ranges").is_none());
    // Non-HTML ranges pass untouched.
    let o = origin(|_| OriginResponse {
        status: 206,
        headers: vec![
            ("content-type".into(), "video/mp4".into()),
            ("content-range".into(), "bytes 0-3/100".into()),
        ],
        body: OriginBody::Full(b"abcd".to_vec()),
    })
    .await;
    let g = gate(o.addr).await;
    let got = fetch_req(g.addr, get(g.addr, "/v.mp4").header("range", "bytes=0-3")).await;
    assert_eq!(got.status, 206);
    assert_eq!(got.body, b"abcd");
    assert_eq!(o.last().headers["range"], "bytes=0-3");
}

#[tokio::test]
async fn hop_by_hop_and_forwarding_headers() {
    let o = origin(|_| {
        OriginResponse::html("ok")
            .header("connection", "x-origin-private")
            .header("x-origin-private", "1")
            .header("keep-alive", "timeout=5")
    })
    .await;
    let g = gate(o.addr).await;
    let got = fetch_req(
        g.addr,
        Request::get("/p?q=1")
            .header("host", "shop.example")
            .header("connection", "x-client-private")
            .header("x-client-private", "1")
            .header("proxy-authorization", "secret")
            .header("te", "trailers")
            .header("x-forwarded-for", "6.6.6.6"),
    )
    .await;
    assert!(got.header("x-origin-private").is_none());
    assert!(got.header("keep-alive").is_none());
    let seen = o.last();
    assert_eq!(seen.uri, "/p?q=1");
    assert_eq!(seen.headers["host"], "shop.example");
    for h in ["x-client-private", "proxy-authorization", "te"] {
        assert!(!seen.headers.contains_key(h), "{h} forwarded");
    }
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-host"], "shop.example");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(
        seen.headers["forwarded"],
        "for=127.0.0.1;proto=http;host=\"shop.example\""
    );
}

#[tokio::test]
async fn host_header_as_configured() {
    let o = origin(|_| OriginResponse::html("ok")).await;
    let oaddr = o.addr;
    let g = gate_with(o.addr, |c| {
        c.upstream.host_header = consentgate::config::HostHeader::Upstream
    })
    .await;
    fetch(g.addr, "/").await;
    assert_eq!(o.last().headers["host"], format!("{oaddr}").as_str());
    let g = gate_with(o.addr, |c| {
        c.upstream.host_header = consentgate::config::HostHeader::Fixed("internal.example".into())
    })
    .await;
    fetch(g.addr, "/").await;
    assert_eq!(o.last().headers["host"], "internal.example");
}

#[tokio::test]
async fn an_upstream_base_path_prefixes_every_request() {
    let o = origin(|_| OriginResponse::html("ok")).await;
    let oaddr = o.addr;
    let g = gate_with(o.addr, |c| {
        c.upstream.url =
            consentgate::config::parse_upstream_url(&format!("http://{oaddr}/app/")).unwrap()
    })
    .await;
    assert_eq!(fetch(g.addr, "/p/1?q=a%20b").await.status, 200);
    assert_eq!(o.last().uri, "/app/p/1?q=a%20b");
    fetch(g.addr, "/").await;
    assert_eq!(o.last().uri, "/app/");
}

#[tokio::test]
async fn origin_down_is_a_502_page() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let g = gate(port).await;
    let got = fetch(g.addr, "/").await;
    assert_eq!(got.status, 502);
    assert!(got.text().contains("Bad Gateway"));
    assert_eq!(got.header("content-type"), Some("text/html; charset=utf-8"));
}

#[tokio::test]
async fn slow_origin_head_times_out_as_502() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and never answers.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let g = gate_with(addr, |c| {
        c.upstream.read_timeout = Duration::from_millis(300)
    })
    .await;
    let got = fetch(g.addr, "/").await;
    assert_eq!(got.status, 502);
}

#[tokio::test]
async fn post_bodies_reach_the_origin() {
    let o = origin(|_| OriginResponse::html("<p>thanks</p>")).await;
    let g = gate(o.addr).await;
    let got = send(
        g.addr,
        Request::post("/order")
            .header("host", "x")
            .body(Full::new(Bytes::from_static(b"a=1&b=2")))
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(o.last().method, "POST");
    assert_eq!(o.last().headers["content-length"], "7");
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let o = origin(|_| {
        OriginResponse::html("<iframe src=\"https://www.youtube.com/embed/x\"></iframe>")
    })
    .await;
    let g = gate(o.addr).await;
    for _ in 0..5 {
        let got = fetch(g.addr, "/").await;
        assert_eq!(got.status, 200);
    }
    assert_eq!(o.connections.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_page_cached_before_deployment_is_not_revalidated_with_the_origin() {
    let o = origin(|s| {
        if s.headers.contains_key("if-none-match") || s.headers.contains_key("if-modified-since") {
            OriginResponse::html("")
                .status(304)
                .header("etag", "\"v1\"")
        } else {
            OriginResponse::html("<iframe src=\"https://www.youtube.com/embed/x\"></iframe>")
                .header("etag", "\"v1\"")
        }
    })
    .await;
    let g = gate(o.addr).await;
    let got = fetch_req(
        g.addr,
        get(g.addr, "/")
            .header("sec-fetch-dest", "document")
            .header("if-none-match", "\"v1\"")
            .header("if-modified-since", "Mon, 01 Jan 2024 00:00:00 GMT"),
    )
    .await;
    assert_eq!(got.status, 200);
    assert!(got.text().contains("data-consentgate-service=\"youtube\""));
    // A sub-resource keeps its validators.
    let got = fetch_req(
        g.addr,
        get(g.addr, "/img.png")
            .header("sec-fetch-dest", "image")
            .header("if-none-match", "\"v1\""),
    )
    .await;
    assert_eq!(got.status, 304);
}
