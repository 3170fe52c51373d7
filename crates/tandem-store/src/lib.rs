//! Object storage for Tandem behind one trait, with the complete-only
//! commit that every ingest path shares.
//!
//! A write goes to a staging place first and is published atomically only
//! when [`StagedWrite::commit`] is called after the body arrived whole. A
//! staged write that is dropped before `commit` publishes nothing and leaves
//! the previous version of its key intact. Readers therefore never see a
//! partial object, whatever the client or the process does mid-upload.
//!
//! Keys are [`ObjectPath`]s, validated in `tandem-core`, so no key can
//! escape the store's root. Collections (WebDAV's directories) exist either
//! implicitly, because an object below them was written, or explicitly,
//! because a client created them (MKCOL); [`Entry::Collection`] says which.
//!
//! - [`local`]: a directory on the local file system (the default).
//! - [`memory`]: an in-memory store with an optional capacity, for tests.
//! - `fault` (feature `fault-injection`, test builds only): a store that
//!   breaks publication on purpose, to prove the crash campaign notices.

#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod local;
pub mod memory;

use std::future::Future;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::Stream;
use tandem_core::ObjectPath;

pub use local::{LocalStore, Space, on_memory_fs, space};
pub use memory::MemoryStore;

/// A boxed, sendable future, so the store can be used as `dyn Store`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// An object's bytes, streamed in chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// What a stored object looks like from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size: u64,
    pub modified: SystemTime,
    /// A strong validator, quoted as in an HTTP `ETag`.
    pub etag: String,
}

/// What is found at a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Object(ObjectMeta),
    Collection {
        /// Created on purpose (MKCOL) rather than implied by a write below.
        explicit: bool,
        modified: SystemTime,
    },
}

/// What to do when a write's parent collections do not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parents {
    /// Create them, implicitly (HTTP PUT encoders never create directories).
    Create,
    /// Refuse with [`StoreError::ParentMissing`] (WebDAV, RFC 4918 §9.7.1).
    MustExist,
    /// Create them, unless the nearest existing ancestor is an explicit
    /// collection strictly below `root`: then refuse like `MustExist`. HTTP
    /// PUT encoders get their folders; a WebDAV client gets RFC 4918's rule
    /// inside the collections it made.
    CreateOutsideExplicit { root: ObjectPath },
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{0} does not exist")]
    NotFound(ObjectPath),
    #[error("the parent collection of {0} does not exist")]
    ParentMissing(ObjectPath),
    #[error("{path} already exists")]
    AlreadyExists { path: ObjectPath },
    #[error("{path}: {why}")]
    Conflict { path: ObjectPath, why: &'static str },
    #[error("storage is full")]
    Full,
    #[error("storage is not writable: {0}")]
    Unwritable(io::Error),
    #[error("storage error during {op} of {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// Classifies an IO error: a full disk and a read-only or forbidden
    /// directory are conditions an operator fixes, not internal faults.
    pub fn from_io(op: &'static str, path: impl std::fmt::Display, source: io::Error) -> Self {
        const ENOSPC: i32 = 28;
        const EDQUOT: i32 = 122;
        const EROFS: i32 = 30;
        match source.raw_os_error() {
            Some(ENOSPC | EDQUOT) => Self::Full,
            Some(EROFS) => Self::Unwritable(source),
            _ if source.kind() == io::ErrorKind::PermissionDenied => Self::Unwritable(source),
            _ if source.kind() == io::ErrorKind::StorageFull => Self::Full,
            _ => Self::Io {
                op,
                path: path.to_string(),
                source,
            },
        }
    }
}

/// An upload in progress. Bytes go to a staging place; nothing is visible
/// until [`commit`](StagedWrite::commit). Dropping it discards the upload.
pub trait StagedWrite: Send {
    /// Appends a chunk of the body.
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Bytes written so far.
    fn written(&self) -> u64;
    /// Makes the object durable and visible under its key, atomically
    /// replacing any previous version. Returns whether a previous version
    /// existed, and the new object's metadata.
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<Committed, StoreError>>;
}

/// The outcome of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub replaced: bool,
    pub meta: ObjectMeta,
}

