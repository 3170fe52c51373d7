//! A store in a local directory: `objects/` holds published objects under
//! their keys, `staging/` holds uploads in progress.
//!
//! Publishing writes the staged file, fsyncs it, renames it over the key
//! (atomic on POSIX file systems) and fsyncs the directory, so after a crash
//! a key holds either its previous version or the new one, whole. Staging
//! lives on the same file system as the objects so that rename never copies.
//! Leftovers in `staging/` after a crash are removed when the store opens.
//!
//! A store on tmpfs (a common choice for live segments, and what nginx
//! origins are usually given) has no device to wait for and nothing that
//! survives a power cut: there a body of up to one batch is written and
//! published on the request's own thread, without fsync. Handing each such
//! write to the blocking pool cost a thread wake-up and two context switches
//! per upload, a quarter of the CPU time of a 200 KB PUT in the benchmark.
//! Atomic publication (temp file, then rename) is the same on every file
//! system, so a killed process still leaves each key whole.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use tandem_core::ObjectPath;
use tokio::task::spawn_blocking;

use crate::{
    BoxFuture, ByteStream, Committed, Entry, ObjectMeta, Parents, StagedWrite, Store, StoreError,
    clamp, etag_for,
};

/// Marks a directory that a client created on purpose (WebDAV MKCOL).
const COLLECTION_MARKER: &str = ".tandem-collection";
/// Size of the chunks a large object is streamed in.
const READ_CHUNK: usize = 1024 * 1024;
/// Objects up to this size are read in one piece (a 4K segment of 2 s is
/// about this size; longer ones stream in `READ_CHUNK`s).
const WHOLE_READ: u64 = 4 * 1024 * 1024;

/// A store rooted at a local directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    inner: Arc<Dirs>,
}

#[derive(Debug)]
struct Dirs {
    objects: PathBuf,
    staging: PathBuf,
    /// The store lives in memory (tmpfs): a small write is a memory copy,
    /// done on the calling thread, and fsync has nothing to make durable.
    in_memory: bool,
}

/// `statfs` magic of tmpfs (and ramfs's, which behaves alike here).
const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// Whether `dir` is on a file system held in memory.
pub fn on_memory_fs(dir: &Path) -> bool {
    rustix::fs::statfs(dir)
        .map(|s| {
            // f_type's integer type differs between targets.
            #[allow(clippy::useless_conversion)]
            let t = i64::from(s.f_type);
            t == TMPFS_MAGIC || t == RAMFS_MAGIC
        })
        .unwrap_or(false)
}

/// Space on the file system that holds a directory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// What an unprivileged writer may still use (`f_bavail`): the figure
    /// at which uploads start failing with "no space".
    pub available: u64,
    /// The file system's size.
    pub total: u64,
}

/// The space left on the file system that holds `dir` (`statvfs`).
pub fn space(dir: &Path) -> io::Result<Space> {
    let s = rustix::fs::statvfs(dir).map_err(io::Error::from)?;
    // The field types differ between targets.
    #[allow(clippy::useless_conversion)]
    let (frsize, avail, blocks) = (
        u64::from(s.f_frsize),
        u64::from(s.f_bavail),
        u64::from(s.f_blocks),
    );
    Ok(Space {
        available: avail.saturating_mul(frsize),
        total: blocks.saturating_mul(frsize),
    })
}

impl LocalStore {
    /// Opens (creating if needed) a store under `root`, and removes uploads
    /// that a previous process left unfinished.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let objects = root.join("objects");
        let staging = root.join("staging");
        for dir in [&objects, &staging] {
            // The owner's only, like the data directory around them.
            let mut b = fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            b.create(dir)
                .map_err(|e| StoreError::from_io("create", dir.display(), e))?;
        }
        let mut removed = 0usize;
        let entries = fs::read_dir(&staging)
            .map_err(|e| StoreError::from_io("list", staging.display(), e))?;
        for entry in entries.flatten() {
            if fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "discarded unfinished uploads from a previous run");
        }
        let in_memory = on_memory_fs(&objects);
        if in_memory {
            tracing::info!(
                "store on tmpfs: small writes publish on the request's thread, without fsync"
            );
        }
        Ok(Self {
            inner: Arc::new(Dirs {
                objects,
                staging,
                in_memory,
            }),
        })
    }

    /// Whether the store lives on tmpfs (small writes inline, no fsync).
    pub fn in_memory(&self) -> bool {
        self.inner.in_memory
    }

    fn path_of(&self, key: &ObjectPath) -> PathBuf {
        path_under(&self.inner.objects, key)
    }
}

