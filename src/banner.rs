//! The consent banner, the settings control and the chat facade, rendered on the server as plain
//! HTML forms, so they work without JavaScript; the client runtime (`assets/consentgate.js`)
//! only makes them smoother (no reload, activation in place).
//!
//! DOM contract: root `[data-consentgate="banner"]` (a dialog), buttons
//! `[data-consentgate-action="accept-all" | "reject-all" | "save"]` of the same style, one
//! `input[type=checkbox][data-consentgate-service=<id>]` per service, grouped by purpose, never
//! pre-checked for an undecided visitor; `[data-consentgate-action="settings"]` after a decision;
//! `[data-consentgate-placeholder=<id>]` with `[data-consentgate-action="load"]` for chat facades.

use std::fmt::Write;

use crate::catalog::{Catalog, Purpose, Service};
use crate::decision::Decision;
use crate::i18n::Languages;

/// Escapes text for HTML content and double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// "Provider, address (country)": the country in the visitor's language, unless the address
/// already ends with that name.
pub fn provider_line(s: &Service, t: &Languages, lang: &str) -> String {
    let country = t.country(lang, &s.processor.country);
    let address = s.processor.address.trim();
    if address.to_lowercase().ends_with(&country.to_lowercase()) {
        format!("{}, {address}", s.processor.name)
    } else {
        format!("{}, {address} ({country})", s.processor.name)
    }
}

/// Where the settings control sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corner {
    BottomLeft,
    BottomRight,
}

/// Per-site banner settings.
#[derive(Debug, Clone)]
pub struct BannerOptions {
    /// Consent endpoint prefix (`/__consent`).
    pub prefix: String,
    /// The site's privacy policy, linked from the banner.
    pub privacy_policy_url: String,
    pub settings_corner: Corner,
    /// Query suffix that changes when the assets change (cache busting), e.g. `?v=1a2b3c`.
    pub asset_version: String,
    /// The services the banner lists (`None`: the whole catalog).
    pub shown: Option<crate::matcher::ServiceSet>,
    /// An enforced CSP is fixed per document: newly granted services load after a reload.
    pub reload_on_grant: bool,
}

/// What the page gets before `</body>` for one visitor.
pub struct Rendered {
    pub html: String,
}

/// Whom and what the banner is rendered for: the services, the visitor's decision and language,
/// the site's options, and whether the browser sent Global Privacy Control.
pub struct View<'a> {
    pub catalog: &'a Catalog,
    pub decision: &'a Decision,
    pub texts: &'a Languages,
    pub lang: &'a str,
    pub opts: &'a BannerOptions,
    pub gpc: bool,
}

fn purpose_key(p: Purpose) -> &'static str {
    match p {
        Purpose::Necessary => "necessary",
        Purpose::Functional => "functional",
        Purpose::Statistics => "statistics",
        Purpose::Marketing => "marketing",
    }
}

fn service_facts(out: &mut String, s: &Service, t: &Languages, lang: &str) {
    let (description, categories) = s.text(lang);
    let _ = write!(
        out,
        "<p class=\"cg-desc\">{}</p><dl class=\"cg-facts\">",
        esc(description)
    );
    if !categories.is_empty() {
        let _ = write!(
            out,
            "<dt>{}</dt><dd>{}</dd>",
            esc(t.get(lang, "label_data")),
            esc(&categories.join(", "))
        );
    }
    let _ = write!(
        out,
        "<dt>{}</dt><dd>{}</dd>",
        esc(t.get(lang, "label_processor")),
        esc(&provider_line(s, t, lang))
    );
    let _ = write!(
        out,
        "<dt>{}</dt><dd>{}</dd>",
        esc(t.get(lang, "label_legal_basis")),
        esc(t.get(lang, "legal_basis_consent"))
    );
    if s.transfer.third_country {
        let _ = write!(
            out,
            "<dt>{}</dt><dd>{}</dd>",
            esc(t.get(lang, "label_transfer")),
            esc(&s.transfer.basis)
        );
    } else {
        let _ = write!(
            out,
            "<dt>{}</dt><dd>✓</dd>",
            esc(t.get(lang, "label_no_transfer"))
        );
    }
    let _ = write!(
        out,
        "</dl><a class=\"cg-link\" href=\"{}\" target=\"_blank\" rel=\"noopener noreferrer\">{}</a>",
        esc(&s.privacy_policy_url),
        esc(t.get(lang, "label_provider_privacy"))
    );
}

