//! Container pairs: two MediaStore-style containers, one per pipeline,
//! that an encoder's "MediaStore container" HLS output writes to, and the
//! key pair that opens each.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::archive::S3KeyPair;
use crate::name::Pipeline;

/// Why a container pair id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "container id {0:?} is invalid: use 1 to 61 characters of a-z, 0-9 and '-', starting and \
     ending with a letter or digit (its containers are named <id>-0 and <id>-1)"
)]
pub struct BadContainerId(pub String);

/// A container pair's id. Its containers are `{id}-0` and `{id}-1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(String);

impl ContainerId {
    pub const MAX_LEN: usize = 61;

    pub fn parse(s: &str) -> Result<Self, BadContainerId> {
        if crate::archive::is_pair_id(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(BadContainerId(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The container that pipeline `p` writes.
    pub fn container(&self, p: Pipeline) -> String {
        format!("{}-{p}", self.0)
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What is stored about a container pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub id: String,
    /// Seconds since the Unix epoch.
    pub created_unix: u64,
    /// Index 0 writes container `{id}-0`, index 1 writes `{id}-1`; both
    /// read both.
    pub keys: [S3KeyPair; 2],
}

impl ContainerSpec {
    pub fn keys(&self, p: Pipeline) -> &S3KeyPair {
        p.of(&self.keys)
    }

    /// The validated id (the database is disk input, so this checks again).
    pub fn container_id(&self) -> Result<ContainerId, BadContainerId> {
        ContainerId::parse(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_and_name_both_containers() {
        assert!(ContainerId::parse("news").is_ok());
        for bad in ["", "News", "a_b", "-a", "a-", "a.b"] {
            assert!(ContainerId::parse(bad).is_err(), "{bad}");
        }
        let id = ContainerId::parse("news").unwrap();
        assert_eq!(id.container(Pipeline::P1), "news-1");
    }
}
