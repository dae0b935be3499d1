//! Wiring: builds the engine the configuration asks for, the services above it, and the HTTP
//! server; runs it until a shutdown signal and drains it.

pub mod admin;
mod cluster;
pub mod secrets;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use futures::future::BoxFuture;
use socketioxide::SocketIo;
use socketioxide::layer::SocketIoLayer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::audit::Audit;
use crate::auth::{AuthService, PasswordHasher, TokenIssuer};
use crate::config::{Engine, Settings};
use crate::crypto::Keyring;
use crate::events::EventSink;
use crate::groups::GroupService;
use crate::http::listener::{self, ConnectionLimits};
use crate::limits::{MemoryLimiter, RateLimiter};
use crate::messages::{Delivery, MessageService, ReadService, SenderCache};
use crate::ops::health::{PipelineProbe, Probe, Readiness, StoreProbe};
use crate::pipeline::{LocalPipeline, Pipeline};
use crate::realtime::{self, Fanout, SocketSettings};
use crate::state::AppState;
use crate::store::Store;
use crate::store::sqlite::SqliteStore;

/// What the engines share: secrets, token issuer, keyring, metrics.
pub(crate) struct Foundations {
    pub settings: Arc<Settings>,
    pub keyring: Keyring,
    pub tokens: TokenIssuer,
    pub metrics: crate::ops::metrics::Metrics,
    /// Shared with the admin listener, which answers while the engine still starts.
    pub readiness: Readiness,
    /// Cancelled when a shutdown begins: readiness fails, leadership is handed on.
    pub draining: CancellationToken,
    /// Cancelled once sockets are closed: background tasks stop.
    pub shutdown: CancellationToken,
}

/// The parts one engine provides.
pub(crate) struct EngineParts {
    pub store: Arc<dyn Store>,
    pub pipeline: Arc<dyn Pipeline>,
    pub events: Arc<dyn EventSink>,
    pub limiter: Arc<dyn RateLimiter>,
    pub probes: Vec<(&'static str, Arc<dyn Probe>)>,
    /// Shared by the send path and the fan-out, which forgets members who lose access.
    pub sender_cache: SenderCache,
}

/// Closes every Socket.IO connection (on drain), whatever the adapter.
type CloseSockets = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// What an engine's wiring hands to the server.
pub(crate) struct Assembled {
    pub app: Router,
    pub state: AppState,
    /// Finishes its batches and hands its partitions back at shutdown.
    pub pipeline: Arc<dyn Pipeline>,
    /// Written out last at shutdown.
    pub audit: Audit,
    /// Closes the engine.io transport of every socket: clients see a transport close and
    /// reconnect (a Socket.IO `disconnect` packet would tell them not to).
    pub close_sockets: CloseSockets,
    /// Leadership (`ops::leader`); ends after `draining`, once the Lease is released.
    pub leader: JoinHandle<()>,
    /// One per dependency, for the background prober behind readiness.
    pub probes: Vec<(&'static str, Arc<dyn Probe>)>,
}

impl Foundations {
    fn socket_settings(&self) -> SocketSettings {
        SocketSettings {
            max_payload: self.settings.socket_max_payload,
            max_buffer: self.settings.socket_buffer,
            events_per_sec: self.settings.socket_events_per_sec,
            max_sockets_per_user: self.settings.max_sockets_per_user,
            max_invalid_namespaces: self.settings.max_invalid_namespaces,
        }
    }

    /// The services over one engine's parts, and the handlers' state; the pipeline and the
    /// audit writer come back too, for the shutdown.
    fn services(&self, e: EngineParts) -> anyhow::Result<(AppState, Arc<dyn Pipeline>, Audit)> {
        let s = &self.settings;
        let audit = Audit::start(e.store.clone(), s.audit);
        let auth = AuthService::new(
            e.store.clone(),
            PasswordHasher::new(s.argon2)?,
            self.tokens.clone(),
            e.limiter.clone(),
            audit.clone(),
            s.auth(),
        );
        let state = AppState {
            http: s.http(),
            groups: GroupService::new(
                e.store.clone(),
                e.events.clone(),
                audit.clone(),
                e.limiter.clone(),
                s.groups(),
            ),
            reads: ReadService::new(e.store.clone(), e.store.clone(), e.events.clone()),
            messages: MessageService::new(
                e.store.clone(),
                e.store,
                e.pipeline.clone(),
                self.keyring.clone(),
                e.limiter,
                s.messages(),
                e.sender_cache,
                audit.clone(),
            ),
            readiness: self.readiness.clone(),
            auth,
            metrics: self.metrics.clone(),
        };
        Ok((state, e.pipeline, audit))
    }

