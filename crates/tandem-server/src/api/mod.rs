//! The control API under `/api/v1/`, guarded by the admin token.
//!
//! - `POST /api/v1/channels` `{"id":"news"}` → 201 with both inputs' URLs
//!   and credentials; 409 if it exists; 400 for a bad id.
//! - `GET /api/v1/channels`, `GET /api/v1/channels/{id}`: definitions plus
//!   each input's state, last write, bytes and objects received.
//! - `PATCH /api/v1/channels/{id}` `{"retention":{"input_secs":7200}}`:
//!   changes the channel's retention (`{}` clears it).
//! - `DELETE /api/v1/channels/{id}`: removes the channel and its objects.
//! - `GET /api/v1/channels/{id}/events`: input state changes, switches,
//!   filled and missing segments, the output's end, resume and reset,
//!   newest last.
//! - `POST /api/v1/channels/{id}/reset`: starts the channel's output
//!   afresh (a new event); answers each playlist's new media sequence.
//! - `POST /api/v1/channels/{id}/inputs/{pipeline}/rotate-password`: a
//!   new password for one input, in force at once; answers the channel
//!   with its new credentials.
//! - [`status`]: `GET /api/v1/status`, everything at a glance, and
//!   `GET /api/v1/events/stream`, every event as it happens (SSE).
//! - [`archives`]: `/api/v1/archives`, archive pairs of S3 buckets.
//! - [`containers`]: `/api/v1/containers`, MediaStore-style container pairs.
//! - [`udp`]: `/api/v1/udp`, UDP and RTP flows (two legs merged or switched).

pub mod archives;
pub mod containers;
pub mod status;
pub mod udp;

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tandem_core::{ChannelId, ChannelSpec, InputState, Pipeline};

use crate::AppState;
use crate::registry::{InputSnapshot, LiveChannel, RegistryError};

/// One input as the encoder's destination form asks for it, plus its
/// state when the server is running.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputView {
    pub pipeline: usize,
    pub url: String,
    pub username: String,
    pub password: String,
    /// Where the pipeline's HLS comes from, when not its HTTP input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceView>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub status: Option<InputStatus>,
}

/// A pipeline bound to a container or bucket, as the API takes and shows
/// it: `{"mediastore":"news-0","prefix":"live/"}` or `{"s3":…}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct SourceView {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mediastore: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<String>,
    #[serde(default)]
    pub prefix: String,
}

impl SourceView {
    fn of(s: &tandem_core::InputSource) -> Option<Self> {
        use tandem_core::InputSource;
        match s {
            InputSource::Http => None,
            InputSource::Mediastore { container, prefix } => Some(Self {
                mediastore: Some(container.clone()),
                prefix: prefix.clone(),
                ..Self::default()
            }),
            InputSource::S3 { bucket, prefix } => Some(Self {
                s3: Some(bucket.clone()),
                prefix: prefix.clone(),
                ..Self::default()
            }),
        }
    }

    /// The source, validated: exactly one of `mediastore` and `s3`, a
    /// name without `/`, a prefix of valid path segments.
    fn source(self) -> Result<tandem_core::InputSource, String> {
        use tandem_core::InputSource;
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 255
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        let prefix_ok = self.prefix.split('/').filter(|s| !s.is_empty()).all(|seg| {
            tandem_core::ObjectPath::from_segments([seg]).is_ok() && seg != "." && seg != ".."
        });
        if !prefix_ok {
            return Err(format!(
                "source prefix {:?} is not a valid path",
                self.prefix
            ));
        }
        match (self.mediastore, self.s3) {
            (Some(c), None) if name_ok(&c) => Ok(InputSource::Mediastore {
                container: c,
                prefix: self.prefix,
            }),
            (None, Some(b)) if name_ok(&b) => Ok(InputSource::S3 {
                bucket: b,
                prefix: self.prefix,
            }),
            (Some(n), None) | (None, Some(n)) => {
                Err(format!("{n:?} is not a container or bucket name"))
            }
            _ => Err("a source names exactly one of \"mediastore\" and \"s3\"".to_owned()),
        }
    }
}

/// What the server observed of an input.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputStatus {
    pub state: InputState,
    /// RFC 3339, or null if nothing was written since the server started.
    pub last_write: Option<String>,
    pub bytes_received: u64,
    pub objects_received: u64,
}

/// A channel as the API and the CLI print it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChannelView {
    pub id: String,
    pub inputs: Vec<InputView>,
    pub output: String,
    /// The channel's retention settings, when any is set.
    #[serde(
        default,
        skip_serializing_if = "tandem_core::RetentionSettings::is_default"
    )]
    pub retention: tandem_core::RetentionSettings,
    /// Bytes each pipeline's input holds, as last measured (absent until
    /// the first measurement after the start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_bytes: Option<[u64; 2]>,
}

