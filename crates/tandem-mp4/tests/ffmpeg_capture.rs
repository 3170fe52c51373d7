//! The real thing: the body ffmpeg 5.1 POSTed for `-f ismv -movflags
//! isml+frag_keyframe` (testdata/smooth/README.md says how it was captured).

mod support;

use std::collections::BTreeMap;
use support::*;
use tandem_mp4::{BoxReaderConfig, BoxType, FourCc, Item, SmoothReader, TrackKind};

#[test]
fn ffmpeg_push_reads_as_header_boxes_then_four_fragments_per_track_then_mfra() {
    let data = fixture();
    let (items, err) = read_whole(&data);
    assert_eq!(err, None);
    let kinds: Vec<&str> = items
        .iter()
        .map(|i| match i {
            Item::FileType { .. } => "ftyp",
            Item::Manifest { .. } => "manifest",
            Item::Movie { .. } => "moov",
            Item::Fragment(_) => "fragment",
            Item::End { .. } => "mfra",
            Item::Skipped { .. } => "skipped",
        })
        .collect();
    let mut expected = vec!["ftyp", "manifest", "moov"];
    expected.extend(["fragment"; 8]);
    expected.push("mfra");
    assert_eq!(kinds, expected);

    let Item::FileType { ftyp, raw } = &items[0] else {
        unreachable!()
    };
    assert_eq!(ftyp.major_brand, FourCc(*b"isml"));
    assert_eq!(ftyp.compatible_brands, [FourCc(*b"isml"), FourCc(*b"piff")]);
    assert_eq!(raw.bytes.as_ref(), &data[..24]);

    let Item::Movie { movie, .. } = &items[2] else {
        unreachable!()
    };
    let tracks: Vec<_> = movie
        .tracks
        .iter()
        .map(|t| (t.track_id, t.timescale, t.handler.map(|h| h.to_string())))
        .collect();
    assert_eq!(
        tracks,
        [
            (1, 10_000_000, Some("vide".to_owned())),
            (2, 10_000_000, Some("soun".to_owned()))
        ]
    );
    assert!(movie.tracks.iter().all(|t| t.defaults.is_some()));

    // The reader's bytes are the body's bytes, box for box.
    let mut end = 0;
    for item in &items {
        let (offset, bytes) = match item {
            Item::FileType { raw, .. }
            | Item::Manifest { raw, .. }
            | Item::Movie { raw, .. }
            | Item::End { raw }
            | Item::Skipped { raw } => (raw.header.offset, &raw.bytes),
            Item::Fragment(f) => (f.offset, &f.bytes),
        };
        assert_eq!(offset as usize, end);
        assert_eq!(bytes.as_ref(), &data[end..end + bytes.len()]);
        end += bytes.len();
    }
    assert_eq!(end, data.len());
    let Item::End { raw } = &items[11] else {
        unreachable!()
    };
    assert_eq!(raw.header.box_type, BoxType::FourCc(FourCc::MFRA));
}

#[test]
fn ffmpeg_manifest_box_lists_video_and_audio_with_bitrates_and_codec_data() {
    let (items, _) = read_whole(&fixture());
    let Item::Manifest { manifest, raw } = &items[1] else {
        panic!("second item is not the manifest: {:?}", items[1])
    };
    assert_eq!(raw.header.offset, 24);
    assert_eq!(manifest.meta, [("creator".into(), "Lavf59.27.100".into())]);
    assert_eq!(manifest.tracks.len(), 2);
    let v = &manifest.tracks[0];
    assert_eq!(v.kind, TrackKind::Video);
    assert_eq!(v.system_bitrate, 150_000);
    assert_eq!(v.track_id, Some(1));
    assert_eq!(v.track_name.as_deref(), Some("video"));
    assert_eq!(v.fourcc.as_deref(), Some("H264"));
    assert_eq!(v.system_language.as_deref(), Some("und"));
    assert_eq!(
        v.codec_private_data_hex().as_deref(),
        Some("000000016742C00CDA05067E7C0440000003004000000C83C50AA80000000168CE3C80")
    );
    assert_eq!(
        (v.max_width, v.max_height, v.display_width, v.display_height),
        (Some(320), Some(180), Some(320), Some(180))
    );
    let a = &manifest.tracks[1];
    assert_eq!(a.kind, TrackKind::Audio);
    assert_eq!(a.system_bitrate, 64_000);
    assert_eq!(a.track_id, Some(2));
    assert_eq!(a.track_name.as_deref(), Some("audio"));
    assert_eq!(a.fourcc.as_deref(), Some("AACL"));
    assert_eq!(
        a.codec_private_data,
        Some(vec![0x11, 0x88, 0x56, 0xe5, 0x00])
    );
    assert_eq!(
        (
            a.audio_tag,
            a.channels,
            a.sampling_rate,
            a.bits_per_sample,
            a.packet_size
        ),
        (Some(255), Some(1), Some(48_000), Some(16), Some(4))
    );
    assert_eq!(a.params.len(), 11);
    assert_eq!(manifest.track(2), Some(a));
}

