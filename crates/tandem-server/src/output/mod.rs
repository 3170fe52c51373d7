//! The merged output at `/out/{channel}/{path…}`: one continuous HLS
//! output per channel, taken segment by segment from pipeline 0 or 1.
//!
//! Names mirror the inputs: what both pipelines push at
//! `/in/news/{0,1}/live/channel.m3u8` is served merged at
//! `/out/news/live/channel.m3u8`. Multivariant playlists are served as an
//! input published them, with `/in/…` URIs rewritten to `/out/…`; relative
//! variant URIs already resolve to the merged media playlists.
//!
//! The output serves what its playlists name and nothing else: merged and
//! multivariant playlists, pinned segments, and the input objects those
//! playlists refer to (`EXT-X-MAP` init sections, `EXT-X-KEY` keys). Never
//! an input's own playlist, never an object no playlist names. Every
//! playlist is saved before it is served, so after a restart the output is
//! served from its saved state before any input publishes again.
//!
//! Output segments are pinned under names that include their output media
//! sequence number (`channel/137/channel5.ts` next to `channel.m3u8`), so a
//! URI always returns the same bytes and a CDN may cache it forever, and so
//! an encoder that DELETEs or overwrites its own file cannot take a segment
//! away from players. Pins are removed a grace period after they leave the
//! output window.
//!
//! - [`driver`]: the per-channel task that owns the merge engines.
//! - [`cache`]: pinned segments held in memory for playback.
//! - [`retention`]: input objects removed once nothing names them.
//! - [`reset`]: starting an output afresh, on an operator's request.
//! - [`timeline`]: which pipeline served when, for the status page.
//! - [`smooth`]: the Smooth publishing points' output (`{name}.isml/…`)
//!   and their driver.

pub mod cache;
pub mod driver;
pub mod reset;
pub mod retention;
pub mod smooth;
pub mod timeline;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use tandem_core::{ChannelId, InputState, ObjectPath, Pipeline};
use tandem_store::{Entry, Store};
use tokio::sync::{mpsc, watch};

use crate::error::HttpError;
use crate::notice::Notice;
use crate::{AppState, Clock};

/// Playlists change every segment: let caches hold them briefly only.
const PLAYLIST_CACHE: &str = "public, max-age=1";
/// Pinned segments never change.
const SEGMENT_CACHE: &str = "public, max-age=31536000, immutable";
/// Objects served straight from an input (init segments, keys) may change.
const INPUT_CACHE: &str = "public, max-age=2";
/// How long a request waits for a channel's saved output to load.
const LOAD_WAIT: Duration = Duration::from_secs(10);
/// Events kept per channel for the API.
const EVENT_LOG: usize = 1000;

/// An event as the API lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventRecord {
    /// RFC 3339.
    pub time: String,
    /// The media playlist path, relative to the channel.
    pub rendition: String,
    /// `input_state`, `input_lost`, `input_restored`, `input_restarted`,
    /// `switch`, `segment_filled`, `segment_missing`, `ended`,
    /// `output_resumed`, `output_reset`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discontinuity: Option<bool>,
    /// Both inputs' states after the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<[InputState; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_sequence: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// On switches: milliseconds from the previous pipeline's last advance
    /// to this switch, when the first segment of the new one entered the
    /// output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch_delay_ms: Option<u64>,
    /// On a Smooth publishing point's events (`rendition` is then
    /// `{name}.isml`): the track, time and push concerned.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub smooth: Option<smooth::SmoothDetail>,
}

/// A rendered output playlist.
#[derive(Debug)]
pub struct Rendered {
    pub text: Bytes,
    pub etag: String,
    pub modified: SystemTime,
}

