//! The cluster engine's wiring: MongoDB store, RabbitMQ pipeline, Redis for the real-time fan-out
//! and shared rate limits. Start-up waits for each dependency with backoff, saying what it waits
//! for; once running, each one is probed in the background (`conclave_dependency_up`, the
//! detailed `/readyz`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use super::{Assembled, EngineParts, Foundations};
use crate::events::EventSink;
use crate::limits::redis::RedisLimits;
use crate::limits::{RateLimiter, RedisLimiter};
use crate::messages::{Delivery, SenderCache};
use crate::ops::health::{PipelineProbe, Probe, Readiness, RedisProbe, StoreProbe};
use crate::pipeline::{AmqpPipeline, AmqpSettings, Broker, Pipeline, Registry};
use crate::realtime::{self, Fanout};
use crate::store::mongo::MongoStore;
use crate::store::{MaintenanceStore, Store};

/// Retries `attempt` with backoff (250 ms doubling to 10 s) until it succeeds. Each outcome is
/// recorded as `dependency`'s state, if it names one, so the admin listener's readiness view
/// and `conclave_dependency_up` show what start-up waits for.
async fn wait_for<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    (readiness, dependency): (&Readiness, Option<&'static str>),
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> T {
    let mut n = 0u32;
    loop {
        let outcome = attempt().await;
        if let Some(d) = dependency {
            readiness.record(d, outcome.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        }
        match outcome {
            Ok(v) => {
                if n > 0 {
                    tracing::info!(dependency = what, "dependency is up");
                }
                return v;
            }
            Err(e) => {
                let wait = crate::ops::backoff(n);
                tracing::warn!(dependency = what, error = %e, retry_in_ms = wait.as_millis() as u64, "waiting for dependency");
                tokio::time::sleep(wait).await;
                n += 1;
            }
        }
    }
}

pub(super) async fn build(c: &Foundations) -> anyhow::Result<Assembled> {
    let s = &c.settings;
    let [mongodb, rabbitmq, redis_dep] = super::CLUSTER_DEPENDENCIES;
    let r = &c.readiness;
    let ca_file = s.tls_ca_file.as_deref();
    let ca_pem = ca_file.map(read_ca).transpose()?;
    let mongo = wait_for((r, Some(mongodb)), "mongodb", || async {
        let m = MongoStore::connect_trusting(&s.mongodb_uri, &s.mongodb_db, ca_file)
            .await?
            .with_audit_retention(s.audit.retention);
        m.ping().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok::<_, anyhow::Error>(m)
    })
    .await;
    let store: Arc<dyn Store> = Arc::new(mongo);
    // The leader (a Kubernetes Lease, or this process alone) creates indexes and shard keys and
    // runs retention; every process waits for the indexes before serving, since a missing
    // unique index would let duplicates in.
    let (_, leader) = crate::ops::leader::start(
        s,
        crate::ops::maintenance::job(store.clone(), s.retention_interval),
        c.draining.clone(),
    )
    .await?;
    wait_for(
        (r, None),
        "mongodb indexes (made by the leader)",
        || async {
            match store.schema_ready().await {
                Ok(true) => Ok(()),
                Ok(false) => Err("not created yet".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;

    let redis_url = with_resp3(&s.redis_url);
    let redis = wait_for((r, Some(redis_dep)), "redis", || async {
        let client = redis_client(&redis_url, ca_pem.as_deref())?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2);
        redis::aio::ConnectionManager::new_with_config(client, config).await
    })
    .await;
    // The partition registry counts the live processes; the limiter's fallback divides by it.
    let processes = Arc::new(AtomicU32::new(0));
    let limiter: Arc<dyn RateLimiter> = Arc::new(RedisLimiter::new(
        redis.clone(),
        &s.cluster_prefix,
        RedisLimits {
            timeout: s.redis_limit_timeout,
            probe_interval: s.redis_probe_interval,
        },
        processes.clone(),
    ));

    let (layer, io) = realtime::layer(c.socket_settings());
    let sender_cache = SenderCache::new(s.sender_cache_ttl);
    let fanout = wait_for((r, Some(redis_dep)), "redis (fan-out)", || async {
        Fanout::redis(
            io.clone(),
            redis_client(&redis_url, ca_pem.as_deref())?,
            &s.cluster_prefix,
            c.shutdown.clone(),
            Arc::new(sender_cache.clone()),
            s.fanout_publish_deadline,
        )
        .await
    })
    .await;
    let events: Arc<dyn EventSink> =
        Arc::new(Delivery::new(Arc::new(fanout.clone()), c.keyring.clone()));
    let pipeline: Arc<dyn Pipeline> = Arc::new(AmqpPipeline::start(
        AmqpSettings {
            broker: Broker {
                url: s.amqp_url.clone(),
                tls_ca: ca_pem.clone(),
            },
            partitions: s.partitions,
            prefix: s.cluster_prefix.clone(),
            registry: Some(Registry {
                redis: redis.clone(),
                identity: s.leader_identity.clone(),
                processes,
            }),
            heartbeat: s.amqp_heartbeat,
            step_back_after: s.pipeline_step_back_after,
            health: store.clone(),
        },
        store.clone(),
        events.clone(),
    ));
    let probes: Vec<(&'static str, Arc<dyn Probe>)> = vec![
        (mongodb, Arc::new(StoreProbe(store.clone()))),
        (rabbitmq, Arc::new(PipelineProbe(pipeline.clone()))),
        (redis_dep, Arc::new(RedisProbe(redis))),
    ];
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

/// The CA certificates of `CONCLAVE_TLS_CA_FILE`, as PEM.
fn read_ca(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("CONCLAVE_TLS_CA_FILE: cannot read {}", path.display()))?;
    anyhow::ensure!(
        pem.contains("-----BEGIN CERTIFICATE-----"),
        "CONCLAVE_TLS_CA_FILE: {} holds no PEM certificate",
        path.display()
    );
    Ok(pem)
}

/// A Redis client for `url`; with `ca_pem`, a `rediss://` connection trusts those CA
/// certificates instead of the system's.
fn redis_client(url: &str, ca_pem: Option<&str>) -> redis::RedisResult<redis::Client> {
    match ca_pem {
        Some(pem) if url.starts_with("rediss://") => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.as_bytes().to_vec()),
            },
        ),
        _ => redis::Client::open(url),
    }
}

/// The URL with `protocol=resp3` unless it names a protocol already (pub/sub on a multiplexed
/// connection needs RESP3).
fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}
