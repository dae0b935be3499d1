//! A process whose clock runs ahead (libfaketime in front of the real binary) must not refill the
//! budgets the processes share: the shared rate limits count on Redis's clock, not each
//! process's.

use crate::common::cluster::{Cluster, Options};
use reqwest::Method;
use serde_json::json;

/// libfaketime's multi-threaded library (Debian `libfaketime`, installed by scripts/deps).
fn faketime() -> String {
    let path = format!(
        "/usr/lib/{}-linux-gnu/faketime/libfaketimeMT.so.1",
        std::env::consts::ARCH
    );
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: install libfaketime (scripts/deps does)"
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_process_with_its_clock_ahead_does_not_refill_a_shared_budget() {
    let cluster = Cluster::start_with(
        2,
        Options {
            env: vec![
                ("CONCLAVE_MESSAGES_PER_USER", "4".to_owned()),
                ("CONCLAVE_MESSAGES_WINDOW", "1h".to_owned()),
            ],
            // Node 2 lives an hour ahead; its timers (the monotonic clock) run true.
            node_env: vec![
                (1, "LD_PRELOAD", faketime()),
                (1, "FAKETIME", "+1h".to_owned()),
                (1, "DONT_FAKE_MONOTONIC", "1".to_owned()),
            ],
            ..Options::default()
        },
    )
    .await;
    let apis = cluster.apis();
    let owner = apis[0].user().await;
    let gid = apis[0].group(&owner.token, "skew", "open").await;
    // One sender, with a token from each node (each checks expiry on its own clock).
    let name = crate::common::unique("skew");
    let creds = json!({"username": name, "password": "skewed-password"});
    let (s, reg) = apis[0]
        .call(Method::POST, "/auth/register", None, Some(creds.clone()))
        .await;
    assert_eq!(s, 201, "{reg}");
    let mut tokens = Vec::new();
    for api in &apis {
        let (s, t) = api
            .call(Method::POST, "/auth/login", None, Some(creds.clone()))
            .await;
        assert_eq!(s, 200, "{t}");
        tokens.push(t["access_token"].as_str().unwrap().to_owned());
    }
    apis[0].join(&gid, &tokens[0]).await;

    // Three through the node on time, then five through the one ahead: four in all fit.
    let mut accepted = 0;
    for (i, n) in [0, 0, 0, 1, 1, 1, 1, 1].into_iter().enumerate() {
        let (s, b) = apis[n]
            .call(
                Method::POST,
                &format!("/groups/{gid}/messages"),
                Some(&tokens[n]),
                Some(json!({"content": format!("m{i}")})),
            )
            .await;
        match s {
            202 => accepted += 1,
            429 => assert_eq!(b["code"], "rate_limited", "{b}"),
            _ => panic!("send {i} through node {}: {s} {b}", n + 1),
        }
    }
    assert_eq!(
        accepted, 4,
        "the process an hour ahead saw the budget refilled"
    );
    cluster.cleanup().await;
}
