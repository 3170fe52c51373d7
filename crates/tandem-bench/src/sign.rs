//! SigV4 request signing for the MediaStore-style loads, by `aws-sigv4`
//! (the AWS SDKs' own signer, not the server's verifier), with service
//! name `mediastore` as `aws mediastore-data` signs.
//!
//! Every request is signed when it is sent, with the time then: that is
//! what an encoder pays per segment. The loads sign requests to nginx the
//! same way (nginx ignores the headers), so the client's cost is the same
//! on both sides of a ratio.

use std::time::SystemTime;

use anyhow::Context;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;

/// The SHA-256 of an empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// How a PUT's body is covered by the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// `x-amz-content-sha256: UNSIGNED-PAYLOAD`, as botocore sends
    /// PutObject: the server hashes the body anyway, for `ContentSHA256`.
    Unsigned,
    /// `x-amz-content-sha256: <hex>`: the server checks the body against it.
    /// The hash is the caller's (computed once per body, not per request).
    Header(String),
    /// The body's hash is signed but not sent: the server must read the
    /// whole body before it can verify the signature.
    Body(String),
    /// No body (GET, HEAD, DELETE).
    Empty,
}

/// Signs requests for one access key.
pub struct Signer {
    credentials: Credentials,
    region: String,
    service: &'static str,
}

impl Signer {
    /// Signs for `mediastore`, as `aws mediastore-data` does.
    pub fn new(access_key: &str, secret_key: &str, region: &str) -> Self {
        Self::for_service(access_key, secret_key, region, "mediastore")
    }

    /// Signs for another service name (`s3` for the S3 listener).
    pub fn for_service(
        access_key: &str,
        secret_key: &str,
        region: &str,
        service: &'static str,
    ) -> Self {
        Self {
            credentials: Credentials::new(access_key, secret_key, None, None, "tandem-bench"),
            region: region.to_owned(),
            service,
        }
    }

    /// The headers to add to a request (`x-amz-date`, `authorization`,
    /// and `x-amz-content-sha256` when the payload mode sends it).
    /// `headers` are the request's own headers to sign, `host` included.
    pub fn sign(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        payload: &Payload,
        now: SystemTime,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let identity = self.credentials.clone().into();
        let mut settings = SigningSettings::default();
        let body = match payload {
            Payload::Unsigned => {
                settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
                SignableBody::UnsignedPayload
            }
            Payload::Header(h) => {
                settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
                SignableBody::Precomputed(h.clone())
            }
            Payload::Body(h) => SignableBody::Precomputed(h.clone()),
            Payload::Empty => SignableBody::Precomputed(EMPTY_SHA256.to_owned()),
        };
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service)
            .time(now)
            .settings(settings)
            .build()
            .context("SigV4 parameters")?
            .into();
        let url = format!("http://{host}{path}");
        let signable = SignableRequest::new(method, url.as_str(), headers.iter().copied(), body)
            .context("cannot sign the request")?;
        let (instructions, _) = sign(signable, &params)
            .context("cannot sign the request")?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }
}
