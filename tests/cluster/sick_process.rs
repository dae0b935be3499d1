//! A process that is alive but cannot work must not keep the partitions it writes: the messages
//! of those groups would wait for it, accepted but not stored, for as long as it is sick.
//!
//! - Cut from MongoDB (its own proxy; the other process keeps its store), it gives its
//!   partitions up and a healthy process stores them; it takes partitions again once its store
//!   answers.
//! - Paused (SIGSTOP), the broker misses its heartbeats (`CONCLAVE_AMQP_HEARTBEAT`) and moves
//!   its partitions to the others.
//!
//! Either way, every message accepted by the healthy process is stored while the sick one is
//! still sick.

use std::time::{Duration, Instant};

use crate::common::cluster::{self, Cluster, ClusterUser, NodeApi, Options};
use crate::common::proxy::FaultProxy;

/// Enough groups that some fall in the partitions node 0 writes (4 partitions, 2 processes).
const GROUPS: usize = 12;
/// A liveness bound, far above what a hand-over takes: the sick process is still sick after it.
const PATIENCE: Duration = Duration::from_secs(30);

struct Scene {
    healthy: NodeApi,
    owner: ClusterUser,
    groups: Vec<String>,
}

impl Scene {
    /// Groups made through node 1, each with one message stored, so every partition has had a
    /// batch and has been handed to its owner.
    async fn set_up(cluster: &Cluster) -> Scene {
        let healthy = NodeApi::new(&cluster.nodes[1].base);
        let owner = healthy.user().await;
        let mut groups = Vec::new();
        for i in 0..GROUPS {
            groups.push(healthy.group(&owner.token, &format!("g{i}"), "open").await);
        }
        let scene = Scene {
            healthy,
            owner,
            groups,
        };
        cluster.wait_for_registry().await;
        // Twice: the first batches may be handed to their owner, the second are its.
        for round in 1..=2 {
            scene.send_to_all("warm-up").await;
            assert_eq!(
                scene.groups_stored(round).await,
                GROUPS,
                "warm-up not stored; {}",
                cluster.logs()
            );
        }
        scene
    }

    async fn send_to_all(&self, content: &str) {
        for g in &self.groups {
            self.healthy.send(g, &self.owner.token, content).await;
        }
    }

    /// How many groups hold `n` messages, waiting (up to [`PATIENCE`]) for all of them.
    async fn groups_stored(&self, n: usize) -> usize {
        let until = Instant::now() + PATIENCE;
        loop {
            let mut done = 0;
            for g in &self.groups {
                if self.healthy.history(g, &self.owner.token).await.len() >= n {
                    done += 1;
                }
            }
            if done == self.groups.len() || Instant::now() >= until {
                return done;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn proxied_mongo(proxy: &FaultProxy) -> String {
    format!(
        "mongodb://{}/?directConnection=true&serverSelectionTimeoutMS=2000&connectTimeoutMS=1000",
        proxy.addr()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_process_cut_from_its_store_gives_its_partitions_to_the_others() {
    let target = cluster::mongo_uri()
        .trim_start_matches("mongodb://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = FaultProxy::start(&target).await;
    let cluster = Cluster::start_with(
        2,
        Options {
            node_env: vec![(0, "CONCLAVE_MONGODB_URI", proxied_mongo(&proxy))],
            ..Options::default()
        },
    )
    .await;
    let scene = Scene::set_up(&cluster).await;

    proxy.down();
    let cut = Instant::now();
    scene.send_to_all("while node 0 cannot store").await;
    let stored = scene.groups_stored(3).await;
    eprintln!(
        "node 0 cut from MongoDB: {stored} of {GROUPS} groups' messages stored within {:?}",
        cut.elapsed()
    );
    assert_eq!(
        stored,
        GROUPS,
        "messages waited for the process cut from MongoDB; {}",
        cluster.logs()
    );
    let stepped_back = cluster
        .metric_on_each("conclave_pipeline_stepped_back")
        .await;
    assert_eq!(stepped_back, vec![1.0, 0.0], "{}", cluster.logs());

    // Back: it takes partitions again, and everything sent since is stored.
    proxy.up();
    let until = Instant::now() + Duration::from_secs(60);
    while cluster
        .metric_on_each("conclave_pipeline_stepped_back")
        .await[0]
        != 0.0
    {
        assert!(Instant::now() < until, "node 0 never came back");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    cluster.wait_all_ready().await;
    scene.send_to_all("after").await;
    assert_eq!(scene.groups_stored(4).await, GROUPS, "{}", cluster.logs());
    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_process_loses_its_partitions_to_the_others() {
    let cluster = Cluster::start(2).await;
    let scene = Scene::set_up(&cluster).await;

    cluster.pause(0);
    let paused = Instant::now();
    scene.send_to_all("while node 0 is paused").await;
    let stored = scene.groups_stored(3).await;
    let took = paused.elapsed();
    cluster.resume(0);
    eprintln!("node 0 paused: {stored} of {GROUPS} groups' messages stored within {took:?}");
    assert_eq!(
        stored,
        GROUPS,
        "messages waited for the paused process; {}",
        cluster.logs()
    );
    cluster.cleanup().await;
}
