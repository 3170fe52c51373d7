//! Multipart uploads: parts staged under `s3.uploads/{id}/`, the object
//! published whole, by one concatenation inside the store, at completion.

use std::time::Duration;

use super::*;

/// The smallest part S3 accepts, except the last.
const MIN_PART: u64 = 5 * 1024 * 1024;

const MAX_PARTS: i32 = 10_000;

/// A multipart upload in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Upload {
    bucket: String,
    key: String,
    initiated_unix: u64,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// A stored part.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartInfo {
    /// Hex MD5.
    etag: String,
    size: u64,
    modified_unix: u64,
    #[serde(default)]
    checksums: Checksums,
}

impl TandemS3 {
    /// UploadPart into a bucket that exists.
    pub(super) async fn upload_part_counted(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let trailers = req.trailing_headers.clone();
        let input = req.input;
        if !(1..=MAX_PARTS).contains(&input.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        self.upload(&input.upload_id, &input.bucket, &input.key)
            .await?;
        let n = input.part_number;
        let data = Self::part_file(&input.upload_id, n, "part")?;
        let meta = Self::part_file(&input.upload_id, n, "json")?;
        let expected = expected!(input);
        let body = input
            .body
            .ok_or_else(|| s3_error!(IncompleteBody, "UploadPart needs a body"))?;
        let received = objects::receive(&self.store, &data, body, expected, trailers).await?;
        let etag = hex(&received.md5);
        let size = received.size;
        let checksums = received.checksums.clone();
        received.staged.commit().await.map_err(store_err)?;
        let part = PartInfo {
            etag: etag.clone(),
            size,
            modified_unix: unix(SystemTime::now()),
            checksums: checksums.clone(),
        };
        write_json(&self.store, &meta, &part).await?;
        Ok(S3Response::new(with_checksums!(
            checksums,
            UploadPartOutput {
                e_tag: Some(quoted(&etag)),
                ..Default::default()
            }
        )))
    }

    fn upload_dir(upload_id: &str) -> S3Result<ObjectPath> {
        ObjectPath::from_segments([UPLOADS, upload_id])
            .map_err(|_| s3_error!(NoSuchUpload, "The specified upload does not exist"))
    }

    /// A file of an upload: `upload.json`, or part `n`'s `.part` / `.json`.
    fn upload_file(upload_id: &str, name: &str) -> S3Result<ObjectPath> {
        Self::upload_dir(upload_id)?
            .join(name)
            .map_err(|e| s3_error!(InternalError, "{e}"))
    }

    fn part_file(upload_id: &str, n: i32, ext: &str) -> S3Result<ObjectPath> {
        Self::upload_file(upload_id, &format!("{n:05}.{ext}"))
    }

    async fn upload(&self, upload_id: &str, bucket: &str, key: &str) -> S3Result<Upload> {
        let path = Self::upload_file(upload_id, "upload.json")?;
        match read_json::<Upload>(&self.store, &path).await? {
            Some(u) if u.bucket == bucket && u.key == key => Ok(u),
            _ => Err(s3_error!(
                NoSuchUpload,
                "The specified upload does not exist"
            )),
        }
    }

    pub(super) async fn multipart_create(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        self.bucket_exists(&input.bucket).await?;
        object_paths(&input.bucket, &input.key)?;
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).map_err(|e| s3_error!(InternalError, "random source: {e}"))?;
        let upload_id = hex(&raw);
        let upload = Upload {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            initiated_unix: unix(SystemTime::now()),
            content_type: input.content_type.map(|c| c.to_string()),
            metadata: user_metadata(input.metadata),
        };
        let path = Self::upload_file(&upload_id, "upload.json")?;
        write_json(&self.store, &path, &upload).await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            checksum_algorithm: input.checksum_algorithm,
            ..Default::default()
        }))
    }

    pub(super) async fn multipart_complete(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let upload = self
            .upload(&input.upload_id, &input.bucket, &input.key)
            .await?;
        let dir = Self::upload_dir(&input.upload_id)?;
        let wanted = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        if wanted.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "CompleteMultipartUpload names no parts"
            ));
        }
        let mut parts = Vec::with_capacity(wanted.len());
        let mut prev = 0;
        for p in &wanted {
            let n = p.part_number.unwrap_or(0);
            if n <= prev {
                return Err(s3_error!(
                    InvalidPartOrder,
                    "The list of parts was not in ascending order"
                ));
            }
            prev = n;
            let meta = Self::part_file(&input.upload_id, n, "json")?;
            let info: PartInfo = read_json(&self.store, &meta)
                .await?
                .ok_or_else(|| s3_error!(InvalidPart, "Part {n} was not uploaded"))?;
            if p.e_tag.as_ref().is_some_and(|t| t.value() != info.etag) {
                return Err(s3_error!(
                    InvalidPart,
                    "Part {n}'s ETag does not match the uploaded part"
                ));
            }
            parts.push((n, info));
        }
        let last = parts.len() - 1;
        if let Some((n, _)) = parts
            .iter()
            .take(last)
            .find(|(_, info)| info.size < MIN_PART)
        {
            return Err(s3_error!(
                EntityTooSmall,
                "Part {n} is smaller than the 5 MiB minimum for all but the last part"
            ));
        }
        let paths = object_paths(&input.bucket, &input.key)?;
        let mut whole_md5 = Md5::new();
        for (_, info) in &parts {
            let raw = decode_hex(&info.etag).ok_or_else(|| s3_error!(InternalError))?;
            whole_md5.update(&raw);
        }
        // One object from the parts, published whole: nothing is visible
        // until all of it is in place.
        let part_paths = parts
            .iter()
            .map(|(n, _)| Self::part_file(&input.upload_id, *n, "part"))
            .collect::<S3Result<Vec<_>>>()?;
        let committed = self
            .store
            .concat(&part_paths, &paths.data)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => s3_error!(
                    InvalidPart,
                    "A part was removed while the upload was completed"
                ),
                other => store_err(other),
            })?;
        // A multipart object has no whole-object checksum of the kinds a
        // single PUT carries.
        let info = ObjectInfo {
            etag: format!("{}-{}", hex(&whole_md5.finalize()), parts.len()),
            content_type: upload.content_type,
            metadata: upload.metadata,
            ..Default::default()
        };
        let info = self.record(&paths, committed, info).await?;
        if let Err(e) = self.store.delete(&dir).await {
            tracing::warn!(upload = %input.upload_id, error = %e, "completed upload's parts not removed");
        }
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(quoted(&info.etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            ..Default::default()
        }))
    }

    pub(super) async fn multipart_abort(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        self.upload(&input.upload_id, &input.bucket, &input.key)
            .await?;
        self.store
            .delete(&Self::upload_dir(&input.upload_id)?)
            .await
            .map_err(store_err)?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    pub(super) async fn multipart_list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        self.upload(&input.upload_id, &input.bucket, &input.key)
            .await?;
        let dir = Self::upload_dir(&input.upload_id)?;
        let marker = input.part_number_marker.unwrap_or(0);
        let max = input.max_parts.unwrap_or(1000).clamp(0, 1000);
        let mut parts = Vec::new();
        for (name, _) in self.store.list(&dir).await.map_err(store_err)? {
            let Some(n) = name
                .strip_suffix(".json")
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if n <= marker {
                continue;
            }
            let path = dir
                .join(&name)
                .map_err(|e| s3_error!(InternalError, "{e}"))?;
            if let Some(info) = read_json::<PartInfo>(&self.store, &path).await? {
                parts.push((n, info));
            }
        }
        parts.sort_by_key(|(n, _)| *n);
        let truncated = parts.len() > usize::try_from(max).unwrap_or(0);
        parts.truncate(usize::try_from(max).unwrap_or(0));
        let next = parts.last().map(|(n, _)| *n);
        let parts = parts
            .into_iter()
            .map(|(n, info)| {
                with_checksums!(
                    info.checksums,
                    Part {
                        part_number: Some(n),
                        e_tag: Some(quoted(&info.etag)),
                        size: i64::try_from(info.size).ok(),
                        last_modified: Some(from_unix(info.modified_unix)),
                    }
                )
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            part_number_marker: Some(marker),
            next_part_number_marker: if truncated { next } else { None },
            max_parts: Some(max),
            is_truncated: Some(truncated),
            parts: Some(parts),
            ..Default::default()
        }))
    }

    pub(super) async fn multipart_list_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        self.bucket_exists(&input.bucket).await?;
        let root =
            ObjectPath::from_segments([UPLOADS]).map_err(|e| s3_error!(InternalError, "{e}"))?;
        let ids = match self.store.list(&root).await {
            Ok(c) => c,
            Err(StoreError::NotFound(_)) => Vec::new(),
            Err(e) => return Err(store_err(e)),
        };
        let prefix = input.prefix.clone().unwrap_or_default();
        let mut uploads = Vec::new();
        for (id, _) in ids {
            let Ok(path) = root.join(&id).and_then(|d| d.join("upload.json")) else {
                continue;
            };
            let Some(u) = read_json::<Upload>(&self.store, &path).await? else {
                continue;
            };
            if u.bucket == input.bucket && u.key.starts_with(&prefix) {
                uploads.push(MultipartUpload {
                    key: Some(u.key),
                    upload_id: Some(id),
                    initiated: Some(from_unix(u.initiated_unix)),
                    ..Default::default()
                });
            }
        }
        uploads.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            max_uploads: Some(1000),
            is_truncated: Some(false),
            uploads: Some(uploads),
            ..Default::default()
        }))
    }
}

