//! `consentgate scan URL`: fetch a site's pages through the rewriter (nothing consented),
//! following same-site links breadth-first up to a bound, and report what the site talks to:
//! the catalog services found, the unknown third-party origins, a config snippet covering them,
//! and the privacy-policy sections of the services found.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{header, Request};
use http_body_util::{BodyExt, Limited};

use crate::codec::{self, Coding};
use crate::config::Config;
use crate::decision::Decision;
use crate::policy::Policy;
use crate::proxy::{empty_body, http_client};
use crate::rewrite::{Charset, PageRewriter};
use crate::urlctx::site_of;

/// Bodies larger than this are not scanned (a page, not a download).
const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;
/// Links taken from one page.
const MAX_LINKS_PER_PAGE: usize = 500;

/// What a scan found.
#[derive(Debug, Default)]
pub struct ScanReport {
    pub start: String,
    pub pages: Vec<String>,
    /// Service id → pages it was found on.
    pub services: BTreeMap<String, u32>,
    /// Unknown third-party origin → (references, pages).
    pub unknown: BTreeMap<String, (u64, u32)>,
    /// Pages that could not be fetched, with the reason.
    pub errors: Vec<(String, String)>,
}

/// Same-page facts the rewriter does not report: the links to follow, and the services already
/// neutralized by a consentgate in front of the site (`data-consentgate-service`).
fn links_and_markers(html: &[u8], page: &url::Url) -> (Vec<url::Url>, Vec<String>) {
    let found: Arc<Mutex<(Vec<String>, Vec<String>)>> = Arc::default();
    let (f, m) = (found.clone(), found.clone());
    let settings = lol_html::Settings::new()
        .append_element_content_handler(lol_html::element!("a[href]", move |el| {
            let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
            if f.0.len() < MAX_LINKS_PER_PAGE {
                if let Some(h) = el.get_attribute("href") {
                    f.0.push(h);
                }
            }
            Ok(())
        }))
        .append_element_content_handler(lol_html::element!(
            "[data-consentgate-service]",
            move |el| {
                if el.tag_name() != "input" && el.tag_name() != "button" {
                    let mut m = m.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(ids) = el.get_attribute("data-consentgate-service") {
                        m.1.extend(ids.split_whitespace().map(str::to_string));
                    }
                }
                Ok(())
            }
        ))
        .with_encoding(lol_html::AsciiCompatibleEncoding::utf_8())
        .with_strict(false);
    let mut rw = lol_html::HtmlRewriter::new(settings, |_: &[u8]| {});
    // Best effort: markup lol_html cannot parse just yields fewer links.
    if rw.write(html).is_ok() {
        let _ = rw.end();
    }
    let (hrefs, markers) = found.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let links = hrefs
        .iter()
        .filter_map(|h| page.join(&crate::urlctx::decode(h)).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(|mut u| {
            u.set_fragment(None);
            u
        })
        .collect();
    (links, markers)
}

/// Crawls up to `max_pages` pages of the site of `start`.
pub async fn scan(
    config: &Config,
    start: url::Url,
    max_pages: usize,
) -> Result<ScanReport, String> {
    let client = http_client(&config.upstream)?;
    let policy = Arc::new(Policy::new(config.catalog.clone(), config.rewrite)?);
    let blocked = policy.blocked(&Decision::undecided());
    let site = site_of(start.host_str().ok_or("the URL has no host")?);
    let mut report = ScanReport {
        start: start.to_string(),
        ..ScanReport::default()
    };
    let mut queue = VecDeque::from([start.clone()]);
    let mut queued: BTreeSet<String> = BTreeSet::from([start.to_string()]);
    while let Some(url) = queue.pop_front() {
        if report.pages.len() >= max_pages {
            break;
        }
        let host = url.host_str().unwrap_or("").to_string();
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let req = Request::get(url.as_str())
            .header(header::HOST, authority)
            .header(
                header::USER_AGENT,
                concat!("consentgate-scan/", env!("CARGO_PKG_VERSION")),
            )
            .header(header::ACCEPT, "text/html,application/xhtml+xml")
            .header(header::ACCEPT_ENCODING, "gzip, deflate, br, zstd")
            .body(empty_body())
            .map_err(|e| e.to_string())?;
        let resp = match tokio::time::timeout(Duration::from_secs(20), client.request(req)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                report.errors.push((url.to_string(), e.to_string()));
                continue;
            }
            Err(_) => {
                report.errors.push((url.to_string(), "timed out".into()));
                continue;
            }
        };
        let status = resp.status();
        if status.is_redirection() {
            if let Some(next) = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| url.join(l).ok())
            {
                if site_of(next.host_str().unwrap_or("")) == site && queued.insert(next.to_string())
                {
                    queue.push_back(next);
                }
            }
            continue;
        }
        let ctype = resp.headers().get(header::CONTENT_TYPE).cloned();
        if !status.is_success() || !crate::proxy::headers::is_html(ctype.as_ref()) {
            continue;
        }
        let coding = Coding::from_header(
            resp.headers()
                .get(header::CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok()),
        );
        let body = match Limited::new(resp.into_body(), MAX_PAGE_BYTES)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                report.errors.push((url.to_string(), format!("body: {e}")));
                continue;
            }
        };
        let Some(html) = coding.and_then(|c| codec::decode_all(c, &body).ok()) else {
            report
                .errors
                .push((url.to_string(), "undecodable content encoding".into()));
            continue;
        };
        report.pages.push(url.to_string());
        let mut rw = PageRewriter::new(
            policy.clone(),
            blocked.clone(),
            url.clone(),
            Charset::default(),
        );
        let mut sink = Vec::new();
        let stats = match rw
            .write(&html, &mut sink)
            .and_then(|_| rw.finish(&mut sink))
        {
            Ok(s) => s,
            Err(e) => {
                report
                    .errors
                    .push((url.to_string(), format!("rewrite: {e}")));
                continue;
            }
        };
        let mut on_page = stats.seen.clone();
        for (origin, (service, n)) in &stats.origins {
            match service {
                Some(i) => on_page.insert(*i),
                None => {
                    let e = report.unknown.entry(origin.clone()).or_default();
                    e.0 += u64::from(*n);
                    e.1 += 1;
                }
            }
        }
        let (links, markers) = links_and_markers(&html, &url);
        for id in markers {
            if let Some(i) = policy.catalog.index_of(&id) {
                on_page.insert(i);
            }
        }
        for i in on_page.iter() {
            if let Some(s) = policy.catalog.get(i) {
                *report.services.entry(s.id.clone()).or_default() += 1;
            }
        }
        for link in links {
            if site_of(link.host_str().unwrap_or("")) == site && queued.insert(link.to_string()) {
                queue.push_back(link);
            }
        }
    }
    Ok(report)
}

