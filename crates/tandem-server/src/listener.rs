//! The accept loop: plain HTTP/1.1 or TLS (rustls) on one listener, with
//! graceful shutdown.
//!
//! On shutdown the loop stops accepting, idle connections close, and each
//! in-flight request gets the grace period to finish. A request cut off
//! after that drops its staged upload, so it publishes nothing.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::ServerError;
use crate::config::TlsFiles;
use crate::guard::Guard;
use crate::guard::conns::{ConnState, Refusal};
use crate::guard::service::{Guarded, GuardedBody, SharedIo};
/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Loads a PEM certificate chain and private key into a TLS acceptor.
pub fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ServerError> {
    let tls_err = |path: &Path, message: String| ServerError::Tls {
        path: path.to_path_buf(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| tls_err(&files.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(&files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(tls_err(&files.cert, "no CERTIFICATE block found".into()));
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| tls_err(&files.key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(&files.cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            tls_err(
                &files.key,
                format!("certificate and key do not fit together: {e}"),
            )
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Serves `app` until `shutdown` resolves, then drains for up to `grace`.
/// `name` labels the listener in logs and metrics (`http`, `s3`,
/// `mediastore`); `guard` holds the limits (see [`crate::guard`]).
pub async fn serve<S, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: S,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    guard: Arc<Guard>,
    name: &'static str,
) where
    S: tower::Service<http::Request<GuardedBody>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    let limits = &guard.limits;
    let mut http = hyper::server::conn::http1::Builder::new();
    // half_close: ffmpeg's HLS muxer sends a whole PUT and closes its
    // socket without reading the answer. Without this, hyper treats that
    // EOF as an abort and drops the handler before it publishes a body that
    // did arrive whole.
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_header_lines)
        .keep_alive(true)
        .half_close(true);
    let conns = guard.conns();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let admitted = match conns.admit(peer.ip()) {
            Ok(a) => a,
            Err(refusal) => {
                refuse(tcp, peer, refusal, tls.is_some(), &guard, name);
                continue;
            }
        };
        if let Some(ip) = admitted.evicted
            && let Some(left_out) = guard.refused(name, "connection_evicted")
        {
            tracing::warn!(listener = name, evicted = %ip, for_peer = %peer.ip(), left_out, "connection limit reached: closed an idle connection of the busiest address");
        }
        let _ = tcp.set_nodelay(true);
        let watcher = graceful.watcher();
        let (http, tls, guard) = (http.clone(), tls.clone(), guard.clone());
        let svc = Guarded {
            inner: app.clone(),
            guard: guard.clone(),
            peer,
            conn: admitted.ticket.state.clone(),
            listener: name,
        };
        tokio::spawn(async move {
            let ticket = admitted.ticket;
            let state = ticket.state.clone();
            match tls {
                None => {
                    let (io, kept) = SharedIo::new(tcp, state.clone());
                    let conn = http.serve_connection(TokioIo::new(io), svc);
                    let ended = tokio::select! {
                        r = watcher.watch(conn) => Some(r),
                        () = state.evict.notified() => None,
                    };
                    if let Some(Err(e)) = ended {
                        let stream = Arc::try_unwrap(kept).ok().map(|m| {
                            m.into_inner()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                        });
                        ended_with(e, stream, &state, peer, &guard, name).await;
                    }
                }
                Some(acceptor) => {
                    let handshake = tokio::select! {
                        r = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => r,
                        () = state.evict.notified() => return,
                    };
                    let stream = match handshake {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::info!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let (io, kept) = SharedIo::new(stream, state.clone());
                    let conn = http.serve_connection(TokioIo::new(io), svc);
                    let ended = tokio::select! {
                        r = watcher.watch(conn) => Some(r),
                        () = state.evict.notified() => None,
                    };
                    if let Some(Err(e)) = ended {
                        let stream = Arc::try_unwrap(kept).ok().map(|m| {
                            m.into_inner()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                        });
                        ended_with(e, stream, &state, peer, &guard, name).await;
                    }
                }
            }
            drop(ticket);
        });
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!(grace_secs = grace.as_secs(), "grace period over; unfinished uploads are discarded"),
    }
}

/// How long writing a refusal (429, 503, 408) may take before the
/// connection is just closed.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// A plain-text HTTP/1.1 answer that closes the connection.
fn plain_answer(status: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answers a connection over its limit and closes it (TLS connections are
/// closed without an answer: it would take a handshake to send one).
fn refuse(
    tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    refusal: Refusal,
    tls: bool,
    guard: &Guard,
    name: &'static str,
) {
    let (reason, status, body) = match refusal {
        Refusal::PerAddress => (
            "connection_limit_per_ip",
            "429 Too Many Requests",
            format!(
                "too many connections from {}; at most {} at once\n",
                peer.ip(),
                guard.limits.max_connections_per_ip
            ),
        ),
        Refusal::Global => (
            "connection_limit",
            "503 Service Unavailable",
            format!(
                "the server holds {} connections, all busy; try again\n",
                guard.limits.max_connections
            ),
        ),
    };
    if let Some(left_out) = guard.refused(name, reason) {
        tracing::warn!(listener = name, peer = %peer.ip(), reason, left_out, "connection refused");
    }
    if tls {
        return;
    }
    tokio::spawn(async move {
        let mut tcp = tcp;
        let answer = plain_answer(status, "retry-after: 1\r\n", &body);
        let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
            tcp.write_all(&answer).await?;
            tcp.shutdown().await
        })
        .await;
    });
}

/// After a connection ended with an error: a head that did not arrive in
/// time is answered 408 when part of it came (a connection idle between
/// requests is just closed, as keep-alive connections are); a head too
/// large was answered 431 by hyper. Both are counted.
async fn ended_with<T: AsyncWrite + Unpin>(
    e: hyper::Error,
    stream: Option<T>,
    state: &ConnState,
    peer: std::net::SocketAddr,
    guard: &Guard,
    name: &'static str,
) {
    if e.is_timeout() {
        if !state.partial_head() {
            metrics::counter!("tandem_idle_connections_closed_total", "listener" => name)
                .increment(1);
            return;
        }
        if let Some(left_out) = guard.refused(name, "header_timeout") {
            tracing::warn!(listener = name, peer = %peer.ip(), timeout_secs = guard.limits.header_read_timeout.as_secs_f64(), left_out, "request head not received in time; answered 408");
        }
        if let Some(mut s) = stream {
            let answer = plain_answer(
                "408 Request Timeout",
                "",
                "the request head did not arrive in time\n",
            );
            let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
                s.write_all(&answer).await?;
                s.shutdown().await
            })
            .await;
        }
    } else if e.is_parse_too_large() {
        if let Some(left_out) = guard.refused(name, "header_too_large") {
            tracing::warn!(listener = name, peer = %peer.ip(), max_header_bytes = guard.limits.max_header_bytes, max_header_lines = guard.limits.max_header_lines, left_out, "request head too large; answered 431");
        }
    } else {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
