//! The per-channel driver: owns one merge engine per rendition, feeds it
//! what ingest published, fires its timers, and carries out its decisions
//! (pin a segment, render a playlist, expire a pin, record an event).
//!
//! All failover decisions are the engine's; this task only holds the clock
//! and does the IO. A segment is pinned before the playlist naming it is
//! rendered, so no served playlist names an object that is not complete.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use metrics::{counter, histogram};
use tandem_core::{ChannelId, InputState, ObjectPath, Pipeline};
use tandem_hls::merge::{Event, OutSeg};
use tandem_hls::{
    MergeConfig, RenditionMerge, SavedMerge, is_multivariant, parse_media, referenced_uris,
};
use tandem_store::{Entry, Store, StoreError};
use tokio::sync::{mpsc, watch};

use crate::Clock;

use super::reset::{self, Control, ResetRendition};
use super::{ChannelOutput, EventRecord, Rendered, output_root, state_name};
use crate::notice::Notice;

/// A rendition: its engine and where its files live.
struct Rendition {
    merge: RenditionMerge,
    /// The media playlist's path, relative to the input root.
    path: ObjectPath,
    /// Its directory, where relative segment URIs resolve.
    dir: ObjectPath,
    /// The playlist's file name without `.m3u8`: the folder of its pins.
    stem: String,
    /// Whether each pipeline's segments stored before the rendition was
    /// known have been looked up (once: later ones arrive as notices).
    caught_up: [bool; 2],
}

impl Rendition {
    fn new(merge: RenditionMerge, path: ObjectPath) -> Self {
        let name = path.file_name().unwrap_or_default();
        let stem = name.strip_suffix(".m3u8").unwrap_or(name).to_owned();
        Self {
            merge,
            dir: path.parent().unwrap_or_default(),
            stem,
            path,
            caught_up: [false; 2],
        }
    }

    /// Where output segment `s` is pinned, relative to the output root.
    fn pin_path(&self, s: &OutSeg) -> Option<ObjectPath> {
        let file = resolve(&self.dir, &s.source_uri)?.file_name()?.to_owned();
        self.dir
            .join(&self.stem)
            .ok()?
            .join(&s.media_sequence.to_string())
            .ok()?
            .join(&file)
            .ok()
    }

    fn pin_dir(&self, media_sequence: u64) -> Option<ObjectPath> {
        self.dir
            .join(&self.stem)
            .ok()?
            .join(&media_sequence.to_string())
            .ok()
    }
}

/// Where a playlist's saved state is kept: `{channel}/state/{path}.json`.
fn state_key(channel: &ChannelId, rendition: &ObjectPath) -> Option<ObjectPath> {
    let mut segs = vec![channel.to_string(), "state".to_owned()];
    segs.extend(rendition.segments().iter().cloned());
    let last = segs.pop()?;
    segs.push(format!("{last}.json"));
    ObjectPath::from_segments(segs).ok()
}

/// `{channel}/state`: every saved playlist of a channel.
fn state_root(channel: &ChannelId) -> Option<ObjectPath> {
    ObjectPath::from_segments([channel.as_str(), "state"]).ok()
}

/// A playlist of the output, as kept across a restart.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum SavedPlaylist {
    /// A merged media playlist: the engine's whole state.
    Media { merge: Box<SavedMerge> },
    /// A multivariant playlist as served, and the pipeline it came from.
    Multivariant { text: String, pipeline: u8 },
}

/// What an earlier version kept: only where the numbering continues.
#[derive(serde::Deserialize)]
struct LegacyResumePoint {
    next_media_sequence: u64,
    discontinuity_sequence: u64,
}

/// Resolves a playlist URI against the playlist's directory. Absolute URLs
/// and absolute paths are not resolved (the engine then never sees them
/// complete): ingest stores only relative layouts.
pub(super) fn resolve(dir: &ObjectPath, uri: &str) -> Option<ObjectPath> {
    let uri = uri.split(['?', '#']).next().unwrap_or(uri);
    if uri.contains("://") || uri.starts_with('/') {
        return None;
    }
    let mut parts: Vec<String> = dir.segments().to_vec();
    for part in uri.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p.to_owned()),
        }
    }
    ObjectPath::from_url_path(&parts.join("/")).ok()
}