impl TandemS3 {
    /// Removes multipart uploads begun more than `older_than` before `now`
    /// and never completed or aborted (an encoder or client that died
    /// mid-upload leaves its parts behind, as S3's lifecycle rule
    /// `AbortIncompleteMultipartUpload` would remove them). An upload whose
    /// record cannot be read is judged by its folder's time. Returns how
    /// many were removed.
    pub async fn expire_uploads(&self, now: SystemTime, older_than: Duration) -> S3Result<u64> {
        let root =
            ObjectPath::from_segments([UPLOADS]).map_err(|e| s3_error!(InternalError, "{e}"))?;
        let ids = match self.store.list(&root).await {
            Ok(c) => c,
            Err(StoreError::NotFound(_)) => return Ok(0),
            Err(e) => return Err(store_err(e)),
        };
        let mut removed = 0;
        for (id, entry) in ids {
            let Ok(dir) = Self::upload_dir(&id) else {
                continue;
            };
            let Ok(record) = dir.join("upload.json") else {
                continue;
            };
            let began = match read_json::<Upload>(&self.store, &record).await? {
                Some(u) => SystemTime::UNIX_EPOCH + Duration::from_secs(u.initiated_unix),
                None => match entry {
                    Entry::Collection { modified, .. } => modified,
                    Entry::Object(m) => m.modified,
                },
            };
            if now.duration_since(began).is_ok_and(|age| age > older_than) {
                match self.store.delete(&dir).await {
                    Ok(()) | Err(StoreError::NotFound(_)) => {
                        removed += 1;
                        tracing::info!(
                            upload_id = id,
                            "removed a multipart upload never completed"
                        );
                    }
                    Err(e) => return Err(store_err(e)),
                }
            }
        }
        Ok(removed)
    }
}
