//! The harness of the engine's scenario tests: encoders that write
//! playlists, and an engine driven on an injected clock.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::time::{Duration, Instant};

use tandem_core::Pipeline::{P0, P1};
use tandem_core::{InputState, Pipeline};
use tandem_hls::merge::Event;
use tandem_hls::{MergeConfig, RenditionMerge, SwitchReason, parse_media};

/// 2026-11-25T04:00:00Z in milliseconds.
pub const BASE_PDT: i64 = 1_795_579_200_000;

pub struct Encoder {
    /// Media sequence of segment k is k + msn_offset.
    pub msn_offset: u64,
    /// PDT of segment k is BASE_PDT + 2000 k + pdt_skew_ms (None: no PDT).
    pub pdt_skew_ms: Option<i64>,
    pub window: u64,
}

impl Encoder {
    pub fn plain() -> Self {
        Self {
            msn_offset: 0,
            pdt_skew_ms: None,
            window: 3,
        }
    }

    pub fn pdt(skew: i64) -> Self {
        Self {
            msn_offset: 0,
            pdt_skew_ms: Some(skew),
            window: 3,
        }
    }

    /// The playlist after segment `last` (counted from 0) was written.
    pub fn playlist(&self, first_k: u64, last: u64) -> String {
        let start = last.saturating_sub(self.window - 1).max(first_k);
        let mut t = format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{}\n",
            start + self.msn_offset
        );
        for k in start..=last {
            if let Some(skew) = self.pdt_skew_ms {
                t.push_str(&format!(
                    "#EXT-X-PROGRAM-DATE-TIME:{}\n",
                    tandem_hls::playlist::format_pdt(BASE_PDT + 2000 * k as i64 + skew)
                ));
            }
            t.push_str(&format!("#EXTINF:2.000,\na{}.ts\n", k + self.msn_offset));
        }
        t
    }
}

pub struct H {
    pub m: RenditionMerge,
    pub t0: Instant,
    pub events: Vec<Event>,
}

impl H {
    pub fn new(cfg: MergeConfig) -> Self {
        Self {
            m: RenditionMerge::new(cfg),
            t0: Instant::now(),
            events: Vec::new(),
        }
    }

    pub fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    /// Pipeline `p` stores every segment of `text` except `missing`, then
    /// publishes the playlist, at `secs`.
    pub fn feed(&mut self, secs: f64, p: Pipeline, text: &str, missing: &[&str]) {
        let now = self.at(secs);
        let pl = parse_media(text).unwrap();
        for s in &pl.segments {
            if !missing.contains(&s.uri.as_str()) {
                let ev = self.m.on_segment_stored(now, p, &s.uri);
                self.events.extend(ev);
            }
        }
        let ev = self.m.on_playlist(now, p, &pl);
        self.events.extend(ev);
        self.m.check_invariants();
    }

    /// The process restarts at `secs`: the state is saved as JSON, as the
    /// output driver keeps it, and a new engine continues from it.
    pub fn restart(&mut self, secs: f64) {
        let json = serde_json::to_string(&self.m.save()).unwrap();
        let saved: tandem_hls::SavedMerge = serde_json::from_str(&json).unwrap();
        let before = self.out();
        self.m = RenditionMerge::restore(self.m.config().clone(), &saved, self.at(secs)).unwrap();
        self.m.check_invariants();
        assert_eq!(
            self.out(),
            before,
            "a restored engine serves the same playlist"
        );
    }

    pub fn tick(&mut self, secs: f64) {
        let ev = self.m.on_tick(self.at(secs));
        self.events.extend(ev);
        self.m.check_invariants();
    }

    pub fn out(&self) -> String {
        self.m
            .playlist(|s| format!("p{}/{}", s.from, s.source_uri))
            .map(|p| p.serialize())
            .unwrap_or_default()
    }

    pub fn switches(&self) -> Vec<(Option<Pipeline>, Pipeline, SwitchReason, bool)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Switched {
                    from,
                    to,
                    reason,
                    discontinuity,
                    ..
                } => Some((*from, *to, *reason, *discontinuity)),
                _ => None,
            })
            .collect()
    }

    pub fn states(&self, p: Pipeline) -> Vec<InputState> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::InputStateChanged { pipeline, to, .. } if *pipeline == p => Some(*to),
                _ => None,
            })
            .collect()
    }
}

/// Both pipelines run segments 0..=last (segment k at t = 2k + 0.1 s, P1
/// 0.1 s after P0).
pub fn run_both(h: &mut H, e0: &Encoder, e1: &Encoder, from: u64, last: u64) {
    for k in from..=last {
        let t = 2.0 * k as f64;
        h.feed(t, P0, &e0.playlist(0, k), &[]);
        h.feed(t + 0.1, P1, &e1.playlist(0, k), &[]);
    }
}