struct Driver {
    out: Arc<ChannelOutput>,
    store: Arc<dyn Store>,
    cache: Arc<super::cache::SegmentCache>,
    clock: Arc<dyn Clock>,
    cfg: MergeConfig,
    grace: Duration,
    renditions: HashMap<ObjectPath, Rendition>,
    /// Multivariant playlists served, and the pipeline each came from.
    multivariants: HashMap<ObjectPath, Pipeline>,
    /// Pins to delete, in deadline order.
    expiries: VecDeque<(Instant, ObjectPath)>,
    /// Removes input objects nothing names any more.
    retention: super::retention::Retention,
}

/// Everything a channel's driver is given.
pub struct DriverParts {
    pub out: Arc<ChannelOutput>,
    pub store: Arc<dyn Store>,
    pub cache: Arc<super::cache::SegmentCache>,
    pub clock: Arc<dyn Clock>,
    pub cfg: MergeConfig,
    pub grace: Duration,
    pub retention: super::retention::Settings,
    pub rx: mpsc::UnboundedReceiver<Notice>,
    /// What the control API asks (a reset).
    pub control: mpsc::UnboundedReceiver<Control>,
    /// Set once the saved output is loaded and served.
    pub loaded: watch::Sender<bool>,
    /// Resolves (or is dropped) when the driver must stop.
    pub stopped: tokio::sync::oneshot::Receiver<()>,
}

