//! Container pairs (MediaStore-style) in the control API.
//!
//! - `POST /api/v1/containers` `{"id":"news"}` → 201 with both containers
//!   (`news-0`, `news-1`), each with its endpoint and the key pair that
//!   writes it; 409 if it exists; 400 for a bad id.
//! - `GET /api/v1/containers`, `GET /api/v1/containers/{id}`.
//! - `DELETE /api/v1/containers/{id}`: removes the pair, its keys and both
//!   containers' objects.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use tandem_core::{ContainerId, ContainerSpec, Pipeline};

use super::{ApiError, admin};
use crate::AppState;

/// One container as an encoder's MediaStore destination asks for it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerView {
    pub pipeline: usize,
    pub container: String,
    /// The container's data endpoint (`aws mediastore-data --endpoint-url`).
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// A container pair as the API and the CLI print it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerPairView {
    pub id: String,
    pub containers: Vec<ContainerView>,
}

/// The view of a container pair served at `base` (the listener's URL).
pub fn container_view(spec: &ContainerSpec, base: &str, region: &str) -> ContainerPairView {
    let containers = Pipeline::BOTH
        .iter()
        .map(|&p| {
            let container = format!("{}-{p}", spec.id);
            let k = spec.keys(p);
            ContainerView {
                pipeline: p.index(),
                endpoint: format!("{base}/{container}"),
                container,
                region: region.to_owned(),
                access_key_id: k.access_key_id.clone(),
                secret_access_key: k.secret_access_key.clone(),
            }
        })
        .collect();
    ContainerPairView {
        id: spec.id.clone(),
        containers,
    }
}

fn view(st: &AppState, spec: &ContainerSpec) -> ContainerPairView {
    let base = st
        .cfg
        .mediastore_endpoint()
        .unwrap_or_else(|| "(MediaStore listener off)".into());
    container_view(spec, &base, &st.cfg.s3.region)
}

fn container_id(id: &str) -> Result<ContainerId, ApiError> {
    ContainerId::parse(id).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateContainer {
    id: String,
}

pub(super) async fn create(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    let req: CreateContainer = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"id\":\"…\"}}: {e}"),
        )
    })?;
    let id = container_id(&req.id)?;
    let spec = st.create_container(&id, SystemTime::now())?;
    tracing::info!(container = %id, "container pair created");
    Ok((StatusCode::CREATED, axum::Json(view(&st, &spec))).into_response())
}

pub(super) async fn list(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    let views: Vec<ContainerPairView> = st
        .db
        .list_containers()?
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
    let spec = st.db.container(&container_id(&id)?)?;
    Ok(axum::Json(view(&st, &spec)).into_response())
}

pub(super) async fn remove(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin(&st, &headers)?;
    let id = container_id(&id)?;
    st.delete_container(&id).await?;
    tracing::info!(container = %id, "container pair deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