/// One channel's output, shared by its driver and the HTTP handlers.
#[derive(Debug)]
pub struct ChannelOutput {
    pub id: ChannelId,
    /// Where each pipeline's objects are in the store.
    roots: [ObjectPath; 2],
    playlists: RwLock<HashMap<ObjectPath, Arc<Rendered>>>,
    /// Per playlist: the input objects it refers to.
    refs: RwLock<HashMap<ObjectPath, HashSet<ObjectPath>>>,
    /// Whether the driver has loaded the saved output.
    loaded: watch::Receiver<bool>,
    events: Mutex<VecDeque<EventRecord>>,
    /// The pipeline most recently switched to (255: none yet).
    active: AtomicU8,
    last_advance: Mutex<[Option<SystemTime>; 2]>,
    /// Where events go besides the log.
    bus: crate::events::EventBus,
    /// Which pipeline served when, for the status page.
    timeline: Mutex<timeline::Timeline>,
    /// What is stored, and the channel's input history setting.
    pub retention: retention::Status,
    /// The channel's Smooth publishing points.
    pub smooth: Arc<smooth::SmoothChannel>,
}

impl ChannelOutput {
    pub fn events(&self) -> Vec<EventRecord> {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// The last hour of the output, per rendition.
    pub fn timeline(&self, now: SystemTime) -> timeline::TimelineView {
        self.timeline
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .view(now)
    }

    /// Each input's state as the merge engine judges it, over all
    /// renditions; `None` before it has judged.
    pub fn engine_inputs(&self) -> Option<[InputState; 2]> {
        self.timeline
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .inputs()
    }

    /// The playlist a player should open, relative to the channel's output:
    /// a multivariant playlist if the output has one, else a media playlist.
    pub fn main_playlist(&self) -> Option<String> {
        let lists = self
            .playlists
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut paths: Vec<(bool, String)> = lists
            .iter()
            .map(|(p, r)| {
                let media = !r.text.windows(18).any(|w| w == b"#EXT-X-STREAM-INF:");
                (media, p.to_url_path())
            })
            .collect();
        paths.sort();
        paths.into_iter().next().map(|(_, p)| p)
    }

    /// The pipeline most recently switched to.
    pub fn active_pipeline(&self) -> Option<Pipeline> {
        self.active()
    }

    pub fn last_advance(&self) -> [Option<SystemTime>; 2] {
        *self
            .last_advance
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where pipeline `p`'s objects are in the store.
    pub fn root(&self, p: Pipeline) -> &ObjectPath {
        p.of(&self.roots)
    }

    fn set_active(&self, p: Pipeline) {
        self.active.store(
            u8::try_from(p.index()).unwrap_or(u8::MAX),
            Ordering::Relaxed,
        );
    }

    /// Serves `text` at `path`, with the input objects it refers to.
    fn serve_playlist(&self, path: ObjectPath, r: Rendered, refs: HashSet<ObjectPath>) {
        self.refs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(path.clone(), refs);
        self.playlists
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(path, Arc::new(r));
    }

    /// Whether a served playlist refers to this input object.
    fn referenced(&self, path: &ObjectPath) -> bool {
        self.refs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .any(|r| r.contains(path))
    }

    /// Waits (bounded) until the saved output is served.
    async fn wait_loaded(&self) -> bool {
        // Every request asks; after the first seconds the answer is yes.
        if *self.loaded.borrow() {
            return true;
        }
        let mut rx = self.loaded.clone();
        tokio::time::timeout(LOAD_WAIT, rx.wait_for(|l| *l))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn active(&self) -> Option<Pipeline> {
        match self.active.load(Ordering::Relaxed) {
            0 => Some(Pipeline::P0),
            1 => Some(Pipeline::P1),
            _ => None,
        }
    }

    fn playlist(&self, path: &ObjectPath) -> Option<Arc<Rendered>> {
        self.playlists
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(path)
            .cloned()
    }
}

/// What a channel's output starts with.
pub struct StartOutput {
    /// Where each pipeline's objects are in the store.
    pub roots: [ObjectPath; 2],
    /// The channel's notices.
    pub notices: mpsc::UnboundedReceiver<Notice>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub cfg: tandem_hls::MergeConfig,
    /// How long a segment stays after it left every window.
    pub grace: Duration,
    /// How long input objects stay.
    pub retention: retention::Settings,
    /// The channel's Smooth pushes.
    pub smooth_notices: mpsc::UnboundedReceiver<crate::notice::SmoothNotice>,
    /// How its publishing points merge.
    pub smooth: tandem_smooth::SmoothConfig,
}

/// A channel's running driver.
#[derive(Debug)]
struct Running {
    out: Arc<ChannelOutput>,
    /// Dropped or sent: the driver stops after its current step.
    stop: tokio::sync::oneshot::Sender<()>,
    control: mpsc::UnboundedSender<reset::Control>,
    task: tokio::task::JoinHandle<()>,
    smooth_stop: tokio::sync::oneshot::Sender<()>,
    smooth_task: tokio::task::JoinHandle<()>,
}

/// Every channel's output.
#[derive(Debug)]
pub struct Outputs {
    map: Mutex<HashMap<ChannelId, Running>>,
    /// Pinned segments in memory, shared by all channels.
    pub cache: Arc<cache::SegmentCache>,
    bus: crate::events::EventBus,
}

impl Outputs {
    /// No channel yet; `cache_bytes` bounds the in-memory segments.
    /// Their events also go to `bus`.
    pub fn new(cache_bytes: u64, bus: crate::events::EventBus) -> Self {
        Self {
            map: Mutex::default(),
            cache: Arc::new(cache::SegmentCache::new(cache_bytes)),
            bus,
        }
    }

    /// Starts a channel's driver (on the current tokio runtime).
    pub fn start(&self, id: &ChannelId, with: StartOutput) {
        let StartOutput {
            roots,
            notices: rx,
            store,
            clock,
            cfg,
            grace,
            retention,
            smooth_notices,
            smooth: smooth_cfg,
        } = with;
        let (loaded_tx, loaded) = watch::channel(false);
        let (smooth_loaded_tx, smooth_loaded) = watch::channel(false);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (control, control_rx) = mpsc::unbounded_channel();
        let out = Arc::new(ChannelOutput {
            id: id.clone(),
            roots,
            playlists: RwLock::default(),
            refs: RwLock::default(),
            loaded,
            events: Mutex::default(),
            active: AtomicU8::new(u8::MAX),
            last_advance: Mutex::default(),
            bus: self.bus.clone(),
            timeline: Mutex::default(),
            retention: retention::Status::default(),
            smooth: Arc::new(smooth::SmoothChannel::new(smooth_loaded)),
        });
        out.retention.set_keep_for(retention.keep_for);
        let (smooth_stop, smooth_stopped) = tokio::sync::oneshot::channel();
        let smooth_task = tokio::spawn(smooth::driver::run(smooth::driver::SmoothDriverParts {
            out: out.clone(),
            store: store.clone(),
            clock: clock.clone(),
            cfg: smooth_cfg,
            grace,
            rx: smooth_notices,
            loaded: smooth_loaded_tx,
            stopped: smooth_stopped,
        }));
        let task = tokio::spawn(driver::run(driver::DriverParts {
            out: out.clone(),
            store,
            cache: self.cache.clone(),
            clock,
            cfg,
            grace,
            retention,
            rx,
            control: control_rx,
            loaded: loaded_tx,
            stopped,
        }));
        let previous = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                id.clone(),
                Running {
                    out,
                    stop,
                    control,
                    task,
                    smooth_stop,
                    smooth_task,
                },
            );
        if let Some(old) = previous {
            let _ = old.stop.send(());
            let _ = old.smooth_stop.send(());
        }
    }

    /// Stops a channel's driver (the channel was deleted).
    pub fn stop(&self, id: &ChannelId) {
        let running = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
        if let Some(r) = running {
            let _ = r.stop.send(());
            let _ = r.smooth_stop.send(());
        }
    }

    /// Stops every driver after its current step and waits for them (the
    /// server is shutting down): what they saved is what a restart
    /// continues from.
    pub async fn shutdown(&self) {
        let running: Vec<Running> = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain()
            .map(|(_, r)| r)
            .collect();
        let mut tasks = Vec::new();
        for r in running {
            let _ = r.stop.send(());
            let _ = r.smooth_stop.send(());
            tasks.push(r.task);
            tasks.push(r.smooth_task);
        }
        for t in tasks {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "an output driver failed");
            }
        }
    }