/// Runs a channel's output until the channel is deleted.
pub async fn run(parts: DriverParts) {
    let DriverParts {
        out,
        store,
        cache,
        clock,
        cfg,
        grace,
        retention,
        mut rx,
        mut control,
        loaded,
        mut stopped,
    } = parts;
    let retention = super::retention::Retention::new(
        out.id.to_string(),
        Pipeline::BOTH.map(|p| out.root(p).clone()),
        retention,
        clock.instant(),
    );
    let mut d = Driver {
        out,
        store,
        cache,
        clock,
        cfg,
        grace,
        renditions: HashMap::new(),
        multivariants: HashMap::new(),
        expiries: VecDeque::new(),
        retention,
    };
    // The output continues where an earlier process left it: its
    // playlists are served before any notice is handled.
    Box::pin(d.load()).await;
    loaded.send_replace(true);
    loop {
        let deadline = d.next_deadline();
        let sleep = async {
            match deadline {
                Some(t) => d.clock.sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // Notices first: an upload that landed is known before a timer
            // (the retention sweep among them) judges what is on disk.
            biased;
            msg = rx.recv() => match msg {
                // Boxed: the handlers' futures are large, and inlining them
                // here overflows a 2 MiB worker stack in debug builds.
                Some(Notice::Published { pipeline, path, at }) => {
                    let playlist = path.file_name().is_some_and(|n| n.ends_with(".m3u8"));
                    Box::pin(d.on_published(pipeline, &path)).await;
                    if playlist {
                        // From the input playlist's publication to the
                        // output playlist that follows from it.
                        histogram!("tandem_output_publish_delay_seconds", "channel" => d.out.id.to_string())
                            .record(at.elapsed().as_secs_f64());
                    }
                }
                None => break,
            },
            Some(Control::Reset { reply }) = control.recv() => {
                let bases = Box::pin(d.reset()).await;
                let _ = reply.send(bases);
            }
            () = sleep => Box::pin(d.on_tick()).await,
            _ = &mut stopped => break,
        }
    }
    tracing::debug!(channel = %d.out.id, "output driver stopped");
}

impl Driver {
    fn next_deadline(&self) -> Option<Instant> {
        let engines = self
            .renditions
            .values()
            .filter_map(|r| r.merge.next_deadline());
        engines
            .chain(self.expiries.front().map(|(t, _)| *t))
            .chain([self.retention.next_deadline()])
            .min()
    }

    async fn on_published(&mut self, p: Pipeline, path: &ObjectPath) {
        let now = self.clock.instant();
        self.retention.on_published(now, p, path);
        if path.file_name().is_some_and(|n| n.ends_with(".m3u8")) {
            Box::pin(self.on_playlist(now, p, path)).await;
            return;
        }
        let keys: Vec<ObjectPath> = self
            .renditions
            .keys()
            .filter(|k| path.starts_with(&self.renditions[*k].dir))
            .cloned()
            .collect();
        for k in keys {
            let Some(r) = self.renditions.get_mut(&k) else {
                continue;
            };
            let Some(rel) = path.strip_prefix(&r.dir) else {
                continue;
            };
            let events = r.merge.on_segment_stored(now, p, &rel.to_url_path());
            Box::pin(self.apply(&k, events)).await;
        }
    }

    async fn on_playlist(&mut self, now: Instant, p: Pipeline, path: &ObjectPath) {
        let key = self.out.root(p).clone().join_path(path);
        let text = match super::read_small(self.store.as_ref(), &key).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(channel = %self.out.id, pipeline = %p, path = %path, reason = %e.reason, "playlist unreadable");
                return;
            }
        };
        let text = String::from_utf8_lossy(&text);
        if is_multivariant(&text) {
            Box::pin(self.on_multivariant(p, path, &text)).await;
            return;
        }
        let pl = match parse_media(&text) {
            Ok(pl) => pl,
            Err(e) => {
                counter!("tandem_playlists_rejected_total", "channel" => self.out.id.to_string(), "pipeline" => p.to_string()).increment(1);
                tracing::warn!(channel = %self.out.id, pipeline = %p, path = %path, error = %e, "malformed playlist ignored");
                return;
            }
        };
        if !self.renditions.contains_key(path) {
            let merge = RenditionMerge::new(self.cfg.clone());
            self.renditions
                .insert(path.clone(), Rendition::new(merge, path.clone()));
        }
        let Some(r) = self.renditions.get_mut(path) else {
            return;
        };
        let mut events = r.merge.on_playlist(now, p, &pl);
        if r.merge.last_advance(p) == Some(now) {
            let mut la = self
                .out
                .last_advance
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            la[p.index()] = Some(self.clock.now());
        }
        // Segments a pipeline stored before its first playlist reached this
        // rendition sent notices nobody matched: look them up once. Later
        // segments arrive as notices, which the engine keeps until a
        // playlist names them.
        let root = self.out.root(p).clone();
        let dir = r.dir.clone();
        let catch_up = !std::mem::replace(&mut r.caught_up[p.index()], true);
        for s in pl.segments.iter().filter(|_| catch_up) {
            let Some(rel) = resolve(&dir, &s.uri) else {
                continue;
            };
            if let Ok(Some(Entry::Object(_))) = self.store.stat(&root.join_path(&rel)).await {
                events.extend(r.merge.on_segment_stored(now, p, &s.uri));
            }
        }
        Box::pin(self.apply(&path.clone(), events)).await;
    }

    async fn on_tick(&mut self) {
        let now = self.clock.instant();
        while let Some((t, key)) = self.expiries.front().cloned() {
            if t > now {
                break;
            }
            self.expiries.pop_front();
            self.cache.remove_under(&key);
            match self.store.delete(&key).await {
                Ok(()) | Err(StoreError::NotFound(_)) => {}
                Err(e) => tracing::warn!(key = %key, error = %e, "cannot expire an output segment"),
            }
        }
        let keys: Vec<ObjectPath> = self.renditions.keys().cloned().collect();
        for k in keys {
            let Some(r) = self.renditions.get_mut(&k) else {
                continue;
            };
            if r.merge.next_deadline().is_some_and(|d| d <= now) {
                let events = r.merge.on_tick(now);
                Box::pin(self.apply(&k, events)).await;
            }
        }
        if self.retention.next_deadline() <= now {
            let named = self.output_named();
            let wall = self.clock.now();
            let out = self.out.clone();
            Box::pin(
                self.retention
                    .step(now, wall, self.store.as_ref(), named, &out.retention),
            )
            .await;
        }
    }

    /// Input objects the output names: every window segment's source and
    /// what the output's playlists refer to.
    fn output_named(&self) -> std::collections::HashSet<ObjectPath> {
        let mut named = super::retention::output_refs(&self.out);
        for r in self.renditions.values() {
            for s in r.merge.segments() {
                if let Some(rel) = resolve(&r.dir, &s.source_uri) {
                    named.insert(self.out.root(s.from).join_path(&rel));
                }
            }
        }
        named
    }

    /// Carries out a rendition's events, then renders its playlist.
    async fn apply(&mut self, key: &ObjectPath, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let Some(r) = self.renditions.get(key) else {
            return;
        };
        let id = self.out.id.clone();
        let rendition = r.path.to_string();
        let out_root = output_root(&id);
        let wall = self.clock.now();
        for ev in &events {
            match ev {
                Event::SegmentAdded {
                    media_sequence,
                    from,
                    source_uri,
                    filled,
                    ..
                } => {
                    let seg = r
                        .merge
                        .segments()
                        .find(|s| s.media_sequence == *media_sequence);
                    let (Some(seg), Some(src)) = (seg, resolve(&r.dir, source_uri)) else {
                        continue;
                    };
                    let Some(pin) = r.pin_path(seg) else { continue };
                    let from_key = self.out.root(*from).clone().join_path(&src);
                    let pinned = out_root.join_path(&pin);
                    match self.store.link(&from_key, &pinned).await {
                        Ok(()) => self.cache_pinned(&pinned).await,
                        Err(e) => {
                            tracing::error!(channel = %id, rendition, media_sequence, error = %e, "cannot pin an output segment")
                        }
                    }
                    counter!("tandem_output_segments_total", "channel" => id.to_string(), "rendition" => rendition.clone(), "pipeline" => from.to_string()).increment(1);
                    if *filled {
                        counter!("tandem_output_segments_filled_total", "channel" => id.to_string(), "rendition" => rendition.clone()).increment(1);
                        tracing::warn!(channel = %id, rendition, media_sequence, from = %from, "segment filled from the other pipeline");
                        record(&self.out, wall, &rendition, "segment_filled", |e| {
                            e.pipeline = Some(from.index());
                            e.media_sequence = Some(*media_sequence);
                            e.uri = Some(source_uri.clone());
                        });
                    }
                }
                Event::SegmentRemoved { media_sequence, .. } => {
                    if let Some(dir) = r.pin_dir(*media_sequence) {
                        self.expiries.push_back((
                            self.clock.instant() + self.grace,
                            out_root.join_path(&dir),
                        ));
                    }
                }
                Event::Switched {
                    at,
                    from,
                    to,
                    reason,
                    discontinuity,
                    inputs,
                } => {
                    let delay = from
                        .and_then(|p| r.merge.last_advance(p))
                        .map(|t| at.saturating_duration_since(t));
                    let delay_ms = delay.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                    self.out.set_active(*to);
                    counter!("tandem_output_switches_total", "channel" => id.to_string(), "rendition" => rendition.clone(), "reason" => reason.as_str()).increment(1);
                    tracing::warn!(channel = %id, rendition, from = ?from.map(|p| p.index()), to = %to, reason = reason.as_str(), discontinuity, ?inputs, ?delay_ms, "output switched");
                    record(&self.out, wall, &rendition, "switch", |e| {
                        e.from = from.map(|p| p.to_string());
                        e.to = Some(to.to_string());
                        e.reason = Some(reason.as_str());
                        e.discontinuity = Some(*discontinuity);
                        e.inputs = Some(*inputs);
                        e.switch_delay_ms = delay_ms;
                    });
                }
                Event::InputStateChanged {
                    pipeline,
                    from,
                    to,
                    inputs,
                    ..
                } => {
                    tracing::info!(channel = %id, rendition, pipeline = %pipeline, ?from, ?to, "input state changed");
                    record(&self.out, wall, &rendition, "input_state", |e| {
                        e.pipeline = Some(pipeline.index());
                        e.from = Some(state_name(*from).to_owned());
                        e.to = Some(state_name(*to).to_owned());
                        e.inputs = Some(*inputs);
                    });
                    // The question an operator asks of a redundant pair: is
                    // each destination still receiving?
                    let alarm = match (from, to) {
                        (_, InputState::Lost) => Some("input_lost"),
                        (InputState::Lost, InputState::Receiving) => Some("input_restored"),
                        _ => None,
                    };
                    if let Some(kind) = alarm {
                        counter!("tandem_input_transitions_total", "channel" => id.to_string(), "pipeline" => pipeline.to_string(), "kind" => kind).increment(1);
                        tracing::warn!(channel = %id, rendition, pipeline = %pipeline, kind, "input {}", if kind == "input_lost" { "lost" } else { "restored" });
                        record(&self.out, wall, &rendition, kind, |e| {
                            e.pipeline = Some(pipeline.index());
                            e.inputs = Some(*inputs);
                        });
                    }
                }
                Event::InputRestarted {
                    pipeline,
                    media_sequence,
                    ..
                } => {
                    tracing::warn!(channel = %id, rendition, pipeline = %pipeline, media_sequence, "encoder restarted");
                    record(&self.out, wall, &rendition, "input_restarted", |e| {
                        e.pipeline = Some(pipeline.index());
                        e.media_sequence = Some(*media_sequence);
                    });
                }
                Event::SegmentMissing {
                    pipeline,
                    source_uri,
                    ..
                } => {
                    counter!("tandem_output_segments_missing_total", "channel" => id.to_string(), "rendition" => rendition.clone()).increment(1);
                    tracing::error!(channel = %id, rendition, pipeline = %pipeline, uri = source_uri, "segment missing from both pipelines");
                    record(&self.out, wall, &rendition, "segment_missing", |e| {
                        e.pipeline = Some(pipeline.index());
                        e.uri = Some(source_uri.clone());
                    });
                }
                Event::Ended { .. } => {
                    tracing::info!(channel = %id, rendition, "output ended");
                    record(&self.out, wall, &rendition, "ended", |_| {});
                }
                Event::Resumed {
                    pipeline,
                    media_sequence,
                    ..
                } => {
                    counter!("tandem_output_resumed_total", "channel" => id.to_string(), "rendition" => rendition.clone()).increment(1);
                    tracing::warn!(channel = %id, rendition, pipeline = %pipeline, media_sequence, "ended output resumed");
                    record(&self.out, wall, &rendition, "output_resumed", |e| {
                        e.pipeline = Some(pipeline.index());
                        e.media_sequence = Some(*media_sequence);
                    });
                }
                Event::Reset { media_sequence, .. } => {
                    counter!("tandem_output_resets_total", "channel" => id.to_string(), "rendition" => rendition.clone()).increment(1);
                    tracing::warn!(channel = %id, rendition, media_sequence, "output reset");
                    record(&self.out, wall, &rendition, "output_reset", |e| {
                        e.media_sequence = Some(*media_sequence);
                    });
                }
            }
        }
        // Durable before any player sees it: a restart continues from here.
        self.save(
            &r.path,
            &SavedPlaylist::Media {
                merge: Box::new(r.merge.save()),
            },
        )
        .await;
        publish_media(&self.out, r, self.clock.now());
    }

    /// A multivariant playlist: served with ingest URIs pointed at the
    /// output, from the pipeline the output is on when both publish one.
    async fn on_multivariant(&mut self, p: Pipeline, path: &ObjectPath, text: &str) {
        let known = self.multivariants.get(path).copied();
        let active = self.out.active();
        if known.is_some_and(|k| k != p && active != Some(p)) {
            return;
        }
        self.multivariants.insert(path.clone(), p);
        let text = super::rewrite_multivariant(text, &self.out.id);
        self.save(
            path,
            &SavedPlaylist::Multivariant {
                text: text.clone(),
                pipeline: u8::try_from(p.index()).unwrap_or(0),
            },
        )
        .await;
        publish(&self.out, path, text, true, self.clock.now());
    }

    /// Serves what an earlier process saved: every merged playlist with
    /// its engine, every multivariant playlist. Pins of segments that are
    /// in no restored window expire after the grace period, as they would
    /// have had the process not stopped.
    async fn load(&mut self) {
        let Some(root) = state_root(&self.out.id) else {
            return;
        };
        let now = self.clock.instant();
        let wall = self.clock.now();
        for key in walk(self.store.as_ref(), &root).await {
            let Some(path) = key
                .strip_prefix(&root)
                .and_then(|rel| rel.to_url_path().strip_suffix(".json").map(str::to_owned))
                .and_then(|rel| ObjectPath::from_url_path(&rel).ok())
            else {
                continue;
            };
            let bytes = match super::read_small(self.store.as_ref(), &key).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(channel = %self.out.id, key = %key, reason = %e.reason, "cannot read a saved output playlist");
                    continue;
                }
            };
            match serde_json::from_slice::<SavedPlaylist>(&bytes) {
                Ok(SavedPlaylist::Media { merge }) => {
                    match RenditionMerge::restore(self.cfg.clone(), &merge, now) {
                        Ok(m) => {
                            let r = Rendition::new(m, path.clone());
                            publish_media(&self.out, &r, wall);
                            if let Some(a) = r.merge.active() {
                                self.out.set_active(a);
                            }
                            self.renditions.insert(path, r);
                        }
                        Err(e) => {
                            // Players must still never see the numbering go
                            // back: continue it, after a discontinuity.
                            tracing::error!(channel = %self.out.id, rendition = %path, error = %e, "saved output state not restored; the output continues its numbering after a discontinuity");
                            let mut m = RenditionMerge::new(self.cfg.clone());
                            let pending =
                                merge.segments.iter().filter(|s| s.discontinuity).count() as u64;
                            m.resume(
                                merge.next_media_sequence,
                                merge.discontinuity_sequence.saturating_add(pending),
                            );
                            self.renditions
                                .insert(path.clone(), Rendition::new(m, path));
                        }
                    }
                }
                Ok(SavedPlaylist::Multivariant { text, pipeline }) => {
                    let p = if pipeline == 1 {
                        Pipeline::P1
                    } else {
                        Pipeline::P0
                    };
                    self.multivariants.insert(path.clone(), p);
                    publish(&self.out, &path, text, true, wall);
                }
                Err(e) => match serde_json::from_slice::<LegacyResumePoint>(&bytes) {
                    Ok(rp) => {
                        let mut m = RenditionMerge::new(self.cfg.clone());
                        m.resume(rp.next_media_sequence, rp.discontinuity_sequence);
                        self.renditions
                            .insert(path.clone(), Rendition::new(m, path));
                    }
                    Err(_) => {
                        tracing::error!(channel = %self.out.id, key = %key, error = %e, "saved output playlist unreadable; ignored");
                    }
                },
            }
        }
        let out_root = output_root(&self.out.id);
        let mut live = std::collections::HashSet::new();
        for r in self.renditions.values() {
            for s in r.merge.segments() {
                if let Some(pin) = r.pin_path(s) {
                    let pinned = out_root.join_path(&pin);
                    self.cache_pinned(&pinned).await;
                    if let Some(dir) = pinned.parent() {
                        live.insert(dir);
                    }
                }
            }
        }
        let mut stale = std::collections::BTreeSet::new();
        for key in walk(self.store.as_ref(), &out_root).await {
            if let Some(dir) = key.parent().filter(|d| !live.contains(d)) {
                stale.insert(dir);
            }
        }
        let at = now + self.grace;
        self.expiries.extend(stale.into_iter().map(|dir| (at, dir)));
        // A reset the CLI left while no server ran.
        if reset::requested(self.store.as_ref(), &self.out.id).await {
            let bases = Box::pin(self.reset()).await;
            tracing::info!(channel = %self.out.id, renditions = bases.len(), "output reset as requested while the server was stopped");
            if let Some(key) = reset::request_key(&self.out.id) {
                match self.store.delete(&key).await {
                    Ok(()) | Err(StoreError::NotFound(_)) => {}
                    Err(e) => {
                        tracing::error!(channel = %self.out.id, error = %e, "cannot remove the reset request: the output resets again at the next start")
                    }
                }
            }
        }
        if !self.renditions.is_empty() || !self.multivariants.is_empty() {
            tracing::info!(channel = %self.out.id, renditions = self.renditions.len(), multivariant = self.multivariants.len(), "output continued from its saved state");
        }
    }

    /// Starts every merged playlist of the channel afresh (see
    /// [`reset`](super::reset)): each is saved and served at once, empty at
    /// its new base; the old pins expire after the grace period.
    async fn reset(&mut self) -> Vec<ResetRendition> {
        let now = self.clock.instant();
        let base = reset::base_at(self.clock.now());
        let mut keys: Vec<ObjectPath> = self.renditions.keys().cloned().collect();
        keys.sort();
        let mut bases = Vec::with_capacity(keys.len());
        for k in keys {
            let Some(r) = self.renditions.get_mut(&k) else {
                continue;
            };
            let events = r.merge.reset(now, base);
            let next = events.iter().find_map(|e| match e {
                Event::Reset { media_sequence, .. } => Some(*media_sequence),
                _ => None,
            });
            Box::pin(self.apply(&k, events)).await;
            if let Some(media_sequence) = next {
                bases.push(ResetRendition {
                    rendition: k.to_string(),
                    media_sequence,
                });
            }
        }
        bases
    }

    /// Keeps a freshly pinned segment in memory for playback.
    async fn cache_pinned(&self, key: &ObjectPath) {
        use futures_util::TryStreamExt;
        let Ok((meta, stream)) = self.store.get(key, None).await else {
            return;
        };
        if let Ok(chunks) = stream.try_collect::<Vec<Bytes>>().await {
            self.cache
                .insert(key.clone(), Bytes::from(chunks.concat()), meta);
        }
    }

    /// Writes a playlist's state, atomically replacing the previous one.
    async fn save(&self, path: &ObjectPath, state: &SavedPlaylist) {
        if let Some(key) = state_key(&self.out.id, path) {
            let what = format!("rendition {path}");
            super::save_state(self.store.as_ref(), &self.out.id, &key, &what, state).await;
        }
    }
}

