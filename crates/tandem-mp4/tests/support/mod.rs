//! Box builders and a reader driver shared by the tests.
#![allow(dead_code)]

use tandem_mp4::{BoxReaderConfig, Item, SmoothError, SmoothReader};

pub const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/smooth/ffmpeg_ismv_push.bin"
);

pub fn fixture() -> Vec<u8> {
    std::fs::read(FIXTURE).unwrap_or_else(|e| panic!("cannot read {FIXTURE}: {e}"))
}

/// Everything a reader gives for `pieces`, pulling after every push, as an
/// ingest handler would; then the body ends.
pub fn read_pieces<'a>(
    cfg: BoxReaderConfig,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<Item>, Option<SmoothError>) {
    let mut r = SmoothReader::new(cfg);
    let mut items = Vec::new();
    let drain = |r: &mut SmoothReader, items: &mut Vec<Item>| -> Option<SmoothError> {
        loop {
            match r.pull() {
                Ok(Some(i)) => items.push(i),
                Ok(None) => return None,
                Err(e) => return Some(e),
            }
        }
    };
    for p in pieces {
        r.push(p);
        if let Some(e) = drain(&mut r, &mut items) {
            return (items, Some(e));
        }
    }
    r.end();
    let e = drain(&mut r, &mut items);
    (items, e)
}

pub fn read_whole(data: &[u8]) -> (Vec<Item>, Option<SmoothError>) {
    read_pieces(BoxReaderConfig::default(), [data])
}

pub fn fragments(items: &[Item]) -> Vec<&tandem_mp4::Fragment> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Fragment(f) => Some(f),
            _ => None,
        })
        .collect()
}