    /// Starts a channel's output afresh (see [`reset`]); `None` if the
    /// channel has no output. Answers once every playlist is saved and
    /// served at its new base.
    pub async fn reset(&self, id: &ChannelId) -> Option<Vec<reset::ResetRendition>> {
        let control = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .map(|r| r.control.clone())?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        control.send(reset::Control::Reset { reply }).ok()?;
        answer.await.ok()
    }

    pub fn get(&self, id: &ChannelId) -> Option<Arc<ChannelOutput>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .map(|r| r.out.clone())
    }

    pub fn all(&self) -> Vec<Arc<ChannelOutput>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .map(|r| r.out.clone())
            .collect()
    }
}

impl EventRecord {
    /// An event of `kind` about `rendition` (a media playlist, or a
    /// publishing point's `{name}.isml`) at `time`, nothing else set yet.
    pub(crate) fn new(time: SystemTime, rendition: &str, kind: &'static str) -> Self {
        Self {
            time: crate::util::rfc3339_millis(time),
            rendition: rendition.to_owned(),
            kind,
            pipeline: None,
            from: None,
            to: None,
            reason: None,
            discontinuity: None,
            inputs: None,
            media_sequence: None,
            uri: None,
            switch_delay_ms: None,
            smooth: None,
        }
    }
}

