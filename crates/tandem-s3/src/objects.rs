//! How S3 buckets, keys, metadata and uploads map onto `tandem-store`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use md5::{Digest, Md5};
use s3s::checksum::ChecksumHasher;
use s3s::dto::{Checksum, ChecksumAlgorithm};
use s3s::{S3Error, S3Result, s3_error};
use serde::{Deserialize, Serialize};
use tandem_core::ObjectPath;
use tandem_store::{Entry, Parents, StagedWrite, Store, StoreError};

/// Top-level collections; a `.` keeps them apart from channel ids.
pub(crate) const BUCKETS: &str = "s3.buckets";
pub(crate) const META: &str = "s3.meta";
pub(crate) const UPLOADS: &str = "s3.uploads";

/// The largest single PutObject or part, as in S3.
pub(crate) const MAX_PUT: u64 = 5 * 1024 * 1024 * 1024;

/// Maps a store error to the S3 error a client understands.
pub(crate) fn store_err(e: StoreError) -> S3Error {
    match e {
        StoreError::NotFound(_) => s3_error!(NoSuchKey),
        StoreError::Conflict { path, why } => s3_error!(
            InvalidArgument,
            "Key conflicts with another object ({path}: {why}): Tandem stores keys as files, \
             so 'a' and 'a/b' cannot both exist"
        ),
        StoreError::ParentMissing(p) | StoreError::AlreadyExists { path: p } => s3_error!(
            InvalidArgument,
            "Key conflicts with an existing object or prefix at {p}"
        ),
        StoreError::Full => s3_error!(ServiceUnavailable, "Storage is full"),
        other => {
            tracing::error!(error = %other, "S3 storage operation failed");
            s3_error!(InternalError, "Storage error")
        }
    }
}

/// Validates a bucket name's path form (s3s already checked S3's rules).
pub(crate) fn bucket_path(bucket: &str) -> S3Result<ObjectPath> {
    ObjectPath::from_segments([BUCKETS, bucket]).map_err(|e| s3_error!(InvalidBucketName, "{e}"))
}

/// The store path of an object, refusing keys that cannot be a file path:
/// `..` and `.` segments, control characters, empty segments (`a//b`,
/// a leading `/`, a trailing `/`).
pub(crate) fn key_segments(key: &str) -> S3Result<Vec<String>> {
    if key.is_empty() {
        return Err(s3_error!(InvalidArgument, "Object key is empty"));
    }
    if key.len() > 1024 {
        return Err(s3_error!(
            KeyTooLongError,
            "Object keys are at most 1024 bytes"
        ));
    }
    let segs: Vec<String> = key.split('/').map(str::to_owned).collect();
    // Validate the segments alone, so the message names the key's part.
    ObjectPath::from_segments(segs.iter().cloned()).map_err(|e| {
        s3_error!(
            InvalidArgument,
            "Object key {key:?} is not accepted: {e} (keys ending in '/' and '..' segments \
             are refused)"
        )
    })?;
    Ok(segs)
}

fn under(top: &str, bucket: &str, segs: &[String]) -> S3Result<ObjectPath> {
    let mut all = vec![top.to_owned(), bucket.to_owned()];
    all.extend(segs.iter().cloned());
    ObjectPath::from_segments(all).map_err(|e| s3_error!(InvalidArgument, "{e}"))
}

/// Where an object's bytes and its metadata live.
#[derive(Debug, Clone)]
pub(crate) struct ObjectPaths {
    pub data: ObjectPath,
    pub meta: ObjectPath,
}

pub(crate) fn object_paths(bucket: &str, key: &str) -> S3Result<ObjectPaths> {
    let segs = key_segments(key)?;
    Ok(ObjectPaths {
        data: under(BUCKETS, bucket, &segs)?,
        meta: under(META, bucket, &segs)?,
    })
}

/// The metadata S3 keeps with an object.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct ObjectInfo {
    /// Hex MD5 of the body, or of the parts' MD5s with `-N` (multipart).
    pub etag: String,
    pub size: u64,
    /// The store's validator of the bytes this record describes: a record
    /// whose bytes were replaced since (a crash between the two commits)
    /// is ignored.
    pub store_etag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub checksums: Checksums,
}

/// Base64 checksums, as S3 returns them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Checksums {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64nvme: Option<String>,
}

