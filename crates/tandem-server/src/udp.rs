//! UDP and RTP flows in the server: started from the database when the
//! server starts, created and deleted through the control API (started and
//! stopped at once), each a `tandem-udp-io` flow on its own thread.
//!
//! A flow's events (`udp_leg_lost`, `udp_leg_restored`, `udp_switch`,
//! `udp_output_lost`, `udp_stream_restarted`) are logged, counted in
//! `/metrics`, kept (the last [`EVENTS_KEPT`]) for
//! `GET /api/v1/udp/{id}`, and published on the event bus for the status
//! page and webhooks. Counters are read from the flow's status when
//! `/metrics` is rendered, so the API and the metrics never disagree.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use metrics::{counter, gauge};
use tandem_udp_io::{FlowEvent, FlowHandle, FlowObserver, FlowSpec, FlowStatus};

use crate::clock::Clock;
use crate::events::{EventBus, Subject};

/// Events kept per flow for the API.
pub const EVENTS_KEPT: usize = 256;

/// The server's clock as a flow's clock.
struct FlowClockOf(Arc<dyn Clock>);

impl tandem_udp_io::FlowClock for FlowClockOf {
    fn instant(&self) -> Instant {
        self.0.instant()
    }
    fn sleep_until(&self, deadline: Instant) -> tandem_udp_io::flow::Sleep {
        self.0.sleep_until(deadline)
    }
}

struct Observer {
    id: String,
    bus: EventBus,
    clock: Arc<dyn Clock>,
    log: Arc<Mutex<VecDeque<serde_json::Value>>>,
    record: Option<crate::udp_record::RecordTap>,
}

fn event_json(time: String, ev: &FlowEvent) -> serde_json::Value {
    let mut v = serde_json::json!({ "time": time, "kind": ev.kind() });
    let extra = match ev {
        FlowEvent::LegLost { leg, silent_ms } | FlowEvent::LegRestored { leg, silent_ms } => {
            serde_json::json!({ "leg": leg.index(), "silent_ms": silent_ms })
        }
        FlowEvent::Switched { from, to, reason } => serde_json::json!({
            "from": from.map(|p| p.index()), "to": to.index(), "reason": reason
        }),
        FlowEvent::OutputLost {
            sequence_number,
            count,
        } => serde_json::json!({ "sequence_number": sequence_number, "count": count }),
        FlowEvent::StreamRestarted {
            leg,
            previous_ssrc,
            ssrc,
        } => {
            serde_json::json!({ "leg": leg.index(), "previous_ssrc": previous_ssrc, "ssrc": ssrc })
        }
        _ => serde_json::json!({}),
    };
    if let (Some(m), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
        m.extend(e);
    }
    v
}

impl FlowObserver for Observer {
    fn output(&self, ts: &bytes::Bytes) {
        if let Some(r) = &self.record {
            r.offer(ts);
        }
    }

    fn event(&self, ev: FlowEvent) {
        let body = event_json(crate::util::rfc3339_millis(self.clock.now()), &ev);
        match &ev {
            FlowEvent::LegLost { .. } | FlowEvent::OutputLost { .. } => {
                tracing::warn!(flow = %self.id, event = %body, "udp flow event")
            }
            _ => tracing::info!(flow = %self.id, event = %body, "udp flow event"),
        }
        counter!("tandem_udp_events_total", "flow" => self.id.clone(), "kind" => ev.kind())
            .increment(1);
        {
            let mut log = self
                .log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if log.len() >= EVENTS_KEPT {
                log.pop_front();
            }
            log.push_back(body.clone());
        }
        self.bus.publish(Subject::Udp(self.id.clone()), &body);
    }
}

/// One flow the server knows: running, or failed to start (with why).
#[derive(Debug)]
pub struct UdpFlow {
    pub spec: FlowSpec,
    handle: Mutex<Option<FlowHandle>>,
    recording: Mutex<Option<crate::udp_record::Recording>>,
    /// Why the flow is not running (it could not open its sockets when
    /// the server started).
    pub error: Option<String>,
    log: Arc<Mutex<VecDeque<serde_json::Value>>>,
}

impl UdpFlow {
    /// The flow's counters, if it runs.
    pub fn status(&self) -> Option<FlowStatus> {
        self.handle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(FlowHandle::status)
    }

    /// The kept events, oldest first.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    async fn stop(&self) {
        let h = self
            .handle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(h) = h {
            h.stop().await;
        }
        let r = self
            .recording
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(r) = r {
            r.finish().await;
        }
    }
}

/// The server's flows.
#[derive(Debug, Default)]
pub struct UdpFlows {
    flows: Mutex<BTreeMap<String, Arc<UdpFlow>>>,
}

