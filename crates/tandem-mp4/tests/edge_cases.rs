//! Hand-built pushes: what the reader does at every edge of the format.

mod support;

use support::*;
use tandem_mp4::smooth::Tfrf;
use tandem_mp4::{
    BoxError, BoxReader, BoxReaderConfig, BoxType, FourCc, Item, ManifestError, SizeField,
    SmoothError, SmoothReader, TrackKind, Uuid,
};

const UNKNOWN_UUID: [u8; 16] = *b"0123456789abcdef";

/// A stream with every kind of item: header boxes, an unknown `uuid`, a
/// `free` with a 64-bit size, fragments with tfxd v0 and v1 and tfrf, mfra.
fn every_kind() -> Vec<u8> {
    cat(&[
        &ftyp(),
        &manifest_box(MANIFEST_XML),
        &moov(&[(1, 10_000_000, b"vide"), (2, 48_000, b"soun")], 1024),
        &uuid_bx(UNKNOWN_UUID, b"vendor data"),
        &moof(
            1,
            1,
            &[400_000; 3],
            &cat(&[&tfxd(1, 0, 1_200_000), &tfrf(&[(1_200_000, 1_200_000)])]),
        ),
        &mdat(30, 7),
        &large_bx(b"free", b"padding"),
        &moof(2, 2, &[], &tfxd(0, 0, 3072)),
        &large_bx(b"mdat", &[9u8; 12]),
        &bx(b"mfra", &[]),
    ])
}

#[test]
fn a_stream_split_in_two_at_every_byte_offset_gives_the_same_items() {
    let data = every_kind();
    let whole = read_whole(&data);
    assert_eq!(whole.1, None);
    assert_eq!(whole.0.len(), 8);
    for cut in 0..=data.len() {
        let split = read_pieces(BoxReaderConfig::default(), [&data[..cut], &data[cut..]]);
        assert_eq!(split, whole, "cut at {cut}");
    }
}

#[test]
fn a_stream_split_in_three_at_every_pair_of_offsets_gives_the_same_items() {
    let data = every_kind();
    let whole = read_whole(&data);
    for a in (0..=data.len()).step_by(31) {
        for b in (a..=data.len()).step_by(3) {
            let split = read_pieces(
                BoxReaderConfig::default(),
                [&data[..a], &data[a..b], &data[b..]],
            );
            assert_eq!(split, whole, "cuts at {a} and {b}");
        }
    }
}

#[test]
fn unknown_uuid_and_largesize_free_boxes_are_skipped_and_fragments_keep_coming() {
    let (items, err) = read_whole(&every_kind());
    assert_eq!(err, None);
    let Item::Skipped { raw } = &items[3] else {
        panic!("{:?}", items[3])
    };
    assert_eq!(raw.header.box_type, BoxType::Uuid(Uuid(UNKNOWN_UUID)));
    assert_eq!(raw.payload(), b"vendor data");
    let Item::Skipped { raw } = &items[5] else {
        panic!("{:?}", items[5])
    };
    assert_eq!(raw.header.box_type, BoxType::FourCc(FourCc::FREE));
    assert_eq!(raw.header.size_field, SizeField::Large);
    assert_eq!((raw.header.header_len, raw.header.size), (16, 23));
    assert_eq!(raw.payload(), b"padding");
    assert_eq!(fragments(&items).len(), 2);
}

#[test]
fn a_64_bit_mdat_size_is_read_and_its_fragment_keeps_the_exact_bytes() {
    let data = every_kind();
    let (items, _) = read_whole(&data);
    let f = fragments(&items)[1];
    let mdat = f.mdat();
    assert_eq!(&mdat[..4], &[0, 0, 0, 1]);
    assert_eq!(&mdat[4..8], b"mdat");
    assert_eq!(u64::from_be_bytes(mdat[8..16].try_into().unwrap()), 28);
    assert_eq!(&mdat[16..], &[9u8; 12]);
    let start = f.offset as usize;
    assert_eq!(f.bytes.as_ref(), &data[start..start + f.bytes.len()]);
}

#[test]
fn tfxd_version_0_and_1_tfrf_and_trex_default_durations_are_read() {
    let (items, _) = read_whole(&every_kind());
    let f = fragments(&items);
    let t = f[0].timing().unwrap();
    assert_eq!((t.version, t.time, t.duration), (1, 0, 1_200_000));
    assert_eq!(
        f[0].tfrf,
        Some(Tfrf {
            version: 1,
            entries: vec![(1_200_000, 1_200_000)]
        })
    );
    assert_eq!(f[0].run_duration, Some(1_200_000));
    assert_eq!(f[0].sample_count, 3);
    let t = f[1].timing().unwrap();
    assert_eq!((t.version, t.time, t.duration), (0, 0, 3072));
    // No samples in the run, so the trex default adds nothing.
    assert_eq!(f[1].run_duration, Some(0));
    assert_eq!(f[1].track_id, 2);
}