/// Tandem's storage. Every method is safe to call concurrently; two writes
/// to one key publish in commit order, each whole.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Starts an upload to `key`. Parent collections are checked now (and
    /// created, under [`Parents::Create`]), so a refusal comes before any
    /// body byte is read.
    fn begin_put<'a>(
        &'a self,
        key: &'a ObjectPath,
        parents: Parents,
    ) -> BoxFuture<'a, Result<Box<dyn StagedWrite>, StoreError>>;

    /// What is at `key`, if anything. The root is always a collection.
    fn stat<'a>(&'a self, key: &'a ObjectPath) -> BoxFuture<'a, Result<Option<Entry>, StoreError>>;

    /// An object's bytes, or the bytes in `range` (clamped to its size).
    fn get<'a>(
        &'a self,
        key: &'a ObjectPath,
        range: Option<Range<u64>>,
    ) -> BoxFuture<'a, Result<(ObjectMeta, ByteStream), StoreError>>;

    /// Removes an object, or a collection and all below it.
    fn delete<'a>(&'a self, key: &'a ObjectPath) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Creates an explicit collection. Its parent must exist.
    fn create_collection<'a>(
        &'a self,
        key: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The direct children of a collection, sorted by name.
    fn list<'a>(
        &'a self,
        key: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<Vec<(String, Entry)>, StoreError>>;

    /// Copies an object or a collection tree to `to` (whose parent must
    /// exist), replacing what is there. Each copied object is published
    /// whole.
    fn copy<'a>(
        &'a self,
        from: &'a ObjectPath,
        to: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Publishes the object at `from` also under `to` (parents created),
    /// atomically replacing what is there: a hard link where the store can,
    /// a copy otherwise. Later writes to `from` do not change `to`, because
    /// writes publish new files rather than modifying old ones.
    fn link<'a>(
        &'a self,
        from: &'a ObjectPath,
        to: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Publishes the concatenation of `parts`, in order, under `key`
    /// (parents created), whole or not at all: an S3 multipart upload's
    /// completion. The default streams every part through a staged write;
    /// a store that can copy inside itself does better.
    fn concat<'a>(
        &'a self,
        parts: &'a [ObjectPath],
        key: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<Committed, StoreError>> {
        Box::pin(async move {
            use futures_util::StreamExt;
            let mut w = self.begin_put(key, Parents::Create).await?;
            for part in parts {
                let (_, mut stream) = self.get(part, None).await?;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| StoreError::from_io("read", part, e))?;
                    w.write(chunk).await?;
                }
            }
            w.commit().await
        })
    }

    /// Moves an object or a collection tree to `to` (whose parent must
    /// exist), replacing what is there.
    fn rename<'a>(
        &'a self,
        from: &'a ObjectPath,
        to: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// Told of every object a dialect published whole, with its key and size:
/// how objects written through the S3 or MediaStore API reach a channel
/// bound to that bucket or container. Called after the commit, never for
/// an object that is not complete.
#[derive(Clone)]
pub struct PublishHook(std::sync::Arc<PublishFn>);

/// What a [`PublishHook`] calls.
pub type PublishFn = dyn Fn(&ObjectPath, u64) + Send + Sync;

impl PublishHook {
    pub fn new(f: impl Fn(&ObjectPath, u64) + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(f))
    }

    /// Reports one published object.
    pub fn published(&self, key: &ObjectPath, size: u64) {
        (self.0)(key, size);
    }
}

impl std::fmt::Debug for PublishHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublishHook")
    }
}

/// A strong validator from size and modification time, as most origins
/// (nginx included) compute it.
pub fn etag_for(size: u64, modified: SystemTime) -> String {
    let nanos = modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("\"{nanos:x}-{size:x}\"")
}

/// Clamps a requested byte range to an object of `size` bytes.
fn clamp(range: Option<Range<u64>>, size: u64) -> Range<u64> {
    match range {
        Some(r) => r.start.min(size)..r.end.min(size).max(r.start.min(size)),
        None => 0..size,
    }
}

#[cfg(test)]
mod conformance;
