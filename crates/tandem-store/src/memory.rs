//! An in-memory store, for tests: the same contract as the local store,
//! with an optional capacity so that "storage full" can be provoked.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use tandem_core::ObjectPath;

use crate::{
    BoxFuture, ByteStream, Committed, Entry, ObjectMeta, Parents, StagedWrite, Store, StoreError,
    clamp, etag_for,
};

#[derive(Debug, Clone)]
enum Node {
    Object {
        data: Bytes,
        modified: SystemTime,
    },
    Collection {
        explicit: bool,
        modified: SystemTime,
    },
}

#[derive(Debug, Default)]
struct Inner {
    nodes: BTreeMap<ObjectPath, Node>,
    /// Bytes held by published objects plus uploads in progress.
    used: u64,
}

/// A store held in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    capacity: Option<u64>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that reports [`StoreError::Full`] once `bytes` are in use.
    pub fn with_capacity(bytes: u64) -> Self {
        Self {
            inner: Arc::default(),
            capacity: Some(bytes),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied change
        // (each change is one map operation), so a poisoned lock is usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn entry_of(node: &Node) -> Entry {
    match node {
        Node::Object { data, modified } => Entry::Object(meta(data, *modified)),
        Node::Collection { explicit, modified } => Entry::Collection {
            explicit: *explicit,
            modified: *modified,
        },
    }
}

fn meta(data: &Bytes, modified: SystemTime) -> ObjectMeta {
    let size = data.len() as u64;
    ObjectMeta {
        size,
        modified,
        etag: etag_for(size, modified),
    }
}

impl Inner {
    fn is_collection(&self, key: &ObjectPath) -> bool {
        key.is_root() || matches!(self.nodes.get(key), Some(Node::Collection { .. }))
    }

    fn check_parents(&mut self, key: &ObjectPath, parents: Parents) -> Result<(), StoreError> {
        let Some(parent) = key.parent() else {
            return Err(StoreError::Conflict {
                path: key.clone(),
                why: "the root is a collection",
            });
        };
        let mut dir = ObjectPath::root();
        let mut explicit_above = false;
        for seg in parent.segments() {
            dir = dir
                .join(seg)
                .map_err(|_| StoreError::NotFound(key.clone()))?;
            match self.nodes.get(&dir) {
                Some(Node::Collection { explicit, .. }) => {
                    explicit_above = match &parents {
                        Parents::CreateOutsideExplicit { root } => {
                            *explicit && dir.segments().len() > root.segments().len()
                        }
                        _ => false,
                    };
                }
                Some(Node::Object { .. }) => {
                    return Err(StoreError::Conflict {
                        path: key.clone(),
                        why: "an object stands where a collection is needed",
                    });
                }
                None => {
                    let refuse = match &parents {
                        Parents::MustExist => true,
                        Parents::Create => false,
                        Parents::CreateOutsideExplicit { .. } => explicit_above,
                    };
                    if refuse {
                        return Err(StoreError::ParentMissing(key.clone()));
                    }
                    self.nodes.insert(
                        dir.clone(),
                        Node::Collection {
                            explicit: false,
                            modified: SystemTime::now(),
                        },
                    );
                    explicit_above = false;
                }
            }
        }
        Ok(())
    }

    fn remove_tree(&mut self, key: &ObjectPath) {
        let doomed: Vec<ObjectPath> = self
            .nodes
            .keys()
            .filter(|k| k.starts_with(key))
            .cloned()
            .collect();
        for k in doomed {
            if let Some(Node::Object { data, .. }) = self.nodes.remove(&k) {
                self.used = self.used.saturating_sub(data.len() as u64);
            }
        }
    }
}

struct MemWrite {
    store: MemoryStore,
    key: ObjectPath,
    buf: BytesMut,
    reserved: u64,
}

impl Drop for MemWrite {
    fn drop(&mut self) {
        let mut inner = self.store.lock();
        inner.used = inner.used.saturating_sub(self.reserved);
    }
}

impl StagedWrite for MemWrite {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let n = chunk.len() as u64;
            {
                let mut inner = self.store.lock();
                if self.store.capacity.is_some_and(|cap| inner.used + n > cap) {
                    return Err(StoreError::Full);
                }
                inner.used += n;
            }
            self.reserved += n;
            self.buf.extend_from_slice(&chunk);
            Ok(())
        })
    }

    fn written(&self) -> u64 {
        self.buf.len() as u64
    }

    fn commit(mut self: Box<Self>) -> BoxFuture<'static, Result<Committed, StoreError>> {
        Box::pin(async move {
            let data = std::mem::take(&mut self.buf).freeze();
            let store = self.store.clone();
            let mut inner = store.lock();
            if matches!(inner.nodes.get(&self.key), Some(Node::Collection { .. })) {
                return Err(StoreError::Conflict {
                    path: self.key.clone(),
                    why: "a collection already has this name",
                });
            }
            let modified = SystemTime::now();
            let m = meta(&data, modified);
            let old = inner
                .nodes
                .insert(self.key.clone(), Node::Object { data, modified });
            if let Some(Node::Object { data, .. }) = &old {
                inner.used = inner.used.saturating_sub(data.len() as u64);
            }
            // The reservation now belongs to the published object.
            self.reserved = 0;
            Ok(Committed {
                replaced: old.is_some(),
                meta: m,
            })
        })
    }
}