fn path_under(root: &Path, key: &ObjectPath) -> PathBuf {
    let mut p = root.to_path_buf();
    p.extend(key.segments());
    p
}

fn meta_of(md: &fs::Metadata) -> ObjectMeta {
    let modified = md.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    ObjectMeta {
        size: md.len(),
        modified,
        etag: etag_for(md.len(), modified),
    }
}

fn entry_of(path: &Path, md: &fs::Metadata) -> Entry {
    if md.is_dir() {
        Entry::Collection {
            explicit: path.join(COLLECTION_MARKER).exists(),
            modified: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        }
    } else {
        Entry::Object(meta_of(md))
    }
}

/// `ENOTDIR`: a path goes through a file as if it were a directory.
const ENOTDIR: i32 = 20;

fn stat_path(path: &Path) -> io::Result<Option<Entry>> {
    match fs::metadata(path) {
        Ok(md) => Ok(Some(entry_of(path, &md))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        // A file where a directory was expected (`a.ts/b`) means "absent".
        Err(e) if e.raw_os_error() == Some(ENOTDIR) => Ok(None),
        Err(e) => Err(e),
    }
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Checks (and, as `parents` says, creates) the parent directories of
/// `key`, refusing when an object stands where a collection must be.
fn prepare_parents(objects: &Path, key: &ObjectPath, parents: &Parents) -> Result<(), StoreError> {
    let Some(parent) = key.parent() else {
        return Err(StoreError::Conflict {
            path: key.clone(),
            why: "the root is a collection",
        });
    };
    // The common case, a write into a folder that exists: nothing to create,
    // so no rule about creating applies.
    if fs::metadata(path_under(objects, &parent)).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    let mut dir = objects.to_path_buf();
    // Whether the deepest existing ancestor so far is an explicit
    // collection strictly below the policy's root.
    let mut explicit_above = false;
    for (depth, seg) in parent.segments().iter().enumerate() {
        dir.push(seg);
        match fs::metadata(&dir) {
            Ok(md) if md.is_dir() => {
                explicit_above = match parents {
                    Parents::CreateOutsideExplicit { root } => {
                        depth + 1 > root.segments().len() && dir.join(COLLECTION_MARKER).exists()
                    }
                    _ => false,
                };
            }
            Ok(_) => {
                return Err(StoreError::Conflict {
                    path: key.clone(),
                    why: "an object stands where a collection is needed",
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let refuse = match parents {
                    Parents::MustExist => true,
                    Parents::Create => false,
                    Parents::CreateOutsideExplicit { .. } => explicit_above,
                };
                if refuse {
                    return Err(StoreError::ParentMissing(key.clone()));
                }
                fs::create_dir(&dir)
                    .or_else(|e| {
                        if e.kind() == io::ErrorKind::AlreadyExists {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(|e| StoreError::from_io("create collection", &parent, e))?;
                explicit_above = false;
            }
            Err(e) => return Err(StoreError::from_io("stat", &parent, e)),
        }
    }
    Ok(())
}

/// Runs `f` on the calling thread when the store is in memory (it cannot
/// block on a device), else on the blocking pool.
async fn maybe_blocking<T: Send + 'static>(
    in_memory: bool,
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    if in_memory { f() } else { blocking(f).await }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(StoreError::Io {
            op: "run",
            path: String::new(),
            source: io::Error::other(e.to_string()),
        })
    })
}

/// Bytes held in memory before the staged file is written. A segment or
/// playlist fits, so its whole upload costs one blocking-pool hop at commit
/// (write, fsync, rename, fsync directory); a larger body streams to the
/// staged file in batches of this size, so a 2 GB upload holds about 1 MiB.
const WRITE_BATCH: usize = 1024 * 1024;

/// An upload staged in `staging/`, removed on drop unless committed.
struct LocalWrite {
    /// Created when the body outgrows one batch, or at commit.
    file: Option<fs::File>,
    pending: Vec<Bytes>,
    pending_len: usize,
    temp: PathBuf,
    target: PathBuf,
    key: ObjectPath,
    written: u64,
    committed: bool,
    closed: bool,
    in_memory: bool,
}

impl Drop for LocalWrite {
    fn drop(&mut self) {
        if !self.committed && (self.file.take().is_some() || self.closed) {
            // Best effort: a leftover is removed at the next open anyway.
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Opens the staged file (on first use) and appends `chunks` to it.
fn append_staged(
    file: Option<fs::File>,
    temp: &Path,
    key: &ObjectPath,
    chunks: &[Bytes],
) -> Result<fs::File, StoreError> {
    let mut file = match file {
        Some(f) => f,
        None => fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(temp)
            .map_err(|e| StoreError::from_io("stage", key, e))?,
    };
    // A body arrives in many small chunks: one writev for the batch (std
    // caps it at IOV_MAX slices) instead of one write per chunk.
    let mut slices: Vec<io::IoSlice<'_>> = chunks.iter().map(|c| io::IoSlice::new(c)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => {
                return Err(StoreError::from_io(
                    "write",
                    key,
                    io::Error::from(io::ErrorKind::WriteZero),
                ));
            }
            Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StoreError::from_io("write", key, e)),
        }
    }
    Ok(file)
}

impl LocalWrite {
    fn closed(&self) -> StoreError {
        StoreError::Io {
            op: "write",
            path: self.key.to_string(),
            source: io::Error::other("upload already closed"),
        }
    }

    /// Writes the gathered chunks to the staged file, off the runtime.
    async fn flush_pending(&mut self) -> Result<(), StoreError> {
        let chunks = std::mem::take(&mut self.pending);
        self.pending_len = 0;
        let (file, temp, key) = (self.file.take(), self.temp.clone(), self.key.clone());
        // From here on a temp file may exist: Drop must remove it.
        self.closed = true;
        let file = blocking(move || append_staged(file, &temp, &key, &chunks)).await?;
        self.file = Some(file);
        self.closed = false;
        Ok(())
    }
}

impl StagedWrite for LocalWrite {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if self.closed {
                return Err(self.closed());
            }
            self.written += chunk.len() as u64;
            self.pending_len += chunk.len();
            self.pending.push(chunk);
            if self.pending_len >= WRITE_BATCH {
                self.flush_pending().await?;
            }
            Ok(())
        })
    }

    fn written(&self) -> u64 {
        self.written
    }

    fn commit(mut self: Box<Self>) -> BoxFuture<'static, Result<Committed, StoreError>> {
        Box::pin(async move {
            let chunks = std::mem::take(&mut self.pending);
            let file = self.file.take();
            let (temp, target, key) = (self.temp.clone(), self.target.clone(), self.key.clone());
            self.closed = true;
            // At most one batch is still in memory (larger bodies flushed
            // as they came): in memory, writing it is a copy.
            let in_memory = self.in_memory;
            let result = maybe_blocking(in_memory, move || {
                let file = append_staged(file, &temp, &key, &chunks)?;
                publish_file(file, &temp, &target, &key, !in_memory)
            })
            .await;
            // On success the temp file is now the object; on failure Drop
            // removes it.
            self.committed = result.is_ok();
            result
        })
    }
}

