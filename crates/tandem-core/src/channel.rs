//! A channel's definition (its id and its two inputs' credentials) and the
//! observable state of each input.

use serde::{Deserialize, Serialize};

use crate::name::{ChannelId, Pipeline};

/// The credentials that open one input, and that input only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputCredentials {
    pub username: String,
    pub password: String,
}

/// What is stored about a channel. Runtime counters live in the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelSpec {
    pub id: String,
    /// Seconds since the Unix epoch.
    pub created_unix: u64,
    /// Index 0 opens pipeline 0, index 1 opens pipeline 1.
    pub inputs: [InputCredentials; 2],
    /// How the output fails over; unset fields take the defaults.
    #[serde(default)]
    pub failover: FailoverSettings,
    /// Where each pipeline's HLS comes from (index = pipeline).
    #[serde(default)]
    pub sources: [InputSource; 2],
    /// How long its input objects are kept; unset fields take the defaults.
    #[serde(default, skip_serializing_if = "RetentionSettings::is_default")]
    pub retention: RetentionSettings,
}

/// Per-channel retention (the control API's `retention` object).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Keep every input object at least this many seconds after it
    /// arrived, named or not: the channel's input history, the start of a
    /// DVR window. Unset: objects go once nothing names them (plus the
    /// server's retention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_secs: Option<u64>,
}

impl RetentionSettings {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Where a pipeline's HLS arrives: its own HTTP input (PUT, POST, WebDAV),
/// or a MediaStore-style container or an S3 bucket of this server, under a
/// prefix. Whatever the source, complete playlists and segments feed the
/// same merged output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum InputSource {
    /// `/in/{channel}/{pipeline}/`.
    #[default]
    Http,
    /// A container of a MediaStore-style container pair.
    Mediastore { container: String, prefix: String },
    /// A bucket of the S3 listener.
    S3 { bucket: String, prefix: String },
}

impl InputSource {
    /// The prefix inside the container or bucket, as path segments.
    pub fn prefix_segments(&self) -> Vec<&str> {
        match self {
            Self::Http => Vec::new(),
            Self::Mediastore { prefix, .. } | Self::S3 { prefix, .. } => {
                prefix.split('/').filter(|s| !s.is_empty()).collect()
            }
        }
    }
}

/// Per-channel failover settings (the control API's `failover` object).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverSettings {
    /// Loss threshold, in target durations (default 1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_after_targets: Option<f64>,
    /// Program date-time alignment tolerance, in target durations (0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdt_tolerance_targets: Option<f64>,
    /// Return to this pipeline (0 or 1) after `hold_down_secs` of health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefer: Option<u8>,
    /// Seconds the preferred pipeline must be healthy before a return (30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_down_secs: Option<u64>,
}

impl ChannelSpec {
    pub fn source(&self, p: Pipeline) -> &InputSource {
        p.of(&self.sources)
    }

    pub fn credentials(&self, p: Pipeline) -> &InputCredentials {
        p.of(&self.inputs)
    }

    /// The validated id. Specs are only built from validated ids, but the
    /// database is disk input, so this checks again.
    pub fn channel_id(&self) -> Result<ChannelId, crate::NameError> {
        ChannelId::parse(&self.id)
    }
}

/// An input's state as operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputState {
    /// Nothing received since the server started.
    Idle,
    /// A write arrived within the loss threshold.
    Receiving,
    /// It was receiving, and has been silent for longer than the threshold.
    Lost,
}

impl InputState {
    /// Classifies an input from the age of its last write.
    /// `since_last_write` is `None` when nothing was ever written.
    pub fn classify(
        since_last_write: Option<std::time::Duration>,
        loss_after: std::time::Duration,
    ) -> Self {
        match since_last_write {
            None => Self::Idle,
            Some(age) if age <= loss_after => Self::Receiving,
            Some(_) => Self::Lost,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn input_state_follows_the_age_of_the_last_write() {
        let t = Duration::from_secs(10);
        assert_eq!(InputState::classify(None, t), InputState::Idle);
        assert_eq!(
            InputState::classify(Some(Duration::from_secs(10)), t),
            InputState::Receiving
        );
        assert_eq!(
            InputState::classify(Some(Duration::from_secs(11)), t),
            InputState::Lost
        );
    }
}