/// The view of a channel, with `status` per input when known.
pub fn channel_view(
    spec: &ChannelSpec,
    base_url: &str,
    status: Option<[InputSnapshot; 2]>,
) -> ChannelView {
    let inputs = Pipeline::BOTH
        .iter()
        .map(|&p| {
            let c = spec.credentials(p);
            InputView {
                pipeline: p.index(),
                url: format!("{base_url}/in/{}/{p}/", spec.id),
                username: c.username.clone(),
                password: c.password.clone(),
                source: SourceView::of(spec.source(p)),
                status: status.map(|s| {
                    let snap = s[p.index()];
                    InputStatus {
                        state: snap.state,
                        last_write: snap.last_write.map(crate::util::rfc3339),
                        bytes_received: snap.bytes,
                        objects_received: snap.objects,
                    }
                }),
            }
        })
        .collect();
    ChannelView {
        id: spec.id.clone(),
        inputs,
        output: format!("{base_url}/out/{}/", spec.id),
        retention: spec.retention,
        stored_bytes: None,
    }
}

fn live_view(st: &AppState, ch: &LiveChannel) -> ChannelView {
    let now = st.clock.now();
    let snaps = Pipeline::BOTH.map(|p| ch.input(p).snapshot(now, st.cfg.input_loss_after));
    let mut view = channel_view(&ch.current_spec(), &st.cfg.base_url(), Some(snaps));
    if let Some(out) = st.outputs.get(&ch.id) {
        view.stored_bytes = out.retention.stored_bytes();
        // The running setting: it may have changed since the channel
        // was loaded.
        view.retention.input_secs = out.retention.keep_for().map(|d| d.as_secs());
    }
    view
}

/// An API error: status and `{"error": "…"}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let status = match e {
            RegistryError::AlreadyExists(_)
            | RegistryError::UdpExists(_)
            | RegistryError::ArchiveExists(_)
            | RegistryError::ContainerExists(_) => StatusCode::CONFLICT,
            RegistryError::NotFound(_)
            | RegistryError::UdpNotFound(_)
            | RegistryError::ArchiveNotFound(_)
            | RegistryError::ContainerNotFound(_) => StatusCode::NOT_FOUND,
            _ => {
                tracing::error!(error = %e, "channel database");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        Self(status, e.to_string())
    }
}

/// The admin token as a bearer token, or the status page's session cookie.
fn admin(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if crate::ui::session::from_headers(headers)
        .is_some_and(|v| crate::ui::session::valid(&st.admin_token, v, st.clock.now()))
    {
        return Ok(());
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match token {
        Some(t) if bool::from(t.as_bytes().ct_eq(st.admin_token.as_bytes())) => Ok(()),
        _ => Err(ApiError(StatusCode::UNAUTHORIZED, "send the admin token as 'Authorization: Bearer …' (see admin-token in the data directory)".into())),
    }
}

/// Failover settings within what the engine can run with: thresholds of
/// seconds to hours, not negative, infinite or beyond a timer's range.
pub fn check_failover(f: &tandem_core::FailoverSettings) -> Result<(), ApiError> {
    let bad = |msg: &str| Err(ApiError(StatusCode::BAD_REQUEST, msg.to_owned()));
    if f.loss_after_targets
        .is_some_and(|x| !(x > 0.0 && x <= MAX_LOSS_AFTER_TARGETS))
    {
        return bad(
            "failover.loss_after_targets must be more than 0 and at most 100 (target durations)",
        );
    }
    if f.pdt_tolerance_targets
        .is_some_and(|x| !(0.0..=MAX_PDT_TOLERANCE_TARGETS).contains(&x))
    {
        return bad("failover.pdt_tolerance_targets must be from 0 to 10 (target durations)");
    }
    if f.hold_down_secs.is_some_and(|s| s > MAX_HOLD_DOWN_SECS) {
        return bad("failover.hold_down_secs must be at most 86400 (a day)");
    }
    Ok(())
}

/// Loss threshold ceiling, in target durations.
pub const MAX_LOSS_AFTER_TARGETS: f64 = 100.0;
/// Alignment tolerance ceiling, in target durations.
pub const MAX_PDT_TOLERANCE_TARGETS: f64 = 10.0;
/// Hold-down ceiling.
pub const MAX_HOLD_DOWN_SECS: u64 = 86_400;

fn channel_id(id: &str) -> Result<ChannelId, ApiError> {
    ChannelId::parse(id).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateChannel {
    id: String,
    #[serde(default)]
    failover: tandem_core::FailoverSettings,
    /// Per pipeline, optionally where its HLS comes from.
    #[serde(default)]
    inputs: Vec<CreateInput>,
    #[serde(default)]
    retention: tandem_core::RetentionSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateChannel {
    retention: tandem_core::RetentionSettings,
}

fn check_retention(r: &tandem_core::RetentionSettings) -> Result<(), ApiError> {
    // Zero would read as "keep nothing", which is what unset means; a
    // century is no setting anyone means either.
    const MAX: u64 = 100 * 365 * 86_400;
    match r.input_secs {
        Some(s) if s == 0 || s > MAX => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "retention.input_secs must be between 1 and {MAX} seconds (leave it out for none)"
            ),
        )),
        _ => Ok(()),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateInput {
    #[serde(default)]
    source: Option<SourceView>,
}

async fn create(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    let req: CreateChannel = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"id\":\"…\"}}: {e}"),
        )
    })?;
    let id = channel_id(&req.id)?;
    if req.failover.prefer.is_some_and(|p| p > 1) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "failover.prefer must be 0 or 1".into(),
        ));
    }
    check_failover(&req.failover)?;
    if req.inputs.len() > 2 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "a channel has two inputs".into(),
        ));
    }
    let mut sources: [tandem_core::InputSource; 2] = Default::default();
    for (slot, input) in sources.iter_mut().zip(req.inputs) {
        if let Some(view) = input.source {
            *slot = view
                .source()
                .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
        }
    }
    check_retention(&req.retention)?;
    let mut spec = crate::registry::new_channel_spec(&id, SystemTime::now())?;
    spec.failover = req.failover;
    spec.sources = sources;
    spec.retention = req.retention;
    let ch = st.create_channel_spec(spec).await?;
    tracing::info!(channel = %id, "channel created");
    let view = channel_view(&ch.spec, &st.cfg.base_url(), None);
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

