//! The admin listener: a separate address, bearer-token protected, never the public port.
//! `GET /healthz` (alive), `GET /readyz` (ready for consent decisions), `GET /csp-reports`,
//! `GET /discovery`, receipts and stats.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use super::body::ProxyBody;
use super::Proxy;

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn reply(status: StatusCode, ctype: &'static str, body: String) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn no_such_receipt() -> Response<ProxyBody> {
    reply(
        StatusCode::NOT_FOUND,
        "text/plain",
        "no such receipt\n".into(),
    )
}

fn store_unavailable() -> Response<ProxyBody> {
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "text/plain",
        "receipt store unavailable\n".into(),
    )
}

fn receipts_off() -> Response<ProxyBody> {
    reply(
        StatusCode::NOT_FOUND,
        "text/plain",
        "receipts are off in this configuration\n".into(),
    )
}

fn query_param<'a>(q: &'a str, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

impl Proxy {
    /// The admin API, answered by one site's proxy (the state it reads is shared by all of
    /// them); `sites` names every site's catalog.
    async fn admin(
        &self,
        req: &Request<Incoming>,
        token: &str,
        sites: &super::Sites,
    ) -> Response<ProxyBody> {
        if !authorized(req, token) {
            let mut r = reply(
                StatusCode::UNAUTHORIZED,
                "text/plain",
                "unauthorized\n".into(),
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
        let json = |v: serde_json::Value| reply(StatusCode::OK, "application/json", v.to_string());
        let path = req.uri().path();
        let query = req.uri().query().unwrap_or("");
        let method = req.method().clone();
        if let Some(id) = path.strip_prefix("/receipts/") {
            return self.admin_receipt(&method, id).await;
        }
        if method != http::Method::GET {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "GET only\n".into(),
            );
        }
        match path {
            "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
            // Ready to take consent decisions: the receipt store answers (or receipts are off).
            "/readyz" => match &self.receipts {
                Some(log) if !log.healthy() => reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "receipt store unavailable\n".into(),
                ),
                _ => reply(StatusCode::OK, "text/plain", "ready\n".into()),
            },
            "/csp-reports" => json(self.reports.snapshot()),
            "/metrics" => reply(
                StatusCode::OK,
                crate::metrics::CONTENT_TYPE,
                self.metrics.render(),
            ),
            "/discovery" => json(self.discovery.snapshot(500)),
            "/receipts" => self.admin_export(query),
            "/stats" => self.admin_stats(query, sites).await,
            _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
        }
    }

    fn store(&self) -> Option<crate::receipts::Opener> {
        self.receipt_store.clone()
    }

