//! The cluster's processes share the partitions' store work out among themselves: RabbitMQ alone
//! would make the first process started the writer of every partition (`pipeline::balance`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::cluster::Cluster;
use conclave::domain::GroupId;
use conclave::pipeline::partition_of;

/// `CONCLAVE_PARTITIONS` of the cluster harness.
const PARTITIONS: u32 = 4;

const PERSISTED: &str = "conclave_messages_persisted_total";

/// Waits until the cluster has stored `total` messages in all; returns what each node stored.
async fn stored_by_each(cluster: &Cluster, total: f64) -> Vec<f64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = cluster.metric_on_each(PERSISTED).await;
        if now.iter().sum::<f64>() >= total {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "only {now:?} of {total} messages stored; logs:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_process_writes_some_partitions_and_each_group_keeps_its_order() {
    let cluster = Cluster::start(3).await;
    let api = cluster.apis();
    let owner = api[0].user().await;

    // One group in every partition.
    let mut groups = Vec::new();
    let mut covered = HashSet::new();
    while covered.len() < PARTITIONS as usize {
        let gid = api[0].group(&owner.token, "spread", "open").await;
        let p = partition_of(&gid.parse::<GroupId>().unwrap(), PARTITIONS);
        if covered.insert(p) {
            groups.push(gid);
        }
    }

    let mut sent: Vec<Vec<String>> = vec![Vec::new(); groups.len()];
    let mut total = 0.0;
    // A round: every group gets EACH messages, one after another (each accepted before the next
    // is sent), the groups side by side, through all three processes.
    const EACH: usize = 5;
    let send_round = |round: usize| {
        let (api, groups, token) = (&api, &groups, &owner.token);
        futures::future::join_all(groups.iter().enumerate().map(move |(g, gid)| async move {
            let mut contents = Vec::new();
            for k in 0..EACH {
                let content = format!("round {round} group {g} message {k}");
                api[(round + g + k) % 3].send(gid, token, &content).await;
                contents.push(content);
            }
            contents
        }))
    };

    // Rounds until the partitions have settled with their owners: 4 partitions over 3
    // processes, so each round one process stores two partitions' messages and the others one
    // each, three rounds in a row. Without the balancing the first process started would store
    // every message, round after round; with owners the processes disagreed on, partitions
    // would keep moving.
    let settled = vec![EACH as f64, EACH as f64, 2.0 * EACH as f64];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut before = cluster.metric_on_each(PERSISTED).await;
    let (mut round, mut stable) = (0, 0);
    while stable < 3 {
        for (g, c) in send_round(round).await.into_iter().enumerate() {
            sent[g].extend(c);
        }
        round += 1;
        total += (groups.len() * EACH) as f64;
        let after = stored_by_each(&cluster, total).await;
        let mut this_round: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        before = after;
        this_round.sort_by(f64::total_cmp);
        stable = if this_round == settled { stable + 1 } else { 0 };
        assert!(
            Instant::now() < deadline,
            "after {round} rounds the partitions have not settled: {this_round:?} stored per process this round; logs:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        cluster
            .metric_on_each("conclave_pipeline_partition_handoffs_total")
            .await
            .iter()
            .sum::<f64>()
            >= 1.0,
        "partitions moved from the first process"
    );

    // Nothing lost, nothing doubled, and every group's messages stored in the order they were
    // accepted, although their partitions changed hands while they flowed.
    for (g, gid) in groups.iter().enumerate() {
        let history: Vec<String> = api[1]
            .history(gid, &owner.token)
            .await
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(history, sent[g], "group {g}");
    }
    cluster.cleanup().await;
}
