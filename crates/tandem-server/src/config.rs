//! Server configuration: defaults, the TOML file, and how they combine.
//!
//! Precedence, highest first: command-line flags, environment variables,
//! the TOML file, the defaults below. The binary applies flags and
//! environment; this module owns the file format and the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::Scheme;

/// Loopback: a fresh install must not expose ingest to the network until
/// the operator says so with `--listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Relative to the working directory, so `tandem serve` in a fresh
/// directory keeps everything together.
pub const DEFAULT_DATA: &str = "tandem-data";
/// Larger than any live segment or playlist (a 10 s 4K segment is ~40 MB),
/// small enough that a runaway client cannot fill the disk with one PUT.
pub const DEFAULT_MAX_BODY: u64 = 256 * 1024 * 1024;
/// An upload that sends nothing for this long is abandoned. Encoders send
/// segments in one burst; 30 s covers a congested contribution link.
pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Digest nonces live five minutes; clients re-authenticate transparently
/// on `stale=true`.
pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// An input with no write for this long is `lost`. Three 2 s segments plus
/// their playlists should have arrived; 10 s also covers 6 s segments.
pub const DEFAULT_INPUT_LOSS_AFTER: Duration = Duration::from_secs(10);
/// Output segments stay this long after they leave every output window:
/// a player that fetched the playlist just before may still ask for them.
pub const DEFAULT_OUTPUT_GRACE: Duration = Duration::from_secs(60);
/// Objects that no playlist of this server ever named are removed once
/// this old: far longer than any encoder takes between uploading a
/// segment and naming it in a playlist, short enough that an encoder's
/// stray uploads (thumbnails, leftovers of another layout) cannot pile up.
pub const DEFAULT_INPUT_UNNAMED_RETENTION: Duration = Duration::from_secs(600);
/// Raise `disk_low` under 5 % free: at a 50-channel load's 37 MB/s, 5 % of
/// a 1 TB disk lasts about 20 minutes, time for someone to act.
pub const DEFAULT_DISK_LOW_PERCENT: f64 = 5.0;
/// …or under 1 GiB free, whichever is more: on a small disk 5 % is gone in
/// seconds.
pub const DEFAULT_DISK_LOW_BYTES: u64 = 1024 * 1024 * 1024;
/// Free space is checked this often: a statvfs call, cheap.
pub const DEFAULT_DISK_CHECK: Duration = Duration::from_secs(10);
/// Unfinished multipart uploads are removed after a day (MinIO's default too).
pub const DEFAULT_S3_MULTIPART_EXPIRY: Duration = Duration::from_secs(86_400);
/// Pinned output segments kept in memory: the newest segments of about 100
/// renditions at 4 Mbit/s with 2 s segments and 6-segment windows.
/// How far back Smooth clients may seek, and how long a fragment stays
/// in a publishing point's manifest: 30 minutes, the usual "start over"
/// reach (900 fragments a track at 2 s).
pub const DEFAULT_SMOOTH_DVR_WINDOW: Duration = Duration::from_secs(30 * 60);
/// Longest Smooth DVR window accepted: a day.
pub const MAX_SMOOTH_DVR_WINDOW: Duration = Duration::from_secs(86_400);
pub const DEFAULT_OUTPUT_CACHE: u64 = 256 * 1024 * 1024;
/// The S3 listener's default address (MinIO's port, which S3 tools
/// already know), on loopback like the main listener.
pub const DEFAULT_S3_LISTEN: &str = "127.0.0.1:9000";
/// The MediaStore-style listener's default address.
pub const DEFAULT_MEDIASTORE_LISTEN: &str = "127.0.0.1:9010";
/// The archive watch looks at every pair's buckets this often: a file
/// rolls over every few seconds to minutes, and each look lists both
/// buckets.
pub const DEFAULT_ARCHIVE_CHECK_EVERY: Duration = Duration::from_secs(10);
/// An archive index may still arrive this long after its rollover interval
/// ended (an upload of a large file over a slow link) before it is raised.
pub const DEFAULT_ARCHIVE_GRACE: Duration = Duration::from_secs(30);
/// In-flight uploads get this long to finish on shutdown; after it they
/// are discarded (never half-published).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// The longest archive watch interval: an hour.
pub const MAX_ARCHIVE_CHECK_EVERY: Duration = Duration::from_secs(3600);
/// The longest archive grace: a day.
pub const MAX_ARCHIVE_GRACE: Duration = Duration::from_secs(86_400);

