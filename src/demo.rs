//! The built-in demo origin: a tiny site whose pages embed real-world third-party snippets
//! (Zendesk Web Widget, classic Zopim, Freshchat, GA4 + Meta pixel with its noscript image, a
//! YouTube iframe), so `consentgate demo` shows what the proxy does without any setup.

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

const CONTROLS: &str = r#"
<section style="border:1px solid #999;padding:1em;margin:1em 0;font-family:sans-serif">
  <p><strong>consentgate demo.</strong> The page source embeds third-party widgets and trackers.
  Until you consent, the proxy neutralizes them (view the source, or open the browser's network
  panel: nothing reaches those hosts). The real banner arrives in a later release; these
  buttons post to the same endpoint it will use.</p>
  <form method="post" action="/__consent" style="display:inline">
    <button name="action" value="accept-all">Accept all</button>
    <button name="action" value="reject-all">Reject all</button>
  </form>
  <form method="post" action="/__consent" style="display:inline">
    <input type="hidden" name="action" value="save">
    <label><input type="checkbox" name="service" value="youtube"> YouTube only</label>
    <button>Save</button>
  </form>
  <a href="/__consent/state">consent state (JSON)</a>
</section>"#;

const NAV: &str = r#"<nav><a href="/">all</a> · <a href="/zendesk">Zendesk</a> · <a href="/zopim">Zopim</a> · <a href="/freshchat">Freshchat</a> · <a href="/analytics">GA4 + Meta pixel</a> · <a href="/youtube">YouTube</a> · <a href="/handlers">event handlers</a> · <a href="/injected">injected at runtime</a></nav>"#;

pub const ZENDESK: &str = r#"<!-- Start of Zendesk Widget script -->
<script id="ze-snippet" src="https://static.zdassets.com/ekr/snippet.js?key=00000000-demo-0000-0000-000000000000"></script>
<script type="text/javascript">
  window.zESettings = { webWidget: { color: { theme: '#78a300' } } };
  zE('webWidget', 'setLocale', 'en');
</script>
<!-- End of Zendesk Widget script -->"#;

pub const ZOPIM: &str = r#"<!--Start of Zopim Live Chat Script-->
<script type="text/javascript">
window.$zopim||(function(d,s){var z=$zopim=function(c){z._.push(c)},$=z.s=
d.createElement(s),e=d.getElementsByTagName(s)[0];z.set=function(o){z.set.
_.push(o)};z._=[];z.set._=[];$.async=!0;$.setAttribute("charset","utf-8");
$.src="//v2.zopim.com/?DEMOKEY";z.t=+new Date;$.
type="text/javascript";e.parentNode.insertBefore($,e)})(document,"script");
</script>
<!--End of Zopim Live Chat Script-->"#;

pub const FRESHCHAT: &str = r#"<script>
  function initFreshChat() {
    window.fcWidget.init({ token: "demo-token", host: "https://wchat.freshchat.com" });
  }
  function initialize(i,t){var e;i.getElementById(t)?initFreshChat():((e=i.createElement("script")).id=t,e.async=!0,e.src="https://wchat.freshchat.com/js/widget.js",e.onload=initFreshChat,i.head.appendChild(e))}function initiateCall(){initialize(document,"Freshchat-js-sdk")}window.addEventListener?window.addEventListener("load",initiateCall,!1):window.attachEvent("load",initiateCall,!1);
</script>
<script src="https://fw-cdn.com/000000/000000.js" chat="true"></script>"#;

pub const ANALYTICS: &str = r#"<link rel="preconnect" href="https://www.googletagmanager.com">
<link rel="dns-prefetch" href="//connect.facebook.net">
<!-- Google tag (gtag.js) -->
<script async src="https://www.googletagmanager.com/gtag/js?id=G-DEMO000000"></script>
<script>
  window.dataLayer = window.dataLayer || [];
  function gtag(){dataLayer.push(arguments);}
  gtag('js', new Date());
  gtag('config', 'G-DEMO000000');
</script>
<!-- Meta Pixel Code -->
<script>
!function(f,b,e,v,n,t,s)
{if(f.fbq)return;n=f.fbq=function(){n.callMethod?
n.callMethod.apply(n,arguments):n.queue.push(arguments)};
if(!f._fbq)f._fbq=n;n.push=n;n.loaded=!0;n.version='2.0';
n.queue=[];t=b.createElement(e);t.async=!0;
t.src=v;s=b.getElementsByTagName(e)[0];
s.parentNode.insertBefore(t,s)}(window, document,'script',
'https://connect.facebook.net/en_US/fbevents.js');
fbq('init', '000000000000000');
fbq('track', 'PageView');
</script>
<noscript><img height="1" width="1" style="display:none"
src="https://www.facebook.com/tr?id=000000000000000&ev=PageView&noscript=1"
/></noscript>
<!-- End Meta Pixel Code -->"#;

/// Loaders in event handlers: a placeholder image whose `onerror` starts the Zendesk widget, and
/// an open `<details>` whose `ontoggle` (fired while the page is parsed) loads Google Tag
/// Manager. Any `on…` attribute is code, not only the usual `onload`/`onerror`.
pub const HANDLERS: &str = r#"<p>Some sites start widgets from event handlers: this placeholder image's <code>onerror</code> loads the Zendesk widget, and the open panel's <code>ontoggle</code> loads Google Tag Manager.</p>
<img src="/chat-placeholder.png" alt="" width="1" height="1" onerror="var s=document.createElement('script');s.src='https://static.zdassets.com/ekr/snippet.js?key=demo';document.body.appendChild(s)">
<details open ontoggle="var s=document.createElement('script');s.async=true;s.src='https://www.googletagmanager.com/gtm.js?id=GTM-DEMO';document.head.appendChild(s)"><summary>Help</summary><p>Chat with us.</p></details>"#;