/// What a page gets before `</body>`: for an undecided visitor the banner itself, open; after
/// a decision only the settings control, a link to the settings page that the runtime turns
/// into the banner in place (fetched from `{prefix}/banner` when clicked). Every page a decided
/// visitor browses so carries a few hundred bytes instead of every service's facts. Then the
/// chat facades and the runtime.
pub fn render(v: &View<'_>, facades: &[usize]) -> Rendered {
    let opts = v.opts;
    let mut h = String::with_capacity(if v.decision.decided { 1024 } else { 48 * 1024 });
    let prefix = esc(&opts.prefix);
    stylesheet(&mut h, opts);
    if v.decision.decided {
        let _ = write!(
            h,
            "<a href=\"{prefix}/settings\" class=\"cg-settings {corner}\" aria-haspopup=\"dialog\" data-consentgate-action=\"settings\">{}</a>",
            esc(v.texts.get(v.lang, "settings_button")),
            corner = corner_class(opts),
        );
    } else {
        dialog(&mut h, v, None);
    }
    for &i in facades {
        if let Some(s) = v.catalog.get(i) {
            render_facade(&mut h, s, v.texts, v.lang, &prefix);
        }
    }
    let _ = write!(
        h,
        "<script src=\"{prefix}/assets/consentgate.js{v}\" defer data-consentgate=\"runtime\" data-consentgate-prefix=\"{prefix}\"{reload}></script>",
        v = esc(&opts.asset_version),
        reload = if opts.reload_on_grant { " data-consentgate-reload=\"true\"" } else { "" },
    );
    Rendered { html: h }
}

/// The banner alone, as the runtime fetches it when a decided visitor opens the settings (it
/// shows the choices in force).
pub fn fragment(v: &View<'_>) -> String {
    let mut h = String::with_capacity(48 * 1024);
    dialog(&mut h, v, None);
    h
}

/// The settings page a browser without JavaScript gets from the settings control: the banner,
/// open, whose form sends the visitor back to `return_to` (a path on this site).
pub fn settings_page(v: &View<'_>, return_to: &str) -> String {
    let mut h = String::with_capacity(48 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta name=\"robots\" content=\"noindex\"><title>{}</title>",
        esc(v.lang),
        esc(v.texts.get(v.lang, "settings_button"))
    );
    stylesheet(&mut h, v.opts);
    h.push_str("</head><body>");
    dialog(&mut h, v, Some(return_to));
    h.push_str("</body></html>");
    h
}

fn stylesheet(h: &mut String, opts: &BannerOptions) {
    let _ = write!(
        h,
        "<link rel=\"stylesheet\" href=\"{}/assets/consentgate.css{}\">",
        esc(&opts.prefix),
        esc(&opts.asset_version)
    );
}

fn corner_class(opts: &BannerOptions) -> &'static str {
    match opts.settings_corner {
        Corner::BottomLeft => "cg-left",
        Corner::BottomRight => "cg-right",
    }
}

