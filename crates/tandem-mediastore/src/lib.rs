//! A drop-in for AWS Elemental MediaStore's data plane (`mediastore-data`),
//! so encoders that wrote HLS to a MediaStore container (MediaLive's
//! "MediaStore container" destination, one container per pipeline) can
//! write to Tandem.
//!
//! The one entry point is [`MediaStore`]: build it over a store, tell it
//! which container pairs and keys exist, and serve [`MediaStore::router`]
//! on its own listener.
//!
//! On the wire (path-style, the container is the first path segment, so
//! a container's endpoint is `http://host:9010/{container}`):
//! - `PUT /{container}/{path}`: PutObject → `{"ContentSHA256","ETag","StorageClass"}`.
//! - `GET /{container}/{path}` (with `Range` → 206): GetObject.
//! - `HEAD /{container}/{path}`: DescribeObject.
//! - `DELETE /{container}/{path}`: DeleteObject.
//! - `GET /{container}[/]?Path=&MaxResults=&NextToken=`: ListItems.
//!
//! Every request is SigV4-signed for service `mediastore` ([`sigv4`]);
//! errors are MediaStore's JSON (`{"__type","Message"}` and
//! `x-amzn-ErrorType`, [`error`]). Objects go through `tandem-store`'s
//! staged writes: nothing is visible until the body arrived whole. A
//! `STREAMING` upload is also readable while it arrives ([`inflight`]).
//!
//! Layout inside the store (no channel id contains a `.`):
//! - `ms.containers/{container}/{path…}`: object bytes.
//! - `ms.meta/{container}/{path…}`: content type, cache control, SHA-256.

pub mod cache;
pub mod error;
pub mod inflight;
pub mod names;
pub mod sigv4;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tandem_core::ObjectPath;
use tandem_store::{Entry, Parents, Store, StoreError};

use cache::ObjectCache;
pub use error::MsError;
use inflight::InFlights;
use sigv4::{AuthError, RequestHead};

/// Top-level store collections; the `.` keeps them apart from channels.
const OBJECTS: &str = "ms.containers";
const META: &str = "ms.meta";

/// The access key id whose secret is the admin token: every container.
pub const ADMIN_ACCESS_KEY: &str = "tandem-admin";

/// MediaStore's limits and the region clients sign for.
#[derive(Debug, Clone)]
pub struct Settings {
    pub region: String,
    /// Largest STANDARD object (MediaStore: 25 MB).
    pub max_standard: u64,
    /// Largest STREAMING object (MediaStore: 10 MB).
    pub max_streaming: u64,
    /// An upload not finished this long after its request began is
    /// cancelled (MediaStore: 30 s).
    pub upload_timeout: Duration,
    /// Bytes of recently read objects kept in memory for GetObject
    /// ([`cache`]); objects over an eighth of it are read from the store.
    pub cache_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            region: "us-east-1".to_owned(),
            max_standard: 25 * 1000 * 1000,
            max_streaming: 10 * 1000 * 1000,
            upload_timeout: Duration::from_secs(30),
            // A minute of a 6 Mbit/s ladder on both pipelines of four
            // channels: what their players read is the newest segments.
            cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Who a verified signature belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Principal {
    Admin,
    /// One pipeline's key: writes its container, reads both of its pair.
    Pipeline {
        pair: String,
        container: String,
    },
}

impl Principal {
    fn can_write(&self, container: &str) -> bool {
        match self {
            Self::Admin => true,
            Self::Pipeline { container: c, .. } => c == container,
        }
    }

    fn can_read(&self, container: &str, containers: &HashMap<String, String>) -> bool {
        match self {
            Self::Admin => true,
            Self::Pipeline { pair, .. } => containers.get(container) == Some(pair),
        }
    }
}

#[derive(Debug, Default)]
struct Keys {
    /// access key id → (secret, principal)
    keys: HashMap<String, (String, Principal)>,
    /// container name → pair id
    containers: HashMap<String, String>,
}

/// The container name pipeline `p` (0 or 1) of pair `id` writes.
pub fn container_name(id: &str, pipeline: usize) -> String {
    format!("{id}-{pipeline}")
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    settings: Settings,
    keys: RwLock<Keys>,
    flights: Arc<InFlights>,
    cache: ObjectCache<ObjectInfo>,
    hook: RwLock<Option<tandem_store::PublishHook>>,
}

/// The MediaStore data API over a store.
#[derive(Debug, Clone)]
pub struct MediaStore {
    inner: Arc<Inner>,
}

/// What is kept with an object besides its bytes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ObjectInfo {
    sha256: String,
    size: u64,
    /// The store's validator of the bytes described: a record whose bytes
    /// were replaced since (a crash between the two commits) is ignored.
    store_etag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cache_control: Option<String>,
}

