//! One module per command, and the configuration they share.

pub mod archive;
pub mod channel;
pub mod container;
pub mod control;
pub mod serve;
pub mod status;
pub mod udp;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use tandem_server::config::{DEFAULT_DATA, DEFAULT_LISTEN, FileConfig, ServerConfig, TlsFiles};

/// Builds the server configuration: flags, then environment (both already
/// merged by clap), then the file, then defaults.
pub fn server_config(
    data: Option<PathBuf>,
    config: Option<PathBuf>,
    listen: Option<String>,
    tls: Option<TlsFiles>,
) -> anyhow::Result<ServerConfig> {
    let file = match &config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let listen_text = listen
        .or_else(|| file.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = listen_text.parse().with_context(|| {
        format!("--listen {listen_text:?} is not an address like 127.0.0.1:8080 or [::1]:8080")
    })?;
    let data = data
        .or_else(|| file.data.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA));
    let mut cfg = ServerConfig::new(listen, data);
    file.apply(&mut cfg);
    if let Some(text) = &file.s3_listen {
        cfg.s3_listen = tandem_server::config::parse_s3_listen(text).map_err(anyhow::Error::msg)?;
    }
    if let Some(text) = &file.mediastore_listen {
        cfg.mediastore_listen =
            tandem_server::config::parse_mediastore_listen(text).map_err(anyhow::Error::msg)?;
    }
    if tls.is_some() {
        cfg.tls = tls;
    }
    Ok(cfg)
}