/// The banner dialog: open for an undecided visitor (and on the settings page), closed until
/// the runtime opens it otherwise. `return_to` adds the form field the settings page needs.
fn dialog(h: &mut String, v: &View<'_>, return_to: Option<&str>) {
    let View {
        catalog,
        decision,
        texts,
        lang,
        opts,
        gpc,
    } = *v;
    let t = |k: &str| esc(texts.get(lang, k));
    let prefix = esc(&opts.prefix);
    // The settings page shows it open whatever the state: the page exists to make a choice.
    let open = !decision.decided || return_to.is_some();
    let corner = corner_class(opts);
    let _ = write!(
        h,
        "<div id=\"consentgate-banner\" class=\"cg-banner\" data-consentgate=\"banner\" role=\"dialog\" aria-modal=\"false\" aria-labelledby=\"cg-title\" aria-describedby=\"cg-intro\" lang=\"{lang}\" data-consentgate-open=\"{open}\" data-consentgate-decided=\"{decided}\" data-consentgate-corner=\"{corner}\" data-consentgate-settings-label=\"{label}\">",
        lang = esc(lang),
        decided = decision.decided,
        label = t("settings_button"),
    );
    let _ = write!(
        h,
        "<form class=\"cg-form\" method=\"post\" action=\"{prefix}\"><h2 id=\"cg-title\" class=\"cg-title\">{}</h2><p id=\"cg-intro\" class=\"cg-intro\">{}</p>",
        t("banner_title"),
        t("banner_intro")
    );
    if let Some(back) = return_to {
        let _ = write!(
            h,
            "<input type=\"hidden\" name=\"return\" value=\"{}\">",
            esc(back)
        );
    }
    if gpc {
        let _ = write!(
            h,
            "<p class=\"cg-gpc\" data-consentgate=\"gpc\">{}</p>",
            t("gpc_honoured")
        );
    }
    h.push_str("<div class=\"cg-purposes\">");
    for purpose in [Purpose::Functional, Purpose::Statistics, Purpose::Marketing] {
        let services: Vec<(usize, &Service)> = catalog
            .services()
            .iter()
            .enumerate()
            .filter(|(_, s)| s.purpose == purpose)
            .filter(|(i, _)| opts.shown.as_ref().is_none_or(|set| set.contains(*i)))
            .collect();
        if services.is_empty() {
            continue;
        }
        let key = purpose_key(purpose);
        let _ = write!(
            h,
            "<fieldset class=\"cg-purpose\" data-consentgate-purpose=\"{key}\"><legend>{}</legend><p class=\"cg-purpose-desc\">{}</p>",
            t(&format!("purpose_{key}")),
            t(&format!("purpose_{key}_description"))
        );
        for (i, s) in services {
            let id = esc(&s.id);
            // Checked only to show a choice the visitor already made; never a default.
            let checked = if decision.decided && decision.granted.contains(i) {
                " checked"
            } else {
                ""
            };
            let _ = write!(
                h,
                "<div class=\"cg-service\"><label class=\"cg-check\"><input type=\"checkbox\" name=\"service\" value=\"{id}\" data-consentgate-service=\"{id}\"{checked}> <span>{}</span></label><details class=\"cg-more\"><summary>{}</summary>",
                esc(&s.name),
                esc(&s.name)
            );
            service_facts(h, s, texts, lang);
            h.push_str("</details></div>");
        }
        h.push_str("</fieldset>");
    }
    h.push_str("</div>");
    // Three equal buttons: refusing is exactly as easy and as visible as consenting.
    let _ = write!(
        h,
        "<div class=\"cg-actions\"><button class=\"cg-btn\" type=\"submit\" name=\"action\" value=\"reject-all\" data-consentgate-action=\"reject-all\">{}</button><button class=\"cg-btn\" type=\"submit\" name=\"action\" value=\"save\" data-consentgate-action=\"save\">{}</button><button class=\"cg-btn\" type=\"submit\" name=\"action\" value=\"accept-all\" data-consentgate-action=\"accept-all\">{}</button></div>",
        t("reject_all"),
        t("save"),
        t("accept_all")
    );
    let receipts = if decision.decided && decision.receipt.is_some() {
        format!(
            " · <a class=\"cg-link\" href=\"{prefix}/receipt\" download data-consentgate=\"receipts\">{}</a>",
            t("my_receipts")
        )
    } else {
        String::new()
    };
    let _ = write!(
        h,
        "<p class=\"cg-foot\"><a class=\"cg-link\" href=\"{}\">{}</a>{receipts}</p></form></div>",
        esc(&opts.privacy_policy_url),
        t("privacy_policy")
    );
}

