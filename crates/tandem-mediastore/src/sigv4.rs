//! AWS Signature Version 4 in the `Authorization` header, verified the way
//! botocore signs `mediastore-data` (sans-IO: the caller passes the time).
//!
//! The canonical request is
//! `METHOD \n URI \n QUERY \n HEADERS \n SIGNED-HEADERS \n PAYLOAD-HASH`, with
//! the wire path percent-encoded a second time (non-S3 services), the query
//! decoded, re-encoded and sorted, and the payload hash taken from
//! `x-amz-content-sha256` when present (PutObject sends `UNSIGNED-PAYLOAD`),
//! else supplied by the caller (SHA-256 of the body, of nothing for GET).

use std::time::{Duration, SystemTime};

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The signing name MediaStore's data plane uses in the credential scope.
pub const SERVICE: &str = "mediastore";
/// The payload hash of an empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// How far a request's `X-Amz-Date` may be from now, as AWS allows.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// RFC 3986 unreserved characters stay; everything else is encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// As [`UNRESERVED`], keeping `/` (paths).
const PATH: &AsciiSet = &UNRESERVED.remove(b'/');

/// Why a signature was refused. Each maps to the error AWS JSON services
/// answer with (all 403 except a malformed header).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Missing Authentication Token")]
    Missing,
    #[error("Authorization header is malformed: {0}")]
    Malformed(&'static str),
    #[error("The security token included in the request is invalid")]
    UnknownKey,
    #[error("Credential should be scoped to a valid region {expected} not {got}")]
    WrongRegion { expected: String, got: String },
    #[error("Credential should be scoped to correct service {SERVICE}")]
    WrongService,
    #[error("Signature expired: request time is more than 15 minutes from the server time")]
    Expired,
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method"
    )]
    Mismatch,
}

/// A parsed `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

impl Authorization {
    /// Parses the header; `None` for another scheme.
    pub fn parse(value: &str) -> Result<Self, AuthError> {
        let rest = value
            .strip_prefix("AWS4-HMAC-SHA256")
            .ok_or(AuthError::Malformed("only AWS4-HMAC-SHA256 is accepted"))?;
        let (mut cred, mut signed, mut sig) = (None, None, None);
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("Credential=") {
                cred = Some(v);
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                signed = Some(v);
            } else if let Some(v) = part.strip_prefix("Signature=") {
                sig = Some(v);
            }
        }
        let cred = cred.ok_or(AuthError::Malformed("no Credential"))?;
        let signed = signed.ok_or(AuthError::Malformed("no SignedHeaders"))?;
        let sig = sig.ok_or(AuthError::Malformed("no Signature"))?;
        let parts: Vec<&str> = cred.split('/').collect();
        let [access_key, date, region, service, terminator] = parts.as_slice() else {
            return Err(AuthError::Malformed(
                "Credential is not KEY/DATE/REGION/SERVICE/aws4_request",
            ));
        };
        if *terminator != "aws4_request" {
            return Err(AuthError::Malformed(
                "Credential does not end in aws4_request",
            ));
        }
        if sig.len() != 64 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuthError::Malformed("Signature is not 64 hex digits"));
        }
        Ok(Self {
            access_key: (*access_key).to_owned(),
            date: (*date).to_owned(),
            region: (*region).to_owned(),
            service: (*service).to_owned(),
            signed_headers: signed.split(';').map(str::to_owned).collect(),
            signature: sig.to_ascii_lowercase(),
        })
    }
}

/// What a verifier needs of a request, before its body.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// The path as it came on the wire (still percent-encoded).
    pub raw_path: &'a str,
    pub raw_query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

/// The payload hash the request claims in `x-amz-content-sha256`, if any.
pub fn claimed_payload_hash(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
}

/// Parses `X-Amz-Date` (`YYYYMMDDTHHMMSSZ`) into a time.
pub fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b.get(8) != Some(&b'T') || b.get(15) != Some(&b'Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se;
    u64::try_from(secs)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length; unreachable in practice.
        Err(_) => Vec::new(),
    }
}

fn canonical_query(raw: Option<&str>) -> String {
    let Some(raw) = raw.filter(|q| !q.is_empty()) else {
        return String::new();
    };
    let enc = |s: &str| {
        let decoded = percent_decode_str(s).decode_utf8_lossy();
        utf8_percent_encode(&decoded, UNRESERVED).to_string()
    };
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (enc(k), enc(v)),
            None => (enc(p), String::new()),
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn canonical_headers(auth: &Authorization, headers: &HeaderMap) -> Result<String, AuthError> {
    let mut out = String::new();
    for name in &auth.signed_headers {
        let values: Vec<String> = headers
            .get_all(name.as_str())
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        if values.is_empty() {
            return Err(AuthError::Mismatch);
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    Ok(out)
}

/// Removes `.` and `..` segments and empty ones (`//`), as AWS services
/// other than S3 (and botocore) do before encoding the path.
pub fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let first = if path.starts_with('/') { "/" } else { "" };
    let last = if path.ends_with('/') && !out.is_empty() {
        "/"
    } else {
        ""
    };
    format!("{first}{}{last}", out.join("/"))
}

/// The canonical request (exposed for tests and debugging).
pub fn canonical_request(
    req: &RequestHead<'_>,
    auth: &Authorization,
    payload_hash: &str,
) -> Result<String, AuthError> {
    let path = normalize_path(req.raw_path);
    let uri = utf8_percent_encode(&path, PATH).to_string();
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        uri,
        canonical_query(req.raw_query),
        canonical_headers(auth, req.headers)?,
        auth.signed_headers.join(";"),
        payload_hash
    ))
}

