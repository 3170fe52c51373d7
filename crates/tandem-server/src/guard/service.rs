//! What the listener wraps around each connection: its I/O (bytes read,
//! and the stream kept so a 408 can be written after a head timeout) and
//! its service (the peer's address for handlers, the minimum body rate,
//! the failed-authentication limit, requests in progress).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::body::{MinRate, RateBody};
use super::conns::ConnState;
use super::{AuthFailed, Guard, NotAGuess, PeerAddr};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A stream shared between hyper and the listener, counting bytes read.
pub struct SharedIo<S> {
    inner: Arc<Mutex<S>>,
    state: Arc<ConnState>,
}

impl<S> SharedIo<S> {
    /// The I/O for hyper, and the handle the listener keeps.
    pub fn new(stream: S, state: Arc<ConnState>) -> (Self, Arc<Mutex<S>>) {
        let inner = Arc::new(Mutex::new(stream));
        (
            Self {
                inner: inner.clone(),
                state,
            },
            inner,
        )
    }

    fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        let mut g = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SharedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = self.with(|s| Pin::new(s).poll_read(cx, buf));
        let n = buf.filled().len().saturating_sub(before);
        self.state.read.fetch_add(n as u64, Ordering::Relaxed);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SharedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.with(|s| Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|s| Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|s| Pin::new(s).poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.with(|s| Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.with(|s| s.is_write_vectored())
    }
}

/// One request in progress on a connection; over when its answer has been
/// sent in full (or dropped).
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn new(state: Arc<ConnState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let s = &self.0;
        s.answered_at
            .store(s.read.load(Ordering::Relaxed), Ordering::Relaxed);
        s.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that ends its request's [`InFlight`] when done.
pub struct Tracked<B> {
    inner: Pin<Box<B>>,
    _in_flight: InFlight,
}

impl<B: Body> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.inner.as_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a request carries credentials of any scheme the listeners take
/// (Digest, Basic, Bearer, SigV4 header or presigned query).
fn carries_credentials<B>(req: &Request<B>) -> bool {
    req.headers().contains_key(header::AUTHORIZATION)
        || req.uri().query().is_some_and(|q| {
            q.split('&').any(|kv| {
                let k = kv.split('=').next().unwrap_or_default();
                k.eq_ignore_ascii_case("X-Amz-Signature") || k.eq_ignore_ascii_case("Signature")
            })
        })
}

/// The service hyper calls for each request of one connection.
#[derive(Clone)]
pub struct Guarded<S> {
    pub inner: S,
    pub guard: Arc<Guard>,
    pub peer: SocketAddr,
    pub conn: Arc<ConnState>,
    pub listener: &'static str,
}

pub type GuardedBody = RateBody<Incoming>;
pub type GuardedResponse<B> = Response<Tracked<Either<B, Full<Bytes>>>>;

impl<S, B> hyper::service::Service<Request<Incoming>> for Guarded<S>
where
    S: tower::Service<Request<GuardedBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = GuardedResponse<B>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::new(self.conn.clone());
        let guard = self.guard.clone();
        let (peer, listener) = (self.peer, self.listener);
        let ip = peer.ip();
        let creds = carries_credentials(&req);
        if creds && let Some(wait) = guard.auth_blocked(ip) {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            if let Some(left_out) = guard.refused(listener, "auth_rate_limited") {
                tracing::warn!(listener, peer = %ip, path = req.uri().path(), retry_after_secs = secs, left_out, "too many failed authentications from this address; refused with 429");
            }
            let mut r = Response::new(Either::Right(Full::from(format!(
                "too many failed authentications from {ip}; retry in {secs} s\n"
            ))));
            *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            let h = r.headers_mut();
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            if req.headers().contains_key(header::CONTENT_LENGTH)
                || req.headers().contains_key(header::TRANSFER_ENCODING)
            {
                h.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return Box::pin(async move {
                Ok(r.map(|b| Tracked {
                    inner: Box::pin(b),
                    _in_flight: in_flight,
                }))
            });
        }
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(PeerAddr(peer));
        let rate = MinRate {
            bytes_per_sec: guard.limits.body_min_rate,
            window: guard.limits.body_min_rate_window,
        };
        let path = parts.uri.path().to_owned();
        let slow_guard = guard.clone();
        let body = RateBody::new(
            body,
            rate,
            Box::new(move |e| {
                if let Some(left_out) = slow_guard.refused(listener, "body_too_slow") {
                    tracing::warn!(listener, peer = %ip, path, received = e.received, window_secs = e.window_secs, min_rate = e.min_rate, left_out, "request body too slow; ended");
                }
            }),
        );
        let req = Request::from_parts(parts, body);
        let mut svc = self.inner.clone();
        Box::pin(async move {
            futures_util::future::poll_fn(|cx| svc.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            let resp = svc.call(req).await.map_err(Into::into)?;
            let status = resp.status();
            let marked = resp.extensions().get::<AuthFailed>().is_some();
            let excused = resp.extensions().get::<NotAGuess>().is_some();
            let failed = marked
                || (creds
                    && !excused
                    && (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN));
            if failed {
                guard.auth_failed(ip);
                if let Some(left_out) = guard.refused(listener, "auth_failed") {
                    tracing::warn!(listener, peer = %ip, status = status.as_u16(), left_out, "authentication failed");
                }
            }
            Ok(resp.map(|b| Tracked {
                inner: Box::pin(Either::Left(b)),
                _in_flight: in_flight,
            }))
        })
    }
}
