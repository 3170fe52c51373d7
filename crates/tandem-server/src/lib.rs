//! Tandem's HTTP side: the listener, the ingest dialects, the control API
//! and metrics. It owns the sockets, the clock and the data directory; all
//! protocol decisions it delegates to the library crates.
//!
//! - [`config`]: defaults, the TOML file.
//! - [`auth`]: Digest and Basic for ingest.
//! - [`ingest`]: `/in/{channel}/{pipeline}/…`, HTTP PUT and WebDAV.
//! - [`api`]: `/api/v1/…`, channels and archive pairs.
//! - [`s3`]: the S3 listener for archive pairs.
//! - [`archive_watch`]: archive pairs checked as files arrive.
//! - [`events`]: every event raised, as one stream.
//! - [`webhooks`]: events POSTed to receivers, with retries.
//! - [`registry`]: the channel database and live channels.
//! - [`serve`]: serving a stored object (Range, conditional requests).
//! - [`notice`]: what ingest tells the output; below both.
//! - [`output`]: `/out/{channel}/…`, the merged output, and its driver.
//! - [`metrics`]: Prometheus exposition.
//! - [`listener`]: plain and TLS accept loop, graceful shutdown.
//! - [`guard`]: the listeners' limits under hostile load.
//! - [`datadir`]: what lives where in the data directory.
//! - [`clock`]: wall-clock and monotonic time, injected.
//! - [`disk`]: free space on the data directory's disk, `disk_low`.
//! - [`udp`]: UDP and RTP flows (tandem-udp-io) started, stopped, reported.

pub mod api;
pub mod archive_watch;
pub mod auth;
pub mod clock;
pub mod config;
pub mod datadir;
pub mod disk;
mod error;
pub mod events;
pub mod guard;
pub mod ingest;
pub mod listener;
pub mod metrics;
pub mod notice;
pub mod output;
pub mod registry;
pub mod ui;
/// The S3 listener's operations (its own crate), re-exported for callers.
pub use tandem_s3 as s3;
pub mod serve;
pub mod udp;
pub mod udp_record;
pub mod uploads;
mod util;
pub mod webhooks;

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