fn render_facade(h: &mut String, s: &Service, texts: &Languages, lang: &str, prefix: &str) {
    let text = texts
        .get(lang, "facade_text")
        .replace("{service}", &s.name)
        .replace("{processor}", &s.processor.name)
        .replace("{country}", texts.country(lang, &s.processor.country));
    let id = esc(&s.id);
    let opener = s.facade.as_ref().map(|f| esc(&f.open)).unwrap_or_default();
    let _ = write!(
        h,
        "<div class=\"cg-facade\" data-consentgate-placeholder=\"{id}\" data-consentgate-opener=\"{opener}\" role=\"region\" aria-label=\"{title}\"><form method=\"post\" action=\"{prefix}\"><input type=\"hidden\" name=\"action\" value=\"grant\"><input type=\"hidden\" name=\"service\" value=\"{id}\"><p class=\"cg-facade-title\">{title}</p><p class=\"cg-facade-text\">{text}</p><button class=\"cg-btn\" type=\"submit\" data-consentgate-action=\"load\" data-consentgate-service=\"{id}\">{button}</button></form></div>",
        title = esc(texts.get(lang, "facade_title")),
        text = esc(&text),
        button = esc(texts.get(lang, "facade_button")),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A view for the tests: English, the given decision, options and GPC.
    fn view<'a>(
        c: &'a Catalog,
        d: &'a Decision,
        l: &'a Languages,
        o: &'a BannerOptions,
        gpc: bool,
    ) -> View<'a> {
        View {
            catalog: c,
            decision: d,
            texts: l,
            lang: "en",
            opts: o,
            gpc,
        }
    }

    fn opts() -> BannerOptions {
        BannerOptions {
            prefix: "/__consent".into(),
            privacy_policy_url: "/privacy".into(),
            settings_corner: Corner::BottomLeft,
            asset_version: "?v=1".into(),
            shown: None,
            reload_on_grant: false,
        }
    }

    #[test]
    fn undecided_banner_contract() {
        let c = Catalog::builtin().unwrap();
        let l = Languages::new("en", &BTreeMap::new()).unwrap();
        let r = render(&view(&c, &Decision::undecided(), &l, &opts(), false), &[]).html;
        assert!(r.contains("data-consentgate=\"banner\""));
        assert!(r.contains("role=\"dialog\""));
        for a in ["accept-all", "reject-all", "save"] {
            assert!(
                r.contains(&format!("data-consentgate-action=\"{a}\"")),
                "{a}"
            );
        }
        assert!(!r.contains(" checked"), "nothing is pre-checked");
        assert!(!r.contains("data-consentgate-action=\"settings\""));
        for s in c.services() {
            assert!(
                r.contains(&format!("data-consentgate-service=\"{}\"", s.id)),
                "{}",
                s.id
            );
        }
        assert!(r.contains("<form class=\"cg-form\" method=\"post\" action=\"/__consent\">"));
        assert!(r.contains("Zendesk, Inc."));
    }

    #[test]
    fn decided_banner_has_settings_and_reflects_choices() {
        let c = Catalog::builtin().unwrap();
        let l = Languages::new("en", &BTreeMap::new()).unwrap();
        let mut d = Decision {
            decided: true,
            ..Decision::default()
        };
        d.granted.insert(c.index_of("youtube").unwrap());
        let r = render(&view(&c, &d, &l, &opts(), false), &[]).html;
        assert!(r.contains("data-consentgate-action=\"settings\""));
        assert!(!r.contains("data-consentgate=\"banner\""));
        for r in [
            fragment(&view(&c, &d, &l, &opts(), false)),
            settings_page(&view(&c, &d, &l, &opts(), false), "/a?b=\"c\""),
        ] {
            assert_eq!(r.matches(" checked").count(), 1);
            assert!(r.contains("value=\"youtube\" data-consentgate-service=\"youtube\" checked"));
        }
        let page = settings_page(&view(&c, &d, &l, &opts(), false), "/a?b=\"c\"");
        assert!(page.contains(r#"name="return" value="/a?b=&quot;c&quot;""#));
        assert!(page.contains("data-consentgate-open=\"true\""));
        assert!(
            fragment(&view(&c, &d, &l, &opts(), false)).contains("data-consentgate-open=\"false\"")
        );
    }

    #[test]
    fn only_the_sites_services_are_listed() {
        let c = Catalog::builtin().unwrap();
        let l = Languages::new("en", &BTreeMap::new()).unwrap();
        let mut o = opts();
        let mut set = crate::matcher::ServiceSet::new();
        set.insert(c.index_of("youtube").unwrap());
        o.shown = Some(set);
        let r = render(&view(&c, &Decision::undecided(), &l, &o, false), &[]).html;
        assert_eq!(r.matches("type=\"checkbox\"").count(), 1);
        assert!(r.contains("data-consentgate-service=\"youtube\""));
        assert!(
            !r.contains("data-consentgate-purpose=\"statistics\""),
            "empty purposes are left out"
        );
    }

    #[test]
    fn facade_and_gpc() {
        let c = Catalog::builtin().unwrap();
        let l = Languages::new("en", &BTreeMap::new()).unwrap();
        let z = c.index_of("zendesk-chat").unwrap();
        let r = render(&view(&c, &Decision::undecided(), &l, &opts(), true), &[z]).html;
        assert!(r.contains("data-consentgate-placeholder=\"zendesk-chat\""));
        assert!(r.contains("data-consentgate-action=\"load\""));
        assert!(
            r.contains("sends data to Zendesk, Inc., United States."),
            "{r}"
        );
        assert!(r.contains("data-consentgate=\"gpc\""));
    }

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
