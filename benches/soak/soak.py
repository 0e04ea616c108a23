#!/usr/bin/env python3
"""Bounded load-and-soak check of consentgate (issue 8): loopback only, standard library only.

Starts an origin (nginx if installed, else Python's http.server) serving the pages of pages.py,
consentgate in front of it (release binary, SQLite receipts in a temp dir, fixed key), obtains
cookies for several consent states, then drives SOAK_CONC keep-alive connections for SOAK_SECS
with mixed states, verifying every response (check.py), counting errors per 10 s window and
sampling consentgate's RSS every second. Exits non-zero on any mismatch, error, stalled window,
RSS growth beyond the bound, or a crash. See BENCHMARKS.md ("Soak") for a recorded run.

Environment: SOAK_SECS (120), SOAK_CONC (200), SOAK_WARM_SECS (20), SOAK_IDLE_SECS (5),
SOAK_RSS_GROWTH_PCT (20), SOAK_MAX_WINDOW_ERRORS (0), SOAK_BIN (target/release/consentgate),
SOAK_SEED (random), SOAK_KEEP (keep the temp dir)."""

import asyncio
import base64
import hashlib
import json
import http.client
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # keep the source tree clean

import check  # noqa: E402
import pages  # noqa: E402

SECS = int(os.environ.get("SOAK_SECS", "120"))
CONC = int(os.environ.get("SOAK_CONC", "200"))
WARM = int(os.environ.get("SOAK_WARM_SECS", "20"))
IDLE = int(os.environ.get("SOAK_IDLE_SECS", "5"))
GROWTH = float(os.environ.get("SOAK_RSS_GROWTH_PCT", "20"))
MAX_WIN_ERR = int(os.environ.get("SOAK_MAX_WINDOW_ERRORS", "0"))
BIN = os.environ.get("SOAK_BIN", os.path.join(ROOT, "target", "release", "consentgate"))
SEED = int(os.environ.get("SOAK_SEED", str(random.randrange(1 << 30))))
WINDOW = 10
TIMEOUT = 30.0
KEY = "soak-fixed-signing-key-0123456789abcdef0123456789abcdef"
CHAT = ["zendesk-chat", "intercom", "drift", "tawkto", "freshchat"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    for _ in range(200):
        if proc.poll() is not None:
            sys.exit(f"{what} exited early (status {proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not listen on {port}")


def start_origin(tmp, port):
    www = os.path.join(tmp, "www")
    os.makedirs(os.path.join(www, "static"))
    for p in pages.PAGES:
        with open(www + p, "wb") as f:
            f.write(pages.render(p))
    with open(www + pages.ASSET_PATH, "w") as f:
        f.write(pages.ASSET)
    # nginx workers run as nobody: the temp dir must be readable.
    for d, _, fs in os.walk(tmp):
        os.chmod(d, 0o755)
        for f in fs:
            os.chmod(os.path.join(d, f), 0o644)
    nginx = shutil.which("nginx") or (os.path.exists("/usr/sbin/nginx") and "/usr/sbin/nginx")
    if nginx:
        conf = os.path.join(tmp, "nginx.conf")
        t = lambda n: os.path.join(tmp, n)  # noqa: E731
        with open(conf, "w") as f:
            f.write(f"""worker_processes 1;
daemon off;
pid {t('nginx.pid')};
error_log {t('nginx-error.log')} warn;
events {{ worker_connections 8192; }}
http {{
  types {{ text/html html; application/javascript js; }}
  access_log off;
  client_body_temp_path {t('nginx-body')}; proxy_temp_path {t('nginx-proxy')};
  fastcgi_temp_path {t('nginx-fcgi')}; uwsgi_temp_path {t('nginx-uwsgi')}; scgi_temp_path {t('nginx-scgi')};
  keepalive_requests 1000000;
  # Compressed when the client asks (consentgate decodes, rewrites and re-encodes it).
  gzip on; gzip_types text/html application/javascript; gzip_min_length 256;
  server {{ listen 127.0.0.1:{port}; root {www}; }}
}}
""")
        proc = subprocess.Popen([nginx, "-c", conf], stdout=subprocess.DEVNULL, stderr=open(t("nginx.out"), "w"))
        return proc, "nginx"
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", www, str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, "python http.server (no nginx found)"


def start_proxy(tmp, port, origin_port):
    conf = os.path.join(tmp, "consentgate.toml")
    with open(conf, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:{port}"
[upstream]
url = "http://127.0.0.1:{origin_port}"
[consent]
key = "{KEY}"
services = {str(pages.CONFIGURED).replace("'", '"')}
[receipts]
store = "sqlite"
path = "{os.path.join(tmp, 'receipts.db')}"
""")
    log = open(os.path.join(tmp, "consentgate.log"), "w")
    env = dict(os.environ, NO_COLOR="1", CONSENTGATE_LOG=os.environ.get("CONSENTGATE_LOG", "warn"))
    return subprocess.Popen([BIN, "--config", conf], stdout=log, stderr=log, env=env)


def decide(port, form):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    c.request("POST", "/__consent", body=form, headers={
        "Origin": f"http://127.0.0.1:{port}", "Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse()
    r.read()
    cookie = r.getheader("Set-Cookie") or ""
    c.close()
    if r.status != 303 or not cookie.startswith("consentgate="):
        sys.exit(f"consent POST {form!r}: {r.status} {cookie!r}")
    return cookie.split(";", 1)[0]


def tamper(cookie):
    """Same signature, payload claiming every service: must count as no decision."""
    name, _, value = cookie.partition("=")
    ver, payload, sig = value.split(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    fields = raw.split("|")
    fields[-1] = ",".join(sorted(pages.CONFIGURED))
    forged = base64.urlsafe_b64encode("|".join(fields).encode()).decode().rstrip("=")
    return f"{name}={ver}.{forged}.{sig}"


def form_for(action, services=()):
    return "&".join([f"action={action}"] + [f"service={s}" for s in services])


def make_states(port):
    """name -> (Cookie header or None, extra headers, granted set, decided)."""
    st = {"undecided": (None, {}, set(), False),
          "gpc": (None, {"Sec-GPC": "1"}, set(), False)}
    saves = {"chat-only": CHAT, "stats-only": ["google-analytics", "hotjar"],
             "marketing": ["meta-pixel", "youtube", "google-tag-manager"], "youtube-only": ["youtube"]}
    st["reject-all"] = (decide(port, form_for("reject-all")), {}, set(), True)
    st["accept-all"] = (decide(port, form_for("accept-all")), {}, set(pages.CONFIGURED), True)
    for name, svcs in saves.items():
        st[name] = (decide(port, form_for("save", svcs)), {}, set(svcs), True)
    st["tampered"] = (tamper(st["marketing"][0]), {}, set(), False)
    return st


class Stats:
    def __init__(self):
        self.windows = {}  # window index -> dict of counters
        self.problems = {}  # message -> count
        self.examples = []
        self.by_state = {}
        self.verdicts = {}  # (path, granted, decided, document, body hash, csp) -> problems
        self.etags = {}  # (path, granted, decided) -> set of state tags
        self.t0 = time.monotonic()
        self.set_phase("warm")

    def set_phase(self, phase):
        self.phase = phase
        self.phase_t0 = time.monotonic()

    def win(self):
        k = (self.phase, int((time.monotonic() - self.phase_t0) // WINDOW))
        return self.windows.setdefault(k, {"ok": 0, "err": 0, "bad": 0, "bytes": 0})

    def error(self, msg):
        self.win()["err"] += 1
        self.problems[msg] = self.problems.get(msg, 0) + 1

    def bad(self, what, problems):
        self.win()["bad"] += 1
        for p in problems:
            self.problems[p] = self.problems.get(p, 0) + 1
        if len(self.examples) < 5:
            self.examples.append((what, problems[:5]))


async def read_response(reader, method):
    line = await reader.readline()
    if not line:
        raise ConnectionError("connection closed before the status line")
    parts = line.decode("latin-1").split(" ", 2)
    status = int(parts[1])
    headers = {}
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b"\n"):
            break
        if not h:
            raise ConnectionError("connection closed in the head")
        k, _, v = h.decode("latin-1").partition(":")
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    one = lambda k: headers[k][0] if k in headers else None  # noqa: E731
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif one("transfer-encoding") and "chunked" in one("transfer-encoding").lower():
        chunks = []
        while True:
            size = int((await reader.readline()).split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                break
            chunks.append(await reader.readexactly(size))
            if (await reader.readline()) not in (b"\r\n", b"\n"):
                raise ValueError("malformed chunk")
        body = b"".join(chunks)
    elif one("content-length") is not None:
        body = await reader.readexactly(int(one("content-length")))
    else:
        body = await reader.read()
    return status, headers, one, body


class Driver:
    def __init__(self, port, states, checker, stats, seed):
        self.port = port
        self.states = states
        self.names = sorted(states)
        self.checker = checker
        self.stats = stats
        self.rng = random.Random(seed)
        self.stop = asyncio.Event()
        self.paths = list(pages.PAGES)
        self.weights = [1 if p == "/blog.html" else 4 for p in self.paths]

    async def worker(self, wid):
        rng = random.Random(self.rng.random())
        reader = writer = None
        fresh = None  # a cookie this worker just obtained by deciding, used on its next page
        while not self.stop.is_set():
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                close = rng.random() < 0.03  # some connection churn
                roll = rng.random()
                if roll < 0.02:
                    fresh = await self.post_decision(rng, reader, writer, close)
                elif roll < 0.05:
                    await self.get_state(rng, reader, writer, close)
                elif roll < 0.09:
                    await self.get_asset(rng, reader, writer, close)
                else:
                    await self.get_page(rng, reader, writer, close, fresh)
                    fresh = None
                if close:
                    writer.close()
                    reader = writer = None
            except Exception as e:  # every failure is counted, then the connection is renewed
                self.stats.error(f"{type(e).__name__}: {e}"[:160])
                if writer is not None:
                    writer.close()
                reader = writer = None
                fresh = None
        if writer is not None:
            writer.close()

    async def exchange(self, reader, writer, method, path, headers, body=b""):
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        r = await asyncio.wait_for(read_response(reader, method), TIMEOUT)
        self.stats.win()["bytes"] += len(r[3])
        return r

    def state_headers(self, name, close, cookie=None):
        ck, extra, _, _ = self.states[name]
        h = dict(extra)
        if cookie or ck:
            h["Cookie"] = f"theme=dark; {cookie or ck}; _ga=GA1.1.1.1"
        if close:
            h["Connection"] = "close"
        return h

    async def get_page(self, rng, reader, writer, close, fresh):
        path = rng.choices(self.paths, self.weights)[0]
        if fresh:
            name, cookie, granted, decided = "fresh-decision", fresh[0], fresh[1], True
            h = self.state_headers("undecided", close, cookie)
        else:
            name = rng.choice(self.names)
            _, _, granted, decided = self.states[name]
            h = self.state_headers(name, close)
        document = rng.random() < 0.5
        if document:
            h["Sec-Fetch-Dest"] = "document"
            h["Accept"] = "text/html,application/xhtml+xml"
        if rng.random() < 0.3:
            h["Accept-Encoding"] = "gzip"
        self.stats.by_state[name] = self.stats.by_state.get(name, 0) + 1
        status, _, one, body = await self.exchange(reader, writer, "GET", path, h)
        if status != 200:
            self.stats.error(f"GET {path} ({name}): status {status}")
            return
        if one("content-encoding") == "gzip":
            body = zlib.decompress(body, 31)
        elif one("content-encoding"):
            self.stats.bad(path, [f"unexpected content-encoding {one('content-encoding')}"])
            return
        csp = one("content-security-policy-report-only")
        key = (path, frozenset(granted), decided, document, hashlib.sha1(body).digest(), csp)
        problems = self.stats.verdicts.get(key)
        if problems is None:
            problems = self.checker.page(path, body, granted, decided, document, csp)
            self.stats.verdicts[key] = problems
        etag = one("etag") or ""
        if "-cg." not in etag:
            problems = problems + [f"etag without consent state: {etag!r}"]
        else:
            enc = one("content-encoding")
            # The state tag covers everything the output depends on, GPC included (banner text).
            k = (path, frozenset(granted), decided, "Sec-GPC" in h, document, enc)
            self.stats.etags.setdefault(k, set()).add(etag)
        if "Cookie" not in (one("vary") or ""):
            problems = problems + ["no Vary: Cookie"]
        if problems:
            self.stats.bad(f"{path} state={name} document={document}", problems)
        else:
            self.stats.win()["ok"] += 1

    async def get_asset(self, rng, reader, writer, close):
        h = self.state_headers(rng.choice(self.names), close)
        status, _, one, body = await self.exchange(reader, writer, "GET", pages.ASSET_PATH, h)
        if status != 200:
            self.stats.error(f"GET {pages.ASSET_PATH}: status {status}")
        elif one("content-encoding") is None and body != pages.ASSET.encode():
            self.stats.bad(pages.ASSET_PATH, ["non-HTML asset changed"])
        else:
            self.stats.win()["ok"] += 1

    async def get_state(self, rng, reader, writer, close):
        name = rng.choice(self.names)
        _, _, granted, decided = self.states[name]
        status, _, _, body = await self.exchange(reader, writer, "GET", "/__consent/state",
                                                 self.state_headers(name, close))
        if status != 200:
            self.stats.error(f"GET /__consent/state: status {status}")
            return
        st = json.loads(body)
        on = {k for k, v in st["services"].items() if v}
        if st["decided"] != decided or on != granted:
            self.stats.bad(f"/__consent/state {name}", [f"state endpoint says {st['decided']} {sorted(on)}"])
        else:
            self.stats.win()["ok"] += 1

    async def post_decision(self, rng, reader, writer, close):
        action = rng.choice(["accept-all", "reject-all", "save"])
        svcs = rng.sample(pages.CONFIGURED, rng.randint(1, 4)) if action == "save" else []
        granted = set(pages.CONFIGURED) if action == "accept-all" else set(svcs)
        form = form_for(action, svcs).encode()
        h = {"Origin": f"http://127.0.0.1:{self.port}", "Content-Type": "application/x-www-form-urlencoded",
             "Referer": f"http://127.0.0.1:{self.port}/index.html"}
        if close:
            h["Connection"] = "close"
        status, headers, _, _ = await self.exchange(reader, writer, "POST", "/__consent", h, form)
        cookies = [c for c in headers.get("set-cookie", []) if c.startswith("consentgate=")]
        if status != 303 or not cookies:
            self.stats.error(f"POST /__consent {action}: status {status}")
            return None
        self.stats.win()["ok"] += 1
        return cookies[0].split(";", 1)[0], granted


class Sampler(threading.Thread):
    """consentgate's VmRSS and open descriptors, once a second."""

    def __init__(self, pid, stats):
        super().__init__(daemon=True)
        self.pid, self.stats = pid, stats
        self.samples = []  # (seconds since start, phase, rss KiB, fds)
        self.halt = threading.Event()

    def read(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            return rss, len(os.listdir(f"/proc/{self.pid}/fd"))
        except (OSError, StopIteration):
            return None, None

    def run(self):
        while not self.halt.wait(1.0):
            rss, fds = self.read()
            if rss is not None:
                st = self.stats
                self.samples.append((time.monotonic() - st.phase_t0, st.phase, rss, fds))


async def load(driver, secs):
    driver.stop.clear()
    tasks = [asyncio.create_task(driver.worker(i)) for i in range(CONC)]
    await asyncio.sleep(secs)
    driver.stop.set()
    await asyncio.gather(*tasks)


def main():
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} not found: run `cargo build --release` (soak.sh does)")
    tmp = tempfile.mkdtemp(prefix="consentgate-soak-")
    origin_port, proxy_port = free_port(), free_port()
    origin, origin_kind = start_origin(tmp, origin_port)
    proxy = None
    try:
        wait_port(origin_port, origin, "origin")
        proxy = start_proxy(tmp, proxy_port, origin_port)
        wait_port(proxy_port, proxy, "consentgate")
        return run(tmp, proxy, proxy_port, origin_kind)
    finally:
        for p in (proxy, origin):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        if os.environ.get("SOAK_KEEP"):
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(tmp, proxy, port, origin_kind):
    states = make_states(port)
    checker = check.Checker(ROOT, f"http://127.0.0.1:{port}")
    # The checker must not be vacuous: the origin's own bytes served to an undecided visitor
    # are a leak on every page that embeds a third party.
    for path in pages.PAGES:
        if pages.services_on(path) and not any(
                p.startswith("leak") for p in checker.page(path, pages.render(path), set(), False, False, "")):
            sys.exit(f"checker self-test: unrewritten {path} not flagged as a leak")
    stats = Stats()
    driver = Driver(port, states, checker, stats, SEED)
    sampler = Sampler(proxy.pid, stats)
    print(f"soak: {CONC} connections, warm-up {WARM}s, soak {SECS}s, idle {IDLE}s, seed {SEED}; "
          f"origin {origin_kind}; consentgate pid {proxy.pid}; {os.cpu_count()} CPUs; tmp {tmp}", flush=True)
    start_rss = sampler.read()
    sampler.start()
    asyncio.run(load(driver, WARM))
    stats.set_phase("idle-warm")
    time.sleep(IDLE)
    warm_rss, warm_fds = sampler.read()
    stats.set_phase("soak")
    soak_t0 = time.monotonic()
    asyncio.run(load(driver, SECS))
    soak_elapsed = time.monotonic() - soak_t0
    stats.set_phase("idle-end")
    time.sleep(IDLE)
    end_rss, end_fds = sampler.read()
    sampler.halt.set()
    sampler.join()
    return report(stats, sampler, proxy, tmp, start_rss, (warm_rss, warm_fds), (end_rss, end_fds), soak_elapsed)


def report(stats, sampler, proxy, tmp, start, warm, end, soak_elapsed):
    fails = []
    print(f"\n{'phase':<6} {'window':>8} {'ok':>7} {'errors':>6} {'wrong':>6} {'req/s':>7} {'MiB/s':>6} {'RSS MiB':>8}")
    tot = {"ok": 0, "err": 0, "bad": 0, "bytes": 0}
    for (phase, w), c in sorted(stats.windows.items(), key=lambda kv: (kv[0][0] != "warm", kv[0][1])):
        if phase not in ("warm", "soak"):
            continue
        rss = [s[2] for s in sampler.samples if s[1] == phase and w * WINDOW <= s[0] < (w + 1) * WINDOW]
        n = c["ok"] + c["err"] + c["bad"]
        print(f"{phase:<6} {w * WINDOW:>4}-{(w + 1) * WINDOW:<3} {c['ok']:>7} {c['err']:>6} {c['bad']:>6} "
              f"{n / WINDOW:>7.0f} {c['bytes'] / WINDOW / 2**20:>6.1f} {max(rss) / 1024 if rss else 0:>8.1f}")
        for k in tot:
            tot[k] += c[k]
        if c["err"] > MAX_WIN_ERR:
            fails.append(f"{c['err']} errors in {phase} window {w * WINDOW}s (bound {MAX_WIN_ERR})")
    # A window in the middle of the soak with nothing completed is a stall.
    soak_w = sorted(w for (p, w) in stats.windows if p == "soak")
    for w in range(soak_w[0], soak_w[-1]) if soak_w else []:
        c = stats.windows.get(("soak", w), {"ok": 0, "bad": 0})
        if c["ok"] + c["bad"] == 0:
            fails.append(f"no response completed in soak window {w * WINDOW}s")
    soak = {k: sum(c[k] for (p, _), c in stats.windows.items() if p == "soak") for k in tot}
    n = soak["ok"] + soak["err"] + soak["bad"]
    print(f"\ntotal (warm-up + soak): {tot['ok']} correct, {tot['err']} errors, {tot['bad']} wrong")
    print(f"soak: {n} requests in {soak_elapsed:.0f}s = {n / soak_elapsed:.0f} req/s, "
          f"{soak['bytes'] / soak_elapsed / 2**20:.1f} MiB/s of bodies")
    print("page requests by consent state: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.by_state.items())))
    print(f"distinct (page, state, body) verdicts: {len(stats.verdicts)}")
    if tot["bad"]:
        fails.append(f"{tot['bad']} responses did not match their consent state")
    for what, probs in stats.examples:
        print(f"  wrong: {what}: {probs}")
    for msg, cnt in sorted(stats.problems.items(), key=lambda kv: -kv[1])[:15]:
        print(f"  {cnt:>6} x {msg}")
    # ETags: one per (page, state); different grants never share one.
    owners = {}
    for (path, granted, decided, gpc, document, enc), tags in stats.etags.items():
        if len(tags) > 1:
            fails.append(f"{path} {sorted(granted)} gpc={gpc} document={document} {enc}: ETags {sorted(tags)}")
        for t in tags:
            owners.setdefault(t, set()).add(granted)
    if any(len(g) > 1 for g in owners.values()):
        fails.append("one ETag shared by different consent states")
    under = [s[2] for s in sampler.samples if s[1] == "soak"]
    mib = lambda k: k / 1024  # noqa: E731
    bound = warm[0] * (1 + GROWTH / 100)
    print(f"\nRSS: start {mib(start[0]):.1f} MiB; idle after warm-up {mib(warm[0]):.1f} MiB ({warm[1]} fds); "
          f"under soak min {mib(min(under)):.1f} / max {mib(max(under)):.1f} MiB; "
          f"idle after soak {mib(end[0]):.1f} MiB ({end[1]} fds); bound {mib(bound):.1f} MiB (+{GROWTH:g}%)")
    if under:
        third = max(1, len(under) // 3)
        first, last = max(under[:third]), max(under[-third:])
        print(f"RSS peak in first third of soak {mib(first):.1f} MiB, last third {mib(last):.1f} MiB")
    if end[0] > bound:
        fails.append(f"RSS grew: {mib(end[0]):.1f} MiB after soak vs {mib(warm[0]):.1f} MiB warm baseline")
    # The upstream keep-alive pool keeps at most 64 idle connections (pool_max_idle_per_host).
    if end[1] > warm[1] + 64:
        fails.append(f"open descriptors grew: {warm[1]} -> {end[1]}")
    if proxy.poll() is not None:
        fails.append(f"consentgate exited with status {proxy.returncode}")
    with open(os.path.join(tmp, "consentgate.log")) as f:
        log = f.read()
    bad_log = [l for l in log.splitlines() if "panicked" in l or " ERROR " in l]
    print(f"consentgate log: {len(log.splitlines())} lines at warn level, {len(bad_log)} errors/panics")
    for l in bad_log[:5]:
        print("  " + l[:200])
    if bad_log:
        fails.append(f"{len(bad_log)} error or panic lines in consentgate's log")
    if fails:
        print("\nSOAK FAILED:\n  " + "\n  ".join(fails))
        return 1
    print("\nSOAK PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
