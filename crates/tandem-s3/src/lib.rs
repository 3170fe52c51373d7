//! Tandem's S3-compatible API: archive destinations for encoders that write
//! to two buckets (one per pipeline).
//!
//! The protocol side (request parsing, SigV4 in headers and presigned URLs,
//! `aws-chunked` bodies, XML) is the `s3s` crate; this module supplies what
//! Tandem decides: who may touch which bucket ([`Access`]), which keys
//! exist ([`KeyRing`]), how a `Host` header names a bucket ([`Hosts`]), and
//! how objects land in `tandem-store` ([`backend`]), through the same
//! complete-only staged writes as HTTP ingest.
//!
//! Layout inside the store (none of these names can be a channel id):
//! - `s3.buckets/{bucket}/{key…}`: object bytes, one file per key.
//! - `s3.meta/{bucket}/{key…}`: the object's S3 metadata (MD5 ETag,
//!   content type, user metadata, checksums) as JSON.
//! - `s3.uploads/{upload id}/…`: multipart uploads in progress.

pub mod backend;
mod metrics;
mod objects;

pub use objects::Listed;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::host::{S3Host, VirtualHost};
use s3s::path::S3Path;
use s3s::{S3Result, s3_error};
use tandem_core::{ArchiveId, ArchiveSpec, Pipeline};

pub use backend::TandemS3;

/// The access key id that carries the admin token as its secret: full
/// access, for operators and for `tandem archive verify`.
pub const ADMIN_ACCESS_KEY: &str = "tandem-admin";

/// Who a verified signature belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Every bucket, every operation.
    Admin,
    /// One pipeline of an archive pair: writes its own bucket, reads both.
    Pipeline {
        archive: ArchiveId,
        pipeline: Pipeline,
    },
}

impl Principal {
    /// Whether this principal may write `bucket`.
    pub fn can_write(&self, bucket: &str) -> bool {
        match self {
            Self::Admin => true,
            Self::Pipeline { archive, pipeline } => archive.bucket(*pipeline) == bucket,
        }
    }

    /// Whether this principal may read `bucket`.
    pub fn can_read(&self, bucket: &str) -> bool {
        match self {
            Self::Admin => true,
            Self::Pipeline { archive, .. } => {
                Pipeline::BOTH.iter().any(|&p| archive.bucket(p) == bucket)
            }
        }
    }
}

/// The S3 keys the listener accepts, looked up on every request.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: RwLock<HashMap<String, (String, Principal)>>,
}

impl KeyRing {
    /// A key ring holding the admin key.
    pub fn new(admin_secret: &str) -> Self {
        let ring = Self::default();
        ring.write().insert(
            ADMIN_ACCESS_KEY.to_owned(),
            (admin_secret.to_owned(), Principal::Admin),
        );
        ring
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, (String, Principal)>> {
        self.keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds both keys of an archive pair.
    pub fn add_archive(&self, id: &ArchiveId, spec: &ArchiveSpec) {
        let mut keys = self.write();
        for p in Pipeline::BOTH {
            let k = spec.keys(p);
            keys.insert(
                k.access_key_id.clone(),
                (
                    k.secret_access_key.clone(),
                    Principal::Pipeline {
                        archive: id.clone(),
                        pipeline: p,
                    },
                ),
            );
        }
    }

    /// Removes both keys of an archive pair.
    pub fn remove_archive(&self, id: &ArchiveId) {
        self.write().retain(|_, (_, who)| match who {
            Principal::Pipeline { archive, .. } => archive != id,
            Principal::Admin => true,
        });
    }

    /// The principal behind an access key id.
    pub fn principal(&self, access_key: &str) -> Option<Principal> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(access_key)
            .map(|(_, p)| p.clone())
    }

    fn secret(&self, access_key: &str) -> Option<String> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(access_key)
            .map(|(s, _)| s.clone())
    }
}

/// SigV4 secrets for `s3s`'s verifier.
#[derive(Debug, Clone)]
struct Auth(Arc<KeyRing>);

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.secret(access_key) {
            Some(s) => Ok(SecretKey::from(s)),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
        }
    }
}

/// What an operation does to its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Read,
    Write,
    Admin,
}

fn need(op: &str) -> Need {
    match op {
        "PutObject"
        | "UploadPart"
        | "CreateMultipartUpload"
        | "CompleteMultipartUpload"
        | "AbortMultipartUpload"
        | "DeleteObject"
        | "DeleteObjects"
        | "CopyObject" => Need::Write,
        "CreateBucket" | "DeleteBucket" => Need::Admin,
        _ => Need::Read,
    }
}

/// Authorization, before any body byte is read: anonymous requests are
/// refused, a wrong region is refused the way S3 refuses it, and each
/// archive key writes only its own bucket.
#[derive(Debug, Clone)]
struct Access {
    keys: Arc<KeyRing>,
    region: String,
}

