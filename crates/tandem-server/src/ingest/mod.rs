//! HLS ingest at `/in/{channel}/{pipeline}/{path…}`: HTTP PUT as nginx's
//! `dav_methods PUT` takes it, and WebDAV class 1 as AWS Elemental
//! MediaPackage takes it.
//!
//! Order of checks, each before any body byte is read: the path (400), the
//! channel and pipeline (404), the credentials (401). Encoders such as
//! ffmpeg send `Expect: 100-continue` without credentials and authenticate
//! only after a 401; hyper sends `100 Continue` only when a handler polls
//! the body, so a request refused here never has its body sent at all.
//!
//! WebDAV is written here rather than taken from `dav-server` because ingest
//! needs each input's own credentials checked before the body, and every
//! upload published through the store's complete-only commit; the method set
//! an encoder uses (PUT, DELETE, MKCOL, PROPFIND, COPY, MOVE) is small.
//!
//! Parent collections: encoders that PUT over plain HTTP never MKCOL, so a
//! PUT creates missing parents, as `create_full_put_path` does in nginx.
//! Inside a collection a WebDAV client created on purpose (MKCOL), the
//! strict rule of RFC 4918 §9.7.1 applies instead: a PUT whose parent does
//! not exist is a 409.
//!
//! - [`webdav`]: PROPFIND/PROPPATCH bodies and multistatus answers.
//! - [`smooth`]: Smooth Streaming pushes to `{name}.isml/…/Streams({id})`.

mod put;
pub mod smooth;
pub mod webdav;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header, request::Parts};
use tandem_core::{ChannelId, ObjectPath, Pipeline};
use tandem_store::{Entry, StoreError};

use crate::AppState;
use crate::error::HttpError;
use crate::notice::input_root;
use crate::registry::LiveChannel;

/// Methods ingest answers, for `Allow` and OPTIONS.
pub const ALLOW: &str =
    "OPTIONS, GET, HEAD, PUT, POST, DELETE, MKCOL, PROPFIND, PROPPATCH, COPY, MOVE";

/// Largest body accepted for MKCOL, PROPFIND and PROPPATCH.
const MAX_XML_BODY: usize = 64 * 1024;

/// The input and object a request addresses.
pub struct Target {
    pub channel: Arc<LiveChannel>,
    pub pipeline: Pipeline,
    /// Relative to the input's root.
    pub path: ObjectPath,
    /// Whether the URL ended in `/`.
    pub trailing_slash: bool,
}

impl Target {
    /// The input's root in the store: `{channel}/{pipeline}`.
    pub fn root_key(&self) -> ObjectPath {
        input_root(&self.channel.id, self.pipeline)
    }

    /// The object's key in the store.
    pub fn key(&self) -> ObjectPath {
        self.root_key().join_path(&self.path)
    }

    /// The URL path of `path` in this input, for WebDAV hrefs.
    pub fn href(&self, path: &ObjectPath, collection: bool) -> String {
        let mut s = format!(
            "/in/{}/{}/{}",
            self.channel.id,
            self.pipeline,
            path.to_url_path()
        );
        if collection && !s.ends_with('/') {
            s.push('/');
        }
        s
    }
}

/// Resolves `/in/{channel}/{pipeline}/{path…}`.
fn resolve(st: &AppState, url_path: &str) -> Result<Target, HttpError> {
    let rest = url_path
        .strip_prefix("/in/")
        .ok_or_else(|| HttpError::not_found("ingest paths start with /in/"))?;
    let mut parts = rest.splitn(3, '/');
    let channel = parts.next().unwrap_or_default();
    let pipeline = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    let id = ChannelId::parse(channel)
        .map_err(|_| HttpError::not_found(format!("no channel {channel:?}")))?;
    let pipeline = Pipeline::parse(pipeline).map_err(|e| HttpError::not_found(e.to_string()))?;
    let parsed =
        ObjectPath::from_url_path(path).map_err(|e| HttpError::bad_request(e.to_string()))?;
    let channel = st
        .channels
        .get(&id)
        .ok_or_else(|| HttpError::not_found(format!("no channel {id}")))?;
    Ok(Target {
        channel,
        pipeline,
        path: parsed,
        trailing_slash: path.ends_with('/') || path.is_empty(),
    })
}

/// Whether the request carries a body that was not read: refusing it must
/// close the connection, since the body's bytes may still arrive.
fn has_body(parts: &Parts) -> bool {
    let len = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    len.is_some_and(|n| n > 0) || parts.headers.contains_key(header::TRANSFER_ENCODING)
}