#[test]
fn a_fragment_without_tfxd_is_handed_out_with_its_run_duration_and_a_timing_error() {
    let data = cat(&[&ftyp(), &moof(5, 1, &[100, 200, 300], &[]), &mdat(4, 0)]);
    let (items, err) = read_whole(&data);
    assert_eq!(err, None);
    let f = fragments(&items)[0];
    assert_eq!(f.tfxd, None);
    assert_eq!(f.duration(), Some(600));
    assert_eq!(
        f.timing(),
        Err(SmoothError::MissingTfxd {
            offset: 24,
            track_id: 1
        })
    );
}

#[test]
fn a_push_cut_inside_a_fragments_mdat_gives_the_fragments_before_it_and_a_truncation_error() {
    let data = push_stream(&[(1, 0, 100), (1, 100, 100), (1, 200, 100)]);
    let (whole, _) = read_whole(&data);
    let third = fragments(&whole)[2].clone();
    let mdat_at = third.offset as usize + third.moof_len;
    for cut in [mdat_at + 3, mdat_at + 8, mdat_at + 12] {
        let (items, err) = read_pieces(BoxReaderConfig::default(), [&data[..cut]]);
        assert_eq!(fragments(&items).len(), 2, "cut at {cut}");
        let expected = if cut - mdat_at < 8 {
            BoxError::TruncatedHeader {
                offset: mdat_at as u64,
                received: (cut - mdat_at) as u64,
            }
        } else {
            BoxError::Truncated {
                offset: mdat_at as u64,
                box_type: BoxType::FourCc(FourCc::MDAT),
                size: third.mdat().len() as u64,
                received: (cut - mdat_at) as u64,
            }
        };
        assert_eq!(err, Some(SmoothError::Box(expected)), "cut at {cut}");
    }
    // Cut right after the moof: the fragment has no mdat.
    let (items, err) = read_pieces(BoxReaderConfig::default(), [&data[..mdat_at]]);
    assert_eq!(fragments(&items).len(), 2);
    assert_eq!(
        err,
        Some(SmoothError::FragmentCut {
            offset: third.offset
        })
    );
    // Cut inside the moof.
    let (items, err) = read_pieces(BoxReaderConfig::default(), [&data[..mdat_at - 1]]);
    assert_eq!(fragments(&items).len(), 2);
    assert!(matches!(
        err,
        Some(SmoothError::Box(BoxError::Truncated {
            box_type: BoxType::FourCc(FourCc::MOOF),
            ..
        }))
    ));
}

#[test]
fn the_error_stays_and_later_bytes_are_dropped() {
    let data = push_stream(&[(1, 0, 100), (1, 100, 100)]);
    let cut = data.len() - 20;
    let mut r = SmoothReader::default();
    r.push(&data[..cut]);
    r.end();
    r.push(&data[cut..]);
    let mut n = 0;
    let err = loop {
        match r.pull() {
            Ok(Some(_)) => n += 1,
            Ok(None) => panic!("no error after a cut body"),
            Err(e) => break e,
        }
    };
    assert_eq!(n, 4);
    assert_eq!(r.pull(), Err(err.clone()));
    assert_eq!(r.pull(), Err(err));
}

#[test]
fn a_box_over_the_limit_is_refused_from_its_header_before_its_payload_is_kept() {
    let cfg = BoxReaderConfig { max_box_size: 4096 };
    let header = cat(&[&ftyp(), &moof(1, 1, &[10], &tfxd(1, 0, 10))]);
    let mut r = SmoothReader::new(cfg);
    r.push(&header);
    // An mdat header claiming 1 GiB, and the first bytes of its payload.
    r.push(&(1u32 << 30).to_be_bytes());
    r.push(b"mdat");
    r.push(&[0u8; 1000]);
    assert!(matches!(r.pull(), Ok(Some(Item::FileType { .. }))));
    let err = SmoothError::Box(BoxError::TooLarge {
        offset: header.len() as u64,
        box_type: BoxType::FourCc(FourCc::MDAT),
        size: 1 << 30,
        max: 4096,
    });
    assert_eq!(r.pull(), Err(err.clone()));
    // The moof waiting for that mdat is gone, and nothing else is held.
    assert_eq!(r.buffered_len(), 0);
    r.push(&[0u8; 5000]);
    assert_eq!(r.buffered_len(), 0);
    assert_eq!(r.pull(), Err(err));
}

