//! [`RewriteBody`]: the response body the proxy serves: the back-end's body untouched, a cached
//! page, or the back-end's body streamed through the rewrite pipeline.
//!
//! It owns the streaming loop only: it never buffers the page (beyond the optional cache copy,
//! bounded by the cache's entry limit), and after an error it ends rather than poll again.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::cache::{CacheKey, CachedPage};
use crate::error::{BoxError, RewriteError};
use crate::pipeline::Pipeline;
use crate::rewriter::Shared;

pin_project! {
    /// Body of a response that went through the [`Rewriter`](crate::Rewriter).
    ///
    /// `Send + 'static` when `B` is, and an [`http_body::Body`] with `Data = Bytes` that hyper
    /// serves directly.
    pub struct RewriteBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Pass { #[pin] inner: B },
        Full { data: Option<Bytes> },
        Rewrite {
            #[pin]
            inner: B,
            job: Option<Box<Job>>,
            trailers: Option<HeaderMap>,
        },
    }
}

/// State of a body being rewritten.
pub(crate) struct Job {
    pub(crate) pipe: Pipeline,
    pub(crate) capture: Option<Capture>,
    pub(crate) shared: Arc<Shared>,
}

/// Copy of the rewritten output kept for the page cache, dropped when it grows too big.
pub(crate) struct Capture {
    pub(crate) key: CacheKey,
    /// The page as it will be stored, with an empty body until the end.
    pub(crate) page: CachedPage,
    pub(crate) buf: BytesMut,
    pub(crate) limit: usize,
    /// Rules generation when the page started: a page rewritten under old rules is not stored.
    pub(crate) generation: u64,
}

impl<B> RewriteBody<B> {
    pub(crate) fn pass(inner: B) -> Self {
        Self {
            kind: Kind::Pass { inner },
        }
    }

    pub(crate) fn full(data: Bytes) -> Self {
        Self {
            kind: Kind::Full { data: Some(data) },
        }
    }

    pub(crate) fn rewrite(inner: B, job: Job) -> Self {
        Self {
            kind: Kind::Rewrite {
                inner,
                job: Some(Box::new(job)),
                trailers: None,
            },
        }
    }

    /// Whether this body is being rewritten (rather than passed through or served from cache).
    pub fn is_rewriting(&self) -> bool {
        matches!(self.kind, Kind::Rewrite { .. })
    }
}

impl Job {
    fn push(&mut self, chunk: &[u8]) -> Result<Bytes, RewriteError> {
        let out = self.pipe_push(chunk)?;
        self.keep(&out);
        Ok(out)
    }

    fn pipe_push(&mut self, chunk: &[u8]) -> Result<Bytes, RewriteError> {
        let result = self.pipe.push(chunk);
        if let Err(e) = &result {
            self.shared.count_error(e);
        }
        result
    }

    fn keep(&mut self, out: &[u8]) {
        if let Some(capture) = &mut self.capture {
            if capture.buf.len() + out.len() > capture.limit {
                self.capture = None;
            } else {
                capture.buf.extend_from_slice(out);
            }
        }
    }

    fn finish(self: Box<Self>) -> Result<Bytes, RewriteError> {
        let Job {
            pipe,
            capture,
            shared,
        } = *self;
        // A page only partly rewritten (past the size limit) is not kept.
        let capture = capture.filter(|_| !pipe.over_limit());
        let out = match pipe.finish() {
            Ok(out) => out,
            Err(e) => {
                shared.count_error(&e);
                return Err(e);
            }
        };
        if let Some(mut capture) = capture {
            if capture.buf.len() + out.len() <= capture.limit {
                capture.buf.extend_from_slice(&out);
                shared.store_page(capture);
            }
        }
        Ok(out)
    }
}

impl<B> Body for RewriteBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = RewriteError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RewriteError>>> {
        match self.project().kind.project() {
            KindProj::Pass { inner } => inner
                .poll_frame(cx)
                .map_err(|e| RewriteError::Upstream { source: e.into() }),
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Rewrite {
                mut inner,
                job,
                trailers,
            } => loop {
                let Some(active) = job.as_mut() else {
                    return Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))));
                };
                match ready!(inner.as_mut().poll_frame(cx)) {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => match active.push(&data) {
                            Ok(out) if out.is_empty() => continue,
                            Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                            Err(e) => {
                                *job = None;
                                return Poll::Ready(Some(Err(e)));
                            }
                        },
                        Err(frame) => {
                            if let Ok(t) = frame.into_trailers() {
                                *trailers = Some(t);
                            }
                        }
                    },
                    Some(Err(e)) => {
                        let error = RewriteError::Upstream { source: e.into() };
                        if let Some(failed) = job.take() {
                            failed.shared.count_error(&error);
                        }
                        *trailers = None;
                        return Poll::Ready(Some(Err(error)));
                    }
                    None => {
                        let Some(done) = job.take() else { continue };
                        match done.finish() {
                            Ok(out) if out.is_empty() => continue,
                            Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                            Err(e) => {
                                *trailers = None;
                                return Poll::Ready(Some(Err(e)));
                            }
                        }
                    }
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Pass { inner } => inner.is_end_stream(),
            Kind::Full { data } => data.is_none(),
            Kind::Rewrite { job, trailers, .. } => job.is_none() && trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Pass { inner } => inner.size_hint(),
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Rewrite { .. } => SizeHint::default(),
        }
    }
}

impl<B> std::fmt::Debug for RewriteBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Pass { .. } => "pass",
            Kind::Full { .. } => "cached",
            Kind::Rewrite { .. } => "rewrite",
        };
        f.debug_struct("RewriteBody").field("kind", &kind).finish()
    }
}
