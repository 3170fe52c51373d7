//! The status page's sign-in: a cookie proving the admin token was typed.
//!
//! The cookie holds an expiry and an HMAC-SHA256 of it keyed with the admin
//! token, never the token itself: it needs no server-side table, survives a
//! restart, and stops working when the token is changed. It is `HttpOnly`
//! (scripts cannot read it), `SameSite=Strict` (other sites cannot make the
//! browser send it) and `Secure` when Tandem serves TLS.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;

/// The cookie's name.
pub const COOKIE: &str = "tandem_session";
/// How long a sign-in lasts.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

fn mac(token: &str, expires: u64) -> Option<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(token.as_bytes()).ok()?;
    m.update(b"tandem status page session\n");
    m.update(expires.to_string().as_bytes());
    Some(m)
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A new session's cookie value, valid for [`LIFETIME`] from `now`.
pub fn issue(token: &str, now: SystemTime) -> String {
    let expires = unix(now) + LIFETIME.as_secs();
    let sig = mac(token, expires)
        .map(|m| URL_SAFE_NO_PAD.encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("{expires}.{sig}")
}

/// Whether a cookie value is a session signed with `token`, unexpired.
pub fn valid(token: &str, value: &str, now: SystemTime) -> bool {
    let Some((expires, sig)) = value.split_once('.') else {
        return false;
    };
    let Ok(expires) = expires.parse::<u64>() else {
        return false;
    };
    if expires <= unix(now) || expires > unix(now) + LIFETIME.as_secs() {
        return false;
    }
    let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
        return false;
    };
    mac(token, expires).is_some_and(|m| m.verify_slice(&sig).is_ok())
}

/// The session cookie's value among a request's cookies.
pub fn from_headers(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value that signs in (`value`) or out (`None`).
pub fn set_cookie(value: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match value {
        Some(v) => format!(
            "{COOKIE}={v}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            LIFETIME.as_secs()
        ),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn a_session_holds_until_it_expires() {
        let v = issue("tok", t(1_000_000));
        assert!(!v.contains("tok"));
        assert!(valid("tok", &v, t(1_000_000)));
        assert!(valid("tok", &v, t(1_000_000 + LIFETIME.as_secs() - 1)));
        assert!(!valid("tok", &v, t(1_000_000 + LIFETIME.as_secs())));
    }

    #[test]
    fn forged_or_foreign_sessions_fail() {
        let v = issue("tok", t(1_000_000));
        assert!(!valid("other", &v, t(1_000_000)));
        let (exp, sig) = v.split_once('.').unwrap();
        let later = exp.parse::<u64>().unwrap() + 10;
        assert!(!valid("tok", &format!("{later}.{sig}"), t(1_000_000)));
        for bad in [
            "",
            ".",
            "x.y",
            "1.",
            "99999999999999999999.aa",
            &v[..v.len() - 2],
        ] {
            assert!(!valid("tok", bad, t(1_000_000)), "{bad:?}");
        }
        // An expiry beyond a lifetime from now was not issued here.
        let far = 1_000_000 + 2 * LIFETIME.as_secs();
        let m = mac("tok", far).unwrap();
        let forged = format!(
            "{far}.{}",
            URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
        );
        assert!(!valid("tok", &forged, t(1_000_000)));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            http::header::COOKIE,
            "a=1; tandem_session=5.x".parse().unwrap(),
        );
        assert_eq!(from_headers(&h), Some("5.x"));
        assert!(set_cookie(Some("5.x"), true).contains("HttpOnly; SameSite=Strict"));
        assert!(set_cookie(None, false).contains("Max-Age=0"));
    }
}
