//! Smooth Streaming ingest: an encoder POSTs (or PUTs) one long body per
//! stream to `/in/{channel}/{pipeline}/{name}.isml/Streams({stream})` or
//! `…/{name}.isml/Events({id})/Streams({stream})`, chunked or with a
//! length, as IIS Media Services takes it.
//!
//! The body is read as it arrives through [`SmoothReader`]: once its
//! header (`ftyp`, the Live Server Manifest, `moov`) is read, the push asks
//! the channel's Smooth driver whether its tracks may join the publishing
//! point; then each fragment (`moof` + `mdat`) is published into the store
//! complete-only as soon as it has arrived whole, while the POST goes on,
//! and the driver is told. A body cut inside a fragment has published the
//! fragments before it and nothing of the cut one.
//!
//! Choices:
//! - An empty body (some encoders probe with one) answers 200 and tells
//!   the driver nothing.
//! - Fragments are stored under the pipeline's input root at
//!   `{name}.isml/{track}/{bitrate}/{time}-{push}.ismv`: the push id (random,
//!   per POST) keeps a resend after a reconnect from overwriting a copy the
//!   output may be serving, so an output URL always returns the same bytes.
//! - A fragment whose `tfxd` time plus duration passes 2^64 starts before
//!   zero: ffmpeg's first AAC fragment carries the encoder's priming as a
//!   wrapped negative time (`18446744073709338283`, −213 333). It has no
//!   name a client could ask for, so it is skipped (counted in
//!   `tandem_smooth_fragments_skipped_total`); the track starts at its next
//!   fragment.
//! - Inside one push each track's times must increase; a time that does
//!   not, a fragment without `tfxd`, a track `moov` does not list, a body
//!   that is not ISO-BMFF or a box over the body limit ends the POST with a
//!   4xx and a logged, counted reason. Fragments published before stay; the
//!   other pipeline is not affected.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header, request::Parts};
use http_body_util::BodyExt;
use metrics::counter;
use tandem_core::ObjectPath;
use tandem_mp4::boxes::Movie;
use tandem_mp4::{BoxError, BoxReaderConfig, Item, LiveServerManifest, SmoothError, SmoothReader};
use tandem_smooth::{EndOfStream, FragmentNotice, StreamStart, Track, TrackKey, TrackMedia};
use tandem_store::Parents;

use super::Target;
use crate::AppState;
use crate::error::HttpError;
use crate::notice::SmoothNotice;

/// How long a push waits for the driver to take its tracks.
const START_WAIT: Duration = Duration::from_secs(10);

/// What a Smooth ingest URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushPath {
    /// The publishing point: `sports` for `sports.isml`.
    pub point: String,
    /// `Events({id})`, when given.
    pub event: Option<String>,
    /// `Streams({stream})`.
    pub stream: String,
}

/// Whether `path` (relative to an input root) is under a publishing point:
/// its first segment ends in `.isml`.
pub fn is_smooth(path: &ObjectPath) -> bool {
    path.segments()
        .first()
        .is_some_and(|s| s.to_ascii_lowercase().ends_with(".isml"))
}

/// A name that goes into a URL, a store key and XML: 1 to 64 letters,
/// digits, `_`, `-` or `.`.
pub fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && s != "."
        && s != ".."
}

/// Parses `{name}.isml[/Events({id})]/Streams({stream})`.
pub fn parse_push_path(path: &ObjectPath) -> Result<PushPath, HttpError> {
    let shape = || {
        HttpError::bad_request(format!(
            "{path} is not a Smooth ingest URL: expected {{name}}.isml/Streams({{id}}) or {{name}}.isml/Events({{id}})/Streams({{id}}), names of letters, digits, '_', '-' or '.'"
        ))
    };
    let inner = |s: &str, what: &str| {
        s.strip_prefix(what)
            .and_then(|r| r.strip_prefix('('))
            .and_then(|r| r.strip_suffix(')'))
            .filter(|r| valid_name(r))
            .map(str::to_owned)
    };
    let segs = path.segments();
    let (first, event, stream) = match segs {
        [first, stream] => (first, None, stream),
        [first, event, stream] => (
            first,
            Some(inner(event, "Events").ok_or_else(shape)?),
            stream,
        ),
        _ => return Err(shape()),
    };
    let point = first
        .get(..first.len().saturating_sub(5))
        .filter(|p| valid_name(p))
        .ok_or_else(shape)?;
    Ok(PushPath {
        point: point.to_owned(),
        event,
        stream: inner(stream, "Streams").ok_or_else(shape)?,
    })
}

/// A track of the push: how its fragments are named and checked.
struct PushTrack {
    key: TrackKey,
    /// End of the last fragment's time (its `tfxd` time), to refuse a time
    /// that does not increase.
    last: Option<u64>,
}

