//! Webhooks on the wire: events from the server's bus reach a receiver on
//! loopback as signed JSON POSTs; a receiver that fails is retried on an
//! exponential schedule (driven by the injected clock, not slept through),
//! a receiver that is down does not grow the queue past its bound, and
//! delivery resumes, in order, when it comes back.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use support::receiver::{Received, Receiver};
use support::{TestServer, metric_value, scrape};
use tandem_server::events::Subject;
use tandem_server::webhooks::{Secret, WebhookSettings, WebhookStatus};
use tandem_server::{AppState, Clock};

fn raise(st: &AppState, kind: &str, pipeline: u64) {
    st.events.publish(
        Subject::Channel("news".into()),
        &json!({"time": "2026-01-01T00:00:00.000Z", "kind": kind, "pipeline": pipeline}),
    );
}

fn status(st: &AppState) -> WebhookStatus {
    st.webhooks.status().remove(0)
}

/// Polls (real time, at most 5 s) for another task's effect.
async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn ids(got: &[Received]) -> Vec<u64> {
    got.iter()
        .map(|r| r.json()["id"].as_u64().unwrap())
        .collect()
}

fn hex_hmac(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_is_retried_on_schedule_its_queue_stays_bounded_and_delivery_resumes() {
    let rx = Receiver::start();
    rx.answer(503);
    let url = rx.url("/hooks/tandem");
    let srv = TestServer::start_clocked(|c| {
        c.create_demo_channel = false;
        c.webhooks = vec![WebhookSettings {
            name: Some("retrying".into()),
            secret: Some(Secret("s3cret".into())),
            queue: Some(4),
            attempts: Some(3),
            timeout_ms: Some(5000),
            backoff_initial_ms: Some(100),
            backoff_max_ms: Some(400),
            ..WebhookSettings::url(url)
        }];
    })
    .await;
    let clock = srv.clock.clone().unwrap();
    let st = srv.state.clone();
    let ms = Duration::from_millis;

    // An `input_state` (not a default kind) and then an `input_lost`: the
    // receiver's first request is the second event, so the first was
    // filtered, not queued.
    raise(&st, "input_state", 0);
    raise(&st, "input_lost", 0);
    until("the first attempt", || rx.received().len() == 1).await;
    let first = &rx.received()[0];
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("POST", "/hooks/tandem")
    );
    assert_eq!(
        first.json(),
        json!({"id": 2, "channel": "news", "time": "2026-01-01T00:00:00.000Z",
            "kind": "input_lost", "pipeline": 0})
    );
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.header("x-tandem-event"), Some("input_lost"));
    assert_eq!(first.header("x-tandem-delivery"), Some("2"));
    assert_eq!(
        first.header("x-tandem-signature-256"),
        Some(format!("sha256={}", hex_hmac("s3cret", &first.body)).as_str())
    );

    // 503: retried after 100 ms, then 200 ms, then given up (3 attempts).
    for (n, wait) in [(1u32, 100u64), (2, 200)] {
        until("the failure to be handled", || {
            status(&st).failures_in_row == n
        })
        .await;
        assert_eq!(status(&st).next_attempt, Some(clock.instant() + ms(wait)));
        clock.advance(ms(wait));
        until("the next attempt", || rx.received().len() == n as usize + 1).await;
    }
    until("the event to be given up", || status(&st).failed == 1).await;
    let got = rx.received();
    assert_eq!(ids(&got), [2, 2, 2]);
    assert!(
        got.iter()
            .all(|r| r.body == got[0].body && r.answered == 503)
    );
    let s = status(&st);
    assert_eq!(
        (s.queued, s.retries, s.delivered, s.failures_in_row),
        (0, 2, 0, 3)
    );
    assert_eq!(s.last_error.as_deref(), Some("HTTP 503"));
    // The receiver stays on hold (400 ms, the cap) for the next event.
    assert_eq!(s.next_attempt, Some(clock.instant() + ms(400)));

    // The receiver goes down (its port closed). Ten events while it is on
    // hold: the queue keeps the newest four and counts six dropped.
    let addr = rx.stop();
    for _ in 0..10 {
        raise(&st, "input_lost", 1);
    }
    until("the ten events to be queued", || {
        let s = status(&st);
        s.queued + s.dropped as usize == 10
    })
    .await;
    let s = status(&st);
    assert_eq!((s.queued, s.dropped, s.queued_max), (4, 6, 4));
    // Two refused attempts of the oldest held event (id 9), on schedule.
    for n in [4u32, 5] {
        clock.advance(ms(400));
        until("a refused attempt", || status(&st).failures_in_row == n).await;
        assert_eq!(status(&st).next_attempt, Some(clock.instant() + ms(400)));
    }
    let s = status(&st);
    assert_eq!((s.queued, s.retries, s.failed), (4, 3, 1));
    assert!(s.last_error.is_some_and(|e| !e.contains("503")));

    // Back on the same port: the held events arrive in order, the first on
    // its third attempt, the others at once.
    let rx = Receiver::start_on(addr);
    clock.advance(ms(400));
    until("the held events", || rx.received().len() == 4).await;
    assert_eq!(ids(&rx.received()), [9, 10, 11, 12]);
    until("the deliveries to be counted", || {
        status(&st).delivered == 4
    })
    .await;
    let s = status(&st);
    assert_eq!(
        (s.queued, s.failures_in_row, s.last_error, s.next_attempt),
        (0, 0, None, None)
    );

    let text = scrape(&srv).await;
    let m = |series: &str| metric_value(&text, series);
    assert_eq!(
        m(r#"tandem_webhook_deliveries_total{webhook="retrying",result="delivered"}"#),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        m(r#"tandem_webhook_deliveries_total{webhook="retrying",result="failed"}"#),
        Some(1.0)
    );
    assert_eq!(
        m(r#"tandem_webhook_retries_total{webhook="retrying"}"#),
        Some(4.0)
    );
    assert_eq!(
        m(r#"tandem_webhook_dropped_total{webhook="retrying",reason="queue_full"}"#),
        Some(6.0)
    );
    assert_eq!(
        m(r#"tandem_webhook_queue_depth{webhook="retrying"}"#),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_is_not_retried_and_only_the_chosen_kinds_are_sent() {
    let rx = Receiver::start();
    rx.answer(400);
    let srv = TestServer::start_clocked(|c| {
        c.create_demo_channel = false;
        c.webhooks = vec![WebhookSettings {
            name: Some("refusing".into()),
            kinds: Some(vec!["switch".into()]),
            bearer_token: Some(Secret("tok3n".into())),
            ..WebhookSettings::url(rx.url("/"))
        }];
    })
    .await;
    let st = srv.state.clone();
    raise(&st, "input_lost", 0);
    raise(&st, "switch", 1);
    until("the switch", || rx.received().len() == 1).await;
    until("the refusal to be counted", || status(&st).rejected == 1).await;
    let got = rx.received();
    assert_eq!(got[0].json()["kind"], "switch");
    assert_eq!(got[0].header("authorization"), Some("Bearer tok3n"));
    // No hold after a refusal: the next event goes at once, on the clock
    // that never moved.
    rx.answer(204);
    raise(&st, "switch", 0);
    until("the second switch", || rx.received().len() == 2).await;
    until("the delivery to be counted", || status(&st).delivered == 1).await;
    let s = status(&st);
    assert_eq!((s.retries, s.failed, s.queued), (0, 0, 0));
    assert_eq!(ids(&rx.received()), [2, 3]);
}

#[tokio::test]
async fn a_bad_webhook_url_stops_the_server_from_starting_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg =
        tandem_server::ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf());
    cfg.s3_listen = None;
    cfg.mediastore_listen = None;
    cfg.webhooks = vec![WebhookSettings::url("htp://alerts.example.com/x")];
    let store: Arc<dyn tandem_store::Store> =
        Arc::new(tandem_store::LocalStore::open(dir.path()).unwrap());
    let err = tandem_server::Server::bind_with(cfg, store, Arc::new(tandem_server::SystemClock))
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "webhook \"htp://alerts.example.com/x\": scheme \"htp\" is not http or https"
    );
}
