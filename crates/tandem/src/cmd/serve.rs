//! `tandem serve`: run the server until Ctrl-C or SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tandem_core::ChannelId;
use tandem_server::config::TlsFiles;
use tandem_server::{Server, api};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. [default: 127.0.0.1:8080]
    #[arg(long, env = "TANDEM_LISTEN")]
    listen: Option<String>,
    /// Address of the S3 listener, or `off`. [default: 127.0.0.1:9000]
    #[arg(long, env = "TANDEM_S3_LISTEN")]
    s3_listen: Option<String>,
    /// Address of the MediaStore-style listener, or `off`. [default: 127.0.0.1:9010]
    #[arg(long, env = "TANDEM_MEDIASTORE_LISTEN")]
    mediastore_listen: Option<String>,
    /// PEM certificate chain: serve HTTPS on the listener.
    #[arg(long, requires = "tls_key", env = "TANDEM_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert", env = "TANDEM_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// POST events to this URL (repeatable; added to the config file's
    /// [[webhooks]], with their default kinds and retries).
    #[arg(
        long = "webhook",
        value_name = "URL",
        env = "TANDEM_WEBHOOKS",
        value_delimiter = ','
    )]
    webhooks: Vec<String>,
    /// Seconds between two checks of the hosted archive pairs. [default: 10]
    #[arg(long, value_name = "SECS", env = "TANDEM_ARCHIVE_CHECK_EVERY")]
    archive_check_every: Option<u64>,
    /// Seconds an archive index may arrive late before it is raised. [default: 30]
    #[arg(long, value_name = "SECS", env = "TANDEM_ARCHIVE_GRACE")]
    archive_grace: Option<u64>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// The listeners' limits under hostile load (see README, Configuration).
#[derive(Debug, Args)]
struct LimitArgs {
    /// Seconds a request head may take to arrive (then 408). [default: 30]
    #[arg(long, value_name = "SECS", env = "TANDEM_HEADER_READ_TIMEOUT")]
    header_read_timeout: Option<u64>,
    /// Largest request head in bytes (then 431). [default: 65536]
    #[arg(long, value_name = "BYTES", env = "TANDEM_MAX_HEADER_BYTES")]
    max_header_bytes: Option<usize>,
    /// Most header lines in a request (then 431). [default: 100]
    #[arg(long, value_name = "N", env = "TANDEM_MAX_HEADER_LINES")]
    max_header_lines: Option<usize>,
    /// Open connections per listener; 0: no limit. [default: 10000]
    #[arg(long, value_name = "N", env = "TANDEM_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Open connections per source address and listener; 0: no limit. [default: 1000]
    #[arg(long, value_name = "N", env = "TANDEM_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<usize>,
    /// Slowest request body kept, in bytes a second; 0: no minimum. [default: 1024]
    #[arg(long, value_name = "BYTES", env = "TANDEM_BODY_MIN_RATE")]
    body_min_rate: Option<u64>,
    /// Seconds over which the body rate is measured. [default: 10]
    #[arg(long, value_name = "SECS", env = "TANDEM_BODY_MIN_RATE_WINDOW")]
    body_min_rate_window: Option<u64>,
    /// Failed authentications per source address and window before 429; 0: no limit. [default: 20]
    #[arg(long, value_name = "N", env = "TANDEM_AUTH_FAILURES")]
    auth_failures: Option<u32>,
    /// Seconds of the failed-authentication window. [default: 60]
    #[arg(long, value_name = "SECS", env = "TANDEM_AUTH_FAILURE_WINDOW")]
    auth_failure_window: Option<u64>,
    /// Seconds between two log lines of one kind of refusal. [default: 10]
    #[arg(long, value_name = "SECS", env = "TANDEM_REFUSAL_LOG_INTERVAL")]
    refusal_log_interval: Option<u64>,
}

impl LimitArgs {
    fn apply(&self, l: &mut tandem_server::guard::Limits) {
        tandem_server::guard::LimitOverrides {
            header_read_timeout_secs: self.header_read_timeout,
            max_header_bytes: self.max_header_bytes,
            max_header_lines: self.max_header_lines,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            body_min_rate: self.body_min_rate,
            body_min_rate_window_secs: self.body_min_rate_window,
            auth_failures: self.auth_failures,
            auth_failure_window_secs: self.auth_failure_window,
            refusal_log_interval_secs: self.refusal_log_interval,
        }
        .apply(l);
    }
}

pub fn run(data: Option<PathBuf>, config: Option<PathBuf>, args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    let mut cfg = super::server_config(data, config, args.listen, tls)?;
    if let Some(text) = args.s3_listen {
        cfg.s3_listen =
            tandem_server::config::parse_s3_listen(&text).map_err(anyhow::Error::msg)?;
    }
    if let Some(text) = args.mediastore_listen {
        cfg.mediastore_listen =
            tandem_server::config::parse_mediastore_listen(&text).map_err(anyhow::Error::msg)?;
    }
    if let Some(v) = args.archive_check_every {
        cfg.archive_check_every = std::time::Duration::from_secs(v);
    }
    if let Some(v) = args.archive_grace {
        cfg.archive_grace = std::time::Duration::from_secs(v);
    }
    args.limits.apply(&mut cfg.limits);
    cfg.webhooks.extend(
        args.webhooks
            .into_iter()
            .map(tandem_server::webhooks::WebhookSettings::url),
    );
    // Refused here, before anything is opened, with the setting named.
    cfg.check()?;
    tandem_server::webhooks::check_all(&cfg.webhooks)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Blocking-pool threads serve every file operation; keeping them
        // spares a thread spawn per burst of requests.
        .thread_keep_alive(std::time::Duration::from_secs(3600))
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let server = Server::bind(cfg).await?;
        // Before the banner: whoever reads the banner may run the CLI next.
        server.announce()?;
        banner(&server);
        server.run(shutdown_signal()).await?;
        anyhow::Ok(())
    })
}

fn banner(server: &Server) {
    let st = server.state();
    let base = st.cfg.base_url();
    println!("tandem {} listening on {base}", env!("CARGO_PKG_VERSION"));
    println!("data directory: {}", st.cfg.data_dir.display());
    println!(
        "control API: {base}/api/v1/ with header 'Authorization: Bearer {}'",
        st.admin_token
    );
    println!("metrics: {base}/metrics");
    for h in st.webhooks.status() {
        println!("webhook: {} (events POSTed as JSON)", h.name);
    }
    match st.cfg.s3_endpoint() {
        Some(ep) => println!(
            "S3 (archive pairs): {ep} region {}; create a pair with 'tandem archive create ID'",
            st.cfg.s3.region
        ),
        None => println!("S3 listener: off"),
    }
    match st.cfg.mediastore_endpoint() {
        Some(ep) => println!(
            "MediaStore (container pairs): {ep} region {}; create a pair with 'tandem container create ID'",
            st.cfg.s3.region
        ),
        None => println!("MediaStore listener: off"),
    }
    let channels = st.channels.all();
    let demo = ChannelId::parse("demo")
        .ok()
        .and_then(|id| st.channels.get(&id));
    match demo {
        Some(ch) => {
            println!();
            super::channel::print_channel(&api::channel_view(&ch.spec, &base, None));
        }
        None => println!(
            "{} channel(s); list them with 'tandem channel list'",
            channels.len()
        ),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}
