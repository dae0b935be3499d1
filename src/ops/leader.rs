//! Leader election: which process runs the one-per-cluster jobs (`ops::maintenance`).
//!
//! In Kubernetes the processes compete for a `coordination.k8s.io/v1` Lease, as client-go's
//! leader election does: the holder renews it every `renew_every`; another process takes it over
//! once the record has not changed for `lease_duration` **on its own clock** (so clock skew
//! between nodes does not matter), and every write carries the `resourceVersion` it read, so two
//! contenders cannot both win (the API server answers 409 to the second). A leader that cannot
//! renew within `renew_deadline` (< `lease_duration`) stops leading before anyone else may start,
//! and a draining leader releases the Lease so a successor starts at once.
//!
//! Outside Kubernetes (or with `CONCLAVE_LEADER_ELECTION=off`) the process leads by itself.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{LeaderElection, Settings};
use crate::ops::metrics as metric;

/// Timing and names of the election.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub name: String,
    pub identity: String,
    /// How long a record may stay unchanged before others take the Lease over.
    pub lease_duration: Duration,
    /// The holder renews this often.
    pub renew_every: Duration,
    /// A holder that could not renew for this long stops leading (must be < `lease_duration`).
    pub renew_deadline: Duration,
    /// Followers look at the Lease this often.
    pub retry_every: Duration,
}

impl LeaseSettings {
    /// client-go's proportions: renew at a third of the duration, give up at two thirds.
    pub fn new(name: String, identity: String, lease_duration: Duration) -> Self {
        Self {
            name,
            identity,
            lease_duration,
            renew_every: lease_duration / 3,
            renew_deadline: lease_duration * 2 / 3,
            retry_every: lease_duration / 4,
        }
    }
}

/// The record as last seen, and when (local clock) it was first seen in this version.
struct Observed {
    resource_version: Option<String>,
    since: Instant,
}

/// One contender for the Lease. [`LeaseElector::try_acquire_or_renew`] is one round of the
/// protocol; [`run`] drives rounds on a timer.
pub struct LeaseElector {
    api: Api<Lease>,
    s: LeaseSettings,
    observed: Option<Observed>,
    leading: bool,
}

fn micro_now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_conflict() || s.is_already_exists())
}

impl LeaseElector {
    pub fn new(api: Api<Lease>, s: LeaseSettings) -> Self {
        Self {
            api,
            s,
            observed: None,
            leading: false,
        }
    }

    pub fn is_leading(&self) -> bool {
        self.leading
    }

    fn duration_secs(&self) -> i32 {
        self.s.lease_duration.as_secs().clamp(1, i32::MAX as u64) as i32
    }

