//! Retention: removes a channel's input objects once nothing needs them,
//! whether or not the encoder DELETEs them. ffmpeg does not unless told
//! to, Akamai-style encoders expect DELETE to be ignored, and a live input
//! that is never cleaned up fills any disk.
//!
//! The channel's driver runs it: it tells retention what was published and
//! what the output window names, and calls [`Retention::step`] when
//! [`Retention::next_deadline`] is due, on the driver's injected clock. The
//! rule itself (what may go, and when) is the [`ledger`]'s; this module
//! does the IO: it reads the input playlists to learn what they name, walks
//! both inputs' objects, removes what the ledger says may go, and measures
//! what is stored.
//!
//! Bounded work: a step lists at most [`STEP_LISTS`] directories, reads at
//! most [`STEP_READS`] playlists and judges at most [`STEP_OBJECTS`]
//! objects, then hands the driver back; a walk of a large input is spread
//! over many steps (run back to back, between the driver's other work),
//! and a new walk starts [`SWEEP_EVERY`] after the last one ended. Until
//! one whole walk since the start has found every playlist, and while a
//! playlist that changed has not been read yet, nothing is removed: what a
//! playlist names is never taken for unnamed.
//!
//! Objects in a container or bucket bound to the channel are removed only
//! once a playlist named them: such a container may also hold files that
//! are not HLS (archives), which are not retention's to judge. An object
//! removed from a container or bucket takes its metadata record with it.

pub mod ledger;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use metrics::{counter, gauge};
use tandem_core::{ObjectPath, Pipeline};
use tandem_store::{Entry, ObjectMeta, Store, StoreError};

pub use ledger::{Identity, Ledger, Rules, Verdict, is_playlist};

use super::ChannelOutput;

/// A new walk of the inputs starts this long after the previous one
/// ended: removal happens within this of its due time.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Objects judged per step.
pub const STEP_OBJECTS: usize = 1000;
/// Directories listed per step.
pub const STEP_LISTS: usize = 16;
/// Input playlists read per step.
pub const STEP_READS: usize = 32;

/// How long a channel's input objects stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// After an object left every input playlist and the output window.
    pub after_window: Duration,
    /// Per pipeline, the age of an object no playlist ever named; `None`
    /// (a bound container or bucket): such objects stay.
    pub unnamed: [Option<Duration>; 2],
    /// The channel's input history: nothing goes younger than this.
    pub keep_for: Option<Duration>,
}

/// What retention shows of a channel, shared with the API and metrics,
/// and the channel's input history setting, which can change while the
/// channel runs.
#[derive(Debug, Default)]
pub struct Status {
    stored: [AtomicU64; 2],
    measured: AtomicBool,
    walks: AtomicU64,
    /// When the last whole walk began.
    last_walk: std::sync::Mutex<Option<Instant>>,
    /// Seconds; 0: none.
    keep_for_secs: AtomicU64,
}

impl Status {
    /// Bytes stored per pipeline's input, as the last whole walk found
    /// them; `None` before the first walk ended.
    pub fn stored_bytes(&self) -> Option<[u64; 2]> {
        self.measured
            .load(Ordering::Acquire)
            .then(|| self.stored.each_ref().map(|b| b.load(Ordering::Relaxed)))
    }

    /// Whole walks of the inputs since the channel started.
    pub fn walks(&self) -> u64 {
        self.walks.load(Ordering::Acquire)
    }

    /// When the last whole walk began (on the driver's clock): every
    /// object it found was judged at that instant or later.
    pub fn last_walk(&self) -> Option<Instant> {
        *self
            .last_walk
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The channel's input history.
    pub fn keep_for(&self) -> Option<Duration> {
        match self.keep_for_secs.load(Ordering::Relaxed) {
            0 => None,
            s => Some(Duration::from_secs(s)),
        }
    }

    /// Changes the channel's input history from the next step on.
    pub fn set_keep_for(&self, keep_for: Option<Duration>) {
        self.keep_for_secs
            .store(keep_for.map_or(0, |d| d.as_secs()), Ordering::Relaxed);
    }
}

/// One walk over both inputs, in progress.
#[derive(Default)]
struct Walk {
    running: bool,
    began: Option<Instant>,
    dirs: Vec<(Pipeline, ObjectPath)>,
    objects: VecDeque<(Pipeline, ObjectPath, ObjectMeta)>,
    /// Bytes kept so far, per pipeline.
    bytes: [u64; 2],
}

/// A playlist retention has read.
struct Named {
    uris: HashSet<ObjectPath>,
    /// The walk that last found or read it.
    walk: u64,
}

/// One channel's retention.
pub struct Retention {
    channel: String,
    roots: [ObjectPath; 2],
    settings: Settings,
    ledger: Ledger,
    playlists: HashMap<ObjectPath, Named>,
    /// Playlists published or found since they were last read.
    dirty: BTreeSet<ObjectPath>,
    walk: Walk,
    /// Walks begun since start.
    walk_no: u64,
    /// Whether a whole walk ended since the start.
    complete: bool,
    next: Instant,
}

impl Retention {
    /// Starts with a walk at `now`.
    pub fn new(channel: String, roots: [ObjectPath; 2], settings: Settings, now: Instant) -> Self {
        Self {
            channel,
            roots,
            settings,
            ledger: Ledger::default(),
            playlists: HashMap::new(),
            dirty: BTreeSet::new(),
            walk: Walk::default(),
            walk_no: 0,
            complete: false,
            next: now,
        }
    }