/// A request's target: a container and an object path (or none: the
/// container's root, for ListItems).
struct Target {
    container: String,
    segments: Vec<String>,
}

impl MediaStore {
    /// The API over `store`, with the admin key's secret.
    pub fn new(store: Arc<dyn Store>, settings: Settings, admin_secret: &str) -> Self {
        let mut keys = Keys::default();
        keys.keys.insert(
            ADMIN_ACCESS_KEY.to_owned(),
            (admin_secret.to_owned(), Principal::Admin),
        );
        Self {
            inner: Arc::new(Inner {
                store,
                cache: ObjectCache::new(settings.cache_bytes),
                settings,
                keys: RwLock::new(keys),
                flights: Arc::default(),
                hook: RwLock::default(),
            }),
        }
    }

    /// Calls `hook` with every object published whole from now on.
    pub fn on_publish(&self, hook: tandem_store::PublishHook) {
        *self
            .inner
            .hook
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(hook);
    }

    /// Where a container's objects live in the store: the container's
    /// object `p` is this path joined with `p`.
    pub fn container_root(container: &str) -> Option<ObjectPath> {
        ObjectPath::from_segments([OBJECTS, container]).ok()
    }

    /// The store key of the metadata record that goes with the object
    /// stored at `data` (a key under a container root), if `data` is one:
    /// what must go too when something other than DeleteObject removes it.
    pub fn metadata_key(data: &ObjectPath) -> Option<ObjectPath> {
        let segs = data.segments();
        if segs.first().map(String::as_str) != Some(OBJECTS) || segs.len() < 3 {
            return None;
        }
        let mut meta = segs.to_vec();
        META.clone_into(&mut meta[0]);
        ObjectPath::from_segments(meta).ok()
    }

    /// Accepts a container pair: containers `{id}-0` and `{id}-1`, each
    /// written by its own key (access key id, secret).
    pub fn add_pair(&self, id: &str, keys: [(&str, &str); 2]) {
        let mut k = self
            .inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for (p, (access, secret)) in keys.into_iter().enumerate() {
            let container = container_name(id, p);
            k.containers.insert(container.clone(), id.to_owned());
            k.keys.insert(
                access.to_owned(),
                (
                    secret.to_owned(),
                    Principal::Pipeline {
                        pair: id.to_owned(),
                        container,
                    },
                ),
            );
        }
    }