pub use clock::{Clock, ManualClock, SystemClock};

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
    #[error(transparent)]
    Setting(#[from] config::SettingError),
    #[error(transparent)]
    Webhook(#[from] webhooks::WebhookError),
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
    /// Ingest's notices to each channel's output.
    pub notices: Arc<notice::Notices>,
    /// The S3 keys: the admin's and each archive pair's.
    pub keys: Arc<s3::KeyRing>,
    /// The S3 operations over the store (also used by the archives API).
    pub s3: s3::TandemS3,
    /// What the archive watch found, per archive pair.
    pub archive_watches: archive_watch::ArchiveWatches,
    /// The MediaStore data API (container pairs).
    pub mediastore: tandem_mediastore::MediaStore,
    /// Every event raised, for live listeners (status page, webhooks).
    pub events: events::EventBus,
    /// Where events are POSTed.
    pub webhooks: webhooks::Webhooks,
    /// Free space on the data directory's disk.
    pub disk: disk::DiskWatch,
    /// UDP and RTP flows.
    pub udp: udp::UdpFlows,
    /// The listeners' limits, failed authentications per address and the
    /// bounded log of refusals.
    pub guard: Arc<guard::Guard>,
    /// Held while a new input password is stored and put in force, so
    /// that of two rotations at once the one stored last is the one in
    /// force.
    pub rotation: std::sync::Mutex<()>,
}

impl AppState {
    /// Creates a channel with failover settings: durable first, then served.
    pub async fn create_channel_with(
        &self,
        id: &ChannelId,
        now: SystemTime,
        failover: tandem_core::FailoverSettings,
    ) -> Result<Arc<registry::LiveChannel>, RegistryError> {
        self.create_channel_from(id, now, failover, Default::default())
            .await
    }

    /// Creates a channel with failover settings and each pipeline's source.
    pub async fn create_channel_from(
        &self,
        id: &ChannelId,
        now: SystemTime,
        failover: tandem_core::FailoverSettings,
        sources: [tandem_core::InputSource; 2],
    ) -> Result<Arc<registry::LiveChannel>, RegistryError> {
        let mut spec = registry::new_channel_spec(id, now)?;
        spec.failover = failover;
        spec.sources = sources;
        self.db.insert(&spec)?;
        let live = self.channels.add(spec)?;
        self.prepare_inputs(id).await;
        self.start_output(&live);
        Ok(live)
    }

    /// Creates a channel from a whole definition (as
    /// [`registry::new_channel_spec`] makes it, then adjusted): durable
    /// first, then served.
    pub async fn create_channel_spec(
        &self,
        spec: tandem_core::ChannelSpec,
    ) -> Result<Arc<registry::LiveChannel>, RegistryError> {
        let id = spec.channel_id().map_err(|e| RegistryError::Corrupt {
            id: spec.id.clone(),
            message: e.to_string(),
        })?;
        self.db.insert(&spec)?;
        let live = self.channels.add(spec)?;
        self.prepare_inputs(&id).await;
        self.start_output(&live);
        Ok(live)
    }

    /// Changes a channel's retention: durable first, then applied by its
    /// running output from its next retention step.
    pub fn set_channel_retention(
        &self,
        id: &ChannelId,
        retention: tandem_core::RetentionSettings,
    ) -> Result<tandem_core::ChannelSpec, RegistryError> {
        let spec = self.db.set_retention(id, retention)?;
        if let Some(out) = self.outputs.get(id) {
            out.retention
                .set_keep_for(retention.input_secs.map(std::time::Duration::from_secs));
        }
        Ok(spec)
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
        self.notices.close(id);
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

    /// Creates an archive pair: durable first, then its buckets, then its
    /// keys are accepted.
    pub async fn create_archive(
        &self,
        id: &tandem_core::ArchiveId,
        now: SystemTime,
        rollover_secs: Option<u64>,
    ) -> Result<tandem_core::ArchiveSpec, RegistryError> {
        let spec = registry::new_archive_spec(id, now, rollover_secs)?;
        self.db.insert_archive(&spec)?;
        self.serve_archive(id, &spec).await;
        Ok(spec)
    }

    async fn serve_archive(&self, id: &tandem_core::ArchiveId, spec: &tandem_core::ArchiveSpec) {
        for p in Pipeline::BOTH {
            if let Err(e) = self.s3.create_bucket_dir(&id.bucket(p)).await {
                tracing::warn!(archive = %id, error = %e, "cannot create archive bucket");
            }
        }
        self.keys.add_archive(id, spec);
    }

    /// Removes an archive pair, its keys and both buckets' contents.
    pub async fn delete_archive(&self, id: &tandem_core::ArchiveId) -> Result<(), RegistryError> {
        if !self.db.remove_archive(id)? {
            return Err(RegistryError::ArchiveNotFound(id.to_string()));
        }
        self.keys.remove_archive(id);
        self.archive_watches.forget(id.as_str());
        for p in Pipeline::BOTH {
            if let Err(e) = self.s3.remove_bucket_tree(&id.bucket(p)).await {
                tracing::warn!(archive = %id, error = %e, "archive deleted but its bucket was not");
            }
        }
        Ok(())
    }

    /// Creates a container pair: durable first, then its keys are accepted.
    pub fn create_container(
        &self,
        id: &tandem_core::ContainerId,
        now: SystemTime,
    ) -> Result<tandem_core::ContainerSpec, RegistryError> {
        let spec = registry::new_container_spec(id, now)?;
        self.db.insert_container(&spec)?;
        self.serve_container(&spec);
        Ok(spec)
    }

    fn serve_container(&self, spec: &tandem_core::ContainerSpec) {
        let k = Pipeline::BOTH.map(|p| spec.keys(p));
        self.mediastore.add_pair(
            &spec.id,
            k.map(|k| (k.access_key_id.as_str(), k.secret_access_key.as_str())),
        );
    }

    /// Removes a container pair, its keys and both containers' objects.
    pub async fn delete_container(
        &self,
        id: &tandem_core::ContainerId,
    ) -> Result<(), RegistryError> {
        if !self.db.remove_container(id)? {
            return Err(RegistryError::ContainerNotFound(id.to_string()));
        }
        if let Err(e) = self.mediastore.remove_pair(id.as_str()).await {
            tracing::warn!(container = %id, error = %e, "container pair deleted but its objects were not");
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
        let roots = Pipeline::BOTH.map(|p| self.source_root(&ch.id, ch.spec.source(p), p));
        for p in Pipeline::BOTH {
            if *ch.spec.source(p) != tandem_core::InputSource::Http {
                self.notices.bind(roots[p.index()].clone(), &ch.id, p);
            }
        }
        self.outputs.start(
            &ch.id,
            output::StartOutput {
                roots,
                notices: self.notices.subscribe(&ch.id),
                store: self.store.clone(),
                clock: self.clock.clone(),
                cfg,
                grace: self.cfg.output_grace,
                smooth_notices: self.notices.subscribe_smooth(&ch.id),
                smooth: tandem_smooth::SmoothConfig {
                    loss_after_fragments: f
                        .loss_after_targets
                        .unwrap_or(defaults.loss_after_targets),
                    dvr_window: self.cfg.smooth_dvr_window,
                    // LookAheadFragmentCount 2, as IIS writes it: every
                    // served fragment carries a tfrf naming the fragments
                    // that follow it (see output::smooth).
                    manifest: tandem_smooth::ManifestSettings::default(),
                    ..Default::default()
                },
                retention: output::retention::Settings {
                    after_window: self.cfg.input_retention(),
                    // Bound containers and buckets may hold more than HLS.
                    unnamed: Pipeline::BOTH.map(|p| {
                        (*ch.spec.source(p) == tandem_core::InputSource::Http)
                            .then_some(self.cfg.input_unnamed_retention)
                    }),
                    keep_for: ch
                        .spec
                        .retention
                        .input_secs
                        .map(std::time::Duration::from_secs),
                },
            },
        );
    }

    /// Where a pipeline's objects are in the store: its HTTP input, or the
    /// bound container or bucket under its prefix.
    fn source_root(
        &self,
        id: &ChannelId,
        source: &tandem_core::InputSource,
        p: Pipeline,
    ) -> tandem_core::ObjectPath {
        use tandem_core::InputSource;
        let top = match source {
            InputSource::Http => return notice::input_root(id, p),
            InputSource::Mediastore { container, .. } => {
                tandem_mediastore::MediaStore::container_root(container)
            }
            InputSource::S3 { bucket, .. } => s3::TandemS3::bucket_root(bucket).ok(),
        };
        let prefix = source.prefix_segments();
        top.and_then(|t| {
            let mut segs = t.segments().to_vec();
            segs.extend(prefix.iter().map(|s| (*s).to_owned()));
            tandem_core::ObjectPath::from_segments(segs).ok()
        })
        .unwrap_or_else(|| notice::input_root(id, p))
    }

    /// Makes sure both input roots exist, so PROPFIND answers before the
    /// first upload.
    async fn prepare_inputs(&self, id: &ChannelId) {
        let Ok(ch) = tandem_core::ObjectPath::from_segments([id.as_str()]) else {
            return;
        };
        let mut keys = vec![ch];
        keys.extend(Pipeline::BOTH.map(|p| notice::input_root(id, p)));
        for key in keys {
            match self.store.create_collection(&key).await {
                Ok(()) | Err(StoreError::AlreadyExists { .. }) => {}
                Err(e) => tracing::warn!(key = %key, error = %e, "cannot create input root"),
            }
        }
    }
}

async fn metrics_route(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    udp::render_metrics(&st.udp);
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
        "not found: ingest is under /in/, the output under /out/, the API under /api/v1/, metrics at /metrics, the status page at /\n",
    )
}

/// The whole HTTP application.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/in/{*rest}", any(ingest::handle))
        .route(
            "/out/{*rest}",
            any(output::handle).layer(output::cors(&state.cfg.cors_origins)),
        )
        .route("/metrics", get(metrics_route))
        .merge(api::router())
        .merge(ui::router())
        .fallback(not_found)
        .with_state(state)
}

/// Binds `addr`; port 0 becomes the port actually bound, so links carry it.
async fn bind(addr: &mut SocketAddr, flag: &'static str) -> Result<TcpListener, ServerError> {
    let listener = TcpListener::bind(*addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: *addr,
            hint: if source.kind() == std::io::ErrorKind::AddrInUse {
                match flag {
                    "--listen" => " (is another tandem running? use --listen)",
                    "--mediastore-listen" => {
                        " (is another MediaStore-style server running? use --mediastore-listen ADDR, or --mediastore-listen off)"
                    }
                    _ => {
                        " (is another S3 server running? use --s3-listen ADDR, or --s3-listen off)"
                    }
                }
            } else {
                ""
            },
            source,
        })?;
    if addr.port() == 0
        && let Ok(a) = listener.local_addr()
    {
        *addr = a;
    }
    Ok(listener)
}

