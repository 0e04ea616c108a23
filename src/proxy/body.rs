//! The response body the proxy sends: the origin's stream, passed through or rewritten chunk by
//! chunk, with an idle timeout between origin chunks. Any failure ends the stream with an error,
//! so hyper aborts the response (a truncated chunked body, a reset stream) rather than letting
//! it look complete.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::pipeline::BodyRewriter;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Called once the body has ended: with what the rewrite did, or why it was cut (a reason such
/// as `decompression_ratio`), for discovery and metrics.
pub type OnDone = Box<dyn FnOnce(Result<&crate::rewrite::RewriteStats, &'static str>) + Send>;

enum Kind {
    /// Fixed bytes produced by the proxy itself.
    Full(Option<Bytes>),
    /// The origin's body, untouched.
    Pass(Incoming),
    /// Produced elsewhere (a streamed export); an `Err` chunk aborts the response.
    Channel(tokio::sync::mpsc::Receiver<Result<Bytes, String>>),
    /// The origin's HTML, rewritten.
    Rewrite {
        inner: Incoming,
        rewriter: Box<BodyRewriter>,
        page: String,
        done: Option<OnDone>,
    },
    Done,
}

pub struct ProxyBody {
    kind: Kind,
    idle: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    /// Counts an origin body that fails or stalls (`upstream_errors{site, kind}`).
    origin_errors: Option<OriginErrors>,
}

/// Where a failing origin body is counted: the metric and the site label.
pub struct OriginErrors(pub std::sync::Arc<crate::metrics::CounterVec>, pub String);

impl OriginErrors {
    fn count(&self, kind: &str) {
        self.0.inc(&[&self.1, kind]);
    }
}

impl ProxyBody {
    pub fn full(b: impl Into<Bytes>) -> Self {
        ProxyBody {
            kind: Kind::Full(Some(b.into())),
            idle: Duration::MAX,
            deadline: None,
            origin_errors: None,
        }
    }

    pub fn empty() -> Self {
        ProxyBody {
            kind: Kind::Full(None),
            idle: Duration::MAX,
            deadline: None,
            origin_errors: None,
        }
    }

    pub fn channel(rx: tokio::sync::mpsc::Receiver<Result<Bytes, String>>) -> Self {
        ProxyBody {
            kind: Kind::Channel(rx),
            idle: Duration::MAX,
            deadline: None,
            origin_errors: None,
        }
    }

    pub fn pass(inner: Incoming, idle: Duration) -> Self {
        ProxyBody {
            kind: Kind::Pass(inner),
            idle,
            deadline: None,
            origin_errors: None,
        }
    }

    pub fn rewrite(
        inner: Incoming,
        rewriter: BodyRewriter,
        idle: Duration,
        page: String,
        done: OnDone,
    ) -> Self {
        ProxyBody {
            kind: Kind::Rewrite {
                inner,
                rewriter: Box::new(rewriter),
                page,
                done: Some(done),
            },
            idle,
            deadline: None,
            origin_errors: None,
        }
    }

    /// Counts origin body failures (kind `body`) and stalls (kind `timeout`).
    pub fn counting(mut self, errors: OriginErrors) -> Self {
        self.origin_errors = Some(errors);
        self
    }

    fn arm(&mut self) {
        if self.idle == Duration::MAX {
            return;
        }
        let at = Instant::now() + self.idle;
        match &mut self.deadline {
            Some(d) => d.as_mut().reset(at),
            None => self.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        if self.deadline.is_none() {
            self.arm();
        }
        match &mut self.deadline {
            Some(d) => d.as_mut().poll(cx).is_ready(),
            None => false,
        }
    }
}

use std::future::Future;

fn fail(page: &str, e: impl std::fmt::Display) -> BoxError {
    tracing::error!(page, error = %e, "rewriting failed: response aborted (fail closed)");
    format!("rewriting {page}: {e}").into()
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let polled = match &mut this.kind {
                Kind::Done => return Poll::Ready(None),
                Kind::Full(b) => return Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
                Kind::Channel(rx) => {
                    return match rx.poll_recv(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(None) => Poll::Ready(None),
                        Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
                        Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
                    }
                }
                Kind::Pass(inner) => Pin::new(inner).poll_frame(cx),
                Kind::Rewrite { inner, .. } => Pin::new(inner).poll_frame(cx),
            };
            match polled {
                Poll::Pending => {
                    if this.timed_out(cx) {
                        this.kind = Kind::Done;
                        if let Some(c) = &this.origin_errors {
                            c.count("timeout");
                        }
                        tracing::warn!("origin body idle timeout: response aborted");
                        return Poll::Ready(Some(Err("origin body idle timeout".into())));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Err(e))) => {
                    this.kind = Kind::Done;
                    if let Some(c) = &this.origin_errors {
                        c.count("body");
                    }
                    tracing::warn!(error = %e, "origin body failed: response aborted");
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    this.arm();
                    let Kind::Rewrite { rewriter, page, .. } = &mut this.kind else {
                        return Poll::Ready(Some(Ok(frame)));
                    };
                    // Trailers of a rewritten body are dropped with its framing.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    // A fully consented identity page: its chunks go out as they came.
                    if rewriter.passes_through_chunk(&data) {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    match rewriter.write(&data) {
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out))))),
                        Err(e) => {
                            let reason = e.reason();
                            let err = fail(page, e);
                            let kind = std::mem::replace(&mut this.kind, Kind::Done);
                            if let Kind::Rewrite {
                                done: Some(done), ..
                            } = kind
                            {
                                done(Err(reason));
                            }
                            return Poll::Ready(Some(Err(err)));
                        }
                    }
                }
                Poll::Ready(None) => {
                    let kind = std::mem::replace(&mut this.kind, Kind::Done);
                    let Kind::Rewrite {
                        mut rewriter,
                        page,
                        done,
                        ..
                    } = kind
                    else {
                        return Poll::Ready(None);
                    };
                    return match rewriter.finish() {
                        Ok(out) => {
                            let stats = rewriter.stats();
                            if let Some(done) = done {
                                done(Ok(&stats));
                            }
                            tracing::debug!(
                                page,
                                neutralized = stats.neutralized,
                                "page rewritten"
                            );
                            if out.is_empty() {
                                Poll::Ready(None)
                            } else {
                                Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
                            }
                        }
                        Err(e) => {
                            if let Some(done) = done {
                                done(Err(e.reason()));
                            }
                            Poll::Ready(Some(Err(fail(&page, e))))
                        }
                    };
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Done => true,
            Kind::Full(b) => b.is_none(),
            Kind::Channel(_) => false,
            Kind::Pass(inner) => inner.is_end_stream(),
            Kind::Rewrite { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) | Kind::Done => SizeHint::with_exact(0),
            Kind::Pass(inner) => inner.size_hint(),
            Kind::Rewrite { .. } | Kind::Channel(_) => SizeHint::default(),
        }
    }
}
