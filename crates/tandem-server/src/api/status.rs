//! Everything at a glance, and as it happens.
//!
//! - `GET /api/v1/status`: every channel (both inputs' state and the
//!   seconds since each last advanced, the output's active pipeline, the
//!   last hour as stretches per rendition) and every archive pair (each
//!   bucket's verdict per index of the latest check). The status page and
//!   `tandem status` show this.
//! - `GET /api/v1/events/stream`: every event as it is raised, as
//!   server-sent events (`text/event-stream`): `id:` the event's
//!   server-wide number, `data:` its JSON (`{"id":…,"channel":"news",
//!   "kind":"input_lost",…}` or `{"id":…,"archive":"a1",…}`). A client
//!   that reconnects with `Last-Event-ID` first gets the kept events after
//!   that one. `?channel=ID` or `?archive=ID` keeps one subject's events.
//!   An `event: lagged` with `{"missed":N}` says N events were dropped
//!   because the client read too slowly.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use tandem_core::{InputState, Pipeline};
use tokio::sync::broadcast::error::RecvError;

use super::{ApiError, admin};
use crate::AppState;
use crate::events::{BusEvent, Subject};
use crate::output::timeline::TimelineView;
use crate::util::rfc3339_millis;

/// One input at a glance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputGlance {
    pub pipeline: usize,
    /// `receiving`, `lost` or `idle`: the merge engine's judgement (its
    /// loss threshold) once a playlist arrived, else from the writes.
    pub state: InputState,
    /// When its playlist last advanced (RFC 3339), if it did since start.
    pub last_advance: Option<String>,
    pub seconds_since_advance: Option<f64>,
    /// When anything was last written to it.
    pub last_write: Option<String>,
    pub bytes_received: u64,
}

/// One channel at a glance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChannelGlance {
    pub id: String,
    pub output: String,
    /// The playlist a player opens (multivariant if there is one).
    pub playlist: Option<String>,
    /// The pipeline the output last switched to.
    pub active_pipeline: Option<usize>,
    pub inputs: Vec<InputGlance>,
    pub timeline: Option<TimelineGlance>,
    /// The channel's Smooth publishing points: both inputs' state and
    /// what the merge counted.
    #[serde(default)]
    pub publishing_points: Vec<crate::output::smooth::PointStatus>,
}

/// [`TimelineView`] as clients read it back.
pub type TimelineGlance = serde_json::Value;

/// One index of an archive pair: each bucket's verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndexGlance {
    pub index: u64,
    pub primary: String,
    pub backup: String,
    pub covered_by: String,
}

/// One archive pair at a glance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArchiveGlance {
    pub id: String,
    /// The newest indexes of the latest check, oldest first.
    pub indexes: Vec<IndexGlance>,
    /// Indexes reported whole in neither bucket since the server started.
    pub uncovered: usize,
}

/// One UDP flow at a glance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UdpGlance {
    pub id: String,
    pub mode: String,
    /// `running` or `failed`.
    pub state: String,
    /// Per leg: its address and whether it delivers.
    pub legs: Vec<(String, bool)>,
    pub output_packets: u64,
    pub output_lost: u64,
    pub output_bitrate_bps: u64,
}

/// The whole server at a glance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub time: String,
    pub channels: Vec<ChannelGlance>,
    pub archives: Vec<ArchiveGlance>,
    #[serde(default)]
    pub udp: Vec<UdpGlance>,
}

fn to_value(v: &TimelineView) -> Option<TimelineGlance> {
    serde_json::to_value(v).ok()
}

