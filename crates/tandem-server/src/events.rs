//! Every event the server raises, as one stream.
//!
//! Channel outputs (input lost and restored, switches, gaps, the end and
//! resumption of an output) and archive watches (an index whole in neither
//! bucket) each keep their own log for the API. Each event also goes out
//! here, numbered server-wide, to whoever listens: the status page's live
//! updates (`GET /api/v1/events/stream`) and the webhooks.
//!
//! A listener that falls behind by more than [`BACKLOG`] events loses the
//! oldest ones (and is told how many); the bus never blocks the driver that
//! raised the event.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
    next: Arc<AtomicU64>,
}

impl Default for EventBus {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(BACKLOG);
        Self {
            tx,
            next: Arc::new(AtomicU64::new(1)),
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
        let ev = BusEvent {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            subject,
            body,
        };
        // No listener is not an error.
        let _ = self.tx.send(Arc::new(ev));
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BusEvent>> {
        self.tx.subscribe()
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
    }
}
