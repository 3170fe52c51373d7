//! Serving a live fragment with its look-ahead: the encoder's `moof` +
//! `mdat` with a `tfrf` box ([MS-SSTR] §2.2.4.5) written into its `traf`.
//!
//! Why an origin writes it: a live Smooth client learns of the fragments
//! after the one it reads from that fragment's `tfrf`, and [MS-SSTR]
//! §2.2.4.5 makes the box mandatory in a live presentation whose
//! `LookaheadCount` is above 0. GStreamer's `mssdemux` (1.22) refuses a
//! live fragment without it (its fragment parser reports "no tfrf box" and
//! the stream stalls), and encoders pushing to a publishing point (ffmpeg's
//! `ismv` muxer) do not write one: the publishing point knows the
//! fragments that follow, the encoder does not.
//!
//! [`with_tfrf`] is the rewrite, on bytes already in memory (no IO):
//!
//! - The fragment must be one `moof` (holding exactly one `traf`, as every
//!   Smooth fragment does) followed by its `mdat`.
//! - A `tfrf` the encoder wrote is replaced in place (it names the
//!   encoder's own next fragments, which need not be the output's); else
//!   the new box goes at the end of the `traf`. Version 1 (64-bit times).
//! - The `traf` and `moof` sizes grow by the difference. Every byte after
//!   the insertion point moves by the same amount, the `mdat` included, so
//!   the offsets that locate samples move with it: `tfhd`
//!   base_data_offset when present, else each `trun` data_offset (which is
//!   then relative to the `moof`'s first byte, ISO/IEC 14496-12 §8.8.7.1).
//!   A `trun` without data_offset keeps its implicit position.
//! - A fragment carrying `saio` (sample auxiliary information offsets,
//!   Common Encryption) is refused: its offsets may point inside the
//!   `traf` before or after the insertion point. PIFF's sample encryption
//!   `uuid` box, which Smooth uses, has no such offsets.
//! - Sizes keep their form (32- or 64-bit); a box whose size is 0 ("to the
//!   end") inside the `moof` is refused, since appending after it would
//!   change what it covers.
//!
//! [MS-SSTR]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-sstr/

use crate::boxes::children::children;
use crate::boxes::{BoxError, BoxType, FourCc, HeaderParse, SizeField, parse_header};

use super::{TFRF_UUID, Tfrf};

const SAIO: FourCc = FourCc(*b"saio");

/// Why a fragment cannot carry a new `tfrf`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookaheadError {
    #[error(transparent)]
    Box(#[from] BoxError),
    #[error(
        "byte {offset}: expected {expected}, found {found}; a Smooth fragment is moof then mdat"
    )]
    NotAFragment {
        offset: u64,
        expected: FourCc,
        found: String,
    },
    #[error("moof has {count} traf boxes, a Smooth fragment has exactly 1")]
    TrackFragmentCount { count: usize },
    #[error(
        "byte {offset}: {box_type} box in moof has size 0 (to the end); its extent cannot be kept"
    )]
    SizeToEnd { offset: u64, box_type: BoxType },
    #[error(
        "byte {offset}: traf carries saio (sample auxiliary information offsets), which a look-ahead cannot be written around"
    )]
    AuxiliaryOffsets { offset: u64 },
    #[error("{what} overflows once the moof grows by {delta} bytes")]
    Overflow { what: &'static str, delta: i64 },
    #[error("a tfrf holds at most 255 entries, {count} given")]
    TooManyEntries { count: usize },
}

