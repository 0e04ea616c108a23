"""Independent check of one proxied page against the visitor's consent state.

It parses the response with Python's html.parser (not lol_html, so no shared assumptions;
<noscript> content is parsed as markup, the way a browser without JavaScript sees it), resolves
every URL a browser would fetch or connect to against the page URL, and matches it against the
catalog's host patterns (config/services/*.toml) with its own matcher. Then it compares the
page with the origin's snippets: granted and first-party ones must be there byte for byte,
blocked ones must be inert (URLs only in data-consentgate-* attributes, scripts text/plain)."""

import glob
import os
import tomllib
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pages

# Script types a browser executes (HTML spec: empty, a JavaScript MIME type, or "module").
JS_TYPES = {
    "", "module", "text/javascript", "application/javascript", "application/ecmascript",
    "application/x-ecmascript", "application/x-javascript", "text/ecmascript", "text/jscript",
    "text/livescript", "text/x-ecmascript", "text/x-javascript", "text/javascript1.0",
    "text/javascript1.1", "text/javascript1.2", "text/javascript1.3", "text/javascript1.4",
    "text/javascript1.5",
}
URL_ATTRS = {"src", "poster", "ping", "xlink:href"}
HREF_TAGS = {"link", "script", "image", "use", "feimage"}


def load_catalog(root):
    """service id -> list of (host pattern, path prefix or "")."""
    cat = {}
    for f in glob.glob(os.path.join(root, "config", "services", "*.toml")):
        with open(f, "rb") as fh:
            d = tomllib.load(fh)
        pats = []
        for h in d.get("hosts", []):
            host, _, path = h.partition("/")
            pats.append((host.lower(), "/" + path if path else ""))
        cat[d["id"]] = pats
    return cat


def host_matches(pattern, host):
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def services_of(cat, url, host_only=False):
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        return set()
    path = parts.path or "/"
    found = set()
    for sid, pats in cat.items():
        for pat, prefix in pats:
            if host_matches(pat, host) and (host_only or not prefix or path.startswith(prefix)):
                found.add(sid)
    return found


class Walker(HTMLParser):
    """Collects what a browser would fetch, every script, and our data-consentgate markers."""

    def __init__(self, base):
        super().__init__(convert_charrefs=True)
        self.base = base
        self.fetches = []  # (tag, attr, absolute url, host_only)
        self.scripts = []  # (attrs dict, text)
        self.marked = []  # attrs dicts of elements with data-consentgate-service
        self.url_attrs = []  # (tag, attr, value as written) of URL-bearing attributes
        self._script = None
        self._base_seen = False

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if "data-consentgate-service" in a:
            self.marked.append(dict(a, _tag=tag))
        if tag == "base" and "href" in a and not self._base_seen:
            # The first <base href> wins, as in browsers.
            self._base_seen = True
            self.base = urljoin(self.base, a["href"].strip())
        for k, v in a.items():
            if k in URL_ATTRS or (k == "href" and tag in HREF_TAGS) or (k == "data" and tag == "object"):
                self.url_attrs.append((tag, k, v))
                urls = v.split() if k == "ping" else [v]
                rel = a.get("rel", "").lower().split() if tag == "link" else []
                host_only = "preconnect" in rel or "dns-prefetch" in rel
                for u in urls:
                    self._fetch(tag, k, u, host_only)
            elif k in ("srcset", "imagesrcset"):
                self.url_attrs.append((tag, k, v))
                for cand in v.split(","):
                    if cand.strip():
                        self._fetch(tag, k, cand.split()[0], False)
        if tag == "meta" and a.get("http-equiv", "").lower() == "refresh":
            _, _, rest = a.get("content", "").partition(";")
            _, eq, u = rest.partition("=")
            if eq:
                self._fetch(tag, "content", u.strip().strip("'\""), False)
        if tag == "script":
            self._script = (a, [])

    def _fetch(self, tag, attr, u, host_only):
        u = u.strip()
        if u:
            self.fetches.append((tag, attr, urljoin(self.base, u), host_only))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag == "script":
            self.handle_endtag(tag)

    def handle_data(self, data):
        if self._script is not None:
            self._script[1].append(data)

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script[0], "".join(self._script[1])))
            self._script = None


def walk(html, base):
    w = Walker(base)
    w.feed(html)
    w.close()
    if w._script is not None:  # unclosed at EOF
        w.scripts.append((w._script[0], "".join(w._script[1])))
    return w