    /// Forgets a pair's containers and keys and removes their objects.
    pub async fn remove_pair(&self, id: &str) -> Result<(), StoreError> {
        {
            let mut k = self
                .inner
                .keys
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            k.containers.retain(|_, pair| pair != id);
            k.keys.retain(|_, (_, who)| match who {
                Principal::Pipeline { pair, .. } => pair != id,
                Principal::Admin => true,
            });
        }
        for p in 0..2 {
            let c = container_name(id, p);
            for top in [OBJECTS, META] {
                if let Ok(key) = ObjectPath::from_segments([top, c.as_str()]) {
                    match self.inner.store.delete(&key).await {
                        Ok(()) | Err(StoreError::NotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    /// The HTTP service, for a listener of its own.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .fallback(handle)
            .with_state(self.inner.clone())
    }
}

async fn handle(State(ms): State<Arc<Inner>>, req: Request) -> Response<Body> {
    let head = req.method() == Method::HEAD;
    match dispatch(&ms, req).await {
        Ok(r) => r,
        Err(e) => e.response(head),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Splits `/{container}/{path}` and decodes the path once.
fn target(raw_path: &str) -> Result<Target, MsError> {
    let rest = raw_path.strip_prefix('/').unwrap_or(raw_path);
    let (container, path) = rest.split_once('/').unwrap_or((rest, ""));
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| MsError::Validation("Path is not UTF-8".into()))
    };
    let container = decode(container)?;
    if container.is_empty() {
        return Err(MsError::ContainerNotFound("(none)".into()));
    }
    // Segment by segment, so an encoded slash is part of a name (refused),
    // never a separator.
    let decoded = path.split('/').map(decode).collect::<Result<Vec<_>, _>>()?;
    if decoded.iter().any(|s| s.contains('/')) {
        return Err(MsError::Validation(
            "Names may not contain an encoded '/'".into(),
        ));
    }
    let path = decoded.join("/");
    let segments = if path.is_empty() {
        Vec::new()
    } else {
        names::object_segments(&path)?
    };
    Ok(Target {
        container,
        segments,
    })
}

fn store_path(top: &str, container: &str, segs: &[String]) -> Result<ObjectPath, MsError> {
    let mut all = vec![top.to_owned(), container.to_owned()];
    all.extend(segs.iter().cloned());
    ObjectPath::from_segments(all).map_err(|e| MsError::Validation(e.to_string()))
}

/// How the body's payload hash is known.
enum PayloadCheck {
    /// Signature verified with `UNSIGNED-PAYLOAD`: nothing more to check.
    Unsigned,
    /// Signature verified with this hex SHA-256: the body must match it.
    Hash(String),
    /// No `x-amz-content-sha256`: verify once the body's hash is known.
    Deferred {
        auth: sigv4::Authorization,
        amz_date: String,
        secret: String,
    },
}

/// Authenticates a request before its body is read.
fn authenticate(
    ms: &Inner,
    method: &Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    has_body: bool,
) -> Result<(Principal, PayloadCheck), MsError> {
    let (auth, amz_date) = sigv4::check_head(headers, &ms.settings.region, SystemTime::now())?;
    let (secret, who) = ms
        .keys
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .keys
        .get(&auth.access_key)
        .cloned()
        .ok_or(AuthError::UnknownKey)?;
    let req = RequestHead {
        method: method.as_str(),
        raw_path: uri.path(),
        raw_query: uri.query(),
        headers,
    };
    let check = match sigv4::claimed_payload_hash(headers) {
        Some("UNSIGNED-PAYLOAD") => {
            sigv4::verify(&req, &auth, &amz_date, &secret, "UNSIGNED-PAYLOAD")?;
            PayloadCheck::Unsigned
        }
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            sigv4::verify(&req, &auth, &amz_date, &secret, h)?;
            PayloadCheck::Hash(h.to_ascii_lowercase())
        }
        Some(_) => {
            return Err(MsError::Validation(
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD or 64 hex digits".into(),
            ));
        }
        None if has_body => PayloadCheck::Deferred {
            auth,
            amz_date,
            secret,
        },
        None => {
            sigv4::verify(&req, &auth, &amz_date, &secret, sigv4::EMPTY_SHA256)?;
            PayloadCheck::Unsigned
        }
    };
    Ok((who, check))
}

async fn dispatch(ms: &Arc<Inner>, req: Request) -> Result<Response<Body>, MsError> {
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let has_body = method == Method::PUT;
    let (who, check) = authenticate(ms, &method, &parts.uri, &parts.headers, has_body)?;
    let t = target(parts.uri.path())?;
    {
        let keys = ms.keys.read().unwrap_or_else(PoisonError::into_inner);
        let allowed = if method == Method::PUT || method == Method::DELETE {
            who.can_write(&t.container)
        } else {
            who.can_read(&t.container, &keys.containers)
        };
        if !allowed {
            return Err(MsError::AccessDenied(t.container));
        }
        if !keys.containers.contains_key(&t.container) {
            return Err(MsError::ContainerNotFound(t.container));
        }
    }
    if t.segments.is_empty() {
        return if method == Method::GET {
            list_items(ms, &t.container, parts.uri.query()).await
        } else {
            Err(MsError::Validation("Path is empty".into()))
        };
    }
    match method {
        Method::PUT => put_object(ms, &t, &parts, body, check).await,
        Method::GET => get_object(ms, &t, &parts.headers, false).await,
        Method::HEAD => get_object(ms, &t, &parts.headers, true).await,
        Method::DELETE => delete_object(ms, &t).await,
        m => Err(MsError::MethodNotAllowed(m.to_string())),
    }
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Body::from(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

async fn put_object(
    ms: &Arc<Inner>,
    t: &Target,
    parts: &http::request::Parts,
    body: Body,
    check: PayloadCheck,
) -> Result<Response<Body>, MsError> {
    let deadline = tokio::time::Instant::now() + ms.settings.upload_timeout;
    let headers = &parts.headers;
    if let Some(sc) = header_str(headers, "x-amz-storage-class")
        && sc != "TEMPORAL"
    {
        return Err(MsError::Validation(format!(
            "StorageClass {sc:?} is not valid: use TEMPORAL"
        )));
    }
    let streaming = match header_str(headers, "x-amz-upload-availability") {
        None | Some("STANDARD") => false,
        Some("STREAMING") => true,
        Some(other) => {
            return Err(MsError::Validation(format!(
                "UploadAvailability {other:?} is not valid: use STANDARD or STREAMING"
            )));
        }
    };
    let (limit, availability) = if streaming {
        (ms.settings.max_streaming, "STREAMING")
    } else {
        (ms.settings.max_standard, "STANDARD")
    };
    let too_large = MsError::TooLarge {
        limit,
        availability,
    };
    if let Some(len) = header_str(headers, "content-length") {
        let len: u64 = len
            .parse()
            .map_err(|_| MsError::Validation("Content-Length is not a number".into()))?;
        if len > limit {
            return Err(too_large);
        }
    }
    let content_type = header_str(headers, "content-type").map(str::to_owned);
    let cache_control = header_str(headers, "cache-control").map(str::to_owned);
    let data_key = store_path(OBJECTS, &t.container, &t.segments)?;
    let meta_key = store_path(META, &t.container, &t.segments)?;

    // Without a payload hash header the signature covers the body: read it
    // (bounded by the limit) before anything is staged or shown.
    let mut body = body;
    let mut buffered: Option<Vec<Bytes>> = None;
    let mut expected_hash = None;
    match check {
        PayloadCheck::Unsigned => {}
        PayloadCheck::Hash(h) => expected_hash = Some(h),
        PayloadCheck::Deferred {
            auth,
            amz_date,
            secret,
        } => {
            let mut chunks = Vec::new();
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = next_chunk(&mut body, deadline, ms).await? {
                size += chunk.len() as u64;
                if size > limit {
                    return Err(too_large);
                }
                hasher.update(&chunk);
                chunks.push(chunk);
            }
            let hash = hex::encode(hasher.finalize());
            let req = RequestHead {
                method: parts.method.as_str(),
                raw_path: parts.uri.path(),
                raw_query: parts.uri.query(),
                headers,
            };
            sigv4::verify(&req, &auth, &amz_date, &secret, &hash)?;
            buffered = Some(chunks);
        }
    }

    let mut staged = ms.store.begin_put(&data_key, Parents::Create).await?;
    let upload = streaming.then(|| {
        ms.flights.start(
            data_key.clone(),
            content_type.clone(),
            cache_control.clone(),
        )
    });
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buffered = buffered.map(Vec::into_iter);
    loop {
        let chunk = match &mut buffered {
            Some(it) => it.next(),
            None => next_chunk(&mut body, deadline, ms).await?,
        };
        let Some(chunk) = chunk else { break };
        size += chunk.len() as u64;
        if size > limit {
            return Err(too_large);
        }
        hasher.update(&chunk);
        staged.write(chunk.clone()).await?;
        if let Some(u) = &upload {
            u.push(chunk);
        }
    }
    if let Some(len) = header_str(headers, "content-length").and_then(|l| l.parse::<u64>().ok())
        && len != size
    {
        return Err(MsError::Incomplete);
    }
    let sha256 = hex::encode(hasher.finalize());
    if expected_hash.is_some_and(|h| h != sha256) {
        return Err(MsError::ContentSha256Mismatch);
    }
    let committed = staged.commit().await?;
    if let Some(u) = upload {
        u.published();
    }
    let info = ObjectInfo {
        sha256: sha256.clone(),
        size,
        store_etag: committed.meta.etag,
        content_type,
        cache_control,
    };
    // The next GetObject reads the new version from the store (and keeps it).
    ms.cache.remove(&data_key);
    let record = serde_json::to_vec(&info).map_err(|e| {
        MsError::Internal(StoreError::Io {
            op: "encode",
            path: meta_key.to_string(),
            source: std::io::Error::other(e),
        })
    })?;
    let mut m = ms.store.begin_put(&meta_key, Parents::Create).await?;
    m.write(Bytes::from(record)).await?;
    m.commit().await?;
    let hook = ms
        .hook
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(h) = hook {
        h.published(&data_key, size);
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "ContentSHA256": sha256,
            "ETag": sha256,
            "StorageClass": "TEMPORAL",
        }),
    ))
}

/// The next body chunk, or the end; cut off at the upload deadline.
async fn next_chunk(
    body: &mut Body,
    deadline: tokio::time::Instant,
    ms: &Inner,
) -> Result<Option<Bytes>, MsError> {
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(MsError::Timeout(ms.settings.upload_timeout.as_secs())),
            Ok(None) => return Ok(None),
            Ok(Some(Err(_))) => return Err(MsError::Incomplete),
            Ok(Some(Ok(f))) => f,
        };
        if let Ok(data) = frame.into_data() {
            return Ok(Some(data));
        }
    }
}

/// The metadata record of an object, if it still describes its bytes.
async fn read_info(ms: &Inner, meta_key: &ObjectPath, store_etag: &str) -> Option<ObjectInfo> {
    let (_, mut s) = ms.store.get(meta_key, None).await.ok()?;
    let mut raw = Vec::new();
    while let Some(c) = s.next().await {
        raw.extend_from_slice(&c.ok()?);
        if raw.len() > 64 * 1024 {
            return None;
        }
    }
    serde_json::from_slice::<ObjectInfo>(&raw)
        .ok()
        .filter(|i| i.store_etag == store_etag)
}

fn insert(h: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// Parses `bytes=a-b`, `bytes=a-`, `bytes=-n` against `size`.
fn parse_range(value: &str, size: u64) -> Result<std::ops::Range<u64>, MsError> {
    let bad = || MsError::Validation(format!("Range {value:?} is not bytes=START-END"));
    let unsatisfiable = || MsError::RangeNotSatisfiable(value.to_owned());
    let spec = value.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, true) => Err(bad()),
        (true, false) => {
            let n = num(b)?;
            if n == 0 || size == 0 {
                return Err(unsatisfiable());
            }
            Ok(size.saturating_sub(n)..size)
        }
        (false, _) => {
            let start = num(a)?;
            let end = if b.trim().is_empty() {
                size
            } else {
                let e = num(b)?;
                if e < start {
                    return Err(bad());
                }
                e.saturating_add(1).min(size)
            };
            if start >= size {
                return Err(unsatisfiable());
            }
            Ok(start..end)
        }
    }
}

