//! The S3 operations, over `tandem-store`. Operations not listed here
//! answer `NotImplemented` (the `s3s` default).
//!
//! Buckets and single objects are here; [`listing`] answers the three list
//! operations from one page walk, [`multipart`] the multipart family.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::StreamExt;
use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};
use tandem_core::ObjectPath;
use tandem_store::{Entry, PublishHook, Store, StoreError};

use crate::metrics;
use crate::objects::{
    self, Checksums, Expected, ObjectInfo, ObjectPaths, Received, UPLOADS, bucket_path, hex,
    object_paths, read_json, store_err, write_json,
};
use crate::{KeyRing, Principal};

/// What a client announced about a body: Content-MD5, `x-amz-checksum-*`,
/// the checksum algorithm and the length, from any s3s input that has them.
macro_rules! expected {
    ($input:expr) => {
        Expected {
            content_md5: $input.content_md5,
            checksums: Checksums {
                crc32: $input.checksum_crc32,
                crc32c: $input.checksum_crc32c,
                sha1: $input.checksum_sha1,
                sha256: $input.checksum_sha256,
                crc64nvme: $input.checksum_crc64nvme,
            },
            algorithm: $input.checksum_algorithm,
            content_length: $input.content_length,
        }
    };
}

/// An s3s output struct with its five checksum fields taken from `$c`.
macro_rules! with_checksums {
    ($c:expr, $ty:ident { $($rest:tt)* }) => {{
        let c: Checksums = $c;
        $ty {
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            checksum_crc64nvme: c.crc64nvme,
            $($rest)*
        }
    }};
}

mod listing;
mod multipart;

/// Only version `null` exists in an unversioned bucket (S3 answers any
/// other id of such a bucket with `InvalidArgument`).
fn check_version(version_id: Option<&str>) -> S3Result<()> {
    match version_id {
        None | Some("null") => Ok(()),
        Some(_) => Err(s3_error!(InvalidArgument, "Invalid version id specified")),
    }
}

/// Tandem's S3 implementation.
#[derive(Debug, Clone)]
pub struct TandemS3 {
    store: Arc<dyn Store>,
    keys: Arc<KeyRing>,
    hook: Arc<std::sync::RwLock<Option<PublishHook>>>,
}

impl TandemS3 {
    pub fn new(store: Arc<dyn Store>, keys: Arc<KeyRing>) -> Self {
        Self {
            store,
            keys,
            hook: Arc::default(),
        }
    }

    /// Calls `hook` with every object published whole from now on.
    pub fn on_publish(&self, hook: PublishHook) {
        *self
            .hook
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(hook);
    }

    /// Where a bucket's objects live in the store: bucket `b`'s key `k`
    /// is this path joined with `k`.
    pub fn bucket_root(bucket: &str) -> S3Result<ObjectPath> {
        bucket_path(bucket)
    }

    /// The store key of the S3 metadata record that goes with the object
    /// stored at `data` (a key under a bucket root), if `data` is one: what
    /// must go too when something other than S3 DELETE removes the object.
    pub fn metadata_key(data: &ObjectPath) -> Option<ObjectPath> {
        let segs = data.segments();
        if segs.first().map(String::as_str) != Some(objects::BUCKETS) || segs.len() < 3 {
            return None;
        }
        let mut meta = segs.to_vec();
        objects::META.clone_into(&mut meta[0]);
        ObjectPath::from_segments(meta).ok()
    }