impl Tfrf {
    /// The complete `uuid` box: 32-bit size, extended type, version, flags
    /// 0, fragment_count, then (time, duration) pairs, 64-bit for version
    /// 1, 32-bit (truncated) for version 0.
    pub fn to_box(&self) -> Result<Vec<u8>, LookaheadError> {
        let count =
            u8::try_from(self.entries.len()).map_err(|_| LookaheadError::TooManyEntries {
                count: self.entries.len(),
            })?;
        let wide = self.version == 1;
        let per = if wide { 16 } else { 8 };
        let size = 8 + 16 + 4 + 1 + per * self.entries.len();
        let mut b = Vec::with_capacity(size);
        // At most 29 + 255 * 16 bytes: fits in 32 bits.
        b.extend_from_slice(&u32::try_from(size).unwrap_or(u32::MAX).to_be_bytes());
        b.extend_from_slice(b"uuid");
        b.extend_from_slice(&TFRF_UUID.0);
        b.extend_from_slice(&[self.version, 0, 0, 0, count]);
        for &(t, d) in &self.entries {
            if wide {
                b.extend_from_slice(&t.to_be_bytes());
                b.extend_from_slice(&d.to_be_bytes());
            } else {
                b.extend_from_slice(&(t as u32).to_be_bytes());
                b.extend_from_slice(&(d as u32).to_be_bytes());
            }
        }
        Ok(b)
    }
}

