//! The Smooth publishing points' output: `/out/{channel}/{name}.isml/Manifest`
//! (the client manifest of the de-duplicated timeline) and
//! `/out/{channel}/{name}.isml/QualityLevels({bitrate})/Fragments({track}={time})`
//! (the `moof` + `mdat` of the copy the output serves for that time, as the
//! encoder sent it, so its `tfxd` time equals the URL's, with a `tfrf`
//! look-ahead written into its `traf`).
//!
//! The look-ahead: a live client learns of the fragments that follow the
//! one it reads from that fragment's `tfrf` ([MS-SSTR] §2.2.4.5, mandatory
//! in a live presentation with a `LookAheadFragmentCount` above 0), and
//! GStreamer's `mssdemux` refuses a live fragment without one. Encoders do
//! not write it (ffmpeg's `ismv` muxer never does; the encoder cannot know
//! which fragments the output will serve next), so the output writes it
//! when it serves the fragment: the `LookAheadFragmentCount` fragments that
//! follow it in the output of the same track, as far as they are known.
//! A fragment is named in the manifest the moment it is complete, without
//! waiting for its successors (holding it back would add the look-ahead's
//! duration, two fragments, to the live delay); until its successors
//! exist its `tfrf` lists fewer entries, down to none, which §2.2.4.5
//! allows ("the number of subsequent fragments in the track is less than
//! the value of the LookaheadCount field"), and clients then learn of the
//! next fragments from the manifest, which they refresh (`mssdemux` does,
//! and starts three fragments behind the newest, so what it reads has its
//! look-ahead). Such a fragment's bytes grow as its successors arrive, so
//! it is served with the manifest's one-second cache lifetime and an ETag
//! that counts its entries; once its look-ahead is complete (or the
//! presentation ended or was replaced, so no entry will ever be added) it
//! never changes again and is `immutable`.
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

use std::collections::{BTreeMap, HashMap, VecDeque};
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

/// A fragment the output serves.
#[derive(Debug, Clone, PartialEq)]
struct Served {
    key: ObjectPath,
    /// The `(time, duration)` of the fragments that follow it in its
    /// track's output, at most the look-ahead count.
    ahead: Vec<(u64, u64)>,
    /// Whether a `tfrf` is written (`LookAheadFragmentCount` above 0).
    with_tfrf: bool,
    /// No entry will be added to `ahead`: the bytes are final.
    complete: bool,
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
    fragments: HashMap<FragmentKey, Served>,
    /// Per track `(bitrate, name)`, its newest fragments whose look-ahead
    /// is not complete yet, oldest first.
    open: HashMap<(u32, String), VecDeque<FragmentKey>>,
    status: PointStatus,
}

impl PointView {
    /// A fragment entered the output, after every earlier one of its
    /// track: it becomes answerable, and the look-ahead of the fragments
    /// before it that still lack entries names it.
    fn add(&mut self, fk: FragmentKey, duration: u64, key: ObjectPath, look_ahead: usize) {
        let open = self.open.entry((fk.0, fk.1.clone())).or_default();
        for before in open.iter() {
            if let Some(s) = self.fragments.get_mut(before) {
                s.ahead.push((fk.2, duration));
                s.complete = s.ahead.len() >= look_ahead;
            }
        }
        let fragments = &self.fragments;
        open.retain(|k| fragments.get(k).is_some_and(|s| !s.complete));
        let complete = look_ahead == 0;
        if !complete {
            open.push_back(fk.clone());
        }
        self.fragments.insert(
            fk,
            Served {
                key,
                ahead: Vec::new(),
                with_tfrf: look_ahead > 0,
                complete,
            },
        );
    }

    /// No fragment will follow the ones served so far (the presentation
    /// ended or a new one started): every look-ahead is final.
    fn close_look_ahead(&mut self) {
        for (_, open) in self.open.drain() {
            for k in open {
                if let Some(s) = self.fragments.get_mut(&k) {
                    s.complete = true;
                }
            }
        }
    }
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
                open: HashMap::new(),
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

