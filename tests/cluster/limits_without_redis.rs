//! The shared rate limits while Redis is gone (each test's own proxy in front of the machine's
//! Redis; MongoDB and RabbitMQ stay):
//! - Redis not answering at all (packets dropped) slows neither sends nor logins: after one
//!   failure each process uses its own limiter at once and probes Redis in the background, and
//!   says so once, not once per request.
//! - The processes' own limiters together allow about the limit, not one limit per process: each
//!   allows its share (the limit divided by the live processes).
//! - A retry of a send whose first attempt is still on its way learns the id, even at the limit.

use std::time::{Duration, Instant};

use crate::common::cluster::{self, Cluster, NodeApi, Options};
use crate::common::proxy::FaultProxy;
use reqwest::Method;
use serde_json::json;

async fn redis_proxy() -> std::sync::Arc<FaultProxy> {
    FaultProxy::start("127.0.0.1:6379").await
}

fn through(proxy: &FaultProxy, env: Vec<(&'static str, String)>) -> Options {
    Options {
        redis_url: Some(format!("redis://{}", proxy.addr())),
        env,
        ..Options::default()
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

/// Lines of a node's log about the rate limiter's Redis.
fn limiter_lines(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("rate limit") && l.to_ascii_lowercase().contains("redis"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blackholed_redis_slows_neither_sends_nor_logins() {
    let proxy = redis_proxy().await;
    let timeout = vec![("CONCLAVE_REDIS_LIMIT_TIMEOUT", "50ms".to_owned())];
    let cluster = Cluster::start_with(2, through(&proxy, timeout)).await;
    let apis = cluster.apis();
    let users = [apis[0].user().await, apis[1].user().await];
    let gid = apis[0].group(&users[0].token, "blackhole", "open").await;
    apis[1].join(&gid, &users[1].token).await;
    let name = crate::common::unique("bh");
    let creds = json!({"username": name, "password": "blackhole-password"});
    let (s, _) = apis[0]
        .call(Method::POST, "/auth/register", None, Some(creds.clone()))
        .await;
    assert_eq!(s, 201);

    proxy.blackhole(true);
    let (mut sends, mut logins, mut refused) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..60 {
        let n = i % 2;
        let started = Instant::now();
        let (s, b) = apis[n]
            .call(
                Method::POST,
                &format!("/groups/{gid}/messages"),
                Some(&users[n].token),
                Some(json!({"content": format!("m{i}")})),
            )
            .await;
        sends.push(started.elapsed());
        if s != 202 {
            refused.push(format!("send {i}: {s} {b}"));
        }
        if i % 6 == 0 {
            let started = Instant::now();
            let (s, b) = apis[n]
                .call(Method::POST, "/auth/login", None, Some(creds.clone()))
                .await;
            logins.push(started.elapsed());
            if s != 200 {
                refused.push(format!("login {i}: {s} {b}"));
            }
        }
    }
    proxy.blackhole(false);
    eprintln!(
        "Redis blackholed: send p50 {:?} p99 {:?}; login p50 {:?} max {:?}; {} of 70 not served",
        percentile(&mut sends, 0.5),
        percentile(&mut sends, 0.99),
        percentile(&mut logins, 0.5),
        percentile(&mut logins, 1.0),
        refused.len()
    );
    assert!(refused.is_empty(), "{refused:#?}");
    for i in 0..cluster.nodes.len() {
        let lines = limiter_lines(&cluster.log(i));
        assert!(
            lines <= 2,
            "node {i} logged {lines} lines about the limiter's Redis for 60 sends and 10 logins:\n{}",
            cluster.log(i)
        );
    }
    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_redis_the_processes_share_the_limits_out() {
    let proxy = redis_proxy().await;
    let limits = vec![
        ("CONCLAVE_MESSAGES_PER_USER", "30".to_owned()),
        ("CONCLAVE_MESSAGES_WINDOW", "1h".to_owned()),
        ("CONCLAVE_LOGIN_MAX_PER_ACCOUNT", "9".to_owned()),
        ("CONCLAVE_LOGIN_WINDOW", "1h".to_owned()),
    ];
    let cluster = Cluster::start_with(3, through(&proxy, limits)).await;
    let apis = cluster.apis();
    let u = apis[0].user().await;
    let gid = apis[0].group(&u.token, "shares", "open").await;
    let name = crate::common::unique("share");
    let (s, _) = apis[0]
        .call(
            Method::POST,
            "/auth/register",
            None,
            Some(json!({"username": name, "password": "right-password"})),
        )
        .await;
    assert_eq!(s, 201);
    // The limits are divided among the processes the registry saw.
    cluster.wait_for_registry().await;

    proxy.down();
    let mut accepted = 0;
    for i in 0..90 {
        let (s, b) = apis[i % 3]
            .call(
                Method::POST,
                &format!("/groups/{gid}/messages"),
                Some(&u.token),
                Some(json!({"content": format!("m{i}")})),
            )
            .await;
        match s {
            202 => accepted += 1,
            429 => assert_eq!(b["code"], "rate_limited", "{b}"),
            _ => panic!("send {i}: {s} {b}"),
        }
    }
    let mut tried = 0;
    for i in 0..27 {
        let wrong = json!({"username": name, "password": "wrong-password"});
        let (s, b) = apis[i % 3]
            .call(Method::POST, "/auth/login", None, Some(wrong))
            .await;
        match s {
            401 => tried += 1,
            429 => assert_eq!(b["code"], "rate_limited", "{b}"),
            _ => panic!("login {i}: {s} {b}"),
        }
    }
    eprintln!(
        "Redis down, 3 processes: {accepted} of 90 sends accepted (limit 30), {tried} of 27 wrong passwords tried (limit 9)"
    );
    assert!(
        (1..=30).contains(&accepted),
        "{accepted} sends accepted for a limit of 30"
    );
    assert!(
        (1..=9).contains(&tried),
        "{tried} wrong passwords tried for a limit of 9"
    );
    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_at_the_limit_learns_the_id_of_its_first_attempt_in_flight() {
    let target = cluster::mongo_uri()
        .trim_start_matches("mongodb://")
        .trim_end_matches('/')
        .to_owned();
    let mongo = FaultProxy::start(&target).await;
    let cluster = Cluster::start_with(
        1,
        Options {
            mongo_uri: Some(format!(
                "mongodb://{}/?directConnection=true&serverSelectionTimeoutMS=2000&connectTimeoutMS=1000",
                mongo.addr()
            )),
            env: vec![
                ("CONCLAVE_MESSAGES_PER_USER", "2".to_owned()),
                ("CONCLAVE_MESSAGES_WINDOW", "1h".to_owned()),
                // The sender is remembered as a member: sends need no MongoDB read.
                ("CONCLAVE_SENDER_CACHE_TTL", "300s".to_owned()),
            ],
            ..Options::default()
        },
    )
    .await;
    let api = NodeApi::new(&cluster.nodes[0].base);
    let u = api.user().await;
    let gid = api.group(&u.token, "retry", "open").await;
    let path = format!("/groups/{gid}/messages");
    let send = |cmid: &'static str| {
        let (api, token, path) = (api.clone(), u.token.clone(), path.clone());
        async move {
            api.call(
                Method::POST,
                &path,
                Some(&token),
                Some(json!({"content": cmid, "client_msg_id": cmid})),
            )
            .await
        }
    };
    let (s, _) = send("c1").await;
    assert_eq!(s, 202);

    // The second message is accepted but cannot be stored yet: it waits in its queue.
    mongo.down();
    let (s, first) = send("c2").await;
    assert_eq!(s, 202, "{first}");
    let (s, retry) = send("c2").await;
    assert_eq!(s, 202, "a retry at the limit: {retry}");
    assert_eq!(retry["id"], first["id"]);
    let (s, b) = send("c3").await;
    assert_eq!((s, b["code"].as_str()), (429, Some("rate_limited")), "{b}");

    mongo.up();
    cluster.wait_all_ready().await;
    let until = Instant::now() + Duration::from_secs(60);
    let mut history = api.history(&gid, &u.token).await;
    while history.len() < 2 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        history = api.history(&gid, &u.token).await;
    }
    let contents: Vec<_> = history.iter().map(|m| m["content"].clone()).collect();
    assert_eq!(contents, vec!["c1", "c2"], "{}", cluster.logs());
    cluster.cleanup().await;
}
