//! The privacy-statement section for a service, from the catalog: what is processed, why, on
//! which legal basis, by whom, and where it goes.

use std::fmt::Write;

use crate::catalog::Service;
use crate::i18n::Languages;

/// A Markdown section for one service, in `lang` (falling back to English).
pub fn section_markdown(s: &Service, texts: &Languages, lang: &str) -> String {
    let (description, categories) = s.text(lang);
    let mut o = String::new();
    let _ = writeln!(o, "## {}\n", s.name);
    let _ = writeln!(o, "{description}\n");
    let purpose_key = format!("purpose_{}", s.purpose);
    let _ = writeln!(o, "*{}*\n", texts.get(lang, &purpose_key));
    if !categories.is_empty() {
        let _ = writeln!(
            o,
            "- {}: {}",
            texts.get(lang, "label_data"),
            categories.join(", ")
        );
    }
    let _ = writeln!(
        o,
        "- {}: {}, {}, {}",
        texts.get(lang, "label_processor"),
        s.processor.name,
        s.processor.address,
        texts.country(lang, &s.processor.country)
    );
    let _ = writeln!(
        o,
        "- {}: {}",
        texts.get(lang, "label_legal_basis"),
        texts.get(lang, "legal_basis_consent")
    );
    if s.transfer.third_country {
        let _ = writeln!(
            o,
            "- {}: {}",
            texts.get(lang, "label_transfer"),
            s.transfer.basis
        );
    } else {
        let _ = writeln!(o, "- {}", texts.get(lang, "label_no_transfer"));
    }
    let _ = writeln!(
        o,
        "- {}: {}",
        texts.get(lang, "label_provider_privacy"),
        s.privacy_policy_url
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn sections_name_the_facts() {
        let c = Catalog::builtin().unwrap();
        let l = Languages::new("en", &Default::default()).unwrap();
        let s = c.get(c.index_of("meta-pixel").unwrap()).unwrap();
        let md = section_markdown(s, &l, "en");
        assert!(md.starts_with("## Meta Pixel\n"), "{md}");
        assert!(md.contains("Meta Platforms Ireland Limited"));
        assert!(md.contains("Art. 6(1)(a)"));
        let de = section_markdown(s, &l, "de");
        assert!(de.contains("Irland"), "{de}");
    }
}
