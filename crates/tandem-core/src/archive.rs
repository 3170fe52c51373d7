//! Archive pairs: two S3 buckets, one per pipeline, that an encoder's
//! archive output writes to, and the key pair that opens each.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::name::Pipeline;

/// Why an archive id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "archive id {0:?} is invalid: use 1 to 61 characters of a-z, 0-9 and '-', starting and \
     ending with a letter or digit (its buckets are named <id>-0 and <id>-1)"
)]
pub struct BadArchiveId(pub String);

/// An archive pair's id. Its buckets are `{id}-0` and `{id}-1`, so the id
/// obeys S3's bucket naming rules with two characters to spare.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArchiveId(String);

impl ArchiveId {
    /// Longest accepted id: S3 bucket names end at 63 bytes.
    pub const MAX_LEN: usize = 61;

    pub fn parse(s: &str) -> Result<Self, BadArchiveId> {
        if is_pair_id(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(BadArchiveId(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The bucket that pipeline `p` writes.
    pub fn bucket(&self, p: Pipeline) -> String {
        format!("{}-{p}", self.0)
    }
}

impl fmt::Display for ArchiveId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id rule of a pair whose members are named `{id}-0` and `{id}-1`
/// (archive buckets, MediaStore containers): S3's bucket naming rules with
/// two characters to spare.
pub(crate) fn is_pair_id(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !s.is_empty()
        && s.len() <= ArchiveId::MAX_LEN
        && s.bytes().all(|b| alnum(b) || b == b'-')
        && s.bytes().next().is_some_and(alnum)
        && s.bytes().last().is_some_and(alnum)
}

/// An S3 access key pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3KeyPair {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// What is stored about an archive pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveSpec {
    pub id: String,
    /// Seconds since the Unix epoch.
    pub created_unix: u64,
    /// Index 0 writes bucket `{id}-0`, index 1 writes `{id}-1`; both read
    /// both.
    pub keys: [S3KeyPair; 2],
    /// The encoder's rollover interval in seconds, when known: the watcher
    /// expects a new file per interval and the verifier checks durations
    /// against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollover_secs: Option<u64>,
}

impl ArchiveSpec {
    pub fn keys(&self, p: Pipeline) -> &S3KeyPair {
        p.of(&self.keys)
    }

    /// The validated id (the database is disk input, so this checks again).
    pub fn archive_id(&self) -> Result<ArchiveId, BadArchiveId> {
        ArchiveId::parse(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_bucket_rules() {
        for good in ["news", "a", "n3ws-hd", "0-1"] {
            assert!(ArchiveId::parse(good).is_ok(), "{good}");
        }
        let long = "a".repeat(62);
        for bad in [
            "",
            "News",
            "news_hd",
            "-news",
            "news-",
            "new.s",
            long.as_str(),
        ] {
            assert!(ArchiveId::parse(bad).is_err(), "{bad}");
        }
        let id = ArchiveId::parse("news").unwrap();
        assert_eq!(id.bucket(Pipeline::P1), "news-1");
    }
}
