//! The per-channel Smooth driver: one [`SmoothMerge`] per publishing point,
//! fed by the channel's Smooth pushes, its timers fired on the injected
//! clock, its decisions carried out (serve a fragment, drop a duplicate's
//! copy, expire what left the window, record an event).
//!
//! As for HLS, every decision is the engine's. Notices are taken in
//! batches (what arrived while the last batch was handled): each touched
//! point's state is saved durably, then its manifest rendered and served,
//! so a restart continues every output a client has seen.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use metrics::{counter, gauge, histogram};
use tandem_core::{InputState, ObjectPath, Pipeline};
use tandem_smooth::{Event, SavedSmooth, SmoothConfig, SmoothMerge, TrackKey};
use tandem_store::{Store, StoreError};
use tokio::sync::{mpsc, watch};

use super::{FragmentKey, Manifest, PointStatus, SmoothDetail};
use crate::Clock;
use crate::notice::SmoothNotice;
use crate::output::{ChannelOutput, EventRecord, state_name};

/// Notices handled before the state is saved and the manifests rendered.
const BATCH: usize = 256;

/// Everything a channel's Smooth driver is given.
pub struct SmoothDriverParts {
    pub out: Arc<ChannelOutput>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub cfg: SmoothConfig,
    /// How long a fragment stays answerable after it left the window.
    pub grace: Duration,
    pub rx: mpsc::UnboundedReceiver<SmoothNotice>,
    pub loaded: watch::Sender<bool>,
    pub stopped: tokio::sync::oneshot::Receiver<()>,
}

struct Driver {
    out: Arc<ChannelOutput>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    cfg: SmoothConfig,
    grace: Duration,
    points: BTreeMap<String, SmoothMerge>,
    /// Fragments to forget and delete, in deadline order.
    expiries: VecDeque<(Instant, String, FragmentKey, ObjectPath)>,
}

/// `{channel}/smooth-state`: every saved publishing point of a channel.
fn state_root(out: &ChannelOutput) -> Option<ObjectPath> {
    ObjectPath::from_segments([out.id.as_str(), "smooth-state"]).ok()
}

/// A store key as the ingest gave it.
fn key_of(storage_key: &str) -> Option<ObjectPath> {
    ObjectPath::from_segments(storage_key.split('/')).ok()
}

fn fkey(t: &TrackKey, time: u64) -> FragmentKey {
    (t.bitrate, t.name.clone(), time)
}

/// Runs a channel's publishing points until the channel is deleted.
pub async fn run(parts: SmoothDriverParts) {
    let SmoothDriverParts {
        out,
        store,
        clock,
        cfg,
        grace,
        mut rx,
        loaded,
        mut stopped,
    } = parts;
    let mut d = Driver {
        out,
        store,
        clock,
        cfg,
        grace,
        points: BTreeMap::new(),
        expiries: VecDeque::new(),
    };
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
            msg = rx.recv() => match msg {
                Some(n) => {
                    let mut batch = vec![n];
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(n) => batch.push(n),
                            Err(_) => break,
                        }
                    }
                    Box::pin(d.on_notices(batch)).await;
                }
                None => break,
            },
            () = sleep => Box::pin(d.on_tick()).await,
            _ = &mut stopped => break,
        }
    }
    tracing::debug!(channel = %d.out.id, "smooth driver stopped");
}

impl Driver {
    fn next_deadline(&self) -> Option<Instant> {
        self.points
            .values()
            .filter_map(SmoothMerge::next_deadline)
            .chain(self.expiries.front().map(|(t, ..)| *t))
            .min()
    }

    /// `LookAheadFragmentCount`: the `tfrf` entries a served fragment gets.
    fn look_ahead(&self) -> usize {
        usize::try_from(self.cfg.manifest.look_ahead_fragment_count).unwrap_or(usize::MAX)
    }

    fn point(&mut self, name: &str) -> &mut SmoothMerge {
        self.points
            .entry(name.to_owned())
            .or_insert_with(|| SmoothMerge::new(self.cfg.clone()))
    }

