//! Liveness and readiness. Readiness asks every dependency of the configured engine (each a
//! [`Probe`], with a deadline) and fails while the process drains.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::pipeline::Pipeline;
use crate::store::MaintenanceStore;

#[async_trait]
pub trait Probe: Send + Sync + 'static {
    async fn probe(&self) -> Result<(), String>;
}

pub struct StoreProbe(pub Arc<dyn MaintenanceStore>);

#[async_trait]
impl Probe for StoreProbe {
    async fn probe(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

pub struct PipelineProbe(pub Arc<dyn Pipeline>);

#[async_trait]
impl Probe for PipelineProbe {
    async fn probe(&self) -> Result<(), String> {
        self.0.ready().await
    }
}

pub struct RedisProbe(pub redis::aio::ConnectionManager);

#[async_trait]
impl Probe for RedisProbe {
    async fn probe(&self) -> Result<(), String> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.0.clone())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

#[derive(Clone)]
pub struct Readiness {
    probes: Arc<Vec<(&'static str, Arc<dyn Probe>)>>,
    draining: Arc<AtomicBool>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ReadinessReport {
    /// `ready`, `draining` or `unavailable`.
    pub status: String,
    /// Each dependency and `ok` or what failed.
    pub checks: BTreeMap<String, String>,
}

impl Readiness {
    pub fn new(probes: Vec<(&'static str, Arc<dyn Probe>)>) -> Self {
        Self {
            probes: Arc::new(probes),
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
        let runs = self.probes.iter().map(|(name, p)| async move {
            let r = match tokio::time::timeout(Duration::from_secs(2), p.probe()).await {
                Ok(Ok(())) => "ok".to_owned(),
                Ok(Err(e)) => format!("error: {e}"),
                Err(_) => "timed out".to_owned(),
            };
            ((*name).to_owned(), r)
        });
        let checks: BTreeMap<String, String> =
            futures::future::join_all(runs).await.into_iter().collect();
        let deps_ok = checks.values().all(|v| v == "ok");
        let draining = self.is_draining();
        let status = if draining {
            "draining"
        } else if deps_ok {
            "ready"
        } else {
            "unavailable"
        };
        (
            deps_ok && !draining,
            ReadinessReport {
                status: status.to_owned(),
                checks,
            },
        )
    }
}
