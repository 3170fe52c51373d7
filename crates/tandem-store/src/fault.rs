//! Deliberate publication faults, for proving that a crash campaign
//! (`tandem-bench chaos`) notices a store that breaks its promise.
//!
//! Compiled only with the `fault-injection` feature, which no release
//! build enables: the test suite turns it on (a dev-dependency feature),
//! so only binaries built for tests can read `TANDEM_FAULT_INJECT`.
//!
//! - `truncate-ts`: every object whose key ends in `.ts` is published one
//!   byte short, while the upload is answered as if it were whole.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use tandem_core::ObjectPath;

use crate::{
    BoxFuture, ByteStream, Committed, Entry, ObjectMeta, Parents, StagedWrite, Store, StoreError,
};

/// The environment variable that selects a fault.
pub const ENV: &str = "TANDEM_FAULT_INJECT";

/// A fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Publish `.ts` objects without their last byte.
    TruncateTs,
}

impl Fault {
    /// The fault `TANDEM_FAULT_INJECT` names, if any.
    pub fn from_env() -> Option<Self> {
        match std::env::var(ENV).ok()?.as_str() {
            "truncate-ts" => Some(Self::TruncateTs),
            other => {
                tracing::error!(value = other, "unknown {ENV} value; no fault injected");
                None
            }
        }
    }
}

/// Wraps `inner` in the fault `TANDEM_FAULT_INJECT` names, or returns it
/// as it is.
pub fn from_env(inner: Arc<dyn Store>) -> Arc<dyn Store> {
    match Fault::from_env() {
        Some(fault) => {
            tracing::error!(
                ?fault,
                "FAULT INJECTION ON: this store publishes broken objects on purpose"
            );
            Arc::new(FaultyStore { inner, fault })
        }
        None => inner,
    }
}

/// A store that breaks publication as its [`Fault`] says.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    fault: Fault,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>, fault: Fault) -> Self {
        Self { inner, fault }
    }
}

/// Holds back the last chunk so that its final byte can be dropped.
struct Truncating {
    inner: Box<dyn StagedWrite>,
    held: Option<Bytes>,
}

impl StagedWrite for Truncating {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if let Some(prev) = self.held.replace(chunk) {
                self.inner.write(prev).await?;
            }
            Ok(())
        })
    }

    fn written(&self) -> u64 {
        self.inner.written() + self.held.as_ref().map_or(0, |b| b.len() as u64)
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<Committed, StoreError>> {
        let Truncating { mut inner, held } = *self;
        Box::pin(async move {
            if let Some(last) = held {
                let keep = last.len().saturating_sub(1);
                if keep > 0 {
                    inner.write(last.slice(..keep)).await?;
                }
            }
            inner.commit().await
        })
    }
}

impl Store for FaultyStore {
    fn begin_put<'a>(
        &'a self,
        key: &'a ObjectPath,
        parents: Parents,
    ) -> BoxFuture<'a, Result<Box<dyn StagedWrite>, StoreError>> {
        Box::pin(async move {
            let w = self.inner.begin_put(key, parents).await?;
            let broken = match self.fault {
                Fault::TruncateTs => key.segments().last().is_some_and(|s| s.ends_with(".ts")),
            };
            Ok(if broken {
                Box::new(Truncating {
                    inner: w,
                    held: None,
                }) as Box<dyn StagedWrite>
            } else {
                w
            })
        })
    }

    fn stat<'a>(&'a self, key: &'a ObjectPath) -> BoxFuture<'a, Result<Option<Entry>, StoreError>> {
        self.inner.stat(key)
    }

    fn get<'a>(
        &'a self,
        key: &'a ObjectPath,
        range: Option<Range<u64>>,
    ) -> BoxFuture<'a, Result<(ObjectMeta, ByteStream), StoreError>> {
        self.inner.get(key, range)
    }

    fn delete<'a>(&'a self, key: &'a ObjectPath) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.delete(key)
    }

    fn create_collection<'a>(
        &'a self,
        key: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.create_collection(key)
    }

    fn list<'a>(
        &'a self,
        key: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<Vec<(String, Entry)>, StoreError>> {
        self.inner.list(key)
    }

    fn copy<'a>(
        &'a self,
        from: &'a ObjectPath,
        to: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.copy(from, to)
    }

    fn link<'a>(
        &'a self,
        from: &'a ObjectPath,
        to: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.link(from, to)
    }

    fn concat<'a>(
        &'a self,
        parts: &'a [ObjectPath],
        key: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<Committed, StoreError>> {
        self.inner.concat(parts, key)
    }

    fn rename<'a>(
        &'a self,
        from: &'a ObjectPath,
        to: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.rename(from, to)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::MemoryStore;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn truncate_ts_publishes_segments_one_byte_short_and_nothing_else() {
        let store = FaultyStore::new(Arc::new(MemoryStore::new()), Fault::TruncateTs);
        for (name, broken) in [("a/seg1.ts", true), ("a/index.m3u8", false)] {
            let key = ObjectPath::from_segments(name.split('/')).unwrap();
            let mut w = store.begin_put(&key, Parents::Create).await.unwrap();
            w.write(Bytes::from_static(b"0123")).await.unwrap();
            w.write(Bytes::from_static(b"4567")).await.unwrap();
            assert_eq!(w.written(), 8, "the writer reports the whole body");
            w.commit().await.unwrap();
            let (_, mut s) = store.get(&key, None).await.unwrap();
            let mut got = Vec::new();
            while let Some(c) = s.next().await {
                got.extend_from_slice(&c.unwrap());
            }
            let want: &[u8] = if broken { b"0123456" } else { b"01234567" };
            assert_eq!(got, want, "{name}");
        }
    }
}