/// An input state as events name it.
pub(crate) fn state_name(s: InputState) -> &'static str {
    match s {
        InputState::Idle => "idle",
        InputState::Receiving => "receiving",
        InputState::Lost => "lost",
    }
}

/// Writes an output's state (`what`: for messages) durably at `key`,
/// replacing the previous one atomically; a failure is counted and logged,
/// as the output goes on without it.
pub(crate) async fn save_state(
    store: &dyn Store,
    channel: &ChannelId,
    key: &ObjectPath,
    what: &str,
    state: &impl Serialize,
) {
    let json = match serde_json::to_vec(state) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(channel = %channel, what, error = %e, "cannot encode an output's state");
            return;
        }
    };
    let result = async {
        let mut w = store.begin_put(key, tandem_store::Parents::Create).await?;
        w.write(Bytes::from(json)).await?;
        w.commit().await
    };
    if let Err(e) = result.await {
        metrics::counter!("tandem_output_state_save_errors_total", "channel" => channel.to_string())
            .increment(1);
        tracing::error!(channel = %channel, what, error = %e, "cannot save an output's state: a restart would not continue it");
    }
}

/// Adds an event to the channel's list and the server-wide bus.
pub(crate) fn log_event(out: &ChannelOutput, e: EventRecord) {
    out.bus
        .publish(crate::events::Subject::Channel(out.id.to_string()), &e);
    let mut log = out
        .events
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if log.len() >= EVENT_LOG {
        log.pop_front();
    }
    log.push_back(e);
}

/// `{channel}/out`: where a channel's pinned output segments live.
pub fn output_root(channel: &ChannelId) -> ObjectPath {
    ObjectPath::from_segments([channel.as_str(), "out"]).unwrap_or_default()
}