/// Makes a staged file the object at `target`: fsync (when durable), then
/// rename over whatever is there, then fsync the directory.
fn publish_file(
    file: fs::File,
    temp: &Path,
    target: &Path,
    key: &ObjectPath,
    durable: bool,
) -> Result<Committed, StoreError> {
    if durable {
        file.sync_all()
            .map_err(|e| StoreError::from_io("fsync", key, e))?;
    }
    // Renaming keeps the modification time, so this is the published
    // object's metadata.
    let md = file
        .metadata()
        .map_err(|e| StoreError::from_io("stat", key, e))?;
    drop(file);
    let replaced = match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => {
            return Err(StoreError::Conflict {
                path: key.clone(),
                why: "a collection already has this name",
            });
        }
        Ok(_) => true,
        Err(_) => false,
    };
    fs::rename(temp, target).map_err(|e| StoreError::from_io("publish", key, e))?;
    if let Some(dir) = target.parent().filter(|_| durable) {
        fsync_dir(dir).map_err(|e| StoreError::from_io("fsync directory", key, e))?;
    }
    Ok(Committed {
        replaced,
        meta: meta_of(&md),
    })
}

fn random_name() -> String {
    let mut b = [0u8; 12];
    if getrandom::fill(&mut b).is_err() {
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b[..12].copy_from_slice(&t.to_le_bytes()[..12]);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Opens the object at `path`: `NotFound` where nothing is (or an object
/// stands where a collection would be, `a.ts/b`), `Conflict` for a
/// collection, as the memory store answers.
fn open_object(path: &Path, key: &ObjectPath) -> Result<(fs::File, fs::Metadata), StoreError> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(ENOTDIR) => {
            return Err(StoreError::NotFound(key.clone()));
        }
        Err(e) => return Err(StoreError::from_io("open", key, e)),
    };
    let md = file
        .metadata()
        .map_err(|e| StoreError::from_io("stat", key, e))?;
    if md.is_dir() {
        return Err(StoreError::Conflict {
            path: key.clone(),
            why: "this is a collection, not an object",
        });
    }
    Ok((file, md))
}

fn read_range(
    path: &Path,
    key: &ObjectPath,
    range: Option<Range<u64>>,
) -> Result<(ObjectMeta, ByteStream), StoreError> {
    let (mut file, md) = open_object(path, key)?;
    let meta = meta_of(&md);
    let r = clamp(range, meta.size);
    file.seek(SeekFrom::Start(r.start))
        .map_err(|e| StoreError::from_io("seek", key, e))?;
    let remaining = r.end - r.start;
    // Segments and playlists are read whole in this same blocking call: one
    // hop to the blocking pool per GET instead of one per chunk, which is
    // what playback throughput hinges on.
    if remaining <= WHOLE_READ {
        // Read into spare capacity: zeroing the buffer first cost 4 % of a
        // 200 KB GET.
        let want = usize::try_from(remaining).unwrap_or(0);
        let mut buf = Vec::with_capacity(want);
        (&mut file)
            .take(remaining)
            .read_to_end(&mut buf)
            .map_err(|e| StoreError::from_io("read", key, e))?;
        if buf.len() != want {
            return Err(StoreError::from_io(
                "read",
                key,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "object shrank while being read",
                ),
            ));
        }
        let stream: ByteStream = Box::pin(futures_util::stream::iter([Ok(Bytes::from(buf))]));
        return Ok((meta, stream));
    }
    // The open file handle keeps serving this version even if a newer one is
    // published meanwhile: a reader gets one version, whole.
    let stream =
        futures_util::stream::try_unfold((file, remaining), |(mut file, remaining)| async move {
            if remaining == 0 {
                return Ok(None);
            }
            let want = usize::try_from(remaining)
                .unwrap_or(READ_CHUNK)
                .min(READ_CHUNK);
            let (file, buf) = spawn_blocking(move || {
                let mut buf = vec![0u8; want];
                let n = file.read(&mut buf).map(|n| {
                    buf.truncate(n);
                    buf
                });
                (file, n)
            })
            .await
            .map_err(|e| io::Error::other(e.to_string()))?;
            let buf = buf?;
            if buf.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "object shrank while being read",
                ));
            }
            let left = remaining - buf.len() as u64;
            Ok(Some((Bytes::from(buf), (file, left))))
        });
    Ok((meta, Box::pin(stream)))
}

