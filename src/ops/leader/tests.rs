//! The election against a fake API server behind kube's mock transport (`tower_test`): one
//! Lease in memory with `resourceVersion` checks, as the real API server does them, shared by
//! every contender. Time is passed in explicitly, so nothing here depends on the wall clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::coordination::v1::Lease;
use kube::client::Body;
use kube::{Api, Client};
use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;

const NS: &str = "conclave";
const NAME: &str = "conclave-leader";
const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/conclave/leases";

/// A change another contender makes to the stored Lease.
type RivalWrite = Box<dyn FnOnce(&mut Lease) + Send>;

#[derive(Default)]
struct FakeApiServer {
    lease: Mutex<Option<Lease>>,
    version: AtomicU64,
    /// Every request as "METHOD holder-after" for assertions on what was written.
    log: Mutex<Vec<String>>,
    /// Answer the next request with 503, as an unreachable or overloaded API server would.
    fail_next: AtomicBool,
    /// Applied to the stored Lease just before the next PUT is checked: a rival's write.
    before_put: Mutex<Option<RivalWrite>>,
}

fn status(code: StatusCode, reason: &str) -> Response<Body> {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": reason, "reason": reason, "code": code.as_u16(),
    });
    Response::builder()
        .status(code)
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn ok(code: StatusCode, lease: &Lease) -> Response<Body> {
    Response::builder()
        .status(code)
        .body(Body::from(serde_json::to_vec(lease).unwrap()))
        .unwrap()
}

fn holder(l: &Lease) -> Option<String> {
    l.spec.as_ref().and_then(|s| s.holder_identity.clone())
}

impl FakeApiServer {
    async fn serve(&self, req: Request<Body>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_owned();
        let bytes = body.collect_bytes().await.unwrap();
        if self.fail_next.swap(false, Ordering::SeqCst) {
            self.log.lock().push(format!("{} failed", parts.method));
            return status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable");
        }
        let mut stored = self.lease.lock();
        let (resp, entry) = match (parts.method.clone(), path.as_str()) {
            (Method::GET, p) if p == format!("{PATH}/{NAME}") => match &*stored {
                Some(l) => (ok(StatusCode::OK, l), "GET".to_owned()),
                None => (status(StatusCode::NOT_FOUND, "NotFound"), "GET none".into()),
            },
            (Method::POST, PATH) => {
                if stored.is_some() {
                    (
                        status(StatusCode::CONFLICT, "AlreadyExists"),
                        "POST conflict".into(),
                    )
                } else {
                    let mut l: Lease = serde_json::from_slice(&bytes).unwrap();
                    l.metadata.resource_version =
                        Some(self.version.fetch_add(1, Ordering::SeqCst).to_string());
                    let e = format!("POST {}", holder(&l).unwrap_or_default());
                    *stored = Some(l.clone());
                    (ok(StatusCode::CREATED, &l), e)
                }
            }
            (Method::PUT, p) if p == format!("{PATH}/{NAME}") => {
                if let (Some(rival), Some(current)) =
                    (self.before_put.lock().take(), stored.as_mut())
                {
                    rival(current);
                }
                let mut l: Lease = serde_json::from_slice(&bytes).unwrap();
                let current = stored
                    .as_ref()
                    .and_then(|c| c.metadata.resource_version.clone());
                if l.metadata.resource_version != current {
                    (
                        status(StatusCode::CONFLICT, "Conflict"),
                        "PUT conflict".into(),
                    )
                } else {
                    l.metadata.resource_version =
                        Some(self.version.fetch_add(1, Ordering::SeqCst).to_string());
                    let e = format!("PUT {}", holder(&l).unwrap_or_default());
                    *stored = Some(l.clone());
                    (ok(StatusCode::OK, &l), e)
                }
            }
            (m, p) => panic!("unexpected request {m} {p}"),
        };
        self.log.lock().push(entry);
        resp
    }

    fn holder(&self) -> Option<String> {
        self.lease.lock().as_ref().and_then(holder)
    }

    fn transitions(&self) -> i32 {
        self.lease
            .lock()
            .as_ref()
            .and_then(|l| l.spec.as_ref()?.lease_transitions)
            .unwrap_or(0)
    }

    fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock())
    }

    /// An `Api<Lease>` whose requests this fake answers, through kube's mock transport.
    fn api(self: &Arc<Self>) -> Api<Lease> {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = self.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                send.send_response(fake.serve(req).await);
            }
        });
        Api::namespaced(Client::new(svc, NS), NS)
    }
}

fn elector(fake: &Arc<FakeApiServer>, identity: &str) -> LeaseElector {
    LeaseElector::new(
        fake.api(),
        LeaseSettings::new(NAME.into(), identity.into(), Duration::from_secs(15)),
    )
}

