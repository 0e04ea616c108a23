#!/usr/bin/env python3
"""Test pages for benches/load/compare.sh.

Writes page-5k.html, page-60k.html, page-1m.html (plus .gz next to each, for nginx's
gzip_static), asset-2k.js and blob.bin into OUT_DIR. The pages have the shape of benches/rewriter.rs's
generator: a head with GA4 and the Meta pixel, product articles (images with srcset, links, a
small first-party inline script; text varied, deterministically, so gzip ratios are realistic), then a YouTube embed, the Zendesk widget and
Freshchat. The third-party snippets are read from src/demo.rs so the load test blocks exactly
what the demo and the criterion bench block.

usage: gen_pages.py REPO_DIR OUT_DIR
"""

import gzip
import os
import random
import re
import sys

SIZES = {"5k": 5 * 1024, "60k": 60 * 1024, "1m": 1024 * 1024}
BLOB_BYTES = 256 * 1024
# A small script, as most of a page's subresources are: what the proxy's fixed cost per request
# (headers, consent cookie, upstream round trip) is measured on, with no body work to hide it.
ASSET_BYTES = 2 * 1024

# The criterion bench's article block. stream_origin.py repeats it as is; the pages here vary
# names, words and numbers per article so gzip compresses them about as much as real pages
# (a repeated block compresses ~150x and would make every gzip figure meaningless).
BLOCK = (
    '<article class="product"><h2>Product name</h2><img src="/img/p.jpg" '
    'srcset="/img/p.jpg 1x, /img/p@2x.jpg 2x" alt="" loading="lazy"><p>Lorem ipsum dolor sit '
    "amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore "
    'magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation.</p><a href="/p/1" '
    'class="btn">Buy</a><script>window.analyticsQueue=(window.analyticsQueue||[]).concat('
    "[{sku:1}]);</script></article>\n"
)

WORDS = (
    "linen cotton wool oak walnut steel brass copper ceramic glass leather canvas bamboo "
    "jacket shirt trousers scarf lamp chair table shelf mug bowl plate kettle blanket pillow "
    "rug basket candle vase clock mirror bag wallet belt boots sneakers hat gloves socks "
    "classic modern compact large small light heavy soft warm natural organic recycled "
    "handmade durable washable adjustable foldable waterproof breathable stackable "
    "red blue green grey black white sand olive navy rust cream charcoal "
    "for with from and the a in on of to by every day home office travel kitchen garden "
    "made designed crafted finished tested shipped packed sourced certified"
).split()


def article(rng, i):
    name = " ".join(rng.choice(WORDS).capitalize() for _ in range(rng.randint(2, 4)))
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(18, 40)))
    sku = rng.randint(10000, 999999)
    price = rng.randint(300, 49900) / 100
    return (
        f'<article class="product" id="p{sku}"><h2>{name}</h2><img src="/img/{sku}.jpg" '
        f'srcset="/img/{sku}.jpg 1x, /img/{sku}@2x.jpg 2x" alt="{name}" loading="lazy">'
        f'<p>{text.capitalize()}.</p><p class="price">EUR {price:.2f}</p><a href="/p/{sku}" '
        'class="btn">Buy</a><script>window.analyticsQueue=(window.analyticsQueue||[]).concat('
        f"[{{sku:{sku},pos:{i}}}]);</script></article>\n"
    )


def demo_snippets(repo):
    """The raw-string constants of src/demo.rs, by name."""
    with open(os.path.join(repo, "src", "demo.rs"), encoding="utf-8") as f:
        src = f.read()
    found = dict(re.findall(r'pub const (\w+): &str = r#"(.*?)"#;', src, re.S))
    wanted = ["ANALYTICS", "YOUTUBE", "ZENDESK", "FRESHCHAT"]
    missing = [w for w in wanted if w not in found]
    if missing:
        sys.exit(f"gen_pages.py: src/demo.rs has no constant(s) {', '.join(missing)}")
    return {w: found[w] for w in wanted}


def page(snips, size):
    head = (
        '<!doctype html><html><head><meta charset="utf-8"><title>Shop</title>\n'
        '<link rel="stylesheet" href="/css/site.css"><script src="/js/app.js" defer></script>\n'
        + snips["ANALYTICS"]
        + '</head><body><header><nav><a href="/">Home</a> <a href="/shop">Shop</a></nav>'
        "</header>\n"
    )
    tail = snips["YOUTUBE"] + snips["ZENDESK"] + snips["FRESHCHAT"] + "</body></html>\n"
    rng = random.Random(size)
    body = []
    n = len(head) + len(tail)
    while True:
        a = article(rng, len(body))
        if n + len(a) >= size:
            break
        body.append(a)
        n += len(a)
    return (head + "".join(body) + tail).encode("utf-8")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    repo, out = sys.argv[1], sys.argv[2]
    snips = demo_snippets(repo)
    for name, size in SIZES.items():
        html = page(snips, size)
        path = os.path.join(out, f"page-{name}.html")
        with open(path, "wb") as f:
            f.write(html)
        # Level 6 (gzip's default), what a site precompressing its pages would ship.
        with open(path + ".gz", "wb") as f:
            f.write(gzip.compress(html, compresslevel=6, mtime=0))
    with open(os.path.join(out, "blob.bin"), "wb") as f:
        f.write(os.urandom(BLOB_BYTES))
    line = b"window.analyticsQueue=(window.analyticsQueue||[]).concat([{sku:1}]);\n"
    with open(os.path.join(out, "asset-2k.js"), "wb") as f:
        f.write((line * (ASSET_BYTES // len(line) + 1))[:ASSET_BYTES])


if __name__ == "__main__":
    main()