/// `fragment` (`moof` + `mdat`) with `tfrf` as the look-ahead of its
/// `traf`; see the module doc for what moves and what is refused.
pub fn with_tfrf(fragment: &[u8], tfrf: &Tfrf) -> Result<Vec<u8>, LookaheadError> {
    let new_tfrf = tfrf.to_box()?;
    let moof = header_at(fragment, 0)?;
    if moof.box_type != BoxType::FourCc(FourCc::MOOF) || moof.size_field == SizeField::ToEnd {
        return Err(LookaheadError::NotAFragment {
            offset: 0,
            expected: FourCc::MOOF,
            found: moof.box_type.to_string(),
        });
    }
    let moof_len = usize::try_from(moof.size).unwrap_or(usize::MAX);
    let (Some(moof_bytes), Some(rest)) = (fragment.get(..moof_len), fragment.get(moof_len..))
    else {
        return Err(BoxError::Truncated {
            offset: 0,
            box_type: moof.box_type,
            size: moof.size,
            received: fragment.len() as u64,
        }
        .into());
    };
    let mdat = header_at(rest, moof.size)?;
    if mdat.box_type != BoxType::FourCc(FourCc::MDAT) {
        return Err(LookaheadError::NotAFragment {
            offset: moof.size,
            expected: FourCc::MDAT,
            found: mdat.box_type.to_string(),
        });
    }
    let moof_hl = usize::from(moof.header_len);
    let moof_payload = moof_bytes.get(moof_hl..).unwrap_or_default();

    // The traf, and where in it the new box goes.
    let mut traf = None;
    let mut count = 0;
    for c in children(moof_payload, moof.header_len.into()) {
        let c = c?;
        refuse_to_end(c.header)?;
        if c.header.box_type == BoxType::FourCc(FourCc::TRAF) {
            count += 1;
            traf = Some(c);
        }
    }
    let Some(traf) = traf.filter(|_| count == 1) else {
        return Err(LookaheadError::TrackFragmentCount { count });
    };
    // Child byte ranges within the traf payload: (start, end, header).
    let traf_start = usize::try_from(traf.header.offset).unwrap_or(usize::MAX);
    let traf_hl = usize::from(traf.header.header_len);
    let mut kids = Vec::new();
    let mut at = 0usize;
    for c in children(
        traf.payload,
        traf.header.offset + u64::from(traf.header.header_len),
    ) {
        let c = c?;
        refuse_to_end(c.header)?;
        if c.header.box_type == BoxType::FourCc(SAIO) {
            return Err(LookaheadError::AuxiliaryOffsets {
                offset: c.header.offset,
            });
        }
        let len = usize::try_from(c.header.size).unwrap_or(usize::MAX);
        kids.push((at, at + len, c.header));
        at += len;
    }
    let old_tfrf_len: usize = kids
        .iter()
        .filter(|(_, _, h)| h.box_type == BoxType::Uuid(TFRF_UUID))
        .map(|(s, e, _)| e - s)
        .sum();
    let delta = i64::try_from(new_tfrf.len()).unwrap_or(i64::MAX)
        - i64::try_from(old_tfrf_len).unwrap_or(i64::MAX);
    let overflow = |what| LookaheadError::Overflow { what, delta };

    // The new traf payload, with the tfhd/trun offsets moved by delta.
    let mut payload = Vec::with_capacity(traf.payload.len() + new_tfrf.len());
    let mut placed = false;
    let mut explicit_base = false;
    for (s, e, h) in &kids {
        let Some(raw) = traf.payload.get(*s..*e) else {
            continue;
        };
        let hl = usize::from(h.header_len);
        match h.box_type {
            BoxType::Uuid(TFRF_UUID) => {
                if !placed {
                    payload.extend_from_slice(&new_tfrf);
                    placed = true;
                }
            }
            BoxType::FourCc(FourCc::TFHD) => {
                let mut b = raw.to_vec();
                let flags = flags_of(&b, hl);
                if flags & 0x01 != 0 {
                    explicit_base = true;
                    let f = hl + 8..hl + 16;
                    let v = read_u64(&b, f.clone(), *h, "base_data_offset")?;
                    let v = v
                        .checked_add_signed(delta)
                        .ok_or_else(|| overflow("tfhd base_data_offset"))?;
                    if let Some(dst) = b.get_mut(f) {
                        dst.copy_from_slice(&v.to_be_bytes());
                    }
                }
                payload.extend_from_slice(&b);
            }
            _ => payload.extend_from_slice(raw),
        }
    }
    if !placed {
        payload.extend_from_slice(&new_tfrf);
    }
    if !explicit_base {
        // Second pass over the rebuilt payload: the truns, relative to the
        // moof's first byte, point into the mdat, which moved by delta.
        let mut at = 0usize;
        let snapshot = payload.clone();
        for c in children(&snapshot, 0) {
            let c = c?;
            let len = usize::try_from(c.header.size).unwrap_or(usize::MAX);
            if c.header.box_type == BoxType::FourCc(FourCc::TRUN) {
                let hl = usize::from(c.header.header_len);
                if flags_of(snapshot.get(at..).unwrap_or_default(), hl) & 0x01 != 0 {
                    let f = at + hl + 8..at + hl + 12;
                    let v = read_i32(&snapshot, f.clone(), c.header, "data_offset")?;
                    let v = i32::try_from(i64::from(v) + delta)
                        .map_err(|_| overflow("trun data_offset"))?;
                    if let Some(dst) = payload.get_mut(f) {
                        dst.copy_from_slice(&v.to_be_bytes());
                    }
                }
            }
            at += len;
        }
    }

    // Reassemble: moof header, children before the traf, the traf, after.
    let traf_end = traf_start + usize::try_from(traf.header.size).unwrap_or(usize::MAX);
    let new_traf_size = (traf_hl + payload.len()) as u64;
    let new_moof_size = moof
        .size
        .checked_add_signed(delta)
        .ok_or_else(|| overflow("moof size"))?;
    let mut out = Vec::with_capacity(fragment.len() + new_tfrf.len());
    out.extend_from_slice(
        &header_bytes(moof_bytes, moof.size_field, moof_hl, new_moof_size)
            .ok_or_else(|| overflow("moof size"))?,
    );
    out.extend_from_slice(moof_bytes.get(moof_hl..traf_start).unwrap_or_default());
    let traf_raw = moof_bytes.get(traf_start..traf_end).unwrap_or_default();
    out.extend_from_slice(
        &header_bytes(traf_raw, traf.header.size_field, traf_hl, new_traf_size)
            .ok_or_else(|| overflow("traf size"))?,
    );
    out.extend_from_slice(&payload);
    out.extend_from_slice(moof_bytes.get(traf_end..).unwrap_or_default());
    out.extend_from_slice(rest);
    Ok(out)
}

fn header_at(buf: &[u8], offset: u64) -> Result<crate::boxes::BoxHeader, LookaheadError> {
    match parse_header(buf, offset)? {
        HeaderParse::Header(h) => Ok(h),
        HeaderParse::NeedMore(_) => Err(BoxError::TruncatedHeader {
            offset,
            received: buf.len() as u64,
        }
        .into()),
    }
}

