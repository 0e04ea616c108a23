//! Privacy texts from the catalog: the privacy-statement section for each service the site uses
//! (GDPR Art. 13: what, why, on which basis, to whom, where, for how long, and the visitor's
//! rights), and the Art. 30 record of processing activities.

use std::fmt::Write;

use crate::banner::esc;
use crate::catalog::{Catalog, Service};
use crate::i18n::Languages;

/// Who is responsible for the site, from `[privacy]` in the config (free text: name, address,
/// contact).
#[derive(Debug, Clone, Default)]
pub struct PrivacyConfig {
    pub controller: Option<String>,
    pub dpo: Option<String>,
}

/// Output format of the statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Html,
}

/// The services a site uses: the configured list, else the whole catalog.
pub fn site_services<'a>(catalog: &'a Catalog, shown: Option<&[usize]>) -> Vec<&'a Service> {
    match shown {
        Some(ids) => ids.iter().filter_map(|&i| catalog.get(i)).collect(),
        None => catalog.services().iter().collect(),
    }
}

/// The section for one service.
pub fn section(s: &Service, texts: &Languages, lang: &str, years: u64, f: Format) -> String {
    let t = |k: &str| texts.get(lang, k).to_string();
    let (description, categories) = s.text(lang);
    let mut facts: Vec<(String, String)> = vec![(
        t("policy_purpose"),
        format!("{} — {description}", t(&format!("purpose_{}", s.purpose))),
    )];
    if !categories.is_empty() {
        facts.push((t("label_data"), categories.join(", ")));
    }
    facts.push((t("label_legal_basis"), t("legal_basis_consent")));
    facts.push((
        t("policy_recipient"),
        crate::banner::provider_line(s, texts, lang),
    ));
    if s.transfer.third_country {
        facts.push((t("label_transfer"), s.transfer.basis.clone()));
    } else {
        facts.push((t("label_transfer"), t("label_no_transfer")));
    }
    facts.push((
        t("policy_retention"),
        t("policy_retention_text").replace("{years}", &years.to_string()),
    ));
    facts.push((t("label_provider_privacy"), s.privacy_policy_url.clone()));
    let mut o = String::new();
    match f {
        Format::Markdown => {
            let _ = writeln!(o, "## {}\n", s.name);
            for (k, v) in facts {
                let _ = writeln!(o, "- **{k}:** {v}");
            }
            o.push('\n');
        }
        Format::Html => {
            let _ = write!(o, "<section><h2>{}</h2><dl>", esc(&s.name));
            for (k, v) in facts {
                if v.starts_with("https://") {
                    let _ = write!(
                        o,
                        "<dt>{}</dt><dd><a href=\"{v}\" rel=\"noopener noreferrer\">{v}</a></dd>",
                        esc(&k),
                        v = esc(&v)
                    );
                } else {
                    let _ = write!(o, "<dt>{}</dt><dd>{}</dd>", esc(&k), esc(&v));
                }
            }
            o.push_str("</dl></section>\n");
        }
    }
    o
}

/// The whole statement: controller, DPO, one section per service, withdrawal and rights.
pub fn statement(
    services: &[&Service],
    texts: &Languages,
    lang: &str,
    privacy: &PrivacyConfig,
    years: u64,
    f: Format,
) -> String {
    let t = |k: &str| texts.get(lang, k).to_string();
    let mut o = String::new();
    let people = [
        (t("policy_controller"), privacy.controller.clone()),
        (t("policy_dpo"), privacy.dpo.clone()),
    ];
    match f {
        Format::Markdown => {
            let _ = writeln!(o, "# {}\n\n{}\n", t("policy_title"), t("policy_intro"));
            for (k, v) in &people {
                if let Some(v) = v {
                    let _ = writeln!(o, "**{k}:** {v}\n");
                }
            }
        }
        Format::Html => {
            let _ = write!(
                o,
                "<!doctype html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title></head><body><main><h1>{}</h1><p>{}</p>",
                esc(lang),
                esc(&t("policy_title")),
                esc(&t("policy_title")),
                esc(&t("policy_intro"))
            );
            for (k, v) in &people {
                if let Some(v) = v {
                    let _ = write!(o, "<p><strong>{}:</strong> {}</p>", esc(k), esc(v));
                }
            }
            o.push('\n');
        }
    }
    for s in services {
        o.push_str(&section(s, texts, lang, years, f));
    }
    for (h, p) in [
        (t("policy_withdraw"), t("policy_withdraw_text")),
        (t("policy_rights"), t("policy_rights_text")),
    ] {
        match f {
            Format::Markdown => {
                let _ = writeln!(o, "## {h}\n\n{p}\n");
            }
            Format::Html => {
                let _ = writeln!(
                    o,
                    "<section><h2>{}</h2><p>{}</p></section>",
                    esc(&h),
                    esc(&p)
                );
            }
        }
    }
    if f == Format::Html {
        o.push_str("</main></body></html>\n");
    }
    o
}