/// The signature of `req` under `secret`.
pub fn signature(
    req: &RequestHead<'_>,
    auth: &Authorization,
    amz_date: &str,
    secret: &str,
    payload_hash: &str,
) -> Result<String, AuthError> {
    let creq = canonical_request(req, auth, payload_hash)?;
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(creq.as_bytes())
    );
    let k = hmac(format!("AWS4{secret}").as_bytes(), auth.date.as_bytes());
    let k = hmac(&k, auth.region.as_bytes());
    let k = hmac(&k, auth.service.as_bytes());
    let k = hmac(&k, b"aws4_request");
    Ok(hex::encode(hmac(&k, to_sign.as_bytes())))
}

/// Checks the parts of a signature that do not need the body: header
/// syntax, scope (region, service, date), clock skew. Returns the parsed
/// header and the request's `X-Amz-Date`.
pub fn check_head(
    headers: &HeaderMap,
    region: &str,
    now: SystemTime,
) -> Result<(Authorization, String), AuthError> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::Malformed("not ASCII"))?;
    let auth = Authorization::parse(value)?;
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::Malformed("no X-Amz-Date header"))?
        .to_owned();
    let when = parse_amz_date(&amz_date).ok_or(AuthError::Malformed("bad X-Amz-Date"))?;
    if amz_date.get(..8) != Some(auth.date.as_str()) {
        return Err(AuthError::Malformed(
            "Credential date does not match X-Amz-Date",
        ));
    }
    if !auth
        .signed_headers
        .iter()
        .any(|h| h == "host" || h == ":authority")
    {
        return Err(AuthError::Malformed("host is not a signed header"));
    }
    if auth.region != region {
        return Err(AuthError::WrongRegion {
            expected: region.to_owned(),
            got: auth.region.clone(),
        });
    }
    if auth.service != SERVICE {
        return Err(AuthError::WrongService);
    }
    let skew = now.duration_since(when).unwrap_or_else(|e| e.duration());
    if skew > MAX_SKEW {
        return Err(AuthError::Expired);
    }
    Ok((auth, amz_date))
}

/// Verifies the signature with the key's secret and the payload hash.
pub fn verify(
    req: &RequestHead<'_>,
    auth: &Authorization,
    amz_date: &str,
    secret: &str,
    payload_hash: &str,
) -> Result<(), AuthError> {
    let expected = signature(req, auth, amz_date, secret, payload_hash)?;
    if bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(())
    } else {
        Err(AuthError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// Splits a captured request into method, path, query and headers.
    fn parse_capture(name: &str) -> (String, String, Option<String>, HeaderMap) {
        let path = format!(
            "{}/../../testdata/mediastore/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let raw = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&raw);
        let head = text.split("\r\n\r\n").next().unwrap();
        let mut lines = head.split("\r\n");
        let start: Vec<&str> = lines.next().unwrap().split(' ').collect();
        let (p, q) = match start[1].split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (start[1].to_owned(), None),
        };
        let mut headers = HeaderMap::new();
        for l in lines {
            let (k, v) = l.split_once(':').unwrap();
            headers.append(
                http::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
                v.trim().parse().unwrap(),
            );
        }
        (start[0].to_owned(), p, q, headers)
    }

    fn check_capture(name: &str) {
        let (method, path, query, headers) = parse_capture(name);
        let date = headers["x-amz-date"].to_str().unwrap().to_owned();
        let now = parse_amz_date(&date).unwrap();
        let (auth, amz_date) = check_head(&headers, "us-east-1", now).unwrap();
        assert_eq!(auth.service, "mediastore");
        assert_eq!(auth.region, "us-east-1");
        let payload = claimed_payload_hash(&headers).unwrap_or(EMPTY_SHA256);
        let req = RequestHead {
            method: &method,
            raw_path: &path,
            raw_query: query.as_deref(),
            headers: &headers,
        };
        verify(&req, &auth, &amz_date, SECRET, payload).unwrap();
        assert_eq!(
            verify(&req, &auth, &amz_date, "wrong", payload),
            Err(AuthError::Mismatch)
        );
        // Too late, wrong region.
        assert_eq!(
            check_head(&headers, "us-east-1", now + Duration::from_secs(16 * 60)).unwrap_err(),
            AuthError::Expired
        );
        assert!(matches!(
            check_head(&headers, "eu-west-1", now),
            Err(AuthError::WrongRegion { .. })
        ));
    }

    #[test]
    fn botocore_signatures_from_the_captures_verify() {
        for name in [
            "put-object.http",
            "list-items.http",
            "get-object-range.http",
            "list-items-container-endpoint.http",
            "put-object-container-endpoint.http",
        ] {
            check_capture(name);
        }
    }

    #[test]
    fn paths_normalize_like_botocore() {
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path("/a//b/./c/../d/"), "/a/b/d/");
        assert_eq!(normalize_path("/../.."), "/");
    }

    #[test]
    fn amz_dates_parse() {
        assert_eq!(
            parse_amz_date("19700102T000001Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(86_401))
        );
        assert_eq!(
            parse_amz_date("20000301T000000Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(951_868_800))
        );
        for bad in [
            "",
            "2000",
            "20001301T000000Z",
            "2000010100000000",
            "2000-1-1T00:00Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn malformed_headers_are_refused_not_panicked_on() {
        for bad in [
            "",
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=host, Signature=00",
            "Basic abc",
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=zz",
        ] {
            assert!(Authorization::parse(bad).is_err(), "{bad}");
        }
    }
}
