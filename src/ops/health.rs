//! Liveness and readiness.
//!
//! Readiness says whether **this pod** should get traffic: not while it starts (before each
//! dependency has answered once and the schema is ready) and not while it drains. A shared
//! dependency going down later does not make it unready: every pod shares MongoDB, RabbitMQ and
//! Redis, so failing readiness would take every endpoint out of the Service at once; requests
//! that need the missing dependency answer 503 `unavailable` themselves.
//!
//! Dependency health is watched by a background prober (each dependency a [`Probe`], asked
//! every `CONCLAVE_PROBE_INTERVAL` with a deadline); `/readyz` answers from its cached results,
//! so it never waits on a slow dependency, and `conclave_dependency_up{dependency}` follows it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::ops::metrics as metric;
use crate::pipeline::Pipeline;
use crate::store::MaintenanceStore;

/// Longest a probe may take before its dependency counts as down.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

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

const STARTING: u8 = 0;
const SERVING: u8 = 1;
const DRAINING: u8 = 2;

/// What the prober last saw of one dependency.
#[derive(Clone, Debug)]
struct DepState {
    up: bool,
    /// Answered at least once: until every dependency has, the pod is still starting.
    ever_up: bool,
    error: Option<String>,
    /// When `up` last changed.
    since: OffsetDateTime,
    checked: OffsetDateTime,
}

/// Readiness and the cached dependency states; cheap to clone.
#[derive(Clone)]
pub struct Readiness {
    phase: Arc<AtomicU8>,
    deps: Arc<RwLock<BTreeMap<&'static str, DepState>>>,
}

/// The `/readyz` body.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ReadinessReport {
    /// `starting` and `draining` (503); `ready`, or `degraded` when a dependency is down (200).
    pub status: String,
    /// Each dependency, `ok` or `down`.
    pub checks: BTreeMap<String, String>,
    /// Per dependency: the last error and when its state changed. Only in the detailed view
    /// (the admin listener, or the only listener when `CONCLAVE_ADMIN_ADDR` is unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<BTreeMap<String, DependencyDetail>>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DependencyDetail {
    pub up: bool,
    /// The driver's error from the last failed probe while down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// RFC 3339: when it last went up or down.
    pub since: String,
    /// RFC 3339: the last probe.
    pub checked_at: String,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

impl Readiness {
    /// Starting, with no dependency known yet.
    pub fn new() -> Self {
        Self {
            phase: Arc::new(AtomicU8::new(STARTING)),
            deps: Arc::default(),
        }
    }

    /// Records a probe's outcome (from start-up's waits or from the prober): the cache behind
    /// `/readyz`, the gauge, and one log line when the state changes.
    pub fn record(&self, dependency: &'static str, result: Result<(), String>) {
        let now = OffsetDateTime::now_utc();
        let up = result.is_ok();
        metrics::gauge!(metric::DEPENDENCY_UP, "dependency" => dependency).set(if up {
            1.0
        } else {
            0.0
        });
        let mut deps = self.deps.write().unwrap_or_else(|e| e.into_inner());
        let prev = deps.get(dependency).cloned();
        let changed = prev.as_ref().is_none_or(|p| p.up != up);
        match (&prev, &result) {
            (Some(p), Ok(())) if !p.up && p.ever_up => {
                tracing::info!(dependency, "dependency is up again")
            }
            (Some(p), Err(e)) if p.up => {
                tracing::warn!(dependency, error = %e, "dependency is down")
            }
            _ => {}
        }
        deps.insert(
            dependency,
            DepState {
                up,
                ever_up: up || prev.as_ref().is_some_and(|p| p.ever_up),
                error: result.err(),
                since: if changed {
                    now
                } else {
                    prev.map_or(now, |p| p.since)
                },
                checked: now,
            },
        );
    }