def executable(attrs):
    return attrs.get("type", "").strip().lower() in JS_TYPES


class Checker:
    def __init__(self, root, base_url):
        self.cat = load_catalog(root)
        self.base_url = base_url
        self.origin = {p: pages.render(p) for p in pages.PAGES}
        # Per snippet: what the origin's markup holds, parsed once.
        self.snip = {}
        for key, (sid, html) in pages.SNIPPETS.items():
            w = walk(html, base_url + "/")
            self.snip[key] = {
                "sid": sid,
                "bytes": html.encode(),
                "ext_scripts": [a["src"] for a, _ in w.scripts if "src" in a],
                "inline": [t for a, t in w.scripts if "src" not in a and t.strip()],
                # Elements that stay in the page, their URL moved to data-consentgate-<attr>
                # (<link>s to a refused service are removed instead).
                "elements": [x for x in w.url_attrs if x[0] not in ("script", "link")],
            }

    def page(self, path, body, granted, decided, document, csp):
        """Problems found in one response body (empty list: correct)."""
        granted = set(granted) & set(pages.CONFIGURED)
        problems = []
        try:
            html = body.decode("utf-8")
        except UnicodeDecodeError as e:
            return [f"body is not UTF-8: {e}"]
        w = walk(html, self.base_url + path)
        _, head, tail, _ = pages.PAGES[path]
        on_page = pages.services_on(path)
        # 1. Nothing the browser fetches belongs only to refused services.
        for tag, attr, url, host_only in w.fetches:
            sids = services_of(self.cat, url, host_only)
            if sids and not (sids & granted):
                problems.append(f"leak: <{tag} {attr}> fetches {url} ({','.join(sorted(sids))})")
        # 2. Snippets: granted and first-party verbatim; refused inert and kept for activation.
        inert = {}
        for a, t in w.scripts:
            if not executable(a):
                inert.setdefault(a.get("data-consentgate-service"), []).append((a, t))
        runnable = [t for a, t in w.scripts if executable(a)]
        for key in head + tail:
            s = self.snip[key]
            sid = s["sid"]
            if sid is None or sid in granted:
                if s["bytes"] not in body:
                    problems.append(f"snippet {key} ({sid or 'first-party'}) not passed verbatim")
                continue
            mine = inert.get(sid, [])
            for src in s["ext_scripts"]:
                if not any(a.get("data-consentgate-src") == src and a.get("type") == "text/plain" for a, _ in mine):
                    problems.append(f"snippet {key}: script {src} not inert for {sid}")
            for text in s["inline"]:
                if text in runnable:
                    problems.append(f"leak: inline script of {key} ({sid}) is executable")
                elif not any(t == text and a.get("type") == "text/plain" for a, t in mine):
                    problems.append(f"snippet {key}: inline script not kept inert for {sid}")
            for tag, attr, url in s["elements"]:
                if not any(m["_tag"] == tag and m.get("data-consentgate-service") == sid
                           and m.get("data-consentgate-" + attr) == url for m in w.marked):
                    problems.append(f"snippet {key}: <{tag} {attr}={url}> not kept as data-consentgate-{attr}")
        # 3. With every service on the page granted and no banner, the origin's bytes.
        if not document and on_page <= granted and body != self.origin[path]:
            problems.append("fully consented page differs from the origin's bytes")
        # 4. The banner: only on document requests, open exactly when undecided.
        marker = f'data-consentgate-decided="{"true" if decided else "false"}"'
        if document and marker not in html:
            problems.append(f"document without banner marker {marker}")
        if not document and 'data-consentgate="banner"' in html:
            problems.append("banner injected into a non-document response")
        # 5. The CSP backstop allows the granted services' hosts and no refused one's.
        problems += self.csp(csp, granted)
        return problems

    def csp(self, header, granted):
        if header is None:
            return ["no Content-Security-Policy-Report-Only header"]
        tokens = set(header.replace(";", " ").split())
        allowed = {h for s in granted for h, p in self.cat.get(s, []) if not p}
        out = []
        for sid, pats in self.cat.items():
            for h, p in pats:
                if p:
                    continue
                if sid in granted and h not in tokens:
                    out.append(f"csp: granted {sid} host {h} missing")
                elif sid not in granted and h in tokens and h not in allowed:
                    out.append(f"csp: refused {sid} host {h} allowed")
        return out
