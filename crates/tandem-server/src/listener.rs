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
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::ServerError;
use crate::config::TlsFiles;

/// How long a client may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
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
pub async fn serve<S, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: S,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) where
    S: tower::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // half_close: ffmpeg's HLS muxer sends a whole PUT and closes its
    // socket without reading the answer. Without this, hyper treats that
    // EOF as an abort and drops the handler before it publishes a body that
    // did arrive whole.
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        .half_close(true);
    let svc = TowerToHyperService::new(app);
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
        let _ = tcp.set_nodelay(true);
        let watcher = graceful.watcher();
        let (http, svc, tls) = (http.clone(), svc.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => {
                    let conn = http.serve_connection(TokioIo::new(tcp), svc);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                            .await
                        {
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
                    let conn = http.serve_connection(TokioIo::new(stream), svc);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!(grace_secs = grace.as_secs(), "grace period over; unfinished uploads are discarded"),
    }
}