impl From<Checksum> for Checksums {
    fn from(c: Checksum) -> Self {
        Self {
            crc32: c.checksum_crc32,
            crc32c: c.checksum_crc32c,
            sha1: c.checksum_sha1,
            sha256: c.checksum_sha256,
            crc64nvme: c.checksum_crc64nvme,
        }
    }
}

/// Checksums the client announced (headers, or aws-chunked trailers).
#[derive(Debug, Default, Clone)]
pub(crate) struct Expected {
    pub content_md5: Option<String>,
    pub checksums: Checksums,
    pub algorithm: Option<ChecksumAlgorithm>,
    pub content_length: Option<i64>,
}

impl Expected {
    fn hasher(&self) -> S3Result<ChecksumHasher> {
        let c = &self.checksums;
        let mut h = ChecksumHasher::default();
        let alg = self.algorithm.as_ref().map(ChecksumAlgorithm::as_str);
        if c.crc32.is_some() || alg == Some(ChecksumAlgorithm::CRC32) {
            h.crc32 = Some(Default::default());
        }
        if c.crc32c.is_some() || alg == Some(ChecksumAlgorithm::CRC32C) {
            h.crc32c = Some(Default::default());
        }
        if c.sha1.is_some() || alg == Some(ChecksumAlgorithm::SHA1) {
            h.sha1 = Some(Default::default());
        }
        if c.sha256.is_some() || alg == Some(ChecksumAlgorithm::SHA256) {
            h.sha256 = Some(Default::default());
        }
        if c.crc64nvme.is_some() || alg == Some(ChecksumAlgorithm::CRC64NVME) {
            h.crc64nvme = Some(Default::default());
        }
        if let Some(a) = alg
            && ![
                ChecksumAlgorithm::CRC32,
                ChecksumAlgorithm::CRC32C,
                ChecksumAlgorithm::SHA1,
                ChecksumAlgorithm::SHA256,
                ChecksumAlgorithm::CRC64NVME,
            ]
            .contains(&a)
        {
            return Err(s3_error!(
                InvalidRequest,
                "Unsupported checksum algorithm {a}"
            ));
        }
        Ok(h)
    }
}

/// A body that arrived whole and matched every digest the client sent,
/// staged but not yet published.
pub(crate) struct Received {
    pub staged: Box<dyn StagedWrite>,
    pub md5: [u8; 16],
    pub size: u64,
    pub checksums: Checksums,
}