/// One POST, as it is read.
struct Push<'a> {
    st: &'a AppState,
    t: &'a Target,
    path: PushPath,
    /// Random, per POST: part of every stored fragment's name.
    id: String,
    reader: SmoothReader,
    manifest: Option<LiveServerManifest>,
    /// Set once the driver took the push's tracks (by `tkhd` track_ID).
    tracks: Option<HashMap<u32, PushTrack>>,
    mfra: bool,
    published: u64,
}

/// Answers a Smooth push (POST or PUT).
pub(super) async fn post(
    st: &AppState,
    t: &Target,
    parts: &Parts,
    body: Body,
) -> Result<Response, HttpError> {
    let path = parse_push_path(&t.path)?;
    let announced = match parts.headers.get(header::CONTENT_LENGTH) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| HttpError::bad_request("Content-Length is not a number"))?,
        ),
        None => None,
    };
    let mut id = [0u8; 8];
    if getrandom::fill(&mut id).is_err() {
        return Err(HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "no randomness for the push id",
        ));
    }
    let mut push = Push {
        st,
        t,
        path,
        id: id.iter().map(|b| format!("{b:02x}")).collect(),
        reader: SmoothReader::new(BoxReaderConfig {
            max_box_size: st.cfg.max_body_bytes,
        }),
        manifest: None,
        tracks: None,
        mfra: false,
        published: 0,
    };
    match push.run(body, announced).await {
        Ok(r) => Ok(r),
        Err(e) => {
            if push.tracks.is_some() {
                push.notify(SmoothNotice::Dropped {
                    point: push.path.point.clone(),
                    pipeline: t.pipeline,
                    stream: push.path.stream.clone(),
                });
            }
            counter!("tandem_smooth_pushes_broken_total", "channel" => t.channel.id.to_string(), "pipeline" => t.pipeline.to_string(), "reason" => e.metric_reason).increment(1);
            tracing::warn!(
                channel = %t.channel.id,
                pipeline = %t.pipeline,
                point = push.path.point,
                stream = push.path.stream,
                published = push.published,
                reason = e.metric_reason,
                error = %e.reason,
                "smooth push ended"
            );
            Err(e)
        }
    }
}