fn copy_tree(from: &Path, to: &Path, staging: &Path, key: &ObjectPath) -> Result<(), StoreError> {
    let md = fs::metadata(from).map_err(|e| StoreError::from_io("stat", key, e))?;
    if md.is_dir() {
        remove_any(to, key)?;
        fs::create_dir(to).map_err(|e| StoreError::from_io("create collection", key, e))?;
        let entries = fs::read_dir(from).map_err(|e| StoreError::from_io("list", key, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::from_io("list", key, e))?;
            copy_tree(&entry.path(), &to.join(entry.file_name()), staging, key)?;
        }
        Ok(())
    } else {
        let temp = staging.join(format!("{}.part", random_name()));
        let publish = || -> io::Result<()> {
            fs::copy(from, &temp)?;
            fs::File::open(&temp)?.sync_all()?;
            if fs::metadata(to).map(|m| m.is_dir()).unwrap_or(false) {
                fs::remove_dir_all(to)?;
            }
            fs::rename(&temp, to)
        };
        publish().map_err(|e| {
            let _ = fs::remove_file(&temp);
            StoreError::from_io("copy", key, e)
        })
    }
}

fn remove_any(path: &Path, key: &ObjectPath) -> Result<(), StoreError> {
    let r = match fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    r.map_err(|e| StoreError::from_io("delete", key, e))
}

fn require_parent(objects: &Path, key: &ObjectPath) -> Result<PathBuf, StoreError> {
    let parent = key.parent().ok_or_else(|| StoreError::Conflict {
        path: key.clone(),
        why: "the root is a collection",
    })?;
    let dir = path_under(objects, &parent);
    match fs::metadata(&dir) {
        Ok(md) if md.is_dir() => Ok(dir),
        Ok(_) => Err(StoreError::Conflict {
            path: key.clone(),
            why: "an object stands where a collection is needed",
        }),
        Err(_) => Err(StoreError::ParentMissing(key.clone())),
    }
}

