//! A minimum rate for request bodies.
//!
//! Without it a client that sends one byte a second holds its connection
//! (and a staged upload) for as long as its `Content-Length` lasts, since
//! every byte resets the idle timeout. Here the time spent waiting for the
//! client is measured in windows; a window in which fewer than
//! `rate × window` bytes arrived ends the body with [`TooSlow`]. Time the
//! server itself takes between two reads (a slow disk) does not count
//! against the client.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// A body too slow to keep: fewer than `min_rate` bytes a second over the
/// window.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "request body too slow: {received} bytes in {window_secs:.1} s, under the minimum of {min_rate} bytes a second; the upload was discarded"
)]
pub struct TooSlow {
    pub received: u64,
    pub window_secs: f64,
    pub min_rate: u64,
}

/// Why a guarded body ended early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    TooSlow(TooSlow),
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
}

/// The rate below which a body is ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    /// Bytes a second; 0: no minimum.
    pub bytes_per_sec: u64,
    pub window: Duration,
}

/// Told when a body is ended for being slow.
pub type OnSlow = Box<dyn FnOnce(&TooSlow) + Send + Sync>;

/// A request body with a minimum rate.
pub struct RateBody<B> {
    inner: B,
    rate: MinRate,
    /// Time waited for the client in this window.
    waited: Duration,
    /// Bytes received in this window.
    received: u64,
    /// When the current wait started.
    pending_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    /// Told when the body is ended for being slow (logs and metrics).
    on_slow: Option<OnSlow>,
}

impl<B> RateBody<B> {
    pub fn new(inner: B, rate: MinRate, on_slow: Box<dyn FnOnce(&TooSlow) + Send + Sync>) -> Self {
        Self {
            inner,
            rate,
            waited: Duration::ZERO,
            received: 0,
            pending_since: None,
            timer: None,
            on_slow: Some(on_slow),
        }
    }

    fn enabled(&self) -> bool {
        self.rate.bytes_per_sec > 0 && !self.rate.window.is_zero()
    }

    /// Closes the current wait; returns the error if the window is over
    /// and too few bytes came in it.
    fn account(&mut self, now: Instant) -> Result<(), TooSlow> {
        if let Some(since) = self.pending_since.take() {
            self.waited += now.saturating_duration_since(since);
        }
        if self.waited < self.rate.window {
            return Ok(());
        }
        let need = (self.rate.bytes_per_sec as f64 * self.waited.as_secs_f64()) as u64;
        if self.received < need {
            return Err(TooSlow {
                received: self.received,
                window_secs: self.waited.as_secs_f64(),
                min_rate: self.rate.bytes_per_sec,
            });
        }
        self.waited = Duration::ZERO;
        self.received = 0;
        Ok(())
    }

    fn fail(&mut self, e: TooSlow) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(f) = self.on_slow.take() {
            f(&e);
        }
        // Ended: the window never restarts.
        self.rate.bytes_per_sec = 0;
        Poll::Ready(Some(Err(BodyError::TooSlow(e))))
    }
}

impl<B> Body for RateBody<B>
where
    B: Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if !this.enabled() {
            return Pin::new(&mut this.inner)
                .poll_frame(cx)
                .map(|o| o.map(|r| r.map_err(BodyError::Hyper)));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.received += d.len() as u64;
                }
                this.timer = None;
                if let Err(e) = this.account(Instant::now()) {
                    return this.fail(e);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => {
                this.timer = None;
                this.pending_since = None;
                Poll::Ready(other.map(|r| r.map_err(BodyError::Hyper)))
            }
            Poll::Pending => {
                let now = Instant::now();
                if let Err(e) = this.account(now) {
                    return this.fail(e);
                }
                this.pending_since = Some(now);
                // Wake when this window's waiting time is used up.
                let left = this.rate.window.saturating_sub(this.waited);
                let deadline = now + left;
                match &mut this.timer {
                    Some(t) => t.as_mut().reset(deadline),
                    None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
                if let Some(t) = &mut this.timer
                    && t.as_mut().poll(cx).is_ready()
                {
                    this.timer = None;
                    if let Err(e) = this.account(Instant::now()) {
                        return this.fail(e);
                    }
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The [`TooSlow`] behind a body error, if that is what it was.
pub fn too_slow<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a TooSlow> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<TooSlow>() {
            return Some(t);
        }
        if let Some(BodyError::TooSlow(t)) = err.downcast_ref::<BodyError>() {
            return Some(t);
        }
        cur = err.source();
    }
    None
}
