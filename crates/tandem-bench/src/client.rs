//! A minimal keep-alive HTTP/1.1 client over one TCP connection.
//!
//! [`Conn::request`] and [`Conn::request_with`] run one whole exchange.
//! The halves are public too ([`Conn::send`], [`Conn::send_more`],
//! [`Conn::read_head`], [`Conn::read_body_part`]) for scenarios that time
//! a particular byte: the first body byte of an answer, or a GET sent while
//! an upload on another connection is only half sent. Answers may be framed
//! by `Content-Length` or chunked (RFC 9112 §7.1).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any single exchange may take before the scenario fails.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// One connection; reconnects when the server closed it.
pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: BytesMut,
}

/// A response: status and body.
pub struct Resp {
    pub status: u16,
    /// The body, unless the caller asked for it to be discarded.
    pub body: Bytes,
    /// How many body bytes arrived (kept or not).
    pub body_len: u64,
    /// The response head, lowercased (for [`Head::field`]).
    pub head: Head,
    /// When the request's last byte was handed to the kernel.
    pub sent: Instant,
}

/// What to do with a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    Keep,
    /// Read and count it, keep none of it (load loops).
    Discard,
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// No framing: the body runs until the server closes.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug, Clone)]
pub struct Head {
    pub status: u16,
    pub framing: Framing,
    pub close: bool,
    /// The header lines, lowercased.
    lower: String,
    /// The header lines as received.
    raw: String,
}

impl Head {
    /// The value of header `name` (lowercase), if present.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.lower.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim())
        })
    }

    /// Every value of header `name` (lowercase), with its case kept (a
    /// Digest nonce is case-sensitive).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.lower
            .lines()
            .zip(self.raw.lines())
            .filter_map(move |(l, r)| {
                let (k, _) = l.split_once(':')?;
                let (_, v) = r.split_once(':')?;
                (k.trim() == name).then(|| v.trim())
            })
    }
}

/// Where a body read stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyState(Decode);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decode {
    /// Bytes left of a Content-Length body.
    Left(u64),
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Bytes left of the current chunk.
    ChunkData(u64),
    /// Expecting the CRLF after a chunk's data.
    ChunkEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailer,
    UntilClose,
    Done,
}

impl BodyState {
    /// The start of the body `head` announces.
    pub fn of(head: &Head) -> Self {
        Self(match head.framing {
            Framing::Length(0) => Decode::Done,
            Framing::Length(n) => Decode::Left(n),
            Framing::Chunked => Decode::ChunkSize,
            Framing::UntilClose => Decode::UntilClose,
        })
    }

    pub fn done(&self) -> bool {
        self.0 == Decode::Done
    }
}

