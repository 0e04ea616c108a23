"""The soak origin's pages: realistic shop pages built from vendor snippets (as their install
guides give them), each snippet tagged with the one service it belongs to, plus first-party
markup that must never change. The driver checks every response against these definitions."""

# Services the generated config lists under consent.services ("Accept all" grants only these).
CONFIGURED = [
    "zendesk-chat",
    "intercom",
    "drift",
    "tawkto",
    "freshchat",
    "google-analytics",
    "google-tag-manager",
    "meta-pixel",
    "hotjar",
    "youtube",
]

# (service id or None for first-party markup, html). Kept verbatim in the origin's pages.
SNIPPETS = {
    "ga": ("google-analytics", """<link rel="preconnect" href="https://www.google-analytics.com">
<!-- Google tag (gtag.js) -->
<script async src="https://www.googletagmanager.com/gtag/js?id=G-SOAK000000"></script>
<script>
  window.dataLayer = window.dataLayer || [];
  function gtag(){dataLayer.push(arguments);}
  gtag('js', new Date());
  gtag('config', 'G-SOAK000000');
</script>"""),
    "gtm": ("google-tag-manager", """<!-- Google Tag Manager -->
<script>(function(w,d,s,l,i){w[l]=w[l]||[];w[l].push({'gtm.start':
new Date().getTime(),event:'gtm.js'});var f=d.getElementsByTagName(s)[0],
j=d.createElement(s),dl=l!='dataLayer'?'&l='+l:'';j.async=true;j.src=
'https://www.googletagmanager.com/gtm.js?id='+i+dl;f.parentNode.insertBefore(j,f);
})(window,document,'script','dataLayer','GTM-SOAK00');</script>
<!-- End Google Tag Manager -->"""),
    "gtm-noscript": ("google-tag-manager", """<!-- Google Tag Manager (noscript) -->
<noscript><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-SOAK00"
height="0" width="0" style="display:none;visibility:hidden"></iframe></noscript>"""),
    "meta": ("meta-pixel", """<link rel="dns-prefetch" href="//connect.facebook.net">
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
<!-- End Meta Pixel Code -->"""),
    "hotjar": ("hotjar", """<!-- Hotjar Tracking Code -->
<script>
    (function(h,o,t,j,a,r){
        h.hj=h.hj||function(){(h.hj.q=h.hj.q||[]).push(arguments)};
        h._hjSettings={hjid:1000000,hjsv:6};
        a=o.getElementsByTagName('head')[0];
        r=o.createElement('script');r.async=1;
        r.src=t+h._hjSettings.hjid+j+h._hjSettings.hjsv;
        a.appendChild(r);
    })(window,document,'https://static.hotjar.com/c/hotjar-','.js?sv=');
</script>"""),
    "zendesk": ("zendesk-chat", """<!-- Start of Zendesk Widget script -->
<script id="ze-snippet" src="https://static.zdassets.com/ekr/snippet.js?key=00000000-soak-0000-0000-000000000000"></script>
<script type="text/javascript">
  window.zESettings = { webWidget: { color: { theme: '#78a300' } } };
  zE('webWidget', 'setLocale', 'en');
</script>
<!-- End of Zendesk Widget script -->"""),
    "zopim": ("zendesk-chat", """<!--Start of Zopim Live Chat Script-->
<script type="text/javascript">
window.$zopim||(function(d,s){var z=$zopim=function(c){z._.push(c)},$=z.s=
d.createElement(s),e=d.getElementsByTagName(s)[0];z.set=function(o){z.set.
_.push(o)};z._=[];z.set._=[];$.async=!0;$.setAttribute("charset","utf-8");
$.src="//v2.zopim.com/?SOAKKEY";z.t=+new Date;$.
type="text/javascript";e.parentNode.insertBefore($,e)})(document,"script");
</script>
<!--End of Zopim Live Chat Script-->"""),
    "intercom": ("intercom", """<script>
  window.intercomSettings = { api_base: "https://api-iam.intercom.io", app_id: "soak0000" };
</script>
<script>
(function(){var w=window;var ic=w.Intercom;if(typeof ic==="function"){ic('reattach_activator');ic('update',w.intercomSettings);}else{var d=document;var i=function(){i.c(arguments);};i.q=[];i.c=function(args){i.q.push(args);};w.Intercom=i;var l=function(){var s=d.createElement('script');s.type='text/javascript';s.async=true;s.src='https://widget.intercom.io/widget/soak0000';var x=d.getElementsByTagName('script')[0];x.parentNode.insertBefore(s,x);};if(document.readyState==='complete'){l();}else if(w.attachEvent){w.attachEvent('onload',l);}else{w.addEventListener('load',l,false);}}})();
</script>"""),
    "drift": ("drift", """<!-- Start of Async Drift Code -->
<script>
"use strict";
!function() {
  var t = window.driftt = window.drift = window.driftt || [];
  if (!t.init) {
    if (t.invoked) return void (window.console && console.error && console.error("Drift snippet included twice."));
    t.invoked = !0, t.methods = [ "identify", "config", "track", "reset", "debug", "show", "ping", "page", "hide", "off", "on" ],
    t.factory = function(e) {
      return function() {
        var n = Array.prototype.slice.call(arguments);
        return n.unshift(e), t.push(n), t;
      };
    }, t.methods.forEach(function(e) {
      t[e] = t.factory(e);
    }), t.load = function(t) {
      var e = 3e5, n = Math.ceil(new Date() / e) * e, o = document.createElement("script");
      o.type = "text/javascript", o.async = !0, o.crossorigin = "anonymous", o.src = "https://js.driftt.com/include/" + n + "/" + t + ".js";
      var i = document.getElementsByTagName("script")[0];
      i.parentNode.insertBefore(o, i);
    };
  }
}();
drift.SNIPPET_VERSION = '0.3.1';
drift.load('soak00000000');
</script>
<!-- End of Async Drift Code -->"""),
    "tawkto": ("tawkto", """<!--Start of Tawk.to Script-->
<script type="text/javascript">
var Tawk_API=Tawk_API||{}, Tawk_LoadStart=new Date();
(function(){
var s1=document.createElement("script"),s0=document.getElementsByTagName("script")[0];
s1.async=true;
s1.src='https://embed.tawk.to/000000000000000000000000/default';
s1.charset='UTF-8';
s1.setAttribute('crossorigin','*');
s0.parentNode.insertBefore(s1,s0);
})();
</script>
<!--End of Tawk.to Script-->"""),
    "freshchat": ("freshchat", """<script>
  function initFreshChat() {
    window.fcWidget.init({ token: "soak-token", host: "https://wchat.freshchat.com" });
  }
  function initialize(i,t){var e;i.getElementById(t)?initFreshChat():((e=i.createElement("script")).id=t,e.async=!0,e.src="https://wchat.freshchat.com/js/widget.js",e.onload=initFreshChat,i.head.appendChild(e))}function initiateCall(){initialize(document,"Freshchat-js-sdk")}window.addEventListener?window.addEventListener("load",initiateCall,!1):window.attachEvent("load",initiateCall,!1);
</script>
<script src="https://fw-cdn.com/000000/000000.js" chat="true"></script>"""),
    "youtube": ("youtube", """<figure class="video">
<img class="thumb" alt="" src="https://i.ytimg.com/vi/dQw4w9WgXcQ/mqdefault.jpg" srcset="https://i.ytimg.com/vi/dQw4w9WgXcQ/mqdefault.jpg 1x, https://i.ytimg.com/vi/dQw4w9WgXcQ/hqdefault.jpg 2x">
<iframe width="560" height="315" src="https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ" title="YouTube video player" frameborder="0" allow="accelerometer; autoplay; clipboard-write; encrypted-media; gyroscope; picture-in-picture" allowfullscreen></iframe>
</figure>"""),
    # A catalog service the site did not list: blocked whatever the visitor chose.
    "crisp": ("crisp", """<script type="text/javascript">window.$crisp=[];window.CRISP_WEBSITE_ID="00000000-0000-0000-0000-000000000000";(function(){d=document;s=d.createElement("script");s.src="https://client.crisp.chat/l.js";s.async=1;d.getElementsByTagName("head")[0].appendChild(s);})();</script>"""),
    # First-party markup: must reach every visitor unchanged.
    "own-head": (None, """<link rel="stylesheet" href="/static/site.css">
<link rel="preload" href="/static/fonts/inter.woff2" as="font" type="font/woff2" crossorigin>
<script src="/static/app.js" defer></script>
<script type="application/ld+json">{"@context":"https://schema.org","@type":"Organization","url":"https://shop.example","sameAs":["https://www.youtube.com/@shop","https://www.facebook.com/shop"]}</script>"""),
    "own-nav": (None, """<header><a href="/"><img src="/static/logo.svg" alt="Soak shop" width="120" height="32"></a>
<nav><a href="/index.html">Home</a> <a href="/support.html">Support</a> <a href="/contact.html">Contact</a> <a href="/pricing.html">Pricing</a> <a href="/help.html">Help</a> <a href="/blog.html">Blog</a>
<a href="https://www.youtube.com/@shop" rel="noopener">Our channel</a> <a href="https://www.facebook.com/shop">Facebook</a></nav></header>"""),
    "own-script": (None, """<script>
  document.documentElement.classList.add('js');
  window.shop = { cart: [], currency: 'EUR' };
</script>"""),
}