/// A setting outside what the server can run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct SettingError {
    pub setting: &'static str,
    pub message: String,
}

/// PEM files for HTTPS on the main listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Base of the URLs handed to encoders and players; derived from the
    /// listen address when unset.
    pub public_url: Option<String>,
    pub tls: Option<TlsFiles>,
    pub max_body_bytes: u64,
    pub body_idle_timeout: Duration,
    pub nonce_lifetime: Duration,
    /// Offered in 401 challenges, in this order.
    pub auth_schemes: Vec<Scheme>,
    pub input_loss_after: Duration,
    pub shutdown_grace: Duration,
    /// How long output segments outlive the output window.
    pub output_grace: Duration,
    /// Memory for pinned output segments served to players.
    pub output_cache_bytes: u64,
    /// A Smooth publishing point's `DVRWindowLength`.
    pub smooth_dvr_window: Duration,
    /// How long an input object stays after it left every input playlist
    /// and the output window; `None`: the output's grace period.
    pub input_retention: Option<Duration>,
    /// How old an input object that no playlist ever named gets before it
    /// is removed.
    pub input_unnamed_retention: Duration,
    /// `disk_low` when the data directory's free space falls under this
    /// share of its file system (percent)…
    pub disk_low_percent: f64,
    /// …or under this many bytes, whichever is more.
    pub disk_low_bytes: u64,
    /// How often free space is checked.
    pub disk_check: Duration,
    /// Multipart uploads older than this and never completed are removed;
    /// zero keeps them.
    pub s3_multipart_expiry: Duration,
    /// Origins whose browser players may read `/out/` (CORS); `*`: any.
    pub cors_origins: Vec<String>,
    /// Create the `demo` channel when the database holds no channel.
    pub create_demo_channel: bool,
    /// The S3 listener's address; `None` runs none.
    pub s3_listen: Option<SocketAddr>,
    /// Region and virtual-host domains of the S3 listener.
    pub s3: crate::s3::S3Settings,
    /// The MediaStore-style listener's address; `None` runs none. It signs
    /// for the S3 listener's region.
    pub mediastore_listen: Option<SocketAddr>,
    /// Where events are POSTed.
    pub webhooks: Vec<crate::webhooks::WebhookSettings>,
    /// How often the archive watch checks the pairs.
    pub archive_check_every: Duration,
    /// How late an archive index may arrive before it is raised.
    pub archive_grace: Duration,
    /// The listeners' limits under hostile load.
    pub limits: crate::guard::Limits,
}

