//! Every event the server raises, as one stream.
//!
//! Channel outputs (input lost and restored, switches, gaps, the end and
//! resumption of an output) and archive watches (an index whole in neither
//! bucket) each keep their own log for the API. Each event also goes out
//! here, numbered server-wide, to whoever listens: the status page's live
//! updates (`GET /api/v1/events/stream`) and the webhooks.
//!
//! The last [`BACKLOG`] events are also kept, so that a listener that
//! reconnects (an `EventSource` sends `Last-Event-ID`) misses nothing. A
//! listener that falls behind by more than that loses the oldest ones (and
//! is told how many); the bus never blocks the driver that raised the event.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;

/// Events held for a listener that has not read them yet.
pub const BACKLOG: usize = 1024;

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    /// A channel, by id.
    Channel(String),
    /// An archive pair, by id.
    Archive(String),
    /// The data directory's disk, by path (`disk_low`, `disk_ok`).
    Disk(String),
    /// A UDP flow, by id (`udp_leg_lost`, `udp_leg_restored`, …).
    Udp(String),
}

/// One event on the bus: `{"id": 17, "channel": "news", "kind": "switch", …}`.
#[derive(Debug, Clone, Serialize)]
pub struct BusEvent {
    /// Server-wide, increasing from 1 at start.
    pub id: u64,
    #[serde(flatten)]
    pub subject: Subject,
    /// The event as its own log lists it (an object with at least `time`
    /// and `kind`).
    #[serde(flatten)]
    pub body: serde_json::Map<String, serde_json::Value>,
}

impl BusEvent {
    /// The event's kind (`input_lost`, `switch`, `index_uncovered`, …).
    pub fn kind(&self) -> &str {
        self.body
            .get("kind")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    }
}

/// The server's event stream. Cloning shares it.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<BusEvent>>,
    recent: Arc<Mutex<Recent>>,
}

#[derive(Debug)]
struct Recent {
    next: u64,
    kept: VecDeque<Arc<BusEvent>>,
}

impl Default for EventBus {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(BACKLOG);
        Self {
            tx,
            recent: Arc::new(Mutex::new(Recent {
                next: 1,
                kept: VecDeque::with_capacity(BACKLOG),
            })),
        }
    }
}

impl EventBus {
    /// Numbers an event and sends it to every current listener.
    pub fn publish(&self, subject: Subject, event: &impl Serialize) {
        let body = match serde_json::to_value(event) {
            Ok(serde_json::Value::Object(m)) => m,
            Ok(other) => {
                let mut m = serde_json::Map::new();
                m.insert("value".into(), other);
                m
            }
            Err(e) => {
                tracing::error!(error = %e, "an event could not be encoded");
                return;
            }
        };
        // Numbered, kept and sent under one lock, so ids go out in order
        // and a subscriber sees each event either kept or sent, once.
        let mut recent = self.lock();
        let ev = Arc::new(BusEvent {
            id: recent.next,
            subject,
            body,
        });
        recent.next += 1;
        if recent.kept.len() >= BACKLOG {
            recent.kept.pop_front();
        }
        recent.kept.push_back(ev.clone());
        // No listener is not an error.
        let _ = self.tx.send(ev);
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BusEvent>> {
        self.tx.subscribe()
    }

    /// The kept events after `last_id`, and the events from then on.
    pub fn subscribe_after(
        &self,
        last_id: u64,
    ) -> (Vec<Arc<BusEvent>>, broadcast::Receiver<Arc<BusEvent>>) {
        let recent = self.lock();
        let missed = recent
            .kept
            .iter()
            .filter(|e| e.id > last_id)
            .cloned()
            .collect();
        (missed, self.tx.subscribe())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct E {
        time: &'static str,
        kind: &'static str,
        pipeline: usize,
    }

    #[tokio::test]
    async fn events_are_numbered_and_carry_their_subject() {
        let bus = EventBus::default();
        let mut rx = bus.subscribe();
        let e = E {
            time: "2026-01-01T00:00:00.000Z",
            kind: "input_lost",
            pipeline: 1,
        };
        bus.publish(Subject::Channel("news".into()), &e);
        bus.publish(Subject::Archive("a1".into()), &e);
        let first = rx.recv().await.unwrap();
        let second = rx.recv().await.unwrap();
        assert_eq!(
            serde_json::to_value(&*first).unwrap(),
            serde_json::json!({"id": 1, "channel": "news",
                "time": "2026-01-01T00:00:00.000Z", "kind": "input_lost", "pipeline": 1})
        );
        assert_eq!(second.id, 2);
        assert_eq!(second.subject, Subject::Archive("a1".into()));
        assert_eq!(second.kind(), "input_lost");
        let (missed, _) = bus.subscribe_after(1);
        assert_eq!(missed.iter().map(|e| e.id).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn only_the_backlog_is_kept() {
        let bus = EventBus::default();
        for _ in 0..BACKLOG + 5 {
            bus.publish(
                Subject::Channel("c".into()),
                &serde_json::json!({"kind": "x"}),
            );
        }
        let (missed, _) = bus.subscribe_after(0);
        assert_eq!(missed.len(), BACKLOG);
        assert_eq!(missed.first().map(|e| e.id), Some(6));
    }
}