    /// When [`step`](Self::step) is next due.
    pub fn next_deadline(&self) -> Instant {
        self.next
    }

    /// Pipeline `p` published `path` (relative to its input root).
    pub fn on_published(&mut self, now: Instant, p: Pipeline, path: &ObjectPath) {
        let key = p.of(&self.roots).join_path(path);
        if is_playlist(&key) {
            self.dirty.insert(key.clone());
        }
        self.ledger.on_published(now, key);
    }

    /// One bounded step: reads changed playlists, takes what they and the
    /// output (`out_named`, store keys) name, and judges the next objects
    /// of the walk. `wall` is the clock's wall time, for objects that only
    /// their modification time dates.
    pub async fn step(
        &mut self,
        now: Instant,
        wall: SystemTime,
        store: &dyn Store,
        out_named: HashSet<ObjectPath>,
        status: &Status,
    ) {
        if now < self.next {
            return;
        }
        self.read_playlists(store).await;
        let mut named = out_named;
        for n in self.playlists.values() {
            named.extend(n.uris.iter().cloned());
        }
        self.ledger.on_named(now, named);
        if !self.walk.running {
            self.walk = Walk {
                running: true,
                began: Some(now),
                dirs: Pipeline::BOTH
                    .iter()
                    .rev()
                    .map(|&p| (p, p.of(&self.roots).clone()))
                    .collect(),
                ..Walk::default()
            };
            self.walk_no += 1;
        }
        let mut may_remove = self.complete && self.dirty.is_empty();
        let keep_for = status.keep_for();
        let rules = Pipeline::BOTH.map(|p| Rules {
            after_window: self.settings.after_window,
            unnamed: *p.of(&self.settings.unnamed),
            keep_for,
        });
        let (mut judged, mut listed) = (0, 0);
        while judged < STEP_OBJECTS {
            if let Some((p, key, meta)) = self.walk.objects.pop_front() {
                judged += 1;
                if is_playlist(&key) {
                    match self.playlists.get_mut(&key) {
                        Some(n) => n.walk = self.walk_no,
                        None => {
                            // Unknown until read: what it names must not
                            // be judged unnamed meanwhile.
                            self.dirty.insert(key.clone());
                            may_remove = false;
                        }
                    }
                }
                // Until a whole walk has ended, objects are dated by their
                // modification time (they are from before the start).
                let found = if self.complete {
                    now
                } else {
                    let age = wall.duration_since(meta.modified).unwrap_or_default();
                    now.checked_sub(age).unwrap_or(now)
                };
                // Which object of this name the listing shows: only one
                // its record has been about since an earlier walk may go
                // (a reused name's new upload may be listed before its
                // notice arrives).
                let identity = self.ledger.identify(now, &key, meta.modified);
                let verdict = self.ledger.judge(now, &key, found, p.of(&rules));
                if identity == Identity::FirstListed {
                    self.ledger.identify(now, &key, meta.modified);
                }
                if verdict == Verdict::Remove && may_remove && identity == Identity::Same {
                    if !self.remove(store, p, &key, meta.size).await {
                        self.walk.bytes[p.index()] += meta.size;
                    }
                } else {
                    self.walk.bytes[p.index()] += meta.size;
                }
                continue;
            }
            if listed >= STEP_LISTS {
                break;
            }
            let Some((p, dir)) = self.walk.dirs.pop() else {
                self.end_walk(status);
                break;
            };
            listed += 1;
            match store.list(&dir).await {
                Ok(entries) => {
                    for (name, entry) in entries {
                        let Ok(key) = dir.join(&name) else { continue };
                        match entry {
                            Entry::Object(meta) => self.walk.objects.push_back((p, key, meta)),
                            // A Smooth publishing point's fragments are its
                            // driver's to remove, when they leave its window.
                            Entry::Collection { .. }
                                if name.to_ascii_lowercase().ends_with(".isml") => {}
                            Entry::Collection { .. } => self.walk.dirs.push((p, key)),
                        }
                    }
                }
                Err(StoreError::NotFound(_)) => {}
                Err(e) => {
                    counter!("tandem_retention_errors_total", "channel" => self.channel.clone())
                        .increment(1);
                    tracing::warn!(channel = %self.channel, key = %dir, error = %e, "retention cannot list an input directory");
                }
            }
        }
        // An unfinished walk continues at once, after whatever else the
        // driver has to do.
        self.next = if self.walk.running {
            now
        } else {
            now + SWEEP_EVERY
        };
    }