impl ServerConfig {
    /// The defaults, with data under `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            listen,
            data_dir,
            public_url: None,
            tls: None,
            max_body_bytes: DEFAULT_MAX_BODY,
            body_idle_timeout: DEFAULT_BODY_IDLE_TIMEOUT,
            nonce_lifetime: DEFAULT_NONCE_LIFETIME,
            auth_schemes: vec![Scheme::DigestSha256, Scheme::DigestMd5, Scheme::Basic],
            input_loss_after: DEFAULT_INPUT_LOSS_AFTER,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            output_grace: DEFAULT_OUTPUT_GRACE,
            output_cache_bytes: DEFAULT_OUTPUT_CACHE,
            smooth_dvr_window: DEFAULT_SMOOTH_DVR_WINDOW,
            input_retention: None,
            input_unnamed_retention: DEFAULT_INPUT_UNNAMED_RETENTION,
            disk_low_percent: DEFAULT_DISK_LOW_PERCENT,
            disk_low_bytes: DEFAULT_DISK_LOW_BYTES,
            disk_check: DEFAULT_DISK_CHECK,
            s3_multipart_expiry: DEFAULT_S3_MULTIPART_EXPIRY,
            cors_origins: vec!["*".to_owned()],
            create_demo_channel: true,
            s3_listen: DEFAULT_S3_LISTEN.parse().ok(),
            s3: Default::default(),
            mediastore_listen: DEFAULT_MEDIASTORE_LISTEN.parse().ok(),
            webhooks: Vec::new(),
            archive_check_every: DEFAULT_ARCHIVE_CHECK_EVERY,
            archive_grace: DEFAULT_ARCHIVE_GRACE,
            limits: Default::default(),
        }
    }

    /// Refuses settings the server cannot run with (the webhooks are
    /// checked by [`crate::webhooks::check_all`]).
    pub fn check(&self) -> Result<(), SettingError> {
        self.limits.check()?;
        let every = self.archive_check_every;
        if every < Duration::from_secs(1) || every > MAX_ARCHIVE_CHECK_EVERY {
            return Err(SettingError {
                setting: "archive_check_every_secs (--archive-check-every)",
                message: format!(
                    "{} s is outside 1 to {} s",
                    every.as_secs_f64(),
                    MAX_ARCHIVE_CHECK_EVERY.as_secs()
                ),
            });
        }
        if self.archive_grace > MAX_ARCHIVE_GRACE {
            return Err(SettingError {
                setting: "archive_grace_secs (--archive-grace)",
                message: format!(
                    "{} s is more than {} s (a day); is it in seconds?",
                    self.archive_grace.as_secs(),
                    MAX_ARCHIVE_GRACE.as_secs()
                ),
            });
        }
        let dvr = self.smooth_dvr_window;
        if dvr < Duration::from_secs(10) || dvr > MAX_SMOOTH_DVR_WINDOW {
            return Err(SettingError {
                setting: "smooth_dvr_window_secs",
                message: format!(
                    "{} s is outside 10 to {} s (a day)",
                    dvr.as_secs(),
                    MAX_SMOOTH_DVR_WINDOW.as_secs()
                ),
            });
        }
        Ok(())
    }

    /// How long an input object stays after it left every window.
    pub fn input_retention(&self) -> Duration {
        self.input_retention.unwrap_or(self.output_grace)
    }

    /// The MediaStore listener's base URL, when it runs; a container's
    /// endpoint is this plus `/{container}`.
    pub fn mediastore_endpoint(&self) -> Option<String> {
        let mut addr = self.mediastore_listen?;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        Some(format!("{scheme}://{addr}"))
    }

    /// The S3 endpoint handed to encoders, when the S3 listener runs.
    pub fn s3_endpoint(&self) -> Option<String> {
        let mut addr = self.s3_listen?;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        Some(format!("{scheme}://{addr}"))
    }

    /// The base URL for links, without a trailing slash.
    pub fn base_url(&self) -> String {
        if let Some(u) = &self.public_url {
            return u.trim_end_matches('/').to_owned();
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut addr = self.listen;
        if addr.ip().is_unspecified() {
            // Listening everywhere: loopback is at least a working address.
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("{scheme}://{addr}")
    }
}

/// The TOML file. Every key is optional.
///
/// ```toml
/// listen = "0.0.0.0:8080"
/// data = "/var/lib/tandem"
/// public_url = "https://origin.example.com"
/// tls_cert = "/etc/tandem/cert.pem"
/// tls_key = "/etc/tandem/key.pem"
/// max_body_bytes = 268435456
/// body_idle_timeout_secs = 30
/// nonce_lifetime_secs = 300
/// auth_schemes = ["digest-sha256", "digest-md5", "basic"]
/// input_loss_after_secs = 10
/// shutdown_grace_secs = 20
/// output_grace_secs = 60
/// output_cache_bytes = 268435456
/// smooth_dvr_window_secs = 1800  # Smooth manifests' DVRWindowLength
/// input_retention_secs = 60          # default: output_grace_secs
/// input_unnamed_retention_secs = 600
/// disk_low_percent = 5.0
/// disk_low_bytes = 1073741824
/// disk_check_secs = 10
/// s3_listen = "127.0.0.1:9000"   # or "off"
/// s3_region = "us-east-1"
/// s3_domains = ["s3.example.com"] # {bucket}.s3.example.com is virtual-host style
/// s3_multipart_expiry_secs = 86400 # unfinished multipart uploads removed; 0: kept
/// mediastore_listen = "127.0.0.1:9010" # or "off"
/// cors_origins = ["https://player.example.com"] # or ["*"]
/// archive_check_every_secs = 10  # how often hosted archive pairs are checked
/// archive_grace_secs = 30        # how late an archive index may arrive
/// header_read_timeout_secs = 30  # a request head must arrive within (408)
/// max_header_bytes = 65536       # larger request heads: 431
/// max_header_lines = 100         # more header lines: 431
/// max_connections = 10000        # per listener; 0: no limit
/// max_connections_per_ip = 1000  # per listener and address; 0: no limit
/// body_min_rate = 1024           # bytes a second over the window; 0: off
/// body_min_rate_window_secs = 10
/// auth_failures = 20             # per address and window, then 429; 0: off
/// auth_failure_window_secs = 60
/// refusal_log_interval_secs = 10 # one log line per kind of refusal
///
/// [[webhooks]]                   # any number; see crate::webhooks::WebhookSettings
/// url = "https://alerts.example.com/tandem"
/// kinds = ["input_lost", "input_restored", "switch"]
/// bearer_token = "…"
/// ```
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data: Option<PathBuf>,
    pub public_url: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub max_body_bytes: Option<u64>,
    pub body_idle_timeout_secs: Option<u64>,
    pub nonce_lifetime_secs: Option<u64>,
    pub auth_schemes: Option<Vec<Scheme>>,
    pub input_loss_after_secs: Option<u64>,
    pub shutdown_grace_secs: Option<u64>,
    pub output_grace_secs: Option<u64>,
    pub output_cache_bytes: Option<u64>,
    pub smooth_dvr_window_secs: Option<u64>,
    pub input_retention_secs: Option<u64>,
    pub input_unnamed_retention_secs: Option<u64>,
    pub disk_low_percent: Option<f64>,
    pub disk_low_bytes: Option<u64>,
    pub disk_check_secs: Option<u64>,
    pub s3_listen: Option<String>,
    pub s3_region: Option<String>,
    pub s3_domains: Option<Vec<String>>,
    pub s3_multipart_expiry_secs: Option<u64>,
    pub mediastore_listen: Option<String>,
    pub cors_origins: Option<Vec<String>>,
    pub archive_check_every_secs: Option<u64>,
    pub archive_grace_secs: Option<u64>,
    pub webhooks: Option<Vec<crate::webhooks::WebhookSettings>>,
    pub header_read_timeout_secs: Option<u64>,
    pub max_header_bytes: Option<usize>,
    pub max_header_lines: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub body_min_rate: Option<u64>,
    pub body_min_rate_window_secs: Option<u64>,
    pub auth_failures: Option<u32>,
    pub auth_failure_window_secs: Option<u64>,
    pub refusal_log_interval_secs: Option<u64>,
}

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// Parses an S3 listen setting: an address, or `off`.
pub fn parse_s3_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        format!("--s3-listen {text:?} is not an address like 127.0.0.1:9000, or 'off'")
    })
}

