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

/// The banner (open for an undecided visitor, closed but reachable after a decision), the
/// settings control, and the runtime's assets.
#[allow(clippy::too_many_arguments)]
pub fn render(
    catalog: &Catalog,
    decision: &Decision,
    texts: &Languages,
    lang: &str,
    opts: &BannerOptions,
    gpc: bool,
    facades: &[usize],
) -> Rendered {
    let t = |k: &str| esc(texts.get(lang, k));
    let mut h = String::with_capacity(16 * 1024);
    let prefix = esc(&opts.prefix);
    let _ = write!(
        h,
        "<link rel=\"stylesheet\" href=\"{prefix}/assets/consentgate.css{v}\">",
        v = esc(&opts.asset_version)
    );
    let open = !decision.decided;
    let corner = match opts.settings_corner {
        Corner::BottomLeft => "cg-left",
        Corner::BottomRight => "cg-right",
    };
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
            service_facts(&mut h, s, texts, lang);
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
    if decision.decided {
        // A link to the banner: works without JavaScript (CSS :target opens it).
        let _ = write!(
            h,
            "<a href=\"#consentgate-banner\" class=\"cg-settings {corner}\" role=\"button\" data-consentgate-action=\"settings\" aria-controls=\"consentgate-banner\">{}</a>",
            t("settings_button")
        );
    }
    for &i in facades {
        if let Some(s) = catalog.get(i) {
            render_facade(&mut h, s, texts, lang, &prefix);
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
        let r = render(&c, &Decision::undecided(), &l, "en", &opts(), false, &[]).html;
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
        let r = render(&c, &d, &l, "en", &opts(), false, &[]).html;
        assert!(r.contains("data-consentgate-action=\"settings\""));
        assert_eq!(r.matches(" checked").count(), 1);
        assert!(r.contains("value=\"youtube\" data-consentgate-service=\"youtube\" checked"));
    }

    #[test]
    fn only_the_sites_services_are_listed() {
        let c = Catalog::builtin().unwrap();
        let l = Languages::new("en", &BTreeMap::new()).unwrap();
        let mut o = opts();
        let mut set = crate::matcher::ServiceSet::new();
        set.insert(c.index_of("youtube").unwrap());
        o.shown = Some(set);
        let r = render(&c, &Decision::undecided(), &l, "en", &o, false, &[]).html;
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
        let r = render(&c, &Decision::undecided(), &l, "en", &opts(), true, &[z]).html;
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
