//! One contract, two stores: every test here runs against the local and the
//! memory store.

use bytes::Bytes;
use futures_util::TryStreamExt;
use tandem_core::ObjectPath;

use crate::{Entry, LocalStore, MemoryStore, Parents, Store, StoreError};

pub(crate) fn key(s: &str) -> ObjectPath {
    ObjectPath::from_url_path(s).expect("test keys are valid")
}

pub(crate) async fn put(
    store: &dyn Store,
    k: &str,
    body: &'static [u8],
) -> Result<bool, StoreError> {
    let mut w = store.begin_put(&key(k), Parents::Create).await?;
    w.write(Bytes::from_static(body)).await?;
    Ok(w.commit().await?.replaced)
}

pub(crate) async fn read(store: &dyn Store, k: &str) -> Option<Vec<u8>> {
    let (_, s) = store.get(&key(k), None).await.ok()?;
    let chunks: Vec<Bytes> = s.try_collect().await.ok()?;
    Some(chunks.concat())
}

async fn each_store(test: impl AsyncFn(&dyn Store)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = LocalStore::open(dir.path()).expect("open");
    test(&local).await;
    // On tmpfs, small writes take the inline path without fsync.
    if std::path::Path::new("/dev/shm").is_dir() {
        let shm = tempfile::tempdir_in("/dev/shm").expect("tempdir in /dev/shm");
        let local = LocalStore::open(shm.path()).expect("open");
        assert!(local.in_memory(), "/dev/shm is not tmpfs");
        test(&local).await;
    }
    test(&MemoryStore::new()).await;
}

#[tokio::test]
async fn an_object_is_invisible_until_commit() {
    each_store(async |s| {
        let mut w = s
            .begin_put(&key("live/a.ts"), Parents::Create)
            .await
            .unwrap();
        w.write(Bytes::from_static(b"half")).await.unwrap();
        assert_eq!(read(s, "live/a.ts").await, None);
        assert!(s.stat(&key("live/a.ts")).await.unwrap().is_none());
        let c = w.commit().await.unwrap();
        assert!(!c.replaced);
        assert_eq!(c.meta.size, 4);
        assert_eq!(read(s, "live/a.ts").await.as_deref(), Some(&b"half"[..]));
    })
    .await;
}

#[tokio::test]
async fn a_dropped_upload_keeps_the_previous_version() {
    each_store(async |s| {
        assert!(!put(s, "a.m3u8", b"v1").await.unwrap());
        let mut w = s.begin_put(&key("a.m3u8"), Parents::Create).await.unwrap();
        // Past one in-memory batch: the local store has a staged file now.
        w.write(Bytes::from(vec![7u8; 3_000_000])).await.unwrap();
        drop(w);
        assert_eq!(read(s, "a.m3u8").await.as_deref(), Some(&b"v1"[..]));
        assert!(
            put(s, "a.m3u8", b"v2").await.unwrap(),
            "second commit replaces"
        );
        assert_eq!(read(s, "a.m3u8").await.as_deref(), Some(&b"v2"[..]));
    })
    .await;
}

#[tokio::test]
async fn ranges_are_clamped_to_the_object() {
    each_store(async |s| {
        put(s, "r.ts", b"0123456789").await.unwrap();
        let (m, st) = s.get(&key("r.ts"), Some(2..5)).await.unwrap();
        assert_eq!(m.size, 10);
        assert_eq!(st.try_collect::<Vec<_>>().await.unwrap().concat(), b"234");
        let (_, st) = s.get(&key("r.ts"), Some(8..50)).await.unwrap();
        assert_eq!(st.try_collect::<Vec<_>>().await.unwrap().concat(), b"89");
    })
    .await;
}

#[tokio::test]
async fn collections_are_explicit_or_implicit_and_list_their_children() {
    each_store(async |s| {
        put(s, "live/a.ts", b"a").await.unwrap();
        s.create_collection(&key("dav")).await.unwrap();
        assert!(matches!(
            s.stat(&key("live")).await.unwrap(),
            Some(Entry::Collection {
                explicit: false,
                ..
            })
        ));
        assert!(matches!(
            s.stat(&key("dav")).await.unwrap(),
            Some(Entry::Collection { explicit: true, .. })
        ));
        assert!(matches!(
            s.create_collection(&key("dav")).await,
            Err(StoreError::AlreadyExists { .. })
        ));
        assert!(matches!(
            s.create_collection(&key("x/y")).await,
            Err(StoreError::ParentMissing(_))
        ));
        let names: Vec<String> = s
            .list(&ObjectPath::root())
            .await
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["dav", "live"]);
        let names: Vec<String> = s
            .list(&key("live"))
            .await
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["a.ts"]);
    })
    .await;
}