pub const YOUTUBE: &str = r#"<iframe width="560" height="315" src="https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ" title="YouTube video player" frameborder="0" allow="accelerometer; autoplay; clipboard-write; encrypted-media; gyroscope; picture-in-picture" allowfullscreen></iframe>"#;

/// A first-party bundle that loads trackers at runtime: nothing in the HTML names them, so only
/// the CSP backstop can stop it (`/injected`).
pub const INJECTING_BUNDLE: &str = r#"// app.js: the site's own code, which loads the Meta pixel and pings analytics at runtime.
(function () {
  var s = document.createElement('script');
  s.async = true;
  s.src = 'https://connect.facebook.net/en_US/fbevents.js';
  document.head.appendChild(s);
  new Image().src = 'https://www.facebook.com/tr?id=000000000000000&ev=PageView';
  if (navigator.sendBeacon) { navigator.sendBeacon('https://www.google-analytics.com/g/collect?v=2&tid=G-DEMO000000'); }
})();
"#;

/// The catalog services the demo pages embed.
pub const SERVICES: &[&str] = &[
    "zendesk-chat",
    "freshchat",
    "google-analytics",
    "meta-pixel",
    "youtube",
];

/// The demo page for a path, or `None` (404).
pub fn page(path: &str) -> Option<String> {
    let (title, parts): (&str, Vec<&str>) = match path {
        "/" => ("All services", vec![ANALYTICS, YOUTUBE, ZENDESK, FRESHCHAT]),
        "/zendesk" => ("Zendesk Web Widget", vec![ZENDESK]),
        "/zopim" => ("Classic Zopim chat", vec![ZOPIM]),
        "/freshchat" => ("Freshchat", vec![FRESHCHAT]),
        "/analytics" => ("GA4 and Meta pixel", vec![ANALYTICS]),
        "/youtube" => ("YouTube embed", vec![YOUTUBE]),
        "/handlers" => ("Loaders in event handlers", vec![HANDLERS]),
        "/injected" => (
            "Trackers injected at runtime",
            vec!["<p>This page's own bundle (<code>/app.js</code>) adds the Meta pixel and a Google Analytics beacon at runtime. Rewriting cannot see them; the Content-Security-Policy stops them until you consent.</p><script src=\"/app.js\"></script>"],
        ),
        _ => return None,
    };
    let mut html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Demo shop: {title}</title>\n"
    );
    // Trackers go in <head>, widgets at the end of <body>, as their vendors instruct.
    let (head, body): (Vec<&str>, Vec<&str>) = parts.iter().partition(|p| p.contains("gtag"));
    for p in head {
        html.push_str(p);
        html.push('\n');
    }
    html.push_str("</head>\n<body>\n");
    html.push_str(&format!("<h1>Demo shop: {title}</h1>\n{NAV}\n{CONTROLS}\n"));
    html.push_str("<p>Our products are great. Ask us anything in the chat.</p>\n");
    for p in body {
        html.push_str(p);
        html.push('\n');
    }
    html.push_str("</body></html>\n");
    Some(html)
}

async fn serve_page(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/app.js" {
        let mut r = Response::new(Full::new(Bytes::from_static(INJECTING_BUNDLE.as_bytes())));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        );
        return Ok(r);
    }
    let mut r = match page(req.uri().path()) {
        Some(html) => {
            // Compressed when the client takes gzip, as most sites are: the proxy then
            // decodes, rewrites and re-encodes, and its browser tests see that path.
            match accepts_gzip(req.headers())
                .then(|| gzip_bytes(html.as_bytes()))
                .flatten()
            {
                Some(gz) => {
                    let mut r = Response::new(Full::new(Bytes::from(gz)));
                    r.headers_mut()
                        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                    r
                }
                None => Response::new(Full::new(Bytes::from(html))),
            }
        }
        None => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"not found\n")));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    };
    let ct = if r.status() == StatusCode::OK {
        "text/html; charset=utf-8"
    } else {
        "text/plain"
    };
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    Ok(r)
}

/// Whether `Accept-Encoding` lists gzip with a non-zero weight.
fn accepts_gzip(headers: &http::HeaderMap) -> bool {
    crate::proxy::headers::list_items(headers, header::ACCEPT_ENCODING).any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default();
        let zero = parts.any(|p| {
            p.strip_prefix("q=")
                .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q == 0.0))
        });
        coding.eq_ignore_ascii_case("gzip") && !zero
    })
}

fn gzip_bytes(data: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).ok()?;
    e.finish().ok()
}

/// Serves the demo origin on `listener` until `shutdown` resolves.
pub async fn serve_origin(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = listener.accept() => r?,
        };
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(serve_page))
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pages_exist() {
        for p in [
            "/",
            "/zendesk",
            "/zopim",
            "/freshchat",
            "/analytics",
            "/youtube",
            "/handlers",
        ] {
            let html = super::page(p).unwrap();
            assert!(html.starts_with("<!doctype html>"), "{p}");
        }
        assert!(super::page("/nope").is_none());
    }

    #[test]
    fn gzip_when_accepted() {
        let accepts = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::ACCEPT_ENCODING, v.parse().unwrap());
            super::accepts_gzip(&h)
        };
        assert!(accepts("gzip, deflate, br, zstd"));
        assert!(accepts("br;q=1.0, GZIP;q=0.5"));
        assert!(!accepts("gzip;q=0, br"));
        assert!(!accepts("identity"));
        assert!(!super::accepts_gzip(&http::HeaderMap::new()));
    }
}
