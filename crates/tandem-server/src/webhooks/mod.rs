//! Webhooks: each event on the server's [`EventBus`] that a webhook asks for
//! is POSTed to it as the bus's JSON (`{"id":17,"channel":"news","time":…,
//! "kind":"input_lost",…}`), with retries and a bounded queue.
//!
//! Each webhook has its own listener on the bus, its own queue and one
//! delivery task; a slow or dead receiver delays nobody else and never the
//! drivers that raise events. [`outbox`] decides what to send and when
//! (no IO); this module reads the bus, makes the requests (ureq, on the
//! blocking pool), and counts:
//!
//! - `tandem_webhook_deliveries_total{webhook,result}`: `delivered`,
//!   `failed` (every attempt failed), `rejected` (the receiver refused it);
//! - `tandem_webhook_retries_total{webhook}`: attempts after an event's first;
//! - `tandem_webhook_dropped_total{webhook,reason}`: `queue_full` (the
//!   oldest held event made room for a new one), `lagged` (the bus moved on
//!   before the webhook read it);
//! - `tandem_webhook_queue_depth{webhook}`: events held.
//!
//! Each request carries `Content-Type: application/json`,
//! `X-Tandem-Event` (the kind), `X-Tandem-Delivery` (the event's id, the
//! same on every retry of it; ids restart at 1 when the server starts),
//! `Authorization: Bearer …` when a token is set, and
//! `X-Tandem-Signature-256: sha256=<hex HMAC-SHA256 of the body>` when a
//! secret is set. The queue lives in memory: on shutdown the server waits
//! (up to its shutdown grace) for queued events to go out to receivers that
//! answer, and what is still queued after that is lost.

pub mod outbox;
mod settings;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use metrics::{counter, gauge};
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::{broadcast, watch};

use crate::clock::Clock;
use crate::events::{BusEvent, EventBus};
use outbox::{Answer, Attempt, Item, Outbox, Outcome};
pub use settings::{
    DEFAULT_ATTEMPTS, DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX, DEFAULT_KINDS, DEFAULT_QUEUE,
    DEFAULT_TIMEOUT, KNOWN_KINDS, Secret, Webhook, WebhookError, WebhookSettings, check_all,
};

/// What one webhook has done since the server started.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WebhookStatus {
    pub name: String,
    /// Events held (waiting, or being attempted).
    pub queued: usize,
    pub delivered: u64,
    pub failed: u64,
    pub rejected: u64,
    pub retries: u64,
    pub dropped: u64,
    /// Failed attempts in a row.
    pub failures_in_row: u32,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// While the receiver is on hold: when the next attempt may start.
    #[serde(skip)]
    pub next_attempt: Option<Instant>,
    /// The most events held at once.
    pub queued_max: usize,
}

#[derive(Debug)]
struct Hook {
    cfg: Webhook,
    agent: ureq::Agent,
    status: Mutex<WebhookStatus>,
    /// Taken by the delivery task when the server runs.
    rx: Mutex<Option<broadcast::Receiver<Arc<BusEvent>>>>,
}

impl Hook {
    fn status(&self) -> std::sync::MutexGuard<'_, WebhookStatus> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The server's webhooks.
#[derive(Debug, Default)]
pub struct Webhooks {
    hooks: Vec<Arc<Hook>>,
}

impl Webhooks {
    /// Listens on `bus` for each webhook from now on; nothing is sent
    /// until [`run`](Self::run).
    pub fn new(list: &[WebhookSettings], bus: &EventBus) -> Result<Self, WebhookError> {
        let hooks = check_all(list)?
            .into_iter()
            .map(|cfg| {
                let agent = ureq::Agent::config_builder()
                    .timeout_global(Some(cfg.timeout))
                    .http_status_as_error(false)
                    .max_redirects(0)
                    .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .new_agent();
                Arc::new(Hook {
                    status: Mutex::new(WebhookStatus {
                        name: cfg.name.clone(),
                        ..Default::default()
                    }),
                    cfg,
                    agent,
                    rx: Mutex::new(Some(bus.subscribe())),
                })
            })
            .collect();
        Ok(Self { hooks })
    }

