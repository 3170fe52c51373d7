//! Resetting a channel's output: an operator's "new event".
//!
//! A reset starts every merged playlist of the channel afresh: the window
//! empties, the media sequence jumps to the reset's Unix time in seconds
//! (or the next number, if that is higher), the next segment carries
//! `EXT-X-DISCONTINUITY`, and the old segments' pins are removed after the
//! grace period, like any segment that left the window. The numbering
//! never goes back, so a player still polling sees a jump forward and a
//! discontinuity, never a rewind; a player that joins sees a new stream
//! whose numbers say when it started; and the new pins' URIs, which carry
//! the media sequence, never collide with old ones a CDN may still cache.
//!
//! A running server resets at once ([`Control::Reset`], from the control
//! API). With no server running, the CLI leaves a request
//! ([`request_reset`]) that the channel's driver carries out when it
//! loads, so the reset is recorded and its pins expire the same way.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tandem_core::{ChannelId, ObjectPath};
use tandem_store::{Store, StoreError};
use tokio::sync::oneshot;

/// What the control API asks of a channel's driver.
#[derive(Debug)]
pub enum Control {
    /// Start a fresh output; answered with each playlist's new base.
    Reset {
        reply: oneshot::Sender<Vec<ResetRendition>>,
    },
}

/// A merged playlist after a reset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetRendition {
    /// The media playlist path, relative to the channel's output.
    pub rendition: String,
    /// The media sequence number of its next segment.
    pub media_sequence: u64,
}

/// The media sequence base of an output reset at `at`: its Unix time in
/// seconds. An output gains at most one number a second (a target
/// duration is at least one second), so a later reset's base is above
/// everything an earlier one numbered.
pub fn base_at(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `{channel}/reset-requested.json`: a reset left for the driver.
pub fn request_key(channel: &ChannelId) -> Option<ObjectPath> {
    ObjectPath::from_segments([channel.as_str(), "reset-requested.json"]).ok()
}

#[derive(Serialize, Deserialize)]
struct Request {
    /// RFC 3339.
    requested: String,
}

/// Leaves a reset of `channel`'s output for its driver to carry out when
/// it next loads (no server is running).
pub async fn request_reset(
    store: &dyn Store,
    channel: &ChannelId,
    at: SystemTime,
) -> Result<(), StoreError> {
    let Some(key) = request_key(channel) else {
        return Ok(());
    };
    let body = serde_json::to_vec(&Request {
        requested: crate::util::rfc3339_millis(at),
    })
    .unwrap_or_default();
    let mut w = store.begin_put(&key, tandem_store::Parents::Create).await?;
    w.write(Bytes::from(body)).await?;
    w.commit().await.map(drop)
}

/// Whether a reset was left for `channel`'s driver.
pub async fn requested(store: &dyn Store, channel: &ChannelId) -> bool {
    match request_key(channel) {
        Some(key) => matches!(
            store.stat(&key).await,
            Ok(Some(tandem_store::Entry::Object(_)))
        ),
        None => false,
    }
}
