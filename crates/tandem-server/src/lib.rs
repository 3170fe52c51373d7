//! Tandem's HTTP side: the listener, the ingest dialects, the control API
//! and metrics. It owns the sockets, the clock and the data directory; all
//! protocol decisions it delegates to the library crates.
//!
//! - [`config`]: defaults, the TOML file.
//! - [`auth`]: Digest and Basic for ingest.
//! - [`ingest`]: `/in/{channel}/{pipeline}/…`, HTTP PUT and WebDAV.
//! - [`api`]: `/api/v1/…`, channels.
//! - [`registry`]: the channel database and live channels.
//! - [`serve`]: serving a stored object (Range, conditional requests).
//! - [`output`]: `/out/{channel}/…`, the merged output, and its driver.
//! - [`metrics`]: Prometheus exposition.
//! - [`listener`]: plain and TLS accept loop, graceful shutdown.
//! - [`datadir`]: what lives where in the data directory.

pub mod api;
pub mod auth;
pub mod config;
pub mod datadir;
mod error;
pub mod ingest;
pub mod listener;
pub mod metrics;
pub mod output;
pub mod registry;
pub mod serve;
mod util;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{any, get};
use tandem_core::{ChannelId, Pipeline};
use tandem_store::{LocalStore, Store, StoreError};
use tokio::net::TcpListener;

pub use config::ServerConfig;
pub use datadir::DataDir;
pub use registry::{ChannelDb, RegistryError};

/// Wall-clock time, injected so tests can move it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> SystemTime;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}{hint}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("data directory {path}: {source}")]
    Data {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("TLS file {path}: {message}")]
    Tls { path: PathBuf, message: String },
}

/// Everything a request handler needs.
#[derive(Debug)]
pub struct AppState {
    pub cfg: ServerConfig,
    pub store: Arc<dyn Store>,
    pub channels: registry::Channels,
    pub db: ChannelDb,
    pub auth: auth::Authenticator,
    pub admin_token: String,
    pub clock: Arc<dyn Clock>,
    pub outputs: output::Outputs,
}

impl AppState {
    /// Creates a channel with failover settings: durable first, then served.
    pub async fn create_channel_with(
        &self,
        id: &ChannelId,
        now: SystemTime,
        failover: tandem_core::FailoverSettings,
    ) -> Result<Arc<registry::LiveChannel>, RegistryError> {
        let mut spec = registry::new_channel_spec(id, now)?;
        spec.failover = failover;
        self.db.insert(&spec)?;
        let live = self.channels.add(spec)?;
        self.prepare_inputs(id).await;
        self.start_output(&live);
        Ok(live)
    }

    /// Creates a channel: durable first, then served.
    pub async fn create_channel(
        &self,
        id: &ChannelId,
        now: SystemTime,
    ) -> Result<Arc<registry::LiveChannel>, RegistryError> {
        self.create_channel_with(id, now, Default::default()).await
    }

    /// Removes a channel and everything its inputs stored.
    pub async fn delete_channel(&self, id: &ChannelId) -> Result<(), RegistryError> {
        if !self.db.remove(id)? {
            return Err(RegistryError::NotFound(id.to_string()));
        }
        self.channels.remove(id);
        self.outputs.stop(id);
        if let Ok(key) = tandem_core::ObjectPath::from_segments([id.as_str()]) {
            match self.store.delete(&key).await {
                Ok(()) | Err(StoreError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(channel = %id, error = %e, "channel deleted but its objects were not")
                }
            }
        }
        Ok(())
    }

    /// Starts a channel's output driver with its failover settings.
    fn start_output(&self, ch: &registry::LiveChannel) {
        let f = &ch.spec.failover;
        let defaults = tandem_hls::MergeConfig::default();
        let cfg = tandem_hls::MergeConfig {
            loss_after_targets: f.loss_after_targets.unwrap_or(defaults.loss_after_targets),
            pdt_tolerance_targets: f
                .pdt_tolerance_targets
                .unwrap_or(defaults.pdt_tolerance_targets),
            prefer: f.prefer.and_then(|p| Pipeline::parse(&p.to_string()).ok()),
            hold_down: f
                .hold_down_secs
                .map_or(defaults.hold_down, std::time::Duration::from_secs),
            ..defaults
        };
        self.outputs
            .start(&ch.id, self.store.clone(), cfg, self.cfg.output_grace);
    }