/// Streams a request body into a staged write, computing its MD5 and the
/// checksums the client asked for; verifies them once the body is whole.
/// On any error the staged write is dropped, so nothing is published.
pub(crate) async fn receive<S, E>(
    store: &Arc<dyn Store>,
    path: &ObjectPath,
    body: S,
    mut expected: Expected,
    trailers: Option<s3s::TrailingHeaders>,
) -> S3Result<Received>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    if expected.content_length.is_some_and(|n| n < 0) {
        return Err(s3_error!(InvalidArgument, "Negative Content-Length"));
    }
    if expected
        .content_length
        .is_some_and(|n| u64::try_from(n).unwrap_or(u64::MAX) > MAX_PUT)
    {
        return Err(s3_error!(
            EntityTooLarge,
            "Objects and parts are at most 5 GiB; use a multipart upload"
        ));
    }
    let mut hasher = expected.hasher()?;
    let mut md5 = Md5::new();
    let mut staged = store
        .begin_put(path, Parents::Create)
        .await
        .map_err(store_err)?;
    let mut body = body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            s3_error!(
                IncompleteBody,
                "The request body ended early or was invalid: {e}"
            )
        })?;
        md5.update(&chunk);
        hasher.update(&chunk);
        staged.write(chunk).await.map_err(store_err)?;
        if staged.written() > MAX_PUT {
            return Err(s3_error!(
                EntityTooLarge,
                "Objects and parts are at most 5 GiB; use a multipart upload"
            ));
        }
    }
    let size = staged.written();
    if let Some(n) = expected.content_length
        && u64::try_from(n).ok() != Some(size)
    {
        return Err(s3_error!(
            IncompleteBody,
            "Received {size} bytes of the {n} announced"
        ));
    }
    let md5: [u8; 16] = md5.finalize().into();
    if let Some(want) = &expected.content_md5 {
        let want = base64_decode(want)
            .filter(|w| w.len() == 16)
            .ok_or_else(|| s3_error!(InvalidDigest, "Content-MD5 is not a base64 MD5"))?;
        if want != md5 {
            return Err(s3_error!(
                BadDigest,
                "The Content-MD5 you specified did not match what we received"
            ));
        }
    }
    if let Some(t) = trailers.and_then(|t| t.take()) {
        let get = |name: &str| t.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let c = &mut expected.checksums;
        c.crc32 = c.crc32.take().or_else(|| get("x-amz-checksum-crc32"));
        c.crc32c = c.crc32c.take().or_else(|| get("x-amz-checksum-crc32c"));
        c.sha1 = c.sha1.take().or_else(|| get("x-amz-checksum-sha1"));
        c.sha256 = c.sha256.take().or_else(|| get("x-amz-checksum-sha256"));
        c.crc64nvme = c
            .crc64nvme
            .take()
            .or_else(|| get("x-amz-checksum-crc64nvme"));
    }
    let got = Checksums::from(hasher.finalize());
    let want = &expected.checksums;
    for (name, w, g) in [
        ("CRC32", &want.crc32, &got.crc32),
        ("CRC32C", &want.crc32c, &got.crc32c),
        ("SHA1", &want.sha1, &got.sha1),
        ("SHA256", &want.sha256, &got.sha256),
        ("CRC64NVME", &want.crc64nvme, &got.crc64nvme),
    ] {
        if let Some(w) = w
            && Some(w) != g.as_ref()
        {
            return Err(s3_error!(
                BadDigest,
                "The {name} you specified did not match the calculated checksum"
            ));
        }
    }
    Ok(Received {
        staged,
        md5,
        size,
        checksums: got,
    })
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Reads a small JSON record from the store.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    store: &Arc<dyn Store>,
    path: &ObjectPath,
) -> S3Result<Option<T>> {
    let (_, mut stream) = match store.get(path, None).await {
        Ok(x) => x,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(store_err(e)),
    };
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| store_err(StoreError::from_io("read", path, e)))?;
        buf.extend_from_slice(&chunk);
        if buf.len() > 1 << 20 {
            return Ok(None);
        }
    }
    Ok(serde_json::from_slice(&buf).ok())
}

/// Writes a small JSON record to the store, whole or not at all.
pub(crate) async fn write_json<T: Serialize>(
    store: &Arc<dyn Store>,
    path: &ObjectPath,
    value: &T,
) -> S3Result<()> {
    let json = serde_json::to_vec(value).map_err(|e| s3_error!(InternalError, "{e}"))?;
    let mut w = store
        .begin_put(path, Parents::Create)
        .await
        .map_err(store_err)?;
    w.write(Bytes::from(json)).await.map_err(store_err)?;
    w.commit().await.map_err(store_err)?;
    Ok(())
}

/// Removes `path`, then each parent up to (not including) `stop` that is
/// left empty and was only implied by the removed object, so a later key
/// may use the freed name as a file.
pub(crate) async fn delete_and_prune(
    store: &Arc<dyn Store>,
    path: &ObjectPath,
    stop: &ObjectPath,
) -> S3Result<bool> {
    let existed = match store.delete(path).await {
        Ok(()) => true,
        Err(StoreError::NotFound(_)) => false,
        Err(e) => return Err(store_err(e)),
    };
    let mut dir = path.parent();
    while let Some(d) = dir.filter(|d| d.starts_with(stop) && d != stop) {
        let implicit = matches!(
            store.stat(&d).await,
            Ok(Some(Entry::Collection {
                explicit: false,
                ..
            }))
        );
        let empty = implicit && store.list(&d).await.is_ok_and(|l| l.is_empty());
        if !empty {
            break;
        }
        let _ = store.delete(&d).await;
        dir = d.parent();
    }
    Ok(existed)
}

/// One object found by a bucket walk.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub modified: std::time::SystemTime,
}

