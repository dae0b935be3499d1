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
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::audit::Audit;
use crate::auth::{AuthService, PasswordHasher, TokenIssuer};
use crate::config::{Engine, Settings};
use crate::crypto::Keyring;
use crate::events::EventSink;
use crate::groups::GroupService;
use crate::limits::{MemoryLimiter, RateLimiter};
use crate::messages::MessageService;
use crate::ops::health::{PipelineProbe, Probe, Readiness, StoreProbe};
use crate::pipeline::{LocalPipeline, Pipeline};
use crate::realtime::{self, Realtime, SocketSettings};
use crate::store::Store;
use crate::store::sqlite::SqliteStore;

/// Everything a handler may need, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub auth: AuthService,
    pub groups: GroupService,
    pub messages: MessageService,
    pub readiness: Readiness,
    pub metrics: crate::ops::metrics::Metrics,
    pub pipeline: Arc<dyn Pipeline>,
    pub limiter: Arc<dyn RateLimiter>,
    pub audit: Audit,
}

/// What the engines share: secrets, token issuer, keyring, metrics.
pub(crate) struct Common {
    pub settings: Arc<Settings>,
    pub keyring: Keyring,
    pub tokens: TokenIssuer,
    pub metrics: crate::ops::metrics::Metrics,
    pub shutdown: CancellationToken,
}

/// The parts one engine provides.
pub(crate) struct EngineParts {
    pub store: Arc<dyn Store>,
    pub pipeline: Arc<dyn Pipeline>,
    pub events: Arc<dyn EventSink>,
    pub limiter: Arc<dyn RateLimiter>,
    pub probes: Vec<(&'static str, Arc<dyn Probe>)>,
}

/// Closes every Socket.IO connection (on drain), whatever the adapter.
type CloseSockets = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

impl Common {
    fn socket_settings(&self) -> SocketSettings {
        SocketSettings {
            max_payload: self.settings.socket_max_payload,
            max_buffer: self.settings.socket_buffer,
        }
    }

    fn state(&self, e: EngineParts) -> anyhow::Result<AppState> {
        let s = &self.settings;
        let audit = Audit::start(e.store.clone(), s.audit);
        let auth = AuthService::new(
            e.store.clone(),
            PasswordHasher::new(s.argon2)?,
            self.tokens.clone(),
            e.limiter.clone(),
            audit.clone(),
            s.clone(),
        );
        Ok(AppState {
            groups: GroupService::new(e.store.clone(), e.events.clone(), audit.clone(), s.clone()),
            messages: MessageService::new(
                e.store.clone(),
                e.pipeline.clone(),
                self.keyring.clone(),
                e.limiter.clone(),
                s.clone(),
            ),
            readiness: Readiness::new(e.probes),
            settings: s.clone(),
            store: e.store,
            auth,
            metrics: self.metrics.clone(),
            pipeline: e.pipeline,
            limiter: e.limiter,
            audit,
        })
    }
}

async fn standalone(c: &Common) -> anyhow::Result<(Router, AppState, CloseSockets)> {
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&c.settings.data_dir)
            .context("opening the standalone store")?
            .with_audit_retention(c.settings.audit.retention),
    );
    let (layer, io) = realtime::local_layer(c.socket_settings());
    let events: Arc<dyn EventSink> = Arc::new(Realtime::new(io.clone(), c.keyring.clone()));
    let pipeline: Arc<dyn Pipeline> = Arc::new(LocalPipeline::start(
        store.clone(),
        events.clone(),
        c.settings.partitions,
    ));
    let probes: Vec<(&'static str, Arc<dyn Probe>)> = vec![
        ("store", Arc::new(StoreProbe(store.clone()))),
        ("pipeline", Arc::new(PipelineProbe(pipeline.clone()))),
    ];
    let limiter: Arc<dyn RateLimiter> = Arc::new(MemoryLimiter::new());
    let state = c.state(EngineParts {
        store,
        pipeline,
        events,
        limiter,
        probes,
    })?;
    realtime::register(&io, state.clone());
    realtime::handlers::spawn_expiry_sweep(io.clone(), c.shutdown.clone());
    let close: CloseSockets = Box::new(move || Box::pin(async move { io.close().await }));
    Ok((
        crate::http::router(state.clone()).layer(layer),
        state,
        close,
    ))
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
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
        let common = Common {
            settings: settings.clone(),
            keyring,
            tokens,
            metrics: crate::ops::metrics::Metrics::new(settings.metrics_enabled),
            shutdown: CancellationToken::new(),
        };
        let (app, state, close_sockets) = match settings.engine {
            Engine::Standalone => standalone(&common).await?,
            Engine::Cluster => cluster::build(&common).await?,
        };
        let listener = TcpListener::bind(settings.http_addr)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (CONCLAVE_HTTP_ADDR)",
                    settings.http_addr
                )
            })?;
        let addr = listener.local_addr()?;
        let shutdown = common.shutdown.clone();
        let stop = shutdown.clone();
        let readiness = state.readiness.clone();
        let pipeline = state.pipeline.clone();
        let audit = state.audit.clone();
        let grace = settings.shutdown_grace;
        let task = tokio::spawn(async move {
            let drained = stop.clone();
            let serve = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                drained.cancelled().await;
                readiness.start_draining();
                // Sockets are closed so their clients reconnect, to another pod if there is one.
                close_sockets().await;
            });
            let serve = async move { serve.await.context("HTTP server") };
            tokio::pin!(serve);
            // In-flight requests get `grace` to finish once shutdown begins; then we stop anyway.
            let res = tokio::select! {
                r = &mut serve => r,
                _ = async { stop.cancelled().await; tokio::time::sleep(grace).await } => {
                    tracing::warn!("shutdown grace period over; closing remaining connections");
                    Ok(())
                }
            };
            pipeline.shutdown().await;
            // Last, so the events of requests that finished during the drain are written too.
            audit.close().await;
            res
        });
        tracing::info!(%addr, engine = ?settings.engine, "Conclave listening");
        Ok(Server {
            addr,
            shutdown,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Begin a graceful shutdown and wait until it is done.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await.context("server task")?
    }

    /// Serve until SIGTERM/Ctrl-C, then drain.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        crate::ops::shutdown::signal().await;
        self.stop().await
    }
}