    /// Creates a bucket (an explicit collection); `Ok(false)` if it exists.
    pub async fn create_bucket_dir(&self, bucket: &str) -> S3Result<bool> {
        let top = bucket_path(bucket)?;
        if let Some(parent) = top.parent() {
            match self.store.create_collection(&parent).await {
                Ok(()) | Err(StoreError::AlreadyExists { .. }) => {}
                Err(e) => return Err(store_err(e)),
            }
        }
        match self.store.create_collection(&top).await {
            Ok(()) => Ok(true),
            Err(StoreError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Removes a bucket and everything in it (archive pair deletion).
    pub async fn remove_bucket_tree(&self, bucket: &str) -> S3Result<()> {
        for top in [bucket_path(bucket)?, meta_root(bucket)?] {
            match self.store.delete(&top).await {
                Ok(()) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(store_err(e)),
            }
        }
        Ok(())
    }

    /// Every object in a bucket, sorted by key (archive watch).
    pub async fn list_objects(&self, bucket: &str) -> S3Result<Vec<objects::Listed>> {
        objects::walk(&self.store, bucket, "").await
    }

    /// Reads an object through the MPEG-TS checker; `None` if it cannot be
    /// read (gone since the listing).
    pub async fn check_object(&self, bucket: &str, key: &str) -> Option<tandem_ts::TsCheck> {
        let paths = object_paths(bucket, key).ok()?;
        let (_, mut stream) = self.store.get(&paths.data, None).await.ok()?;
        let mut checker = tandem_ts::TsChecker::new();
        while let Some(chunk) = stream.next().await {
            checker.push(&chunk.ok()?);
        }
        Some(checker.finish())
    }

    async fn bucket_exists(&self, bucket: &str) -> S3Result<()> {
        match self.store.stat(&bucket_path(bucket)?).await {
            Ok(Some(Entry::Collection { .. })) => Ok(()),
            Ok(_) => Err(s3_error!(
                NoSuchBucket,
                "The specified bucket does not exist"
            )),
            Err(e) => Err(store_err(e)),
        }
    }

    fn principal<T>(&self, req: &S3Request<T>) -> S3Result<Principal> {
        req.credentials
            .as_ref()
            .and_then(|c| self.keys.principal(&c.access_key))
            .ok_or_else(|| s3_error!(AccessDenied))
    }

    /// An object's size and metadata; `NoSuchKey` if absent.
    async fn info(&self, paths: &ObjectPaths) -> S3Result<(ObjectInfo, SystemTime)> {
        let meta = match self.store.stat(&paths.data).await.map_err(store_err)? {
            Some(Entry::Object(m)) => m,
            _ => return Err(s3_error!(NoSuchKey, "The specified key does not exist.")),
        };
        let stored: Option<ObjectInfo> = read_json(&self.store, &paths.meta).await?;
        let info = match stored {
            Some(i) if i.store_etag == meta.etag && i.size == meta.size => i,
            // No record, or one for bytes since replaced: what the store knows.
            _ => ObjectInfo {
                etag: meta.etag.trim_matches('"').to_owned(),
                size: meta.size,
                store_etag: meta.etag.clone(),
                ..Default::default()
            },
        };
        Ok((info, meta.modified))
    }

    /// Publishes a received body, then its metadata record.
    async fn publish(
        &self,
        paths: &ObjectPaths,
        received: Received,
        etag: String,
        content_type: Option<String>,
        metadata: BTreeMap<String, String>,
    ) -> S3Result<ObjectInfo> {
        let committed = received.staged.commit().await.map_err(store_err)?;
        let info = ObjectInfo {
            etag,
            content_type,
            metadata,
            checksums: received.checksums,
            ..Default::default()
        };
        self.record(paths, committed, info).await
    }

    /// Writes the metadata record of bytes just published, tying it to
    /// them by size and the store's validator.
    async fn record(
        &self,
        paths: &ObjectPaths,
        committed: tandem_store::Committed,
        info: ObjectInfo,
    ) -> S3Result<ObjectInfo> {
        let info = ObjectInfo {
            size: committed.meta.size,
            store_etag: committed.meta.etag,
            ..info
        };
        write_json(&self.store, &paths.meta, &info).await?;
        let hook = self
            .hook
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(h) = hook {
            h.published(&paths.data, info.size);
        }
        Ok(info)
    }

    /// PutObject into a bucket that exists.
    async fn put_object_counted(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let trailers = req.trailing_headers.clone();
        let input = req.input;
        let paths = object_paths(&input.bucket, &input.key)?;
        let expected = expected!(input);
        let body = input.body.unwrap_or_else(|| {
            StreamingBlob::wrap(futures_util::stream::empty::<
                Result<bytes::Bytes, std::io::Error>,
            >())
        });
        let received = objects::receive(&self.store, &paths.data, body, expected, trailers).await?;
        let etag = hex(&received.md5);
        let info = self
            .publish(
                &paths,
                received,
                etag,
                input.content_type.map(|c| c.to_string()),
                user_metadata(input.metadata),
            )
            .await?;
        Ok(S3Response::new(with_checksums!(
            info.checksums,
            PutObjectOutput {
                e_tag: Some(quoted(&info.etag)),
                ..Default::default()
            }
        )))
    }
}

/// How an upload handler ended, for [`metrics::S3Upload`].
fn outcome<T>(r: &S3Result<T>) -> &str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code().as_str(),
    }
}

fn meta_root(bucket: &str) -> S3Result<ObjectPath> {
    ObjectPath::from_segments(["s3.meta", bucket]).map_err(|e| s3_error!(InvalidBucketName, "{e}"))
}

fn quoted(etag: &str) -> ETag {
    ETag::Strong(etag.to_owned())
}

fn user_metadata(m: Option<Metadata>) -> BTreeMap<String, String> {
    m.map(|m| m.into_iter().collect()).unwrap_or_default()
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn from_unix(s: u64) -> Timestamp {
    Timestamp::from(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s))
}

/// `If-Match` / `If-None-Match` on reads.
fn preconditions(
    etag: &str,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<()> {
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(t) => t.value() == etag,
    };
    if if_match.is_some_and(|c| !matches(c)) {
        return Err(s3_error!(PreconditionFailed));
    }
    if if_none_match.is_some_and(matches) {
        let mut e = S3Error::new(S3ErrorCode::NotModified);
        e.set_status_code(http::StatusCode::NOT_MODIFIED);
        return Err(e);
    }
    Ok(())
}

#[async_trait::async_trait]
impl S3 for TandemS3 {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        if self.create_bucket_dir(&req.input.bucket).await? {
            Ok(S3Response::new(CreateBucketOutput {
                location: Some(format!("/{}", req.input.bucket)),
            }))
        } else {
            Err(s3_error!(
                BucketAlreadyOwnedByYou,
                "Your previous request to create the named bucket succeeded and you already own it."
            ))
        }
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let bucket = &req.input.bucket;
        self.bucket_exists(bucket).await?;
        if !objects::walk(&self.store, bucket, "").await?.is_empty() {
            return Err(s3_error!(
                BucketNotEmpty,
                "The bucket you tried to delete is not empty"
            ));
        }
        self.remove_bucket_tree(bucket).await?;
        Ok(S3Response::new(DeleteBucketOutput::default()))
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let who = self.principal(&req)?;
        let root = bucket_path("x")?
            .parent()
            .ok_or_else(|| s3_error!(InternalError))?;
        let children = match self.store.list(&root).await {
            Ok(c) => c,
            Err(StoreError::NotFound(_)) => Vec::new(),
            Err(e) => return Err(store_err(e)),
        };
        let buckets = children
            .into_iter()
            .filter(|(name, _)| who.can_read(name))
            .filter_map(|(name, e)| match e {
                Entry::Collection { modified, .. } => Some(Bucket {
                    name: Some(name),
                    creation_date: Some(Timestamp::from(modified)),
                    ..Default::default()
                }),
                Entry::Object(_) => None,
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(Owner {
                display_name: Some("tandem".into()),
                id: Some("tandem".into()),
            }),
            ..Default::default()
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        let count = metrics::S3Upload::start("PutObject", &req.input.bucket);
        let r = self.put_object_counted(req).await;
        count.finish(outcome(&r));
        r
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        self.bucket_exists(&input.bucket).await?;
        let paths = object_paths(&input.bucket, &input.key)?;
        let (info, modified) = self.info(&paths).await?;
        preconditions(
            &info.etag,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
        )?;
        let range =
            match &input.range {
                None => None,
                Some(r) => Some(r.check(info.size).map_err(|_| {
                    s3_error!(InvalidRange, "The requested range is not satisfiable")
                })?),
            };
        let (meta, stream) = self
            .store
            .get(&paths.data, range.clone())
            .await
            .map_err(store_err)?;
        let span = range.clone().unwrap_or(0..meta.size);
        let len = span.end - span.start;
        let body = sync_wrapper::SyncStream::new(stream);
        let whole = range.is_none();
        let c = if whole && input.checksum_mode.is_some() {
            info.checksums.clone()
        } else {
            Checksums::default()
        };
        Ok(S3Response::new(with_checksums!(
            c,
            GetObjectOutput {
                body: Some(StreamingBlob::wrap(body)),
                content_length: i64::try_from(len).ok(),
                content_range: range.map(|r| {
                    format!(
                        "bytes {}-{}/{}",
                        r.start,
                        r.end.saturating_sub(1),
                        meta.size
                    )
                }),
                accept_ranges: Some("bytes".into()),
                e_tag: Some(quoted(&info.etag)),
                last_modified: Some(Timestamp::from(modified)),
                content_type: info.content_type.clone(),
                metadata: (!info.metadata.is_empty()).then(|| info
                    .metadata
                    .clone()
                    .into_iter()
                    .collect()),
                ..Default::default()
            }
        )))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        self.bucket_exists(&input.bucket).await?;
        let paths = object_paths(&input.bucket, &input.key)?;
        let (info, modified) = self.info(&paths).await?;
        preconditions(
            &info.etag,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
        )?;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: i64::try_from(info.size).ok(),
            accept_ranges: Some("bytes".into()),
            e_tag: Some(quoted(&info.etag)),
            last_modified: Some(Timestamp::from(modified)),
            content_type: info.content_type,
            metadata: (!info.metadata.is_empty()).then(|| info.metadata.into_iter().collect()),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        self.bucket_exists(&input.bucket).await?;
        check_version(input.version_id.as_deref())?;
        delete_one(&self.store, &input.bucket, &input.key).await?;
        Ok(S3Response::new(DeleteObjectOutput {
            version_id: input.version_id,
            ..Default::default()
        }))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        self.bucket_exists(&input.bucket).await?;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(
                MalformedXML,
                "DeleteObjects takes at most 1000 keys"
            ));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for obj in input.delete.objects {
            let result = match check_version(obj.version_id.as_deref()) {
                Ok(()) => delete_one(&self.store, &input.bucket, &obj.key).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    if !quiet {
                        deleted.push(DeletedObject {
                            key: Some(obj.key),
                            version_id: obj.version_id,
                            ..Default::default()
                        });
                    }
                }
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(obj.key),
                    message: e.message().map(str::to_owned),
                    version_id: obj.version_id,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let who = self.principal(&req)?;
        let input = req.input;
        let (src_bucket, src_key) = match &input.copy_source {
            CopySource::Bucket { bucket, key, .. } => (bucket.to_string(), key.to_string()),
            _ => {
                return Err(s3_error!(
                    NotImplemented,
                    "Access point copy sources are not supported"
                ));
            }
        };
        if !who.can_read(&src_bucket) {
            return Err(s3_error!(AccessDenied, "This key may not read the source"));
        }
        self.bucket_exists(&src_bucket).await?;
        self.bucket_exists(&input.bucket).await?;
        let src = object_paths(&src_bucket, &src_key)?;
        let dst = object_paths(&input.bucket, &input.key)?;
        let (src_info, _) = self.info(&src).await?;
        let (_, stream) = self.store.get(&src.data, None).await.map_err(store_err)?;
        let expected = Expected {
            content_length: i64::try_from(src_info.size).ok(),
            ..Default::default()
        };
        let received = objects::receive(&self.store, &dst.data, stream, expected, None).await?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let (content_type, metadata) = if replace {
            (
                input.content_type.map(|c| c.to_string()),
                user_metadata(input.metadata),
            )
        } else {
            (src_info.content_type, src_info.metadata)
        };
        let etag = hex(&received.md5);
        let info = self
            .publish(&dst, received, etag, content_type, metadata)
            .await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(quoted(&info.etag)),
                last_modified: Some(Timestamp::from(SystemTime::now())),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.listing_v2(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.listing_v1(req).await
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        self.listing_versions(req).await
    }

    /// Versioning was never enabled: no status, as S3 answers then.
    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketVersioningOutput::default()))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.multipart_create(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        let count = metrics::S3Upload::start("UploadPart", &req.input.bucket);
        let r = self.upload_part_counted(req).await;
        count.finish(outcome(&r));
        r
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.multipart_complete(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.multipart_abort(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.multipart_list_parts(req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        self.multipart_list_uploads(req).await
    }
}

async fn delete_one(store: &Arc<dyn Store>, bucket: &str, key: &str) -> S3Result<()> {
    let paths = object_paths(bucket, key)?;
    let data_root = bucket_path(bucket)?;
    let meta_root = meta_root(bucket)?;
    // A directory is not an object: deleting "a" when only "a/b" exists
    // removes nothing, as in S3.
    if let Ok(Some(Entry::Collection { .. })) = store.stat(&paths.data).await {
        return Ok(());
    }
    objects::delete_and_prune(store, &paths.data, &data_root).await?;
    objects::delete_and_prune(store, &paths.meta, &meta_root).await?;
    Ok(())
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}
