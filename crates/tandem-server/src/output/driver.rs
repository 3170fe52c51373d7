//! The per-channel driver: owns one merge engine per rendition, feeds it
//! what ingest published, fires its timers, and carries out its decisions
//! (pin a segment, render a playlist, expire a pin, record an event).
//!
//! All failover decisions are the engine's; this task only holds the clock
//! and does the IO. A segment is pinned before the playlist naming it is
//! rendered, so no served playlist names an object that is not complete.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use metrics::{counter, histogram};
use tandem_core::{ChannelId, ObjectPath, Pipeline};
use tandem_hls::merge::{Event, OutSeg};
use tandem_hls::{MergeConfig, RenditionMerge, is_multivariant, parse_media};
use tandem_store::{Entry, Store, StoreError};
use tokio::sync::mpsc;

use super::{ChannelOutput, EVENT_LOG, EventRecord, Notice, Rendered, output_root};

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

/// Where a rendition's resume point is kept: `{channel}/state/{path}.json`.
fn state_key(channel: &ChannelId, rendition: &ObjectPath) -> Option<ObjectPath> {
    let mut segs = vec![channel.to_string(), "state".to_owned()];
    segs.extend(rendition.segments().iter().cloned());
    let last = segs.pop()?;
    segs.push(format!("{last}.json"));
    ObjectPath::from_segments(segs).ok()
}

/// A rendition's resume point, as stored.
#[derive(serde::Serialize, serde::Deserialize)]
struct ResumePoint {
    next_media_sequence: u64,
    discontinuity_sequence: u64,
}

/// Resolves a playlist URI against the playlist's directory. Absolute URLs
/// and absolute paths are not resolved (the engine then never sees them
/// complete): ingest stores only relative layouts.
fn resolve(dir: &ObjectPath, uri: &str) -> Option<ObjectPath> {
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
    cfg: MergeConfig,
    grace: Duration,
    renditions: HashMap<ObjectPath, Rendition>,
    /// Pins to delete, in deadline order.
    expiries: VecDeque<(Instant, ObjectPath)>,
}

