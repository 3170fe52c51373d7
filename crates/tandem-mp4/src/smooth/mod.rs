//! A Smooth Streaming push, read as it arrives.
//!
//! A Smooth encoder POSTs one long body per stream to
//! `…/{name}.isml/Streams({stream})`: `ftyp`, the Live Server Manifest
//! `uuid` box, `moov`, then a `moof`/`mdat` pair per fragment (each `moof`
//! holding one `traf` with a `tfxd`), and `mfra` when the stream ends.
//! ffmpeg 5.1 (`-f ismv -movflags isml+frag_keyframe`) sends exactly that,
//! chunked, cut every 32 KiB regardless of box boundaries; see
//! `testdata/smooth/README.md`.
//!
//! [`SmoothReader`] turns that body into [`Item`]s: the header boxes
//! parsed, each fragment with its track, `tfxd` time and duration and its
//! exact `moof`+`mdat` bytes. Decisions:
//!
//! - The body must start with `ftyp`; anything else is
//!   [`SmoothError::NotSmooth`] after 8 bytes. An empty body is fine (some
//!   encoders probe with an empty POST).
//! - A `moof` must be followed directly by its `mdat`; a fragment comes out
//!   only once both are whole, so a body cut inside a fragment yields the
//!   fragments before it and an error, never part of a fragment.
//! - A Smooth fragment carries one track: a `moof` with zero or several
//!   `traf` boxes is refused. Once `moov` has been read, a fragment of a
//!   track it does not list is refused.
//! - A fragment without `tfxd` is still handed out, with `tfxd: None` and
//!   its duration from `trun`: whether to refuse it is the origin's call
//!   ([`Fragment::timing`] gives the error).
//! - `free`, `skip` and unknown boxes, `uuid` or not, are handed out as
//!   [`Item::Skipped`] and do not stop the stream.
//!
//! Errors are sticky, as in [`BoxReader`]: items before the error first,
//! then the error on every call. Nothing here depends on how the body was
//! cut into pieces.

mod fragment;
pub mod lookahead;
pub mod manifest;
pub mod tfrf;
pub mod tfxd;

pub use fragment::Fragment;
pub use lookahead::{LookaheadError, with_tfrf};
pub use manifest::{
    LIVE_SERVER_MANIFEST_UUID, LiveServerManifest, ManifestError, ManifestTrack, TrackKind,
};
pub use tfrf::{TFRF_UUID, Tfrf};
pub use tfxd::{TFXD_UUID, Tfxd};

use crate::boxes::{
    BoxError, BoxHeader, BoxReader, BoxReaderConfig, BoxType, FourCc, Ftyp, Movie, MovieFragment,
    RawBox,
};

/// One thing read from a Smooth push, in body order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// `ftyp` (major brand `isml` from ffmpeg).
    FileType { ftyp: Ftyp, raw: RawBox },
    /// The Live Server Manifest box.
    Manifest {
        manifest: LiveServerManifest,
        raw: RawBox,
    },
    /// `moov`.
    Movie { movie: Movie, raw: RawBox },
    /// A `moof` and its `mdat`.
    Fragment(Fragment),
    /// `mfra`: the encoder ended the stream.
    End { raw: RawBox },
    /// A top-level box this reader does not use (`free`, `skip`, an
    /// unknown type or `uuid`), passed over.
    Skipped { raw: RawBox },
}

/// A Smooth push that cannot be read further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SmoothError {
    #[error(transparent)]
    Box(#[from] BoxError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("body starts with a {found} box, expected ftyp; is this a Smooth Streaming push?")]
    NotSmooth { found: FourCc },
    #[error("byte {offset}: moof is followed by {found}, expected its mdat")]
    MoofWithoutMdat { offset: u64, found: BoxType },
    #[error("byte {offset}: body ended after a moof, before its mdat")]
    FragmentCut { offset: u64 },
    #[error("byte {offset}: mdat without a moof before it")]
    MdatWithoutMoof { offset: u64 },
    #[error("byte {offset}: moof has {count} traf boxes, a Smooth fragment has exactly 1")]
    TrackFragmentCount { offset: u64, count: usize },
    #[error(
        "byte {offset}: fragment of track {track_id}, which moov does not list (tracks {known:?})"
    )]
    UnknownTrack {
        offset: u64,
        track_id: u32,
        known: Vec<u32>,
    },
    #[error(
        "byte {offset}: fragment of track {track_id} has no tfxd box, so it has no Smooth time"
    )]
    MissingTfxd { offset: u64, track_id: u32 },
}

/// Reads a Smooth push body as it arrives.
///
/// Call order: [`push`](Self::push) each piece of the body, then
/// [`pull`](Self::pull) until `Ok(None)`; when the body ends (cleanly or
/// not) call [`end`](Self::end) and pull again to get what remains, or the
/// truncation error. Memory stays within one fragment (two boxes of at most
/// `max_box_size`) plus whatever was pushed and not yet pulled.
#[derive(Debug)]
pub struct SmoothReader {
    boxes: BoxReader,
    /// The body's first bytes, held until the first box type is known.
    prefix: Vec<u8>,
    checked: bool,
    movie: Option<Movie>,
    manifest: Option<LiveServerManifest>,
    error: Option<SmoothError>,
}

impl SmoothReader {
    pub fn new(cfg: BoxReaderConfig) -> Self {
        Self {
            boxes: BoxReader::new(cfg),
            prefix: Vec::with_capacity(8),
            checked: false,
            movie: None,
            manifest: None,
            error: None,
        }
    }

