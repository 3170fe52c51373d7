//! Pinned output segments held in memory.
//!
//! Every player of a channel fetches the same few newest segments, and a
//! pinned segment never changes, so the output serves them from memory:
//! no blocking-pool hop, no file read per request. Eviction is
//! first-in-first-out by bytes, which for live output is least-recently
//! useful too; segments that left the window are removed when their pins
//! expire. A miss falls back to the store.

use std::collections::{BTreeMap, VecDeque};
use std::sync::RwLock;

use bytes::Bytes;
use tandem_core::ObjectPath;
use tandem_store::ObjectMeta;

/// Segments in memory, bounded in bytes.
#[derive(Debug)]
pub struct SegmentCache {
    capacity: u64,
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Ordered by path, so everything below a folder is one range.
    map: BTreeMap<ObjectPath, Entry>,
    /// Insertion order, for eviction. An entry whose generation no longer
    /// matches the map's was removed or replaced since, and is skipped.
    order: VecDeque<(ObjectPath, u64)>,
    bytes: u64,
    next_generation: u64,
}

#[derive(Debug)]
struct Entry {
    body: Bytes,
    meta: ObjectMeta,
    generation: u64,
}

impl SegmentCache {
    pub fn new(capacity: u64) -> Self {
        Self {
            capacity,
            inner: RwLock::default(),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, key: &ObjectPath) -> Option<(Bytes, ObjectMeta)> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map
            .get(key)
            .map(|e| (e.body.clone(), e.meta.clone()))
    }

    /// Keeps `body` under `key`, evicting the oldest entries to stay within
    /// the capacity. Bodies over a quarter of it are not kept.
    pub fn insert(&self, key: ObjectPath, body: Bytes, meta: ObjectMeta) {
        let size = body.len() as u64;
        if size > self.capacity / 4 {
            return;
        }
        let mut inner = self.write();
        let inner = &mut *inner;
        if let Some(old) = inner.map.remove(&key) {
            inner.bytes -= old.body.len() as u64;
        }
        while inner.bytes + size > self.capacity {
            let Some((old, generation)) = inner.order.pop_front() else {
                break;
            };
            if inner
                .map
                .get(&old)
                .is_some_and(|e| e.generation == generation)
                && let Some(e) = inner.map.remove(&old)
            {
                inner.bytes -= e.body.len() as u64;
            }
        }
        let generation = inner.next_generation;
        inner.next_generation += 1;
        inner.order.push_back((key.clone(), generation));
        inner.map.insert(
            key,
            Entry {
                body,
                meta,
                generation,
            },
        );
        inner.bytes += size;
        // Skipped entries must not pile up: at most twice the live ones.
        if inner.order.len() > 2 * inner.map.len() + 64 {
            let map = &inner.map;
            inner
                .order
                .retain(|(k, g)| map.get(k).is_some_and(|e| e.generation == *g));
        }
    }

    /// Drops every entry at or below `prefix` (an expired pin's folder):
    /// one range of the ordered map.
    pub fn remove_under(&self, prefix: &ObjectPath) {
        let mut inner = self.write();
        let doomed: Vec<ObjectPath> = inner
            .map
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            if let Some(e) = inner.map.remove(&k) {
                inner.bytes -= e.body.len() as u64;
            }
        }
    }

    pub fn bytes(&self) -> u64 {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn meta(n: u64) -> ObjectMeta {
        ObjectMeta {
            size: n,
            modified: SystemTime::UNIX_EPOCH,
            etag: "\"x\"".into(),
        }
    }

    fn key(s: &str) -> ObjectPath {
        ObjectPath::from_url_path(s).unwrap()
    }

    #[test]
    fn the_oldest_leave_first_and_the_byte_bound_holds() {
        let c = SegmentCache::new(100);
        for i in 0..5 {
            c.insert(
                key(&format!("l/{i}/s.ts")),
                Bytes::from(vec![0u8; 20]),
                meta(20),
            );
        }
        assert_eq!(c.bytes(), 100);
        c.insert(key("l/5/s.ts"), Bytes::from(vec![0u8; 20]), meta(20));
        assert_eq!(c.bytes(), 100);
        assert!(c.get(&key("l/0/s.ts")).is_none());
        assert!(c.get(&key("l/5/s.ts")).is_some());
        c.insert(key("big"), Bytes::from(vec![0u8; 26]), meta(26));
        assert!(
            c.get(&key("big")).is_none(),
            "over a quarter of the capacity is not cached"
        );
        c.remove_under(&key("l/5"));
        assert!(c.get(&key("l/5/s.ts")).is_none());
        assert_eq!(c.bytes(), 80);
        // Siblings that share a name prefix but not the folder stay.
        c.insert(key("l/50/s.ts"), Bytes::from(vec![0u8; 10]), meta(10));
        c.remove_under(&key("l/5"));
        assert!(c.get(&key("l/50/s.ts")).is_some());
        // A replaced entry counts once, and eviction after a removal does
        // not take the newer copy of a key early.
        c.insert(key("l/4/s.ts"), Bytes::from(vec![1u8; 20]), meta(20));
        assert_eq!(c.bytes(), 90);
        assert_eq!(c.get(&key("l/4/s.ts")).unwrap().0[0], 1);
        for i in 6..9 {
            c.insert(
                key(&format!("l/{i}/s.ts")),
                Bytes::from(vec![0u8; 20]),
                meta(20),
            );
        }
        assert!(c.bytes() <= 100);
        assert!(c.get(&key("l/8/s.ts")).is_some());
    }
}