    /// The HTTP router with the Socket.IO layer over the services; `leader` is the engine's
    /// leadership task, awaited at shutdown.
    fn serve(
        &self,
        mut parts: EngineParts,
        (io, layer): (SocketIo, SocketIoLayer),
        fanout: Fanout,
        leader: JoinHandle<()>,
    ) -> anyhow::Result<Assembled> {
        let probes = std::mem::take(&mut parts.probes);
        let (state, pipeline, audit) = self.services(parts)?;
        realtime::register(&io, state.clone(), fanout, self.socket_settings());
        realtime::session::spawn_expiry_sweep(io.clone(), self.shutdown.clone());
        let close_sockets: CloseSockets =
            Box::new(move || Box::pin(async move { io.close().await }));
        Ok(Assembled {
            // Outside the Socket.IO layer, so engineioxide keeps owned request parts (see
            // `realtime::owned_parts`).
            app: crate::http::router(state.clone())
                .layer(layer)
                .layer(realtime::owned_parts::OwnedPartsLayer),
            state,
            pipeline,
            audit,
            close_sockets,
            leader,
            probes,
        })
    }
}

async fn standalone(c: &Foundations) -> anyhow::Result<Assembled> {
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&c.settings.data_dir)
            .context("opening the standalone store")?
            .with_audit_retention(c.settings.audit.retention),
    );
    // One process owns the embedded database: it leads by itself, with no Lease.
    let (_, leader) = crate::ops::leader::lead_alone(
        crate::ops::maintenance::job(store.clone(), c.settings.retention_interval),
        c.draining.clone(),
    );
    let leader = tokio::spawn(leader);
    let (layer, io) = realtime::layer(c.socket_settings());
    let sender_cache = SenderCache::new(c.settings.sender_cache_ttl);
    let fanout = realtime::Fanout::local(io.clone(), Arc::new(sender_cache.clone()));
    let events: Arc<dyn EventSink> =
        Arc::new(Delivery::new(Arc::new(fanout.clone()), c.keyring.clone()));
    let pipeline: Arc<dyn Pipeline> = Arc::new(LocalPipeline::start(
        store.clone(),
        events.clone(),
        c.settings.partitions,
        c.settings.store_commit_gather,
    ));
    let [store_dep, pipeline_dep] = STANDALONE_DEPENDENCIES;
    let probes: Vec<(&'static str, Arc<dyn Probe>)> = vec![
        (store_dep, Arc::new(StoreProbe(store.clone()))),
        (pipeline_dep, Arc::new(PipelineProbe(pipeline.clone()))),
    ];
    let limiter: Arc<dyn RateLimiter> = Arc::new(MemoryLimiter::new());
    let parts = EngineParts {
        store,
        pipeline,
        events,
        limiter,
        probes,
        sender_cache,
    };
    c.serve(parts, (io, layer), fanout, leader)
}

/// The listener's limits from the settings (`CONCLAVE_MAX_CONNECTIONS=0`: from the descriptor
/// limit).
fn connection_limits(s: &Settings) -> ConnectionLimits {
    ConnectionLimits {
        max_connections: match s.max_connections {
            0 => listener::automatic_max_connections(),
            n => n,
        },
        max_per_address: (!s.trust_forwarded_for).then_some(s.max_connections_per_address),
        header_read_timeout: s.header_read_timeout,
    }
}

/// Open connections the admin listener takes at once (kubelet probes, Prometheus scrapes).
const ADMIN_MAX_CONNECTIONS: usize = 64;

/// What each engine's readiness and `conclave_dependency_up` name.
const STANDALONE_DEPENDENCIES: [&str; 2] = ["store", "pipeline"];
pub(crate) const CLUSTER_DEPENDENCIES: [&str; 3] = ["mongodb", "rabbitmq", "redis"];

/// A running server.
pub struct Server {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    admin: Option<JoinHandle<()>>,
}

/// Opens the admin listener (`CONCLAVE_ADMIN_ADDR`) and serves it until `stop`.
async fn admin_listener(
    addr: SocketAddr,
    readiness: Readiness,
    metrics: crate::ops::metrics::Metrics,
    limits: ConnectionLimits,
    stop: CancellationToken,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (CONCLAVE_ADMIN_ADDR)"))?;
    let local = listener.local_addr()?;
    let app = crate::http::admin::router(readiness, metrics);
    // The same accept loop and limits as the public port: a slow or flooding client of the
    // admin port must not take the probes down either.
    let task = tokio::spawn(listener::serve(
        listener,
        app,
        limits,
        stop.cancelled_owned(),
    ));
    tracing::info!(addr = %local, "admin listener (metrics, readiness) open");
    Ok((local, task))
}

