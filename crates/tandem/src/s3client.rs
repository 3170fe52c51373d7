//! A small blocking S3 client for the archive commands: list, get, put,
//! path-style, signed with SigV4 by `aws-sigv4`, over `ureq`.
//!
//! The archive verifier needs four calls against any S3 endpoint (Tandem's
//! own listener, AWS, MinIO); a full SDK would add an async runtime and a
//! C crypto build for them.

use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode,
    sign,
};
use aws_sigv4::sign::v4;

/// Where and as whom to talk S3.
#[derive(Debug, Clone)]
pub struct S3Client {
    endpoint: String,
    region: String,
    access_key: String,
    secret_key: String,
    agent: ureq::Agent,
}

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
}

/// Percent-encodes a key for a path, keeping `/` (SigV4's URI encoding).
fn encode_key(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn encode_query(v: &str) -> String {
    encode_key(v).replace('/', "%2F")
}

impl S3Client {
    pub fn new(
        endpoint: &str,
        region: &str,
        access_key: &str,
        secret_key: &str,
    ) -> anyhow::Result<Self> {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .into();
        Ok(Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region: region.to_owned(),
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            agent,
        })
    }

    /// Sends one signed request; returns status and body.
    fn call(
        &self,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let url = format!("{}{path_and_query}", self.endpoint);
        let identity =
            Credentials::new(&self.access_key, &self.secret_key, None, None, "tandem").into();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .context("SigV4 parameters")?
            .into();
        let host = url
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_default()
            .to_owned();
        let signable = SignableRequest::new(
            method,
            url.as_str(),
            [("host", host.as_str())].into_iter(),
            SignableBody::Bytes(body),
        )
        .context("cannot sign the request")?;
        let (instructions, _) = sign(signable, &params)
            .context("cannot sign the request")?
            .into_parts();
        let mut req = http::Request::builder().method(method).uri(&url);
        for (name, value) in instructions.headers() {
            req = req.header(name, value);
        }
        let req = req.body(body.to_vec()).context("bad request")?;
        let resp = self
            .agent
            .run(req)
            .with_context(|| format!("cannot reach the S3 endpoint {}", self.endpoint))?;
        let status = resp.status().as_u16();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_body().into_reader(), &mut out)
            .context("cannot read the S3 answer")?;
        Ok((status, out))
    }

    fn fail(op: &str, status: u16, body: &[u8]) -> anyhow::Error {
        let text = String::from_utf8_lossy(body);
        let code = xml_values(&text, "Code").into_iter().next();
        let msg = xml_values(&text, "Message").into_iter().next();
        anyhow::anyhow!(
            "{op}: HTTP {status} {} {}",
            code.unwrap_or_default(),
            msg.unwrap_or_default()
        )
    }

    /// Every object under `prefix`, following continuation tokens.
    pub fn list(&self, bucket: &str, prefix: &str) -> anyhow::Result<Vec<Listed>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..100_000 {
            let mut q = format!("list-type=2&prefix={}", encode_query(prefix));
            if let Some(t) = &token {
                q.push_str(&format!("&continuation-token={}", encode_query(t)));
            }
            let (status, body) = self.call("GET", &format!("/{bucket}?{q}"), b"")?;
            if status != 200 {
                return Err(Self::fail(
                    &format!("list s3://{bucket}/{prefix}"),
                    status,
                    &body,
                ));
            }
            let text = String::from_utf8_lossy(&body);
            for contents in xml_blocks(&text, "Contents") {
                let key = xml_values(contents, "Key").into_iter().next();
                let size = xml_values(contents, "Size")
                    .into_iter()
                    .next()
                    .and_then(|s| s.parse().ok());
                if let (Some(key), Some(size)) = (key, size) {
                    out.push(Listed { key, size });
                }
            }
            let truncated =
                xml_values(&text, "IsTruncated").first().map(String::as_str) == Some("true");
            token = xml_values(&text, "NextContinuationToken")
                .into_iter()
                .next();
            if !truncated || token.is_none() {
                return Ok(out);
            }
        }
        bail!("listing s3://{bucket}/{prefix} did not end")
    }

    /// An object's bytes.
    pub fn get(&self, bucket: &str, key: &str) -> anyhow::Result<Vec<u8>> {
        let (status, body) = self.call("GET", &format!("/{bucket}/{}", encode_key(key)), b"")?;
        if status != 200 {
            return Err(Self::fail(
                &format!("get s3://{bucket}/{key}"),
                status,
                &body,
            ));
        }
        Ok(body)
    }

    /// Writes an object.
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let (status, body) = self.call("PUT", &format!("/{bucket}/{}", encode_key(key)), bytes)?;
        if status != 200 {
            return Err(Self::fail(
                &format!("put s3://{bucket}/{key}"),
                status,
                &body,
            ));
        }
        Ok(())
    }
}

/// The texts of `<tag>…</tag>` elements, unescaped.
fn xml_values(text: &str, tag: &str) -> Vec<String> {
    xml_blocks(text, tag)
        .into_iter()
        .map(|v| {
            v.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&")
        })
        .collect()
}

/// The raw contents of `<tag>…</tag>` elements (S3 answers have no
/// attributes on the elements read here).
fn xml_blocks<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_xml_is_read() {
        let xml = "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a&amp;b.ts</Key><Size>376</Size></Contents><Contents><Key>c.ts</Key><Size>0</Size></Contents><NextContinuationToken>xyz</NextContinuationToken></ListBucketResult>";
        let blocks = xml_blocks(xml, "Contents");
        assert_eq!(blocks.len(), 2);
        assert_eq!(xml_values(blocks[0], "Key"), vec!["a&b.ts"]);
        assert_eq!(xml_values(xml, "NextContinuationToken"), vec!["xyz"]);
        assert_eq!(encode_key("a b/c+d.ts"), "a%20b/c%2Bd.ts");
    }
}