    /// `GET /receipts/<id>` (access, portability), `DELETE /receipts/<id>` (erasure).
    async fn admin_receipt(&self, method: &http::Method, id: &str) -> Response<ProxyBody> {
        let Some(open) = self.store() else {
            return receipts_off();
        };
        let id = id.to_string();
        match *method {
            http::Method::GET => {
                let r = tokio::task::spawn_blocking(move || open()?.get(&id)).await;
                match r {
                    Ok(Ok(Some(r))) => reply(
                        StatusCode::OK,
                        "application/json",
                        crate::receipts::query::to_json(&r).to_string(),
                    ),
                    Ok(Ok(None)) => no_such_receipt(),
                    _ => store_unavailable(),
                }
            }
            http::Method::DELETE => {
                let idc = id.clone();
                let r = tokio::task::spawn_blocking(move || open()?.erase(&idc)).await;
                match r {
                    Ok(Ok(true)) => {
                        tracing::info!(receipt = %id, "receipt erased on request (tombstone kept)");
                        let mut r = Response::new(ProxyBody::empty());
                        *r.status_mut() = StatusCode::NO_CONTENT;
                        r
                    }
                    Ok(Ok(false)) => no_such_receipt(),
                    _ => store_unavailable(),
                }
            }
            _ => reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "GET or DELETE\n".into(),
            ),
        }
    }

    /// `GET /receipts?site=&from=&to=&format=csv|json`: evidence for an authority, streamed in
    /// chain order so any size can be exported in constant memory.
    fn admin_export(&self, query: &str) -> Response<ProxyBody> {
        use crate::receipts::query::{csv_row, parse_time, to_json, CSV_HEADER};
        let Some(open) = self.store() else {
            return receipts_off();
        };
        let site = query_param(query, "site").map(|s| s.into_owned());
        let mut times = [None, None];
        for (i, name) in ["from", "to"].iter().enumerate() {
            if let Some(v) = query_param(query, name) {
                match parse_time(&v) {
                    Some(t) => times[i] = Some(t),
                    None => {
                        return reply(
                            StatusCode::BAD_REQUEST,
                            "text/plain",
                            format!(
                                "{name}: use YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or milliseconds\n"
                            ),
                        )
                    }
                }
            }
        }
        let csv = match query_param(query, "format").as_deref() {
            None | Some("json") => false,
            Some("csv") => true,
            Some(_) => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    "format: csv or json\n".into(),
                )
            }
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, String>>(8);
        tokio::task::spawn_blocking(move || {
            let mut buf = String::from(if csv { CSV_HEADER } else { "[" });
            let mut first = true;
            let result = open().and_then(|mut s| {
                s.list(site.as_deref(), times[0], times[1], &mut |r| {
                    if csv {
                        buf.push_str(&csv_row(&r));
                    } else {
                        if !first {
                            buf.push(',');
                        }
                        buf.push_str(&to_json(&r).to_string());
                        buf.push('\n');
                    }
                    first = false;
                    if buf.len() > 64 * 1024 {
                        let chunk = std::mem::take(&mut buf);
                        return tx.blocking_send(Ok(chunk.into())).is_ok();
                    }
                    true
                })
            });
            match result {
                Ok(()) => {
                    if !csv {
                        buf.push(']');
                    }
                    let _ = tx.blocking_send(Ok(buf.into()));
                }
                // The client sees a broken response, never a complete-looking partial export.
                Err(e) => {
                    tracing::error!(error = %e, "receipt export failed");
                    let _ = tx.blocking_send(Err(e.to_string()));
                }
            }
        });
        let mut r = Response::new(ProxyBody::channel(rx));
        let (ctype, name) = if csv {
            (
                "text/csv; charset=utf-8",
                "attachment; filename=\"consent-receipts.csv\"",
            )
        } else {
            (
                "application/json",
                "attachment; filename=\"consent-receipts.json\"",
            )
        };
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        r.headers_mut()
            .insert(header::CONTENT_DISPOSITION, HeaderValue::from_static(name));
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }

    /// `GET /stats?site=&from=&to=`: decisions per day, service and purpose, with consent rates.
    /// Purposes come from the catalog of the site serving `site` (a host name, as receipts
    /// record it), else from every site's catalog.
    async fn admin_stats(&self, query: &str, sites: &super::Sites) -> Response<ProxyBody> {
        use crate::receipts::query::parse_time;
        let Some(open) = self.store() else {
            return receipts_off();
        };
        let site = query_param(query, "site").map(|s| s.into_owned());
        let from = query_param(query, "from").and_then(|v| parse_time(&v));
        let to = query_param(query, "to").and_then(|v| parse_time(&v));
        let mut purposes = std::collections::BTreeMap::new();
        let routed = site.as_deref().and_then(|h| sites.route(h));
        let catalogs: Vec<&crate::catalog::Catalog> = match routed {
            Some(p) => vec![&p.policy.catalog],
            None => sites.iter().map(|(_, p)| &p.policy.catalog).collect(),
        };
        for c in catalogs {
            for s in c.services() {
                purposes
                    .entry(s.id.clone())
                    .or_insert_with(|| s.purpose.to_string());
            }
        }
        let r = tokio::task::spawn_blocking(move || {
            let mut s = open()?;
            crate::receipts::query::stats(&mut *s, &purposes, site.as_deref(), from, to)
        })
        .await;
        match r {
            Ok(Ok(v)) => reply(StatusCode::OK, "application/json", v.to_string()),
            _ => store_unavailable(),
        }
    }

    /// Serves the admin endpoints on `listener` until `shutdown` resolves.
    pub async fn serve_admin(
        self: Arc<Self>,
        listener: TcpListener,
        token: String,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let me = self.clone();
        let sites = Arc::new(super::Sites::single(me));
        serve_admin_current(
            Arc::new(move || sites.clone()),
            None,
            listener,
            token,
            shutdown,
        )
        .await
    }
}

/// Reloads the configuration; `Ok` describes what is now in force, `Err` lists the problems
/// (the old configuration stays).
pub type Reload = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// The admin accept loop for the current proxy; `POST /reload` when a reload hook is given.
pub async fn serve_admin_current(
    current: super::Current,
    reload: Option<Reload>,
    listener: TcpListener,
    token: String,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let token = Arc::new(token);
    tokio::pin!(shutdown);
    loop {
        let Some((stream, _)) = super::accept_until(&listener, &mut shutdown, "admin").await else {
            return Ok(());
        };
        let (current, token, reload) = (current.clone(), token.clone(), reload.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (sites, token, reload) = (current(), token.clone(), reload.clone());
                async move {
                    let is_reload = req.uri().path() == "/reload";
                    let authorized = authorized(&req, &token);
                    let r = match (is_reload, reload) {
                        (true, Some(reload)) if authorized => {
                            if req.method() != http::Method::POST {
                                reply(
                                    StatusCode::METHOD_NOT_ALLOWED,
                                    "text/plain",
                                    "POST only\n".into(),
                                )
                            } else {
                                match tokio::task::spawn_blocking(move || reload()).await {
                                    Ok(Ok(msg)) => {
                                        reply(StatusCode::OK, "text/plain", format!("{msg}\n"))
                                    }
                                    Ok(Err(errors)) => reply(
                                        StatusCode::UNPROCESSABLE_ENTITY,
                                        "text/plain",
                                        format!(
                                            "configuration refused, the old one stays:\n{errors}\n"
                                        ),
                                    ),
                                    Err(_) => reply(
                                        StatusCode::INTERNAL_SERVER_ERROR,
                                        "text/plain",
                                        "reload failed\n".into(),
                                    ),
                                }
                            }
                        }
                        _ => sites.primary().admin(&req, &token, &sites).await,
                    };
                    Ok::<_, Infallible>(r)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn authorized(req: &Request<Incoming>, token: &str) -> bool {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    same(given.trim().as_bytes(), token.as_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn constant_time_compare() {
        assert!(super::same(b"abc", b"abc"));
        assert!(!super::same(b"abc", b"abd"));
        assert!(!super::same(b"abc", b"ab"));
    }
}