/// Every object in `bucket` whose key starts with `prefix`, sorted by key
/// (UTF-8 byte order, as S3 lists). Walks only the folder the prefix
/// points into.
pub(crate) async fn walk(
    store: &Arc<dyn Store>,
    bucket: &str,
    prefix: &str,
) -> S3Result<Vec<Listed>> {
    let root = bucket_path(bucket)?;
    // The deepest folder that holds every match: the prefix up to its last '/'.
    let dir_part = prefix.rsplit_once('/').map_or("", |(d, _)| d);
    let start = if dir_part.is_empty() {
        root.clone()
    } else {
        match key_segments(dir_part) {
            Ok(segs) => root.join_path(
                &ObjectPath::from_segments(segs).map_err(|e| s3_error!(InvalidArgument, "{e}"))?,
            ),
            // No stored key can lie below a prefix that is not a path.
            Err(_) => return Ok(Vec::new()),
        }
    };
    let mut out = Vec::new();
    let mut stack = vec![start];
    while let Some(dir) = stack.pop() {
        let children = match store.list(&dir).await {
            Ok(c) => c,
            Err(StoreError::NotFound(_) | StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(store_err(e)),
        };
        for (name, entry) in children {
            let Ok(path) = dir.join(&name) else { continue };
            match entry {
                Entry::Collection { .. } => stack.push(path),
                Entry::Object(meta) => {
                    let key = path
                        .strip_prefix(&root)
                        .map(|p| p.segments().join("/"))
                        .unwrap_or_default();
                    if key.starts_with(prefix) {
                        out.push(Listed {
                            key,
                            size: meta.size,
                            modified: meta.modified,
                        });
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// A page of a listing: keys, and common prefixes when a delimiter groups
/// them, in S3's order, after `start_after`.
#[derive(Debug, Default)]
pub(crate) struct Page {
    pub objects: Vec<Listed>,
    pub prefixes: Vec<String>,
    /// The last key or prefix on the page, when more follow.
    pub next: Option<String>,
}

/// Cuts one page out of a sorted walk.
pub(crate) fn page(
    all: Vec<Listed>,
    prefix: &str,
    delimiter: Option<&str>,
    start_after: Option<&str>,
    max_keys: usize,
) -> Page {
    let mut p = Page::default();
    let mut count = 0;
    let mut last: Option<String> = None;
    for obj in all {
        if !obj.key.starts_with(prefix) || start_after.is_some_and(|s| obj.key.as_str() <= s) {
            continue;
        }
        let rest = obj.key.get(prefix.len()..).unwrap_or("");
        let group = delimiter
            .filter(|d| !d.is_empty())
            .and_then(|d| rest.find(d).map(|i| i + d.len()))
            .and_then(|end| obj.key.get(..prefix.len() + end))
            .map(str::to_owned);
        if let Some(g) = group {
            if p.prefixes.last() == Some(&g) {
                continue;
            }
            if start_after.is_some_and(|s| g.as_str() <= s) {
                // A prefix already returned on an earlier page.
                continue;
            }
            if count == max_keys {
                p.next = last;
                return p;
            }
            last = Some(g.clone());
            p.prefixes.push(g);
        } else {
            if count == max_keys {
                p.next = last;
                return p;
            }
            last = Some(obj.key.clone());
            p.objects.push(obj);
        }
        count += 1;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn listed(keys: &[&str]) -> Vec<Listed> {
        keys.iter()
            .map(|k| Listed {
                key: (*k).to_owned(),
                size: 1,
                modified: SystemTime::UNIX_EPOCH,
            })
            .collect()
    }

    #[test]
    fn pages_group_by_delimiter_and_continue_after_the_last_entry() {
        let all = listed(&["a/1", "a/2", "b", "c/x/1", "c/y", "d"]);
        let p = page(all.clone(), "", Some("/"), None, 3);
        let keys: Vec<_> = p.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            (keys, p.prefixes.clone()),
            (vec!["b"], vec!["a/".to_owned(), "c/".to_owned()])
        );
        assert_eq!(p.next.as_deref(), Some("c/"));
        let p2 = page(all.clone(), "", Some("/"), p.next.as_deref(), 3);
        let keys: Vec<_> = p2.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!((keys, p2.prefixes, p2.next), (vec!["d"], vec![], None));
        let p3 = page(all, "c/", Some("/"), None, 10);
        let keys: Vec<_> = p3.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!((keys, p3.prefixes), (vec!["c/y"], vec!["c/x/".to_owned()]));
    }

    #[test]
    fn keys_that_cannot_be_paths_are_refused() {
        for bad in ["", "a/../b", "..", "a//b", "/a", "dir/", "a\u{1}b", "x/./y"] {
            assert!(key_segments(bad).is_err(), "{bad:?}");
        }
        assert_eq!(key_segments("a b/c.ts").unwrap(), vec!["a b", "c.ts"]);
    }
}