    fn fragment(&self, name: &str, key: &FragmentKey) -> Option<Served> {
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
            let served = sm
                .fragment(name, &(req.bitrate, req.name.clone(), req.time))
                .ok_or_else(not_here)?;
            let ctype = if req.name.to_ascii_lowercase().contains("audio") {
                "audio/mp4"
            } else {
                "video/mp4"
            };
            if !served.with_tfrf {
                let resp = crate::serve::object(
                    st.store.as_ref(),
                    &served.key,
                    &parts.method,
                    &parts.headers,
                    Some(SEGMENT_CACHE),
                )
                .await?;
                return Ok(with_headers(resp, ctype, SEGMENT_CACHE));
            }
            let (body, etag, modified) = with_look_ahead(st, out, &served).await?;
            let resp = crate::serve::bytes(&parts.method, &parts.headers, body, &etag, modified)?;
            let cache = if served.complete {
                SEGMENT_CACHE
            } else {
                PLAYLIST_CACHE
            };
            Ok(with_headers(resp, ctype, cache))
        }
        _ => Err(not_here()),
    }
}

/// A stored fragment with its `tfrf` look-ahead written in, its ETag (the
/// stored copy's, with the entry count) and modification time. A fragment
/// that cannot take one (see [`tandem_mp4::with_tfrf`]) is served as
/// stored, and the reason logged and counted.
async fn with_look_ahead(
    st: &AppState,
    out: &super::ChannelOutput,
    served: &Served,
) -> Result<(Bytes, String, SystemTime), HttpError> {
    use futures_util::TryStreamExt;
    let (meta, stream) = match st.store.get(&served.key, None).await {
        Ok(x) => x,
        Err(tandem_store::StoreError::NotFound(_)) => {
            return Err(HttpError::not_found(format!(
                "{} does not exist",
                served.key
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let chunks: Vec<Bytes> = stream.try_collect().await.map_err(|e| {
        tracing::warn!(key = %served.key, error = %e, "cannot read a smooth fragment");
        HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "cannot read the fragment",
        )
    })?;
    let stored = chunks.concat();
    let tfrf = tandem_mp4::Tfrf {
        version: 1,
        entries: served.ahead.clone(),
    };
    let inner = meta.etag.trim_matches('"');
    match tandem_mp4::with_tfrf(&stored, &tfrf) {
        Ok(b) => Ok((
            Bytes::from(b),
            format!("\"{inner}-la{}\"", tfrf.entries.len()),
            meta.modified,
        )),
        Err(e) => {
            metrics::counter!("tandem_smooth_lookahead_failures_total", "channel" => out.id.to_string())
                .increment(1);
            tracing::warn!(channel = %out.id, key = %served.key, error = %e, "fragment served without its tfrf look-ahead");
            Ok((Bytes::from(stored), meta.etag, meta.modified))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn view() -> PointView {
        PointView {
            manifest: None,
            fragments: HashMap::new(),
            open: HashMap::new(),
            status: PointStatus {
                name: "live".into(),
                manifest: String::new(),
                inputs: [InputState::Idle; 2],
                ended: false,
                event: None,
                tracks: 1,
                counters: Counters::default(),
            },
        }
    }

    fn key(t: u64) -> ObjectPath {
        ObjectPath::from_segments(["demo", "0", &format!("{t}")]).unwrap()
    }

    fn fk(bitrate: u32, t: u64) -> FragmentKey {
        (bitrate, "video".into(), t)
    }

    #[test]
    fn a_fragment_looks_ahead_at_the_next_ones_of_its_own_track_and_is_final_once_it_has_them() {
        let mut v = view();
        for t in 0..4u64 {
            v.add(fk(300, t * 20), 20, key(t), 2);
            // The other bitrate's fragments never appear in this track's tfrf.
            v.add(fk(600, t * 20 + 1), 20, key(100 + t), 2);
        }
        let f = |t| v.fragments.get(&fk(300, t)).unwrap();
        assert_eq!(f(0).ahead, [(20, 20), (40, 20)]);
        assert!(f(0).complete);
        assert_eq!(f(20).ahead, [(40, 20), (60, 20)]);
        assert!(f(20).complete);
        assert_eq!(f(40).ahead, [(60, 20)]);
        assert!(!f(40).complete, "its second successor is not known yet");
        assert_eq!(f(60).ahead, []);
        assert!(f(60).with_tfrf);
        v.close_look_ahead();
        assert!(v.fragments.values().all(|s| s.complete));
        assert!(v.open.is_empty());
    }

    #[test]
    fn with_no_look_ahead_fragments_are_served_as_stored_and_final() {
        let mut v = view();
        v.add(fk(300, 0), 20, key(0), 0);
        v.add(fk(300, 20), 20, key(1), 0);
        let s = v.fragments.get(&fk(300, 0)).unwrap();
        assert!(s.complete && !s.with_tfrf && s.ahead.is_empty());
    }
}
