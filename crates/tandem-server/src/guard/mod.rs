//! Limits that keep the listeners serving honest clients under hostile
//! load: request head timeout and size, connections per address and in
//! all, a minimum body rate, failed authentications per address, and
//! refusals logged at a bounded rate and counted.
//!
//! - [`conns`]: connections per address and in all, eviction of idle ones.
//! - [`authrate`]: failed authentications per address (429).
//! - [`body`]: the minimum body rate.
//! - [`logbudget`]: bounded logging of refusals.
//! - [`service`]: the per-connection service and I/O that apply them.

pub mod authrate;
pub mod body;
pub mod conns;
pub mod logbudget;
pub mod service;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::counter;

use crate::clock::Clock;

/// The listeners' limits; every one is a setting.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// A request head must arrive whole within this (408).
    pub header_read_timeout: Duration,
    /// Largest request head, request line included (431).
    pub max_header_bytes: usize,
    /// Most header lines in a request (431).
    pub max_header_lines: usize,
    /// Open connections per listener; 0: no limit.
    pub max_connections: usize,
    /// Open connections per source address and listener; 0: no limit.
    pub max_connections_per_ip: usize,
    /// A request body slower than this many bytes a second over
    /// `body_min_rate_window` is ended (408); 0: no minimum.
    pub body_min_rate: u64,
    pub body_min_rate_window: Duration,
    /// Failed authentications a source address may make per
    /// `auth_failure_window` before it is answered 429; 0: no limit.
    pub auth_failures: u32,
    pub auth_failure_window: Duration,
    /// One log line per kind of refusal per this interval; the others are
    /// counted on the next line and in the metrics.
    pub refusal_log_interval: Duration,
}

/// Settings that replace some of [`Limits`]' values: one layer of the
/// configuration (file, environment, flags), durations in whole seconds.
/// Each layer fills this and applies it, so the mapping lives once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitOverrides {
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

impl LimitOverrides {
    /// Replaces in `l` every value this layer sets.
    pub fn apply(&self, l: &mut Limits) {
        let secs = Duration::from_secs;
        let Self {
            header_read_timeout_secs,
            max_header_bytes,
            max_header_lines,
            max_connections,
            max_connections_per_ip,
            body_min_rate,
            body_min_rate_window_secs,
            auth_failures,
            auth_failure_window_secs,
            refusal_log_interval_secs,
        } = *self;
        l.header_read_timeout = header_read_timeout_secs.map_or(l.header_read_timeout, secs);
        l.max_header_bytes = max_header_bytes.unwrap_or(l.max_header_bytes);
        l.max_header_lines = max_header_lines.unwrap_or(l.max_header_lines);
        l.max_connections = max_connections.unwrap_or(l.max_connections);
        l.max_connections_per_ip = max_connections_per_ip.unwrap_or(l.max_connections_per_ip);
        l.body_min_rate = body_min_rate.unwrap_or(l.body_min_rate);
        l.body_min_rate_window = body_min_rate_window_secs.map_or(l.body_min_rate_window, secs);
        l.auth_failures = auth_failures.unwrap_or(l.auth_failures);
        l.auth_failure_window = auth_failure_window_secs.map_or(l.auth_failure_window, secs);
        l.refusal_log_interval = refusal_log_interval_secs.map_or(l.refusal_log_interval, secs);
    }
}

/// A request head arrives in one packet or a few. It also bounds how long
/// a kept-alive connection may sit idle between requests, so it stays
/// longer than an encoder's segment duration (reusing a connection the
/// server is closing fails the upload).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Encoders and players send under 4 KB of headers; nginx's limit is 32 KB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// hyper's default, far above any real client's.
pub const DEFAULT_MAX_HEADER_LINES: usize = 100;
/// Well within a raised descriptor limit; idle connections are closed to
/// make room before a new one is refused.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// An encoder of 50 channels opens a few hundred connections at once, a
/// CDN shield fetching the output more.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 1_000;
/// Below any real rendition (8 kbit/s audio is 1 000 bytes a second),
/// far above a trickle.
pub const DEFAULT_BODY_MIN_RATE: u64 = 1024;
pub const DEFAULT_BODY_MIN_RATE_WINDOW: Duration = Duration::from_secs(10);
/// 20 failures a minute: an encoder with a mistyped password still
/// fails visibly, a guesser gets 20 guesses a minute.
pub const DEFAULT_AUTH_FAILURES: u32 = 20;
pub const DEFAULT_AUTH_FAILURE_WINDOW: Duration = Duration::from_secs(60);
pub const DEFAULT_REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_header_lines: DEFAULT_MAX_HEADER_LINES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            body_min_rate: DEFAULT_BODY_MIN_RATE,
            body_min_rate_window: DEFAULT_BODY_MIN_RATE_WINDOW,
            auth_failures: DEFAULT_AUTH_FAILURES,
            auth_failure_window: DEFAULT_AUTH_FAILURE_WINDOW,
            refusal_log_interval: DEFAULT_REFUSAL_LOG_INTERVAL,
        }
    }
}