    /// The next bytes of the body.
    pub fn push(&mut self, data: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if self.checked {
            return self.boxes.push(data);
        }
        let take = (8 - self.prefix.len()).min(data.len());
        self.prefix.extend_from_slice(&data[..take]);
        if self.prefix.len() < 8 {
            return;
        }
        let mut found = [0u8; 4];
        found.copy_from_slice(&self.prefix[4..8]);
        if FourCc(found) != FourCc::FTYP {
            self.error = Some(SmoothError::NotSmooth {
                found: FourCc(found),
            });
            return;
        }
        self.checked = true;
        let prefix = std::mem::take(&mut self.prefix);
        self.boxes.push(&prefix);
        self.boxes.push(&data[take..]);
    }

    /// The body has ended.
    pub fn end(&mut self) {
        if !self.checked && self.error.is_none() {
            // Fewer than 8 bytes: let the box reader call it truncated.
            let prefix = std::mem::take(&mut self.prefix);
            self.boxes.push(&prefix);
        }
        self.boxes.end();
    }

    /// The next item, `Ok(None)` when more input (or the end) is needed, or
    /// the error that stopped the stream once the items before it are out.
    pub fn pull(&mut self) -> Result<Option<Item>, SmoothError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let result = self.next_item();
        if let Err(e) = &result {
            // Nothing after an error is handed out: let go of it now.
            self.boxes.discard();
            self.error = Some(e.clone());
        }
        result
    }

    /// The last `moov` read, if any.
    pub fn movie(&self) -> Option<&Movie> {
        self.movie.as_ref()
    }

    /// The last Live Server Manifest read, if any.
    pub fn manifest(&self) -> Option<&LiveServerManifest> {
        self.manifest.as_ref()
    }

    /// Bytes held by the reader.
    pub fn buffered_len(&self) -> usize {
        self.boxes.buffered_len() + self.prefix.len()
    }

    fn next_item(&mut self) -> Result<Option<Item>, SmoothError> {
        let Some(first) = self.boxes.peek_ready(0).copied() else {
            return self.stalled();
        };
        if first.box_type == BoxType::FourCc(FourCc::MOOF) {
            return match self.boxes.peek_ready(1).copied() {
                None => {
                    self.stalled()?;
                    if self.boxes.is_ended() {
                        Err(SmoothError::FragmentCut {
                            offset: first.offset,
                        })
                    } else {
                        Ok(None)
                    }
                }
                Some(next) if next.box_type == BoxType::FourCc(FourCc::MDAT) => {
                    self.fragment(first)
                }
                Some(next) => Err(SmoothError::MoofWithoutMdat {
                    offset: first.offset,
                    found: next.box_type,
                }),
            };
        }
        let Some((header, bytes)) = self.boxes.take_ready(1) else {
            return Ok(None);
        };
        let raw = RawBox { header, bytes };
        let item = match header.box_type {
            BoxType::FourCc(FourCc::FTYP) => Item::FileType {
                ftyp: Ftyp::parse(header, raw.payload())?,
                raw,
            },
            BoxType::Uuid(LIVE_SERVER_MANIFEST_UUID) => {
                let manifest = LiveServerManifest::parse(header, raw.payload())?;
                self.manifest = Some(manifest.clone());
                Item::Manifest { manifest, raw }
            }
            BoxType::FourCc(FourCc::MOOV) => {
                let movie = Movie::parse(header, raw.payload())?;
                self.movie = Some(movie.clone());
                Item::Movie { movie, raw }
            }
            BoxType::FourCc(FourCc::MDAT) => {
                return Err(SmoothError::MdatWithoutMoof {
                    offset: header.offset,
                });
            }
            BoxType::FourCc(FourCc::MFRA) => Item::End { raw },
            _ => Item::Skipped { raw },
        };
        Ok(Some(item))
    }

    /// No complete box ready: the box reader's error, or wait.
    fn stalled(&self) -> Result<Option<Item>, SmoothError> {
        match self.boxes.error() {
            Some(e) => Err(e.clone().into()),
            None => Ok(None),
        }
    }

    fn fragment(&mut self, moof: BoxHeader) -> Result<Option<Item>, SmoothError> {
        let Some((_, bytes)) = self.boxes.take_ready(2) else {
            return Ok(None);
        };
        // moof.size fits in the buffer it came from.
        let moof_len = moof.size as usize;
        let payload = bytes
            .get(usize::from(moof.header_len)..moof_len)
            .unwrap_or_default();
        let parsed = MovieFragment::parse(moof, payload)?;
        let [traf] = parsed.track_fragments.as_slice() else {
            return Err(SmoothError::TrackFragmentCount {
                offset: moof.offset,
                count: parsed.track_fragments.len(),
            });
        };
        let track_id = traf.header.track_id;
        let defaults = match &self.movie {
            None => None,
            Some(movie) => match movie.track(track_id) {
                Some(t) => t.defaults.as_ref(),
                None => {
                    return Err(SmoothError::UnknownTrack {
                        offset: moof.offset,
                        track_id,
                        known: movie.tracks.iter().map(|t| t.track_id).collect(),
                    });
                }
            },
        };
        Ok(Some(Item::Fragment(Fragment {
            offset: moof.offset,
            sequence_number: parsed.sequence_number,
            track_id,
            tfxd: traf.tfxd,
            tfrf: traf.tfrf.clone(),
            sample_count: traf.sample_count(),
            run_duration: traf.run_duration(defaults),
            moof_len,
            bytes,
        })))
    }
}

impl Default for SmoothReader {
    fn default() -> Self {
        Self::new(BoxReaderConfig::default())
    }
}
