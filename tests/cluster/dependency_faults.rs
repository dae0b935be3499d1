//! Dependencies failing, one at a time, under a steady load through two cluster processes.
//!
//! Each test puts its own TCP proxy ([`common::proxy::FaultProxy`]) in front of the machine's real
//! MongoDB-compatible server, RabbitMQ and Redis, so it can take one of them away (refused
//! connections, open ones cut) or make it slow for its own processes only. What a user must see:
//! - while a dependency is gone, requests that need it answer 503 `unavailable` within the
//!   configured deadline: never a hang, never a 500; requests that do not need it go on (Redis
//!   down: sends are still accepted);
//! - `/readyz` stays 200 (the pod should still get traffic: every pod shares the dependency) and
//!   names the missing dependency, from cached probe results (it answers at once even when the
//!   dependency hangs); `conclave_dependency_up` drops to 0 and comes back to 1 by itself;
//! - a process that has not reached a dependency yet is not ready (503 `starting`), and its admin
//!   listener already says which one it waits for;
//! - the senders get through again without anyone restarting a process;
//! - a sender the process remembers as a member (`CONCLAVE_SENDER_CACHE_TTL`) needs no MongoDB
//!   read to send: during a MongoDB outage their messages are queued, and stored once it is back;
//! - every message acked `accepted` is stored exactly once, with contiguous `seq`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::cluster::{self, Cluster, NodeApi, Options};
use crate::common::proxy::FaultProxy;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// The REST deadline the nodes run with: a request waiting on a missing dependency must be
/// answered (503) by then.
const DEADLINE: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Dep {
    Mongo,
    Rabbit,
    Redis,
}

impl Dep {
    /// The name `/readyz` gives this dependency.
    fn check(self) -> &'static str {
        match self {
            Dep::Mongo => "mongodb",
            Dep::Rabbit => "rabbitmq",
            Dep::Redis => "redis",
        }
    }
}

struct Proxies {
    mongo: Arc<FaultProxy>,
    rabbit: Arc<FaultProxy>,
    redis: Arc<FaultProxy>,
}

impl Proxies {
    async fn start() -> Proxies {
        let mongo_target = cluster::mongo_uri()
            .trim_start_matches("mongodb://")
            .trim_end_matches('/')
            .to_owned();
        Proxies {
            mongo: FaultProxy::start(&mongo_target).await,
            rabbit: FaultProxy::start("127.0.0.1:5672").await,
            redis: FaultProxy::start("127.0.0.1:6379").await,
        }
    }

    fn get(&self, d: Dep) -> &FaultProxy {
        match d {
            Dep::Mongo => &self.mongo,
            Dep::Rabbit => &self.rabbit,
            Dep::Redis => &self.redis,
        }
    }

    fn options(&self) -> Options {
        Options {
            // directConnection: the driver must not discover the server's own address and go
            // around the proxy.
            mongo_uri: Some(format!(
                "mongodb://{}/?directConnection=true&serverSelectionTimeoutMS=2000&connectTimeoutMS=1000",
                self.mongo.addr()
            )),
            amqp_url: Some(format!("amqp://guest:guest@{}/%2f", self.rabbit.addr())),
            redis_url: Some(format!("redis://{}", self.redis.addr())),
            env: vec![("CONCLAVE_REQUEST_TIMEOUT", "3s".into())],
            node_env: Vec::new(),
            restarts_services: false,
        }
    }
}

/// What the senders saw.
#[derive(Default)]
struct Tally {
    /// client_msg_id → message id, for every 202.
    accepted: HashMap<String, String>,
    /// 202s received after the dependency came back.
    accepted_after_restore: usize,
    /// 202s received while it was down.
    accepted_while_down: usize,
    unavailable: usize,
}

/// `conclave_dependency_up{dependency=<dep>}` as `base`'s `/metrics` shows it now.
async fn dependency_up(base: &str, dep: &str) -> f64 {
    let text = crate::common::metrics_text(&format!("{base}/metrics")).await;
    let series = format!("conclave_dependency_up{{dependency=\"{dep}\"}}");
    assert!(text.contains(&series), "{series} not exported:\n{text}");
    crate::common::metric_value(&text, &series)
}

