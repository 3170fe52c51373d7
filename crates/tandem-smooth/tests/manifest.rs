//! The client manifest: the exact text for a live publishing point with
//! two video bitrates and one audio track (shaped as [MS-SSTR] §2.2.2 and
//! the live manifests of IIS Media Services), and a parse-back with an
//! independent XML reader: the `c` list, expanded, is the engine's
//! timeline, each time once, in order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use quick_xml::Reader;
use quick_xml::events::Event as Xml;
use support::{D, H, T0, audio, video};
use tandem_smooth::{MinorVersion, SmoothConfig, TrackKey, manifest::ManifestSettings};

/// AAC at 48 kHz: 1024-sample frames, 94 frames a fragment alternate in
/// 100 ns units between these two durations.
const A1: u64 = 20_053_333;
const A2: u64 = 20_053_334;

fn publishing_point(cfg: SmoothConfig) -> H {
    let mut h = H::new(cfg);
    let tracks = || vec![video(2_962_000), video(1_000_000), audio()];
    h.start_tracks(0.0, 0, "s1", Some("1585232182"), tracks());
    h.start_tracks(0.0, 1, "s1", Some("1585232182"), tracks());
    let mut at = 1.0;
    // Video fragments 0..=5; both encoders lose fragment 3 of both
    // bitrates: a gap of one fragment.
    for k in (0..6).filter(|&k| k != 3) {
        for bitrate in [2_962_000, 1_000_000] {
            for p in 0..2 {
                at += 0.01;
                h.frag_at(at, p, "s1", TrackKey::new("video", bitrate), T0 + k * D, D);
            }
        }
    }
    let mut t = T0;
    for k in 0..6 {
        let d = if k % 3 == 2 { A2 } else { A1 };
        for p in 0..2 {
            at += 0.01;
            h.frag_at(at, p, "s1", TrackKey::new("audio", 128_000), t, d);
        }
        t += d;
    }
    h
}