    /// Makes sure both input roots exist, so PROPFIND answers before the
    /// first upload.
    async fn prepare_inputs(&self, id: &ChannelId) {
        let Ok(ch) = tandem_core::ObjectPath::from_segments([id.as_str()]) else {
            return;
        };
        let mut keys = vec![ch];
        keys.extend(Pipeline::BOTH.map(|p| ingest::input_root(id, p)));
        for key in keys {
            match self.store.create_collection(&key).await {
                Ok(()) | Err(StoreError::AlreadyExists { .. }) => {}
                Err(e) => tracing::warn!(key = %key, error = %e, "cannot create input root"),
            }
        }
    }
}

async fn metrics_route(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    let body = metrics::render(
        &st.channels,
        &st.outputs,
        st.clock.now(),
        st.cfg.input_loss_after,
    );
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        body,
    )
}

async fn not_found() -> impl IntoResponse {
    (
        http::StatusCode::NOT_FOUND,
        "not found: ingest is under /in/, the API under /api/v1/, metrics at /metrics\n",
    )
}

/// The whole HTTP application.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/in/{*rest}", any(ingest::handle))
        .route("/out/{*rest}", any(output::handle))
        .route("/metrics", get(metrics_route))
        .merge(api::router())
        .fallback(not_found)
        .with_state(state)
}

/// A bound, ready server.
pub struct Server {
    state: Arc<AppState>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    data: DataDir,
}

impl Server {
    /// Opens the data directory (store, channel database, admin token),
    /// creates the demo channel if there is no channel, and binds.
    pub async fn bind(cfg: ServerConfig) -> Result<Self, ServerError> {
        let data = DataDir::new(cfg.data_dir.clone());
        data.create()?;
        let store: Arc<dyn Store> = Arc::new(LocalStore::open(data.root())?);
        Self::bind_with(cfg, store, Arc::new(SystemClock)).await
    }

    /// As [`bind`](Self::bind), with a given store and clock (tests).
    pub async fn bind_with(
        cfg: ServerConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ServerError> {
        let data = DataDir::new(cfg.data_dir.clone());
        data.create()?;
        // Install the recorder before the first request counts anything.
        drop(metrics::handle());
        let tls = cfg.tls.as_ref().map(listener::tls_acceptor).transpose()?;
        let db = ChannelDb::open(&data.db_path())?;
        let admin_token = data.admin_token()?;
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: cfg.listen,
                hint: if source.kind() == std::io::ErrorKind::AddrInUse {
                    " (is another tandem running? use --listen)"
                } else {
                    ""
                },
                source,
            })?;
        let mut cfg = cfg;
        // Port 0 means "any": links must carry the port actually bound.
        if let Some(a) = listener
            .local_addr()
            .ok()
            .filter(|_| cfg.listen.port() == 0)
        {
            cfg.listen = a;
        }
        let auth = auth::Authenticator::new(cfg.nonce_lifetime, cfg.auth_schemes.clone());
        let outputs = output::Outputs::new(cfg.output_cache_bytes);
        let state = Arc::new(AppState {
            cfg,
            store,
            channels: Default::default(),
            db,
            auth,
            admin_token,
            clock,
            outputs,
        });
        for spec in state.db.list()? {
            let id = spec.channel_id().map_err(|e| RegistryError::Corrupt {
                id: spec.id.clone(),
                message: e.to_string(),
            })?;
            let live = state.channels.add(spec)?;
            state.prepare_inputs(&id).await;
            state.start_output(&live);
        }
        let demo = ChannelId::parse("demo")
            .ok()
            .filter(|_| state.channels.all().is_empty() && state.cfg.create_demo_channel);
        if let Some(demo) = demo {
            state.create_channel(&demo, SystemTime::now()).await?;
            tracing::info!("created the demo channel");
        }
        Ok(Self {
            state,
            listener,
            tls,
            data,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let base = self.state.cfg.base_url();
        let tls_cert = self.state.cfg.tls.as_ref().map(|t| t.cert.clone());
        self.data.write_server_file(&base, tls_cert.as_deref())?;
        let grace = self.state.cfg.shutdown_grace;
        listener::serve(
            self.listener,
            self.tls,
            app(self.state.clone()),
            shutdown,
            grace,
        )
        .await;
        self.data.remove_server_file();
        Ok(())
    }
}
