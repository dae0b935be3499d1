//! Liveness and readiness. Readiness asks every dependency of the configured engine and fails
//! while the process drains.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::pipeline::Pipeline;
use crate::store::Store;

#[derive(Clone)]
pub struct Readiness {
    store: Arc<dyn Store>,
    pipeline: Arc<dyn Pipeline>,
    draining: Arc<AtomicBool>,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ReadinessReport {
    /// `ready`, `draining` or `unavailable`.
    pub status: &'static str,
    /// Each dependency and `ok` or what failed.
    pub checks: std::collections::BTreeMap<&'static str, String>,
}

impl Readiness {
    pub fn new(store: Arc<dyn Store>, pipeline: Arc<dyn Pipeline>) -> Self {
        Self {
            store,
            pipeline,
            draining: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub async fn check(&self) -> (bool, ReadinessReport) {
        let timeout = std::time::Duration::from_secs(2);
        let mut checks = std::collections::BTreeMap::new();
        let store = match tokio::time::timeout(timeout, self.store.ping()).await {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(e)) => format!("error: {e}"),
            Err(_) => "timed out".to_owned(),
        };
        checks.insert("store", store);
        let pipeline = match tokio::time::timeout(timeout, self.pipeline.ready()).await {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(e)) => format!("error: {e}"),
            Err(_) => "timed out".to_owned(),
        };
        checks.insert("pipeline", pipeline);
        let deps_ok = checks.values().all(|v| v == "ok");
        let draining = self.is_draining();
        let status = if draining {
            "draining"
        } else if deps_ok {
            "ready"
        } else {
            "unavailable"
        };
        (deps_ok && !draining, ReadinessReport { status, checks })
    }
}
