//! Pinned output segments held in memory.
//!
//! Every player of a channel fetches the same few newest segments, and a
//! pinned segment never changes, so the output serves them from memory:
//! no blocking-pool hop, no file read per request. Eviction is
//! first-in-first-out by bytes, which for live output is least-recently
//! useful too; segments that left the window are removed when their pins
//! expire. A miss falls back to the store.

use std::collections::{HashMap, VecDeque};
use std::sync::RwLock;

use bytes::Bytes;
use tandem_core::ObjectPath;
use tandem_store::ObjectMeta;

/// A bounded cache of immutable objects.
#[derive(Debug)]
pub struct SegmentCache {
    capacity: u64,
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<ObjectPath, (Bytes, ObjectMeta)>,
    order: VecDeque<ObjectPath>,
    bytes: u64,
}

impl SegmentCache {
    pub fn new(capacity: u64) -> Self {
        Self {
            capacity,
            inner: RwLock::default(),
        }
    }

    pub fn get(&self, key: &ObjectPath) -> Option<(Bytes, ObjectMeta)> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map
            .get(key)
            .cloned()
    }

    /// Adds an object, evicting the oldest until it fits. Objects larger
    /// than a quarter of the capacity are not cached.
    pub fn insert(&self, key: ObjectPath, body: Bytes, meta: ObjectMeta) {
        let size = body.len() as u64;
        if size > self.capacity / 4 {
            return;
        }
        let mut inner = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while inner.bytes + size > self.capacity {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some((b, _)) = inner.map.remove(&old) {
                inner.bytes -= b.len() as u64;
            }
        }
        if let Some((b, _)) = inner.map.insert(key.clone(), (body, meta)) {
            inner.bytes -= b.len() as u64;
        } else {
            inner.order.push_back(key);
        }
        inner.bytes += size;
    }

    /// Drops every object under `prefix` (a segment's pin folder).
    pub fn remove_under(&self, prefix: &ObjectPath) {
        let mut inner = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let doomed: Vec<ObjectPath> = inner
            .map
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        for k in &doomed {
            if let Some((b, _)) = inner.map.remove(k) {
                inner.bytes -= b.len() as u64;
            }
        }
        inner.order.retain(|k| !doomed.contains(k));
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
    }
}