impl Push<'_> {
    async fn run(&mut self, mut body: Body, announced: Option<u64>) -> Result<Response, HttpError> {
        let idle = self.st.cfg.body_idle_timeout;
        let mut received: u64 = 0;
        loop {
            let frame = match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => {
                    return Err(HttpError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "timeout",
                        format!("no body bytes for {} s; the push was ended", idle.as_secs()),
                    ));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    if let Some(slow) = crate::guard::body::too_slow(&e) {
                        return Err(HttpError::new(
                            StatusCode::REQUEST_TIMEOUT,
                            "too_slow",
                            format!("{slow}; fragments received whole are kept"),
                        ));
                    }
                    return Err(HttpError::new(
                        StatusCode::BAD_REQUEST,
                        "incomplete",
                        format!("the body broke off ({e}); fragments received whole are kept"),
                    ));
                }
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            received += data.len() as u64;
            self.reader.push(&data);
            self.drain().await?;
        }
        if let Some(n) = announced.filter(|n| *n != received) {
            return Err(HttpError::new(
                StatusCode::BAD_REQUEST,
                "incomplete",
                format!("Content-Length announced {n} bytes but {received} arrived"),
            ));
        }
        if received == 0 {
            // A connection probe.
            return Ok(ok());
        }
        self.reader.end();
        self.drain().await?;
        if self.tracks.is_some() {
            let how = if self.mfra {
                EndOfStream::Mfra
            } else {
                EndOfStream::Eos
            };
            self.notify(SmoothNotice::Ended {
                point: self.path.point.clone(),
                pipeline: self.t.pipeline,
                stream: self.path.stream.clone(),
                how,
            });
        }
        tracing::debug!(channel = %self.t.channel.id, pipeline = %self.t.pipeline, point = self.path.point, stream = self.path.stream, fragments = self.published, "smooth push ended");
        Ok(ok())
    }

    fn notify(&self, n: SmoothNotice) -> bool {
        self.st.notices.publish_smooth(&self.t.channel.id, n)
    }

    /// Handles every item the body has made whole so far.
    async fn drain(&mut self) -> Result<(), HttpError> {
        loop {
            match self.reader.pull() {
                Ok(None) => return Ok(()),
                Ok(Some(item)) => self.item(item).await?,
                Err(e) => return Err(refusal(&e)),
            }
        }
    }

    async fn item(&mut self, item: Item) -> Result<(), HttpError> {
        match item {
            Item::Manifest { manifest, .. } => self.manifest = Some(manifest),
            Item::Movie { movie, .. } if self.tracks.is_none() => self.start(&movie).await?,
            // A repeated header changes nothing once the push has started.
            Item::Movie { .. } | Item::FileType { .. } | Item::Skipped { .. } => {}
            Item::End { .. } => self.mfra = true,
            Item::Fragment(f) => self.fragment(f).await?,
        }
        Ok(())
    }

    /// Asks the driver to take the push's tracks.
    async fn start(&mut self, movie: &Movie) -> Result<(), HttpError> {
        let manifest = self.manifest.as_ref().ok_or_else(|| {
            HttpError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "no_manifest",
                "moov arrived without a Live Server Manifest box before it; a Smooth push declares its tracks there",
            )
        })?;
        let tracks = tracks_of(manifest, movie)?;
        let by_id = tracks
            .iter()
            .map(|(id, t)| {
                (
                    *id,
                    PushTrack {
                        key: t.key(),
                        last: None,
                    },
                )
            })
            .collect();
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = self.notify(SmoothNotice::Started {
            point: self.path.point.clone(),
            start: StreamStart {
                pipeline: self.t.pipeline,
                stream: self.path.stream.clone(),
                event: self.path.event.clone(),
                tracks: tracks.into_iter().map(|(_, t)| t).collect(),
            },
            reply,
        });
        let unavailable = || {
            HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the channel's Smooth publishing point is not running",
            )
        };
        if !sent {
            return Err(unavailable());
        }
        match tokio::time::timeout(START_WAIT, answer).await {
            Ok(Ok(Ok(()))) => {
                self.tracks = Some(by_id);
                Ok(())
            }
            Ok(Ok(Err(e))) => {
                let status = match e {
                    tandem_smooth::SmoothError::StaleEvent { .. }
                    | tandem_smooth::SmoothError::TooManyStreams { .. } => StatusCode::CONFLICT,
                    _ => StatusCode::UNPROCESSABLE_ENTITY,
                };
                Err(HttpError::new(status, "refused", e.to_string()))
            }
            Ok(Err(_)) | Err(_) => Err(unavailable()),
        }
    }

    async fn fragment(&mut self, f: tandem_mp4::Fragment) -> Result<(), HttpError> {
        // The fragment's last byte has arrived: the publish delay runs
        // from here, so that it counts the store write too.
        let complete = Instant::now();
        let tfxd = f.timing().map_err(|e| refusal(&e))?;
        let Some(tracks) = self.tracks.as_mut() else {
            return Err(HttpError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "no_header",
                format!(
                    "byte {}: a fragment before the push's Live Server Manifest and moov",
                    f.offset
                ),
            ));
        };
        let Some(track) = tracks.get_mut(&f.track_id) else {
            return Err(HttpError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_track",
                format!(
                    "byte {}: fragment of track {}, which the Live Server Manifest does not list",
                    f.offset, f.track_id
                ),
            ));
        };
        let channel = self.t.channel.id.to_string();
        if tfxd.time.checked_add(tfxd.duration).is_none() {
            counter!("tandem_smooth_fragments_skipped_total", "channel" => channel, "reason" => "negative_time").increment(1);
            tracing::debug!(channel = %self.t.channel.id, pipeline = %self.t.pipeline, track = %track.key, time = tfxd.time, "fragment starting before time 0 skipped");
            return Ok(());
        }
        if let Some(last) = track.last.filter(|l| tfxd.time <= *l) {
            return Err(HttpError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "time_backwards",
                format!(
                    "byte {}: track {} time {} does not follow {last}, the previous fragment's time in this push; a restarted encoder starts a new POST",
                    f.offset, track.key, tfxd.time
                ),
            ));
        }
        track.last = Some(tfxd.time);
        let key_name = track.key.clone();
        let rel = ObjectPath::from_segments([
            format!("{}.isml", self.path.point),
            key_name.name.clone(),
            key_name.bitrate.to_string(),
            format!("{}-{}.ismv", tfxd.time, self.id),
        ])
        .map_err(|e| HttpError::bad_request(e.to_string()))?;
        let key = self.t.root_key().join_path(&rel);
        let mut w = self.st.store.begin_put(&key, Parents::Create).await?;
        let size = f.bytes.len() as u64;
        w.write(f.bytes).await?;
        w.commit().await?;
        self.published += 1;
        let now = self.st.clock.now();
        self.t
            .channel
            .input(self.t.pipeline)
            .record_write(now, size);
        crate::metrics::object_published(&channel, &self.t.pipeline.to_string(), size);
        self.notify(SmoothNotice::Fragment {
            point: self.path.point.clone(),
            fragment: FragmentNotice {
                pipeline: self.t.pipeline,
                stream: self.path.stream.clone(),
                track: key_name,
                time: tfxd.time,
                duration: tfxd.duration,
                bytes: size,
                storage_key: key.to_string(),
            },
            at: complete,
        });
        Ok(())
    }
}

fn ok() -> Response {
    let mut r = StatusCode::OK.into_response();
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, http::HeaderValue::from(0));
    r
}