fn refuse_to_end(h: crate::boxes::BoxHeader) -> Result<(), LookaheadError> {
    if h.size_field == SizeField::ToEnd {
        return Err(LookaheadError::SizeToEnd {
            offset: h.offset,
            box_type: h.box_type,
        });
    }
    Ok(())
}

/// The 24-bit flags of a full box whose header is `hl` bytes.
fn flags_of(b: &[u8], hl: usize) -> u32 {
    match b.get(hl..hl + 4) {
        Some(&[_, a, c, d]) => u32::from_be_bytes([0, a, c, d]),
        _ => 0,
    }
}

fn short(h: crate::boxes::BoxHeader, field: &'static str, needed: u64) -> BoxError {
    BoxError::ShortPayload {
        offset: h.offset,
        box_type: h.box_type,
        field,
        needed,
        len: h.payload_len(),
    }
}

fn read_u64(
    b: &[u8],
    r: std::ops::Range<usize>,
    h: crate::boxes::BoxHeader,
    field: &'static str,
) -> Result<u64, BoxError> {
    let mut a = [0u8; 8];
    a.copy_from_slice(b.get(r).ok_or_else(|| short(h, field, 16))?);
    Ok(u64::from_be_bytes(a))
}

fn read_i32(
    b: &[u8],
    r: std::ops::Range<usize>,
    h: crate::boxes::BoxHeader,
    field: &'static str,
) -> Result<i32, BoxError> {
    let mut a = [0u8; 4];
    a.copy_from_slice(b.get(r).ok_or_else(|| short(h, field, 12))?);
    Ok(i32::from_be_bytes(a))
}