fn golden(name: &str) -> String {
    let path = format!(
        "{}/../../testdata/smooth/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn a_live_manifest_lists_both_bitrates_audio_and_a_gap_as_a_jump_in_t() {
    let h = publishing_point(SmoothConfig::default());
    assert_eq!(
        h.m.client_manifest().unwrap(),
        golden("tandem_live_two_video_one_audio.ismc")
    );
}

#[test]
fn minor_version_0_writes_one_c_per_fragment() {
    let h = publishing_point(SmoothConfig {
        manifest: ManifestSettings {
            minor_version: MinorVersion::V0,
            look_ahead_fragment_count: 0,
        },
        dvr_window: Duration::from_secs(60),
        ..SmoothConfig::default()
    });
    let xml = h.m.client_manifest().unwrap();
    assert!(
        xml.contains("MajorVersion=\"2\" MinorVersion=\"0\""),
        "{xml}"
    );
    assert!(xml.contains("LookAheadFragmentCount=\"0\" DVRWindowLength=\"600000000\""));
    assert!(!xml.contains(" r=\""), "{xml}");
    assert_eq!(parse(&xml), expected(&h));
}

/// Per stream index name: (Url, TimeScale, bitrates, the `c` list expanded
/// into (t, d)).
type Parsed = BTreeMap<String, (String, u64, Vec<u32>, Vec<(u64, u64)>)>;

fn attr(e: &quick_xml::events::BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .map(|a| a.unwrap())
        .find(|a| a.key.as_ref() == name.as_bytes())
        .map(|a| a.unescape_value().unwrap().into_owned())
}

/// Reads a client manifest as a client does: `t` when present, else the
/// previous fragment's end; `r` fragments of `d` each.
fn parse(xml: &str) -> Parsed {
    let mut r = Reader::from_str(xml);
    let mut out = Parsed::new();
    let mut current: Option<String> = None;
    let mut root_seen = false;
    let mut declared: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    loop {
        match r.read_event().unwrap() {
            Xml::Start(e) | Xml::Empty(e) => match e.name().as_ref() {
                b"SmoothStreamingMedia" => {
                    assert_eq!(attr(&e, "MajorVersion").as_deref(), Some("2"));
                    assert_eq!(attr(&e, "TimeScale").as_deref(), Some("10000000"));
                    root_seen = true;
                }
                b"StreamIndex" => {
                    let name = attr(&e, "Name").unwrap();
                    let entry = (
                        attr(&e, "Url").unwrap(),
                        attr(&e, "TimeScale").unwrap().parse().unwrap(),
                        Vec::new(),
                        Vec::new(),
                    );
                    declared.insert(
                        name.clone(),
                        (
                            attr(&e, "QualityLevels").unwrap().parse::<usize>().unwrap(),
                            attr(&e, "Chunks").unwrap().parse::<usize>().unwrap(),
                        ),
                    );
                    out.insert(name.clone(), entry);
                    current = Some(name);
                }
                b"QualityLevel" => {
                    let s = out.get_mut(current.as_ref().unwrap()).unwrap();
                    s.2.push(attr(&e, "Bitrate").unwrap().parse().unwrap());
                }
                b"c" => {
                    let s = out.get_mut(current.as_ref().unwrap()).unwrap();
                    let d: u64 = attr(&e, "d").unwrap().parse().unwrap();
                    let t = attr(&e, "t")
                        .map(|t| t.parse().unwrap())
                        .or_else(|| s.3.last().map(|&(t, d)| t + d))
                        .expect("the first c carries t");
                    let n: u64 = attr(&e, "r").map_or(1, |r| r.parse().unwrap());
                    for i in 0..n {
                        s.3.push((t + i * d, d));
                    }
                }
                other => panic!("unexpected element {}", String::from_utf8_lossy(other)),
            },
            Xml::Eof => break,
            _ => {}
        }
    }
    assert!(root_seen);
    for (name, (levels, chunks)) in declared {
        assert_eq!(
            out[&name].2.len(),
            levels,
            "{name}: QualityLevels counts them"
        );
        assert_eq!(
            out[&name].3.len(),
            chunks,
            "{name}: Chunks counts the fragments"
        );
    }
    out
}

/// The same facts, from the engine.
fn expected(h: &H) -> Parsed {
    let mut out = Parsed::new();
    for t in h.m.tracks() {
        let e = out.entry(t.name.clone()).or_insert_with(|| {
            (
                format!(
                    "QualityLevels({{bitrate}})/Fragments({}={{start time}})",
                    t.name
                ),
                t.timescale,
                Vec::new(),
                Vec::new(),
            )
        });
        e.2.push(t.bitrate);
        let mut times: BTreeMap<u64, u64> = e.3.iter().copied().collect();
        for f in h.m.timeline(&t.key()) {
            times.entry(f.time).or_insert(f.duration);
        }
        e.3 = times.into_iter().collect();
    }
    for e in out.values_mut() {
        e.2.sort_by(|a, b| b.cmp(a));
    }
    out
}

#[test]
fn the_manifest_parsed_back_is_the_engine_timeline_each_time_once_in_order() {
    let h = publishing_point(SmoothConfig::default());
    let xml = h.m.client_manifest().unwrap();
    let parsed = parse(&xml);
    assert_eq!(parsed, expected(&h));
    let video = &parsed["video"].3;
    assert_eq!(video.len(), 5);
    assert!(video.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(
        !video.iter().any(|&(t, _)| t == T0 + 3 * D),
        "the gap stays a gap"
    );
    // Every fragment the manifest names resolves to a stored copy.
    for (name, (_, _, bitrates, times)) in &parsed {
        for &b in bitrates {
            for &(t, _) in times {
                assert!(h.m.fragment(b, name, t).is_some(), "{name} {b} {t}");
            }
        }
    }
}
