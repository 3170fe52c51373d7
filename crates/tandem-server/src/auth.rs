//! HTTP authentication for ingest: Digest (RFC 7616) and Basic (RFC 7617).
//!
//! Written here because no crate verifies Digest on the server side.
//!
//! Nonces are stateless: `base64url(issued_at ‖ random ‖ HMAC-SHA-256(key,
//! issued_at ‖ random)[..16])`, so any nonce this process issued can be
//! checked without a table, and one that is older than the nonce lifetime
//! is answered with `stale=true` (RFC 7616 §3.3) so clients retry without
//! asking the user again. Replay protection is the one piece of state: the
//! highest nonce-count seen per nonce, kept until that nonce expires. A
//! captured request (same nonce, same `nc`) is therefore refused.
//!
//! Every 401 carries a fresh nonce: ffmpeg and curl open a new connection
//! per upload and authenticate with `nc=00000001` on the nonce of the 401
//! they just received.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tandem_core::InputCredentials;

/// The realm named in every challenge.
pub const REALM: &str = "tandem";

/// A scheme the server offers in its 401 challenges, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    DigestSha256,
    DigestMd5,
    Basic,
}

impl Scheme {
    /// What operators write in the configuration.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "digest-sha256" | "digest-sha-256" => Some(Self::DigestSha256),
            "digest-md5" | "digest" => Some(Self::DigestMd5),
            "basic" => Some(Self::Basic),
            _ => None,
        }
    }
}

/// Why a request was not authenticated. Each becomes a 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("no credentials")]
    Missing,
    #[error("unsupported authorization scheme")]
    UnsupportedScheme,
    #[error("malformed authorization header: {0}")]
    Malformed(&'static str),
    #[error("wrong username or password")]
    WrongCredentials,
    #[error("nonce expired")]
    Stale,
    #[error("nonce not issued by this server")]
    ForeignNonce,
    #[error("nonce count {nc:08x} replayed (highest seen {seen:08x})")]
    Replayed { nc: u32, seen: u32 },
    #[error("digest uri {0:?} does not match the request")]
    UriMismatch(String),
    #[error("digest algorithm {0:?} is not supported")]
    UnsupportedAlgorithm(String),
}

#[derive(Debug)]
struct NonceUse {
    highest_nc: u32,
    issued: u64,
}

/// Verifies Basic and Digest credentials and issues challenges.
#[derive(Debug)]
pub struct Authenticator {
    key: [u8; 32],
    nonce_lifetime: Duration,
    schemes: Vec<Scheme>,
    seen: Mutex<HashMap<String, NonceUse>>,
}

type HmacSha256 = Hmac<Sha256>;

/// Upper bound on remembered nonces; beyond it the oldest are forgotten,
/// which only makes their holders re-authenticate (their nc check fails
/// closed: a forgotten nonce is treated as stale).
const MAX_TRACKED_NONCES: usize = 200_000;

impl Authenticator {
    pub fn new(nonce_lifetime: Duration, schemes: Vec<Scheme>) -> Self {
        let mut key = [0u8; 32];
        crate::util::fill_random(&mut key);
        Self {
            key,
            nonce_lifetime,
            schemes,
            seen: Mutex::default(),
        }
    }

