//! Whether this process can store what it consumes. A process that cannot (its store unreachable
//! from here, or every batch failing) for `step_back_after` is *sick*: it gives its partitions up
//! so single active consumer moves them to a process that can (`amqp`), instead of returning the
//! same batches to the queue for as long as the outage lasts. It takes partitions again once the
//! store has answered [`RECOVERED_AFTER`] pings in a row.
//!
//! The store is pinged every [`PING_EVERY`] with a deadline, so an idle process notices too, and
//! a store that hangs (rather than refuses) counts as failing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::store::MaintenanceStore;

const PING_EVERY: Duration = Duration::from_secs(1);
/// Generous: a store slow under load is not a store that is gone.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// Pings answered in a row before a sick process takes partitions again.
const RECOVERED_AFTER: u32 = 2;

struct Inner {
    /// Since when nothing has succeeded (a ping or a batch), if something failed since.
    trouble_since: Mutex<Option<Instant>>,
    sick: watch::Sender<bool>,
}

#[derive(Clone)]
pub struct Vitals(Arc<Inner>);

impl Vitals {
    /// Pings `store` until `stop`.
    pub fn start(
        store: Arc<dyn MaintenanceStore>,
        step_back_after: Duration,
        stop: CancellationToken,
    ) -> Self {
        let v = Self(Arc::new(Inner {
            trouble_since: Mutex::new(None),
            sick: watch::channel(false).0,
        }));
        tokio::spawn(pings(v.clone(), store, step_back_after, stop));
        v
    }

    /// A batch was stored.
    pub fn stored(&self) {
        if !self.is_sick() {
            *self.0.trouble_since.lock() = None;
        }
    }

    /// A batch could not be stored.
    pub fn failed(&self) {
        self.0.trouble_since.lock().get_or_insert_with(Instant::now);
    }

    pub fn is_sick(&self) -> bool {
        *self.0.sick.borrow()
    }

    /// Resolves once the process is sick.
    pub async fn sick(&self) {
        let _ = self.0.sick.subscribe().wait_for(|s| *s).await;
    }

    /// Resolves once the process is not sick.
    pub async fn healthy(&self) {
        let _ = self.0.sick.subscribe().wait_for(|s| !*s).await;
    }
}

async fn pings(
    v: Vitals,
    store: Arc<dyn MaintenanceStore>,
    step_back_after: Duration,
    stop: CancellationToken,
) {
    let mut answered = 0u32;
    loop {
        let ok = matches!(
            tokio::time::timeout(PING_TIMEOUT, store.ping()).await,
            Ok(Ok(()))
        );
        let sick = v.is_sick();
        if ok {
            answered += 1;
            if !sick {
                *v.0.trouble_since.lock() = None;
            } else if answered >= RECOVERED_AFTER {
                *v.0.trouble_since.lock() = None;
                tracing::info!("the store answers again; taking partitions again");
                v.0.sick.send_replace(false);
            }
        } else {
            answered = 0;
            v.failed();
        }
        let since = *v.0.trouble_since.lock();
        if !v.is_sick()
            && let Some(since) = since
            && since.elapsed() >= step_back_after
        {
            tracing::warn!(
                unable_for_ms = since.elapsed().as_millis() as u64,
                "cannot store; giving this process's partitions to the others"
            );
            v.0.sick.send_replace(true);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(PING_EVERY) => {}
        }
    }
}
