//! Draining on SIGTERM, against the real binary in a child process: `/readyz` fails first (on the
//! public and the admin listener) while sockets keep working, then sockets get a transport close
//! (which the official clients answer by reconnecting, unlike a Socket.IO "io server
//! disconnect"), and the process exits 0.

use std::process::{Child, Command};
use std::time::Duration;

use crate::common::cluster::{Cluster, NodeApi};
use crate::common::sio::{CloseKind, SioClient};
use crate::common::{ChildServer, TestApp};
use reqwest::Method;
use reqwest::StatusCode;
use serde_json::json;
use tokio::time::Instant;

/// Long enough that the checks made during the pause cannot miss it on a loaded machine.
const DRAIN_DELAY: &str = "8s";
const GRACE: &str = "5s";

/// With an admin listener (`http://127.0.0.1:<port>`, returned too): the chart probes there.
async fn spawn_standalone(dir: &std::path::Path) -> (ChildServer, String) {
    let admin = format!("127.0.0.1:{}", crate::common::free_port());
    let p = ChildServer::start(
        dir,
        &[
            ("CONCLAVE_DRAIN_DELAY", DRAIN_DELAY),
            ("CONCLAVE_SHUTDOWN_GRACE", GRACE),
            ("CONCLAVE_ADMIN_ADDR", &admin),
        ],
    )
    .await;
    (p, format!("http://{admin}"))
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "SIGTERM delivered");
}

/// Waits for the child to exit, at most `within`.
async fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_fails_readiness_first_then_closes_transports_then_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (mut p, admin) = spawn_standalone(dir.path()).await;
    let app = TestApp::attach(&p.base);
    let alice = app.user().await;
    let group = app.group(&alice, "open").await;
    let mut socket = SioClient::connect(&p.base, &alice.token).await.unwrap();

    sigterm(&p.child);

    // Readiness turns 503 ("draining") ...
    let deadline = Instant::now() + Duration::from_secs(5);
    let report = loop {
        let r = app
            .client
            .get(format!("{}/readyz", p.base))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            break r.json::<serde_json::Value>().await.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "readyz still 200 after SIGTERM:\n{}",
            p.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(report["status"], "draining", "{report}");
    // The admin listener, where the chart's probes go, says the same.
    let r = app
        .client
        .get(format!("{admin}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let detailed = r.json::<serde_json::Value>().await.unwrap();
    assert_eq!(detailed["status"], "draining", "{detailed}");
    // ... while the socket is still connected and served: a message sent now is accepted.
    assert!(
        !socket.is_closed(),
        "socket closed before the drain pause ended"
    );
    let ack = socket
        .emit_with_ack(
            "message:send",
            json!({"group_id": group, "content": "during drain"}),
        )
        .await;
    assert_eq!(ack["ok"], true, "send during the drain pause: {ack}");

    // Then the transport is closed, so clients reconnect (elsewhere) by themselves.
    assert!(
        socket.wait_closed(Duration::from_secs(20)).await,
        "socket not closed after the drain pause:\n{}",
        p.log()
    );
    assert_eq!(socket.close_kind(), Some(CloseKind::Transport));

    // And the process ends cleanly within its grace period (pause + grace, plus slack).
    let status = wait_exit(&mut p.child, Duration::from_secs(30)).await;
    let log = p.log();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exit status {status:?}:\n{log}"
    );
    assert!(log.contains("drained"), "{log}");

    // The message accepted during the pause was stored before the exit: a new process on the
    // same data has it.
    let (mut q, _) = spawn_standalone(dir.path()).await;
    let app = TestApp::attach(&q.base);
    let (s, page) = app
        .get(&format!("/groups/{group}/messages"), &alice.token)
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
    let _ = q.child.kill();
    let _ = q.child.wait();
}

/// Cluster engine: a drained process hands its partitions back, so messages accepted by the
/// remaining process afterwards are still stored and delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_cluster_process_hands_its_partitions_to_the_others() {
    // Node 0 starts first, so it holds every partition's single active consumer.
    let mut cluster = Cluster::start(2).await;
    let n2 = NodeApi::new(&cluster.nodes[1].base);
    let alice = n2.user().await;
    let (s, g) = n2
        .call(
            Method::POST,
            "/groups",
            Some(&alice.token),
            Some(json!({"name": "drain", "visibility": "open"})),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    let gid = g["id"].as_str().unwrap().to_owned();
    let mut watcher = SioClient::connect(&cluster.nodes[1].base, &alice.token)
        .await
        .expect("connect to node 2");

    let status = cluster.terminate(0, Duration::from_secs(40)).await;
    let log = cluster.log(0);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "node 1 exit {status:?}:\n{log}"
    );
    assert!(log.contains("drained"), "{log}");

    // Node 2 now consumes: a message it accepts is stored and delivered.
    let (s, m) = n2
        .call(
            Method::POST,
            &format!("/groups/{gid}/messages"),
            Some(&alice.token),
            Some(json!({"content": "after the drain"})),
        )
        .await;
    assert_eq!(s, 202, "{m}");
    let id = m["id"].as_str().unwrap().to_owned();
    let delivered = loop {
        match watcher
            .next_event("message:new", Duration::from_secs(20))
            .await
        {
            Some(v) if v["id"] == id.as_str() => break Some(v),
            Some(_) => continue,
            None => break None,
        }
    };
    assert!(
        delivered.is_some(),
        "not delivered after the drain:\n{}",
        cluster.log(1)
    );
    let history = n2.history(&gid, &alice.token).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["id"], id.as_str());
    cluster.cleanup().await;
}