/// A bound, ready server.
pub struct Server {
    state: Arc<AppState>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    s3_listener: Option<TcpListener>,
    mediastore_listener: Option<TcpListener>,
    data: DataDir,
}

impl Server {
    /// Opens the data directory (store, channel database, admin token),
    /// creates the demo channel if there is no channel, and binds.
    pub async fn bind(cfg: ServerConfig) -> Result<Self, ServerError> {
        let data = DataDir::new(cfg.data_dir.clone());
        data.create()?;
        let store: Arc<dyn Store> = Arc::new(LocalStore::open(data.root())?);
        // Test builds only (feature `fault-injection`): a store that breaks
        // publication on purpose when TANDEM_FAULT_INJECT says so.
        #[cfg(feature = "fault-injection")]
        let store = tandem_store::fault::from_env(store);
        Self::bind_with(cfg, store, Arc::new(SystemClock)).await
    }

    /// As [`bind`](Self::bind), with a given store and clock (tests).
    pub async fn bind_with(
        cfg: ServerConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ServerError> {
        cfg.check()?;
        let data = DataDir::new(cfg.data_dir.clone());
        data.create()?;
        // Install the recorder before the first request counts anything.
        drop(metrics::handle());
        let tls = cfg.tls.as_ref().map(listener::tls_acceptor).transpose()?;
        let db = ChannelDb::open(&data.db_path())?;
        let admin_token = data.admin_token()?;
        let mut cfg = cfg;
        let listener = bind(&mut cfg.listen, "--listen").await?;
        let s3_listener = match &mut cfg.s3_listen {
            Some(addr) => Some(bind(addr, "--s3-listen, or --s3-listen off").await?),
            None => None,
        };
        let mediastore_listener = match &mut cfg.mediastore_listen {
            Some(addr) => Some(bind(addr, "--mediastore-listen").await?),
            None => None,
        };
        let mediastore = tandem_mediastore::MediaStore::new(
            store.clone(),
            tandem_mediastore::Settings {
                region: cfg.s3.region.clone(),
                ..Default::default()
            },
            &admin_token,
        );
        let auth = auth::Authenticator::new(cfg.nonce_lifetime, cfg.auth_schemes.clone());
        let events = events::EventBus::default();
        // Listening before any output starts: no event goes unsent.
        let webhooks = webhooks::Webhooks::new(&cfg.webhooks, &events)?;
        let outputs = output::Outputs::new(cfg.output_cache_bytes, events.clone());
        let keys = Arc::new(s3::KeyRing::new(&admin_token));
        let s3 = s3::TandemS3::new(store.clone(), keys.clone());
        // Objects published through the S3 and MediaStore APIs reach the
        // channels bound to their bucket or container.
        let notices = Arc::new(notice::Notices::default());
        // The hook outlives nothing: it reaches the state through a weak
        // reference set once the state exists.
        let owner: Arc<std::sync::OnceLock<std::sync::Weak<AppState>>> = Arc::default();
        let hook = {
            let (n, owner) = (notices.clone(), owner.clone());
            tandem_store::PublishHook::new(move |key, size| {
                let bound = n.stored(key);
                let Some(st) = owner.get().and_then(std::sync::Weak::upgrade) else {
                    return;
                };
                // A bound pipeline's input counts what arrives there, as
                // `/in/` uploads count for the others.
                let now = st.clock.now();
                for (c, p) in bound {
                    if let Some(ch) = st.channels.get(&c) {
                        ch.input(p).record_write(now, size);
                        metrics::object_published(c.as_str(), &p.to_string(), size);
                    }
                }
            })
        };
        s3.on_publish(hook.clone());
        mediastore.on_publish(hook);
        let guard = Arc::new(guard::Guard::new(cfg.limits.clone(), clock.clone()));
        let state = Arc::new(AppState {
            guard,
            rotation: Default::default(),
            cfg,
            store,
            channels: Default::default(),
            db,
            auth,
            admin_token,
            clock,
            outputs,
            notices: notices.clone(),
            keys,
            s3,
            archive_watches: Default::default(),
            mediastore,
            events,
            webhooks,
            disk: disk::DiskWatch::new(
                data.root().display().to_string(),
                Arc::new(disk::StatVfs(data.root().to_path_buf())),
            ),
            udp: Default::default(),
        });
        let _ = owner.set(Arc::downgrade(&state));
        for spec in state.db.list_containers()? {
            spec.container_id().map_err(|e| RegistryError::Corrupt {
                id: spec.id.clone(),
                message: e.to_string(),
            })?;
            state.serve_container(&spec);
        }
        for spec in state.db.list_archives()? {
            let id = spec.archive_id().map_err(|e| RegistryError::Corrupt {
                id: spec.id.clone(),
                message: e.to_string(),
            })?;
            state.serve_archive(&id, &spec).await;
        }
        for spec in state.db.list()? {
            let id = spec.channel_id().map_err(|e| RegistryError::Corrupt {
                id: spec.id.clone(),
                message: e.to_string(),
            })?;
            let live = state.channels.add(spec)?;
            state.prepare_inputs(&id).await;
            state.start_output(&live);
        }
        for spec in state.db.list_udp()? {
            // A flow that cannot open its sockets does not stop the
            // server: the API shows it failed, with the reason.
            if let Err(e) = state
                .udp
                .start(spec.clone(), &state.events, &state.clock, &state.store)
            {
                tracing::error!(flow = %spec.id, error = %e, "udp flow cannot start");
                state.udp.failed(spec, e.to_string());
            }
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
            s3_listener,
            mediastore_listener,
            data,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Where the S3 listener is bound, if it runs.
    pub fn s3_addr(&self) -> Option<SocketAddr> {
        self.s3_listener.as_ref()?.local_addr().ok()
    }

    /// Where the MediaStore listener is bound, if it runs.
    pub fn mediastore_addr(&self) -> Option<SocketAddr> {
        self.mediastore_listener.as_ref()?.local_addr().ok()
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Writes `server.json`, so the CLI on this data directory talks to
    /// this server. The listeners are bound already: a client that reads
    /// the file and connects is queued until [`run`](Self::run) serves.
    pub fn announce(&self) -> Result<(), ServerError> {
        let base = self.state.cfg.base_url();
        let tls_cert = self.state.cfg.tls.as_ref().map(|t| t.cert.clone());
        self.data.write_server_file(
            &base,
            tls_cert.as_deref(),
            self.state.cfg.s3_endpoint(),
            self.state.cfg.mediastore_endpoint(),
        )
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        self.announce()?;
        let grace = self.state.cfg.shutdown_grace;
        // One shutdown signal stops both listeners.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let guard = self.state.guard.clone();
        let main = listener::serve(
            self.listener,
            self.tls.clone(),
            app(self.state.clone()),
            stopped(),
            grace,
            guard.clone(),
            "http",
        );
        let s3 = async {
            if let Some(l) = self.s3_listener {
                let svc = s3::service(
                    self.state.s3.clone(),
                    self.state.keys.clone(),
                    &self.state.cfg.s3,
                );
                listener::serve(
                    l,
                    self.tls.clone(),
                    svc,
                    stopped(),
                    grace,
                    guard.clone(),
                    "s3",
                )
                .await;
            }
        };
        let mediastore = async {
            if let Some(l) = self.mediastore_listener {
                let svc = self.state.mediastore.router();
                listener::serve(
                    l,
                    self.tls.clone(),
                    svc,
                    stopped(),
                    grace,
                    guard.clone(),
                    "mediastore",
                )
                .await;
            }
        };
        let watch = tokio::spawn(archive_watch::run(self.state.clone()));
        let (hooks_stop, hooks_stopped) = tokio::sync::watch::channel(false);
        let hooks = {
            let st = self.state.clone();
            tokio::spawn(async move { st.webhooks.run(st.clock.clone(), hooks_stopped).await })
        };
        let disk = tokio::spawn(disk::run(self.state.clone()));
        let sweep = tokio::spawn(uploads::run(self.state.clone()));
        let signal = async {
            shutdown.await;
            watch.abort();
            disk.abort();
            sweep.abort();
            let _ = stop_tx.send(true);
        };
        tokio::join!(main, s3, mediastore, signal);
        // Cancelled above; gone once awaited, with its hold on the state.
        let _ = watch.await;
        let _ = disk.await;
        let _ = sweep.await;
        // Ingest has drained: each output saves its last step and stops.
        self.state.outputs.shutdown().await;
        self.state.udp.stop_all().await;
        // The last events go out to receivers that answer, for a while.
        let _ = hooks_stop.send(true);
        let limit = webhooks::drain_limit(grace);
        let abort = hooks.abort_handle();
        if tokio::time::timeout(limit, hooks).await.is_err() {
            abort.abort();
            tracing::warn!("webhooks still had events to send after {limit:?}; they are lost");
        }
        self.data.remove_server_file();
        Ok(())
    }
}