/// The report as text: findings, a config snippet, privacy-policy sections.
pub fn render(report: &ScanReport, config: &Config, lang: &str) -> String {
    let mut o = String::new();
    let catalog = &config.catalog;
    let _ = writeln!(
        o,
        "Scanned {} page(s) from {}",
        report.pages.len(),
        report.start
    );
    for (u, e) in &report.errors {
        let _ = writeln!(o, "  could not scan {u}: {e}");
    }
    let _ = writeln!(o, "\nServices found ({}):", report.services.len());
    for (id, pages) in &report.services {
        if let Some(s) = catalog.index_of(id).and_then(|i| catalog.get(i)) {
            let _ = writeln!(
                o,
                "  {id:<20} {} ({}), on {pages} page(s)",
                s.name, s.purpose
            );
        }
    }
    let _ = writeln!(
        o,
        "\nUnknown third-party origins ({}):",
        report.unknown.len()
    );
    let mut unknown: Vec<_> = report.unknown.iter().collect();
    unknown.sort_by_key(|(_, (refs, _))| std::cmp::Reverse(*refs));
    for (origin, (refs, pages)) in &unknown {
        let _ = writeln!(o, "  {origin:<40} {refs} reference(s) on {pages} page(s)");
    }
    let _ = writeln!(o, "\nConfig snippet (review every line):\n");
    let _ = writeln!(
        o,
        "[csp]\nmode = \"report-only\"  # switch to \"enforce\" once no unexpected reports arrive"
    );
    let sources: Vec<String> = unknown.iter().map(|(o, _)| format!("\"{o}\"")).collect();
    let _ = writeln!(
        o,
        "# Third parties that are NOT consent-dependent (CDNs, payment, fonts you host elsewhere):"
    );
    let _ = writeln!(o, "allow = [{}]", sources.join(", "));
    for (origin, _) in &unknown {
        let host = url::Url::parse(origin)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        let id: String = host
            .trim_start_matches("www.")
            .split('.')
            .next()
            .unwrap_or("service")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<String>()
            .to_ascii_lowercase();
        let _ = writeln!(
            o,
            "\n# If {host} tracks visitors or is a widget, describe it as a service instead:\n# [[services]]\n# id = \"{id}\"\n# name = \"...\"\n# purpose = \"marketing\"  # or functional / statistics\n# description = \"...\"\n# hosts = [\"{host}\"]\n# legal_basis = \"Consent (GDPR Art. 6(1)(a))\"\n# privacy_policy_url = \"https://...\"\n# processor = {{ name = \"...\", address = \"...\", country = \"..\" }}\n# transfer = {{ third_country = true, basis = \"...\" }}"
        );
    }
    let _ = writeln!(o, "\nPrivacy policy sections for the services found:\n");
    for id in report.services.keys() {
        if let Some(s) = catalog.index_of(id).and_then(|i| catalog.get(i)) {
            o.push_str(&crate::privacy::section_markdown(
                s,
                &config.languages,
                lang,
            ));
            o.push('\n');
        }
    }
    o
}
