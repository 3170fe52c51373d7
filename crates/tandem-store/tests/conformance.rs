//! The disk store and the memory store answer the same calls with the
//! same kinds of error: code above the store (the HTTP dialects, the
//! output) maps kinds to statuses, and must not see `NotFound` from one
//! and an I/O error from the other for the same request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bytes::Bytes;
use tandem_core::ObjectPath;
use tandem_store::{LocalStore, MemoryStore, Parents, Store, StoreError};

fn key(s: &str) -> ObjectPath {
    ObjectPath::from_segments(s.split('/')).unwrap()
}

/// An error's kind, as callers tell them apart.
fn kind<T>(r: &Result<T, StoreError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(StoreError::NotFound(_)) => "not found",
        Err(StoreError::ParentMissing(_)) => "parent missing",
        Err(StoreError::AlreadyExists { .. }) => "already exists",
        Err(StoreError::Conflict { .. }) => "conflict",
        Err(StoreError::Full) => "full",
        Err(StoreError::Unwritable(_)) => "unwritable",
        Err(StoreError::Io { .. }) => "io",
        Err(_) => "other",
    }
}

async fn put(s: &dyn Store, k: &str, body: &'static [u8]) {
    let mut w = s.begin_put(&key(k), Parents::Create).await.unwrap();
    w.write(Bytes::from_static(body)).await.unwrap();
    w.commit().await.unwrap();
}

/// Each call the two stores must answer alike, with what it answered.
async fn answers(s: &dyn Store) -> Vec<(&'static str, &'static str)> {
    put(s, "c/a.ts", b"aaaa").await;
    put(s, "c/b.ts", b"bb").await;
    let mut out = Vec::new();
    out.push(("list an object", kind(&s.list(&key("c/a.ts")).await)));
    out.push((
        "list below an object",
        kind(&s.list(&key("c/a.ts/x")).await),
    ));
    out.push((
        "list an absent collection",
        kind(&s.list(&key("nope")).await),
    ));
    out.push((
        "get below an object",
        kind(&s.get(&key("c/a.ts/x"), None).await),
    ));
    out.push(("get a collection", kind(&s.get(&key("c"), None).await)));
    out.push((
        "stat below an object",
        match s.stat(&key("c/a.ts/x")).await {
            Ok(None) => "absent",
            other => kind(&other),
        },
    ));
    out.push((
        "delete below an object",
        kind(&s.delete(&key("c/a.ts/x")).await),
    ));
    out.push((
        "concat a part below an object",
        kind(
            &s.concat(&[key("c/a.ts"), key("c/a.ts/x")], &key("c/ab.ts"))
                .await,
        ),
    ));
    out.push((
        "concat a collection as a part",
        kind(&s.concat(&[key("c/a.ts"), key("c")], &key("c/ac.ts")).await),
    ));
    out.push((
        "concat into a key below an object",
        kind(&s.concat(&[key("c/a.ts")], &key("c/b.ts/x")).await),
    ));
    out.push((
        "rename from below an object",
        kind(&s.rename(&key("c/a.ts/x"), &key("c/z.ts")).await),
    ));
    out.push((
        "put below an object",
        kind(&s.begin_put(&key("c/a.ts/x"), Parents::Create).await),
    ));
    // Nothing a refused call touched changed.
    out.push((
        "failed concats left nothing",
        match (s.stat(&key("c/ab.ts")).await, s.stat(&key("c/ac.ts")).await) {
            (Ok(None), Ok(None)) => "nothing",
            _ => "something",
        },
    ));
    out
}

#[tokio::test]
async fn the_disk_and_memory_stores_answer_alike() {
    let dir = tempfile::tempdir().unwrap();
    let disk: Arc<dyn Store> = Arc::new(LocalStore::open(dir.path()).unwrap());
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (d, m) = (answers(disk.as_ref()).await, answers(memory.as_ref()).await);
    let differ: Vec<String> = d
        .iter()
        .zip(&m)
        .filter(|(a, b)| a != b)
        .map(|((what, disk), (_, memory))| format!("{what}: disk {disk}, memory {memory}"))
        .collect();
    assert!(
        differ.is_empty(),
        "the stores differ:\n{}",
        differ.join("\n")
    );
    // And what they agree on is what callers expect.
    let want = [
        ("list an object", "not found"),
        ("list below an object", "not found"),
        ("list an absent collection", "not found"),
        ("get below an object", "not found"),
        ("get a collection", "conflict"),
        ("stat below an object", "absent"),
        ("delete below an object", "not found"),
        ("concat a part below an object", "not found"),
        ("concat a collection as a part", "conflict"),
        ("concat into a key below an object", "conflict"),
        ("rename from below an object", "not found"),
        ("put below an object", "conflict"),
        ("failed concats left nothing", "nothing"),
    ];
    assert_eq!(d, want);
}