/// Waits (bounded) until `base`'s `conclave_dependency_up` for `dep` is `want`.
async fn wait_dependency_up(base: &str, dep: &str, want: f64) {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let got = dependency_up(base, dep).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < until,
            "conclave_dependency_up{{dependency={dep}}} stays {got}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn readyz(base: &str) -> (u16, Value) {
    match reqwest::Client::new()
        .get(format!("{base}/readyz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(r) => {
            let s = r.status().as_u16();
            (s, r.json().await.unwrap_or(Value::Null))
        }
        Err(e) => panic!("/readyz did not answer: {e}"),
    }
}

/// Waits (bounded) until `/readyz` of `base` satisfies `pred`; returns the last report.
async fn wait_readyz(base: &str, what: &str, pred: impl Fn(u16, &Value) -> bool) -> Value {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, body) = readyz(base).await;
        if pred(s, &body) {
            return body;
        }
        assert!(Instant::now() < until, "{what}: last /readyz {s} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long each process trusts a "may send" it read from MongoDB (`CONCLAVE_SENDER_CACHE_TTL`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Senders {
    /// Every send reads MongoDB.
    Forgotten,
    /// Longer than the test: every sender was remembered before the outage.
    Remembered,
}

async fn outage_under_load(dep: Dep, senders_cache: Senders) {
    let proxies = Proxies::start().await;
    let mut options = proxies.options();
    let ttl = match senders_cache {
        Senders::Forgotten => "0",
        Senders::Remembered => "300s",
    };
    options.env.push(("CONCLAVE_SENDER_CACHE_TTL", ttl.into()));
    let cluster = Cluster::start_with(2, options).await;
    let apis = cluster.apis();
    let owner = apis[0].user().await;
    let (s, g) = apis[0]
        .call(
            Method::POST,
            "/groups",
            Some(&owner.token),
            Some(json!({"name": format!("outage {dep:?}"), "visibility": "open"})),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    let gid = g["id"].as_str().unwrap().to_owned();
    let mut senders = Vec::new();
    for api in &apis {
        let u = api.user().await;
        let (s, b) = api
            .call(
                Method::POST,
                &format!("/groups/{gid}/join"),
                Some(&u.token),
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        senders.push(u);
    }

    // Each sender sends through its own node, retrying a message with the same client_msg_id
    // until it is accepted. Any answer other than 202 or 503 `unavailable`, or no answer within
    // the deadline, fails the test.
    let tally: Arc<Mutex<Tally>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let restored = Arc::new(AtomicBool::new(false));
    let down = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, u) in senders.iter().cloned().enumerate() {
        let api = apis[i].clone();
        let (tally, stop, restored, down, gid) = (
            tally.clone(),
            stop.clone(),
            restored.clone(),
            down.clone(),
            gid.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let cmid = format!("s{i}-{n}");
                loop {
                    let body = json!({"content": format!("sender {i} message {n}"), "client_msg_id": cmid});
                    let started = Instant::now();
                    let res = api
                        .try_call(
                            Method::POST,
                            &format!("/groups/{gid}/messages"),
                            Some(&u.token),
                            Some(body),
                        )
                        .await;
                    let took = started.elapsed();
                    let (s, b) = res.unwrap_or_else(|e| {
                        panic!("{dep:?} outage: no answer after {took:?} (a hang): {e}")
                    });
                    assert!(
                        took < DEADLINE + Duration::from_secs(2),
                        "{dep:?} outage: answered {s} only after {took:?}"
                    );
                    match s {
                        202 => {
                            let id = b["id"].as_str().unwrap().to_owned();
                            let mut t = tally.lock().await;
                            let prev = t.accepted.insert(cmid.clone(), id.clone());
                            assert!(
                                prev.is_none() || prev.as_deref() == Some(id.as_str()),
                                "a retried client_msg_id got another id"
                            );
                            if restored.load(Ordering::SeqCst) {
                                t.accepted_after_restore += 1;
                            }
                            if down.load(Ordering::SeqCst) {
                                t.accepted_while_down += 1;
                            }
                            break;
                        }
                        503 => {
                            assert_eq!(b["code"], "unavailable", "{b}");
                            tally.lock().await.unavailable += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        _ => panic!("{dep:?} outage: unexpected {s}: {b}"),
                    }
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let proxy = proxies.get(dep);
    proxy.down();
    down.store(true, Ordering::SeqCst);
    // Every node stays ready (200) and names what is missing; the gauge drops.
    for node in &cluster.nodes {
        let report = wait_readyz(&node.base, "readiness reports the outage", |_, b| {
            b["checks"][dep.check()] == "down"
        })
        .await;
        assert_eq!(report["status"], "degraded", "{report}");
        assert!(
            report["details"][dep.check()]["error"].is_string(),
            "{report}"
        );
        for other in ["mongodb", "rabbitmq", "redis"] {
            if other != dep.check() {
                assert_eq!(report["checks"][other], "ok", "{report}");
            }
        }
        let (s, report) = readyz(&node.base).await;
        assert_eq!(
            s, 200,
            "a shared dependency down made the pod unready: {report}"
        );
        wait_dependency_up(&node.base, dep.check(), 0.0).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    down.store(false, Ordering::SeqCst);
    proxy.up();
    restored.store(true, Ordering::SeqCst);
    for node in &cluster.nodes {
        wait_readyz(&node.base, "recovers by itself", |s, b| {
            s == 200 && b["status"] == "ready"
        })
        .await;
        wait_dependency_up(&node.base, dep.check(), 1.0).await;
    }
    // Senders get through again.
    let until = Instant::now() + Duration::from_secs(60);
    while tally.lock().await.accepted_after_restore < 20 {
        assert!(
            Instant::now() < until,
            "{dep:?}: sends did not get through after the dependency came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.expect("sender task");
    }
    let tally = tally.lock().await;
    match (dep, senders_cache) {
        // Redis only carries fan-out and shared rate limits: sends go on without it, none
        // refused.
        (Dep::Redis, _) => {
            assert!(
                tally.accepted_while_down > 0,
                "no send was accepted while Redis was down"
            );
            assert_eq!(
                tally.unavailable, 0,
                "sends refused while only Redis was down"
            );
        }
        // A sender remembered as a member needs no MongoDB read: their messages are queued
        // and stored once it is back (checked below).
        (Dep::Mongo, Senders::Remembered) => assert!(
            tally.accepted_while_down > 0,
            "remembered senders were refused while MongoDB was down"
        ),
        // Without MongoDB a sender cannot be checked for membership, without RabbitMQ nothing
        // can be queued: some sends must have been refused.
        (Dep::Mongo, Senders::Forgotten) | (Dep::Rabbit, _) => {
            assert!(tally.unavailable > 0, "{dep:?}: no send was refused")
        }
    }

    // Everything accepted is stored exactly once, with contiguous seq (give the pipeline time).
    let history = cluster::assert_stored_exactly_once(
        &apis[1],
        &gid,
        &owner.token,
        &tally.accepted,
        Duration::from_secs(30),
        || format!("{dep:?} outage"),
    )
    .await;
    eprintln!(
        "{dep:?} outage: {} accepted ({} after restore), {} answered 503, {} stored",
        tally.accepted.len(),
        tally.accepted_after_restore,
        tally.unavailable,
        history.len()
    );
    drop(tally);
    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mongodb_outage_under_load() {
    outage_under_load(Dep::Mongo, Senders::Forgotten).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mongodb_outage_under_load_with_senders_remembered() {
    outage_under_load(Dep::Mongo, Senders::Remembered).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rabbitmq_outage_under_load() {
    outage_under_load(Dep::Rabbit, Senders::Remembered).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_outage_under_load() {
    outage_under_load(Dep::Redis, Senders::Remembered).await;
}

/// A slow MongoDB (every packet held 10 s): requests that need it are answered 503 `unavailable`
/// at the REST deadline instead of waiting; `/readyz` says the store is down without waiting on
/// it (the prober's cached result, not a probe per request); everything is normal again once
/// the delay is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_mongodb_hits_the_deadline() {
    let proxies = Proxies::start().await;
    let cluster = Cluster::start_with(1, proxies.options()).await;
    let api = NodeApi::new(&cluster.nodes[0].base);
    let owner = api.user().await;
    let (s, g) = api
        .call(
            Method::POST,
            "/groups",
            Some(&owner.token),
            Some(json!({"name": "slow store", "visibility": "open"})),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    let gid = g["id"].as_str().unwrap().to_owned();
    let path = format!("/groups/{gid}/messages?limit=10");

    proxies.mongo.delay(Duration::from_secs(10));
    let started = Instant::now();
    let (s, b) = api.call(Method::GET, &path, Some(&owner.token), None).await;
    let took = started.elapsed();
    assert_eq!((s, b["code"].as_str()), (503, Some("unavailable")), "{b}");
    assert!(
        took < Duration::from_secs(10),
        "answered only when the slow store answered ({took:?}), not at the deadline"
    );
    wait_readyz(
        &cluster.nodes[0].base,
        "the prober sees the slow store",
        |s, b| s == 200 && b["checks"]["mongodb"] == "down",
    )
    .await;
    let started = Instant::now();
    let (s, report) = readyz(&cluster.nodes[0].base).await;
    let took = started.elapsed();
    eprintln!("/readyz with MongoDB held 10 s: answered {s} in {took:?}");
    assert_eq!(s, 200, "{report}");
    // A probe of this store would wait its whole timeout (2 s); a cached answer does not.
    assert!(
        took < Duration::from_secs(1),
        "/readyz waited on the slow store: {took:?}"
    );

    proxies.mongo.delay(Duration::ZERO);
    wait_readyz(
        &cluster.nodes[0].base,
        "ready once the store is fast",
        |s, b| s == 200 && b["status"] == "ready",
    )
    .await;
    let (s, b) = api.call(Method::GET, &path, Some(&owner.token), None).await;
    assert_eq!(s, 200, "{b}");
    cluster.cleanup().await;
}

/// A process that cannot reach MongoDB when it starts is not ready (503 `starting`): its public
/// listener is not open yet, and its admin listener already answers, naming what it waits for.
/// Once MongoDB answers, it becomes ready by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_process_starting_without_mongodb_is_not_ready_and_says_why() {
    let proxies = Proxies::start().await;
    let admin = format!("127.0.0.1:{}", crate::common::free_port());
    let mut options = proxies.options();
    options
        .node_env
        .push((0, "CONCLAVE_ADMIN_ADDR", admin.clone()));
    let mut cluster = Cluster::start_with(1, options).await;
    cluster.kill9(0);
    proxies.mongo.down();
    cluster.spawn(0);
    let admin = format!("http://{admin}");
    // The process needs a moment to open its admin listener at all.
    let until = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{admin}/healthz")).await.is_err() {
        assert!(
            Instant::now() < until,
            "no admin listener:\n{}",
            cluster.log(0)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = wait_readyz(
        &admin,
        "the admin listener answers while starting",
        |s, b| s == 503 && b["details"]["mongodb"]["error"].is_string(),
    )
    .await;
    assert_eq!(report["status"], "starting", "{report}");
    assert_eq!(report["checks"]["mongodb"], "down", "{report}");
    assert_eq!(dependency_up(&admin, "mongodb").await, 0.0);
    assert!(
        reqwest::get(format!("{}/readyz", cluster.nodes[0].base))
            .await
            .is_err(),
        "the public listener is open before the process can serve"
    );

    proxies.mongo.up();
    cluster.wait_ready(0).await;
    let (s, report) = readyz(&admin).await;
    assert_eq!(
        (s, report["status"].as_str()),
        (200, Some("ready")),
        "{report}"
    );
    wait_dependency_up(&admin, "mongodb", 1.0).await;
    cluster.cleanup().await;
}