impl Store for MemoryStore {
    fn begin_put<'a>(
        &'a self,
        key: &'a ObjectPath,
        parents: Parents,
    ) -> BoxFuture<'a, Result<Box<dyn StagedWrite>, StoreError>> {
        Box::pin(async move {
            let mut inner = self.lock();
            inner.check_parents(key, parents)?;
            if matches!(inner.nodes.get(key), Some(Node::Collection { .. })) {
                return Err(StoreError::Conflict {
                    path: key.clone(),
                    why: "a collection already has this name",
                });
            }
            let w: Box<dyn StagedWrite> = Box::new(MemWrite {
                store: self.clone(),
                key: key.clone(),
                buf: BytesMut::new(),
                reserved: 0,
            });
            Ok(w)
        })
    }

    fn stat<'a>(&'a self, key: &'a ObjectPath) -> BoxFuture<'a, Result<Option<Entry>, StoreError>> {
        Box::pin(async move {
            if key.is_root() {
                return Ok(Some(Entry::Collection {
                    explicit: false,
                    modified: SystemTime::UNIX_EPOCH,
                }));
            }
            Ok(self.lock().nodes.get(key).map(entry_of))
        })
    }

    fn get<'a>(
        &'a self,
        key: &'a ObjectPath,
        range: Option<Range<u64>>,
    ) -> BoxFuture<'a, Result<(ObjectMeta, ByteStream), StoreError>> {
        Box::pin(async move {
            let inner = self.lock();
            match inner.nodes.get(key) {
                Some(Node::Object { data, modified }) => {
                    let m = meta(data, *modified);
                    let r = clamp(range, m.size);
                    let (start, end) = (
                        usize::try_from(r.start).unwrap_or(0),
                        usize::try_from(r.end).unwrap_or(0),
                    );
                    let part = data.slice(start..end);
                    let stream: ByteStream = Box::pin(futures_util::stream::iter([Ok(part)]));
                    Ok((m, stream))
                }
                Some(Node::Collection { .. }) => Err(StoreError::Conflict {
                    path: key.clone(),
                    why: "this is a collection, not an object",
                }),
                None => Err(StoreError::NotFound(key.clone())),
            }
        })
    }

    fn delete<'a>(&'a self, key: &'a ObjectPath) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if key.is_root() {
                return Err(StoreError::Conflict {
                    path: key.clone(),
                    why: "the root cannot be deleted",
                });
            }
            let mut inner = self.lock();
            if !inner.nodes.contains_key(key) {
                return Err(StoreError::NotFound(key.clone()));
            }
            inner.remove_tree(key);
            Ok(())
        })
    }

    fn create_collection<'a>(
        &'a self,
        key: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut inner = self.lock();
            inner.check_parents(key, Parents::MustExist)?;
            if inner.nodes.contains_key(key) || key.is_root() {
                return Err(StoreError::AlreadyExists { path: key.clone() });
            }
            inner.nodes.insert(
                key.clone(),
                Node::Collection {
                    explicit: true,
                    modified: SystemTime::now(),
                },
            );
            Ok(())
        })
    }

    fn list<'a>(
        &'a self,
        key: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<Vec<(String, Entry)>, StoreError>> {
        Box::pin(async move {
            let inner = self.lock();
            if !inner.is_collection(key) {
                return Err(StoreError::NotFound(key.clone()));
            }
            let depth = key.segments().len() + 1;
            Ok(inner
                .nodes
                .iter()
                .filter(|(k, _)| k.segments().len() == depth && k.starts_with(key))
                .filter_map(|(k, n)| Some((k.file_name()?.to_owned(), entry_of(n))))
                .collect())
        })
    }

    fn copy<'a>(
        &'a self,
        from: &'a ObjectPath,
        to: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.transfer(from, to, false) })
    }

    fn link<'a>(
        &'a self,
        from: &'a ObjectPath,
        to: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut inner = self.lock();
            let Some(node @ Node::Object { .. }) = inner.nodes.get(from).cloned() else {
                return Err(StoreError::NotFound(from.clone()));
            };
            inner.check_parents(to, Parents::Create)?;
            inner.remove_tree(to);
            if let Node::Object { data, .. } = &node {
                inner.used += data.len() as u64;
            }
            inner.nodes.insert(to.clone(), node);
            Ok(())
        })
    }

    fn rename<'a>(
        &'a self,
        from: &'a ObjectPath,
        to: &'a ObjectPath,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.transfer(from, to, true) })
    }
}

impl MemoryStore {
    fn transfer(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        remove_source: bool,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if !inner.nodes.contains_key(from) {
            return Err(StoreError::NotFound(from.clone()));
        }
        inner.check_parents(to, Parents::MustExist)?;
        let moved: Vec<(ObjectPath, Node)> = inner
            .nodes
            .iter()
            .filter(|(k, _)| k.starts_with(from))
            .filter_map(|(k, n)| Some((to.join_path(&k.strip_prefix(from)?), n.clone())))
            .collect();
        if remove_source {
            inner.remove_tree(from);
        }
        inner.remove_tree(to);
        for (k, n) in moved {
            if let Node::Object { data, .. } = &n {
                inner.used += data.len() as u64;
            }
            inner.nodes.insert(k, n);
        }
        Ok(())
    }
}
