//! What only the local store has: chunked reads, staging on disk, file
//! system faults under the store's root, tmpfs detection and the clean-up
//! of a crashed run's uploads.

use std::path::Path;

use bytes::Bytes;
use futures_util::TryStreamExt;

use super::{LocalStore, READ_CHUNK, WHOLE_READ, WRITE_BATCH, on_memory_fs};
use crate::conformance::{key, put, read};
use crate::{Parents, Store, StoreError};

/// Local stores on disk and, where the machine has one, on tmpfs (where
/// small writes take the inline path).
fn stores() -> Vec<(tempfile::TempDir, LocalStore)> {
    let mut out = Vec::new();
    let disk = tempfile::tempdir().expect("tempdir");
    let s = LocalStore::open(disk.path()).expect("open");
    out.push((disk, s));
    if Path::new("/dev/shm").is_dir() {
        let shm = tempfile::tempdir_in("/dev/shm").expect("tempdir in /dev/shm");
        let s = LocalStore::open(shm.path()).expect("open");
        out.push((shm, s));
    }
    out
}

fn staged(root: &Path) -> usize {
    std::fs::read_dir(root.join("staging")).unwrap().count()
}

async fn chunk_sizes(s: &LocalStore, k: &str) -> Vec<usize> {
    let (_, st) = s.get(&key(k), None).await.unwrap();
    let chunks: Vec<Bytes> = st.try_collect().await.unwrap();
    chunks.iter().map(Bytes::len).collect()
}

#[tokio::test]
async fn an_object_up_to_4_mib_is_read_in_one_piece_and_a_larger_one_in_1_mib_pieces() {
    assert_eq!((WHOLE_READ, READ_CHUNK), (4 << 20, 1 << 20));
    for (_dir, s) in stores() {
        let whole = vec![3u8; 4 << 20];
        let mut w = s.begin_put(&key("4k.ts"), Parents::Create).await.unwrap();
        w.write(Bytes::from(whole)).await.unwrap();
        w.commit().await.unwrap();
        assert_eq!(chunk_sizes(&s, "4k.ts").await, [4 << 20]);

        let mut w = s.begin_put(&key("long.ts"), Parents::Create).await.unwrap();
        w.write(Bytes::from(vec![5u8; (4 << 20) + 1]))
            .await
            .unwrap();
        w.commit().await.unwrap();
        // A reader of a long object holds one 1 MiB piece at a time.
        assert_eq!(
            chunk_sizes(&s, "long.ts").await,
            [1 << 20, 1 << 20, 1 << 20, 1 << 20, 1]
        );
    }
}

#[tokio::test]
async fn a_body_stays_in_memory_up_to_one_batch_and_is_staged_past_it() {
    assert_eq!(WRITE_BATCH, 1 << 20);
    for (dir, s) in stores() {
        let mut w = s.begin_put(&key("a.ts"), Parents::Create).await.unwrap();
        w.write(Bytes::from(vec![1u8; (1 << 20) - 1]))
            .await
            .unwrap();
        assert_eq!(staged(dir.path()), 0, "a body under one batch is held");
        w.write(Bytes::from_static(b"2")).await.unwrap();
        assert_eq!(staged(dir.path()), 1, "one batch goes to a staged file");
        w.write(Bytes::from_static(b"3")).await.unwrap();
        w.commit().await.unwrap();
        assert_eq!(staged(dir.path()), 0, "the staged file became the object");
        let mut want = vec![1u8; (1 << 20) - 1];
        want.extend_from_slice(b"23");
        assert_eq!(read(&s, "a.ts").await, Some(want));
    }
}

#[tokio::test]
async fn a_key_the_file_system_cannot_resolve_is_an_error_not_absent() {
    // A symbolic link to itself under objects/: every lookup through it
    // fails with ELOOP, as a broken disk fails. Reporting that as "not
    // found" would answer 404 for an object that may exist, and let a PUT
    // or MKCOL go ahead over it.
    for (dir, s) in stores() {
        std::os::unix::fs::symlink("loop", dir.path().join("objects/loop")).unwrap();
        let is_io = |r: &StoreError| matches!(r, StoreError::Io { .. });
        let e = s.stat(&key("loop")).await.unwrap_err();
        assert!(is_io(&e), "stat: {e:?}");
        let e = s.get(&key("loop"), None).await.err().unwrap();
        assert!(is_io(&e), "get: {e:?}");
        let e = s.list(&key("loop")).await.unwrap_err();
        assert!(is_io(&e), "list: {e:?}");
        let e = s
            .begin_put(&key("loop/a.ts"), Parents::Create)
            .await
            .err()
            .unwrap();
        assert!(is_io(&e), "begin_put: {e:?}");
        put(&s, "p/1", b"one").await.unwrap();
        let e = s
            .concat(&[key("p/1"), key("loop")], &key("whole"))
            .await
            .unwrap_err();
        assert!(is_io(&e), "concat: {e:?}");
        assert_eq!(read(&s, "whole").await, None);
        assert_eq!(staged(dir.path()), 0, "the failed concat left nothing");
    }
}

#[test]
fn a_store_on_tmpfs_knows_it_and_one_elsewhere_does_not() {
    // procfs is held in memory but is not tmpfs: no store goes there.
    assert!(!on_memory_fs(Path::new("/proc")));
    assert!(!on_memory_fs(Path::new("/no/such/dir")));
    for (dir, s) in stores() {
        let shm = dir.path().starts_with("/dev/shm");
        if shm {
            assert!(on_memory_fs(dir.path()), "/dev/shm is not tmpfs");
        }
        // The disk store's directory is on tmpfs only where /tmp is.
        assert_eq!(s.in_memory(), on_memory_fs(dir.path()));
        if !shm && !on_memory_fs(&std::env::temp_dir()) {
            assert!(!s.in_memory(), "a store on disk fsyncs");
        }
    }
}

#[test]
fn open_reports_how_many_unfinished_uploads_it_discarded() {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Log {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let open_logged = |root: &Path| {
        let log = Log::default();
        let sink = log.clone();
        let sub = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(sub, || LocalStore::open(root).unwrap());
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter(|l| l.contains("discarded unfinished uploads"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let dir = tempfile::tempdir().unwrap();
    assert!(
        open_logged(dir.path()).is_empty(),
        "a fresh store lost nothing"
    );
    for name in ["a.part", "b.part", "c.link"] {
        std::fs::write(dir.path().join("staging").join(name), b"x").unwrap();
    }
    let lines = open_logged(dir.path());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("removed=3"), "{lines:?}");
    assert_eq!(staged(dir.path()), 0);
    assert!(
        open_logged(dir.path()).is_empty(),
        "nothing left the second time"
    );
}
