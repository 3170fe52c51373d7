//! Top-level boxes out of a body that arrives in pieces.
//!
//! An HTTP body (ffmpeg's chunked POST cuts it every 32 KiB, wherever a box
//! happens to be) is pushed in as it arrives; complete boxes come out, each
//! as one [`Bytes`] split off the reader's buffer without a copy. The reader
//! checks each header as soon as its bytes are in, so a box over the limit is
//! refused before any of its payload is kept, and a body that does not start
//! with a box header is refused after at most 32 bytes.
//!
//! Memory: the reader keeps the boxes completed but not yet taken, plus the
//! one box being received (at most [`BoxReaderConfig::max_box_size`]).
//! Taking boxes after every [`BoxReader::push`] keeps it to the latter.
//!
//! Errors are sticky: the boxes completed before the error are handed out
//! first, then [`BoxReader::next_box`] returns the error on every call, and
//! further input is dropped. Where the error is found does not depend on how
//! the body was cut into pieces.

use super::{BoxError, BoxHeader, HeaderParse, RawBox, SizeField, parse_header};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;

/// Limits of a [`BoxReader`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoxReaderConfig {
    /// The largest top-level box accepted, header included. The default,
    /// 64 MiB, holds a 6-second fragment at 80 Mbit/s: four times the
    /// highest bitrate a MediaLive Smooth output group is usually given.
    pub max_box_size: u64,
}

impl Default for BoxReaderConfig {
    fn default() -> Self {
        Self {
            max_box_size: 64 << 20,
        }
    }
}

/// Where the box being received stands.
#[derive(Clone, Copy, Debug)]
enum Partial {
    /// Collecting the header (its bytes so far sit after the ready boxes).
    Header,
    /// Header checked; this many payload bytes still to come.
    Body { header: BoxHeader, remaining: u64 },
    /// `size == 0`: everything up to the end of the body.
    ToEnd { header: BoxHeader },
}

/// Splits a streamed body into complete top-level boxes.
///
/// Call order: [`push`](Self::push) as bytes arrive, [`next_box`](Self::next_box)
/// until it returns `Ok(None)`, and [`end`](Self::end) once the body has
/// ended (cleanly or not); then `next_box` once more reports a truncated last
/// box, or `Ok(None)` for a body that ended on a box boundary.
#[derive(Debug)]
pub struct BoxReader {
    max_box_size: u64,
    /// Ready boxes, then the bytes received of the partial box.
    buf: BytesMut,
    ready: VecDeque<BoxHeader>,
    /// Bytes of `buf` taken by ready boxes.
    ready_len: usize,
    partial: Partial,
    /// Body offset of `buf[0]`.
    base: u64,
    ended: bool,
    error: Option<BoxError>,
}

impl BoxReader {
    pub fn new(cfg: BoxReaderConfig) -> Self {
        Self {
            max_box_size: cfg.max_box_size.min(usize::MAX as u64),
            buf: BytesMut::new(),
            ready: VecDeque::new(),
            ready_len: 0,
            partial: Partial::Header,
            base: 0,
            ended: false,
            error: None,
        }
    }