async fn get_object(
    ms: &Arc<Inner>,
    t: &Target,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response<Body>, MsError> {
    let data_key = store_path(OBJECTS, &t.container, &t.segments)?;
    let range = header_str(headers, "range");
    // A STREAMING upload in progress: what arrived, then the rest.
    if !head
        && range.is_none()
        && let Some(f) = ms.flights.get(&data_key)
    {
        let mut r = Response::new(Body::from_stream(f.clone().reader()));
        let h = r.headers_mut();
        if let Some(ct) = &f.content_type {
            insert(h, header::CONTENT_TYPE, ct);
        }
        if let Some(cc) = &f.cache_control {
            insert(h, header::CACHE_CONTROL, cc);
        }
        return Ok(r);
    }
    let not_found = || MsError::ObjectNotFound(t.segments.join("/"));
    let meta = match ms.store.stat(&data_key).await? {
        Some(Entry::Object(m)) => m,
        _ => {
            ms.cache.remove(&data_key);
            return Err(not_found());
        }
    };
    // Served from memory only while the store still holds those bytes.
    let cached = ms
        .cache
        .get(&data_key)
        .filter(|c| c.store_etag == meta.etag && c.info.size == meta.size);
    metrics::counter!(
        "tandem_mediastore_cache_reads_total",
        "result" => if cached.is_some() { "hit" } else { "miss" }
    )
    .increment(1);
    let info = match &cached {
        Some(c) => Some(c.info.clone()),
        None => {
            let meta_key = store_path(META, &t.container, &t.segments)?;
            read_info(ms, &meta_key, &meta.etag).await
        }
    };
    let range = match range {
        Some(r) if !head => Some(parse_range(r, meta.size)?),
        _ => None,
    };
    let (status, body, len) = if head {
        (StatusCode::OK, Body::empty(), meta.size)
    } else if let (Some(c), None) = (&cached, &range) {
        let chunks = c.chunks.clone().into_iter().map(Ok::<_, std::io::Error>);
        (
            StatusCode::OK,
            Body::from_stream(futures_util::stream::iter(chunks)),
            meta.size,
        )
    } else {
        let (m, stream) = match ms.store.get(&data_key, range.clone()).await {
            Ok(x) => x,
            Err(StoreError::NotFound(_)) => return Err(not_found()),
            Err(e) => return Err(e.into()),
        };
        let len = range.as_ref().map_or(m.size, |r| r.end - r.start);
        let status = if range.is_some() {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        };
        // A whole object described by its record is kept for the next
        // readers: the bytes the store handed over are the ones the opened
        // file held, so they are filed under that file's validator.
        let keep = info
            .as_ref()
            .filter(|i| range.is_none() && i.store_etag == m.etag && ms.cache.would_keep(m.size));
        if let Some(i) = keep {
            let mut stream = stream;
            let mut chunks = Vec::new();
            while let Some(c) = stream.next().await {
                chunks.push(c.map_err(|e| {
                    MsError::Internal(StoreError::Io {
                        op: "read",
                        path: data_key.to_string(),
                        source: e,
                    })
                })?);
            }
            ms.cache
                .insert(data_key.clone(), m.etag.clone(), i.clone(), chunks.clone());
            let chunks = chunks.into_iter().map(Ok::<_, std::io::Error>);
            (
                status,
                Body::from_stream(futures_util::stream::iter(chunks)),
                len,
            )
        } else {
            (status, Body::from_stream(stream), len)
        }
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    insert(h, header::CONTENT_LENGTH, &len.to_string());
    insert(
        h,
        header::LAST_MODIFIED,
        &httpdate::fmt_http_date(meta.modified),
    );
    let ct = info
        .as_ref()
        .and_then(|i| i.content_type.as_deref())
        .unwrap_or("application/octet-stream");
    insert(h, header::CONTENT_TYPE, ct);
    if let Some(i) = &info {
        insert(h, header::ETAG, &i.sha256);
        if let Some(cc) = &i.cache_control {
            insert(h, header::CACHE_CONTROL, cc);
        }
    }
    if let Some(rg) = &range {
        insert(
            h,
            header::CONTENT_RANGE,
            &format!(
                "bytes {}-{}/{}",
                rg.start,
                rg.end.saturating_sub(1),
                meta.size
            ),
        );
    }
    Ok(r)
}

async fn delete_object(ms: &Arc<Inner>, t: &Target) -> Result<Response<Body>, MsError> {
    let data_key = store_path(OBJECTS, &t.container, &t.segments)?;
    let not_found = || MsError::ObjectNotFound(t.segments.join("/"));
    match ms.store.stat(&data_key).await? {
        Some(Entry::Object(_)) => {}
        _ => return Err(not_found()),
    }
    ms.cache.remove(&data_key);
    match ms.store.delete(&data_key).await {
        Ok(()) => {}
        Err(StoreError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    }
    let meta_key = store_path(META, &t.container, &t.segments)?;
    match ms.store.delete(&meta_key).await {
        Ok(()) | Err(StoreError::NotFound(_)) => {}
        Err(e) => tracing::warn!(key = %meta_key, error = %e, "object deleted, its metadata not"),
    }
    Ok(json(StatusCode::OK, &serde_json::json!({})))
}

const TOKEN_PREFIX: &str = "tandem-ms-v1\n";

fn encode_token(after: &str) -> String {
    hex::encode(format!("{TOKEN_PREFIX}{after}"))
}

fn decode_token(token: &str) -> Result<String, MsError> {
    let bad = || MsError::Validation("NextToken is not valid".into());
    let raw = hex::decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let name = text.strip_prefix(TOKEN_PREFIX).ok_or_else(bad)?;
    names::object_segments(name)
        .ok()
        .filter(|s| s.len() == 1)
        .ok_or_else(bad)?;
    Ok(name.to_owned())
}

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

async fn list_items(
    ms: &Arc<Inner>,
    container: &str,
    query: Option<&str>,
) -> Result<Response<Body>, MsError> {
    let (mut path, mut max, mut token) = (String::new(), 1000usize, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_encoding::percent_decode_str(v)
            .decode_utf8()
            .map_err(|_| MsError::Validation("Query is not UTF-8".into()))?
            .into_owned();
        match k {
            "Path" => path = v,
            "MaxResults" => {
                max = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| MsError::Validation("MaxResults must be 1 to 1000".into()))?;
            }
            "NextToken" => token = Some(decode_token(&v)?),
            _ => {}
        }
    }
    let segs = names::folder_segments(&path)?;
    let folder = store_path(OBJECTS, container, &segs)?;
    let entries = match ms.store.list(&folder).await {
        Ok(e) => e,
        // An empty container, or a folder that does not exist: no items.
        Err(StoreError::NotFound(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut page: Vec<(String, Entry)> = entries
        .into_iter()
        .filter(|(name, _)| token.as_deref().is_none_or(|after| name.as_str() > after))
        .take(max + 1)
        .collect();
    let next = if page.len() > max {
        page.truncate(max);
        page.last().map(|(n, _)| encode_token(n))
    } else {
        None
    };
    let mut items = Vec::with_capacity(page.len());
    for (name, entry) in page {
        match entry {
            Entry::Collection { .. } => {
                items.push(serde_json::json!({ "Name": name, "Type": "FOLDER" }));
            }
            Entry::Object(meta) => {
                let mut item_segs = segs.clone();
                item_segs.push(name.clone());
                let meta_key = store_path(META, container, &item_segs)?;
                let info = read_info(ms, &meta_key, &meta.etag).await;
                let mut item = serde_json::json!({
                    "Name": name,
                    "Type": "OBJECT",
                    "LastModified": unix_secs(meta.modified),
                    "ContentLength": meta.size,
                    "ContentType": info.as_ref().and_then(|i| i.content_type.clone())
                        .unwrap_or_else(|| "application/octet-stream".into()),
                });
                if let Some(i) = info {
                    item["ETag"] = serde_json::Value::String(i.sha256);
                }
                items.push(item);
            }
        }
    }
    let mut out = serde_json::json!({ "Items": items });
    if let Some(n) = next {
        out["NextToken"] = serde_json::Value::String(n);
    }
    Ok(json(StatusCode::OK, &out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ranges_parse_and_refuse() {
        assert_eq!(parse_range("bytes=0-3", 10).unwrap(), 0..4);
        assert_eq!(parse_range("bytes=5-", 10).unwrap(), 5..10);
        assert_eq!(parse_range("bytes=-3", 10).unwrap(), 7..10);
        assert_eq!(parse_range("bytes=8-100", 10).unwrap(), 8..10);
        assert!(matches!(
            parse_range("bytes=10-12", 10),
            Err(MsError::RangeNotSatisfiable(_))
        ));
        for bad in [
            "",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "items=0-1",
            "bytes=5-2",
        ] {
            assert!(
                matches!(parse_range(bad, 10), Err(MsError::Validation(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn next_tokens_round_trip_and_forgeries_are_refused() {
        assert_eq!(decode_token(&encode_token("seg_1.ts")).unwrap(), "seg_1.ts");
        for forged in [
            "",
            "zz",
            "00ff",
            &hex::encode("tandem-ms-v1\na/b"),
            &hex::encode("x"),
        ] {
            assert!(
                matches!(decode_token(forged), Err(MsError::Validation(_))),
                "{forged}"
            );
        }
    }
}
