//! STREAMING uploads in progress, readable while they arrive.
//!
//! One [`InFlight`] per upload holds the chunks received so far in an
//! append-only list of `Bytes` (shared by every reader: a reader clones
//! reference-counted handles, never the bytes) and a `watch` channel that
//! says how many chunks there are and whether the upload ended, and how.
//! The staged write in `tandem-store` is still what publishes the object;
//! this is only the view of it that readers get before it is published.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use futures_util::Stream;
use tandem_core::ObjectPath;
use tokio::sync::watch;

/// How an upload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Open,
    Done,
    Failed,
}

/// What readers watch: chunks available and the end state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Progress {
    chunks: usize,
    end: End,
}

/// An upload in progress, shared with its readers.
#[derive(Debug)]
pub struct InFlight {
    chunks: Mutex<Vec<Bytes>>,
    progress: watch::Sender<Progress>,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
}

impl InFlight {
    fn chunks(&self) -> MutexGuard<'_, Vec<Bytes>> {
        self.chunks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a received chunk and wakes readers.
    pub fn push(&self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        let n = {
            let mut c = self.chunks();
            c.push(chunk);
            c.len()
        };
        self.progress.send_modify(|p| p.chunks = n);
    }

    fn finish(&self, end: End) {
        self.progress.send_modify(|p| {
            if p.end == End::Open {
                p.end = end;
            }
        });
    }

    /// The bytes received so far, then the rest as they arrive. Ends when
    /// the upload is published; fails (so a chunked answer is cut off, not
    /// terminated) when it is not.
    pub fn reader(self: Arc<Self>) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        let rx = self.progress.subscribe();
        futures_util::stream::unfold(
            (self, rx, 0usize, Vec::<Bytes>::new()),
            |(me, mut rx, mut next, mut pending)| async move {
                // usize::MAX: the error was yielded; the stream is over.
                if next == usize::MAX {
                    return None;
                }
                loop {
                    if let Some(b) = pending.pop() {
                        return Some((Ok(b), (me, rx, next, pending)));
                    }
                    let p = *rx.borrow_and_update();
                    if next < p.chunks {
                        let c = me.chunks();
                        // Reversed, so `pop` yields them in order.
                        pending = c
                            .get(next..)
                            .unwrap_or_default()
                            .iter()
                            .rev()
                            .cloned()
                            .collect();
                        next = c.len();
                        continue;
                    }
                    match p.end {
                        End::Done => return None,
                        End::Failed => {
                            let e = io::Error::new(
                                io::ErrorKind::ConnectionAborted,
                                "the upload was broken off",
                            );
                            return Some((Err(e), (me, rx, usize::MAX, pending)));
                        }
                        End::Open => {
                            if rx.changed().await.is_err() {
                                return None;
                            }
                        }
                    }
                }
            },
        )
    }
}

/// The STREAMING uploads in progress, by store key.
#[derive(Debug, Default)]
pub struct InFlights {
    map: Mutex<HashMap<ObjectPath, Arc<InFlight>>>,
}

impl InFlights {
    fn map(&self) -> MutexGuard<'_, HashMap<ObjectPath, Arc<InFlight>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers an upload to `key`; the newest upload to a key is the one
    /// readers see. The guard fails the upload if dropped unfinished.
    pub fn start(
        self: &Arc<Self>,
        key: ObjectPath,
        content_type: Option<String>,
        cache_control: Option<String>,
    ) -> Upload {
        let (progress, _) = watch::channel(Progress {
            chunks: 0,
            end: End::Open,
        });
        let flight = Arc::new(InFlight {
            chunks: Mutex::default(),
            progress,
            content_type,
            cache_control,
        });
        self.map().insert(key.clone(), flight.clone());
        Upload {
            flights: self.clone(),
            key,
            flight,
            done: false,
        }
    }

    /// The upload in progress at `key`, if a STREAMING one is.
    pub fn get(&self, key: &ObjectPath) -> Option<Arc<InFlight>> {
        self.map().get(key).cloned()
    }

    fn remove(&self, key: &ObjectPath, flight: &Arc<InFlight>) {
        let mut m = self.map();
        if m.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            m.remove(key);
        }
    }
}

/// The writer's handle on its [`InFlight`].
#[derive(Debug)]
pub struct Upload {
    flights: Arc<InFlights>,
    key: ObjectPath,
    flight: Arc<InFlight>,
    done: bool,
}

impl Upload {
    pub fn push(&self, chunk: Bytes) {
        self.flight.push(chunk);
    }

    /// The object is published: readers finish, new readers go to the store.
    pub fn published(mut self) {
        self.done = true;
        self.flight.finish(End::Done);
        self.flights.remove(&self.key, &self.flight);
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.done {
            self.flight.finish(End::Failed);
            self.flights.remove(&self.key, &self.flight);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn readers_get_everything_then_end_or_fail() {
        let flights = Arc::new(InFlights::default());
        let key = ObjectPath::from_segments(["a"]).unwrap();
        let up = flights.start(key.clone(), None, None);
        up.push(Bytes::from_static(b"he"));
        let mut r = Box::pin(flights.get(&key).unwrap().reader());
        assert_eq!(r.next().await.unwrap().unwrap(), "he");
        up.push(Bytes::from_static(b"llo"));
        assert_eq!(r.next().await.unwrap().unwrap(), "llo");
        up.published();
        assert!(r.next().await.is_none());
        assert!(flights.get(&key).is_none());

        let up = flights.start(key.clone(), None, None);
        up.push(Bytes::from_static(b"x"));
        let mut r = Box::pin(flights.get(&key).unwrap().reader());
        drop(up);
        assert_eq!(r.next().await.unwrap().unwrap(), "x");
        assert!(r.next().await.unwrap().is_err());
        assert!(r.next().await.is_none());
        assert!(flights.get(&key).is_none());
    }
}
