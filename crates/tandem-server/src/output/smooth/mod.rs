//! The Smooth publishing points' output: `/out/{channel}/{name}.isml/Manifest`
//! (the client manifest of the de-duplicated timeline) and
//! `/out/{channel}/{name}.isml/QualityLevels({bitrate})/Fragments({track}={time})`
//! (the `moof` + `mdat` of the copy the output serves for that time, as the
//! encoder sent it, so its `tfxd` time equals the URL's).
//!
//! The channel's Smooth [`driver`] owns the engines and keeps a
//! [`SmoothChannel`] view that requests read: each point's rendered
//! manifest, the store key of every fragment a client may ask for, and the
//! status the API and metrics show. A fragment stays answerable for the
//! output grace period after it left the manifest's window, then its
//! stored copy is removed. Fragment URLs always return the same bytes:
//! immutable and cacheable; a time that is not (or no longer) in the output
//! is a 404.

pub mod driver;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use tandem_core::{InputState, ObjectPath};
use tandem_smooth::Counters;
use tokio::sync::watch;

use crate::AppState;
use crate::error::HttpError;

use super::{PLAYLIST_CACHE, SEGMENT_CACHE, with_headers};

/// A fragment as a client names it: bitrate, stream name, time.
pub type FragmentKey = (u32, String, u64);

/// The Smooth detail of an event.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct SmoothDetail {
    /// `{name}@{bitrate}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track: Option<String>,
    /// The `tfxd` time (the start of a gap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<u64>,
    /// The end of a gap, or the time a pipeline restarted from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
    /// `Streams({stream})` of the push concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
}

/// A publishing point as the status API shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct PointStatus {
    /// `{name}` of `{name}.isml`.
    pub name: String,
    /// `/out/{channel}/{name}.isml/Manifest`.
    pub manifest: String,
    /// Each pipeline's state as the engine judges it.
    pub inputs: [InputState; 2],
    /// Whether the manifest ended (`IsLive="FALSE"`).
    pub ended: bool,
    /// `Events({id})` of the current presentation.
    pub event: Option<String>,
    /// Tracks (`QualityLevel`s) of the presentation.
    pub tracks: usize,
    pub counters: Counters,
}

/// A rendered client manifest.
#[derive(Debug)]
struct Manifest {
    text: Bytes,
    etag: String,
    modified: SystemTime,
}

#[derive(Debug)]
struct PointView {
    manifest: Option<Arc<Manifest>>,
    fragments: HashMap<FragmentKey, ObjectPath>,
    status: PointStatus,
}

/// A channel's publishing points, as requests see them.
#[derive(Debug)]
pub struct SmoothChannel {
    points: RwLock<BTreeMap<String, PointView>>,
    loaded: watch::Receiver<bool>,
}

impl SmoothChannel {
    pub(super) fn new(loaded: watch::Receiver<bool>) -> Self {
        Self {
            points: RwLock::default(),
            loaded,
        }
    }

    /// Every publishing point's status, by name.
    pub fn status(&self) -> Vec<PointStatus> {
        self.points
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .map(|p| p.status.clone())
            .collect()
    }

    fn with_point<R>(&self, name: &str, f: impl FnOnce(&mut PointView) -> R) -> Option<R> {
        self.points
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(name)
            .map(f)
    }

    fn ensure(&self, name: &str, status: PointStatus) {
        self.points
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(name.to_owned())
            .or_insert_with(|| PointView {
                manifest: None,
                fragments: HashMap::new(),
                status,
            });
    }

    fn manifest(&self, name: &str) -> Option<Arc<Manifest>> {
        self.points
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)?
            .manifest
            .clone()
    }

    fn fragment(&self, name: &str, key: &FragmentKey) -> Option<ObjectPath> {
        self.points
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)?
            .fragments
            .get(key)
            .cloned()
    }

    async fn wait_loaded(&self) -> bool {
        if *self.loaded.borrow() {
            return true;
        }
        let mut rx = self.loaded.clone();
        tokio::time::timeout(super::LOAD_WAIT, rx.wait_for(|l| *l))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Whether an output path is under a publishing point.
pub fn is_smooth(path: &str) -> bool {
    path.split('/')
        .next()
        .is_some_and(|s| s.to_ascii_lowercase().ends_with(".isml"))
}

/// GET and HEAD of `{name}.isml/Manifest` and `{name}.isml/QualityLevels(…)/Fragments(…)`.
pub(super) async fn serve(
    st: &AppState,
    out: &super::ChannelOutput,
    parts: &http::request::Parts,
    path: &str,
) -> Result<http::Response<axum::body::Body>, HttpError> {
    let path =
        ObjectPath::from_url_path(path).map_err(|e| HttpError::bad_request(e.to_string()))?;
    let segs = path.segments();
    let first = segs.first().map(String::as_str).unwrap_or_default();
    let name = first
        .get(..first.len().saturating_sub(5))
        .unwrap_or_default();
    let sm = &out.smooth;
    if !sm.wait_loaded().await {
        return Err(HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "loading",
            format!("the output of {} is still loading", out.id),
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")));
    }
    let not_here = || {
        HttpError::not_found(format!(
            "{path} is not in the output of {}: a publishing point serves {name}.isml/Manifest and the fragments it names",
            out.id
        ))
    };
    match segs {
        [_, m] if m.eq_ignore_ascii_case("manifest") => {
            let m = sm.manifest(name).ok_or_else(not_here)?;
            let resp = crate::serve::bytes(
                &parts.method,
                &parts.headers,
                m.text.clone(),
                &m.etag,
                m.modified,
            )?;
            Ok(with_headers(
                resp,
                "text/xml; charset=utf-8",
                PLAYLIST_CACHE,
            ))
        }
        [_, ql, frag] => {
            let req = tandem_smooth::parse_fragment_url(&format!("{ql}/{frag}"))
                .map_err(|e| HttpError::bad_request(e.to_string()))?;
            let key = sm
                .fragment(name, &(req.bitrate, req.name.clone(), req.time))
                .ok_or_else(not_here)?;
            let resp = crate::serve::object(
                st.store.as_ref(),
                &key,
                &parts.method,
                &parts.headers,
                Some(SEGMENT_CACHE),
            )
            .await?;
            let ctype = if req.name.to_ascii_lowercase().contains("audio") {
                "audio/mp4"
            } else {
                "video/mp4"
            };
            Ok(with_headers(resp, ctype, SEGMENT_CACHE))
        }
        _ => Err(not_here()),
    }
}