    async fn on_notices(&mut self, batch: Vec<SmoothNotice>) {
        let now = self.clock.instant();
        let mut touched = BTreeSet::new();
        let mut published = Vec::new();
        for n in batch {
            match n {
                SmoothNotice::Started {
                    point,
                    start,
                    reply,
                } => {
                    let answer = self.point(&point).on_stream_started(now, &start);
                    let answer = match answer {
                        Ok(ev) => {
                            Box::pin(self.apply(&point, ev)).await;
                            touched.insert(point);
                            Ok(())
                        }
                        Err(e) => {
                            tracing::warn!(channel = %self.out.id, point, pipeline = %start.pipeline, stream = start.stream, error = %e, "smooth push refused");
                            Err(e)
                        }
                    };
                    // A push that gave up waiting needs no answer.
                    let _ = reply.send(answer);
                }
                SmoothNotice::Fragment {
                    point,
                    fragment,
                    at,
                } => {
                    counter!("tandem_smooth_fragments_received_total", "channel" => self.out.id.to_string(), "point" => point.clone(), "pipeline" => fragment.pipeline.to_string()).increment(1);
                    let ev = self.point(&point).on_fragment(now, fragment);
                    Box::pin(self.apply(&point, ev)).await;
                    touched.insert(point);
                    published.push(at);
                }
                SmoothNotice::Ended {
                    point,
                    pipeline,
                    stream,
                    how,
                } => {
                    let ev = self
                        .point(&point)
                        .on_stream_ended(now, pipeline, &stream, how);
                    Box::pin(self.apply(&point, ev)).await;
                    touched.insert(point);
                }
                SmoothNotice::Dropped {
                    point,
                    pipeline,
                    stream,
                } => {
                    let ev = self
                        .point(&point)
                        .on_connection_dropped(now, pipeline, &stream);
                    Box::pin(self.apply(&point, ev)).await;
                    touched.insert(point);
                }
            }
        }
        for p in touched {
            Box::pin(self.publish(&p)).await;
        }
        for at in published {
            // From the fragment's last byte arriving on input (its store
            // write included) to the manifest that names it being served.
            histogram!("tandem_smooth_publish_delay_seconds", "channel" => self.out.id.to_string())
                .record(at.elapsed().as_secs_f64());
        }
    }

    async fn on_tick(&mut self) {
        let now = self.clock.instant();
        while let Some((t, ..)) = self.expiries.front() {
            if *t > now {
                break;
            }
            let Some((_, point, fk, key)) = self.expiries.pop_front() else {
                break;
            };
            self.out.smooth.with_point(&point, |v| {
                // Unless the time was served again since (a new presentation).
                if v.fragments.get(&fk).map(|s| &s.key) == Some(&key) {
                    v.fragments.remove(&fk);
                }
            });
            self.delete(&key).await;
        }
        let due: Vec<String> = self
            .points
            .iter()
            .filter(|(_, m)| m.next_deadline().is_some_and(|d| d <= now))
            .map(|(n, _)| n.clone())
            .collect();
        for p in due {
            let ev = self.point(&p).on_tick(now);
            if !ev.is_empty() {
                Box::pin(self.apply(&p, ev)).await;
                Box::pin(self.publish(&p)).await;
            }
        }
    }

    async fn delete(&self, key: &ObjectPath) {
        match self.store.delete(key).await {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(e) => tracing::warn!(key = %key, error = %e, "cannot remove a smooth fragment"),
        }
    }

