#!/usr/bin/env python3
"""Summary of a compare.sh run as Markdown: medians over rounds per scenario and target, then
the ratios issue 7 sets targets for.

usage: summarize.py RESULTS.tsv WWW_DIR REPO_DIR

The lol_html ceiling for the 60 KB target (no-op handlers on the URL-bearing selectors) comes
from CEILING_US_60K (microseconds) if set, else from the newest criterion estimate under
REPO_DIR/target/criterion whose id names no-op handlers, scaled to this page's size, else from
issue 7's yardstick (245 MB/s), and the summary says which.
"""

import csv
import glob
import json
import os
import statistics
import sys
from collections import defaultdict

YARDSTICK_MBPS = 245.0


def load(path):
    runs = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            runs[(row["scenario"], row["target"])].append(row)
    return runs


def med(rows, key):
    return statistics.median(float(r[key]) for r in rows)


def ceiling_us(page_bytes, repo):
    env = os.environ.get("CEILING_US_60K")
    if env:
        return float(env), "CEILING_US_60K"
    best = None
    pattern = os.path.join(repo, "target", "criterion", "**", "new", "estimates.json")
    for est in glob.glob(pattern, recursive=True):
        ident = os.path.relpath(os.path.dirname(os.path.dirname(est)), repo).lower()
        if not any(k in ident for k in ("noop", "no_op", "no-op")) or "60" not in ident:
            continue
        bench = os.path.join(os.path.dirname(est), "benchmark.json")
        try:
            with open(est) as f:
                ns = json.load(f)["mean"]["point_estimate"]
            with open(bench) as f:
                nbytes = json.load(f)["throughput"]["Bytes"]
        except (OSError, KeyError, TypeError, ValueError):
            continue
        mtime = os.path.getmtime(est)
        if best is None or mtime > best[0]:
            best = (mtime, ns / nbytes * page_bytes / 1000.0, ident)
    if best:
        return best[1], f"criterion {best[2]} (scaled to {page_bytes} bytes)"
    us = page_bytes / (YARDSTICK_MBPS * 1e6) * 1e6
    return us, f"issue 7's yardstick {YARDSTICK_MBPS:.0f} MB/s (run cargo bench --bench rewriter)"


def verdict(ok):
    return "meets" if ok else "MISSES"


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    runs = load(sys.argv[1])
    www, repo = sys.argv[2], sys.argv[3]
    scenarios = list(dict.fromkeys(s for s, _ in runs))

    print("| scenario | target | req/s (min-max) | p50 ms | p99 ms | CPU us/req | errors |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for s in scenarios:
        for (s2, t), rows in runs.items():
            if s2 != s:
                continue
            rps = [float(r["req_s"]) for r in rows]
            errs = sum(int(r["errors"]) for r in rows)
            print(
                f"| {s} | {t} | {statistics.median(rps):,.0f} ({min(rps):,.0f}-{max(rps):,.0f}) "
                f"| {med(rows, 'p50_ms'):.2f} | {med(rows, 'p99_ms'):.2f} "
                f"| {med(rows, 'cpu_us_per_req'):.1f} | {errs} |"
            )

    def get(s, t, key):
        rows = runs.get((s, t))
        return med(rows, key) if rows else None

    print()
    print("Ratios (medians; targets from issue 7):")
    print()
    print("| ratio | value | target | |")
    print("|---|---:|---:|---|")

    # Proxy CPU per request for non-HTML and full-consent pages against nginx proxy_pass.
    for s in scenarios:
        for t in ("cg-none", "cg-full") if s.startswith(("blob", "asset")) else ("cg-full",):
            cg, nx = get(s, t, "cpu_us_per_req"), get(s, "pass", "cpu_us_per_req")
            if cg is None or not nx:
                continue
            r = cg / nx
            print(f"| CPU/req {s} {t} / nginx pass | {r:.2f} | <= 1.5 | {verdict(r <= 1.5)} |")

    # 60 KB, no decision: against lol_html's ceiling time plus nginx proxy_pass's CPU.
    src = None
    s60 = "page-60k identity"
    cg, nx = get(s60, "cg-none", "cpu_us_per_req"), get(s60, "pass", "cpu_us_per_req")
    if cg is not None and nx is not None:
        size = os.path.getsize(os.path.join(www, "page-60k.html"))
        ceil, src = ceiling_us(size, repo)
        r = cg / (ceil + nx)
        print(
            f"| CPU/req {s60} cg-none / (lol_html ceiling {ceil:.0f} us + nginx pass "
            f"{nx:.1f} us) | {r:.2f} | <= 1.2 | {verdict(r <= 1.2)} |"
        )

    # Gzip to the client: req/s against nginx sub_filter + gzip level 1.
    for s in scenarios:
        if not s.endswith("gzip"):
            continue
        nx = get(s, "subgz", "req_s")
        for t in ("cg-none", "cg-full"):
            cg = get(s, t, "req_s")
            if cg is None or not nx:
                continue
            r = cg / nx
            print(f"| req/s {s} {t} / nginx sub+gzip | {r:.2f} | >= 1.0 | {verdict(r >= 1.0)} |")

    # Added latency over the origin at this concurrency (p99 difference), nginx pass for scale.
    for s in scenarios:
        o = get(s, "origin", "p99_ms")
        if o is None:
            continue
        for t in ("cg-none", "cg-full"):
            cg = get(s, t, "p99_ms")
            if cg is None:
                continue
            nx = get(s, "pass", "p99_ms")
            ctx = f" (nginx pass: {nx - o:+.2f} ms)" if nx is not None else ""
            d = cg - o
            print(
                f"| p99 {s} {t} - origin{ctx} | {d:+.2f} ms | <= 1 ms | {verdict(d <= 1.0)} |"
            )
    if src:
        print()
        print(f"lol_html ceiling: {src}")


if __name__ == "__main__":
    main()