    /// The next bytes of the body. Bytes pushed after [`end`](Self::end) or
    /// after an error are dropped.
    pub fn push(&mut self, mut data: &[u8]) {
        while !self.ended && self.error.is_none() {
            self.settle();
            if data.is_empty() || self.error.is_some() {
                return;
            }
            let partial_len = (self.buf.len() - self.ready_len) as u64;
            let take = match &mut self.partial {
                Partial::Header => {
                    // settle() left an incomplete header: ask for what it needs.
                    let need =
                        match parse_header(&self.buf[self.ready_len..], self.partial_offset()) {
                            Ok(HeaderParse::NeedMore(n)) => n,
                            _ => 8,
                        };
                    need.saturating_sub(partial_len as usize).max(1)
                }
                Partial::Body { remaining, .. } => {
                    let take = (*remaining).min(data.len() as u64);
                    *remaining -= take;
                    take as usize
                }
                Partial::ToEnd { header } => {
                    let size = partial_len.saturating_add(data.len() as u64);
                    if size > self.max_box_size {
                        let e = BoxError::ToEndTooLarge {
                            offset: header.offset,
                            box_type: header.box_type,
                            max: self.max_box_size,
                        };
                        self.fail(e);
                        return;
                    }
                    data.len()
                }
            };
            let take = take.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
    }

    /// The body has ended. A box cut short becomes the reader's error; a
    /// `size == 0` box is completed with the bytes received.
    pub fn end(&mut self) {
        if self.ended {
            return;
        }
        self.settle();
        self.ended = true;
        if self.error.is_some() {
            return;
        }
        let received = (self.buf.len() - self.ready_len) as u64;
        match self.partial {
            Partial::Header if received == 0 => {}
            Partial::Header => self.fail(BoxError::TruncatedHeader {
                offset: self.partial_offset(),
                received,
            }),
            Partial::Body { header, .. } => self.fail(BoxError::Truncated {
                offset: header.offset,
                box_type: header.box_type,
                size: header.size,
                received,
            }),
            Partial::ToEnd { mut header } => {
                header.size = received;
                self.complete(header);
            }
        }
    }

    /// The next complete box, `Ok(None)` when more input (or the end) is
    /// needed, or the reader's error once the boxes before it are taken.
    pub fn next_box(&mut self) -> Result<Option<RawBox>, BoxError> {
        match self.take_ready(1) {
            Some((header, bytes)) => Ok(Some(RawBox { header, bytes })),
            None => match &self.error {
                Some(e) => Err(e.clone()),
                None => Ok(None),
            },
        }
    }

    /// Whether [`end`](Self::end) was called.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The reader's error, if it has one (boxes before it may still be
    /// waiting to be taken).
    pub fn error(&self) -> Option<&BoxError> {
        self.error.as_ref()
    }

    /// Bytes held: complete boxes not yet taken and the partial box.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// Bytes of the body received so far (and not dropped after an error).
    pub fn received(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// The `i`-th complete box not yet taken.
    pub(crate) fn peek_ready(&self, i: usize) -> Option<&BoxHeader> {
        self.ready.get(i)
    }

    /// Takes the next `n` complete boxes as one contiguous [`Bytes`] (no
    /// copy), with the first one's header. `None` unless `n` are ready.
    pub(crate) fn take_ready(&mut self, n: usize) -> Option<(BoxHeader, Bytes)> {
        if n == 0 || self.ready.len() < n {
            return None;
        }
        let first = *self.ready.front()?;
        let mut len = 0usize;
        for h in self.ready.drain(..n) {
            // Every ready box fits in the buffer, so this neither overflows
            // nor truncates.
            len += h.size as usize;
        }
        self.ready_len -= len;
        self.base += len as u64;
        Some((first, self.buf.split_to(len).freeze()))
    }

    /// Drops everything held, keeping the error (if any) and the offsets.
    pub(crate) fn discard(&mut self) {
        self.base += self.buf.len() as u64;
        self.buf = BytesMut::new();
        self.ready.clear();
        self.ready_len = 0;
        self.partial = Partial::Header;
    }

    fn partial_offset(&self) -> u64 {
        self.base + self.ready_len as u64
    }

    /// Parses a complete header and completes empty boxes, as far as the
    /// buffered bytes allow.
    fn settle(&mut self) {
        loop {
            match self.partial {
                Partial::Header => {
                    let offset = self.partial_offset();
                    let bytes = &self.buf[self.ready_len..];
                    let header = match parse_header(bytes, offset) {
                        Ok(HeaderParse::NeedMore(_)) => return,
                        Ok(HeaderParse::Header(h)) => h,
                        Err(e) => return self.fail(e),
                    };
                    let fourcc = header.box_type.fourcc();
                    if !fourcc.is_printable() {
                        return self.fail(BoxError::BadType {
                            offset,
                            found: fourcc,
                        });
                    }
                    if header.size > self.max_box_size {
                        return self.fail(BoxError::TooLarge {
                            offset,
                            box_type: header.box_type,
                            size: header.size,
                            max: self.max_box_size,
                        });
                    }
                    let received = bytes.len() as u64;
                    self.partial = if header.size_field == SizeField::ToEnd {
                        Partial::ToEnd { header }
                    } else {
                        // The header was asked for byte by byte, so no more
                        // than the header has arrived.
                        Partial::Body {
                            header,
                            remaining: header.size.saturating_sub(received),
                        }
                    };
                }
                Partial::Body {
                    header,
                    remaining: 0,
                } => self.complete(header),
                Partial::Body { .. } | Partial::ToEnd { .. } => return,
            }
        }
    }

    fn complete(&mut self, header: BoxHeader) {
        self.ready_len = self.buf.len();
        self.ready.push_back(header);
        self.partial = Partial::Header;
    }

    fn fail(&mut self, e: BoxError) {
        self.buf.truncate(self.ready_len);
        self.partial = Partial::Header;
        self.error = Some(e);
    }
}

impl Default for BoxReader {
    fn default() -> Self {
        Self::new(BoxReaderConfig::default())
    }
}