    /// One round at local time `now`: create the Lease if it is missing, renew it if we hold it,
    /// take it over if its holder let it expire. Returns whether we lead afterwards. A lost race
    /// (409) is "not leading", not an error; errors are the API being unreachable or refusing.
    pub async fn try_acquire_or_renew(&mut self, now: Instant) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.s.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.s.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.s.identity.clone()),
                    lease_duration_seconds: Some(self.duration_secs()),
                    acquire_time: Some(micro_now()),
                    renew_time: Some(micro_now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            let created = self.api.create(&PostParams::default(), &lease).await;
            return self.write(now, created);
        };
        let version = lease.metadata.resource_version.clone();
        if self
            .observed
            .as_ref()
            .is_none_or(|o| o.resource_version != version)
        {
            self.observed = Some(Observed {
                resource_version: version,
                since: now,
            });
        }
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        if holder.as_deref() == Some(self.s.identity.as_str()) {
            spec.renew_time = Some(micro_now());
            spec.lease_duration_seconds = Some(self.duration_secs());
        } else {
            // The holder's own duration decides when its lease ends (it may be configured
            // differently during a rollout).
            let held_for = spec
                .lease_duration_seconds
                .map_or(self.s.lease_duration, |d| {
                    Duration::from_secs(d.max(0) as u64)
                });
            let since = self.observed.as_ref().map_or(now, |o| o.since);
            if holder.is_some() && now.duration_since(since) < held_for {
                self.leading = false;
                return Ok(false);
            }
            spec.holder_identity = Some(self.s.identity.clone());
            spec.lease_duration_seconds = Some(self.duration_secs());
            spec.acquire_time = Some(micro_now());
            spec.renew_time = Some(micro_now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            if let Some(previous) = &holder {
                tracing::info!(lease = %self.s.name, %previous, "taking over an expired leader Lease");
            }
        }
        let r = self
            .api
            .replace(&self.s.name, &PostParams::default(), &lease)
            .await;
        self.write(now, r)
    }

    fn write(&mut self, now: Instant, r: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
        match r {
            Ok(written) => {
                self.observed = Some(Observed {
                    resource_version: written.metadata.resource_version,
                    since: now,
                });
                self.leading = true;
                Ok(true)
            }
            Err(e) if is_conflict(&e) => {
                // Someone else wrote first; their record is the one to watch from now on.
                self.observed = None;
                self.leading = false;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up if we hold it (on drain), so a successor need not wait for expiry.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        if !self.leading {
            return Ok(());
        }
        self.leading = false;
        let Some(mut lease) = self.api.get_opt(&self.s.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.s.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(micro_now());
        match self
            .api
            .replace(&self.s.name, &PostParams::default(), &lease)
            .await
        {
            Err(e) if is_conflict(&e) => Ok(()),
            r => r.map(|_| ()),
        }
    }
}

/// Something to run while this process leads; cancelled when leadership ends.
pub type LeaderJob =
    Arc<dyn Fn(CancellationToken) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// Whether this process leads, for whoever wants to know (metrics, tests).
#[derive(Clone)]
pub struct Leadership(watch::Receiver<bool>);

impl Leadership {
    pub fn is_leader(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once leadership equals `leading`.
    pub async fn wait_for(&mut self, leading: bool) {
        let _ = self.0.wait_for(|l| *l == leading).await;
    }
}

/// Starts and stops the job as leadership comes and goes, and reports it (gauge, logs).
struct Jobs {
    job: LeaderJob,
    running: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
    tx: watch::Sender<bool>,
}

impl Jobs {
    fn new(job: LeaderJob) -> (Self, Leadership) {
        let (tx, rx) = watch::channel(false);
        metrics::gauge!(metric::LEADER).set(0.0);
        (
            Self {
                job,
                running: None,
                tx,
            },
            Leadership(rx),
        )
    }

    async fn set(&mut self, leading: bool) {
        if leading == self.running.is_some() {
            return;
        }
        if leading {
            tracing::info!("leading: running the one-per-cluster jobs");
            let stop = CancellationToken::new();
            let task = tokio::spawn((self.job)(stop.clone()));
            self.running = Some((stop, task));
        } else if let Some((stop, task)) = self.running.take() {
            tracing::info!("no longer leading: stopping the one-per-cluster jobs");
            stop.cancel();
            let _ = task.await;
        }
        metrics::gauge!(metric::LEADER).set(if leading { 1.0 } else { 0.0 });
        self.tx.send_replace(leading);
    }
}

/// Leads alone (no Kubernetes): runs the job until `shutdown`.
pub fn lead_alone(
    job: LeaderJob,
    shutdown: CancellationToken,
) -> (Leadership, impl Future<Output = ()>) {
    let (mut jobs, leadership) = Jobs::new(job);
    let task = async move {
        jobs.set(true).await;
        shutdown.cancelled().await;
        jobs.set(false).await;
    };
    (leadership, task)
}

/// Competes for the Lease until `shutdown`, running `job` while leading; then releases it.
pub fn run(
    mut elector: LeaseElector,
    job: LeaderJob,
    shutdown: CancellationToken,
) -> (Leadership, impl Future<Output = ()>) {
    let (mut jobs, leadership) = Jobs::new(job);
    let task = async move {
        let mut last_renewed: Option<Instant> = None;
        let mut failures = 0u32;
        loop {
            let now = Instant::now();
            let leading = match elector.try_acquire_or_renew(now).await {
                Ok(l) => {
                    failures = 0;
                    if l {
                        last_renewed = Some(now);
                    }
                    l
                }
                Err(e) => {
                    failures += 1;
                    let keep = elector.is_leading()
                        && last_renewed
                            .is_some_and(|t| now.duration_since(t) < elector.s.renew_deadline);
                    tracing::warn!(error = %e, lease = %elector.s.name, still_leading = keep, "cannot reach the leader Lease");
                    if !keep {
                        elector.leading = false;
                    }
                    keep
                }
            };
            jobs.set(leading).await;
            let wait = if failures > 0 {
                elector.s.retry_every.min(crate::ops::backoff(failures))
            } else if leading {
                elector.s.renew_every
            } else {
                elector.s.retry_every
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        jobs.set(false).await;
        if let Err(e) = elector.release().await {
            tracing::warn!(error = %e, "could not release the leader Lease; it expires by itself");
        } else {
            tracing::info!(lease = %elector.s.name, "leader Lease released");
        }
    };
    (leadership, task)
}

/// Starts leading the way the settings say: through the Lease in Kubernetes, alone elsewhere.
/// The returned task ends after `shutdown`, once the job stopped and the Lease was released.
pub async fn start(
    s: &Settings,
    job: LeaderJob,
    shutdown: CancellationToken,
) -> anyhow::Result<(Leadership, tokio::task::JoinHandle<()>)> {
    let in_pod = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    let use_lease = match s.leader_election {
        LeaderElection::Auto => in_pod,
        LeaderElection::Kubernetes => true,
        LeaderElection::Off => false,
    };
    if !use_lease {
        tracing::info!(
            "no leader election (not in Kubernetes, or CONCLAVE_LEADER_ELECTION=off): leading alone"
        );
        let (leadership, task) = lead_alone(job, shutdown);
        return Ok((leadership, tokio::spawn(task)));
    }
    let config = kube::Config::infer()
        .await
        .context("leader election needs the Kubernetes API (in-cluster service account or kubeconfig); set CONCLAVE_LEADER_ELECTION=off to lead alone")?;
    let namespace = s
        .leader_namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config).context("Kubernetes client")?;
    let settings = LeaseSettings::new(
        s.leader_lease.clone(),
        s.leader_identity.clone(),
        s.leader_lease_duration,
    );
    tracing::info!(lease = %settings.name, %namespace, identity = %settings.identity, "competing for the leader Lease");
    let elector = LeaseElector::new(Api::namespaced(client, &namespace), settings);
    let (leadership, task) = run(elector, job, shutdown);
    Ok((leadership, tokio::spawn(task)))
}

#[cfg(test)]
mod tests;
