//! The banner's stylesheet and runtime, embedded in the binary and served same-origin under
//! `<prefix>/assets/`, cacheable for a year (their URLs carry a content hash).

use std::sync::OnceLock;

use http::{header, HeaderValue, Method, Response, StatusCode};
use sha2::{Digest, Sha256};

use super::body::ProxyBody;

const JS: &str = include_str!("../../assets/consentgate.js");
const CSS: &str = include_str!("../../assets/consentgate.css");

/// A short hash of both assets: part of their URLs, so a new release is fetched at once.
pub fn version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        let mut h = Sha256::new();
        h.update(JS);
        h.update(CSS);
        crate::hex(&h.finalize()[..6])
    })
}

/// `name` is the path below `assets/`.
pub fn serve(method: &Method, name: &str) -> Option<Response<ProxyBody>> {
    let (body, ctype) = match name {
        "consentgate.js" => (JS, "text/javascript; charset=utf-8"),
        "consentgate.css" => (CSS, "text/css; charset=utf-8"),
        _ => return None,
    };
    let mut r = if method == Method::HEAD {
        Response::new(ProxyBody::empty())
    } else {
        Response::new(ProxyBody::full(body))
    };
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", version())) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    Some(r)
}