fn authenticate(st: &AppState, t: &Target, parts: &Parts) -> Result<(), HttpError> {
    let now = st.clock.now();
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let creds = t.channel.credentials(t.pipeline);
    match st
        .auth
        .verify(now, header, parts.method.as_str(), uri, &creds)
    {
        Ok(()) => Ok(()),
        Err(e) => {
            let stale = e == crate::auth::AuthError::Stale;
            if header.is_some()
                && let Some(left_out) = st.guard.log_allowed("ingest/authentication")
            {
                let peer = parts
                    .extensions
                    .get::<crate::guard::PeerAddr>()
                    .map(|p| p.0.ip());
                tracing::warn!(channel = %t.channel.id, pipeline = %t.pipeline, peer = ?peer, reason = %e, left_out, "ingest authentication refused");
            }
            let mut err = HttpError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "authentication required: use this input's username and password (Digest or Basic)",
            );
            for c in st.auth.challenges(now, stale) {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    err = err.with_header(header::WWW_AUTHENTICATE, v);
                }
            }
            err.not_a_guess = stale;
            Err(err)
        }
    }
}

/// A pipeline bound to a container or bucket takes nothing over `/in/`:
/// uploads there would feed nothing, so they are refused, with where to
/// send them instead.
fn http_source(t: &Target) -> Result<(), HttpError> {
    use tandem_core::InputSource;
    let place = match t.channel.spec.source(t.pipeline) {
        InputSource::Http => return Ok(()),
        InputSource::Mediastore { container, prefix } => {
            format!("MediaStore container {container}, prefix {prefix:?}")
        }
        InputSource::S3 { bucket, prefix } => format!("S3 bucket {bucket}, prefix {prefix:?}"),
    };
    Err(HttpError::new(
        StatusCode::CONFLICT,
        "bound",
        format!(
            "pipeline {} of channel {} takes its HLS from {place}, not from this URL",
            t.pipeline, t.channel.id
        ),
    ))
}

/// The ingest entry point for every method under `/in/`.
pub async fn handle(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let target = resolve(&st, parts.uri.path());
    let (channel, pipeline) = match &target {
        Ok(t) => (t.channel.id.to_string(), t.pipeline.to_string()),
        Err(_) => (String::new(), String::new()),
    };
    let result = match target {
        Ok(t) => match authenticate(&st, &t, &parts).and_then(|()| http_source(&t)) {
            Ok(()) => dispatch(&st, &t, &parts, body).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let (response, reason) = match result {
        Ok(r) => (r, None),
        Err(e) => {
            let reason = e.metric_reason;
            let mut r = e.into_response();
            if has_body(&parts) {
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            (r, Some(reason))
        }
    };
    let status = response.status();
    crate::metrics::ingest_request(
        &channel,
        &pipeline,
        parts.method.as_str(),
        status.as_u16(),
        reason,
    );
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    if status.is_client_error() || status.is_server_error() {
        // Bounded: a client refused at full speed writes one line per
        // interval and reason, with the count of those left out.
        let key = format!("ingest/{}", reason.unwrap_or("status"));
        if let Some(left_out) = st.guard.log_allowed(&key) {
            let peer = parts
                .extensions
                .get::<crate::guard::PeerAddr>()
                .map(|p| p.0.ip());
            tracing::info!(method = %parts.method, path = parts.uri.path(), peer = ?peer, status = status.as_u16(), reason, elapsed_ms, left_out, "ingest refused");
        }
    } else {
        tracing::debug!(method = %parts.method, path = parts.uri.path(), status = status.as_u16(), elapsed_ms, "ingest");
    }
    response
}

async fn dispatch(
    st: &AppState,
    t: &Target,
    parts: &Parts,
    body: Body,
) -> Result<Response, HttpError> {
    if matches!(parts.method.as_str(), "PUT" | "POST") && smooth::is_smooth(&t.path) {
        return smooth::post(st, t, parts, body).await;
    }
    match parts.method.as_str() {
        // POST: Akamai-style entry points take uploads by POST, with the
        // same meaning as PUT.
        "PUT" | "POST" => put::put(st, t, parts, body).await,
        "GET" | "HEAD" => get(st, t, parts).await,
        "DELETE" => delete(st, t).await,
        "OPTIONS" => Ok(options()),
        "MKCOL" => mkcol(st, t, body).await,
        "PROPFIND" => webdav::propfind(st, t, parts, read_small(body).await?).await,
        "PROPPATCH" => webdav::proppatch(st, t, read_small(body).await?).await,
        "COPY" => copy_or_move(st, t, parts, false).await,
        "MOVE" => copy_or_move(st, t, parts, true).await,
        other => Err(HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method",
            format!("{other} is not supported on ingest"),
        )
        .with_header(header::ALLOW, HeaderValue::from_static(ALLOW))),
    }
}

async fn read_small(body: Body) -> Result<bytes::Bytes, HttpError> {
    axum::body::to_bytes(body, MAX_XML_BODY).await.map_err(|_| {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("request bodies of this method are limited to {MAX_XML_BODY} bytes"),
        )
    })
}

fn options() -> Response {
    let mut r = StatusCode::OK.into_response();
    let h = r.headers_mut();
    h.insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    h.insert("DAV", HeaderValue::from_static("1"));
    h.insert("MS-Author-Via", HeaderValue::from_static("DAV"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    r
}

async fn get(st: &AppState, t: &Target, parts: &Parts) -> Result<Response, HttpError> {
    let key = t.key();
    match st.store.stat(&key).await? {
        Some(Entry::Collection { .. }) => {
            let names = st.store.list(&key).await?;
            let mut text = String::new();
            for (name, e) in names {
                text.push_str(&name);
                if matches!(e, Entry::Collection { .. }) {
                    text.push('/');
                }
                text.push('\n');
            }
            let len = text.len();
            let mut r = if parts.method == Method::HEAD {
                StatusCode::OK.into_response()
            } else {
                text.into_response()
            };
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            Ok(r)
        }
        Some(Entry::Object(_)) => {
            crate::serve::object(
                st.store.as_ref(),
                &key,
                &parts.method,
                &parts.headers,
                Some("no-cache"),
            )
            .await
        }
        None => Err(HttpError::not_found(format!(
            "{} does not exist in this input",
            t.path
        ))),
    }
}

async fn delete(st: &AppState, t: &Target) -> Result<Response, HttpError> {
    if t.path.is_root() {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the input's root cannot be deleted",
        ));
    }
    st.store.delete(&t.key()).await?;
    tracing::debug!(channel = %t.channel.id, pipeline = %t.pipeline, path = %t.path, "deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn mkcol(st: &AppState, t: &Target, body: Body) -> Result<Response, HttpError> {
    // RFC 4918 §9.3: a body MKCOL does not understand is a 415.
    if !read_small(body).await?.is_empty() {
        return Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "mkcol_body",
            "MKCOL with a body is not supported",
        ));
    }
    if t.path.is_root() {
        return Err(HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "exists",
            "the input's root already exists",
        )
        .with_header(header::ALLOW, HeaderValue::from_static(ALLOW)));
    }
    match st.store.create_collection(&t.key()).await {
        Ok(()) => Ok(StatusCode::CREATED.into_response()),
        Err(StoreError::AlreadyExists { .. }) => Err(HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "exists",
            format!("{} already exists", t.path),
        )
        .with_header(header::ALLOW, HeaderValue::from_static(ALLOW))),
        Err(e) => Err(e.into()),
    }
}