#[tokio::test]
async fn first_contender_creates_the_lease_and_leads() {
    let fake = Arc::new(FakeApiServer::default());
    let mut a = elector(&fake, "pod-a");
    assert!(a.try_acquire_or_renew(Instant::now()).await.unwrap());
    assert_eq!(fake.take_log(), ["GET none", "POST pod-a"]);
    let lease = fake.lease.lock().clone().unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.lease_duration_seconds, Some(15));
    assert!(spec.acquire_time.is_some() && spec.renew_time.is_some());
}

#[tokio::test]
async fn the_leader_renews_and_others_follow() {
    let fake = Arc::new(FakeApiServer::default());
    let (mut a, mut b) = (elector(&fake, "pod-a"), elector(&fake, "pod-b"));
    let t0 = Instant::now();
    assert!(a.try_acquire_or_renew(t0).await.unwrap());
    let renewed_before = fake.lease.lock().clone().unwrap().spec.unwrap().renew_time;
    assert!(!b.try_acquire_or_renew(t0).await.unwrap());
    fake.take_log();
    for i in 1..=10 {
        let t = t0 + Duration::from_secs(5 * i);
        assert!(a.try_acquire_or_renew(t).await.unwrap(), "renewal {i}");
        assert!(
            !b.try_acquire_or_renew(t).await.unwrap(),
            "follower round {i}"
        );
    }
    // Each renewal is a write, so the follower never sees the record stand still for 15 s.
    let log = fake.take_log();
    assert_eq!(log.iter().filter(|e| *e == "PUT pod-a").count(), 10);
    assert!(!log.iter().any(|e| e.contains("pod-b")));
    assert_eq!(fake.holder().as_deref(), Some("pod-a"));
    let renewed_after = fake.lease.lock().clone().unwrap().spec.unwrap().renew_time;
    assert!(renewed_after > renewed_before);
}

#[tokio::test]
async fn a_follower_takes_over_only_once_the_dead_leaders_lease_expired() {
    let fake = Arc::new(FakeApiServer::default());
    let (mut a, mut b) = (elector(&fake, "pod-a"), elector(&fake, "pod-b"));
    let t0 = Instant::now();
    assert!(a.try_acquire_or_renew(t0).await.unwrap());
    // pod-a dies: it renews no more. pod-b sees the same record for 14 s: still pod-a's.
    assert!(!b.try_acquire_or_renew(t0).await.unwrap());
    assert!(
        !b.try_acquire_or_renew(t0 + Duration::from_secs(14))
            .await
            .unwrap()
    );
    assert_eq!(fake.holder().as_deref(), Some("pod-a"));
    // 15 s unchanged on pod-b's clock: it takes over, counting a transition.
    assert!(
        b.try_acquire_or_renew(t0 + Duration::from_secs(15))
            .await
            .unwrap()
    );
    assert_eq!(fake.holder().as_deref(), Some("pod-b"));
    assert_eq!(fake.transitions(), 1);
}

#[tokio::test]
async fn a_leader_that_was_taken_over_knows_it_lost() {
    let fake = Arc::new(FakeApiServer::default());
    let (mut a, mut b) = (elector(&fake, "pod-a"), elector(&fake, "pod-b"));
    let t0 = Instant::now();
    assert!(a.try_acquire_or_renew(t0).await.unwrap());
    assert!(!b.try_acquire_or_renew(t0).await.unwrap());
    // pod-a stalls (e.g. a long GC pause or a partition) past the lease; pod-b takes over.
    assert!(
        b.try_acquire_or_renew(t0 + Duration::from_secs(16))
            .await
            .unwrap()
    );
    // pod-a comes back: it must not lead, nor overwrite pod-b's record.
    fake.take_log();
    assert!(
        !a.try_acquire_or_renew(t0 + Duration::from_secs(17))
            .await
            .unwrap()
    );
    assert!(!a.is_leading());
    assert_eq!(fake.take_log(), ["GET"]);
    assert_eq!(fake.holder().as_deref(), Some("pod-b"));
}

#[tokio::test]
async fn a_write_conflict_means_not_leading() {
    let fake = Arc::new(FakeApiServer::default());
    let mut a = elector(&fake, "pod-a");
    let t0 = Instant::now();
    assert!(a.try_acquire_or_renew(t0).await.unwrap());
    // A rival writes the Lease between pod-a's read and its renewal.
    *fake.before_put.lock() = Some(Box::new(|l: &mut Lease| {
        l.spec.as_mut().unwrap().holder_identity = Some("pod-z".into());
        l.metadata.resource_version = Some("rival".into());
    }));
    fake.take_log();
    assert!(
        !a.try_acquire_or_renew(t0 + Duration::from_secs(5))
            .await
            .unwrap()
    );
    assert!(!a.is_leading());
    assert_eq!(fake.take_log(), ["GET", "PUT conflict"]);
    assert_eq!(fake.holder().as_deref(), Some("pod-z"));
}

