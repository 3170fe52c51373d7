//! PUT: stream the body into a staged write and publish it only when it
//! arrived whole.
//!
//! "Whole" means: a `Content-Length` body delivered every announced byte,
//! or a chunked body ended with its terminating chunk. hyper reports a
//! connection that closes early as a body error; a client that stalls is
//! cut off after the idle timeout. In every such case the staged write is
//! dropped, nothing is published, and the previous version stays.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header, request::Parts};
use http_body_util::BodyExt;

use super::Target;
use crate::AppState;
use crate::error::HttpError;
use tandem_store::Parents;

pub(super) async fn put(
    st: &AppState,
    t: &Target,
    parts: &Parts,
    body: Body,
) -> Result<Response, HttpError> {
    if t.path.is_root() || t.trailing_slash {
        return Err(HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "collection",
            "PUT needs an object name, not a collection",
        )
        .with_header(header::ALLOW, http::HeaderValue::from_static(super::ALLOW)));
    }
    let max = st.cfg.max_body_bytes;
    let announced = match parts.headers.get(header::CONTENT_LENGTH) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| HttpError::bad_request("Content-Length is not a number"))?,
        ),
        None => None,
    };
    if announced.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    let parents = Parents::CreateOutsideExplicit { root: t.root_key() };
    let key = t.key();
    let mut staged = st.store.begin_put(&key, parents).await?;
    let mut body = body;
    loop {
        let frame = match tokio::time::timeout(st.cfg.body_idle_timeout, body.frame()).await {
            Err(_) => {
                if let Some(left_out) = st.guard.log_allowed("ingest/stalled") {
                    tracing::warn!(channel = %t.channel.id, pipeline = %t.pipeline, path = %t.path, received = staged.written(), left_out, "upload stalled; discarded");
                }
                return Err(HttpError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "timeout",
                    format!(
                        "no body bytes for {} s; the upload was discarded",
                        st.cfg.body_idle_timeout.as_secs()
                    ),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                if let Some(slow) = crate::guard::body::too_slow(&e) {
                    // Logged, at a bounded rate, where it was ended.
                    return Err(HttpError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "too_slow",
                        slow.to_string(),
                    ));
                }
                // Bounded: a client can break off uploads at full speed.
                if let Some(left_out) = st.guard.log_allowed("ingest/broken_off") {
                    tracing::warn!(channel = %t.channel.id, pipeline = %t.pipeline, path = %t.path, received = staged.written(), error = %e, left_out, "upload broken off; discarded");
                }
                return Err(HttpError::new(
                    StatusCode::BAD_REQUEST,
                    "incomplete",
                    "the body ended early; the upload was discarded",
                ));
            }
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if staged.written() + data.len() as u64 > max {
            return Err(too_large(max));
        }
        staged.write(data).await?;
    }
    let received = staged.written();
    if let Some(n) = announced.filter(|n| *n != received) {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "incomplete",
            format!(
                "Content-Length announced {n} bytes but {received} arrived; the upload was discarded"
            ),
        ));
    }
    let committed = staged.commit().await?;
    super::announce(st, t, &t.path);
    let now = st.clock.now();
    t.channel
        .input(t.pipeline)
        .record_write(now, committed.meta.size);
    crate::metrics::object_published(
        t.channel.id.as_str(),
        &t.pipeline.to_string(),
        committed.meta.size,
    );
    tracing::debug!(
        channel = %t.channel.id,
        pipeline = %t.pipeline,
        path = %t.path,
        bytes = committed.meta.size,
        replaced = committed.replaced,
        "published"
    );
    let status = if committed.replaced {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    };
    Ok(status.into_response())
}

fn too_large(max: u64) -> HttpError {
    HttpError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("bodies are limited to {max} bytes; nothing was stored"),
    )
}
