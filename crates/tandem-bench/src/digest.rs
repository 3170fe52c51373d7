//! An HTTP Digest client (RFC 7616, `qop=auth`, SHA-256 or MD5), as an
//! encoder's WebDAV output authenticates: it learns a nonce from a `401`,
//! then signs each request with it and a rising nonce-count until the
//! server calls the nonce stale.

use md5::Md5;
use sha2::{Digest as _, Sha256};

use crate::client::{BodyMode, Conn, Resp};

/// One user's Digest state: the current challenge and nonce-count.
#[derive(Debug, Clone)]
pub struct DigestAuth {
    pub user: String,
    pub password: String,
    challenge: Option<Challenge>,
    nc: u32,
    cnonce: u64,
}

#[derive(Debug, Clone)]
struct Challenge {
    realm: String,
    nonce: String,
    opaque: Option<String>,
    sha256: bool,
}

fn param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    // Parameters are `name=value` or `name="value"`, comma-separated; the
    // values Tandem sends contain no commas or quotes.
    challenge.split(',').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        let k = k.trim().rsplit(' ').next()?;
        k.eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"'))
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl DigestAuth {
    pub fn new(user: &str, password: &str) -> Self {
        Self {
            user: user.to_owned(),
            password: password.to_owned(),
            challenge: None,
            nc: 0,
            cnonce: 0x5eed,
        }
    }

    /// Takes the first Digest challenge of a `401` (SHA-256 preferred).
    /// Returns whether one was found.
    pub fn learn(&mut self, resp: &Resp) -> bool {
        let all: Vec<&str> = resp
            .head
            .values("www-authenticate")
            .filter(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("digest "))
            .collect();
        let pick = all
            .iter()
            .find(|c| param(c, "algorithm").is_some_and(|a| a.eq_ignore_ascii_case("SHA-256")))
            .or_else(|| all.first());
        let Some(c) = pick else { return false };
        let (Some(realm), Some(nonce)) = (param(c, "realm"), param(c, "nonce")) else {
            return false;
        };
        self.challenge = Some(Challenge {
            realm: realm.to_owned(),
            nonce: nonce.to_owned(),
            opaque: param(c, "opaque").map(str::to_owned),
            sha256: param(c, "algorithm").is_some_and(|a| a.eq_ignore_ascii_case("SHA-256")),
        });
        self.nc = 0;
        true
    }

    /// The `Authorization` value for a request, once a challenge is known.
    pub fn header(&mut self, method: &str, uri: &str) -> Option<String> {
        let c = self.challenge.as_ref()?;
        self.nc += 1;
        self.cnonce = self
            .cnonce
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1);
        let h = |s: String| -> String {
            if c.sha256 {
                hex(&Sha256::digest(s.as_bytes()))
            } else {
                hex(&Md5::digest(s.as_bytes()))
            }
        };
        let nc = format!("{:08x}", self.nc);
        let cnonce = format!("{:016x}", self.cnonce);
        let ha1 = h(format!("{}:{}:{}", self.user, c.realm, self.password));
        let ha2 = h(format!("{method}:{uri}"));
        let response = h(format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", c.nonce));
        let mut v = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", algorithm={}, response=\"{response}\", qop=auth, nc={nc}, cnonce=\"{cnonce}\"",
            self.user,
            c.realm,
            c.nonce,
            if c.sha256 { "SHA-256" } else { "MD5" }
        );
        if let Some(o) = &c.opaque {
            v.push_str(&format!(", opaque=\"{o}\""));
        }
        Some(v)
    }

    /// One request with Digest: signed with the current nonce, and sent
    /// again (at most twice) when the server answers `401` with a new one.
    pub async fn request(
        &mut self,
        conn: &mut Conn,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<Resp> {
        let mut last = None;
        for _ in 0..3 {
            let auth = self.header(method, path);
            let mut headers: Vec<(&str, &str)> = extra.to_vec();
            if let Some(a) = &auth {
                headers.push(("Authorization", a));
            }
            let r = conn
                .request_with(method, path, &headers, body, BodyMode::Keep)
                .await?;
            if r.status != 401 || !self.learn(&r) {
                return Ok(r);
            }
            last = Some(r);
        }
        last.ok_or_else(|| anyhow::anyhow!("{method} {path}: no answer"))
    }
}