impl UdpFlows {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<UdpFlow>>> {
        self.flows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a flow (its sockets open before this returns), and its
    /// recording into `store` if it records.
    pub fn start(
        &self,
        spec: FlowSpec,
        bus: &EventBus,
        clock: &Arc<dyn Clock>,
        store: &Arc<dyn tandem_store::Store>,
    ) -> Result<Arc<UdpFlow>, tandem_udp_io::FlowError> {
        spec.validate()?;
        let log: Arc<Mutex<VecDeque<serde_json::Value>>> = Arc::default();
        let (record, recording) = if spec.record {
            let (tap, rec) = crate::udp_record::start(
                store.clone(),
                clock.clone(),
                &spec.id,
                spec.record_rollover(),
            );
            (Some(tap), Some(rec))
        } else {
            (None, None)
        };
        let observer = Arc::new(Observer {
            id: spec.id.clone(),
            bus: bus.clone(),
            clock: clock.clone(),
            log: log.clone(),
            record,
        });
        // On failure the writer ends by itself, having opened no file.
        let handle = tandem_udp_io::start(&spec, Arc::new(FlowClockOf(clock.clone())), observer)?;
        let flow = Arc::new(UdpFlow {
            spec: spec.clone(),
            handle: Mutex::new(Some(handle)),
            recording: Mutex::new(recording),
            error: None,
            log,
        });
        self.lock().insert(spec.id, flow.clone());
        Ok(flow)
    }

    /// Keeps a stored flow that could not start, so the API shows why.
    pub fn failed(&self, spec: FlowSpec, error: String) {
        self.lock().insert(
            spec.id.clone(),
            Arc::new(UdpFlow {
                spec,
                handle: Mutex::new(None),
                recording: Mutex::new(None),
                error: Some(error),
                log: Arc::default(),
            }),
        );
    }

    /// Stops a flow and waits until its sockets are closed.
    pub async fn stop(&self, id: &str) {
        let flow = self.lock().remove(id);
        if let Some(f) = flow {
            f.stop().await;
        }
    }

    /// Stops every flow (server shutdown).
    pub async fn stop_all(&self) {
        let all: Vec<_> = std::mem::take(&mut *self.lock()).into_values().collect();
        for f in all {
            f.stop().await;
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<UdpFlow>> {
        self.lock().get(id).cloned()
    }

    /// Every flow, sorted by id.
    pub fn all(&self) -> Vec<Arc<UdpFlow>> {
        self.lock().values().cloned().collect()
    }
}

/// Sets the flows' series from their status (called when `/metrics` is
/// rendered).
pub fn render_metrics(flows: &UdpFlows) {
    for f in flows.all() {
        let id = f.spec.id.clone();
        gauge!("tandem_udp_flow_running", "flow" => id.clone()).set(if f.error.is_none() {
            1.0
        } else {
            0.0
        });
        let Some(s) = f.status() else {
            continue;
        };
        for l in &s.legs {
            let labels = [("flow", id.clone()), ("leg", l.leg.to_string())];
            let c = |name: &'static str, v: u64| counter!(name, &labels).absolute(v);
            c("tandem_udp_leg_packets_total", l.packets);
            c("tandem_udp_leg_bytes_total", l.bytes);
            c("tandem_udp_leg_invalid_total", l.invalid);
            c(
                "tandem_udp_leg_unexpected_source_total",
                l.unexpected_source,
            );
            c("tandem_udp_leg_oversize_total", l.oversize);
            c("tandem_udp_leg_sequence_gaps_total", l.sequence_gaps);
            c("tandem_udp_leg_out_of_order_total", l.out_of_order);
            c("tandem_udp_leg_duplicates_total", l.duplicates);
            c("tandem_udp_leg_late_total", l.late);
            c(
                "tandem_udp_leg_recovered_from_other_total",
                l.recovered_from_other,
            );
            c("tandem_udp_leg_fec_packets_total", l.fec_packets);
            gauge!("tandem_udp_leg_up", &labels).set(if l.up { 1.0 } else { 0.0 });
            gauge!("tandem_udp_leg_bitrate_bps", &labels).set(l.bitrate_bps as f64);
            gauge!("tandem_udp_leg_recv_buffer_bytes", &labels).set(l.recv_buffer_bytes as f64);
            for (pid, n) in &l.continuity_errors_by_pid {
                counter!("tandem_udp_leg_continuity_errors_total", "flow" => id.clone(),
                    "leg" => l.leg.to_string(), "pid" => pid.to_string())
                .absolute(*n);
            }
        }
        let o = &s.output;
        let labels = [("flow", id.clone())];
        let c = |name: &'static str, v: u64| counter!(name, &labels).absolute(v);
        c("tandem_udp_output_packets_total", o.packets);
        c("tandem_udp_output_bytes_total", o.bytes);
        c("tandem_udp_output_lost_total", o.lost);
        c(
            "tandem_udp_output_recovered_by_fec_total",
            o.recovered_by_fec,
        );
        c("tandem_udp_output_send_errors_total", o.send_errors);
        c("tandem_udp_output_switches_total", o.switches);
        gauge!("tandem_udp_output_bitrate_bps", &labels).set(o.bitrate_bps as f64);
        for (pid, n) in &o.continuity_errors_by_pid {
            counter!("tandem_udp_output_continuity_errors_total", "flow" => id.clone(), "pid" => pid.to_string())
                .absolute(*n);
        }
        if let Some(d) = s.differential_delay_ms {
            gauge!("tandem_udp_differential_delay_ms", &labels).set(d);
        }
        gauge!("tandem_udp_max_differential_delay_ms", &labels).set(s.max_differential_delay_ms);
        if let Some(a) = o.active_leg {
            gauge!("tandem_udp_output_active_leg", &labels).set(a as f64);
        }
    }
}