def _products(n, seed):
    cards = []
    for i in range(n):
        k = (seed * 31 + i * 7) % 997
        cards.append(
            f'<article class="product" data-sku="SKU-{k:04d}">'
            f'<img src="/img/p{k}.jpg" srcset="/img/p{k}.jpg 1x, /img/p{k}@2x.jpg 2x" alt="Product {k}" loading="lazy">'
            f"<h2>Product {k}</h2><p>A fine thing, number {k}, made to last &amp; shipped fast. "
            f"Ask us about it in the chat.</p><p class=\"price\">{10 + k % 90},{k % 100:02d}&nbsp;&euro;</p>"
            f'<form method="post" action="/cart"><input type="hidden" name="sku" value="SKU-{k:04d}">'
            f"<button>Add to cart</button></form></article>\n"
        )
    return "".join(cards)


def _article(paras):
    text = (
        "Consent is not a checkbox buried in a footer. It is a choice the visitor makes before "
        "anything is sent to a third party, and one they can take back as easily as they gave it. "
    )
    return "".join(f"<p>{text * (1 + i % 3)}</p>\n" for i in range(paras))


# path -> (title, head snippet keys, body snippet keys, filler html)
PAGES = {
    "/index.html": ("Home", ["own-head", "ga", "gtm", "meta", "hotjar"],
                    ["gtm-noscript", "own-nav", "own-script", "youtube", "zendesk"], _products(40, 1)),
    "/support.html": ("Support", ["own-head", "ga"], ["own-nav", "zendesk"], _article(12)),
    "/legacy.html": ("Legacy chat", ["own-head", "ga"], ["own-nav", "zopim"], _products(12, 2)),
    "/contact.html": ("Contact", ["own-head", "gtm"], ["gtm-noscript", "own-nav", "intercom"], _article(6)),
    "/pricing.html": ("Pricing", ["own-head", "hotjar", "meta"], ["own-nav", "own-script", "drift"], _products(20, 3)),
    "/help.html": ("Help", ["own-head", "ga"], ["own-nav", "tawkto", "freshchat"], _article(20)),
    "/blog.html": ("Blog", ["own-head", "meta"], ["own-nav", "youtube", "crisp"], _article(400)),
    "/plain.html": ("About us", ["own-head"], ["own-nav", "own-script"], _article(8)),
}

# A first-party asset that is not HTML: must pass through byte for byte.
ASSET_PATH = "/static/app.js"
ASSET = (
    "// app.js: the shop's own bundle. It mentions trackers only in strings; not HTML, so untouched.\n"
    "window.shopLinks = ['https://www.googletagmanager.com/gtag/js', 'https://connect.facebook.net/'];\n"
) * 20


def render(path):
    """The origin's bytes for a page."""
    title, head, body, filler = PAGES[path]
    out = [f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Soak shop: {title}</title>\n']
    out += [SNIPPETS[k][1] + "\n" for k in head]
    out.append("</head>\n<body>\n<main>\n")
    out.append(filler)
    out.append("</main>\n")
    out += [SNIPPETS[k][1] + "\n" for k in body]
    out.append("</body></html>\n")
    return "".join(out).encode()


def services_on(path):
    _, head, body, _ = PAGES[path]
    return {SNIPPETS[k][0] for k in head + body if SNIPPETS[k][0]}