#[tokio::test]
async fn must_exist_refuses_a_missing_parent_before_any_byte() {
    each_store(async |s| {
        assert!(matches!(
            s.begin_put(&key("no/parent.txt"), Parents::MustExist).await,
            Err(StoreError::ParentMissing(_))
        ));
        assert_eq!(s.stat(&key("no")).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn an_object_cannot_stand_in_for_a_collection() {
    each_store(async |s| {
        put(s, "f", b"x").await.unwrap();
        assert!(matches!(
            s.begin_put(&key("f/g"), Parents::Create).await,
            Err(StoreError::Conflict { .. })
        ));
        assert_eq!(s.stat(&key("f/g")).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn delete_removes_objects_and_trees() {
    each_store(async |s| {
        put(s, "d/a", b"a").await.unwrap();
        put(s, "d/e/b", b"b").await.unwrap();
        s.delete(&key("d/a")).await.unwrap();
        assert_eq!(read(s, "d/a").await, None);
        s.delete(&key("d")).await.unwrap();
        assert_eq!(s.stat(&key("d/e/b")).await.unwrap(), None);
        assert!(matches!(
            s.delete(&key("d")).await,
            Err(StoreError::NotFound(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn copy_and_rename_move_whole_trees() {
    each_store(async |s| {
        put(s, "src/a", b"a").await.unwrap();
        put(s, "src/sub/b", b"b").await.unwrap();
        s.copy(&key("src"), &key("dst")).await.unwrap();
        assert_eq!(read(s, "dst/sub/b").await.as_deref(), Some(&b"b"[..]));
        assert_eq!(read(s, "src/a").await.as_deref(), Some(&b"a"[..]));
        s.rename(&key("src"), &key("moved")).await.unwrap();
        assert_eq!(s.stat(&key("src")).await.unwrap(), None);
        assert_eq!(read(s, "moved/sub/b").await.as_deref(), Some(&b"b"[..]));
        assert!(matches!(
            s.copy(&key("moved"), &key("no/where")).await,
            Err(StoreError::ParentMissing(_))
        ));
        put(s, "plain", b"p").await.unwrap();
        s.rename(&key("moved"), &key("plain")).await.unwrap();
        assert_eq!(read(s, "plain/sub/b").await.as_deref(), Some(&b"b"[..]));
        put(s, "f2", b"f").await.unwrap();
        s.rename(&key("f2"), &key("plain")).await.unwrap();
        assert_eq!(read(s, "plain").await.as_deref(), Some(&b"f"[..]));
    })
    .await;
}

#[tokio::test]
async fn memory_store_reports_full_and_frees_a_dropped_upload() {
    let s = MemoryStore::with_capacity(10);
    let mut w = s.begin_put(&key("a"), Parents::Create).await.unwrap();
    w.write(Bytes::from_static(b"12345678")).await.unwrap();
    assert!(matches!(
        w.write(Bytes::from_static(b"abc")).await,
        Err(StoreError::Full)
    ));
    drop(w);
    assert_eq!(read(&s, "a").await, None);
    put(&s, "b", b"0123456789").await.unwrap();
}

#[tokio::test]
async fn local_store_discards_staged_leftovers_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::open(dir.path()).unwrap();
    put(&s, "kept.ts", b"whole").await.unwrap();
    let mut w = s.begin_put(&key("lost.ts"), Parents::Create).await.unwrap();
    // Past one in-memory batch, so the upload is staged on disk.
    w.write(Bytes::from(vec![1u8; 3_000_000])).await.unwrap();
    // Simulate a crash: the upload is never committed nor dropped.
    std::mem::forget(w);
    assert_eq!(
        std::fs::read_dir(dir.path().join("staging"))
            .unwrap()
            .count(),
        1
    );
    let s = LocalStore::open(dir.path()).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("staging"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(read(&s, "kept.ts").await.as_deref(), Some(&b"whole"[..]));
    assert_eq!(read(&s, "lost.ts").await, None);
}

#[tokio::test]
async fn a_link_keeps_its_bytes_when_the_source_is_replaced_or_deleted() {
    each_store(async |s| {
        put(s, "in/a.ts", b"first").await.unwrap();
        s.link(&key("in/a.ts"), &key("out/live/7/a.ts"))
            .await
            .unwrap();
        put(s, "in/a.ts", b"second").await.unwrap();
        assert_eq!(
            read(s, "out/live/7/a.ts").await.as_deref(),
            Some(&b"first"[..])
        );
        s.delete(&key("in/a.ts")).await.unwrap();
        assert_eq!(
            read(s, "out/live/7/a.ts").await.as_deref(),
            Some(&b"first"[..])
        );
        assert!(matches!(
            s.link(&key("in/a.ts"), &key("out/x")).await,
            Err(StoreError::NotFound(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn create_outside_explicit_refuses_only_inside_made_collections() {
    each_store(async |s| {
        let policy = || Parents::CreateOutsideExplicit { root: key("ch/0") };
        s.create_collection(&key("ch")).await.unwrap();
        s.create_collection(&key("ch/0")).await.unwrap();
        // Below the (explicit) root itself: folders are created.
        let w = s
            .begin_put(&key("ch/0/live/hd/a.ts"), policy())
            .await
            .unwrap();
        w.commit().await.unwrap();
        // Inside a collection made on purpose: the parent must exist.
        s.create_collection(&key("ch/0/dav")).await.unwrap();
        assert!(matches!(
            s.begin_put(&key("ch/0/dav/x/a.ts"), policy()).await,
            Err(StoreError::ParentMissing(_))
        ));
        assert!(s.begin_put(&key("ch/0/dav/a.ts"), policy()).await.is_ok());
        // An implicit folder below it does not make the rule strict again.
        assert!(
            s.begin_put(&key("ch/0/live/new/b.ts"), policy())
                .await
                .is_ok()
        );
    })
    .await;
}

#[tokio::test]
async fn concat_publishes_the_parts_in_order_or_nothing() {
    each_store(async |s| {
        put(s, "up/1", b"alpha-").await.unwrap();
        put(s, "up/2", b"beta-").await.unwrap();
        put(s, "up/3", b"gamma").await.unwrap();
        put(s, "b/obj.ts", b"v1").await.unwrap();
        let parts = [key("up/1"), key("up/2"), key("up/3")];
        let c = s.concat(&parts, &key("b/obj.ts")).await.unwrap();
        assert!(c.replaced);
        assert_eq!(c.meta.size, 16);
        assert_eq!(
            read(s, "b/obj.ts").await.as_deref(),
            Some(&b"alpha-beta-gamma"[..])
        );
        // A missing part: an error, and the previous version stays.
        let parts = [key("up/1"), key("up/none")];
        assert!(matches!(
            s.concat(&parts, &key("b/obj.ts")).await,
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(
            read(s, "b/obj.ts").await.as_deref(),
            Some(&b"alpha-beta-gamma"[..])
        );
        // New folders are created for the target.
        s.concat(&[key("up/3")], &key("new/dir/x")).await.unwrap();
        assert_eq!(read(s, "new/dir/x").await.as_deref(), Some(&b"gamma"[..]));
    })
    .await;
}

#[tokio::test]
async fn a_staged_write_counts_what_it_was_given() {
    each_store(async |s| {
        let mut w = s.begin_put(&key("a.ts"), Parents::Create).await.unwrap();
        assert_eq!(w.written(), 0);
        w.write(Bytes::from_static(b"abc")).await.unwrap();
        w.write(Bytes::from(vec![7u8; 2 * 1024 * 1024]))
            .await
            .unwrap();
        assert_eq!(w.written(), 3 + 2 * 1024 * 1024);
    })
    .await;
}

#[tokio::test]
async fn an_upload_dropped_after_it_spilled_to_disk_leaves_no_staged_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = LocalStore::open(dir.path()).expect("open");
    let staged = || {
        std::fs::read_dir(dir.path().join("staging"))
            .unwrap()
            .count()
    };
    let mut w = s.begin_put(&key("big.ts"), Parents::Create).await.unwrap();
    // Past one batch, the body goes to a staged file.
    w.write(Bytes::from(vec![1u8; 3 * 1024 * 1024]))
        .await
        .unwrap();
    assert_eq!(staged(), 1, "the body spilled to a staged file");
    drop(w);
    assert_eq!(staged(), 0, "dropping the upload removes it");
    assert!(s.stat(&key("big.ts")).await.unwrap().is_none());
    // A leftover from a crash is removed when the store opens.
    std::fs::write(dir.path().join("staging").join("leftover"), b"x").unwrap();
    let _again = LocalStore::open(dir.path()).expect("open");
    assert_eq!(staged(), 0);
}

#[tokio::test]
async fn a_linked_object_counts_against_the_memory_store_s_capacity() {
    let s = MemoryStore::with_capacity(10);
    put(&s, "a", b"123456").await.unwrap();
    assert!(matches!(s.link(&key("a"), &key("b")).await, Ok(())));
    // 12 of 10 bytes used: the next write is refused as full.
    let mut w = s.begin_put(&key("c"), Parents::Create).await.unwrap();
    assert!(matches!(
        w.write(Bytes::from_static(b"1")).await,
        Err(StoreError::Full)
    ));
}

#[test]
fn io_errors_that_an_operator_fixes_are_classified() {
    use std::io;
    let full = StoreError::from_io("write", "k", io::Error::from_raw_os_error(28));
    assert!(matches!(full, StoreError::Full), "{full:?}");
    let quota = StoreError::from_io("write", "k", io::Error::from_raw_os_error(122));
    assert!(matches!(quota, StoreError::Full), "{quota:?}");
    let ro = StoreError::from_io("write", "k", io::Error::from_raw_os_error(30));
    assert!(matches!(ro, StoreError::Unwritable(_)), "{ro:?}");
    // A full disk that the platform reports by kind alone (no errno).
    let kind_full = StoreError::from_io("write", "k", io::Error::from(io::ErrorKind::StorageFull));
    assert!(matches!(kind_full, StoreError::Full), "{kind_full:?}");
    let denied = StoreError::from_io(
        "write",
        "k",
        io::Error::from(io::ErrorKind::PermissionDenied),
    );
    assert!(matches!(denied, StoreError::Unwritable(_)), "{denied:?}");
    let other = StoreError::from_io("write", "k", io::Error::from(io::ErrorKind::InvalidData));
    assert!(
        matches!(other, StoreError::Io { op: "write", .. }),
        "{other:?}"
    );
}

#[test]
fn an_etag_changes_with_size_and_time() {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(0x1234);
    assert_eq!(crate::etag_for(0x10, t), "\"1234-10\"");
    assert_ne!(crate::etag_for(0x10, t), crate::etag_for(0x11, t));
}

#[tokio::test]
async fn a_missing_key_and_a_key_below_an_object_are_not_found() {
    each_store(async |s| {
        put(s, "f", b"x").await.unwrap();
        for k in ["nothing.ts", "f/g", "no/such/dir/a.ts"] {
            assert!(
                matches!(s.get(&key(k), None).await, Err(StoreError::NotFound(_))),
                "get {k}"
            );
        }
        assert!(matches!(
            s.list(&key("no-such-collection")).await,
            Err(StoreError::NotFound(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn a_commit_refuses_when_a_collection_took_the_key_meanwhile() {
    each_store(async |s| {
        let mut w = s.begin_put(&key("x"), Parents::Create).await.unwrap();
        w.write(Bytes::from_static(b"late")).await.unwrap();
        // Another client makes `x` a collection while the body arrives.
        put(s, "x/inner", b"kept").await.unwrap();
        assert!(matches!(w.commit().await, Err(StoreError::Conflict { .. })));
        assert!(matches!(
            s.stat(&key("x")).await.unwrap(),
            Some(Entry::Collection { .. })
        ));
        assert_eq!(read(s, "x/inner").await.as_deref(), Some(&b"kept"[..]));
    })
    .await;
}

#[tokio::test]
async fn an_object_is_no_parent_for_collections_copies_or_moves() {
    each_store(async |s| {
        put(s, "f", b"x").await.unwrap();
        put(s, "src", b"s").await.unwrap();
        assert!(matches!(
            s.create_collection(&key("f/c")).await,
            Err(StoreError::Conflict { .. })
        ));
        assert!(matches!(
            s.copy(&key("src"), &key("f/c")).await,
            Err(StoreError::Conflict { .. })
        ));
        assert!(matches!(
            s.rename(&key("src"), &key("f/c")).await,
            Err(StoreError::Conflict { .. })
        ));
        assert_eq!(read(s, "f").await.as_deref(), Some(&b"x"[..]));
        assert_eq!(read(s, "src").await.as_deref(), Some(&b"s"[..]));
    })
    .await;
}

#[tokio::test]
async fn two_uploads_in_progress_at_once_each_publish_their_own_body() {
    each_store(async |s| {
        // Each body outgrows one in-memory batch, so both are staged at the
        // same time.
        let (a, b) = (vec![b'a'; 1_500_000], vec![b'b'; 1_600_000]);
        let mut wa = s.begin_put(&key("a.ts"), Parents::Create).await.unwrap();
        let mut wb = s.begin_put(&key("b.ts"), Parents::Create).await.unwrap();
        wa.write(Bytes::from(a.clone())).await.unwrap();
        wb.write(Bytes::from(b.clone())).await.unwrap();
        wb.commit().await.unwrap();
        wa.commit().await.unwrap();
        assert_eq!(read(s, "a.ts").await, Some(a));
        assert_eq!(read(s, "b.ts").await, Some(b));
    })
    .await;
}

#[tokio::test]
async fn an_object_larger_than_one_read_comes_back_whole_and_in_range() {
    each_store(async |s| {
        // Past the size that the local store reads in one piece: it streams.
        let body: Vec<u8> = (0..5 * 1024 * 1024 + 3).map(|i| (i % 251) as u8).collect();
        let mut w = s.begin_put(&key("big.ts"), Parents::Create).await.unwrap();
        w.write(Bytes::from(body.clone())).await.unwrap();
        w.commit().await.unwrap();
        assert_eq!(read(s, "big.ts").await.as_deref(), Some(&body[..]));
        let (m, st) = s
            .get(&key("big.ts"), Some(1..body.len() as u64 - 1))
            .await
            .unwrap();
        assert_eq!(m.size, body.len() as u64);
        let got = st.try_collect::<Vec<_>>().await.unwrap().concat();
        assert_eq!(got, body[1..body.len() - 1]);
        // A range past the end is clamped to the object.
        let (_, st) = s
            .get(&key("big.ts"), Some(5 * 1024 * 1024..u64::MAX))
            .await
            .unwrap();
        let got = st.try_collect::<Vec<_>>().await.unwrap().concat();
        assert_eq!(got, body[5 * 1024 * 1024..]);
    })
    .await;
}

#[tokio::test]
async fn a_memory_store_holds_exactly_its_capacity() {
    let s = MemoryStore::with_capacity(10);
    put(&s, "a", b"123456").await.unwrap();
    let mut w = s.begin_put(&key("b"), Parents::Create).await.unwrap();
    w.write(Bytes::from_static(b"78")).await.unwrap();
    w.write(Bytes::from_static(b"90")).await.unwrap();
    w.commit().await.unwrap();
    let mut w = s.begin_put(&key("c"), Parents::Create).await.unwrap();
    assert!(matches!(
        w.write(Bytes::from_static(b"!")).await,
        Err(StoreError::Full)
    ));
}

#[tokio::test]
async fn links_and_copies_count_once_per_copy_and_a_move_counts_once() {
    // 6 bytes, then a second copy of them: 8 of 20 bytes are left.
    for how in ["link", "copy"] {
        let s = MemoryStore::with_capacity(20);
        put(&s, "a", b"123456").await.unwrap();
        match how {
            "link" => s.link(&key("a"), &key("b")).await.unwrap(),
            _ => s.copy(&key("a"), &key("b")).await.unwrap(),
        }
        let mut w = s.begin_put(&key("c"), Parents::Create).await.unwrap();
        w.write(Bytes::from_static(b"12345678")).await.unwrap();
        assert!(
            matches!(
                w.write(Bytes::from_static(b"!")).await,
                Err(StoreError::Full)
            ),
            "{how}"
        );
    }
    // A move keeps the one copy it had: 4 of 10 bytes are left.
    let s = MemoryStore::with_capacity(10);
    put(&s, "a", b"123456").await.unwrap();
    s.rename(&key("a"), &key("b")).await.unwrap();
    let mut w = s.begin_put(&key("c"), Parents::Create).await.unwrap();
    w.write(Bytes::from_static(b"1234")).await.unwrap();
    assert!(matches!(
        w.write(Bytes::from_static(b"!")).await,
        Err(StoreError::Full)
    ));
}

#[test]
fn a_publish_hook_hands_each_published_key_and_size_to_its_function() {
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<(ObjectPath, u64)>>> = Arc::default();
    let sink = seen.clone();
    let hook = crate::PublishHook::new(move |k, n| sink.lock().unwrap().push((k.clone(), n)));
    // Dialects hold clones of one hook: each reaches the same function.
    let clone = hook.clone();
    hook.published(&key("b/one.ts"), 188);
    clone.published(&key("b/two.ts"), 376);
    assert_eq!(
        *seen.lock().unwrap(),
        [(key("b/one.ts"), 188), (key("b/two.ts"), 376)]
    );
}