impl Store for LocalStore {
    fn begin_put<'a>(
        &'a self,
        key: &'a ObjectPath,
        parents: Parents,
    ) -> BoxFuture<'a, Result<Box<dyn StagedWrite>, StoreError>> {
        Box::pin(async move {
            let dirs = self.inner.clone();
            let key = key.clone();
            maybe_blocking(self.inner.in_memory, move || {
                prepare_parents(&dirs.objects, &key, &parents)?;
                let target = path_under(&dirs.objects, &key);
                if fs::metadata(&target).map(|m| m.is_dir()).unwrap_or(false) {
                    return Err(StoreError::Conflict {
                        path: key,
                        why: "a collection already has this name",
                    });
                }
                let temp = dirs.staging.join(format!("{}.part", random_name()));
                let w: Box<dyn StagedWrite> = Box::new(LocalWrite {
                    file: None,
                    pending: Vec::new(),
                    pending_len: 0,
                    temp,
                    target,
                    key,
                    written: 0,
                    committed: false,
                    closed: false,
                    in_memory: dirs.in_memory,
                });
                Ok(w)
            })
            .await
        })
    }

    fn stat<'a>(&'a self, key: &'a ObjectPath) -> BoxFuture<'a, Result<Option<Entry>, StoreError>> {
        let path = self.path_of(key);
        let key = key.clone();
        Box::pin(maybe_blocking(self.inner.in_memory, move || {
            stat_path(&path).map_err(|e| StoreError::from_io("stat", &key, e))
        }))
    }

    fn get<'a>(
        &'a self,
        key: &'a ObjectPath,
        range: Option<Range<u64>>,
    ) -> BoxFuture<'a, Result<(ObjectMeta, ByteStream), StoreError>> {
        let path = self.path_of(key);
        let key = key.clone();
        // In memory, opening and reading up to one whole-read is a copy.
        Box::pin(maybe_blocking(self.inner.in_memory, move || {
            read_range(&path, &key, range)
        }))
    }

    fn delete<'a>(&'a self, key: &'a ObjectPath) -> BoxFuture<'a, Result<(), StoreError>> {
        let path = self.path_of(key);
        let key = key.clone();
        Box::pin(blocking(move || {
            if key.is_root() {
                return Err(StoreError::Conflict {
                    path: key,
                    why: "the root cannot be deleted",
                });
            }
            if stat_path(&path)
                .map_err(|e| StoreError::from_io("stat", &key, e))?
                .is_none()
            {
                return Err(StoreError::NotFound(key));
            }
            remove_any(&path, &key)?;
            if let Some(dir) = path.parent() {
                fsync_dir(dir).map_err(|e| StoreError::from_io("fsync directory", &key, e))?;
            }
            Ok(())
        }))
    }

    fn create_collection<'a>(
        &'a self,
        key: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let dirs = self.inner.clone();
        let key = key.clone();
        Box::pin(blocking(move || {
            let parent_dir = require_parent(&dirs.objects, &key)?;
            let path = path_under(&dirs.objects, &key);
            match fs::create_dir(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(StoreError::AlreadyExists { path: key });
                }
                Err(e) => return Err(StoreError::from_io("create collection", &key, e)),
            }
            fs::File::create(path.join(COLLECTION_MARKER))
                .map_err(|e| StoreError::from_io("create collection", &key, e))?;
            fsync_dir(&parent_dir).map_err(|e| StoreError::from_io("fsync directory", &key, e))
        }))
    }

    fn list<'a>(
        &'a self,
        key: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<Vec<(String, Entry)>, StoreError>> {
        let path = self.path_of(key);
        let key = key.clone();
        Box::pin(blocking(move || {
            let rd = match fs::read_dir(&path) {
                Ok(rd) => rd,
                // An object, or a key below one, is no collection.
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(ENOTDIR) =>
                {
                    return Err(StoreError::NotFound(key));
                }
                Err(e) => return Err(StoreError::from_io("list", &key, e)),
            };
            let mut out = Vec::new();
            for entry in rd {
                let entry = entry.map_err(|e| StoreError::from_io("list", &key, e))?;
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                if name.starts_with(tandem_core::name::RESERVED_PREFIX) {
                    continue;
                }
                let p = entry.path();
                // An entry removed between readdir and stat is skipped.
                if let Ok(Some(e)) = stat_path(&p) {
                    out.push((name, e));
                }
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        }))
    }

    fn copy<'a>(
        &'a self,
        from: &'a ObjectPath,
        to: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let dirs = self.inner.clone();
        let (from, to) = (from.clone(), to.clone());
        Box::pin(maybe_blocking(self.inner.in_memory, move || {
            let src = path_under(&dirs.objects, &from);
            if stat_path(&src)
                .map_err(|e| StoreError::from_io("stat", &from, e))?
                .is_none()
            {
                return Err(StoreError::NotFound(from));
            }
            let parent = require_parent(&dirs.objects, &to)?;
            copy_tree(&src, &path_under(&dirs.objects, &to), &dirs.staging, &to)?;
            fsync_dir(&parent).map_err(|e| StoreError::from_io("fsync directory", &to, e))
        }))
    }

    fn link<'a>(
        &'a self,
        from: &'a ObjectPath,
        to: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let dirs = self.inner.clone();
        let (from, to) = (from.clone(), to.clone());
        Box::pin(maybe_blocking(self.inner.in_memory, move || {
            let src = path_under(&dirs.objects, &from);
            if !fs::metadata(&src).map(|m| m.is_file()).unwrap_or(false) {
                return Err(StoreError::NotFound(from));
            }
            prepare_parents(&dirs.objects, &to, &Parents::Create)?;
            let dst = path_under(&dirs.objects, &to);
            // Link under a temporary name, then rename over the target: the
            // target is replaced atomically, never missing.
            let temp = dirs.staging.join(format!("{}.link", random_name()));
            let linked = fs::hard_link(&src, &temp).or_else(|_| fs::copy(&src, &temp).map(drop));
            linked.map_err(|e| StoreError::from_io("link", &to, e))?;
            fs::rename(&temp, &dst).map_err(|e| {
                let _ = fs::remove_file(&temp);
                StoreError::from_io("link", &to, e)
            })
        }))
    }

    fn concat<'a>(
        &'a self,
        parts: &'a [ObjectPath],
        key: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<Committed, StoreError>> {
        let dirs = self.inner.clone();
        let parts: Vec<(PathBuf, ObjectPath)> = parts
            .iter()
            .map(|p| (path_under(&dirs.objects, p), p.clone()))
            .collect();
        let key = key.clone();
        // One file-to-file copy per part (copy_file_range on Linux: no
        // trip through user space), into a staged file published at once.
        Box::pin(blocking(move || {
            prepare_parents(&dirs.objects, &key, &Parents::Create)?;
            let target = path_under(&dirs.objects, &key);
            let temp = dirs.staging.join(format!("{}.part", random_name()));
            let result = (|| {
                let mut out = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&temp)
                    .map_err(|e| StoreError::from_io("stage", &key, e))?;
                for (path, part) in &parts {
                    let (mut src, _) = open_object(path, part)?;
                    io::copy(&mut src, &mut out)
                        .map_err(|e| StoreError::from_io("copy", &key, e))?;
                }
                publish_file(out, &temp, &target, &key, !dirs.in_memory)
            })();
            if result.is_err() {
                let _ = fs::remove_file(&temp);
            }
            result
        }))
    }

    fn rename<'a>(
        &'a self,
        from: &'a ObjectPath,
        to: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let dirs = self.inner.clone();
        let (from, to) = (from.clone(), to.clone());
        Box::pin(maybe_blocking(self.inner.in_memory, move || {
            let src = path_under(&dirs.objects, &from);
            if stat_path(&src)
                .map_err(|e| StoreError::from_io("stat", &from, e))?
                .is_none()
            {
                return Err(StoreError::NotFound(from));
            }
            let parent = require_parent(&dirs.objects, &to)?;
            let dst = path_under(&dirs.objects, &to);
            // rename(2) replaces a file by a file atomically, but cannot put
            // a directory over anything, nor a file over a directory.
            let is_dir = |p: &Path| fs::metadata(p).map(|m| m.is_dir()).unwrap_or(false);
            if dst.exists() && (is_dir(&dst) || is_dir(&src)) {
                remove_any(&dst, &to)?;
            }
            fs::rename(&src, &dst).map_err(|e| StoreError::from_io("move", &to, e))?;
            fsync_dir(&parent).map_err(|e| StoreError::from_io("fsync directory", &to, e))
        }))
    }
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