/// hyper refuses a smaller head buffer.
pub const MIN_HEADER_BYTES: usize = 8 * 1024;

impl Limits {
    pub fn check(&self) -> Result<(), crate::config::SettingError> {
        let err = |setting, message: String| Err(crate::config::SettingError { setting, message });
        if self.header_read_timeout.is_zero() {
            return err(
                "header_read_timeout_secs (--header-read-timeout)",
                "must be more than 0".into(),
            );
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return err(
                "max_header_bytes (--max-header-bytes)",
                format!(
                    "{} is under the smallest the HTTP parser takes, {MIN_HEADER_BYTES}",
                    self.max_header_bytes
                ),
            );
        }
        if self.max_header_lines == 0 {
            return err(
                "max_header_lines (--max-header-lines)",
                "must be at least 1".into(),
            );
        }
        if self.auth_failures > 0 && self.auth_failure_window.is_zero() {
            return err(
                "auth_failure_window_secs (--auth-failure-window)",
                "must be more than 0".into(),
            );
        }
        Ok(())
    }
}

/// Request extension: the client's address, as the listener accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Response extension: count this answer as a failed authentication even
/// though the request carried no `Authorization` (a sign-in form).
#[derive(Debug, Clone, Copy)]
pub struct AuthFailed;

/// Response extension: this 401/403 is not a guess (an expired nonce the
/// client will retry with the fresh one).
#[derive(Debug, Clone, Copy)]
pub struct NotAGuess;

/// The limits' shared state: one for all listeners (a guesser refused on
/// one listener is refused on all), with a connection table per listener.
#[derive(Debug)]
pub struct Guard {
    pub limits: Limits,
    clock: Arc<dyn Clock>,
    auth: Mutex<authrate::AuthLimiter>,
    log: Mutex<logbudget::LogBudget>,
}

impl Guard {
    pub fn new(limits: Limits, clock: Arc<dyn Clock>) -> Self {
        Self {
            auth: Mutex::new(authrate::AuthLimiter::new(
                limits.auth_failures,
                limits.auth_failure_window,
            )),
            log: Mutex::new(logbudget::LogBudget::new(limits.refusal_log_interval)),
            limits,
            clock,
        }
    }

    /// A connection table for one listener.
    pub fn conns(&self) -> conns::Conns {
        conns::Conns::new(
            self.limits.max_connections,
            self.limits.max_connections_per_ip,
        )
    }

    /// How long `ip` must wait before authenticating again, if it must.
    pub fn auth_blocked(&self, ip: IpAddr) -> Option<Duration> {
        let now = self.clock.instant();
        self.auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .blocked(ip, now)
    }

    /// Records a failed authentication from `ip`.
    pub fn auth_failed(&self, ip: IpAddr) {
        let now = self.clock.instant();
        self.auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .failed(ip, now);
    }

    /// Counts a refusal and says whether to log it: `Some(n)` with the
    /// number left out of the log since the last line of its kind.
    pub fn refused(&self, listener: &'static str, reason: &'static str) -> Option<u64> {
        counter!("tandem_refused_total", "listener" => listener, "reason" => reason).increment(1);
        let now = self.clock.instant();
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .allow(&format!("{listener}/{reason}"), now)
    }

    /// Lets a line through the log budget without counting a refusal
    /// (a refusal counted elsewhere, such as ingest's own metrics).
    pub fn log_allowed(&self, key: &str) -> Option<u64> {
        let now = self.clock.instant();
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .allow(key, now)
    }
}