/// Renders a rendition's merged playlist and serves it.
fn publish_media(out: &ChannelOutput, r: &Rendition, now: SystemTime) {
    let rendered = r.merge.playlist(|s| {
        r.pin_path(s)
            .and_then(|p| p.strip_prefix(&r.dir))
            .map(|p| p.to_url_path())
            .unwrap_or_default()
    });
    if let Some(pl) = rendered {
        publish(out, &r.path, pl.serialize(), false, now);
    }
}

/// Serves a playlist's text at `path` under the output, with what it
/// refers to (init sections, keys, other playlists).
fn publish(
    out: &ChannelOutput,
    path: &ObjectPath,
    text: String,
    multivariant: bool,
    now: SystemTime,
) {
    let dir = path.parent().unwrap_or_default();
    let refs = referenced_uris(&text, multivariant)
        .into_iter()
        .filter_map(|u| resolve(&dir, u))
        .collect();
    let text = Bytes::from(text);
    let etag = tandem_store::etag_for(text.len() as u64, now);
    out.serve_playlist(
        path.clone(),
        Rendered {
            text,
            etag,
            modified: now,
        },
        refs,
    );
}

/// Every object below `root`, depth first, at most 100,000.
pub(super) async fn walk(store: &dyn Store, root: &ObjectPath) -> Vec<ObjectPath> {
    const MAX: usize = 100_000;
    let mut found = Vec::new();
    let mut todo = vec![root.clone()];
    while let Some(dir) = todo.pop() {
        let entries = match store.list(&dir).await {
            Ok(e) => e,
            Err(StoreError::NotFound(_)) => continue,
            Err(e) => {
                tracing::warn!(key = %dir, error = %e, "cannot list");
                continue;
            }
        };
        for (name, entry) in entries {
            let Ok(key) = dir.join(&name) else { continue };
            match entry {
                Entry::Object(_) if found.len() < MAX => found.push(key),
                Entry::Object(_) => return found,
                Entry::Collection { .. } => todo.push(key),
            }
        }
    }
    found
}

fn record(
    out: &ChannelOutput,
    time: SystemTime,
    rendition: &str,
    kind: &'static str,
    fill: impl FnOnce(&mut EventRecord),
) {
    let mut e = EventRecord::new(time, rendition, kind);
    fill(&mut e);
    out.timeline
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .note(time, &e);
    super::log_event(out, e);
}

#[cfg(test)]
mod tests {
    use super::resolve;
    use tandem_core::ObjectPath;

    #[test]
    fn segment_uris_resolve_against_the_playlist_directory() {
        let dir = ObjectPath::from_url_path("live").unwrap();
        assert_eq!(
            resolve(&dir, "a.ts").map(|p| p.to_string()).as_deref(),
            Some("live/a.ts")
        );
        assert_eq!(
            resolve(&dir, "../x/a.ts?t=1")
                .map(|p| p.to_string())
                .as_deref(),
            Some("x/a.ts")
        );
        assert_eq!(resolve(&dir, "../../a.ts"), None);
        assert_eq!(resolve(&dir, "http://cdn/a.ts"), None);
        assert_eq!(resolve(&dir, "/abs/a.ts"), None);
    }
}
