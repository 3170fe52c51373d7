//! Archive pairs in the control API.
//!
//! - `POST /api/v1/archives` `{"id":"news"}` → 201 with both buckets and
//!   the key pair that writes each; 409 if it exists; 400 for a bad id.
//! - `GET /api/v1/archives`, `GET /api/v1/archives/{id}`.
//! - `DELETE /api/v1/archives/{id}`: removes the pair, its keys and both
//!   buckets' contents.
//! - `GET /api/v1/archives/{id}/events`: indexes the archive watch found
//!   whole in neither bucket after their time.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use tandem_core::{ArchiveId, ArchiveSpec, Pipeline};

use super::{ApiError, admin};
use crate::AppState;

/// One bucket as the encoder's archive destination form asks for it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DestinationView {
    pub pipeline: usize,
    pub bucket: String,
    pub url: String,
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// An archive pair as the API and the CLI print it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArchiveView {
    pub id: String,
    pub destinations: Vec<DestinationView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollover_secs: Option<u64>,
}

/// The view of an archive pair served at `endpoint`.
pub fn archive_view(spec: &ArchiveSpec, endpoint: &str, region: &str) -> ArchiveView {
    let destinations = Pipeline::BOTH
        .iter()
        .map(|&p| {
            let bucket = format!("{}-{p}", spec.id);
            let k = spec.keys(p);
            DestinationView {
                pipeline: p.index(),
                url: format!("s3://{bucket}/"),
                bucket,
                endpoint: endpoint.to_owned(),
                region: region.to_owned(),
                access_key_id: k.access_key_id.clone(),
                secret_access_key: k.secret_access_key.clone(),
            }
        })
        .collect();
    ArchiveView {
        id: spec.id.clone(),
        destinations,
        rollover_secs: spec.rollover_secs,
    }
}

fn view(st: &AppState, spec: &ArchiveSpec) -> ArchiveView {
    let endpoint = st
        .cfg
        .s3_endpoint()
        .unwrap_or_else(|| "(S3 listener off)".into());
    archive_view(spec, &endpoint, &st.cfg.s3.region)
}

fn archive_id(id: &str) -> Result<ArchiveId, ApiError> {
    ArchiveId::parse(id).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateArchive {
    id: String,
    #[serde(default)]
    rollover_secs: Option<u64>,
}

pub(super) async fn create(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    let req: CreateArchive = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"id\":\"…\"}}: {e}"),
        )
    })?;
    let id = archive_id(&req.id)?;
    if req.rollover_secs == Some(0) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "rollover_secs must be at least 1".into(),
        ));
    }
    let spec = st
        .create_archive(&id, SystemTime::now(), req.rollover_secs)
        .await?;
    tracing::info!(archive = %id, "archive pair created");
    Ok((StatusCode::CREATED, axum::Json(view(&st, &spec))).into_response())
}

pub(super) async fn list(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    let views: Vec<ArchiveView> = st
        .db
        .list_archives()?
        .iter()
        .map(|s| view(&st, s))
        .collect();
    Ok(axum::Json(views).into_response())
}

pub(super) async fn show(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    let spec = st.db.archive(&archive_id(&id)?)?;
    Ok(axum::Json(view(&st, &spec)).into_response())
}

pub(super) async fn remove(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    let id = archive_id(&id)?;
    st.delete_archive(&id).await?;
    tracing::info!(archive = %id, "archive pair deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn events(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    let id = archive_id(&id)?;
    st.db.archive(&id)?;
    let events = st.archive_watches.events(id.as_str());
    Ok(axum::Json(serde_json::json!({ "events": events })).into_response())
}