/// The status and reason a broken push body gets.
fn refusal(e: &SmoothError) -> HttpError {
    let (status, reason) = match e {
        SmoothError::NotSmooth { .. } | SmoothError::Box(BoxError::BadType { .. }) => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_smooth")
        }
        SmoothError::Box(BoxError::TooLarge { .. } | BoxError::ToEndTooLarge { .. }) => {
            (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
        }
        SmoothError::Box(BoxError::Truncated { .. } | BoxError::TruncatedHeader { .. })
        | SmoothError::FragmentCut { .. } => (StatusCode::BAD_REQUEST, "incomplete"),
        SmoothError::MissingTfxd { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "no_tfxd"),
        SmoothError::UnknownTrack { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_track"),
        SmoothError::Manifest(_) => (StatusCode::UNPROCESSABLE_ENTITY, "bad_manifest"),
        _ => (StatusCode::UNPROCESSABLE_ENTITY, "malformed"),
    };
    HttpError::new(status, reason, e.to_string())
}

/// The push's tracks as the publishing point knows them, by `tkhd`
/// track_ID: the Live Server Manifest's description with `moov`'s
/// timescale (the unit of the fragments' `tfxd` times).
fn tracks_of(m: &LiveServerManifest, movie: &Movie) -> Result<Vec<(u32, Track)>, HttpError> {
    use tandem_mp4::TrackKind as K;
    let bad = |msg: String| HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_manifest", msg);
    let mut out = Vec::with_capacity(m.tracks.len());
    for t in &m.tracks {
        let id = t
            .track_id
            .ok_or_else(|| bad("a Live Server Manifest track has no trackID".into()))?;
        let timescale = movie
            .track(id)
            .map(|mt| u64::from(mt.timescale))
            .ok_or_else(|| {
                bad(format!(
                    "track {id} of the Live Server Manifest is not in moov"
                ))
            })?;
        let kind = match &t.kind {
            K::Video => "video",
            K::Audio => "audio",
            K::Text => "text",
            K::Other(o) => {
                return Err(bad(format!(
                    "track {id} is a {o:?}, not video, audio or a text stream"
                )));
            }
        };
        let media = match t.kind {
            K::Video => TrackMedia::Video {
                max_width: t.max_width.or(t.display_width).unwrap_or(0),
                max_height: t.max_height.or(t.display_height).unwrap_or(0),
                display_width: t.display_width.filter(|w| Some(*w) != t.max_width),
                display_height: t.display_height.filter(|h| Some(*h) != t.max_height),
                nal_unit_length_field: t
                    .param("NALUnitLengthField")
                    .and_then(|v| v.trim().parse().ok()),
            },
            K::Audio => TrackMedia::Audio {
                sampling_rate: t.sampling_rate.unwrap_or(0),
                channels: t.channels.unwrap_or(2),
                bits_per_sample: t.bits_per_sample.unwrap_or(16),
                packet_size: t.packet_size.unwrap_or(4),
                audio_tag: t.audio_tag.unwrap_or(255),
            },
            _ => TrackMedia::Text {
                subtype: t.subtype.clone().unwrap_or_else(|| "SUBT".into()),
            },
        };
        let bitrate = u32::try_from(t.system_bitrate).map_err(|_| {
            bad(format!(
                "track {id}: systemBitrate {} is too large",
                t.system_bitrate
            ))
        })?;
        out.push((
            id,
            Track {
                name: t.track_name.clone().unwrap_or_else(|| kind.to_owned()),
                bitrate,
                timescale,
                four_cc: t
                    .fourcc
                    .clone()
                    .ok_or_else(|| bad(format!("track {id} has no FourCC")))?,
                codec_private_data: t.codec_private_data_hex().unwrap_or_default(),
                language: t.system_language.clone(),
                media,
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> ObjectPath {
        ObjectPath::from_url_path(s).unwrap_or_default()
    }

    #[test]
    fn push_urls_name_the_point_the_event_and_the_stream() {
        assert_eq!(
            parse_push_path(&path("sports.isml/Streams(s1)")).ok(),
            Some(PushPath {
                point: "sports".into(),
                event: None,
                stream: "s1".into()
            })
        );
        assert_eq!(
            parse_push_path(&path("sports.isml/Events(1585232182)/Streams(stream0)")).ok(),
            Some(PushPath {
                point: "sports".into(),
                event: Some("1585232182".into()),
                stream: "stream0".into()
            })
        );
        for bad in [
            "sports.isml",
            "sports.isml/s1",
            "sports.isml/Streams()",
            "sports.isml/Streams(a b)",
            ".isml/Streams(s1)",
            "sports.isml/Events(1)/x/Streams(s1)",
        ] {
            assert!(parse_push_path(&path(bad)).is_err(), "{bad} accepted");
        }
    }
}