/// Tells the channel's output driver that `path` was published on the
/// target's input.
fn announce(st: &AppState, t: &Target, path: &ObjectPath) {
    st.notices.publish(
        &t.channel.id,
        crate::notice::Notice::Published {
            pipeline: t.pipeline,
            path: path.clone(),
            at: std::time::Instant::now(),
        },
    );
}

/// COPY and MOVE within one input (RFC 4918 §9.8, §9.9).
async fn copy_or_move(
    st: &AppState,
    t: &Target,
    parts: &Parts,
    is_move: bool,
) -> Result<Response, HttpError> {
    let dest = parts
        .headers
        .get("destination")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| HttpError::bad_request("COPY and MOVE need a Destination header"))?;
    let dest_path = match dest.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => dest,
    };
    let d = resolve(st, dest_path)?;
    if d.channel.id != t.channel.id || d.pipeline != t.pipeline {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "COPY and MOVE stay within one input",
        ));
    }
    if t.path.is_root() || d.path.is_root() {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the input's root cannot be copied, moved or replaced",
        ));
    }
    if d.path.starts_with(&t.path) {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the destination lies inside the source",
        ));
    }
    let (from, to) = (t.key(), d.key());
    let source = st
        .store
        .stat(&from)
        .await?
        .ok_or_else(|| HttpError::not_found(format!("{} does not exist", t.path)))?;
    let existed = st.store.stat(&to).await?.is_some();
    let overwrite = parts
        .headers
        .get("overwrite")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        != Some("F");
    if existed && !overwrite {
        return Err(HttpError::new(
            StatusCode::PRECONDITION_FAILED,
            "exists",
            "the destination exists and Overwrite is F",
        ));
    }
    let shallow = parts
        .headers
        .get("depth")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        == Some("0");
    match (is_move, &source) {
        (false, Entry::Collection { .. }) if shallow => {
            if existed {
                st.store.delete(&to).await?;
            }
            st.store.create_collection(&to).await?;
        }
        (false, _) => st.store.copy(&from, &to).await?,
        (true, _) => st.store.rename(&from, &to).await?,
    }
    if matches!(source, Entry::Object(_)) {
        announce(st, t, &d.path);
    }
    tracing::debug!(channel = %t.channel.id, pipeline = %t.pipeline, from = %t.path, to = %d.path, is_move, "copied");
    Ok(if existed {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    }
    .into_response())
}