#[test]
fn a_64_bit_size_over_the_limit_is_refused_too() {
    let mut data = ftyp();
    data.extend(1u32.to_be_bytes());
    data.extend(b"mdat");
    data.extend(u64::MAX.to_be_bytes());
    let (items, err) = read_whole(&data);
    assert_eq!(items.len(), 1);
    assert_eq!(
        err,
        Some(SmoothError::Box(BoxError::TooLarge {
            offset: 24,
            box_type: BoxType::FourCc(FourCc::MDAT),
            size: u64::MAX,
            max: BoxReaderConfig::default().max_box_size,
        }))
    );
}

#[test]
fn a_size_zero_box_runs_to_the_end_of_the_body() {
    let mut data = cat(&[&ftyp(), &moof(1, 1, &[10], &tfxd(1, 0, 10))]);
    data.extend(0u32.to_be_bytes());
    data.extend(b"mdat");
    data.extend([5u8; 300]);
    let (items, err) = read_whole(&data);
    assert_eq!(err, None);
    let f = fragments(&items)[0];
    assert_eq!(f.mdat().len(), 308);
    assert_eq!(f.bytes.len() + 24, data.len());

    // ... within the limit.
    let cfg = BoxReaderConfig { max_box_size: 200 };
    for chunk in [1, 7, 1000] {
        let (items, err) = read_pieces(cfg, data.chunks(chunk));
        assert_eq!(items.len(), 1);
        assert_eq!(
            err,
            Some(SmoothError::Box(BoxError::ToEndTooLarge {
                offset: data.len() as u64 - 308,
                box_type: BoxType::FourCc(FourCc::MDAT),
                max: 200,
            }))
        );
    }
}

