//! A minimal keep-alive HTTP/1.1 client over one TCP connection.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any single exchange may take before the scenario fails.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// One connection; reconnects when the server closed it.
pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: BytesMut,
}

/// A response: status and body.
pub struct Resp {
    pub status: u16,
    pub body: bytes::Bytes,
    /// When the request's last byte was handed to the kernel.
    pub sent: std::time::Instant,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            stream: None,
            buf: BytesMut::with_capacity(64 * 1024),
        }
    }

    /// Sends a request with a Content-Length body and reads the response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &[u8],
    ) -> anyhow::Result<Resp> {
        match tokio::time::timeout(EXCHANGE_TIMEOUT, self.exchange(method, path, auth, body)).await
        {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) | Err(_) => {
                // One retry on a fresh connection: the server may have closed
                // an idle keep-alive connection.
                self.stream = None;
                tokio::time::timeout(EXCHANGE_TIMEOUT, self.exchange(method, path, auth, body))
                    .await?
            }
        }
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &[u8],
    ) -> anyhow::Result<Resp> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
            self.buf.clear();
        }
        let Some(s) = self.stream.as_mut() else {
            anyhow::bail!("no connection")
        };
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(a) = auth {
            head.push_str("Authorization: ");
            head.push_str(a);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).await?;
        if !body.is_empty() {
            s.write_all(body).await?;
        }
        let sent = std::time::Instant::now();
        let (status, len, close) = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.advance(end + 4);
                let status: u16 = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let lower = head.to_ascii_lowercase();
                let len = lower
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                let close = lower
                    .lines()
                    .any(|l| l.starts_with("connection:") && l.contains("close"));
                let no_body = method == "HEAD" || status == 204 || status == 304;
                break (status, if no_body { 0 } else { len }, close);
            }
            if s.read_buf(&mut self.buf).await? == 0 {
                anyhow::bail!("connection closed before a response");
            }
        };
        while self.buf.len() < len {
            if s.read_buf(&mut self.buf).await? == 0 {
                anyhow::bail!("connection closed mid-body");
            }
        }
        let body = self.buf.split_to(len).freeze();
        if close {
            self.stream = None;
        }
        Ok(Resp { status, body, sent })
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
