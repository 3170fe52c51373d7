//! The ingest `Authorization` parsers (Basic and Digest, MD5 and SHA-256)
//! over arbitrary headers: never a panic, and nothing but the right
//! credentials is ever accepted.
#![no_main]

use std::time::{Duration, SystemTime};

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use tandem_core::InputCredentials;
use tandem_server::auth::{Authenticator, Scheme};

fuzz_target!(|data: (&str, &str, &str)| {
    let (header, method, uri) = data;
    let auth = Authenticator::new(
        Duration::from_secs(300),
        vec![Scheme::DigestSha256, Scheme::DigestMd5, Scheme::Basic],
    );
    let creds = InputCredentials {
        username: "news_0".into(),
        password: "s3cret-Pa55".into(),
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let _ = auth.challenges(now, false);
    if auth.verify(now, Some(header), method, uri, &creds).is_ok() {
        // Only Basic with exactly these credentials can pass: a Digest
        // answer needs a nonce this server issued, which fuzzing cannot mint.
        let (scheme, rest) = header.trim().split_once(' ').unwrap_or_default();
        assert!(scheme.eq_ignore_ascii_case("basic"), "accepted {header:?}");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .expect("accepted Basic credentials are base64");
        assert_eq!(decoded, b"news_0:s3cret-Pa55", "accepted {header:?}");
    }
});
