//! Wiring: builds the engine the configuration asks for, the services above it, and the HTTP
//! server; runs it until a shutdown signal and drains it.

pub mod secrets;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthService, PasswordHasher, TokenIssuer};
use crate::config::{Engine, Settings};
use crate::crypto::Keyring;
use crate::events::EventSink;
use crate::groups::GroupService;
use crate::limits::{MemoryLimiter, RateLimiter};
use crate::messages::MessageService;
use crate::ops::health::Readiness;
use crate::pipeline::{LocalPipeline, Pipeline};
use crate::realtime::{self, Realtime};
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
    pub metrics: PrometheusHandle,
    pub pipeline: Arc<dyn Pipeline>,
    pub limiter: Arc<dyn RateLimiter>,
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
        let metrics = crate::ops::metrics::handle();
        let (store, limiter): (Arc<dyn Store>, Arc<dyn RateLimiter>) = match settings.engine {
            Engine::Standalone => (
                Arc::new(
                    SqliteStore::open(&settings.data_dir)
                        .context("opening the standalone store")?,
                ),
                Arc::new(MemoryLimiter::new()),
            ),
            Engine::Cluster => {
                anyhow::bail!("CONCLAVE_ENGINE=cluster is not available in this build yet")
            }
        };
        let secrets = secrets::resolve(&settings)?;
        let keyring =
            Keyring::parse(secrets.encryption_keys.expose()).context("CONCLAVE_ENCRYPTION_KEYS")?;
        let tokens = TokenIssuer::new(
            secrets.jwt_secret.expose().as_bytes(),
            &settings.jwt_issuer,
            &settings.jwt_audience,
            settings.access_token_ttl,
        );
        let (io_layer, io) = realtime::layer(realtime::SocketSettings {
            max_payload: settings.socket_max_payload,
            max_buffer: settings.socket_buffer,
        });
        let events: Arc<dyn EventSink> = Arc::new(Realtime::new(io.clone(), keyring.clone()));
        let pipeline: Arc<dyn Pipeline> = Arc::new(LocalPipeline::start(
            store.clone(),
            events.clone(),
            settings.partitions,
        ));
        let auth = AuthService::new(
            store.clone(),
            PasswordHasher::new(settings.argon2)?,
            tokens,
            limiter.clone(),
            settings.clone(),
        );
        let state = AppState {
            groups: GroupService::new(store.clone(), events.clone(), settings.clone()),
            messages: MessageService::new(
                store.clone(),
                pipeline.clone(),
                keyring,
                limiter.clone(),
                settings.clone(),
            ),
            readiness: Readiness::new(store.clone(), pipeline.clone()),
            settings: settings.clone(),
            store,
            auth,
            metrics,
            pipeline: pipeline.clone(),
            limiter,
        };
        realtime::register(&io, state.clone());
        let listener = TcpListener::bind(settings.http_addr)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (CONCLAVE_HTTP_ADDR)",
                    settings.http_addr
                )
            })?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        realtime::handlers::spawn_expiry_sweep(io.clone(), shutdown.clone());
        let app = crate::http::router(state.clone()).layer(io_layer);
        let stop = shutdown.clone();
        let readiness = state.readiness.clone();
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