    /// Carries out a point's events.
    async fn apply(&mut self, point: &str, events: Vec<Event>) {
        let id = self.out.id.to_string();
        let rendition = format!("{point}.isml");
        let wall = self.clock.now();
        let status = self.status(point);
        self.out.smooth.ensure(point, status);
        for ev in events {
            match ev {
                Event::FragmentAdded {
                    track,
                    time,
                    duration,
                    storage_key,
                    ..
                } => {
                    if let Some(k) = key_of(&storage_key) {
                        let look_ahead = self.look_ahead();
                        self.out.smooth.with_point(point, |v| {
                            v.add(fkey(&track, time), duration, k, look_ahead);
                        });
                    }
                }
                Event::Duplicate {
                    storage_key, kept, ..
                } => {
                    counter!("tandem_smooth_duplicates_total", "channel" => id.clone(), "point" => point.to_owned()).increment(1);
                    // The copy not served is never named: it goes now.
                    if storage_key != kept
                        && let Some(k) = key_of(&storage_key)
                    {
                        self.delete(&k).await;
                    }
                }
                Event::Filled {
                    track, time, from, ..
                } => {
                    counter!("tandem_smooth_fills_total", "channel" => id.clone(), "point" => point.to_owned()).increment(1);
                    tracing::info!(channel = %id, point, track = %track, time, from = %from, "fragment filled from one pipeline");
                    record(&self.out, wall, &rendition, "fragment_filled", |e, d| {
                        e.pipeline = Some(from.index());
                        d.track = Some(track.to_string());
                        d.time = Some(time);
                    });
                }
                Event::Gap {
                    track, from, to, ..
                } => {
                    counter!("tandem_smooth_gaps_total", "channel" => id.clone(), "point" => point.to_owned()).increment(1);
                    tracing::error!(channel = %id, point, track = %track, from, to, "fragments missing from both pipelines");
                    record(&self.out, wall, &rendition, "gap", |_, d| {
                        d.track = Some(track.to_string());
                        d.time = Some(from);
                        d.until = Some(to);
                    });
                }
                Event::Restarted {
                    pipeline,
                    track,
                    time,
                    last,
                    ..
                } => {
                    counter!("tandem_smooth_restarts_total", "channel" => id.clone(), "point" => point.to_owned()).increment(1);
                    tracing::warn!(channel = %id, point, pipeline = %pipeline, track = %track, time, last, "encoder restarted behind the output");
                    record(&self.out, wall, &rendition, "input_restarted", |e, d| {
                        e.pipeline = Some(pipeline.index());
                        d.track = Some(track.to_string());
                        d.time = Some(time);
                        d.until = Some(last);
                    });
                }
                Event::Rejected {
                    pipeline,
                    track,
                    time,
                    storage_key,
                    reason,
                    ..
                } => {
                    counter!("tandem_smooth_rejected_total", "channel" => id.clone(), "point" => point.to_owned(), "reason" => reason.as_str()).increment(1);
                    tracing::info!(channel = %id, point, pipeline = %pipeline, track = %track, time, reason = reason.as_str(), "fragment not served");
                    if let Some(k) = key_of(&storage_key) {
                        self.delete(&k).await;
                    }
                }
                Event::FragmentRemoved {
                    track,
                    time,
                    storage_key,
                    ..
                } => {
                    if let Some(k) = key_of(&storage_key) {
                        let at = self.clock.instant() + self.grace;
                        self.expiries
                            .push_back((at, point.to_owned(), fkey(&track, time), k));
                    }
                }
                Event::InputStateChanged {
                    pipeline,
                    from,
                    to,
                    inputs,
                    ..
                } => {
                    gauge!("tandem_smooth_input_up", "channel" => id.clone(), "point" => point.to_owned(), "pipeline" => pipeline.to_string())
                        .set(if to == InputState::Receiving { 1.0 } else { 0.0 });
                    tracing::info!(channel = %id, point, pipeline = %pipeline, ?from, ?to, "smooth input state changed");
                    let kind = match (from, to) {
                        (_, InputState::Lost) => "input_lost",
                        (InputState::Lost, InputState::Receiving) => "input_restored",
                        _ => "input_state",
                    };
                    record(&self.out, wall, &rendition, kind, |e, _| {
                        e.pipeline = Some(pipeline.index());
                        e.from = Some(state_name(from).to_owned());
                        e.to = Some(state_name(to).to_owned());
                        e.inputs = Some(inputs);
                    });
                }
                Event::NewPresentation { event, .. } => {
                    self.out.smooth.with_point(point, |v| v.close_look_ahead());
                    tracing::info!(channel = %id, point, ?event, "new presentation");
                    record(&self.out, wall, &rendition, "new_presentation", |e, _| {
                        e.to = event;
                    });
                }
                Event::StreamEnded {
                    pipeline,
                    stream,
                    how,
                    ..
                } => {
                    record(&self.out, wall, &rendition, "stream_ended", |e, d| {
                        e.pipeline = Some(pipeline.index());
                        e.reason = Some(how.as_str());
                        d.stream = Some(stream);
                    });
                }
                Event::Ended { .. } => {
                    self.out.smooth.with_point(point, |v| v.close_look_ahead());
                    tracing::info!(channel = %id, point, "smooth output ended");
                    record(&self.out, wall, &rendition, "ended", |_, _| {});
                }
            }
        }
    }

    fn status(&self, point: &str) -> PointStatus {
        let (tracks, inputs, ended, event, counters) = match self.points.get(point) {
            Some(m) => (
                m.tracks().count(),
                m.input_states(),
                m.is_ended(),
                m.presentation().1.map(str::to_owned),
                m.counters(),
            ),
            None => (0, [InputState::Idle; 2], false, None, Default::default()),
        };
        PointStatus {
            name: point.to_owned(),
            manifest: format!("/out/{}/{point}.isml/Manifest", self.out.id),
            inputs,
            ended,
            event,
            tracks,
            counters,
        }
    }

    /// Saves a point's state, then serves its manifest.
    async fn publish(&mut self, point: &str) {
        let Some(m) = self.points.get(point) else {
            return;
        };
        let saved = m.save();
        let text = m.client_manifest();
        Box::pin(self.save(point, &saved)).await;
        let status = self.status(point);
        let now = self.clock.now();
        let manifest = text.map(|t| {
            let text = Bytes::from(t);
            Arc::new(Manifest {
                etag: tandem_store::etag_for(text.len() as u64, now),
                text,
                modified: now,
            })
        });
        self.out.smooth.ensure(point, status.clone());
        self.out.smooth.with_point(point, |v| {
            v.manifest = manifest;
            v.status = status;
        });
    }