/// The record of processing activities (Art. 30(1)) for the site's services, one row each.
pub fn records(services: &[&Service], years: u64) -> Vec<serde_json::Value> {
    services
        .iter()
        .map(|s| {
            serde_json::json!({
                "service": s.id,
                "name": s.name,
                "purpose": s.purpose.to_string(),
                "description": s.description,
                "legal_basis": s.legal_basis,
                "data_subjects": "website visitors",
                "data_categories": s.data_categories,
                "recipient": s.processor.name,
                "recipient_address": s.processor.address,
                "recipient_country": s.processor.country,
                "third_country_transfer": s.transfer.third_country,
                "transfer_safeguards": s.transfer.basis,
                "provider_privacy_policy": s.privacy_policy_url,
                "consent_records_retention_years": years,
            })
        })
        .collect()
}

/// The records as CSV (RFC 4180 quoting; lists joined with `; `).
pub fn records_csv(rows: &[serde_json::Value]) -> String {
    const COLS: &[&str] = &[
        "service",
        "name",
        "purpose",
        "description",
        "legal_basis",
        "data_subjects",
        "data_categories",
        "recipient",
        "recipient_address",
        "recipient_country",
        "third_country_transfer",
        "transfer_safeguards",
        "provider_privacy_policy",
        "consent_records_retention_years",
    ];
    let mut o = COLS.join(",");
    o.push('\n');
    for r in rows {
        let cells: Vec<String> = COLS
            .iter()
            .map(|c| {
                let v = match &r[*c] {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Array(a) => a
                        .iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                    other => other.to_string(),
                };
                if v.contains([',', '"', '\n']) {
                    format!("\"{}\"", v.replace('"', "\"\""))
                } else {
                    v
                }
            })
            .collect();
        o.push_str(&cells.join(","));
        o.push('\n');
    }
    o
}

/// Kept for `scan`: one service's section in Markdown with the default retention.
pub fn section_markdown(s: &Service, texts: &Languages, lang: &str) -> String {
    section(s, texts, lang, 3, Format::Markdown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_has_every_required_fact() {
        let c = Catalog::builtin().unwrap();
        let l = Languages::new("en", &Default::default()).unwrap();
        let meta = c.index_of("meta-pixel").unwrap();
        let services = site_services(&c, Some(&[meta]));
        let p = PrivacyConfig {
            controller: Some("Shop GmbH, Hauptstr. 1, 10115 Berlin, privacy@shop.example".into()),
            dpo: Some("Jane Doe, dpo@shop.example".into()),
        };
        let md = statement(&services, &l, "en", &p, 3, Format::Markdown);
        for needle in [
            "## Meta Pixel",
            "Meta Platforms Ireland Limited",
            "Art. 6(1)(a)",
            "C(2023) 4745",
            "3 years",
            "withdraw your consent at any time",
            "Art. 77",
            "Shop GmbH",
            "dpo@shop.example",
        ] {
            assert!(md.contains(needle), "{needle} missing:\n{md}");
        }
        let html = statement(&services, &l, "en", &p, 3, Format::Html);
        assert!(html.starts_with("<!doctype html>") && html.contains("<h2>Meta Pixel</h2>"));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn records_rows() {
        let c = Catalog::builtin().unwrap();
        let rows = records(&site_services(&c, None), 3);
        assert_eq!(rows.len(), c.len());
        let csv = records_csv(&rows);
        assert_eq!(csv.lines().count(), c.len() + 1);
        assert!(csv.starts_with("service,name,purpose,"));
    }
}