/// A box with a 32-bit size.
pub fn bx(fourcc: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = ((8 + payload.len()) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(fourcc);
    v.extend_from_slice(payload);
    v
}

/// A box with `size == 1` and a 64-bit largesize.
pub fn large_bx(fourcc: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = 1u32.to_be_bytes().to_vec();
    v.extend_from_slice(fourcc);
    v.extend_from_slice(&((16 + payload.len()) as u64).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A `uuid` box.
pub fn uuid_bx(uuid: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let mut p = uuid.to_vec();
    p.extend_from_slice(payload);
    bx(b"uuid", &p)
}

/// A full box payload: version, flags, then `rest`.
pub fn full(version: u8, flags: u32, rest: &[u8]) -> Vec<u8> {
    let mut v = ((u32::from(version) << 24) | (flags & 0xff_ffff))
        .to_be_bytes()
        .to_vec();
    v.extend_from_slice(rest);
    v
}

pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub fn ftyp() -> Vec<u8> {
    bx(b"ftyp", b"isml\x00\x00\x02\x00ismlpiff")
}

pub const MANIFEST_XML: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<smil xmlns="http://www.w3.org/2001/SMIL20/Language">
<head><meta name="creator" content="hand" /></head>
<body><switch>
<video systemBitrate="500000">
<param name="trackID" value="1" valuetype="data"/>
<param name="trackName" value="video" valuetype="data"/>
<param name="CodecPrivateData" value="00000001674D" valuetype="data"/>
<param name="FourCC" value="AVC1" valuetype="data"/>
</video>
<audio systemBitrate="96000">
<param name="trackID" value="2" valuetype="data"/>
<param name="FourCC" value="AACL" valuetype="data"/>
</audio>
<textstream systemBitrate="1000"><param name="trackID" value="3" valuetype="data"/></textstream>
</switch></body></smil>"#;

pub fn manifest_box(xml: &str) -> Vec<u8> {
    uuid_bx(
        tandem_mp4::smooth::LIVE_SERVER_MANIFEST_UUID.0,
        &full(0, 0, xml.as_bytes()),
    )
}

/// `moov` with one `trak` per (track_id, timescale, handler) and a `trex`
/// per track with the given default duration.
pub fn moov(tracks: &[(u32, u32, &[u8; 4])], trex_duration: u32) -> Vec<u8> {
    let mut body = bx(b"mvhd", &full(0, 0, &[0u8; 96]));
    let mut mvex = Vec::new();
    for &(id, ts, handler) in tracks {
        let mut tkhd = vec![0u8; 16];
        tkhd.extend_from_slice(&id.to_be_bytes());
        tkhd.extend_from_slice(&[0u8; 68]);
        let mut mdhd = vec![0u8; 16];
        mdhd.extend_from_slice(&ts.to_be_bytes());
        mdhd.extend_from_slice(&[0u8; 12]);
        let mut hdlr = vec![0u8; 4];
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0u8; 13]);
        let mdia = cat(&[
            &bx(b"mdhd", &full(1, 0, &mdhd)),
            &bx(b"hdlr", &full(0, 0, &hdlr)),
        ]);
        body.extend(bx(
            b"trak",
            &cat(&[&bx(b"tkhd", &full(1, 7, &tkhd)), &bx(b"mdia", &mdia)]),
        ));
        let mut trex = id.to_be_bytes().to_vec();
        trex.extend_from_slice(&1u32.to_be_bytes());
        trex.extend_from_slice(&trex_duration.to_be_bytes());
        trex.extend_from_slice(&[0u8; 8]);
        mvex.extend(bx(b"trex", &full(0, 0, &trex)));
    }
    body.extend(bx(b"mvex", &mvex));
    bx(b"moov", &body)
}

pub fn tfxd(version: u8, time: u64, duration: u64) -> Vec<u8> {
    let rest = if version == 1 {
        cat(&[&time.to_be_bytes(), &duration.to_be_bytes()])
    } else {
        cat(&[
            &(time as u32).to_be_bytes(),
            &(duration as u32).to_be_bytes(),
        ])
    };
    uuid_bx(tandem_mp4::smooth::TFXD_UUID.0, &full(version, 0, &rest))
}

pub fn tfrf(entries: &[(u64, u64)]) -> Vec<u8> {
    let mut rest = vec![entries.len() as u8];
    for (t, d) in entries {
        rest.extend_from_slice(&t.to_be_bytes());
        rest.extend_from_slice(&d.to_be_bytes());
    }
    uuid_bx(tandem_mp4::smooth::TFRF_UUID.0, &full(1, 0, &rest))
}

pub fn tfhd(track_id: u32) -> Vec<u8> {
    bx(
        b"tfhd",
        &full(0, 0x20, &cat(&[&track_id.to_be_bytes(), &[0u8; 4]])),
    )
}

/// A `trun` with per-sample durations and sizes.
pub fn trun(durations: &[u32]) -> Vec<u8> {
    let mut rest = (durations.len() as u32).to_be_bytes().to_vec();
    rest.extend_from_slice(&0i32.to_be_bytes());
    for d in durations {
        rest.extend_from_slice(&d.to_be_bytes());
        rest.extend_from_slice(&100u32.to_be_bytes());
    }
    bx(b"trun", &full(0, 0x301, &rest))
}

/// A `moof` of one track whose `traf` holds `traf_extra` after its `trun`.
pub fn moof(seq: u32, track_id: u32, durations: &[u32], traf_extra: &[u8]) -> Vec<u8> {
    let traf = cat(&[&tfhd(track_id), &trun(durations), traf_extra]);
    bx(
        b"moof",
        &cat(&[
            &bx(b"mfhd", &full(0, 0, &seq.to_be_bytes())),
            &bx(b"traf", &traf),
        ]),
    )
}

pub fn mdat(len: usize, fill: u8) -> Vec<u8> {
    bx(b"mdat", &vec![fill; len])
}

/// A whole push: header boxes, then fragments (track, time, duration).
pub fn push_stream(frags: &[(u32, u64, u64)]) -> Vec<u8> {
    let mut v = cat(&[
        &ftyp(),
        &manifest_box(MANIFEST_XML),
        &moov(&[(1, 10_000_000, b"vide"), (2, 10_000_000, b"soun")], 0),
    ]);
    for (i, &(track, t, d)) in frags.iter().enumerate() {
        v.extend(moof(i as u32 + 1, track, &[d as u32], &tfxd(1, t, d)));
        v.extend(mdat(10 + i, i as u8));
    }
    v.extend(bx(b"mfra", &[]));
    v
}