fn parse_head(raw: &[u8], method: &str) -> anyhow::Result<Head> {
    let text = String::from_utf8_lossy(raw);
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let lower = text.to_ascii_lowercase();
    let mut head = Head {
        status,
        framing: Framing::UntilClose,
        close: false,
        lower,
        raw: text.into_owned(),
    };
    let chunked = head
        .field("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"));
    let len = head
        .field("content-length")
        .map(|v| v.parse::<u64>())
        .transpose()?;
    head.close = head
        .field("connection")
        .is_some_and(|v| v.contains("close"));
    head.framing = if method == "HEAD" || status == 204 || status == 304 || status / 100 == 1 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = len {
        Framing::Length(n)
    } else {
        head.close = true;
        Framing::UntilClose
    };
    Ok(head)
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            stream: None,
            buf: BytesMut::with_capacity(64 * 1024),
        }
    }

    /// The `Host` this connection sends (what a signer must sign).
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Sends a request with a Content-Length body and reads the response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &[u8],
    ) -> anyhow::Result<Resp> {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        self.request_with(method, path, &headers, body, BodyMode::Keep)
            .await
    }

    /// Sends a request with extra headers and a Content-Length body, and
    /// reads the response. A connection the server closed while idle is
    /// reopened once.
    pub async fn request_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        mode: BodyMode,
    ) -> anyhow::Result<Resp> {
        let fresh = self.stream.is_none();
        let once = self.exchange(method, path, headers, body, mode);
        match tokio::time::timeout(EXCHANGE_TIMEOUT, once).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) if fresh => Err(e),
            Err(_) => {
                self.stream = None;
                bail!("{method} {path}: no answer within {EXCHANGE_TIMEOUT:?}")
            }
            Ok(Err(_)) => {
                // One retry on a fresh connection: the server may have closed
                // an idle keep-alive connection.
                self.stream = None;
                tokio::time::timeout(
                    EXCHANGE_TIMEOUT,
                    self.exchange(method, path, headers, body, mode),
                )
                .await?
            }
        }
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        mode: BodyMode,
    ) -> anyhow::Result<Resp> {
        let r = self.exchange_inner(method, path, headers, body, mode).await;
        if r.is_err() {
            self.stream = None;
        }
        r
    }

    async fn exchange_inner(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        mode: BodyMode,
    ) -> anyhow::Result<Resp> {
        self.send(method, path, headers, body.len() as u64, body)
            .await?;
        let sent = Instant::now();
        let head = self.read_head(method).await?;
        let mut state = BodyState::of(&head);
        let mut kept = BytesMut::new();
        let mut body_len = 0u64;
        while let Some(part) = self.read_body_part(&mut state).await? {
            body_len += part.len() as u64;
            if mode == BodyMode::Keep {
                kept.extend_from_slice(&part);
            }
        }
        if head.close {
            self.stream = None;
        }
        Ok(Resp {
            status: head.status,
            body: kept.freeze(),
            body_len,
            head,
            sent,
        })
    }

    async fn stream(&mut self) -> anyhow::Result<&mut TcpStream> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
            self.buf.clear();
        }
        match self.stream.as_mut() {
            Some(s) => Ok(s),
            None => bail!("no connection"),
        }
    }

    /// Sends a request head announcing `content_length` body bytes, then
    /// `first` (all or the start of the body; the rest goes by
    /// [`send_more`](Self::send_more)).
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        content_length: u64,
        first: &[u8],
    ) -> anyhow::Result<()> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if content_length > 0 || !matches!(method, "GET" | "HEAD" | "DELETE") {
            head.push_str(&format!("Content-Length: {content_length}\r\n"));
        }
        for (k, v) in headers {
            if k.eq_ignore_ascii_case("host") {
                continue;
            }
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let s = self.stream().await?;
        s.write_all(head.as_bytes()).await?;
        if !first.is_empty() {
            s.write_all(first).await?;
        }
        Ok(())
    }

    /// Sends more of a body announced by [`send`](Self::send).
    pub async fn send_more(&mut self, part: &[u8]) -> anyhow::Result<()> {
        match self.stream.as_mut() {
            Some(s) => Ok(s.write_all(part).await?),
            None => bail!("no request in progress"),
        }
    }

    async fn fill(&mut self) -> anyhow::Result<usize> {
        let Some(s) = self.stream.as_mut() else {
            bail!("no connection")
        };
        // Reads of up to 64 KiB; the allocation is reused once the caller
        // dropped the parts it was given.
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        Ok(s.read_buf(&mut self.buf).await?)
    }

    /// Reads a response head (to a request of `method`).
    pub async fn read_head(&mut self, method: &str) -> anyhow::Result<Head> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = parse_head(&self.buf[..end], method)?;
                self.buf.advance(end + 4);
                return Ok(head);
            }
            if self.buf.len() > MAX_HEAD {
                bail!("response head over {MAX_HEAD} bytes");
            }
            if self.fill().await? == 0 {
                bail!("connection closed before a response");
            }
        }
    }

    /// The next piece of a body, as soon as any of it is here; `None` at
    /// its end.
    pub async fn read_body_part(&mut self, st: &mut BodyState) -> anyhow::Result<Option<Bytes>> {
        loop {
            match st.0 {
                Decode::Done => return Ok(None),
                Decode::Left(n) | Decode::ChunkData(n) if !self.buf.is_empty() => {
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(self.buf.len());
                    let part = self.buf.split_to(take).freeze();
                    let left = n - take as u64;
                    st.0 = match st.0 {
                        Decode::Left(_) if left == 0 => Decode::Done,
                        Decode::Left(_) => Decode::Left(left),
                        _ if left == 0 => Decode::ChunkEnd,
                        _ => Decode::ChunkData(left),
                    };
                    return Ok(Some(part));
                }
                Decode::UntilClose if !self.buf.is_empty() => {
                    return Ok(Some(self.buf.split().freeze()));
                }
                Decode::ChunkSize | Decode::ChunkEnd | Decode::Trailer => {
                    if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                        self.buf.advance(end + 2);
                        st.0 = match st.0 {
                            Decode::ChunkSize => {
                                let hex = line.split(';').next().unwrap_or("").trim();
                                match u64::from_str_radix(hex, 16) {
                                    Ok(0) => Decode::Trailer,
                                    Ok(n) => Decode::ChunkData(n),
                                    Err(_) => bail!("bad chunk size line {line:?}"),
                                }
                            }
                            Decode::ChunkEnd if line.is_empty() => Decode::ChunkSize,
                            Decode::ChunkEnd => bail!("chunk data longer than its size"),
                            _ if line.is_empty() => Decode::Done,
                            _ => Decode::Trailer,
                        };
                        continue;
                    }
                    if self.buf.len() > MAX_HEAD {
                        bail!("chunk framing line over {MAX_HEAD} bytes");
                    }
                }
                _ => {}
            }
            if self.fill().await? == 0 {
                if st.0 == Decode::UntilClose {
                    st.0 = Decode::Done;
                    self.stream = None;
                    return Ok(None);
                }
                bail!("connection closed mid-body");
            }
        }
    }

    /// Drops the connection (the next request opens a new one).
    pub fn close(&mut self) {
        self.stream = None;
        self.buf.clear();
    }
}

/// `Authorization: Basic …` for a user and password.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