#[test]
fn ffmpeg_fragments_are_contiguous_per_track_by_tfxd_time() {
    let (items, _) = read_whole(&fixture());
    let mut per_track: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    for f in fragments(&items) {
        let t = f.timing().unwrap();
        assert_eq!(t.version, 1);
        per_track
            .entry(f.track_id)
            .or_default()
            .push((t.time, t.duration));
        assert_eq!(&f.bytes[4..8], b"moof");
        assert_eq!(&f.mdat()[4..8], b"mdat");
        assert_eq!(f.moof().len() + f.mdat().len(), f.bytes.len());
    }
    assert_eq!(
        per_track[&1],
        [
            (0, 20_000_000),
            (20_000_000, 20_000_000),
            (40_000_000, 20_000_000),
            (60_000_000, 20_000_000)
        ]
    );
    // The audio track starts 213333 units early (AAC priming), written as a
    // wrapped unsigned time.
    let audio = &per_track[&2];
    assert_eq!(audio.len(), 4);
    assert_eq!(audio[0].0 as i64, -213_333);
    for track in per_track.values() {
        for w in track.windows(2) {
            assert_eq!(
                w[1].0,
                w[0].0.wrapping_add(w[0].1),
                "gap or overlap in {track:?}"
            );
            assert!((w[1].0 as i64) > (w[0].0 as i64));
        }
    }
    // Video durations from trun agree with tfxd (50 frames × 400000).
    let video: Vec<_> = fragments(&items)
        .into_iter()
        .filter(|f| f.track_id == 1)
        .collect();
    assert!(video.iter().all(|f| f.run_duration == Some(20_000_000)));
    assert!(video.iter().all(|f| f.sample_count == 50));
    let seqs: Vec<u32> = fragments(&items)
        .iter()
        .map(|f| f.sequence_number)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7, 8]);
}

#[test]
fn ffmpeg_push_fed_one_byte_at_a_time_gives_the_same_items_and_holds_one_fragment_at_most() {
    let data = fixture();
    let (whole, _) = read_whole(&data);
    let mut r = SmoothReader::new(BoxReaderConfig::default());
    let mut items = Vec::new();
    let mut max_buffered = 0;
    for b in data.chunks(1) {
        r.push(b);
        max_buffered = max_buffered.max(r.buffered_len());
        while let Some(i) = r.pull().unwrap() {
            items.push(i);
        }
    }
    r.end();
    while let Some(i) = r.pull().unwrap() {
        items.push(i);
    }
    assert_eq!(items, whole);
    let largest_fragment = fragments(&whole)
        .iter()
        .map(|f| f.bytes.len())
        .max()
        .unwrap();
    assert_eq!(max_buffered, largest_fragment);
}

#[test]
fn ffmpeg_push_split_in_two_near_every_box_boundary_gives_the_same_items() {
    let data = fixture();
    let (whole, _) = read_whole(&data);
    let mut cuts: Vec<usize> = (0..=4096).collect();
    for item in &whole {
        if let Item::Fragment(f) = item {
            let o = f.offset as usize;
            let m = o + f.moof_len;
            cuts.extend(o.saturating_sub(40)..o + 40);
            cuts.extend(m - 40..m + 40);
        }
    }
    cuts.extend(data.len() - 64..=data.len());
    for cut in cuts {
        let (items, err) = read_pieces(BoxReaderConfig::default(), [&data[..cut], &data[cut..]]);
        assert_eq!(err, None, "cut at {cut}");
        assert!(items == whole, "cut at {cut} changed the items");
    }
}

#[test]
fn ffmpeg_push_in_its_own_chunk_sizes_gives_the_same_items() {
    let data = fixture();
    let sizes = [
        24, 2822, 32768, 12000, 17209, 32768, 12258, 16993, 32768, 7874, 16953, 32768, 9683, 16757,
        8,
    ];
    assert_eq!(sizes.iter().sum::<usize>(), data.len());
    let mut pieces = Vec::new();
    let mut at = 0;
    for s in sizes {
        pieces.push(&data[at..at + s]);
        at += s;
    }
    assert_eq!(
        read_pieces(BoxReaderConfig::default(), pieces),
        read_whole(&data)
    );
}
