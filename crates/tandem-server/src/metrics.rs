//! Prometheus metrics, rendered at `/metrics`.
//!
//! Counters are labelled by channel and pipeline only once the request has
//! resolved to a known input, so unknown URLs cannot inflate the label set.

use std::sync::OnceLock;
use std::time::SystemTime;

use metrics::{counter, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tandem_core::{InputState, Pipeline};

use crate::registry::Channels;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Bucket edges (seconds) of the publish delays (`*_publish_delay_seconds`),
/// exported as histograms: buckets add up across channels and instances,
/// where a summary's quantiles cannot, and an edge at 5 ms says how many
/// fragments were named within it.
const DELAY_BUCKETS: [f64; 18] = [
    0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// The process-wide Prometheus recorder, installed on first use.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_publish_delay_seconds".into()),
                    &DELAY_BUCKETS,
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics will be empty");
            }
            handle
        })
        .clone()
}

/// Counts one ingest request by outcome; `reason` is set when refused.
pub fn ingest_request(
    channel: &str,
    pipeline: &str,
    method: &str,
    status: u16,
    reason: Option<&'static str>,
) {
    let (channel, pipeline) = (channel.to_owned(), pipeline.to_owned());
    counter!("tandem_ingest_requests_total", "channel" => channel.clone(), "pipeline" => pipeline.clone(),
        "method" => method.to_owned(), "status" => status.to_string())
    .increment(1);
    if let Some(reason) = reason {
        counter!("tandem_ingest_rejected_total", "channel" => channel, "pipeline" => pipeline, "reason" => reason).increment(1);
    }
}

/// Counts an object published by ingest.
pub fn object_published(channel: &str, pipeline: &str, bytes: u64) {
    counter!("tandem_ingest_bytes_total", "channel" => channel.to_owned(), "pipeline" => pipeline.to_owned()).increment(bytes);
    counter!("tandem_ingest_objects_total", "channel" => channel.to_owned(), "pipeline" => pipeline.to_owned()).increment(1);
}

/// Refreshes the per-input gauges and renders the exposition text.
pub fn render(
    channels: &Channels,
    outputs: &crate::output::Outputs,
    now: SystemTime,
    loss_after: std::time::Duration,
) -> String {
    for out in outputs.all() {
        for (i, t) in out.last_advance().iter().enumerate() {
            if let Some(t) = t {
                gauge!("tandem_input_seconds_since_last_advance", "channel" => out.id.to_string(), "pipeline" => i.to_string())
                    .set(now.duration_since(*t).unwrap_or_default().as_secs_f64());
            }
        }
    }
    for ch in channels.all() {
        for p in Pipeline::BOTH {
            let snap = ch.input(p).snapshot(now, loss_after);
            let labels = [("channel", ch.id.to_string()), ("pipeline", p.to_string())];
            gauge!("tandem_input_up", &labels).set(if snap.state == InputState::Receiving {
                1.0
            } else {
                0.0
            });
            if let Some(t) = snap.last_write {
                gauge!("tandem_input_seconds_since_last_write", &labels)
                    .set(now.duration_since(t).unwrap_or_default().as_secs_f64());
            }
        }
    }
    handle().render()
}
