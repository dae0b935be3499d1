//! The one-per-cluster jobs (docs/architecture.md, "Leadership and maintenance jobs"), run by the leader only (`ops::leader`): prepare the
//! schema (indexes, and shard keys on a sharded cluster), then purge what has aged out on a
//! timer. Each is idempotent, so a leadership change midway is harmless.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::ops::leader::LeaderJob;
use crate::ops::metrics as metric;
use crate::store::MaintenanceStore;

/// The leader's job: schema first (retried until done), then a purge every `every`.
pub fn job(store: Arc<dyn MaintenanceStore>, every: Duration) -> LeaderJob {
    Arc::new(move |stop: CancellationToken| {
        let store = store.clone();
        Box::pin(async move {
            let mut attempt = 0;
            // Each step is abandoned as soon as leadership ends: a successor redoes it (they are
            // idempotent), and a draining process must not wait for an index build.
            loop {
                let prepared = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = store.prepare_schema() => r,
                };
                match prepared {
                    Ok(()) => {
                        tracing::info!("schema ready (indexes, shard keys)");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, attempt, "preparing the schema failed; retrying");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(crate::ops::backoff(attempt)) => {}
                        }
                        attempt += 1;
                    }
                }
            }
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = purge(&*store) => {}
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        })
    })
}

async fn purge(store: &dyn MaintenanceStore) {
    match store.purge_expired(crate::domain::now()).await {
        Ok(p) => {
            metrics::counter!(metric::RECORDS_PURGED, "kind" => "refresh_token")
                .increment(p.refresh_tokens);
            metrics::counter!(metric::RECORDS_PURGED, "kind" => "cooldown").increment(p.cooldowns);
            tracing::info!(
                refresh_tokens = p.refresh_tokens,
                cooldowns = p.cooldowns,
                "purged expired records"
            );
        }
        Err(e) => tracing::warn!(error = %e, "purging expired records failed; next round retries"),
    }
}