impl Server {
    /// Binds the listener, builds every part, and starts serving.
    pub async fn start(settings: Settings) -> anyhow::Result<Server> {
        let settings = Arc::new(settings);
        let secrets = secrets::resolve(&settings)?;
        let keyring =
            Keyring::parse(secrets.encryption_keys.expose()).context("CONCLAVE_ENCRYPTION_KEYS")?;
        let tokens = TokenIssuer::new(
            secrets.jwt_secret.expose().as_bytes(),
            &settings.jwt_issuer,
            &settings.jwt_audience,
            settings.access_token_ttl,
        );
        let common = Foundations {
            settings: settings.clone(),
            keyring,
            tokens,
            metrics: crate::ops::metrics::Metrics::new(settings.metrics_enabled),
            readiness: Readiness::new(),
            draining: CancellationToken::new(),
            shutdown: CancellationToken::new(),
        };
        let dependencies: &[&'static str] = match settings.engine {
            Engine::Standalone => &STANDALONE_DEPENDENCIES,
            Engine::Cluster => &CLUSTER_DEPENDENCIES,
        };
        crate::ops::metrics::export_from_start(settings.partitions, dependencies);
        common.readiness.expect(dependencies);
        // Opened first: while the engine waits for its dependencies, probes get 503
        // `starting` and scrapes see which dependency is missing.
        let admin = match settings.admin_addr {
            Some(a) => Some(
                admin_listener(
                    a,
                    common.readiness.clone(),
                    common.metrics.clone(),
                    // Probes and scrapes only: a few connections, from any address.
                    ConnectionLimits {
                        max_connections: ADMIN_MAX_CONNECTIONS,
                        max_per_address: None,
                        ..connection_limits(&settings)
                    },
                    common.shutdown.clone(),
                )
                .await?,
            ),
            None => None,
        };
        let built = match settings.engine {
            Engine::Standalone => standalone(&common).await,
            Engine::Cluster => cluster::build(&common).await,
        };
        let Assembled {
            app,
            state,
            pipeline,
            audit,
            close_sockets,
            leader,
            probes,
        } = match built {
            Ok(a) => a,
            Err(e) => {
                common.draining.cancel();
                common.shutdown.cancel();
                return Err(e);
            }
        };
        let listener = match TcpListener::bind(settings.http_addr).await {
            Ok(l) => l,
            Err(e) => {
                // Stop what the engine started (leadership, background tasks) before giving up.
                common.draining.cancel();
                common.shutdown.cancel();
                return Err(e).with_context(|| {
                    format!(
                        "cannot listen on {} (CONCLAVE_HTTP_ADDR)",
                        settings.http_addr
                    )
                });
            }
        };
        let addr = listener.local_addr()?;
        common
            .readiness
            .start_prober(probes, settings.probe_interval, common.shutdown.clone())
            .await;
        common.readiness.started();
        let draining = common.draining.clone();
        let background = common.shutdown.clone();
        let readiness = state.readiness.clone();
        let (pause, grace) = (settings.drain_delay, settings.shutdown_grace);
        let stop = draining.clone();
        let limits = connection_limits(&settings);
        tracing::info!(
            max_connections = limits.max_connections,
            max_per_address = ?limits.max_per_address,
            header_read_timeout_s = limits.header_read_timeout.as_secs(),
            "connection limits"
        );
        let task = tokio::spawn(async move {
            let serve = listener::serve(listener, app, limits, async move {
                stop.cancelled().await;
                // Readiness fails first, while sockets and requests keep working, so the
                // load balancer stops sending new clients here before anyone is cut off.
                readiness.start_draining();
                tracing::info!(
                    pause_ms = pause.as_millis() as u64,
                    "draining: /readyz answers 503"
                );
                tokio::time::sleep(pause).await;
                // Closing the transport makes clients reconnect, to another pod if there is one.
                tracing::info!("closing sockets so their clients reconnect elsewhere");
                close_sockets().await;
            });
            let serve = async move {
                serve.await;
                Ok::<(), anyhow::Error>(())
            };
            tokio::pin!(serve);
            // In-flight requests get `grace` after the pause; then we stop anyway.
            let stopping = draining.clone();
            let res = tokio::select! {
                r = &mut serve => r,
                _ = async { stopping.cancelled().await; tokio::time::sleep(pause + grace).await } => {
                    tracing::warn!("shutdown grace period over; closing remaining connections");
                    Ok(())
                }
            };
            // The partition consumers finish their batch and hand their queues back.
            pipeline.shutdown().await;
            // Last, so the events of requests that finished during the drain are written too.
            audit.close().await;
            background.cancel();
            let _ = leader.await;
            tracing::info!("drained");
            res
        });
        tracing::info!(%addr, engine = ?settings.engine, "Conclave listening");
        let (admin_addr, admin) = admin.unzip();
        Ok(Server {
            addr,
            admin_addr,
            shutdown: common.draining,
            task,
            admin,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's address, when `CONCLAVE_ADMIN_ADDR` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Begin a graceful shutdown and wait until it is done.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let res = self.task.await.context("server task")?;
        // It closes once the drain is over (the background token), so probes saw `draining`.
        if let Some(admin) = self.admin {
            let _ = admin.await;
        }
        res
    }

    /// Serve until SIGTERM/Ctrl-C, then drain.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        crate::ops::shutdown::signal().await;
        self.stop().await
    }
}