#[tokio::test]
async fn of_two_contenders_racing_for_a_missing_lease_exactly_one_leads() {
    let fake = Arc::new(FakeApiServer::default());
    let (mut x, mut y) = (elector(&fake, "pod-x"), elector(&fake, "pod-y"));
    let t0 = Instant::now();
    let (rx, ry) = tokio::join!(x.try_acquire_or_renew(t0), y.try_acquire_or_renew(t0));
    let (rx, ry) = (rx.unwrap(), ry.unwrap());
    assert_ne!(rx, ry);
    let winner = if rx { "pod-x" } else { "pod-y" };
    assert_eq!(fake.holder().as_deref(), Some(winner));
}

#[tokio::test]
async fn an_unreachable_api_server_is_an_error_not_a_verdict() {
    let fake = Arc::new(FakeApiServer::default());
    let mut a = elector(&fake, "pod-a");
    let t0 = Instant::now();
    assert!(a.try_acquire_or_renew(t0).await.unwrap());
    fake.fail_next.store(true, Ordering::SeqCst);
    assert!(
        a.try_acquire_or_renew(t0 + Duration::from_secs(5))
            .await
            .is_err()
    );
    // The record is untouched and the next round renews it.
    assert!(
        a.try_acquire_or_renew(t0 + Duration::from_secs(6))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn release_hands_the_lease_over_at_once() {
    let fake = Arc::new(FakeApiServer::default());
    let (mut a, mut b) = (elector(&fake, "pod-a"), elector(&fake, "pod-b"));
    let t0 = Instant::now();
    assert!(a.try_acquire_or_renew(t0).await.unwrap());
    assert!(!b.try_acquire_or_renew(t0).await.unwrap());
    a.release().await.unwrap();
    assert!(!a.is_leading());
    assert_eq!(fake.holder(), None);
    // No waiting for expiry: the very next round of pod-b leads.
    assert!(
        b.try_acquire_or_renew(t0 + Duration::from_secs(1))
            .await
            .unwrap()
    );
    assert_eq!(fake.holder().as_deref(), Some("pod-b"));
}

#[tokio::test]
async fn release_leaves_a_successors_lease_alone() {
    let fake = Arc::new(FakeApiServer::default());
    let (mut a, mut b) = (elector(&fake, "pod-a"), elector(&fake, "pod-b"));
    let t0 = Instant::now();
    assert!(a.try_acquire_or_renew(t0).await.unwrap());
    assert!(!b.try_acquire_or_renew(t0).await.unwrap());
    assert!(
        b.try_acquire_or_renew(t0 + Duration::from_secs(20))
            .await
            .unwrap()
    );
    // pod-a still believes it leads and drains: it must not clear pod-b's claim.
    a.release().await.unwrap();
    assert_eq!(fake.holder().as_deref(), Some("pod-b"));
}

#[tokio::test]
async fn run_starts_the_jobs_when_leading_and_stops_them_before_releasing_on_shutdown() {
    let fake = Arc::new(FakeApiServer::default());
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    let job: LeaderJob = Arc::new(move |stop: CancellationToken| {
        let tx = events_tx.clone();
        Box::pin(async move {
            let _ = tx.send("job started");
            stop.cancelled().await;
            let _ = tx.send("job stopped");
        })
    });
    let shutdown = CancellationToken::new();
    let (mut leadership, task) = run(elector(&fake, "pod-a"), job, shutdown.clone());
    let task = tokio::spawn(task);
    leadership.wait_for(true).await;
    assert_eq!(events.recv().await, Some("job started"));
    assert_eq!(fake.holder().as_deref(), Some("pod-a"));

    shutdown.cancel();
    task.await.unwrap();
    assert!(!leadership.is_leader());
    assert_eq!(events.recv().await, Some("job stopped"));
    // Released: the last write cleared the holder, after the job had stopped.
    assert_eq!(fake.holder(), None);
    assert_eq!(fake.take_log().last().map(String::as_str), Some("PUT "));
}

#[tokio::test]
async fn leading_alone_runs_the_jobs_until_shutdown() {
    let started = Arc::new(AtomicBool::new(false));
    let s = started.clone();
    let job: LeaderJob = Arc::new(move |stop: CancellationToken| {
        let s = s.clone();
        Box::pin(async move {
            s.store(true, Ordering::SeqCst);
            stop.cancelled().await;
        })
    });
    let shutdown = CancellationToken::new();
    let (mut leadership, task) = lead_alone(job, shutdown.clone());
    let task = tokio::spawn(task);
    leadership.wait_for(true).await;
    shutdown.cancel();
    task.await.unwrap();
    assert!(started.load(Ordering::SeqCst));
    assert!(!leadership.is_leader());
}