#[test]
fn garbage_gives_typed_errors() {
    // Not a box at all.
    let (items, err) = read_whole(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(items.is_empty());
    assert_eq!(
        err,
        Some(SmoothError::NotSmooth {
            found: FourCc(*b"/ HT")
        })
    );
    // A box type that is not text.
    let data = cat(&[&ftyp(), &[0, 0, 0, 16, 0xff, 0, 1, 2], &[0u8; 8]]);
    assert_eq!(
        read_whole(&data).1,
        Some(SmoothError::Box(BoxError::BadType {
            offset: 24,
            found: FourCc([0xff, 0, 1, 2])
        }))
    );
    // A size smaller than the header.
    let data = cat(&[&ftyp(), &[0, 0, 0, 4], b"free"]);
    assert_eq!(
        read_whole(&data).1,
        Some(SmoothError::Box(BoxError::SizeBelowHeader {
            offset: 24,
            box_type: BoxType::FourCc(FourCc::FREE),
            size: 4,
            min: 8
        }))
    );
    // Fewer than 8 bytes.
    assert_eq!(
        read_whole(b"\0\0\0").1,
        Some(SmoothError::Box(BoxError::TruncatedHeader {
            offset: 0,
            received: 3
        }))
    );
    // An mdat with no moof.
    assert_eq!(
        read_whole(&cat(&[&ftyp(), &mdat(3, 0)])).1,
        Some(SmoothError::MdatWithoutMoof { offset: 24 })
    );
    // A moof followed by something else.
    let data = cat(&[&ftyp(), &moof(1, 1, &[1], &[]), &bx(b"free", &[])]);
    assert!(matches!(
        read_whole(&data).1,
        Some(SmoothError::MoofWithoutMdat {
            offset: 24,
            found: BoxType::FourCc(FourCc::FREE)
        })
    ));
}

#[test]
fn an_empty_body_is_a_clean_probe() {
    assert_eq!(read_whole(b""), (vec![], None));
}

#[test]
fn a_child_bigger_than_its_parent_and_a_trun_bigger_than_its_box_are_refused() {
    // trak declares 1000 bytes inside a 40-byte moov.
    let mut moov_payload = vec![0, 0, 0x03, 0xe8];
    moov_payload.extend(b"trak");
    moov_payload.extend([0u8; 24]);
    let data = cat(&[&ftyp(), &bx(b"moov", &moov_payload)]);
    assert_eq!(
        read_whole(&data).1,
        Some(SmoothError::Box(BoxError::OverflowsParent {
            offset: 32,
            box_type: BoxType::FourCc(FourCc::TRAK),
            size: 1000,
            available: 32,
        }))
    );
    // trun claims u32::MAX samples with durations in a 20-byte box.
    let trun = bx(b"trun", &full(0, 0x100, &u32::MAX.to_be_bytes()));
    let traf = bx(b"traf", &cat(&[&tfhd(1), &trun]));
    let moof = bx(
        b"moof",
        &cat(&[&bx(b"mfhd", &full(0, 0, &[0, 0, 0, 1])), &traf]),
    );
    let data = cat(&[&ftyp(), &moof, &mdat(0, 0)]);
    let err = read_whole(&data).1;
    assert!(
        matches!(
            err,
            Some(SmoothError::Box(BoxError::ShortPayload { field: "sample table", needed, .. }))
                if needed == 8 + 4 * u64::from(u32::MAX)
        ),
        "{err:?}"
    );
}

#[test]
fn a_fragment_of_a_track_moov_does_not_list_is_refused() {
    let data = cat(&[
        &ftyp(),
        &moov(&[(1, 90_000, b"vide")], 0),
        &moof(1, 7, &[1], &tfxd(1, 0, 1)),
        &mdat(1, 0),
    ]);
    let (items, err) = read_whole(&data);
    assert_eq!(items.len(), 2);
    assert!(
        matches!(err, Some(SmoothError::UnknownTrack { track_id: 7, ref known, .. }) if known == &[1])
    );
}

#[test]
fn a_moof_with_two_trafs_is_refused() {
    let traf = bx(b"traf", &tfhd(1));
    let moof = bx(
        b"moof",
        &cat(&[&bx(b"mfhd", &full(0, 0, &[0, 0, 0, 1])), &traf, &traf]),
    );
    let data = cat(&[&ftyp(), &moof, &mdat(0, 0)]);
    assert_eq!(
        read_whole(&data).1,
        Some(SmoothError::TrackFragmentCount {
            offset: 24,
            count: 2
        })
    );
}

#[test]
fn manifest_tracks_are_typed_and_bad_manifests_are_refused() {
    let (items, _) = read_whole(&every_kind());
    let Item::Manifest { manifest, .. } = &items[1] else {
        panic!()
    };
    let kinds: Vec<_> = manifest.tracks.iter().map(|t| t.kind.clone()).collect();
    assert_eq!(kinds, [TrackKind::Video, TrackKind::Audio, TrackKind::Text]);
    assert_eq!(
        manifest.tracks[0].codec_private_data,
        Some(vec![0, 0, 0, 1, 0x67, 0x4d])
    );
    assert_eq!(manifest.tracks[2].system_bitrate, 1000);

    let bad = |xml: &str| read_whole(&cat(&[&ftyp(), &manifest_box(xml)])).1;
    assert!(matches!(
        bad("<html><body/></html>"),
        Some(SmoothError::Manifest(ManifestError::NotSmil { found, .. })) if found == "html"
    ));
    assert!(matches!(
        bad(
            "<smil><body><switch><video><param name=\"trackID\" value=\"1\"/></video></switch></body></smil>"
        ),
        Some(SmoothError::Manifest(ManifestError::MissingBitrate {
            index: 0,
            ..
        }))
    ));
    assert!(matches!(
        bad("<smil><body><switch><audio systemBitrate=\"1\"><param name=\"CodecPrivateData\" value=\"ABC\"/></audio></switch></body></smil>"),
        Some(SmoothError::Manifest(ManifestError::BadValue { name, .. })) if name == "CodecPrivateData"
    ));
    assert!(matches!(
        bad("<smil><body><switch><video systemBitrate=\"fast\"/></switch></body></smil>"),
        Some(SmoothError::Manifest(ManifestError::BadValue { name, .. })) if name == "systemBitrate"
    ));
    assert!(matches!(
        bad("<smil><unclosed></smil>"),
        Some(SmoothError::Manifest(ManifestError::Xml { .. }))
    ));
    assert!(matches!(
        bad(""),
        Some(SmoothError::Manifest(ManifestError::NotSmil { .. }))
    ));
}

#[test]
fn the_box_reader_alone_splits_any_iso_bmff_body() {
    let data = every_kind();
    let mut r = BoxReader::default();
    for c in data.chunks(5) {
        r.push(c);
    }
    r.end();
    let mut types = Vec::new();
    let mut total = 0;
    while let Some(b) = r.next_box().unwrap() {
        total += b.bytes.len();
        types.push(b.header.box_type.fourcc().to_string());
    }
    assert_eq!(total, data.len());
    assert_eq!(
        types,
        [
            "ftyp", "uuid", "moov", "uuid", "moof", "mdat", "free", "moof", "mdat", "mfra"
        ]
    );
}
