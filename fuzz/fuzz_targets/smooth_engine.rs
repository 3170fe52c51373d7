//! The Smooth redundancy engine under arbitrary notice sequences: pushes
//! started (with events, tracks that may contradict each other), fragments
//! at any time and duration, drops, ends, ticks, process restarts. After
//! every step the engine's invariants hold, a presentation's output only
//! loses fragments at its front and gains them at its end, the manifest is
//! produced without a panic, and every fragment it names resolves.
#![no_main]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tandem_core::Pipeline;
use tandem_smooth::{
    EndOfStream, FragmentNotice, SmoothConfig, SmoothMerge, StreamStart, Track, TrackKey,
    TrackMedia,
};

#[derive(Debug, Arbitrary)]
enum Op {
    Start {
        p: bool,
        stream: u8,
        event: Option<u8>,
        tracks: Vec<(u8, u8, bool)>,
    },
    Fragment {
        p: bool,
        stream: u8,
        track: (u8, u8),
        time: u64,
        duration: u32,
    },
    Next {
        p: bool,
        track: (u8, u8),
        skip: u8,
    },
    Drop {
        p: bool,
        stream: u8,
    },
    End {
        p: bool,
        stream: u8,
        mfra: bool,
    },
    Tick {
        ms: u16,
    },
    Stop,
    Reboot,
}

fn pipeline(p: bool) -> Pipeline {
    if p { Pipeline::P1 } else { Pipeline::P0 }
}

fn key((name, rate): (u8, u8)) -> TrackKey {
    TrackKey::new(
        format!("t{}", name % 3),
        100_000 * (u32::from(rate % 3) + 1),
    )
}

fn track((name, rate, odd): (u8, u8, bool)) -> Track {
    let k = key((name, rate));
    Track {
        name: k.name,
        bitrate: k.bitrate,
        // An odd timescale contradicts the others of the name: refused.
        timescale: if odd { 90_000 } else { 10_000_000 },
        four_cc: "AACL".into(),
        codec_private_data: "1190".into(),
        language: None,
        media: if name % 2 == 0 {
            TrackMedia::Audio {
                sampling_rate: 48_000,
                channels: 2,
                bits_per_sample: 16,
                packet_size: 4,
                audio_tag: 255,
            }
        } else {
            TrackMedia::Video {
                max_width: 640,
                max_height: 360,
                display_width: None,
                display_height: None,
                nal_unit_length_field: None,
            }
        },
    }
}

fn snapshot(m: &SmoothMerge) -> Vec<(TrackKey, Vec<u64>)> {
    m.tracks()
        .map(|t| (t.key(), m.timeline(&t.key()).map(|f| f.time).collect()))
        .collect()
}

fuzz_target!(|ops: Vec<Op>| {
    let cfg = SmoothConfig {
        dvr_window: Duration::from_secs(20),
        ..SmoothConfig::default()
    };
    let t0 = Instant::now();
    let mut now = t0;
    let mut m = SmoothMerge::new(cfg.clone());
    let mut next = std::collections::BTreeMap::<(bool, TrackKey), u64>::new();
    let mut prev = (m.presentation().0, snapshot(&m));
    for op in ops.into_iter().take(300) {
        now += Duration::from_millis(7);
        match op {
            Op::Start {
                p,
                stream,
                event,
                tracks,
            } => {
                let s = StreamStart {
                    pipeline: pipeline(p),
                    stream: format!("s{}", stream % 4),
                    event: event.map(|e| (e % 4).to_string()),
                    tracks: tracks.into_iter().take(6).map(track).collect(),
                };
                let _ = m.on_stream_started(now, &s);
            }
            Op::Fragment {
                p,
                stream,
                track,
                time,
                duration,
            } => {
                m.on_fragment(
                    now,
                    FragmentNotice {
                        pipeline: pipeline(p),
                        stream: format!("s{}", stream % 4),
                        track: key(track),
                        time,
                        duration: u64::from(duration),
                        bytes: 1,
                        storage_key: format!("{p}/{time}"),
                    },
                );
            }
            Op::Next { p, track, skip } => {
                let k = key(track);
                let n = next.entry((p, k.clone())).or_insert(0);
                *n += u64::from(skip % 3);
                let time = 1_000_000_000 + *n * 20_000_000;
                *n += 1;
                m.on_fragment(
                    now,
                    FragmentNotice {
                        pipeline: pipeline(p),
                        stream: "s0".into(),
                        track: k,
                        time,
                        duration: 20_000_000,
                        bytes: 1,
                        storage_key: format!("{p}/{time}"),
                    },
                );
            }
            Op::Drop { p, stream } => {
                m.on_connection_dropped(now, pipeline(p), &format!("s{}", stream % 4));
            }
            Op::End { p, stream, mfra } => {
                let how = if mfra {
                    EndOfStream::Mfra
                } else {
                    EndOfStream::Eos
                };
                m.on_stream_ended(now, pipeline(p), &format!("s{}", stream % 4), how);
            }
            Op::Tick { ms } => {
                now += Duration::from_millis(u64::from(ms));
                m.on_tick(now);
            }
            Op::Stop => {
                m.stop(now);
            }
            Op::Reboot => {
                let json = serde_json::to_string(&m.save()).expect("state serializes");
                let saved = serde_json::from_str(&json).expect("state parses back");
                m = SmoothMerge::restore(cfg.clone(), &saved, now).expect("own state restores");
            }
        }
        m.check_invariants();
        let snap = snapshot(&m);
        if m.presentation().0 == prev.0 {
            for (k, times) in &snap {
                let Some((_, old)) = prev.1.iter().find(|(o, _)| o == k) else {
                    continue;
                };
                let before: BTreeSet<u64> = old.iter().copied().collect();
                let kept = times.iter().take_while(|t| before.contains(t)).count();
                assert!(old.ends_with(&times[..kept]), "{k}: only the front leaves");
                assert!(
                    times[kept..].iter().all(|t| !before.contains(t)),
                    "{k}: only the end grows"
                );
                assert!(
                    times[kept..]
                        .first()
                        .is_none_or(|t| old.last().is_none_or(|l| t > l)),
                    "{k}: appended after the end"
                );
            }
        }
        if let Some(xml) = m.client_manifest() {
            assert!(xml.ends_with("</SmoothStreamingMedia>\n"));
        }
        for (k, times) in &snap {
            for &t in times {
                assert!(m.fragment(k.bitrate, &k.name, t).is_some());
            }
        }
        prev = (m.presentation().0, snap);
    }
});
