//! What the site actually talks to: third-party origins referenced by the pages that streamed
//! through, with the service each matched or `unknown`, counted in bounded memory.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::catalog::Catalog;
use crate::urlctx::Origins;

/// Origins kept (for all sites of the process together); when full, the least referenced one
/// makes room.
const MAX_ORIGINS: usize = 512;

#[derive(Default)]
struct Entry {
    /// The service's id, taken from the catalog of the site that saw the origin (sites share
    /// this record, and their catalogs may differ).
    service: Option<String>,
    references: u64,
    pages: u64,
}

/// Third-party origins the pages referenced.
#[derive(Default)]
pub struct Discovery {
    inner: Mutex<HashMap<String, Entry>>,
}

impl Discovery {
    /// Adds one page's origins; service indices are the page's `catalog`'s.
    pub fn record(&self, page: &Origins, catalog: &Catalog) {
        if page.is_empty() {
            return;
        }
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (origin, (service, n)) in page {
            if !m.contains_key(origin) && m.len() >= MAX_ORIGINS {
                let Some(victim) = m
                    .iter()
                    .min_by_key(|(_, e)| e.references)
                    .map(|(k, _)| k.clone())
                else {
                    continue;
                };
                m.remove(&victim);
            }
            let e = m.entry(origin.clone()).or_default();
            if e.service.is_none() {
                e.service = service.and_then(|i| catalog.get(i)).map(|s| s.id.clone());
            }
            e.references += u64::from(*n);
            e.pages += 1;
        }
    }

    /// The top `limit` origins by references: `[{"origin", "service", "references", "pages"}]`.
    pub fn snapshot(&self, limit: usize) -> serde_json::Value {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut rows: Vec<_> = m.iter().collect();
        rows.sort_by(|a, b| b.1.references.cmp(&a.1.references).then(a.0.cmp(b.0)));
        serde_json::Value::Array(
            rows.into_iter()
                .take(limit)
                .map(|(origin, e)| {
                    let service = e.service.as_deref().unwrap_or("unknown");
                    serde_json::json!({"origin": origin, "service": service, "references": e.references, "pages": e.pages})
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_bounds() {
        let c = Catalog::builtin().unwrap();
        let d = Discovery::default();
        let z = c.index_of("zendesk-chat");
        let mut page = Origins::new();
        page.insert("https://static.zdassets.com".into(), (z, 2));
        page.insert("https://cdn.other.test".into(), (None, 1));
        d.record(&page, &c);
        d.record(&page, &c);
        let s = d.snapshot(10);
        assert_eq!(s[0]["origin"], "https://static.zdassets.com");
        assert_eq!(s[0]["service"], "zendesk-chat");
        assert_eq!(s[0]["references"], 4);
        assert_eq!(s[0]["pages"], 2);
        assert_eq!(s[1]["service"], "unknown");
        for i in 0..2000 {
            let mut p = Origins::new();
            p.insert(format!("https://h{i}.test"), (None, 1));
            d.record(&p, &c);
        }
        let s = d.snapshot(10_000);
        assert_eq!(s.as_array().unwrap().len(), MAX_ORIGINS);
        assert_eq!(
            s[0]["origin"], "https://static.zdassets.com",
            "frequent origins survive"
        );
    }
}
