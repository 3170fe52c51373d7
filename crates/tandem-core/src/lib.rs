//! Tandem's domain model: channels, their two inputs, and the names that
//! reach storage.
//!
//! No sockets, no clock, no files. Everything that arrives from the network
//! is validated here once, into types that cannot hold a bad value.
//!
//! - [`name`]: channel ids, pipelines and object paths, validated.
//! - [`channel`]: a channel's definition and the state of its inputs.
//! - [`archive`]: archive pairs, two S3 buckets and their keys.

pub mod archive;
pub mod channel;
pub mod container;
pub mod name;

pub use archive::{ArchiveId, ArchiveSpec, BadArchiveId, S3KeyPair};
pub use channel::{
    ChannelSpec, FailoverSettings, InputCredentials, InputSource, InputState, RetentionSettings,
};
pub use container::{BadContainerId, ContainerId, ContainerSpec};
pub use name::{ChannelId, NameError, ObjectPath, Pipeline};
