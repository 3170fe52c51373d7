//! Serving one stored object over HTTP: HEAD, single `Range` (RFC 9110
//! §14), `If-None-Match` and `If-Modified-Since` (RFC 9110 §13). Used by
//! ingest reads and, later, by playback.

use std::time::SystemTime;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use tandem_core::ObjectPath;
use tandem_store::{ObjectMeta, Store, StoreError};

use crate::error::HttpError;

/// The media type for a file name, from its extension.
pub fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "m3u8" => "application/vnd.apple.mpegurl",
        "ts" | "m2ts" => "video/mp2t",
        "mp4" | "m4s" | "cmfv" | "m4v" => "video/mp4",
        "m4a" | "cmfa" => "audio/mp4",
        "aac" => "audio/aac",
        "ac3" => "audio/ac3",
        "vtt" | "webvtt" => "text/vtt",
        "mpd" => "application/dash+xml",
        "ismc" | "ism" | "xml" => "application/xml",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "key" => "application/octet-stream",
        _ => "application/octet-stream",
    }
}

/// What a `Range` header asks for, resolved against an object's size.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RangeAnswer {
    Whole,
    Part { start: u64, end_inclusive: u64 },
    Unsatisfiable,
}

/// Resolves a single byte range (`bytes=a-b`, `bytes=a-`, `bytes=-n`).
/// Multiple ranges or another unit are answered with the whole object, as
/// RFC 9110 §14.2 allows.
fn resolve_range(header: Option<&str>, size: u64) -> RangeAnswer {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeAnswer::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, false) => b.parse::<u64>().ok().map(|n| {
            if n == 0 {
                None
            } else {
                Some((size.saturating_sub(n), size.saturating_sub(1)))
            }
        }),
        (false, _) => a.parse::<u64>().ok().map(|start| {
            let end = if b.is_empty() {
                Some(u64::MAX)
            } else {
                b.parse::<u64>().ok()
            };
            end.filter(|e| *e >= start)
                .map(|e| (start, e.min(size.saturating_sub(1))))
        }),
        (true, true) => None,
    };
    match parsed {
        None => RangeAnswer::Whole,
        Some(None) => RangeAnswer::Unsatisfiable,
        Some(Some((start, end))) if start >= size || size == 0 => {
            let _ = end;
            RangeAnswer::Unsatisfiable
        }
        Some(Some((start, end))) => RangeAnswer::Part {
            start,
            end_inclusive: end,
        },
    }
}

fn not_modified(req: &HeaderMap, meta: &ObjectMeta) -> bool {
    if let Some(inm) = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        // Weak comparison (RFC 9110 §13.1.2): ignore W/ prefixes.
        let ours = meta.etag.trim_start_matches("W/");
        return inm
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == ours);
    }
    let since = req
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    since.is_some_and(|since| truncate_secs(meta.modified) <= since)
}

fn truncate_secs(t: SystemTime) -> SystemTime {
    let secs = crate::util::unix_secs(t);
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

/// Answers GET or HEAD for bytes held in memory (a rendered playlist).
pub fn bytes(
    method: &Method,
    req: &HeaderMap,
    body: bytes::Bytes,
    etag: &str,
    modified: SystemTime,
) -> Result<Response, HttpError> {
    let meta = ObjectMeta {
        size: body.len() as u64,
        modified,
        etag: etag.to_owned(),
    };
    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    if not_modified(req, &meta) {
        return Ok((StatusCode::NOT_MODIFIED, h).into_response());
    }
    let range = req.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, part) = match resolve_range(range, meta.size) {
        RangeAnswer::Whole => (StatusCode::OK, body),
        RangeAnswer::Part {
            start,
            end_inclusive,
        } => {
            if let Ok(v) =
                HeaderValue::from_str(&format!("bytes {start}-{end_inclusive}/{}", meta.size))
            {
                h.insert(header::CONTENT_RANGE, v);
            }
            let (s, e) = (
                usize::try_from(start).unwrap_or(0),
                usize::try_from(end_inclusive).unwrap_or(0),
            );
            (
                StatusCode::PARTIAL_CONTENT,
                body.slice(s..=e.min(body.len().saturating_sub(1))),
            )
        }
        RangeAnswer::Unsatisfiable => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", meta.size)) {
                h.insert(header::CONTENT_RANGE, v);
            }
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                h,
                "range not satisfiable\n",
            )
                .into_response());
        }
    };
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(part.len()));
    if *method == Method::HEAD {
        return Ok((status, h).into_response());
    }
    Ok((status, h, Body::from(part)).into_response())
}

/// Answers GET or HEAD for the object at `key`.
pub async fn object(
    store: &dyn Store,
    key: &ObjectPath,
    method: &Method,
    req: &HeaderMap,
    cache_control: Option<&'static str>,
) -> Result<Response, HttpError> {
    let (meta, stream) = match store.get(key, None).await {
        Ok(x) => x,
        Err(StoreError::NotFound(_)) => {
            return Err(HttpError::not_found(format!("{} does not exist", key)));
        }
        Err(e) => return Err(e.into()),
    };
    let mut h = HeaderMap::new();
    let ctype = content_type(key.file_name().unwrap_or_default());
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&meta.etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(meta.modified)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    if let Some(cc) = cache_control {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cc));
    }
    if not_modified(req, &meta) {
        return Ok((StatusCode::NOT_MODIFIED, h).into_response());
    }
    let range = req.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, len) = match resolve_range(range, meta.size) {
        RangeAnswer::Whole => (StatusCode::OK, 0, meta.size),
        RangeAnswer::Part {
            start,
            end_inclusive,
        } => {
            if let Ok(v) =
                HeaderValue::from_str(&format!("bytes {start}-{end_inclusive}/{}", meta.size))
            {
                h.insert(header::CONTENT_RANGE, v);
            }
            (
                StatusCode::PARTIAL_CONTENT,
                start,
                end_inclusive + 1 - start,
            )
        }
        RangeAnswer::Unsatisfiable => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", meta.size)) {
                h.insert(header::CONTENT_RANGE, v);
            }
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                h,
                "range not satisfiable\n",
            )
                .into_response());
        }
    };
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if *method == Method::HEAD {
        return Ok((status, h).into_response());
    }
    let body = if status == StatusCode::PARTIAL_CONTENT {
        drop(stream);
        let (_, part) = store.get(key, Some(start..start + len)).await?;
        Body::from_stream(part.map_err(axum::Error::new))
    } else {
        Body::from_stream(stream.map_err(axum::Error::new))
    };
    Ok((status, h, body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_as_rfc9110_says() {
        use RangeAnswer::*;
        assert_eq!(resolve_range(None, 10), Whole);
        assert_eq!(
            resolve_range(Some("bytes=0-3"), 10),
            Part {
                start: 0,
                end_inclusive: 3
            }
        );
        assert_eq!(
            resolve_range(Some("bytes=5-"), 10),
            Part {
                start: 5,
                end_inclusive: 9
            }
        );
        assert_eq!(
            resolve_range(Some("bytes=-4"), 10),
            Part {
                start: 6,
                end_inclusive: 9
            }
        );
        assert_eq!(
            resolve_range(Some("bytes=8-100"), 10),
            Part {
                start: 8,
                end_inclusive: 9
            }
        );
        assert_eq!(resolve_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(resolve_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(resolve_range(Some("bytes=0-1,4-5"), 10), Whole);
        assert_eq!(resolve_range(Some("items=0-1"), 10), Whole);
        assert_eq!(resolve_range(Some("bytes=5-2"), 10), Unsatisfiable);
    }
}