    /// Removes one input object (and its metadata record, in a bound
    /// container or bucket); whether it is gone.
    async fn remove(
        &mut self,
        store: &dyn Store,
        p: Pipeline,
        key: &ObjectPath,
        size: u64,
    ) -> bool {
        match store.delete(key).await {
            Ok(()) => {}
            Err(StoreError::NotFound(_)) => {
                self.ledger.forget(key);
                return true;
            }
            Err(e) => {
                counter!("tandem_retention_errors_total", "channel" => self.channel.clone())
                    .increment(1);
                tracing::warn!(channel = %self.channel, key = %key, error = %e, "retention cannot remove an input object");
                return false;
            }
        }
        self.ledger.forget(key);
        let meta = crate::s3::TandemS3::metadata_key(key)
            .or_else(|| tandem_mediastore::MediaStore::metadata_key(key));
        if let Some(meta) = meta {
            match store.delete(&meta).await {
                Ok(()) | Err(StoreError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(channel = %self.channel, key = %meta, error = %e, "retention removed an object but not its metadata record");
                }
            }
        }
        let labels = [
            ("channel", self.channel.clone()),
            ("pipeline", p.to_string()),
        ];
        counter!("tandem_retention_removed_objects_total", &labels).increment(1);
        counter!("tandem_retention_removed_bytes_total", &labels).increment(size);
        tracing::debug!(channel = %self.channel, key = %key, "input object removed by retention");
        true
    }

    /// Reads (bounded) the playlists that changed: what each names.
    async fn read_playlists(&mut self, store: &dyn Store) {
        for _ in 0..STEP_READS {
            let Some(key) = self.dirty.pop_first() else {
                return;
            };
            match super::read_small(store, &key).await {
                Ok(text) => {
                    let dir = key.parent().unwrap_or_default();
                    let text = String::from_utf8_lossy(&text);
                    let uris = tandem_hls::referenced_uris(&text, true)
                        .into_iter()
                        .filter_map(|u| super::driver::resolve(&dir, u))
                        .collect();
                    self.playlists.insert(
                        key,
                        Named {
                            uris,
                            walk: self.walk_no,
                        },
                    );
                }
                Err(e) if e.status == http::StatusCode::NOT_FOUND => {
                    self.playlists.remove(&key);
                }
                Err(e) => {
                    // What it named before stays named.
                    counter!("tandem_retention_errors_total", "channel" => self.channel.clone())
                        .increment(1);
                    tracing::warn!(channel = %self.channel, key = %key, reason = %e.reason, "retention cannot read an input playlist");
                    if let Some(n) = self.playlists.get_mut(&key) {
                        n.walk = self.walk_no;
                    }
                }
            }
        }
    }

    /// A walk ended: publishes what is stored, forgets what is gone.
    fn end_walk(&mut self, status: &Status) {
        self.walk.running = false;
        self.complete = true;
        self.ledger.end_pass();
        let walk = self.walk_no;
        self.playlists.retain(|_, n| n.walk == walk);
        for p in Pipeline::BOTH {
            let bytes = self.walk.bytes[p.index()];
            status.stored[p.index()].store(bytes, Ordering::Relaxed);
            gauge!("tandem_channel_stored_bytes", "channel" => self.channel.clone(), "pipeline" => p.to_string())
                .set(bytes as f64);
        }
        *status
            .last_walk
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = self.walk.began;
        status.measured.store(true, Ordering::Release);
        status.walks.fetch_add(1, Ordering::AcqRel);
    }
}

/// The input objects the output's playlists refer to (init sections,
/// keys), as store keys under both inputs.
pub fn output_refs(out: &ChannelOutput) -> HashSet<ObjectPath> {
    let refs = out
        .refs
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut keys = HashSet::new();
    for rel in refs.values().flatten() {
        for p in Pipeline::BOTH {
            keys.insert(out.root(p).join_path(rel));
        }
    }
    keys
}
