//! The cluster engine's wiring: MongoDB store, RabbitMQ pipeline, Redis for the real-time fan-out
//! and shared rate limits. Start-up waits for each dependency with backoff, saying what it waits
//! for; once running, each one is supervised and reported by `/readyz`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use super::{Assembled, EngineParts, Foundations};
use crate::events::EventSink;
use crate::limits::redis::RedisLimits;
use crate::limits::{RateLimiter, RedisLimiter};
use crate::messages::{Delivery, SenderCache};
use crate::ops::health::{PipelineProbe, Probe, RedisProbe, StoreProbe};
use crate::pipeline::{AmqpPipeline, AmqpSettings, Pipeline, Registry};
use crate::realtime::{self, Fanout};
use crate::store::mongo::MongoStore;
use crate::store::{MaintenanceStore, Store};

/// Retries `attempt` with backoff (250 ms doubling to 10 s) until it succeeds.
async fn wait_for<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> T {
    let mut n = 0u32;
    loop {
        match attempt().await {
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
    let mongo = wait_for("mongodb", || async {
        let m = MongoStore::connect(&s.mongodb_uri, &s.mongodb_db)
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
    wait_for("mongodb indexes (made by the leader)", || async {
        match store.schema_ready().await {
            Ok(true) => Ok(()),
            Ok(false) => Err("not created yet".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;

    let redis_url = with_resp3(&s.redis_url);
    let redis = wait_for("redis", || async {
        let client = redis::Client::open(redis_url.as_str())?;
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
    let fanout = wait_for("redis (fan-out)", || {
        Fanout::redis(
            io.clone(),
            &redis_url,
            &s.cluster_prefix,
            c.shutdown.clone(),
            Arc::new(sender_cache.clone()),
        )
    })
    .await;
    let events: Arc<dyn EventSink> =
        Arc::new(Delivery::new(Arc::new(fanout.clone()), c.keyring.clone()));
    let pipeline: Arc<dyn Pipeline> = Arc::new(AmqpPipeline::start(
        AmqpSettings {
            url: s.amqp_url.clone(),
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
        ("mongodb", Arc::new(StoreProbe(store.clone()))),
        ("rabbitmq", Arc::new(PipelineProbe(pipeline.clone()))),
        ("redis", Arc::new(RedisProbe(redis))),
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