    /// The dependencies to wait for: until each has answered once, the pod is starting.
    pub fn expect(&self, dependencies: &[&'static str]) {
        let now = OffsetDateTime::now_utc();
        let mut deps = self.deps.write().unwrap_or_else(|e| e.into_inner());
        for d in dependencies {
            deps.entry(d).or_insert(DepState {
                up: false,
                ever_up: false,
                error: Some("not reached yet".into()),
                since: now,
                checked: now,
            });
        }
    }

    /// Start-up is done (listener open, schema ready): ready once every dependency has
    /// answered at least once.
    pub fn started(&self) {
        let _ = self
            .phase
            .compare_exchange(STARTING, SERVING, Ordering::SeqCst, Ordering::SeqCst);
    }

    pub fn start_draining(&self) {
        self.phase.store(DRAINING, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.phase.load(Ordering::SeqCst) == DRAINING
    }

    /// Asks every probe once now (so a server is ready as soon as it is started), then in the
    /// background every `interval` until `stop`, recording each outcome. While a dependency has
    /// never answered (start-up), it asks every 250 ms instead, so readiness does not lag.
    pub async fn start_prober(
        &self,
        probes: Vec<(&'static str, Arc<dyn Probe>)>,
        interval: Duration,
        stop: CancellationToken,
    ) {
        let probes = Arc::new(probes);
        self.probe_all(&probes).await;
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let wait = if this.all_seen() {
                    interval
                } else {
                    Duration::from_millis(250)
                };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                this.probe_all(&probes).await;
            }
        });
    }

    async fn probe_all(&self, probes: &[(&'static str, Arc<dyn Probe>)]) {
        let runs = probes.iter().map(|(name, p)| async move {
            let r = match tokio::time::timeout(PROBE_TIMEOUT, p.probe()).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
            };
            (*name, r)
        });
        for (name, r) in futures::future::join_all(runs).await {
            self.record(name, r);
        }
    }

    fn all_seen(&self) -> bool {
        let deps = self.deps.read().unwrap_or_else(|e| e.into_inner());
        deps.values().all(|d| d.ever_up)
    }

    /// Whether this pod should get traffic, and the report; from the cache, never waiting on a
    /// dependency. `detailed` adds each dependency's last error and times.
    pub fn report(&self, detailed: bool) -> (bool, ReadinessReport) {
        let deps = self.deps.read().unwrap_or_else(|e| e.into_inner());
        let all_seen = deps.values().all(|d| d.ever_up);
        let all_up = deps.values().all(|d| d.up);
        let (ready, status) = match self.phase.load(Ordering::SeqCst) {
            DRAINING => (false, "draining"),
            SERVING if all_seen && all_up => (true, "ready"),
            SERVING if all_seen => (true, "degraded"),
            _ => (false, "starting"),
        };
        let checks = deps
            .iter()
            .map(|(k, d)| ((*k).to_owned(), if d.up { "ok" } else { "down" }.to_owned()))
            .collect();
        let details = detailed.then(|| {
            deps.iter()
                .map(|(k, d)| {
                    let rfc = |t: OffsetDateTime| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default()
                    };
                    let detail = DependencyDetail {
                        up: d.up,
                        error: d.error.clone(),
                        since: rfc(d.since),
                        checked_at: rfc(d.checked),
                    };
                    ((*k).to_owned(), detail)
                })
                .collect()
        });
        (
            ready,
            ReadinessReport {
                status: status.to_owned(),
                checks,
                details,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_between_start_and_drain_whatever_the_dependencies() {
        let r = Readiness::new();
        r.expect(&["redis", "mongodb"]);
        r.record("mongodb", Ok(()));
        r.started();
        assert_eq!(r.report(false).1.status, "starting", "redis not probed yet");
        r.record("redis", Err("refused".into()));
        let (ready, rep) = r.report(false);
        assert!(!ready, "a dependency never seen up: still starting");
        assert_eq!(rep.status, "starting");
        r.record("redis", Ok(()));
        assert_eq!(r.report(false).1.status, "ready");
        r.record("redis", Err("refused".into()));
        let (ready, rep) = r.report(true);
        assert!(ready, "a shared dependency down later keeps the pod ready");
        assert_eq!(rep.status, "degraded");
        assert_eq!(rep.checks["redis"], "down");
        let d = &rep.details.unwrap()["redis"];
        assert_eq!(d.error.as_deref(), Some("refused"));
        assert!(r.report(false).1.details.is_none());
        r.start_draining();
        let (ready, rep) = r.report(false);
        assert!(!ready);
        assert_eq!(rep.status, "draining");
    }
}
