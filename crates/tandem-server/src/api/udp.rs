//! UDP and RTP flows in the control API.
//!
//! - `POST /api/v1/udp` `{"id":"feed","mode":"rtp-2022-7",
//!   "legs":["239.1.1.1:5000","10.0.0.5@232.1.1.2:5000"],
//!   "forward":["udp://127.0.0.1:6000"],"skew_ms":50}` → 201 with the flow,
//!   which runs at once (its sockets are open); 400 for a bad definition or
//!   a socket that cannot be opened, 409 if the id exists or a port is
//!   taken.
//! - `GET /api/v1/udp`, `GET /api/v1/udp/{id}`: definitions, state, every
//!   counter per leg and output, and the flow's recent events.
//! - `DELETE /api/v1/udp/{id}`: stops the flow (its sockets are closed
//!   when this answers) and removes it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use tandem_udp_io::{FlowError, FlowSpec, FlowStatus, LegAddr, Mode, Target};

use super::{ApiError, admin};
use crate::AppState;
use crate::udp::UdpFlow;

/// A flow as the API and the CLI print it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UdpFlowView {
    #[serde(flatten)]
    pub spec: FlowSpec,
    /// `running`; `failed` (see `error`); `stopped` when no server runs
    /// (the flow starts with the server).
    pub state: String,
    /// Where a recording flow's files go (`s3://udp-recordings/ID/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<FlowStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<serde_json::Value>,
}

/// Where a recording flow's files are, as `tandem archive verify` takes it.
fn recording_url(spec: &FlowSpec) -> Option<String> {
    spec.record
        .then(|| format!("s3://{}/{}/", crate::udp_record::BUCKET, spec.id))
}

/// The view of a flow no server runs.
pub fn stopped_view(spec: &FlowSpec) -> UdpFlowView {
    UdpFlowView {
        spec: spec.clone(),
        state: "stopped".into(),
        recording: recording_url(spec),
        error: None,
        status: None,
        events: Vec::new(),
    }
}

fn live_view(f: &UdpFlow) -> UdpFlowView {
    let status = f.status();
    UdpFlowView {
        spec: f.spec.clone(),
        state: if status.is_some() {
            "running"
        } else {
            "failed"
        }
        .into(),
        recording: recording_url(&f.spec),
        error: f.error.clone(),
        status,
        events: f.events(),
    }
}

/// The request: a flow definition, nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUdp {
    id: String,
    mode: Mode,
    legs: [LegAddr; 2],
    forward: Vec<Target>,
    #[serde(default)]
    skew_ms: Option<u64>,
    #[serde(default)]
    record: bool,
    #[serde(default)]
    record_rollover_secs: Option<u64>,
    #[serde(default)]
    interface: Option<std::net::IpAddr>,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// Checks a definition as both the API and the CLI (without a server) do.
pub fn check_spec(spec: &FlowSpec) -> Result<(), String> {
    spec.validate().map_err(|e| e.to_string())
}

pub(super) async fn create(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    let req: CreateUdp = serde_json::from_slice(&body).map_err(|e| {
        bad(format!(
            "expected {{\"id\":\"…\",\"mode\":\"rtp-2022-7|udp-switch\",\"legs\":[\"ADDR:PORT\",\"ADDR:PORT\"],\"forward\":[\"udp://HOST:PORT\"]}}: {e}"
        ))
    })?;
    let spec = FlowSpec {
        id: req.id,
        mode: req.mode,
        legs: req.legs,
        forward: req.forward,
        skew_ms: req.skew_ms,
        record: req.record,
        record_rollover_secs: req.record_rollover_secs,
        interface: req.interface,
    };
    check_spec(&spec).map_err(bad)?;
    if st.udp.get(&spec.id).is_some() {
        return Err(crate::RegistryError::UdpExists(spec.id).into());
    }
    // Sockets first: a port in use refuses the flow before it is stored.
    let flow =
        st.udp
            .start(spec.clone(), &st.events, &st.clock, &st.store)
            .map_err(|e| {
                let status = match &e {
                    FlowError::Socket(tandem_udp_io::socket::SocketError::Bind {
                        source, ..
                    }) if source.kind() == std::io::ErrorKind::AddrInUse => StatusCode::CONFLICT,
                    _ => StatusCode::BAD_REQUEST,
                };
                ApiError(status, e.to_string())
            })?;
    if let Err(e) = st.db.insert_udp(&spec) {
        st.udp.stop(&spec.id).await;
        return Err(e.into());
    }
    tracing::info!(flow = %spec.id, mode = spec.mode.as_str(), "udp flow created");
    Ok((StatusCode::CREATED, axum::Json(live_view(&flow))).into_response())
}

pub(super) async fn list(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    let views: Vec<UdpFlowView> = st.udp.all().iter().map(|f| live_view(f)).collect();
    Ok(axum::Json(views).into_response())
}

pub(super) async fn show(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    let f = st
        .udp
        .get(&id)
        .ok_or_else(|| ApiError::from(crate::RegistryError::UdpNotFound(id)))?;
    Ok(axum::Json(live_view(&f)).into_response())
}

pub(super) async fn remove(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    if !st.db.remove_udp(&id)? {
        return Err(crate::RegistryError::UdpNotFound(id).into());
    }
    st.udp.stop(&id).await;
    tracing::info!(flow = %id, "udp flow deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
