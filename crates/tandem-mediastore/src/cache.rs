//! Objects read recently, kept in memory for GetObject.
//!
//! A live channel's players all read the segments its encoder has just
//! written. Reading each from the store cost an open, a read into a fresh
//! buffer and a close per GET: 60 % of a 200 KB GetObject's CPU time in the
//! benchmark (nginx answers with `sendfile`). The first GET of an object
//! after it is written reads it from the store and keeps it; the next ones
//! are served from here. PutObject only forgets the old version: keeping
//! its body would pin the HTTP layer's receive buffers, and an object
//! nobody reads would cost memory for nothing.
//!
//! The cache is bounded in bytes and evicts the oldest entry first. An
//! entry is served only while the store's validator of the object still
//! matches the one its bytes were read under (the caller checks it with
//! one `stat`), so a write that raced past the cache, or a change made
//! behind it, is never served stale.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tandem_core::ObjectPath;

/// One cached object: its bytes, and the validator they belong to.
#[derive(Debug)]
pub struct Cached<I> {
    /// The store's etag of the committed bytes.
    pub store_etag: String,
    pub info: I,
    pub chunks: Vec<Bytes>,
    generation: u64,
}

#[derive(Debug)]
struct State<I> {
    map: HashMap<ObjectPath, Arc<Cached<I>>>,
    /// Keys in insertion order, with the generation inserted; an entry
    /// whose generation no longer matches the map's was replaced since.
    order: VecDeque<(ObjectPath, u64)>,
    bytes: usize,
    next_generation: u64,
}

/// Objects by store key, up to a byte budget.
#[derive(Debug)]
pub struct ObjectCache<I> {
    state: Mutex<State<I>>,
    budget: usize,
}

fn len_of(chunks: &[Bytes]) -> usize {
    chunks.iter().map(Bytes::len).sum()
}

impl<I> ObjectCache<I> {
    /// A cache of at most `budget` bytes of object data (0: none kept).
    pub fn new(budget: usize) -> Self {
        Self {
            state: Mutex::new(State {
                map: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
                next_generation: 0,
            }),
            budget,
        }
    }

    fn state(&self) -> MutexGuard<'_, State<I>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether an object of `size` bytes would be kept (an eighth of the
    /// budget at most, so one upload cannot empty the cache).
    pub fn would_keep(&self, size: u64) -> bool {
        size <= (self.budget / 8) as u64
    }

    /// Keeps `chunks` as the object at `key`, replacing what was kept.
    pub fn insert(&self, key: ObjectPath, store_etag: String, info: I, chunks: Vec<Bytes>) {
        let size = len_of(&chunks);
        if !self.would_keep(size as u64) {
            self.remove(&key);
            return;
        }
        let mut st = self.state();
        let generation = st.next_generation;
        st.next_generation += 1;
        let entry = Arc::new(Cached {
            store_etag,
            info,
            chunks,
            generation,
        });
        if let Some(old) = st.map.insert(key.clone(), entry) {
            st.bytes -= len_of(&old.chunks);
        }
        st.bytes += size;
        st.order.push_back((key, generation));
        while st.bytes > self.budget {
            let Some((k, g)) = st.order.pop_front() else {
                break;
            };
            if st.map.get(&k).is_some_and(|e| e.generation == g)
                && let Some(old) = st.map.remove(&k)
            {
                st.bytes -= len_of(&old.chunks);
            }
        }
        // Keys written again and again (playlists) leave replaced entries
        // in the order; drop them before they outnumber the live ones.
        if st.order.len() > 2 * st.map.len() + 64 {
            let State { map, order, .. } = &mut *st;
            order.retain(|(k, g)| map.get(k).is_some_and(|e| e.generation == *g));
        }
    }

    /// The object kept at `key`, if any.
    pub fn get(&self, key: &ObjectPath) -> Option<Arc<Cached<I>>> {
        self.state().map.get(key).cloned()
    }

    /// Forgets `key`.
    pub fn remove(&self, key: &ObjectPath) {
        let mut st = self.state();
        if let Some(old) = st.map.remove(key) {
            st.bytes -= len_of(&old.chunks);
        }
    }

    /// Bytes of object data kept.
    pub fn bytes(&self) -> usize {
        self.state().bytes
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(s: &str) -> ObjectPath {
        ObjectPath::from_segments([s]).unwrap()
    }

    fn body(n: usize) -> Vec<Bytes> {
        vec![
            Bytes::from(vec![7u8; n / 2]),
            Bytes::from(vec![8u8; n - n / 2]),
        ]
    }

    #[test]
    fn the_oldest_write_goes_first_and_the_budget_holds() {
        let c = ObjectCache::new(800);
        c.insert(key("a"), "ea".into(), (), body(100));
        c.insert(key("b"), "eb".into(), (), body(100));
        // Rewriting a keeps one copy of it and makes it the newest.
        c.insert(key("a"), "ea2".into(), (), body(100));
        assert_eq!(c.bytes(), 200);
        for k in ["c", "d", "e", "f", "g", "h"] {
            c.insert(key(k), format!("e{k}"), (), body(100));
        }
        assert_eq!(c.bytes(), 800);
        c.insert(key("i"), "ei".into(), (), body(100));
        assert!(c.get(&key("b")).is_none(), "the oldest write is evicted");
        assert_eq!(c.get(&key("a")).unwrap().store_etag, "ea2");
        assert!(c.bytes() <= 800);
        c.remove(&key("a"));
        assert!(c.get(&key("a")).is_none());
        assert_eq!(c.bytes(), 700);
    }

    #[test]
    fn objects_over_an_eighth_of_the_budget_are_not_kept_and_drop_an_older_copy() {
        let c = ObjectCache::new(800);
        c.insert(key("a"), "e1".into(), (), body(100));
        c.insert(key("a"), "e2".into(), (), body(101));
        assert!(c.get(&key("a")).is_none());
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn rewriting_one_key_does_not_grow_the_order_without_bound() {
        let c = ObjectCache::new(800);
        for i in 0..10_000 {
            c.insert(key("playlist"), format!("e{i}"), (), body(10));
        }
        assert!(c.state().order.len() <= 2 + 64 + 1);
        assert_eq!(c.bytes(), 10);
    }
}