/// Runs a channel's output until the channel is deleted.
pub async fn run(
    out: Arc<ChannelOutput>,
    store: Arc<dyn Store>,
    cache: Arc<super::cache::SegmentCache>,
    cfg: MergeConfig,
    grace: Duration,
    mut rx: mpsc::UnboundedReceiver<Notice>,
) {
    // A new output life: pins of a previous process are not named by any
    // playlist this process will serve.
    match store.delete(&output_root(&out.id)).await {
        Ok(()) | Err(StoreError::NotFound(_)) => {}
        Err(e) => tracing::warn!(channel = %out.id, error = %e, "cannot clear the previous output"),
    }
    let mut d = Driver {
        out,
        store,
        cache,
        cfg,
        grace,
        renditions: HashMap::new(),
        expiries: VecDeque::new(),
    };
    loop {
        let deadline = d.next_deadline();
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
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
            () = sleep => Box::pin(d.on_tick()).await,
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
        engines.chain(self.expiries.front().map(|(t, _)| *t)).min()
    }

    async fn on_published(&mut self, p: Pipeline, path: &ObjectPath) {
        let now = Instant::now();
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
        let key = crate::ingest::input_root(&self.out.id, p).join_path(path);
        let text = match super::read_small(self.store.as_ref(), &key).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(channel = %self.out.id, pipeline = %p, path = %path, reason = %e.reason, "playlist unreadable");
                return;
            }
        };
        let text = String::from_utf8_lossy(&text);
        if is_multivariant(&text) {
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
            let mut merge = RenditionMerge::new(self.cfg.clone());
            // Continue the numbering of an output served before a restart,
            // so players never see the media sequence go back.
            if let Some(rp) = self.load_resume_point(path).await {
                merge.resume(rp.next_media_sequence, rp.discontinuity_sequence);
            }
            let name = path.file_name().unwrap_or_default();
            let stem = name.strip_suffix(".m3u8").unwrap_or(name).to_owned();
            let r = Rendition {
                merge,
                path: path.clone(),
                dir: path.parent().unwrap_or_default(),
                stem,
                caught_up: [false; 2],
            };
            self.renditions.insert(path.clone(), r);
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
            la[p.index()] = Some(SystemTime::now());
        }
        // Segments a pipeline stored before its first playlist reached this
        // rendition sent notices nobody matched: look them up once. Later
        // segments arrive as notices, which the engine keeps until a
        // playlist names them.
        let root = crate::ingest::input_root(&self.out.id, p);
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
        let now = Instant::now();
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
                    let from_key = crate::ingest::input_root(&id, *from).join_path(&src);
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
                        record(&self.out, &rendition, "segment_filled", |e| {
                            e.pipeline = Some(from.index());
                            e.media_sequence = Some(*media_sequence);
                            e.uri = Some(source_uri.clone());
                        });
                    }
                }
                Event::SegmentRemoved { media_sequence, .. } => {
                    if let Some(dir) = r.pin_dir(*media_sequence) {
                        self.expiries
                            .push_back((Instant::now() + self.grace, out_root.join_path(&dir)));
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
                    self.out.active.store(
                        u8::try_from(to.index()).unwrap_or(u8::MAX),
                        Ordering::Relaxed,
                    );
                    counter!("tandem_output_switches_total", "channel" => id.to_string(), "rendition" => rendition.clone(), "reason" => reason.as_str()).increment(1);
                    tracing::warn!(channel = %id, rendition, from = ?from.map(|p| p.index()), to = %to, reason = reason.as_str(), discontinuity, ?inputs, ?delay_ms, "output switched");
                    record(&self.out, &rendition, "switch", |e| {
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
                    record(&self.out, &rendition, "input_state", |e| {
                        e.pipeline = Some(pipeline.index());
                        e.from = Some(state_name(*from).to_owned());
                        e.to = Some(state_name(*to).to_owned());
                        e.inputs = Some(*inputs);
                    });
                }
                Event::InputRestarted {
                    pipeline,
                    media_sequence,
                    ..
                } => {
                    tracing::warn!(channel = %id, rendition, pipeline = %pipeline, media_sequence, "encoder restarted");
                    record(&self.out, &rendition, "input_restarted", |e| {
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
                    record(&self.out, &rendition, "segment_missing", |e| {
                        e.pipeline = Some(pipeline.index());
                        e.uri = Some(source_uri.clone());
                    });
                }
                Event::Ended { .. } => {
                    tracing::info!(channel = %id, rendition, "output ended");
                    record(&self.out, &rendition, "ended", |_| {});
                }
            }
        }
        if events
            .iter()
            .any(|e| matches!(e, Event::SegmentAdded { .. }))
        {
            self.save_resume_point(r).await;
        }
        let rendered = r.merge.playlist(|s| {
            r.pin_path(s)
                .and_then(|p| p.strip_prefix(&r.dir))
                .map(|p| p.to_url_path())
                .unwrap_or_default()
        });
        if let Some(pl) = rendered {
            let text = Bytes::from(pl.serialize());
            let modified = SystemTime::now();
            let etag = tandem_store::etag_for(text.len() as u64, modified);
            let mut map = self
                .out
                .playlists
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.insert(
                r.path.clone(),
                Arc::new(Rendered {
                    text,
                    etag,
                    modified,
                }),
            );
        }
    }
}

impl Driver {
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

    async fn load_resume_point(&self, rendition: &ObjectPath) -> Option<ResumePoint> {
        let key = state_key(&self.out.id, rendition)?;
        let bytes = super::read_small(self.store.as_ref(), &key).await.ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    async fn save_resume_point(&self, r: &Rendition) {
        let Some(key) = state_key(&self.out.id, &r.path) else {
            return;
        };
        let (next_media_sequence, discontinuity_sequence) = r.merge.resume_point();
        let Ok(json) = serde_json::to_vec(&ResumePoint {
            next_media_sequence,
            discontinuity_sequence,
        }) else {
            return;
        };
        let result = async {
            let mut w = self
                .store
                .begin_put(&key, tandem_store::Parents::Create)
                .await?;
            w.write(Bytes::from(json)).await?;
            w.commit().await
        };
        if let Err(e) = result.await {
            tracing::warn!(channel = %self.out.id, rendition = %r.path, error = %e, "cannot save the output's resume point");
        }
    }
}

fn state_name(s: tandem_core::InputState) -> &'static str {
    match s {
        tandem_core::InputState::Idle => "idle",
        tandem_core::InputState::Receiving => "receiving",
        tandem_core::InputState::Lost => "lost",
    }
}

fn record(
    out: &ChannelOutput,
    rendition: &str,
    kind: &'static str,
    fill: impl FnOnce(&mut EventRecord),
) {
    let mut e = EventRecord {
        time: crate::util::rfc3339_millis(SystemTime::now()),
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
    };
    fill(&mut e);
    let mut log = out
        .events
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if log.len() >= EVENT_LOG {
        log.pop_front();
    }
    log.push_back(e);
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
