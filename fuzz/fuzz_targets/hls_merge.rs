//! The failover engine driven by arbitrary event sequences: two pipelines
//! publishing windows (with or without program date-times, skewed,
//! restarting, ending, with segments stored late or never), the clock
//! moving, the output saved and restored, reset. After every step the
//! engine's invariants hold and, across steps, the output's media sequence
//! never goes back and a position keeps its segment while it is listed.
#![no_main]

use std::collections::HashMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tandem_core::Pipeline;
use tandem_hls::{MergeConfig, RenditionMerge, parse_media};

#[derive(Debug, Arbitrary)]
enum Op {
    /// Pipeline `p` publishes segments `first..first+count` of its epoch.
    Publish {
        p: bool,
        first: u8,
        count: u8,
        pdt: bool,
        skew_ms: i16,
        disc_at: Option<u8>,
        endlist: bool,
    },
    /// Pipeline `p` stores segment `k` whole.
    Store {
        p: bool,
        k: u8,
    },
    /// The encoder of `p` restarts: numbering from 0, a new epoch of names.
    Restart {
        p: bool,
    },
    Tick {
        ms: u16,
    },
    SaveRestore,
    Reset {
        base: u16,
    },
}

fn pipeline(p: bool) -> Pipeline {
    if p { Pipeline::P1 } else { Pipeline::P0 }
}

fuzz_target!(|ops: Vec<Op>| {
    let cfg = MergeConfig::default();
    let t0 = Instant::now();
    let mut now = t0;
    let mut m = RenditionMerge::new(cfg.clone());
    let mut epoch = [0u32; 2];
    let mut last_msn: Option<u64> = None;
    let mut seen: HashMap<u64, String> = HashMap::new();
    for op in ops.into_iter().take(200) {
        let events = match op {
            Op::Publish {
                p,
                first,
                count,
                pdt,
                skew_ms,
                disc_at,
                endlist,
            } => {
                let i = usize::from(p);
                let mut t =
                    format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n");
                for k in u64::from(first)..u64::from(first) + u64::from(count % 8) {
                    if disc_at.is_some_and(|d| u64::from(d) == k) {
                        t.push_str("#EXT-X-DISCONTINUITY\n");
                    }
                    if pdt {
                        let ms = 1_800_000_000_000i64
                            + i64::from(epoch[i]) * 1_000_000
                            + 2000 * k as i64
                            + i64::from(skew_ms);
                        let _ = writeln!(
                            t,
                            "#EXT-X-PROGRAM-DATE-TIME:{}",
                            tandem_hls::playlist::format_pdt(ms)
                        );
                    }
                    let _ = writeln!(t, "#EXTINF:2.0,\ne{}_{k}.ts", epoch[i]);
                }
                if endlist {
                    t.push_str("#EXT-X-ENDLIST\n");
                }
                match parse_media(&t) {
                    Ok(pl) => m.on_playlist(now, pipeline(p), &pl),
                    Err(_) => Vec::new(),
                }
            }
            Op::Store { p, k } => {
                let uri = format!("e{}_{k}.ts", epoch[usize::from(p)]);
                m.on_segment_stored(now, pipeline(p), &uri)
            }
            Op::Restart { p } => {
                epoch[usize::from(p)] += 1;
                Vec::new()
            }
            Op::Tick { ms } => {
                now += Duration::from_millis(u64::from(ms));
                m.on_tick(now)
            }
            Op::SaveRestore => {
                let saved = m.save();
                let json = serde_json::to_vec(&saved).expect("saved state encodes");
                let back = serde_json::from_slice(&json).expect("saved state decodes");
                m = RenditionMerge::restore(cfg.clone(), &back, now).expect("saved state restores");
                Vec::new()
            }
            Op::Reset { base } => {
                seen.clear();
                last_msn = None;
                m.reset(now, u64::from(base))
            }
        };
        drop(events);
        m.check_invariants();
        if let Some(first) = m.segments().next() {
            if let Some(l) = last_msn {
                assert!(first.media_sequence >= l, "the media sequence went back");
            }
            last_msn = Some(first.media_sequence);
        }
        for s in m.segments() {
            let key = format!("{:?}:{}", s.from, s.source_uri);
            let old = seen.entry(s.media_sequence).or_insert_with(|| key.clone());
            assert_eq!(
                *old, key,
                "position {} changed its segment",
                s.media_sequence
            );
        }
        if let Some(pl) = m.playlist(|s| format!("{}/{}", s.media_sequence, s.source_uri)) {
            let text = pl.serialize();
            parse_media(&text).expect("the output playlist parses");
        }
    }
});
