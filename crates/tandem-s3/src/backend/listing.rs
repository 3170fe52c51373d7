//! Listing a bucket: one page of keys after a marker, grouped by a
//! delimiter, answered as ListObjectsV2, ListObjects (v1) or
//! ListObjectVersions.

use super::*;

/// One page of a listing.
struct Listing {
    prefix: String,
    max_keys: usize,
    objects: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
    /// The last key or prefix of a truncated page.
    next: Option<String>,
}

/// Continuation tokens are the last key returned, hex-encoded so that any
/// key survives XML and URLs unchanged.
fn encode_token(key: &str) -> String {
    hex(key.as_bytes())
}

fn decode_token(t: &str) -> S3Result<String> {
    decode_hex(t)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

impl TandemS3 {
    /// One page of a bucket's keys after `after`, grouped by `delimiter`:
    /// what every listing operation answers, each in its own shape.
    async fn listing(
        &self,
        bucket: &str,
        prefix: String,
        delimiter: Option<&str>,
        after: Option<&str>,
        max_keys: Option<i32>,
    ) -> S3Result<Listing> {
        self.bucket_exists(bucket).await?;
        let max_keys = match max_keys {
            None => 1000,
            Some(n) if n < 0 => {
                return Err(s3_error!(InvalidArgument, "max-keys must not be negative"));
            }
            Some(n) => usize::try_from(n).unwrap_or(1000).min(1000),
        };
        let all = objects::walk(&self.store, bucket, &prefix).await?;
        let page = objects::page(all, &prefix, delimiter, after, max_keys);
        let objects = futures_util::stream::iter(page.objects)
            .then(|o| async move {
                let etag = match object_paths(bucket, &o.key) {
                    Ok(p) => self.info(&p).await.map(|(i, _)| i.etag).ok(),
                    Err(_) => None,
                };
                Object {
                    key: Some(o.key),
                    size: i64::try_from(o.size).ok(),
                    last_modified: Some(Timestamp::from(o.modified)),
                    e_tag: etag.as_deref().map(quoted),
                    storage_class: Some(ObjectStorageClass::from_static(
                        ObjectStorageClass::STANDARD,
                    )),
                    ..Default::default()
                }
            })
            .collect::<Vec<_>>()
            .await;
        Ok(Listing {
            prefix,
            max_keys,
            objects,
            prefixes: page
                .prefixes
                .into_iter()
                .map(|p| CommonPrefix { prefix: Some(p) })
                .collect(),
            next: page.next,
        })
    }

    pub(super) async fn listing_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let after = match &input.continuation_token {
            Some(t) => Some(decode_token(t)?),
            None => input.start_after.clone(),
        };
        let l = self
            .listing(
                &input.bucket,
                input.prefix.clone().unwrap_or_default(),
                input.delimiter.as_deref(),
                after.as_deref(),
                input.max_keys,
            )
            .await?;
        let key_count = l.objects.len() + l.prefixes.len();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket.clone()),
            prefix: Some(l.prefix),
            delimiter: input.delimiter.clone(),
            max_keys: i32::try_from(l.max_keys).ok(),
            key_count: i32::try_from(key_count).ok(),
            is_truncated: Some(l.next.is_some()),
            continuation_token: input.continuation_token.clone(),
            next_continuation_token: l.next.as_deref().map(encode_token),
            start_after: input.start_after.clone(),
            encoding_type: input.encoding_type.clone(),
            contents: Some(l.objects),
            common_prefixes: Some(l.prefixes),
            ..Default::default()
        }))
    }

    /// ListObjects version 1: `marker` instead of a continuation token,
    /// as older tools and `aws s3 rb --force` page with.
    pub(super) async fn listing_v1(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let l = self
            .listing(
                &input.bucket,
                input.prefix.clone().unwrap_or_default(),
                input.delimiter.as_deref(),
                input.marker.as_deref(),
                input.max_keys,
            )
            .await?;
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket.clone()),
            prefix: Some(l.prefix),
            marker: Some(input.marker.clone().unwrap_or_default()),
            delimiter: input.delimiter.clone(),
            max_keys: i32::try_from(l.max_keys).ok(),
            is_truncated: Some(l.next.is_some()),
            next_marker: l.next,
            encoding_type: input.encoding_type.clone(),
            contents: Some(l.objects),
            common_prefixes: Some(l.prefixes),
            ..Default::default()
        }))
    }

    /// Buckets are not versioned: each object is listed once, as version
    /// `null`, the latest, as S3 does for a bucket that never had
    /// versioning. Tools that empty a bucket by its versions work.
    pub(super) async fn listing_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        if input
            .version_id_marker
            .as_deref()
            .is_some_and(|v| !v.is_empty() && v != "null")
        {
            return Err(s3_error!(InvalidArgument, "Invalid version id marker"));
        }
        let l = self
            .listing(
                &input.bucket,
                input.prefix.clone().unwrap_or_default(),
                input.delimiter.as_deref(),
                input.key_marker.as_deref(),
                input.max_keys,
            )
            .await?;
        let versions = l
            .objects
            .into_iter()
            .map(|o| ObjectVersion {
                e_tag: o.e_tag,
                is_latest: Some(true),
                key: o.key,
                last_modified: o.last_modified,
                size: o.size,
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                version_id: Some("null".to_owned()),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket.clone()),
            prefix: Some(l.prefix),
            key_marker: Some(input.key_marker.clone().unwrap_or_default()),
            version_id_marker: Some(input.version_id_marker.clone().unwrap_or_default()),
            delimiter: input.delimiter.clone(),
            max_keys: i32::try_from(l.max_keys).ok(),
            is_truncated: Some(l.next.is_some()),
            next_version_id_marker: l.next.as_ref().map(|_| "null".to_owned()),
            next_key_marker: l.next,
            encoding_type: input.encoding_type.clone(),
            versions: Some(versions),
            common_prefixes: Some(l.prefixes),
            ..Default::default()
        }))
    }
}
