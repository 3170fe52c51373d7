//! What the ingest side tells the output side, and where inputs live.
//!
//! Ingest (HTTP PUT, POST and WebDAV today; every further dialect that
//! feeds a channel's pipeline) publishes a [`Notice`] when an object of a
//! channel's input became visible whole. A channel's output subscribes to
//! its channel's notices. This module sits below both: ingest never calls
//! the output, the output never calls ingest, and neither imports the
//! other.
//!
//! Smooth pushes have their own stream ([`SmoothNotice`]): a push opening
//! asks the channel's Smooth driver whether its tracks may join the
//! publishing point (the answer decides the POST's status), then tells it
//! of each fragment stored whole and of how the push ended.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use tandem_core::{ChannelId, ObjectPath, Pipeline};
use tokio::sync::mpsc;

/// An event of a channel's input.
#[derive(Debug)]
pub enum Notice {
    /// An object was published whole on an input (path relative to the
    /// input root).
    Published {
        pipeline: Pipeline,
        path: ObjectPath,
        /// When the object was published, for the publish delay metric.
        at: Instant,
    },
}

/// What a Smooth push tells its channel's Smooth driver. `point` is the
/// publishing point's name (`sports` for `…/sports.isml/…`).
#[derive(Debug)]
pub enum SmoothNotice {
    /// A push declared its tracks; the driver answers whether they join.
    Started {
        point: String,
        start: tandem_smooth::StreamStart,
        reply: tokio::sync::oneshot::Sender<Result<(), tandem_smooth::SmoothError>>,
    },
    /// A fragment was published whole under `fragment.storage_key`.
    Fragment {
        point: String,
        fragment: tandem_smooth::FragmentNotice,
        /// When its last byte arrived on input, for the publish delay
        /// metric.
        at: Instant,
    },
    /// The push ended on purpose (`mfra`, or the body ended cleanly).
    Ended {
        point: String,
        pipeline: Pipeline,
        stream: String,
        how: tandem_smooth::EndOfStream,
    },
    /// The push broke off (connection cut, idle, or refused mid-body).
    Dropped {
        point: String,
        pipeline: Pipeline,
        stream: String,
    },
}

/// `{channel}/{pipeline}`: where an input's objects live in the store.
pub fn input_root(channel: &ChannelId, p: Pipeline) -> ObjectPath {
    ObjectPath::from_segments([channel.as_str().to_owned(), p.to_string()]).unwrap_or_default()
}

/// Every channel's notice stream: one subscriber per channel.
#[derive(Debug, Default)]
pub struct Notices {
    map: Mutex<HashMap<ChannelId, mpsc::UnboundedSender<Notice>>>,
    smooth: Mutex<HashMap<ChannelId, mpsc::UnboundedSender<SmoothNotice>>>,
    /// Store roots of buckets and containers bound to a channel's pipeline.
    bindings: RwLock<Vec<(ObjectPath, ChannelId, Pipeline)>>,
}

impl Notices {
    /// Objects published whole under `root` (a bucket or container, under
    /// a prefix) are from now on the channel's pipeline `p`'s input.
    pub fn bind(&self, root: ObjectPath, channel: &ChannelId, p: Pipeline) {
        self.bindings
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((root, channel.clone(), p));
    }

    /// An object was published whole somewhere in the store (by the S3 or
    /// MediaStore API): a notice for each channel pipeline bound there,
    /// which are returned.
    pub fn stored(&self, key: &ObjectPath) -> Vec<(ChannelId, Pipeline)> {
        let hits: Vec<(ChannelId, Pipeline, ObjectPath)> = self
            .bindings
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter_map(|(root, c, p)| Some((c.clone(), *p, key.strip_prefix(root)?)))
            .collect();
        let mut bound = Vec::with_capacity(hits.len());
        for (c, p, path) in hits {
            self.publish(
                &c,
                Notice::Published {
                    pipeline: p,
                    path,
                    at: Instant::now(),
                },
            );
            bound.push((c, p));
        }
        bound
    }

    /// Sends `notice` to the channel's subscriber, if it has one.
    pub fn publish(&self, channel: &ChannelId, notice: Notice) {
        let map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tx) = map.get(channel) {
            // A subscriber that stopped needs nothing more.
            let _ = tx.send(notice);
        }
    }

    /// The channel's notices from now on; replaces an earlier subscriber,
    /// whose stream then ends.
    pub fn subscribe(&self, channel: &ChannelId) -> mpsc::UnboundedReceiver<Notice> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(channel.clone(), tx);
        rx
    }

    /// Sends a Smooth notice to the channel's Smooth driver; `false` when
    /// it has none (the channel is going away).
    pub fn publish_smooth(&self, channel: &ChannelId, notice: SmoothNotice) -> bool {
        let map = self
            .smooth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(channel).is_some_and(|tx| tx.send(notice).is_ok())
    }

    /// The channel's Smooth notices from now on; replaces an earlier
    /// subscriber.
    pub fn subscribe_smooth(&self, channel: &ChannelId) -> mpsc::UnboundedReceiver<SmoothNotice> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.smooth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(channel.clone(), tx);
        rx
    }

    /// Ends the channel's stream and its bindings (the channel was deleted).
    pub fn close(&self, channel: &ChannelId) {
        self.smooth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(channel);
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(channel);
        self.bindings
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(_, c, _)| c != channel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_channel_s_subscriber_gets_its_notices_and_no_other_channel_s() {
        let n = Notices::default();
        let news = ChannelId::parse("news").unwrap_or_else(|_| unreachable!());
        let sport = ChannelId::parse("sport").unwrap_or_else(|_| unreachable!());
        let mut rx = n.subscribe(&news);
        let path = |s: &str| ObjectPath::from_url_path(s).unwrap_or_default();
        n.publish(
            &sport,
            Notice::Published {
                pipeline: Pipeline::P0,
                path: path("a.ts"),
                at: Instant::now(),
            },
        );
        n.publish(
            &news,
            Notice::Published {
                pipeline: Pipeline::P1,
                path: path("b.ts"),
                at: Instant::now(),
            },
        );
        let Some(Notice::Published {
            pipeline, path: p, ..
        }) = rx.recv().await
        else {
            unreachable!("a notice was published")
        };
        assert_eq!((pipeline, p.to_string()), (Pipeline::P1, "b.ts".to_owned()));
        n.close(&news);
        assert!(rx.recv().await.is_none(), "closing ends the stream");
    }
}