    async fn save(&self, point: &str, saved: &SavedSmooth) {
        if let Some(key) = state_root(&self.out).and_then(|r| r.join(&format!("{point}.json")).ok())
        {
            let what = format!("publishing point {point}");
            crate::output::save_state(self.store.as_ref(), &self.out.id, &key, &what, saved).await;
        }
    }

    /// Continues every publishing point an earlier process saved. Stored
    /// fragments that no restored output names or waits for are removed
    /// after the grace period, as they would have been.
    async fn load(&mut self) {
        let Some(root) = state_root(&self.out) else {
            return;
        };
        let entries = match self.store.list(&root).await {
            Ok(e) => e,
            Err(StoreError::NotFound(_)) => return,
            Err(e) => {
                tracing::error!(channel = %self.out.id, error = %e, "cannot list the saved publishing points");
                return;
            }
        };
        let now = self.clock.instant();
        for (file, _) in entries {
            let Some(point) = file.strip_suffix(".json").map(str::to_owned) else {
                continue;
            };
            let Ok(key) = root.join(&file) else { continue };
            let bytes = match crate::output::read_small(self.store.as_ref(), &key).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(channel = %self.out.id, point, reason = %e.reason, "cannot read a saved publishing point");
                    continue;
                }
            };
            let restored = serde_json::from_slice::<SavedSmooth>(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|s| {
                    SmoothMerge::restore(self.cfg.clone(), &s, now).map_err(|e| e.to_string())
                });
            match restored {
                Ok(m) => {
                    self.points.insert(point.clone(), m);
                    self.out.smooth.ensure(&point, self.status(&point));
                    self.serve_window(&point);
                    Box::pin(self.publish(&point)).await;
                    Box::pin(self.expire_unnamed(&point, now)).await;
                    tracing::info!(channel = %self.out.id, point, "publishing point continued from its saved state");
                }
                Err(e) => {
                    tracing::error!(channel = %self.out.id, point, error = %e, "saved publishing point not restored; it starts empty");
                }
            }
        }
    }

    /// Makes every fragment of a restored window answerable.
    fn serve_window(&self, point: &str) {
        let Some(m) = self.points.get(point) else {
            return;
        };
        let mut map = Vec::new();
        for t in m.tracks() {
            let tk = t.key();
            for f in m.timeline(&tk) {
                if let Some(k) = key_of(&f.storage_key) {
                    map.push((fkey(&tk, f.time), f.duration, k));
                }
            }
        }
        let (look_ahead, ended) = (self.look_ahead(), m.is_ended());
        self.out.smooth.with_point(point, |v| {
            for (fk, duration, k) in map {
                v.add(fk, duration, k, look_ahead);
            }
            if ended {
                v.close_look_ahead();
            }
        });
    }

    /// Schedules the removal of this point's stored fragments that its
    /// restored state neither serves nor waits for.
    async fn expire_unnamed(&mut self, point: &str, now: Instant) {
        let Some(m) = self.points.get(point) else {
            return;
        };
        let saved = m.save();
        let named: HashSet<&str> = saved
            .timelines
            .iter()
            .flat_map(|t| t.fragments.iter().chain(t.pending.iter()))
            .map(|f| f.storage_key.as_str())
            .collect();
        let mut stale = Vec::new();
        for p in Pipeline::BOTH {
            let Ok(dir) = self.out.root(p).join(&format!("{point}.isml")) else {
                continue;
            };
            for key in super::super::driver::walk(self.store.as_ref(), &dir).await {
                if !named.contains(key.to_string().as_str()) {
                    stale.push(key);
                }
            }
        }
        let at = now + self.grace;
        for key in stale {
            // Not answerable: the key is a time no client is given.
            self.expiries
                .push_back((at, point.to_owned(), (0, String::new(), 0), key));
        }
    }
}

/// Logs an event of a publishing point: the channel's event list and the
/// server-wide bus (webhooks, the status page).
fn record(
    out: &ChannelOutput,
    time: std::time::SystemTime,
    rendition: &str,
    kind: &'static str,
    fill: impl FnOnce(&mut EventRecord, &mut SmoothDetail),
) {
    let mut e = EventRecord::new(time, rendition, kind);
    let mut d = SmoothDetail::default();
    fill(&mut e, &mut d);
    if d != SmoothDetail::default() {
        e.smooth = Some(d);
    }
    crate::output::log_event(out, e);
}