    /// Each webhook's counts, in configuration order.
    pub fn status(&self) -> Vec<WebhookStatus> {
        self.hooks.iter().map(|h| h.status().clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Delivers until `stop` turns true, then until every queue is empty or
    /// its receiver fails. The caller bounds that with a timeout.
    pub async fn run(&self, clock: Arc<dyn Clock>, stop: watch::Receiver<bool>) {
        let mut tasks = tokio::task::JoinSet::new();
        for h in &self.hooks {
            let rx = h.rx.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(rx) = rx {
                tasks.spawn(deliver(h.clone(), rx, clock.clone(), stop.clone()));
            }
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// One webhook's delivery loop.
async fn deliver(
    hook: Arc<Hook>,
    mut rx: broadcast::Receiver<Arc<BusEvent>>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    let name = hook.cfg.name.clone();
    let mut outbox = Outbox::new(hook.cfg.policy);
    let mut running: Option<tokio::task::JoinHandle<Result<u16, String>>> = None;
    let mut bus_open = true;
    let mut stopping = false;
    loop {
        if running.is_none()
            && let Some(attempt) = outbox.poll_attempt(clock.instant())
        {
            if attempt.number > 1 {
                counter!("tandem_webhook_retries_total", "webhook" => name.clone()).increment(1);
                hook.status().retries += 1;
            }
            let h = hook.clone();
            running = Some(tokio::task::spawn_blocking(move || post(&h, &attempt)));
        }
        publish_status(&hook, &outbox);
        if stopping && (outbox.is_empty() || (running.is_none() && outbox.hold_until().is_some())) {
            // Queued events are lost with the process; say how many.
            if !outbox.is_empty() {
                tracing::warn!(webhook = %name, queued = outbox.len(), "stopping with events undelivered");
            }
            return;
        }
        let deadline = outbox.next_deadline();
        tokio::select! {
            r = rx.recv(), if bus_open && !stopping => match r {
                Ok(ev) => {
                    if hook.cfg.wants(ev.kind()) {
                        enqueue(&hook, &mut outbox, &ev);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(webhook = %name, missed = n, "webhook fell behind the event bus; events dropped");
                    counter!("tandem_webhook_dropped_total", "webhook" => name.clone(), "reason" => "lagged").increment(n);
                    hook.status().dropped += n;
                }
                Err(broadcast::error::RecvError::Closed) => bus_open = false,
            },
            done = async {
                match running.as_mut() {
                    Some(task) => task.await,
                    None => std::future::pending().await,
                }
            }, if running.is_some() => {
                running = None;
                let (answer, error) = match done {
                    Ok(Ok(status)) => (Answer::of_status(status), Some(format!("HTTP {status}"))),
                    Ok(Err(e)) => (Answer::Retryable, Some(e)),
                    Err(e) => (Answer::Retryable, Some(format!("delivery task: {e}"))),
                };
                let outcome = outbox.on_answer(clock.instant(), answer);
                settle(&hook, &outbox, outcome, answer, error);
            }
            () = sleep_until_or_forever(clock.as_ref(), deadline), if running.is_none() => {}
            r = stop.changed(), if !stopping => {
                if r.is_err() || *stop.borrow() {
                    stopping = true;
                    // What was raised before the stop still goes out.
                    while let Ok(ev) = rx.try_recv() {
                        if hook.cfg.wants(ev.kind()) {
                            enqueue(&hook, &mut outbox, &ev);
                        }
                    }
                }
            }
        }
    }
}

async fn sleep_until_or_forever(clock: &dyn Clock, deadline: Option<Instant>) {
    match deadline {
        Some(t) => clock.sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn enqueue(hook: &Hook, outbox: &mut Outbox, ev: &BusEvent) {
    let body = match serde_json::to_vec(ev) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(webhook = %hook.cfg.name, error = %e, "an event could not be encoded");
            return;
        }
    };
    let item = Item {
        id: ev.id,
        kind: ev.kind().to_owned(),
        body: body.into(),
    };
    if let Some(old) = outbox.push(item) {
        tracing::warn!(webhook = %hook.cfg.name, id = old.id, kind = old.kind, "webhook queue full; oldest event dropped");
        counter!("tandem_webhook_dropped_total", "webhook" => hook.cfg.name.clone(), "reason" => "queue_full").increment(1);
        hook.status().dropped += 1;
    }
}

/// Counts and logs how an attempt ended.
fn settle(hook: &Hook, outbox: &Outbox, outcome: Outcome, answer: Answer, error: Option<String>) {
    let name = &hook.cfg.name;
    let result = match outcome {
        Outcome::Delivered => Some("delivered"),
        Outcome::Failed => Some("failed"),
        Outcome::Rejected => Some("rejected"),
        Outcome::WillRetry(_) | Outcome::Gone => None,
    };
    if let Some(result) = result {
        counter!("tandem_webhook_deliveries_total", "webhook" => name.clone(), "result" => result)
            .increment(1);
    }
    let mut st = hook.status();
    match outcome {
        Outcome::Delivered => st.delivered += 1,
        Outcome::Failed => st.failed += 1,
        Outcome::Rejected => st.rejected += 1,
        Outcome::WillRetry(_) | Outcome::Gone => {}
    }
    if answer == Answer::Accepted {
        st.last_error = None;
    } else {
        st.last_error = error.clone();
    }
    drop(st);
    let error = error.unwrap_or_default();
    match outcome {
        Outcome::WillRetry(wait) => {
            tracing::warn!(webhook = %name, %error, failures = outbox.failures(), retry_in_ms = wait.as_millis() as u64, "webhook delivery failed; will retry");
        }
        Outcome::Failed => {
            tracing::error!(webhook = %name, %error, "webhook delivery failed after its last attempt; event given up");
        }
        Outcome::Rejected => {
            tracing::error!(webhook = %name, %error, "webhook receiver refused the event; not retried");
        }
        Outcome::Gone if answer != Answer::Accepted => {
            tracing::warn!(webhook = %name, %error, "webhook delivery failed");
        }
        Outcome::Delivered | Outcome::Gone => {}
    }
}

fn publish_status(hook: &Hook, outbox: &Outbox) {
    gauge!("tandem_webhook_queue_depth", "webhook" => hook.cfg.name.clone())
        .set(outbox.len() as f64);
    let mut st = hook.status();
    st.queued = outbox.len();
    st.queued_max = st.queued_max.max(outbox.len());
    st.failures_in_row = outbox.failures();
    st.next_attempt = outbox.hold_until();
}

/// One POST; the receiver's status, or why there was none. Blocking.
fn post(hook: &Hook, attempt: &Attempt) -> Result<u16, String> {
    let mut req = hook
        .agent
        .post(&hook.cfg.url)
        .header("content-type", "application/json")
        .header("x-tandem-event", &attempt.item.kind)
        .header("x-tandem-delivery", attempt.item.id.to_string());
    if let Some(Secret(token)) = &hook.cfg.bearer_token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    if let Some(Secret(secret)) = &hook.cfg.secret {
        req = req.header(
            "x-tandem-signature-256",
            signature(secret, &attempt.item.body),
        );
    }
    let resp = req
        .send(&attempt.item.body[..])
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    // Read what little the receiver says, so the connection can be reused.
    let _ = resp
        .into_body()
        .with_config()
        .limit(64 * 1024)
        .read_to_vec();
    Ok(status)
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        // HMAC takes a key of any length; this branch is never taken.
        return String::new();
    };
    mac.update(body);
    let mut out = String::from("sha256=");
    for b in mac.finalize().into_bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// How long the task waits, at most, for queued events on shutdown.
pub fn drain_limit(shutdown_grace: Duration) -> Duration {
    shutdown_grace.min(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hex_hmac_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
