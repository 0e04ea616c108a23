/* consentgate client runtime. The banner is a plain form that works without JavaScript; this
 * script makes it smoother: decisions are posted with fetch, granted services are activated in
 * place (in document order, no reload), a revocation reloads the page, the settings control
 * opens the banner in place (fetched when first needed: a decided visitor's pages carry only
 * the control, a link to the settings page), and a chat facade loads and opens its widget. */
(function () {
  'use strict';
  var runtime = document.currentScript || document.querySelector('script[data-consentgate="runtime"]');
  var prefix = (runtime && runtime.getAttribute('data-consentgate-prefix')) || '/__consent';
  /* With an enforced CSP the page's policy cannot grow: granted services load after a reload. */
  var reloadOnGrant = runtime && runtime.getAttribute('data-consentgate-reload') === 'true';
  var OPEN_KEY = 'consentgate-open';
  var banner = document.querySelector('[data-consentgate="banner"]');
  var DATA = 'data-consentgate-';

  function ids(el) {
    return (el.getAttribute(DATA + 'service') || '').split(/\s+/).filter(Boolean);
  }

  function allowed(el, services) {
    var list = ids(el);
    return list.length > 0 && list.every(function (id) { return services[id] === true; });
  }

  function ours(el) {
    return el.tagName === 'INPUT' || el.tagName === 'BUTTON' ||
      (el.closest && (el.closest('[data-consentgate="banner"]') || el.closest('[data-consentgate-placeholder]')));
  }

  function post(params) {
    return fetch(prefix, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Accept': 'application/json' },
      body: params.toString()
    }).then(function (r) {
      if (!r.ok) { throw new Error('consentgate: ' + r.status); }
      return r.json();
    });
  }

  /* A neutralized script becomes a live one: same attributes, original type and URL. Classic
   * blocking scripts are awaited so that the inline code after them finds what they define. */
  function activateScript(old) {
    return new Promise(function (resolve) {
      var s = document.createElement('script');
      var src = null;
      Array.prototype.forEach.call(old.attributes, function (a) {
        var n = a.name;
        if (n === 'type' || n === DATA + 'service') { return; }
        if (n === DATA + 'type') { s.setAttribute('type', a.value); return; }
        if (n === DATA + 'src' || n === DATA + 'href' || n === DATA + 'xlink-href') { src = a.value; return; }
        s.setAttribute(n, a.value);
      });
      var waits = false;
      if (src !== null) {
        var async = old.hasAttribute('async') || old.hasAttribute('defer') || s.type === 'module';
        s.async = async;
        if (!async) {
          waits = true;
          s.onload = s.onerror = function () { resolve(); };
        }
        s.src = src;
      } else {
        s.text = old.text;
      }
      old.parentNode.replaceChild(s, old);
      if (!waits) { resolve(); }
    });
  }

  function activateElement(el) {
    Array.prototype.slice.call(el.attributes).forEach(function (a) {
      if (a.name.indexOf(DATA) !== 0 || a.name === DATA + 'service') { return; }
      var target = a.name.slice(DATA.length);
      if (target === 'xlink-href') {
        el.setAttributeNS('http://www.w3.org/1999/xlink', 'xlink:href', a.value);
      } else {
        el.setAttribute(target, a.value);
      }
      el.removeAttribute(a.name);
    });
    el.removeAttribute(DATA + 'service');
    if (el.tagName === 'OBJECT' && el.parentNode) {
      el.parentNode.replaceChild(el.cloneNode(true), el); /* <object> loads only when inserted */
    }
  }

  function activate(services) {
    var chain = Promise.resolve();
    Array.prototype.forEach.call(document.querySelectorAll('[' + DATA + 'service]'), function (el) {
      if (ours(el) || !allowed(el, services)) { return; }
      chain = chain.then(function () {
        return el.tagName === 'SCRIPT' ? activateScript(el) : activateElement(el);
      });
    });
    return chain;
  }

  function setOpen(open) {
    if (!banner) { return; }
    banner.setAttribute(DATA + 'open', open ? 'true' : 'false');
    if (!open && location.hash === '#consentgate-banner' && history.replaceState) {
      history.replaceState(null, '', location.pathname + location.search);
    }
    if (open) {
      var title = banner.querySelector('.cg-title');
      if (title) { title.setAttribute('tabindex', '-1'); title.focus(); }
    }
  }

  /* The same control the server renders on a decided visitor's pages. */
  function ensureSettingsControl() {
    if (!banner || document.querySelector('[' + DATA + 'action="settings"]')) { return; }
    var a = document.createElement('a');
    a.href = prefix + '/settings';
    a.className = 'cg-settings ' + (banner.getAttribute(DATA + 'corner') || 'cg-left');
    a.setAttribute('aria-haspopup', 'dialog');
    a.setAttribute(DATA + 'action', 'settings');
    a.textContent = banner.getAttribute(DATA + 'settings-label') || 'Privacy settings';
    document.body.appendChild(a);
  }

  function sync(services) {
    if (!banner) { return; }
    Array.prototype.forEach.call(banner.querySelectorAll('input[' + DATA + 'service]'), function (box) {
      box.checked = services[box.getAttribute(DATA + 'service')] === true;
    });
  }

  /* Runs the catalog's opener until it stops throwing (the widget's API is ready) or 15 s pass.
   * An inserted inline script, not eval: a CSP with 'unsafe-inline' but no 'unsafe-eval' allows it. */
  function openWidget(code) {
    if (!code) { return; }
    var flag = '__consentgateOpened' + Math.random().toString(36).slice(2);
    var deadline = Date.now() + 15000;
    window[flag] = false;
    (function attempt() {
      var s = document.createElement('script');
      s.text = 'try{' + code + '\n;window["' + flag + '"]=true}catch(e){}';
      (document.head || document.documentElement).appendChild(s);
      s.parentNode.removeChild(s);
      if (!window[flag] && Date.now() < deadline) {
        setTimeout(attempt, 300);
      } else {
        try { delete window[flag]; } catch (e) { window[flag] = undefined; }
      }
    })();
  }

  function decided(result, opener) {
    var reload = (result.revoked && result.revoked.length) ||
      (reloadOnGrant && result.added && result.added.length);
    if (reload) {
      /* Revocation: what already ran cannot be unloaded, a fresh page is clean. A grant under an
       * enforced CSP: the new page's policy allows the service. A facade's opener survives it. */
      if (opener) { try { sessionStorage.setItem(OPEN_KEY, opener); } catch (e) { /* private mode */ } }
      location.reload();
      return Promise.reject(new Error('reloading'));
    }
    sync(result.services);
    setOpen(false);
    ensureSettingsControl();
    Array.prototype.forEach.call(document.querySelectorAll('[' + DATA + 'placeholder]'), function (f) {
      if (result.services[f.getAttribute(DATA + 'placeholder')] === true) { f.parentNode.removeChild(f); }
    });
    return activate(result.services);
  }

  var lastAction = null;
  var bypass = false;
  /* The banner for the settings control: the one on the page, or fetched and added once. If
   * that fails the control's own link (the settings page) still works. */
  var fetching = null;
  function openSettings(control) {
    if (banner) { setOpen(true); return; }
    if (fetching) { return; }
    fetching = fetch(prefix + '/banner', { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (r) {
        if (!r.ok) { throw new Error('consentgate: ' + r.status); }
        return r.text();
      })
      .then(function (html) {
        var box = document.createElement('div');
        box.innerHTML = html;
        var found = box.querySelector('[data-consentgate="banner"]');
        if (!found) { throw new Error('consentgate: no banner'); }
        document.body.appendChild(found);
        banner = found;
        setOpen(true);
      })
      .catch(function () {
        fetching = null;
        location.href = control.href;
      });
  }

  document.addEventListener('click', function (e) {
    var t = e.target && e.target.closest ? e.target.closest('[' + DATA + 'action]') : null;
    if (!t) { return; }
    if (t.getAttribute(DATA + 'action') === 'settings') {
      e.preventDefault();
      openSettings(t);
    } else {
      lastAction = t;
    }
  });

  /* Every form that posts to the consent endpoint (the banner, a facade, or the site's own
   * controls) is sent with fetch: exactly the fields the plain form would send. */
  function formParams(form, submitter) {
    var data;
    try { data = new FormData(form, submitter || undefined); } catch (e) {
      data = new FormData(form);
      if (submitter && submitter.name) { data.append(submitter.name, submitter.value); }
    }
    var params = new URLSearchParams();
    data.forEach(function (value, key) { params.append(key, value); });
    return params;
  }

  document.addEventListener('submit', function (e) {
    var form = e.target;
    if (bypass || !form || form.getAttribute('action') !== prefix) { return; }
    var submitter = e.submitter || (lastAction && lastAction.form === form ? lastAction : null);
    var params = formParams(form, submitter);
    var facade = form.closest('[' + DATA + 'placeholder]');
    e.preventDefault();
    var opener = facade ? facade.getAttribute(DATA + 'opener') : null;
    post(params).then(function (result) {
      return decided(result, opener).then(function () {
        if (opener) { openWidget(opener); }
      }, function () { /* reloading */ });
    }).catch(function () {
      /* The fetch failed: send the plain form, which always works. */
      bypass = true;
      if (form.requestSubmit) { form.requestSubmit(submitter || undefined); } else { form.submit(); }
    });
  });

  /* A facade's chat, granted just before a reload: open it now that its scripts run. */
  try {
    var pending = sessionStorage.getItem(OPEN_KEY);
    if (pending) {
      sessionStorage.removeItem(OPEN_KEY);
      openWidget(pending);
    }
  } catch (e) { /* storage unavailable */ }

  document.addEventListener('keydown', function (e) {
    if (e.key === 'Escape' && banner && banner.getAttribute(DATA + 'open') === 'true' &&
        banner.getAttribute(DATA + 'decided') === 'true') {
      setOpen(false);
    }
  });
})();