async fn list(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    let views: Vec<ChannelView> = st
        .channels
        .all()
        .iter()
        .map(|c| live_view(&st, c))
        .collect();
    Ok(axum::Json(views).into_response())
}

async fn show(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    let id = channel_id(&id)?;
    let ch = st.channels.get(&id).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("channel {id} does not exist"),
        )
    })?;
    Ok(axum::Json(live_view(&st, &ch)).into_response())
}

async fn update(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    let id = channel_id(&id)?;
    let req: UpdateChannel = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"retention\":{{\"input_secs\":…}}}}: {e}"),
        )
    })?;
    check_retention(&req.retention)?;
    st.set_channel_retention(&id, req.retention)?;
    tracing::info!(channel = %id, input_secs = ?req.retention.input_secs, "channel retention changed");
    let ch = st.channels.get(&id).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("channel {id} does not exist"),
        )
    })?;
    Ok(axum::Json(live_view(&st, &ch)).into_response())
}

async fn remove(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    let id = channel_id(&id)?;
    st.delete_channel(&id).await?;
    tracing::info!(channel = %id, "channel deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn events(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    let id = channel_id(&id)?;
    let out = st.outputs.get(&id).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("channel {id} does not exist"),
        )
    })?;
    Ok(axum::Json(serde_json::json!({ "events": out.events() })).into_response())
}

/// The answer to a reset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResetView {
    pub renditions: Vec<crate::output::reset::ResetRendition>,
}

async fn reset(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    let id = channel_id(&id)?;
    let missing = || {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("channel {id} does not exist"),
        )
    };
    st.channels.get(&id).ok_or_else(missing)?;
    let renditions = st.outputs.reset(&id).await.ok_or_else(missing)?;
    tracing::info!(channel = %id, renditions = renditions.len(), "output reset");
    Ok(axum::Json(ResetView { renditions }).into_response())
}

async fn rotate_password(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((id, pipeline)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    let id = channel_id(&id)?;
    let p =
        Pipeline::parse(&pipeline).map_err(|e| ApiError(StatusCode::NOT_FOUND, e.to_string()))?;
    let spec = {
        let _one_at_a_time = st
            .rotation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let spec = st.db.rotate_password(&id, p)?;
        // Durable first, then in force: the next request with the old
        // password is refused.
        if let Some(ch) = st.channels.get(&id) {
            ch.set_credentials(p, spec.credentials(p).clone());
        }
        spec
    };
    tracing::info!(channel = %id, pipeline = %p, "input password rotated");
    let view = match st.channels.get(&id) {
        Some(ch) => live_view(&st, &ch),
        None => channel_view(&spec, &st.cfg.base_url(), None),
    };
    Ok(axum::Json(view).into_response())
}

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/channels", get(list).post(create))
        .route(
            "/api/v1/channels/{id}",
            get(show).patch(update).delete(remove),
        )
        .route("/api/v1/channels/{id}/events", get(events))
        .route("/api/v1/status", get(status::get_status))
        .route("/api/v1/events/stream", get(status::stream_events))
        .route("/api/v1/channels/{id}/reset", axum::routing::post(reset))
        .route(
            "/api/v1/channels/{id}/inputs/{pipeline}/rotate-password",
            axum::routing::post(rotate_password),
        )
        .route(
            "/api/v1/archives",
            get(archives::list).post(archives::create),
        )
        .route(
            "/api/v1/archives/{id}",
            get(archives::show).delete(archives::remove),
        )
        .route("/api/v1/archives/{id}/events", get(archives::events))
        .route(
            "/api/v1/containers",
            get(containers::list).post(containers::create),
        )
        .route(
            "/api/v1/containers/{id}",
            get(containers::show).delete(containers::remove),
        )
        .route("/api/v1/udp", get(udp::list).post(udp::create))
        .route("/api/v1/udp/{id}", get(udp::show).delete(udp::remove))
}