/// `raw`'s header (`hl` bytes) with its size set to `size`, in the same
/// form; `None` if a 32-bit size cannot hold it.
fn header_bytes(raw: &[u8], form: SizeField, hl: usize, size: u64) -> Option<Vec<u8>> {
    let mut h = raw.get(..hl)?.to_vec();
    match form {
        SizeField::Large => h.get_mut(8..16)?.copy_from_slice(&size.to_be_bytes()),
        _ => h
            .get_mut(..4)?
            .copy_from_slice(&u32::try_from(size).ok().filter(|s| *s > 1)?.to_be_bytes()),
    }
    Some(h)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::boxes::{BoxReaderConfig, MovieFragment};
    use crate::smooth::{Item, SmoothReader};

    const FIXTURE: &[u8] = include_bytes!("../../../../testdata/smooth/ffmpeg_ismv_push.bin");

    fn fixture_fragments() -> Vec<crate::Fragment> {
        let mut r = SmoothReader::new(BoxReaderConfig::default());
        r.push(FIXTURE);
        r.end();
        let mut out = Vec::new();
        while let Ok(Some(i)) = r.pull() {
            if let Item::Fragment(f) = i {
                out.push(f);
            }
        }
        assert!(out.len() > 4, "the capture holds fragments");
        out
    }

    /// The moof of `bytes` parsed back, the mdat header's length, and the
    /// mdat payload.
    fn parse_back(bytes: &[u8]) -> (MovieFragment, usize, usize, &[u8]) {
        let HeaderParse::Header(moof) = parse_header(bytes, 0).unwrap() else {
            panic!("no moof header")
        };
        let moof_len = moof.size as usize;
        let m = MovieFragment::parse(moof, &bytes[usize::from(moof.header_len)..moof_len]).unwrap();
        let HeaderParse::Header(mdat) = parse_header(&bytes[moof_len..], moof.size).unwrap() else {
            panic!("no mdat header")
        };
        assert_eq!(mdat.box_type, BoxType::FourCc(FourCc::MDAT));
        assert_eq!(
            moof_len as u64 + mdat.size,
            bytes.len() as u64,
            "mdat runs to the end"
        );
        let hl = usize::from(mdat.header_len);
        (m, moof_len, hl, &bytes[moof_len + hl..])
    }

    fn entries(n: u64) -> Tfrf {
        Tfrf {
            version: 1,
            entries: (1..=n)
                .map(|i| (1_000_000_000 + i * 20_000_000, 20_000_000))
                .collect(),
        }
    }

    #[test]
    fn every_captured_fragment_keeps_tfxd_and_gets_the_entries_with_runs_pointing_at_the_mdat_payload()
     {
        for f in fixture_fragments() {
            let (before, before_moof, before_hl, before_payload) = parse_back(&f.bytes);
            let before_traf = &before.track_fragments[0];
            assert!(before_traf.tfrf.is_none(), "ffmpeg writes no tfrf");
            for n in [0, 1, 2] {
                let out = with_tfrf(&f.bytes, &entries(n)).unwrap();
                let (after, moof_len, hl, payload) = parse_back(&out);
                assert_eq!(after.track_fragments.len(), 1);
                let traf = &after.track_fragments[0];
                assert_eq!(traf.tfxd, before_traf.tfxd);
                assert_eq!(traf.tfrf, Some(entries(n)));
                assert_eq!(payload, before_payload, "the samples are untouched");
                assert_eq!(after.sequence_number, before.sequence_number);
                assert_eq!(traf.header, before_traf.header);
                // Each run's data starts where it started in the mdat
                // payload: moved by exactly what the moof grew.
                for (a, b) in traf.runs.iter().zip(&before_traf.runs) {
                    let (Some(a), Some(b)) = (a.data_offset, b.data_offset) else {
                        panic!("ffmpeg writes trun data_offset");
                    };
                    let a_in_payload = a as i64 - (moof_len + hl) as i64;
                    let b_in_payload = b as i64 - (before_moof + before_hl) as i64;
                    assert_eq!(a_in_payload, b_in_payload);
                    assert!(a_in_payload >= 0);
                }
                assert_eq!(
                    traf.runs[0].data_offset,
                    Some((moof_len + hl) as i32),
                    "the first run starts at the mdat payload"
                );
                assert_eq!(out.len(), f.bytes.len() + 29 + 16 * n as usize);
            }
        }
    }

    #[test]
    fn an_encoder_tfrf_is_replaced_not_added_to() {
        let f = &fixture_fragments()[2];
        let once = with_tfrf(&f.bytes, &entries(2)).unwrap();
        let twice = with_tfrf(&once, &entries(1)).unwrap();
        let (m, moof_len, hl, _) = parse_back(&twice);
        assert_eq!(m.track_fragments[0].tfrf, Some(entries(1)));
        assert_eq!(
            m.track_fragments[0].runs[0].data_offset,
            Some((moof_len + hl) as i32)
        );
        assert_eq!(twice, with_tfrf(&f.bytes, &entries(1)).unwrap());
        let count = twice.windows(16).filter(|w| *w == TFRF_UUID.0).count();
        assert_eq!(count, 1, "one tfrf");
    }

    /// A hand-built fragment: moof (mfhd, traf (tfhd, trun, tfxd)) + mdat.
    fn built(tfhd_flags: u32, base: Option<u64>, data_offset: i32, large_moof: bool) -> Vec<u8> {
        let bx = |t: &[u8; 4], p: &[u8]| {
            let mut v = ((8 + p.len()) as u32).to_be_bytes().to_vec();
            v.extend_from_slice(t);
            v.extend_from_slice(p);
            v
        };
        let mut tfhd = (tfhd_flags | u32::from(base.is_some()))
            .to_be_bytes()
            .to_vec();
        tfhd.extend_from_slice(&1u32.to_be_bytes());
        if let Some(b) = base {
            tfhd.extend_from_slice(&b.to_be_bytes());
        }
        let mut trun = 0x0000_0001u32.to_be_bytes().to_vec();
        trun.extend_from_slice(&1u32.to_be_bytes());
        trun.extend_from_slice(&data_offset.to_be_bytes());
        let mut tfxd = b"\0\0\0\x2cuuid".to_vec();
        tfxd.extend_from_slice(&crate::smooth::TFXD_UUID.0);
        tfxd.extend_from_slice(&[1, 0, 0, 0]);
        tfxd.extend_from_slice(&7u64.to_be_bytes());
        tfxd.extend_from_slice(&20_000_000u64.to_be_bytes());
        let traf = bx(
            b"traf",
            &[bx(b"tfhd", &tfhd), bx(b"trun", &trun), tfxd].concat(),
        );
        let body = [bx(b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 9]), traf].concat();
        let mut moof = if large_moof {
            let mut v = 1u32.to_be_bytes().to_vec();
            v.extend_from_slice(b"moof");
            v.extend_from_slice(&(16 + body.len() as u64).to_be_bytes());
            v.extend_from_slice(&body);
            v
        } else {
            bx(b"moof", &body)
        };
        moof.extend_from_slice(&bx(b"mdat", b"SAMPLE"));
        moof
    }

    #[test]
    fn a_64_bit_moof_size_stays_64_bit_and_grows() {
        let src = built(0x02_0000, None, 0, true);
        let moof_len = src.len() - 14;
        let src = {
            // Point the run at the payload now that the size is known.
            let mut s = src.clone();
            let at = s.windows(4).position(|w| w == b"trun").unwrap() + 12;
            s[at..at + 4].copy_from_slice(&((moof_len + 8) as i32).to_be_bytes());
            s
        };
        let out = with_tfrf(&src, &entries(2)).unwrap();
        assert_eq!(&out[..4], &1u32.to_be_bytes());
        let (m, moof_len, hl, payload) = parse_back(&out);
        assert_eq!(payload, b"SAMPLE");
        assert_eq!(
            m.track_fragments[0].runs[0].data_offset,
            Some((moof_len + hl) as i32)
        );
    }

    #[test]
    fn an_explicit_base_data_offset_moves_instead_of_the_runs() {
        let src = built(0, Some(1000), 5, false);
        let out = with_tfrf(&src, &entries(1)).unwrap();
        let (m, ..) = parse_back(&out);
        let t = &m.track_fragments[0];
        assert_eq!(t.header.base_data_offset, Some(1000 + 29 + 16));
        assert_eq!(t.runs[0].data_offset, Some(5));
    }

    #[test]
    fn what_cannot_be_rewritten_is_refused_with_a_reason() {
        let frag = built(0, None, 0, false);
        assert!(matches!(
            with_tfrf(&frag[..20], &entries(1)),
            Err(LookaheadError::Box(BoxError::Truncated { .. }))
        ));
        let moof_len = frag.len() - 14;
        let mut no_mdat = frag[..moof_len].to_vec();
        no_mdat.extend_from_slice(b"\0\0\0\x08free");
        assert!(matches!(
            with_tfrf(&no_mdat, &entries(1)),
            Err(LookaheadError::NotAFragment {
                expected: FourCc::MDAT,
                ..
            })
        ));
        assert!(matches!(
            with_tfrf(&frag[moof_len..], &entries(1)),
            Err(LookaheadError::NotAFragment {
                expected: FourCc::MOOF,
                ..
            })
        ));
        let mut saio = frag.clone();
        let at = saio.windows(4).position(|w| w == b"trun").unwrap();
        saio[at..at + 4].copy_from_slice(b"saio");
        assert!(matches!(
            with_tfrf(&saio, &entries(1)),
            Err(LookaheadError::AuxiliaryOffsets { .. })
        ));
        let many = Tfrf {
            version: 1,
            entries: vec![(0, 1); 256],
        };
        assert_eq!(
            with_tfrf(&frag, &many),
            Err(LookaheadError::TooManyEntries { count: 256 })
        );
        // No panic on any cut of a real fragment.
        let f = &fixture_fragments()[1];
        for cut in 0..f.moof_len + 16 {
            let _ = with_tfrf(&f.bytes[..cut], &entries(2));
        }
    }
}