/// What `GET /api/v1/status` answers.
pub fn status(st: &AppState) -> Result<Status, ApiError> {
    let now = st.clock.now();
    let base = st.cfg.base_url();
    let mut channels: Vec<ChannelGlance> = st
        .channels
        .all()
        .iter()
        .map(|ch| {
            let id = ch.spec.id.clone();
            let out = ch
                .spec
                .channel_id()
                .ok()
                .and_then(|cid| st.outputs.get(&cid));
            let engine = out.as_ref().and_then(|o| o.engine_inputs());
            let advanced = out.as_ref().map(|o| o.last_advance()).unwrap_or_default();
            let inputs = Pipeline::BOTH
                .iter()
                .map(|&p| {
                    let snap = ch.input(p).snapshot(now, st.cfg.input_loss_after);
                    let adv = p.of(&advanced);
                    InputGlance {
                        pipeline: p.index(),
                        state: engine.map_or(snap.state, |e| *p.of(&e)),
                        last_advance: adv.map(rfc3339_millis),
                        seconds_since_advance: adv
                            .map(|t| now.duration_since(t).unwrap_or_default().as_secs_f64()),
                        last_write: snap.last_write.map(rfc3339_millis),
                        bytes_received: snap.bytes,
                    }
                })
                .collect();
            ChannelGlance {
                output: format!("{base}/out/{id}/"),
                playlist: out
                    .as_ref()
                    .and_then(|o| o.main_playlist())
                    .map(|p| format!("/out/{id}/{p}")),
                active_pipeline: out
                    .as_ref()
                    .and_then(|o| o.active_pipeline())
                    .map(Pipeline::index),
                timeline: out.as_ref().and_then(|o| to_value(&o.timeline(now))),
                publishing_points: out.as_ref().map(|o| o.smooth.status()).unwrap_or_default(),
                inputs,
                id,
            }
        })
        .collect();
    channels.sort_by(|a, b| a.id.cmp(&b.id));
    let mut archives = Vec::new();
    for spec in st.db.list_archives()? {
        let indexes = st
            .archive_watches
            .grid(&spec.id)
            .into_iter()
            .map(|r| IndexGlance {
                index: r.index,
                primary: r.primary.to_string(),
                backup: r.backup.to_string(),
                covered_by: r.covered_by.to_string(),
            })
            .collect();
        archives.push(ArchiveGlance {
            uncovered: st.archive_watches.event_count(&spec.id),
            id: spec.id,
            indexes,
        });
    }
    let udp = st
        .udp
        .all()
        .iter()
        .map(|f| {
            let status = f.status();
            UdpGlance {
                id: f.spec.id.clone(),
                mode: f.spec.mode.as_str().to_owned(),
                state: if status.is_some() {
                    "running"
                } else {
                    "failed"
                }
                .to_owned(),
                legs: f
                    .spec
                    .legs
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        let up = status.as_ref().is_some_and(|s| s.legs[i].up);
                        (l.to_string(), up)
                    })
                    .collect(),
                output_packets: status.as_ref().map_or(0, |s| s.output.packets),
                output_lost: status.as_ref().map_or(0, |s| s.output.lost),
                output_bitrate_bps: status.as_ref().map_or(0, |s| s.output.bitrate_bps),
            }
        })
        .collect();
    Ok(Status {
        time: rfc3339_millis(now),
        channels,
        archives,
        udp,
    })
}

pub(super) async fn get_status(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    Ok(axum::Json(status(&st)?).into_response())
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
/// Which events a stream keeps: one channel's, one archive pair's, or all.
pub struct StreamFilter {
    pub channel: Option<String>,
    pub archive: Option<String>,
}

impl StreamFilter {
    fn keeps(&self, e: &BusEvent) -> bool {
        match (&self.channel, &self.archive, &e.subject) {
            (None, None, _) => true,
            (Some(c), _, Subject::Channel(s)) | (_, Some(c), Subject::Archive(s)) => c == s,
            _ => false,
        }
    }
}

fn sse(e: &BusEvent) -> SseEvent {
    SseEvent::default()
        .id(e.id.to_string())
        .json_data(e)
        .unwrap_or_else(|_| SseEvent::default().comment("unencodable event"))
}

/// Every event from the bus (after `Last-Event-ID`, if sent), filtered.
pub fn event_stream(
    st: &AppState,
    last_id: Option<u64>,
    filter: StreamFilter,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static {
    // Kept and subscribed under the bus's lock: no event is in both.
    let (missed, rx) = match last_id {
        Some(id) => st.events.subscribe_after(id),
        None => (Vec::new(), st.events.subscribe()),
    };
    let filter = Arc::new(filter);
    let f = filter.clone();
    let replay = stream::iter(missed)
        .filter(move |e| std::future::ready(f.keeps(e)))
        .map(|e| Ok(sse(&e)));
    let live = stream::unfold(rx, move |mut rx| {
        let filter = filter.clone();
        async move {
            loop {
                match rx.recv().await {
                    Ok(e) if filter.keeps(&e) => return Some((Ok(sse(&e)), rx)),
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        let ev = SseEvent::default()
                            .event("lagged")
                            .data(format!("{{\"missed\":{n}}}"));
                        return Some((Ok(ev), rx));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    replay.chain(live)
}

pub(super) async fn stream_events(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    filter: Result<Query<StreamFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    let Query(filter) = filter.map_err(|e| {
        ApiError(
            http::StatusCode::BAD_REQUEST,
            format!("expected ?channel=ID or ?archive=ID: {e}"),
        )
    })?;
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let s = event_stream(&st, last_id, filter);
    Ok(Sse::new(s)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
