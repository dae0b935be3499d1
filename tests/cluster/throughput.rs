//! A measurement, not a pass/fail test: messages per second sustained through three cluster
//! processes, and send→deliver latency across processes at half that rate.
//!
//! CONCLAVE_TEST_MONGODB_URI=$(scripts/mongo-test-server) \
//!   cargo test --release --test cluster throughput:: -- --ignored --nocapture

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::cluster::{Cluster, NodeApi};
use crate::common::sio::SioClient;
use reqwest::Method;
use serde_json::json;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

/// `senders` sockets on nodes 2 and 3 send for `secs`, each at most one message per `gap`
/// (zero: as fast as acks come back); one member on node 1 receives.
async fn run(
    cluster: &Cluster,
    gid: &str,
    tokens: &[String],
    watcher_token: &str,
    secs: u64,
    gap: Duration,
) -> (usize, f64, Vec<u64>) {
    let mut watcher = SioClient::connect(&cluster.nodes[0].base, watcher_token)
        .await
        .unwrap();
    let mut socks = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        socks.push(
            SioClient::connect(&cluster.nodes[1 + i % 2].base, t)
                .await
                .unwrap(),
        );
    }
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let senders = socks.iter().map(|s| async move {
        let mut sent = 0usize;
        while Instant::now() < end {
            let ack = s
                .emit_with_ack(
                    "message:send",
                    json!({"group_id": gid, "content": now_us().to_string()}),
                )
                .await;
            assert_eq!(ack["ok"], true, "{ack}");
            sent += 1;
            if !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
        }
        sent
    });
    let receive = async {
        let mut lat = Vec::new();
        let mut last = Instant::now();
        while let Some(m) = watcher
            .next_event("message:new", Duration::from_secs(5))
            .await
        {
            lat.push(
                now_us().saturating_sub(m["content"].as_str().unwrap().parse::<u64>().unwrap()),
            );
            last = Instant::now();
            if Instant::now() > end + Duration::from_secs(30) {
                break;
            }
        }
        (lat, last)
    };
    let (sent, (mut lat, last)) = tokio::join!(futures::future::join_all(senders), receive);
    let sent: usize = sent.iter().sum();
    let elapsed = (last - start).as_secs_f64();
    lat.sort_unstable();
    assert_eq!(
        lat.len(),
        sent,
        "every accepted message was delivered to node 1"
    );
    (sent, sent as f64 / elapsed, lat)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement; run with --ignored --nocapture"]
async fn throughput_and_latency_through_three_processes() {
    let cluster = Cluster::start(3).await;
    let api = NodeApi::new(&cluster.nodes[0].base);
    let owner = api.user().await;
    let (_, g) = api
        .call(
            Method::POST,
            "/groups",
            Some(&owner.token),
            Some(json!({"name": "bench", "visibility": "open"})),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_owned();
    let mut tokens = Vec::new();
    for _ in 0..16 {
        let u = api.user().await;
        api.call(
            Method::POST,
            &format!("/groups/{gid}/join"),
            Some(&u.token),
            None,
        )
        .await;
        tokens.push(u.token);
    }
    let (sent, rate, _) = run(&cluster, &gid, &tokens, &owner.token, 10, Duration::ZERO).await;
    println!(
        "saturation: {sent} messages, {rate:.0} msg/s delivered to a member on another process"
    );
    // Half of saturation: pace every sender accordingly.
    let per_sender = rate / 2.0 / tokens.len() as f64;
    let gap = Duration::from_secs_f64(1.0 / per_sender.max(1.0));
    let (sent, rate, lat) = run(&cluster, &gid, &tokens, &owner.token, 10, gap).await;
    println!(
        "half load: {sent} messages, {rate:.0} msg/s; send→deliver p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );
    cluster.cleanup().await;
}