/// CORS for `/out/`, as MediaPackage endpoints answer it: browser players
/// on `origins` (`*`: any) may read playlists and segments, see the
/// headers a player needs (ranges, validators), and send `Range` in a
/// preflight. Answered by `tower-http`.
pub fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, Any, CorsLayer};
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([http::Method::GET, http::Method::HEAD, http::Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers([
            header::CONTENT_LENGTH,
            header::CONTENT_RANGE,
            header::ETAG,
            header::LAST_MODIFIED,
            header::CACHE_CONTROL,
            header::DATE,
        ])
        .max_age(Duration::from_secs(86_400))
}

fn with_headers(mut r: Response, ctype: &'static str, cache: &'static str) -> Response {
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

/// GET and HEAD under `/out/`. Playback needs no credentials.
pub async fn handle(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    match serve(&st, &parts).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn serve(st: &AppState, parts: &http::request::Parts) -> Result<Response, HttpError> {
    if parts.method != http::Method::GET && parts.method != http::Method::HEAD {
        return Err(HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method",
            "the output answers GET and HEAD",
        )
        .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD")));
    }
    let rest = parts.uri.path().strip_prefix("/out/").unwrap_or_default();
    let (channel, path) = rest.split_once('/').unwrap_or((rest, ""));
    let id = ChannelId::parse(channel)
        .map_err(|_| HttpError::not_found(format!("no channel {channel:?}")))?;
    let out = st
        .outputs
        .get(&id)
        .ok_or_else(|| HttpError::not_found(format!("no channel {id}")))?;
    if smooth::is_smooth(path) {
        return smooth::serve(st, &out, parts, path).await;
    }
    let path =
        ObjectPath::from_url_path(path).map_err(|e| HttpError::bad_request(e.to_string()))?;
    if !out.wait_loaded().await {
        return Err(HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "loading",
            format!("the output of {id} is still loading"),
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")));
    }
    if let Some(r) = out.playlist(&path) {
        let resp = crate::serve::bytes(
            &parts.method,
            &parts.headers,
            r.text.clone(),
            &r.etag,
            r.modified,
        )?;
        return Ok(with_headers(
            resp,
            "application/vnd.apple.mpegurl",
            PLAYLIST_CACHE,
        ));
    }
    let not_named = || HttpError::not_found(format!("{path} is not in the output of {id}"));
    // Playlists are served only as the output renders them.
    if path.file_name().is_some_and(|n| n.ends_with(".m3u8")) {
        return Err(not_named());
    }
    // Pinned segments are the hot path: from memory, else straight from
    // the store with no stat first.
    let pinned = output_root(&id).join_path(&path);
    if let Some((body, meta)) = st.outputs.cache.get(&pinned) {
        let resp = crate::serve::bytes(
            &parts.method,
            &parts.headers,
            body,
            &meta.etag,
            meta.modified,
        )?;
        let ctype = crate::serve::content_type(path.file_name().unwrap_or_default());
        return Ok(with_headers(resp, ctype, SEGMENT_CACHE));
    }
    match crate::serve::object(
        st.store.as_ref(),
        &pinned,
        &parts.method,
        &parts.headers,
        Some(SEGMENT_CACHE),
    )
    .await
    {
        Err(e) if e.status == StatusCode::NOT_FOUND || e.status == StatusCode::CONFLICT => {}
        other => return other,
    }
    // An object a served playlist names (an init section, a key): from the
    // active input, else from whichever input has it.
    if !out.referenced(&path) {
        return Err(not_named());
    }
    let order = match out.active() {
        Some(p) => [p, p.other()],
        None => Pipeline::BOTH,
    };
    for p in order {
        let key = out.root(p).join_path(&path);
        if matches!(st.store.stat(&key).await?, Some(Entry::Object(_))) {
            return crate::serve::object(
                st.store.as_ref(),
                &key,
                &parts.method,
                &parts.headers,
                Some(INPUT_CACHE),
            )
            .await;
        }
    }
    Err(not_named())
}

/// Reads a small object (a playlist) whole; larger than 4 MiB is refused.
pub async fn read_small(store: &dyn Store, key: &ObjectPath) -> Result<Bytes, HttpError> {
    use futures_util::TryStreamExt;
    const MAX: u64 = 4 * 1024 * 1024;
    let (meta, stream) = store.get(key, None).await?;
    if meta.size > MAX {
        return Err(HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_large",
            format!("{key} is larger than a playlist can be"),
        ));
    }
    let chunks: Vec<Bytes> = stream.try_collect().await.map_err(|e| {
        tracing::warn!(key = %key, error = %e, "cannot read");
        HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "cannot read the playlist",
        )
    })?;
    Ok(Bytes::from(chunks.concat()))
}

/// Points absolute ingest URIs of a multivariant playlist at the output.
pub fn rewrite_multivariant(text: &str, id: &ChannelId) -> String {
    let out = format!("/out/{id}/");
    text.replace(&format!("/in/{id}/0/"), &out)
        .replace(&format!("/in/{id}/1/"), &out)
}