/// The region named in a SigV4 credential scope, from the `Authorization`
/// header or a presigned URL's `X-Amz-Credential`.
fn credential_region(cx: &S3AccessContext<'_>) -> Option<(String, bool)> {
    if let Some(auth) = cx
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let cred = auth.split("Credential=").nth(1)?;
        let scope = cred.split([',', ' ']).next()?;
        return scope.split('/').nth(2).map(|r| (r.to_owned(), false));
    }
    let query = cx.uri().query()?;
    let cred = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("X-Amz-Credential="))?;
    let cred = percent_encoding::percent_decode_str(cred)
        .decode_utf8()
        .ok()?;
    cred.split('/').nth(2).map(|r| (r.to_owned(), true))
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(creds) = cx.credentials() else {
            return Err(s3_error!(
                AccessDenied,
                "Anonymous access is refused: sign requests with an archive's key pair"
            ));
        };
        let Some(who) = self.keys.principal(&creds.access_key) else {
            return Err(s3_error!(InvalidAccessKeyId));
        };
        if let Some((region, presigned)) = credential_region(cx)
            && region != self.region
        {
            let msg = format!(
                "the region '{region}' is wrong; expecting '{}'",
                self.region
            );
            return Err(if presigned {
                s3_error!(AuthorizationQueryParametersError, "{msg}")
            } else {
                s3_error!(
                    AuthorizationHeaderMalformed,
                    "The authorization header is malformed; {msg}"
                )
            });
        }
        let need = need(cx.s3_op().name());
        let bucket = match cx.s3_path() {
            S3Path::Root => None,
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(&**bucket),
        };
        let allowed = match (need, bucket) {
            (_, None) => need != Need::Write || who == Principal::Admin,
            (Need::Admin, Some(_)) => who == Principal::Admin,
            (Need::Write, Some(b)) => who.can_write(b),
            (Need::Read, Some(b)) => who.can_read(b),
        };
        if allowed {
            Ok(())
        } else {
            Err(s3_error!(AccessDenied, "This key may not do that here"))
        }
    }
}

/// Virtual-host parsing: `{bucket}.{domain}` names a bucket; any other host
/// (an IP address, `localhost`, the machine's name) is path-style.
#[derive(Debug, Clone)]
struct Hosts {
    domains: Vec<String>,
}

impl S3Host for Hosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(']') => h,
            _ => host,
        };
        for d in &self.domains {
            if let Some(bucket) = name
                .strip_suffix(d.as_str())
                .and_then(|b| b.strip_suffix('.'))
                .filter(|b| !b.is_empty())
            {
                return Ok(VirtualHost::new(d.as_str()).with_bucket(bucket));
            }
        }
        Ok(VirtualHost::new(name))
    }
}

/// Settings of the S3 listener.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// The region clients must sign for.
    pub region: String,
    /// Domains under which `{bucket}.{domain}` is virtual-host style.
    pub domains: Vec<String>,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            region: "us-east-1".to_owned(),
            domains: vec!["localhost".to_owned()],
        }
    }
}

/// Builds the S3 service over `backend`.
pub fn service(
    backend: TandemS3,
    keys: Arc<KeyRing>,
    settings: &S3Settings,
) -> s3s::service::S3Service {
    let mut b = s3s::service::S3ServiceBuilder::new(backend);
    b.set_auth(Auth(keys.clone()));
    b.set_access(Access {
        keys,
        region: settings.region.clone(),
    });
    b.set_host(Hosts {
        domains: settings.domains.clone(),
    });
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_keys_write_their_own_bucket_and_read_both() {
        let id = ArchiveId::parse("news").unwrap();
        let p0 = Principal::Pipeline {
            archive: id.clone(),
            pipeline: Pipeline::P0,
        };
        assert!(p0.can_write("news-0"));
        assert!(!p0.can_write("news-1"));
        assert!(p0.can_read("news-1"));
        assert!(!p0.can_read("sport-0"));
        assert!(Principal::Admin.can_write("sport-1"));
    }

    #[test]
    fn hosts_split_virtual_host_style_from_path_style() {
        let h = Hosts {
            domains: vec!["localhost".into(), "s3.example.com".into()],
        };
        let bucket = |host: &str| {
            h.parse_host_header(host)
                .unwrap()
                .bucket()
                .map(str::to_owned)
        };
        assert_eq!(bucket("news-0.localhost:9000").as_deref(), Some("news-0"));
        assert_eq!(bucket("news-0.s3.example.com").as_deref(), Some("news-0"));
        assert_eq!(bucket("127.0.0.1:9000"), None);
        assert_eq!(bucket("localhost:9000"), None);
        assert_eq!(bucket("[::1]:9000"), None);
        assert_eq!(bucket("origin.example.net"), None);
    }
}