/// Parses a MediaStore listen setting: an address, or `off`.
pub fn parse_mediastore_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        format!("--mediastore-listen {text:?} is not an address like 127.0.0.1:9010, or 'off'")
    })
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string().replace('\n', " "),
        })
    }

    /// Applies the file's settings over `cfg` (listen and data are applied
    /// by the caller, which knows whether a flag or variable overrides them).
    pub fn apply(&self, cfg: &mut ServerConfig) {
        if let Some(u) = &self.public_url {
            cfg.public_url = Some(u.clone());
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            cfg.tls = Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            });
        }
        if let Some(v) = self.max_body_bytes {
            cfg.max_body_bytes = v;
        }
        let secs = Duration::from_secs;
        if let Some(v) = self.body_idle_timeout_secs {
            cfg.body_idle_timeout = secs(v);
        }
        if let Some(v) = self.nonce_lifetime_secs {
            cfg.nonce_lifetime = secs(v);
        }
        if let Some(v) = &self.auth_schemes {
            cfg.auth_schemes = v.clone();
        }
        if let Some(v) = self.input_loss_after_secs {
            cfg.input_loss_after = secs(v);
        }
        if let Some(v) = self.shutdown_grace_secs {
            cfg.shutdown_grace = secs(v);
        }
        if let Some(v) = self.output_grace_secs {
            cfg.output_grace = secs(v);
        }
        if let Some(v) = self.output_cache_bytes {
            cfg.output_cache_bytes = v;
        }
        if let Some(v) = self.smooth_dvr_window_secs {
            cfg.smooth_dvr_window = secs(v);
        }
        if let Some(v) = self.input_retention_secs {
            cfg.input_retention = Some(secs(v));
        }
        if let Some(v) = self.input_unnamed_retention_secs {
            cfg.input_unnamed_retention = secs(v);
        }
        if let Some(v) = self.disk_low_percent {
            cfg.disk_low_percent = v;
        }
        if let Some(v) = self.disk_low_bytes {
            cfg.disk_low_bytes = v;
        }
        if let Some(v) = self.disk_check_secs {
            // Zero would spin.
            cfg.disk_check = secs(v.max(1));
        }
        if let Some(v) = &self.s3_region {
            cfg.s3.region = v.clone();
        }
        if let Some(v) = self.s3_multipart_expiry_secs {
            cfg.s3_multipart_expiry = secs(v);
        }
        if let Some(v) = &self.s3_domains {
            cfg.s3.domains = v.clone();
        }
        if let Some(v) = &self.cors_origins {
            cfg.cors_origins = v.clone();
        }
        if let Some(v) = self.archive_check_every_secs {
            cfg.archive_check_every = secs(v);
        }
        if let Some(v) = self.archive_grace_secs {
            cfg.archive_grace = secs(v);
        }
        if let Some(v) = &self.webhooks {
            cfg.webhooks = v.clone();
        }
        crate::guard::LimitOverrides {
            header_read_timeout_secs: self.header_read_timeout_secs,
            max_header_bytes: self.max_header_bytes,
            max_header_lines: self.max_header_lines,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            body_min_rate: self.body_min_rate,
            body_min_rate_window_secs: self.body_min_rate_window_secs,
            auth_failures: self.auth_failures,
            auth_failure_window_secs: self.auth_failure_window_secs,
            refusal_log_interval_secs: self.refusal_log_interval_secs,
        }
        .apply(&mut cfg.limits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_config_parses_every_key_and_refuses_unknown_ones() {
        // Every key, each with a value that differs from its default.
        let text = r#"
listen = "0.0.0.0:80"
data = "/var/lib/tandem"
public_url = "https://origin.example.com"
tls_cert = "/etc/tandem/cert.pem"
tls_key = "/etc/tandem/key.pem"
max_body_bytes = 10
body_idle_timeout_secs = 7
nonce_lifetime_secs = 60
auth_schemes = ["basic", "digest-md5"]
input_loss_after_secs = 4
shutdown_grace_secs = 3
output_grace_secs = 90
output_cache_bytes = 1024
smooth_dvr_window_secs = 600
input_retention_secs = 120
input_unnamed_retention_secs = 900
disk_low_percent = 2.5
disk_low_bytes = 4096
disk_check_secs = 3
s3_listen = "off"
s3_region = "eu-west-3"
s3_domains = ["s3.example.com", "localhost"]
s3_multipart_expiry_secs = 7200
mediastore_listen = "off"
cors_origins = ["https://player.example.com"]
archive_check_every_secs = 5
archive_grace_secs = 45
header_read_timeout_secs = 5
max_header_bytes = 16384
max_header_lines = 50
max_connections = 500
max_connections_per_ip = 50
body_min_rate = 2048
body_min_rate_window_secs = 5
auth_failures = 7
auth_failure_window_secs = 30
refusal_log_interval_secs = 2

[[webhooks]]
url = "https://alerts.example.com/tandem"
kinds = ["input_lost", "switch"]
bearer_token = "t0ken"
secret = "s3cret"
queue = 50
attempts = 3
timeout_ms = 2000
backoff_initial_ms = 250
backoff_max_ms = 8000

[[webhooks]]
url = "http://127.0.0.1:9999/hook"
"#;
        let f: FileConfig = toml::from_str(text).unwrap();
        // A struct literal with no `..`: a key added to FileConfig does not
        // compile here until this test covers it.
        assert_eq!(
            f,
            FileConfig {
                listen: Some("0.0.0.0:80".into()),
                data: Some("/var/lib/tandem".into()),
                public_url: Some("https://origin.example.com".into()),
                tls_cert: Some("/etc/tandem/cert.pem".into()),
                tls_key: Some("/etc/tandem/key.pem".into()),
                max_body_bytes: Some(10),
                body_idle_timeout_secs: Some(7),
                nonce_lifetime_secs: Some(60),
                auth_schemes: Some(vec![Scheme::Basic, Scheme::DigestMd5]),
                input_loss_after_secs: Some(4),
                shutdown_grace_secs: Some(3),
                output_grace_secs: Some(90),
                output_cache_bytes: Some(1024),
                smooth_dvr_window_secs: Some(600),
                input_retention_secs: Some(120),
                input_unnamed_retention_secs: Some(900),
                disk_low_percent: Some(2.5),
                disk_low_bytes: Some(4096),
                disk_check_secs: Some(3),
                s3_listen: Some("off".into()),
                s3_region: Some("eu-west-3".into()),
                s3_domains: Some(vec!["s3.example.com".into(), "localhost".into()]),
                s3_multipart_expiry_secs: Some(7200),
                mediastore_listen: Some("off".into()),
                cors_origins: Some(vec!["https://player.example.com".into()]),
                archive_check_every_secs: Some(5),
                archive_grace_secs: Some(45),
                header_read_timeout_secs: Some(5),
                max_header_bytes: Some(16384),
                max_header_lines: Some(50),
                max_connections: Some(500),
                max_connections_per_ip: Some(50),
                body_min_rate: Some(2048),
                body_min_rate_window_secs: Some(5),
                auth_failures: Some(7),
                auth_failure_window_secs: Some(30),
                refusal_log_interval_secs: Some(2),
                webhooks: Some(vec![
                    crate::webhooks::WebhookSettings {
                        url: "https://alerts.example.com/tandem".into(),
                        name: None,
                        kinds: Some(vec!["input_lost".into(), "switch".into()]),
                        bearer_token: Some(crate::webhooks::Secret("t0ken".into())),
                        secret: Some(crate::webhooks::Secret("s3cret".into())),
                        queue: Some(50),
                        attempts: Some(3),
                        timeout_ms: Some(2000),
                        backoff_initial_ms: Some(250),
                        backoff_max_ms: Some(8000),
                    },
                    crate::webhooks::WebhookSettings::url("http://127.0.0.1:9999/hook"),
                ]),
            }
        );
        let mut with_cors = ServerConfig::new(DEFAULT_LISTEN.parse().unwrap(), "d".into());
        assert_eq!(with_cors.cors_origins, ["*"]);
        f.apply(&mut with_cors);
        assert_eq!(with_cors.cors_origins, ["https://player.example.com"]);
        // Applied over the defaults, every key the file owns takes effect
        // (listen, data and s3_listen are the binary's: flags and
        // environment variables can override them).
        let mut cfg = ServerConfig::new(DEFAULT_LISTEN.parse().unwrap(), "d".into());
        f.apply(&mut cfg);
        assert_eq!(
            cfg.public_url.as_deref(),
            Some("https://origin.example.com")
        );
        assert_eq!(
            cfg.tls,
            Some(TlsFiles {
                cert: "/etc/tandem/cert.pem".into(),
                key: "/etc/tandem/key.pem".into(),
            })
        );
        assert_eq!(cfg.max_body_bytes, 10);
        assert_eq!(cfg.body_idle_timeout, Duration::from_secs(7));
        assert_eq!(cfg.nonce_lifetime, Duration::from_secs(60));
        assert_eq!(cfg.auth_schemes, vec![Scheme::Basic, Scheme::DigestMd5]);
        assert_eq!(cfg.input_loss_after, Duration::from_secs(4));
        assert_eq!(cfg.shutdown_grace, Duration::from_secs(3));
        assert_eq!(cfg.output_grace, Duration::from_secs(90));
        assert_eq!(cfg.output_cache_bytes, 1024);
        assert_eq!(cfg.input_retention(), Duration::from_secs(120));
        assert_eq!(cfg.input_unnamed_retention, Duration::from_secs(900));
        assert_eq!(cfg.disk_low_percent, 2.5);
        assert_eq!(cfg.disk_low_bytes, 4096);
        assert_eq!(cfg.disk_check, Duration::from_secs(3));
        assert_eq!(cfg.s3.region, "eu-west-3");
        assert_eq!(cfg.s3.domains, ["s3.example.com", "localhost"]);
        assert_eq!(cfg.s3_multipart_expiry, Duration::from_secs(7200));
        assert_eq!(cfg.archive_check_every, Duration::from_secs(5));
        assert_eq!(cfg.archive_grace, Duration::from_secs(45));
        assert_eq!(cfg.webhooks.len(), 2);
        assert_eq!(
            cfg.limits,
            crate::guard::Limits {
                header_read_timeout: Duration::from_secs(5),
                max_header_bytes: 16384,
                max_header_lines: 50,
                max_connections: 500,
                max_connections_per_ip: 50,
                body_min_rate: 2048,
                body_min_rate_window: Duration::from_secs(5),
                auth_failures: 7,
                auth_failure_window: Duration::from_secs(30),
                refusal_log_interval: Duration::from_secs(2),
            }
        );
        assert_eq!(cfg.check(), Ok(()));
        assert_eq!(parse_s3_listen("off"), Ok(None));
        assert_eq!(
            parse_s3_listen("127.0.0.1:9001"),
            Ok(Some("127.0.0.1:9001".parse().unwrap()))
        );
        // An empty file changes nothing.
        let mut untouched = ServerConfig::new(DEFAULT_LISTEN.parse().unwrap(), "d".into());
        toml::from_str::<FileConfig>("")
            .unwrap()
            .apply(&mut untouched);
        assert_eq!(untouched.max_body_bytes, DEFAULT_MAX_BODY);
        assert_eq!(untouched.output_grace, DEFAULT_OUTPUT_GRACE);
        assert_eq!(untouched.input_retention(), DEFAULT_OUTPUT_GRACE);
        assert_eq!(untouched.s3.region, "us-east-1");
        assert_eq!(untouched.archive_check_every, DEFAULT_ARCHIVE_CHECK_EVERY);
        assert_eq!(untouched.archive_grace, DEFAULT_ARCHIVE_GRACE);
        assert!(untouched.webhooks.is_empty());
        // Unknown keys and unknown auth schemes are refused.
        assert!(toml::from_str::<FileConfig>("lisen = \"x\"").is_err());
        assert!(toml::from_str::<FileConfig>("auth_schemes = [\"ntlm\"]").is_err());
    }

    #[test]
    fn archive_watch_settings_out_of_range_are_refused() {
        let mut cfg = ServerConfig::new(DEFAULT_LISTEN.parse().unwrap(), "d".into());
        cfg.archive_check_every = Duration::ZERO;
        assert_eq!(
            cfg.check().unwrap_err().to_string(),
            "archive_check_every_secs (--archive-check-every): 0 s is outside 1 to 3600 s"
        );
        cfg.archive_check_every = Duration::from_secs(3600);
        cfg.archive_grace = Duration::from_secs(86_401);
        assert_eq!(
            cfg.check().unwrap_err().to_string(),
            "archive_grace_secs (--archive-grace): 86401 s is more than 86400 s (a day); is it in seconds?"
        );
        cfg.archive_grace = Duration::ZERO;
        assert_eq!(cfg.check(), Ok(()));
        // An unknown key inside a webhook table is refused too.
        assert!(
            toml::from_str::<FileConfig>("[[webhooks]]\nurl = \"http://x/\"\nretries = 3").is_err()
        );
    }

    #[test]
    fn base_url_follows_listen_and_tls() {
        let mut cfg = ServerConfig::new("0.0.0.0:9090".parse().unwrap(), "d".into());
        assert_eq!(cfg.base_url(), "http://127.0.0.1:9090");
        cfg.tls = Some(TlsFiles {
            cert: "c".into(),
            key: "k".into(),
        });
        assert_eq!(cfg.base_url(), "https://127.0.0.1:9090");
        cfg.public_url = Some("https://origin.example/".into());
        assert_eq!(cfg.base_url(), "https://origin.example");
    }
}
