//! Faults, nothing lost: while senders send at a steady rate through three cluster processes,
//! one process is killed with SIGKILL, RabbitMQ's application is stopped and started, and Redis is
//! restarted. Every message acked `accepted` must be in history exactly once with contiguous
//! `seq`, and a member who reconnects and asks `group:sync` gets all of them. No process is
//! restarted by hand except the killed one.
//!
//! This test restarts the machine's shared RabbitMQ and Redis, so its cluster holds them
//! exclusively (`Options::restarts_services`): no other cluster test of this binary runs meanwhile,
//! and the other test binaries run before or after this one.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::cluster::{self, Cluster, Options};
use crate::common::sio::SioClient;
use reqwest::Method;
use serde_json::json;
use tokio::sync::Mutex;

fn run(cmd: &str, args: &[&str]) {
    let st = Command::new(cmd)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(st.success(), "{cmd} {args:?} failed");
}

fn restart_redis() {
    let _ = Command::new("redis-cli")
        .args(["shutdown", "nosave"])
        .status();
    std::thread::sleep(Duration::from_millis(500));
    // The machine's own start command (see the env notes).
    run(
        "redis-server",
        &[
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/var/lib/redis",
            "--logfile",
            "/var/log/redis/ci.log",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_accepted_is_lost_through_kill_broker_restart_and_redis_restart() {
    let mut cluster = Cluster::start_with(
        3,
        Options {
            restarts_services: true,
            ..Options::default()
        },
    )
    .await;
    let apis = cluster.apis();
    let owner = apis[0].user().await;
    let (_, g) = apis[0]
        .call(
            Method::POST,
            "/groups",
            Some(&owner.token),
            Some(json!({"name": "faults", "visibility": "open"})),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_owned();
    let mut senders = Vec::new();
    for api in &apis {
        let u = api.user().await;
        let (s, _) = api
            .call(
                Method::POST,
                &format!("/groups/{gid}/join"),
                Some(&u.token),
                None,
            )
            .await;
        assert_eq!(s, 200);
        senders.push(u);
    }

    // Each sender keeps sending through "its" node (falling back to the others when it is down),
    // retrying a message with the same client_msg_id until it is accepted.
    let accepted: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, u) in senders.iter().cloned().enumerate() {
        let (apis, accepted, stop, gid) =
            (apis.clone(), accepted.clone(), stop.clone(), gid.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u32;
            let mut unavailable = 0u32;
            while !stop.load(Ordering::SeqCst) && n < 400 {
                let cmid = format!("s{i}-{n}");
                let mut attempt = 0usize;
                loop {
                    let api = &apis[(i + attempt) % apis.len()];
                    let body = json!({"content": format!("sender {i} message {n}"), "client_msg_id": cmid});
                    match api.try_call(Method::POST, &format!("/groups/{gid}/messages"), Some(&u.token), Some(body)).await {
                        Ok((202, b)) => {
                            let id = b["id"].as_str().unwrap().to_owned();
                            let prev = accepted.lock().await.insert(cmid.clone(), id.clone());
                            assert!(prev.is_none() || prev.as_deref() == Some(id.as_str()), "a retried client_msg_id got another id");
                            break;
                        }
                        Ok((503, _)) | Err(_) => {
                            unavailable += 1;
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Ok((s, b)) => panic!("unexpected {s}: {b}"),
                    }
                    if stop.load(Ordering::SeqCst) && attempt > 200 {
                        return unavailable;
                    }
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            unavailable
        }));
    }

    let pause = || tokio::time::sleep(Duration::from_secs(2));
    pause().await;
    cluster.kill9(2);
    pause().await;
    cluster.spawn(2);
    cluster.wait_ready(2).await;
    run("rabbitmqctl", &["stop_app"]);
    pause().await;
    run("rabbitmqctl", &["start_app"]);
    cluster.wait_all_ready().await;
    pause().await;
    restart_redis();
    cluster.wait_all_ready().await;
    pause().await;
    stop.store(true, Ordering::SeqCst);
    let mut refused = 0;
    for t in tasks {
        refused += t.await.expect("sender task");
    }
    let accepted = accepted.lock().await.clone();
    assert!(
        accepted.len() > 100,
        "the senders got through: {} accepted, {refused} refused",
        accepted.len()
    );

    // Everything accepted is stored exactly once, with contiguous seq; give the pipeline time to
    // drain (a delivery held by a consumer whose broker connection died comes back only once
    // the dead connection is noticed, so allow for a slow recovery on a loaded machine).
    let history = cluster::assert_stored_exactly_once(
        &apis[0],
        &gid,
        &owner.token,
        &accepted,
        Duration::from_secs(60),
        || format!("node logs:\n{}", cluster.logs()),
    )
    .await;

    // A member that was away reconnects and catches up with group:sync.
    let sock = SioClient::connect(&cluster.nodes[1].base, &owner.token)
        .await
        .expect("connect");
    let mut synced = Vec::new();
    let mut after = 0u64;
    loop {
        let ack = sock
            .emit_with_ack(
                "group:sync",
                json!({"group_id": gid, "after_seq": after, "limit": 100}),
            )
            .await;
        assert_eq!(ack["ok"], true, "{ack}");
        let items = ack["items"].as_array().unwrap().clone();
        if items.is_empty() {
            break;
        }
        after = items.last().unwrap()["seq"].as_u64().unwrap();
        synced.extend(items);
    }
    assert_eq!(
        synced.len(),
        history.len(),
        "group:sync returns everything stored"
    );
    cluster.cleanup().await;
}