    fn unix(now: SystemTime) -> u64 {
        now.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    fn mac(&self, msg: &[u8]) -> [u8; 16] {
        let mut out = [0u8; 16];
        if let Ok(mut m) = HmacSha256::new_from_slice(&self.key) {
            m.update(msg);
            let full = m.finalize().into_bytes();
            out.copy_from_slice(&full[..16]);
        }
        out
    }

    /// A fresh nonce, valid for the nonce lifetime from `now`.
    pub fn nonce(&self, now: SystemTime) -> String {
        let mut raw = [0u8; 32];
        raw[..8].copy_from_slice(&Self::unix(now).to_be_bytes());
        crate::util::fill_random(&mut raw[8..16]);
        let mac = self.mac(&raw[..16]);
        raw[16..].copy_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a nonce's origin and age; returns when it was issued.
    fn check_nonce(&self, nonce: &str, now: SystemTime) -> Result<u64, AuthError> {
        let raw = URL_SAFE_NO_PAD
            .decode(nonce)
            .map_err(|_| AuthError::ForeignNonce)?;
        if raw.len() != 32 {
            return Err(AuthError::ForeignNonce);
        }
        let (msg, mac) = raw.split_at(16);
        if !bool::from(self.mac(msg).ct_eq(mac)) {
            return Err(AuthError::ForeignNonce);
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&msg[..8]);
        let issued = u64::from_be_bytes(ts);
        let now = Self::unix(now);
        if now.saturating_sub(issued) > self.nonce_lifetime.as_secs() || issued > now + 60 {
            return Err(AuthError::Stale);
        }
        Ok(issued)
    }

    /// The `WWW-Authenticate` values for a 401, strongest first (RFC 7616
    /// §3.7). `stale` tells Digest clients to retry with the new nonce.
    ///
    /// Order matters beyond the RFC: ffmpeg 5.1 answers the last Digest
    /// challenge it reads and computes only MD5, so MD5 must come after
    /// SHA-256 (testdata/captures/README.md).
    pub fn challenges(&self, now: SystemTime, stale: bool) -> Vec<String> {
        let nonce = self.nonce(now);
        let stale = if stale { ", stale=true" } else { "" };
        self.schemes
            .iter()
            .map(|s| match s {
                Scheme::DigestSha256 => format!(
                    "Digest realm=\"{REALM}\", qop=\"auth\", algorithm=SHA-256, nonce=\"{nonce}\", opaque=\"{REALM}\"{stale}"
                ),
                Scheme::DigestMd5 => format!(
                    "Digest realm=\"{REALM}\", qop=\"auth\", algorithm=MD5, nonce=\"{nonce}\", opaque=\"{REALM}\"{stale}"
                ),
                Scheme::Basic => format!("Basic realm=\"{REALM}\", charset=\"UTF-8\""),
            })
            .collect()
    }

    /// Verifies an `Authorization` header for a request with `method` and
    /// request-target `uri` against one input's credentials.
    pub fn verify(
        &self,
        now: SystemTime,
        header: Option<&str>,
        method: &str,
        uri: &str,
        creds: &InputCredentials,
    ) -> Result<(), AuthError> {
        let header = header.ok_or(AuthError::Missing)?.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") && self.schemes.contains(&Scheme::Basic) {
            return verify_basic(rest.trim(), creds);
        }
        if scheme.eq_ignore_ascii_case("digest")
            && self
                .schemes
                .iter()
                .any(|s| matches!(s, Scheme::DigestMd5 | Scheme::DigestSha256))
        {
            return self.verify_digest(now, rest, method, uri, creds);
        }
        Err(AuthError::UnsupportedScheme)
    }

    fn verify_digest(
        &self,
        now: SystemTime,
        params: &str,
        method: &str,
        request_uri: &str,
        creds: &InputCredentials,
    ) -> Result<(), AuthError> {
        let p = parse_params(params).ok_or(AuthError::Malformed("bad parameter list"))?;
        let get = |k: &str| {
            p.iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        let username = get("username").ok_or(AuthError::Malformed("no username"))?;
        let nonce = get("nonce").ok_or(AuthError::Malformed("no nonce"))?;
        let uri = get("uri").ok_or(AuthError::Malformed("no uri"))?;
        let response = get("response").ok_or(AuthError::Malformed("no response"))?;
        let qop = get("qop").ok_or(AuthError::Malformed("qop=auth is required"))?;
        let nc = get("nc").ok_or(AuthError::Malformed("no nc"))?;
        let cnonce = get("cnonce").ok_or(AuthError::Malformed("no cnonce"))?;
        if get("realm") != Some(REALM) {
            return Err(AuthError::WrongCredentials);
        }
        if !qop.eq_ignore_ascii_case("auth") {
            return Err(AuthError::Malformed("only qop=auth is supported"));
        }
        let nc_value =
            u32::from_str_radix(nc, 16).map_err(|_| AuthError::Malformed("nc is not hex"))?;
        let algorithm = get("algorithm").unwrap_or("MD5");
        type Hash = fn(&[u8]) -> String;
        let (hash, sess, offered): (Hash, bool, Scheme) =
            match algorithm.to_ascii_uppercase().as_str() {
                "MD5" => (md5_hex, false, Scheme::DigestMd5),
                "MD5-SESS" => (md5_hex, true, Scheme::DigestMd5),
                "SHA-256" => (sha256_hex, false, Scheme::DigestSha256),
                "SHA-256-SESS" => (sha256_hex, true, Scheme::DigestSha256),
                _ => return Err(AuthError::UnsupportedAlgorithm(algorithm.to_owned())),
            };
        if !self.schemes.contains(&offered) {
            return Err(AuthError::UnsupportedAlgorithm(algorithm.to_owned()));
        }
        // RFC 7616 §3.4.6: the uri parameter must name the request-target.
        if uri != request_uri {
            return Err(AuthError::UriMismatch(uri.to_owned()));
        }
        let issued = self.check_nonce(nonce, now)?;
        let mut ha1 = hash(format!("{}:{REALM}:{}", creds.username, creds.password).as_bytes());
        if sess {
            ha1 = hash(format!("{ha1}:{nonce}:{cnonce}").as_bytes());
        }
        let ha2 = hash(format!("{method}:{uri}").as_bytes());
        let expected = hash(format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}").as_bytes());
        let user_ok = username.as_bytes().ct_eq(creds.username.as_bytes());
        let resp_ok = expected
            .as_bytes()
            .ct_eq(response.to_ascii_lowercase().as_bytes());
        if !bool::from(user_ok & resp_ok) {
            return Err(AuthError::WrongCredentials);
        }
        self.record_nc(nonce, nc_value, issued, now)
    }

    /// Accepts `nc` only if it is higher than any seen for this nonce.
    fn record_nc(
        &self,
        nonce: &str,
        nc: u32,
        issued: u64,
        now: SystemTime,
    ) -> Result<(), AuthError> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(u) = seen.get_mut(nonce) {
            if nc <= u.highest_nc {
                return Err(AuthError::Replayed {
                    nc,
                    seen: u.highest_nc,
                });
            }
            u.highest_nc = nc;
            return Ok(());
        }
        if seen.len() >= MAX_TRACKED_NONCES {
            let horizon = Self::unix(now).saturating_sub(self.nonce_lifetime.as_secs());
            seen.retain(|_, u| u.issued >= horizon);
            if seen.len() >= MAX_TRACKED_NONCES {
                return Err(AuthError::Stale);
            }
        }
        seen.insert(
            nonce.to_owned(),
            NonceUse {
                highest_nc: nc,
                issued,
            },
        );
        Ok(())
    }
}

fn verify_basic(b64: &str, creds: &InputCredentials) -> Result<(), AuthError> {
    let raw = STANDARD
        .decode(b64)
        .map_err(|_| AuthError::Malformed("basic credentials are not base64"))?;
    let text = String::from_utf8(raw)
        .map_err(|_| AuthError::Malformed("basic credentials are not UTF-8"))?;
    let (user, pass) = text
        .split_once(':')
        .ok_or(AuthError::Malformed("basic credentials lack ':'"))?;
    let ok = user.as_bytes().ct_eq(creds.username.as_bytes())
        & pass.as_bytes().ct_eq(creds.password.as_bytes());
    if bool::from(ok) {
        Ok(())
    } else {
        Err(AuthError::WrongCredentials)
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn md5_hex(data: &[u8]) -> String {
    hex(&Md5::digest(data))
}

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Parses `k=v, k="quoted, value"` lists (RFC 7235 auth-param).
fn parse_params(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim().to_owned();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(q) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => v.push(c),
                }
            }
            let end = end?;
            value = v;
            rest = &q[end + 1..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        out.push((key, value));
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> InputCredentials {
        InputCredentials {
            username: "news_0".into(),
            password: "s3cret".into(),
        }
    }

    fn auth() -> Authenticator {
        Authenticator::new(
            Duration::from_secs(300),
            vec![Scheme::DigestSha256, Scheme::DigestMd5, Scheme::Basic],
        )
    }

    /// What a client computes, per RFC 7616 §3.4.1.
    fn client_header(
        alg: &str,
        nonce: &str,
        nc: &str,
        method: &str,
        uri: &str,
        password: &str,
    ) -> String {
        let h: fn(&[u8]) -> String = if alg == "SHA-256" {
            sha256_hex
        } else {
            md5_hex
        };
        let ha1 = h(format!("news_0:{REALM}:{password}").as_bytes());
        let ha2 = h(format!("{method}:{uri}").as_bytes());
        let resp = h(format!("{ha1}:{nonce}:{nc}:abc:auth:{ha2}").as_bytes());
        format!(
            "Digest username=\"news_0\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", algorithm={alg}, response=\"{resp}\", qop=auth, nc={nc}, cnonce=\"abc\""
        )
    }

    #[test]
    fn rfc7616_example_response_is_reproduced() {
        // RFC 7616 §3.9.1, MD5 and SHA-256 responses for Mufasa.
        let ha1 = md5_hex(b"Mufasa:http-auth@example.org:Circle of Life");
        let ha2 = md5_hex(b"GET:/dir/index.html");
        let r = md5_hex(
            format!("{ha1}:7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v:00000001:f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ:auth:{ha2}").as_bytes(),
        );
        assert_eq!(r, "8ca523f5e9506fed4657c9700eebdbec");
        let ha1 = sha256_hex(b"Mufasa:http-auth@example.org:Circle of Life");
        let ha2 = sha256_hex(b"GET:/dir/index.html");
        let r = sha256_hex(
            format!("{ha1}:7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v:00000001:f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ:auth:{ha2}").as_bytes(),
        );
        assert_eq!(
            r,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn digest_md5_and_sha256_are_accepted_once_per_nonce_count() {
        let a = auth();
        let now = SystemTime::now();
        for alg in ["MD5", "SHA-256"] {
            let nonce = a.nonce(now);
            let h = client_header(alg, &nonce, "00000001", "PUT", "/in/news/0/a.ts", "s3cret");
            assert_eq!(
                a.verify(now, Some(&h), "PUT", "/in/news/0/a.ts", &creds()),
                Ok(())
            );
            assert_eq!(
                a.verify(now, Some(&h), "PUT", "/in/news/0/a.ts", &creds()),
                Err(AuthError::Replayed { nc: 1, seen: 1 })
            );
            let h2 = client_header(alg, &nonce, "00000002", "PUT", "/in/news/0/a.ts", "s3cret");
            assert_eq!(
                a.verify(now, Some(&h2), "PUT", "/in/news/0/a.ts", &creds()),
                Ok(())
            );
        }
    }

    #[test]
    fn digest_refuses_wrong_password_other_uri_and_foreign_or_old_nonces() {
        let a = auth();
        let now = SystemTime::now();
        let nonce = a.nonce(now);
        let bad = client_header("MD5", &nonce, "00000001", "PUT", "/in/news/0/a.ts", "guess");
        assert_eq!(
            a.verify(now, Some(&bad), "PUT", "/in/news/0/a.ts", &creds()),
            Err(AuthError::WrongCredentials)
        );
        let moved = client_header(
            "MD5",
            &nonce,
            "00000001",
            "PUT",
            "/in/news/0/a.ts",
            "s3cret",
        );
        assert!(matches!(
            a.verify(now, Some(&moved), "PUT", "/in/news/1/a.ts", &creds()),
            Err(AuthError::UriMismatch(_))
        ));
        let other = auth().nonce(now);
        let foreign = client_header("MD5", &other, "00000001", "PUT", "/x", "s3cret");
        assert_eq!(
            a.verify(now, Some(&foreign), "PUT", "/x", &creds()),
            Err(AuthError::ForeignNonce)
        );
        let later = now + Duration::from_secs(301);
        let old = client_header("MD5", &nonce, "00000001", "PUT", "/x", "s3cret");
        assert_eq!(
            a.verify(later, Some(&old), "PUT", "/x", &creds()),
            Err(AuthError::Stale)
        );
    }

    #[test]
    fn basic_checks_user_and_password() {
        let a = auth();
        let now = SystemTime::now();
        let ok = format!("Basic {}", STANDARD.encode("news_0:s3cret"));
        let bad = format!("Basic {}", STANDARD.encode("news_0:nope"));
        assert_eq!(a.verify(now, Some(&ok), "GET", "/", &creds()), Ok(()));
        assert_eq!(
            a.verify(now, Some(&bad), "GET", "/", &creds()),
            Err(AuthError::WrongCredentials)
        );
        assert_eq!(
            a.verify(now, None, "GET", "/", &creds()),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn challenges_offer_every_configured_scheme_with_a_fresh_nonce() {
        let a = auth();
        let now = SystemTime::now();
        let c1 = a.challenges(now, false);
        let c2 = a.challenges(now, true);
        assert_eq!(c1.len(), 3);
        assert!(
            c1[0].contains("algorithm=SHA-256")
                && c1[1].contains("algorithm=MD5")
                && c1[2].starts_with("Basic")
        );
        assert_ne!(c1[0], c2[0].replace(", stale=true", ""));
        assert!(c2[0].ends_with("stale=true"));
    }

    #[test]
    fn param_lists_parse_quotes_and_escapes() {
        let p = parse_params(r#"a="x, y", b=tok ,c="q\"d""#).unwrap();
        assert_eq!(
            p,
            vec![
                ("a".into(), "x, y".into()),
                ("b".into(), "tok".into()),
                ("c".into(), "q\"d".into())
            ]
        );
        assert_eq!(parse_params(r#"a="open"#), None);
    }
}
