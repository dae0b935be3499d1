//! Bans and removals across processes while a process has lost Redis, and sends racing a ban.
//!
//! What a user must see: a ban answered 201 has already cut the banned user off on every
//! process; while a process cannot carry a ban to the others it answers 503 `unavailable`
//! instead, and repeating the ban is safe. A send made after a ban's 201, on any process, is
//! never stored nor delivered, whatever that process still remembers about its sender.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::common::cluster::{Cluster, ClusterUser, NodeApi, Options};
use crate::common::proxy::FaultProxy;
use crate::common::sio::SioClient;

const WAIT: Duration = Duration::from_secs(30);

/// Owner and dave in an open group; dave's socket on node 1 receives it.
struct Scene {
    apis: Vec<NodeApi>,
    owner: ClusterUser,
    dave: ClusterUser,
    gid: String,
    dave_sock: SioClient,
}

impl Scene {
    async fn set_up(cluster: &Cluster) -> Scene {
        let apis = cluster.apis();
        let (owner, dave) = (apis[0].user().await, apis[0].user().await);
        let gid = apis[0].group(&owner.token, "bans", "open").await;
        apis[0].join(&gid, &dave.token).await;
        let mut dave_sock = SioClient::connect(&cluster.nodes[0].base, &dave.token)
            .await
            .expect("connect");
        apis[1].send(&gid, &owner.token, "before").await;
        let m = dave_sock
            .next_event("message:new", WAIT)
            .await
            .expect("dave receives on node 1");
        assert_eq!(m["content"], "before");
        Scene {
            apis,
            owner,
            dave,
            gid,
            dave_sock,
        }
    }

    /// The owner bans dave through node `via`: the status and body.
    async fn ban(&self, via: usize) -> (u16, serde_json::Value) {
        self.apis[via]
            .call(
                Method::POST,
                &format!("/groups/{}/bans", self.gid),
                Some(&self.owner.token),
                Some(json!({"user_id": self.dave.id})),
            )
            .await
    }

    async fn banned_ids(&self) -> Vec<String> {
        let (s, b) = self.apis[0]
            .call(
                Method::GET,
                &format!("/groups/{}/bans", self.gid),
                Some(&self.owner.token),
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["user_id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Dave's socket on node 1 is told of his ban.
    async fn dave_is_told(&mut self) {
        let removed = self
            .dave_sock
            .next_event("group:removed", WAIT)
            .await
            .expect("group:removed reaches dave's socket on node 1");
        assert_eq!(removed["group_id"], self.gid.as_str());
        assert_eq!(removed["reason"], "banned");
    }

    /// Dave's socket on node 1 is told, and gets none of the messages sent after through either
    /// node, which the owner's socket on node 1 receives.
    async fn dave_is_cut_off(mut self, cluster: &Cluster) {
        self.dave_is_told().await;
        self.receives_nothing_more(cluster).await;
    }

    async fn receives_nothing_more(mut self, cluster: &Cluster) {
        let mut owner_sock = SioClient::connect(&cluster.nodes[0].base, &self.owner.token)
            .await
            .expect("connect");
        for via in [1, 0] {
            let text = format!("after, through node {}", via + 1);
            let until = Instant::now() + WAIT;
            'delivered: loop {
                assert!(Instant::now() < until, "{text} is not delivered on node 1");
                self.apis[via]
                    .send(&self.gid, &self.owner.token, &text)
                    .await;
                while let Some(m) = owner_sock
                    .next_event("message:new", Duration::from_secs(1))
                    .await
                {
                    if m["content"] == text.as_str() {
                        break 'delivered;
                    }
                }
            }
        }
        self.dave_sock
            .expect_no_event("message:new", Duration::from_millis(500))
            .await;
    }
}

/// Node `i`'s Redis through `proxy`, the others' direct.
fn redis_through(i: usize, proxy: &FaultProxy) -> Vec<(usize, &'static str, String)> {
    vec![(i, "CONCLAVE_REDIS_URL", format!("redis://{}", proxy.addr()))]
}

/// Waits (bounded) until node `i` has logged that its Redis fan-out is unreachable.
async fn wait_fanout_down(cluster: &Cluster, i: usize) {
    let until = Instant::now() + WAIT;
    while !cluster.log(i).contains("Redis fan-out unreachable") {
        assert!(
            Instant::now() < until,
            "node {} never noticed its Redis is gone:\n{}",
            i + 1,
            cluster.log(i)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Node 2 alone has lost Redis. A ban through it cannot reach dave's socket on node 1, so it is
/// refused with nothing changed, and dave still receives the group meanwhile (he was not
/// banned). The same ban through node 1 then acts at once on every process, although node 2 has
/// still no Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ban_through_a_process_without_redis_is_refused_there_and_acts_through_another() {
    let node2_redis = FaultProxy::start("127.0.0.1:6379").await;
    let options = Options {
        node_env: redis_through(1, &node2_redis),
        ..Options::default()
    };
    let cluster = Cluster::start_with(2, options).await;
    let mut scene = Scene::set_up(&cluster).await;
    node2_redis.down();
    wait_fanout_down(&cluster, 1).await;

    let (s, b) = scene.ban(1).await;
    assert_eq!((s, b["code"].as_str()), (503, Some("unavailable")), "{b}");
    assert!(
        !scene.banned_ids().await.contains(&scene.dave.id),
        "a refused ban changed nothing"
    );

    let (s, b) = scene.ban(0).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(scene.banned_ids().await, vec![scene.dave.id.clone()]);
    // At once, while node 2 is still cut off.
    scene.dave_is_told().await;
    node2_redis.up();
    scene.receives_nothing_more(&cluster).await;
    cluster.cleanup().await;
}

/// Redis is gone for every process: no ban can be carried, so every attempt answers 503 and
/// changes nothing. Once Redis is back, the repeated ban answers 201 and dave is cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ban_while_redis_is_down_is_refused_until_it_can_act() {
    let redis = FaultProxy::start("127.0.0.1:6379").await;
    let options = Options {
        redis_url: Some(format!("redis://{}", redis.addr())),
        ..Options::default()
    };
    let cluster = Cluster::start_with(2, options).await;
    let scene = Scene::set_up(&cluster).await;
    redis.down();
    wait_fanout_down(&cluster, 0).await;
    wait_fanout_down(&cluster, 1).await;
    for via in [0, 1] {
        let (s, b) = scene.ban(via).await;
        assert_eq!((s, b["code"].as_str()), (503, Some("unavailable")), "{b}");
    }
    assert!(scene.banned_ids().await.is_empty());

    redis.up();
    let until = Instant::now() + WAIT;
    loop {
        let (s, b) = scene.ban(1).await;
        if s == 201 {
            break;
        }
        assert_eq!(s, 503, "only unavailable until Redis is back: {b}");
        assert!(
            Instant::now() < until,
            "the ban never succeeds once Redis is back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    scene.dave_is_cut_off(&cluster).await;
    cluster.cleanup().await;
}

/// Node 1 remembers dave as a sender (`CONCLAVE_SENDER_CACHE_TTL`) and, its Redis suddenly
/// silent, does not hear of the ban the owner makes through node 2. Dave's sends through node 1
/// right after the ban's 201 pass its remembered check and are queued, but the message is
/// checked again where it is stored: nothing dave sent after the ban is stored or delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sends_accepted_after_a_ban_by_a_process_that_has_not_heard_of_it_are_never_stored() {
    let node1_redis = FaultProxy::start("127.0.0.1:6379").await;
    let options = Options {
        env: vec![
            ("CONCLAVE_SENDER_CACHE_TTL", "300s".into()),
            ("CONCLAVE_MESSAGES_PER_USER", "1000".into()),
        ],
        node_env: redis_through(0, &node1_redis),
        ..Options::default()
    };
    let cluster = Cluster::start_with(2, options).await;
    let scene = Scene::set_up(&cluster).await;
    // Node 1 remembers dave as a sender.
    scene.apis[0]
        .send(&scene.gid, &scene.dave.token, "warm")
        .await;

    // Node 1's Redis goes silent (held, not refused): the ban's event never reaches it.
    node1_redis.delay(Duration::from_secs(120));
    let (s, b) = scene.ban(1).await;
    assert_eq!(s, 201, "{b}");
    let node1 = NodeApi::new(&cluster.nodes[0].base);
    let burst = (0..20).map(|j| {
        let (api, gid, token) = (&node1, &scene.gid, &scene.dave.token);
        async move {
            api.try_call(
                Method::POST,
                &format!("/groups/{gid}/messages"),
                Some(token),
                Some(json!({"content": format!("after-{j}"), "client_msg_id": format!("a{j}")})),
            )
            .await
            .map(|(s, _)| s)
        }
    });
    let statuses = futures::future::join_all(burst).await;
    for s in statuses.into_iter().flatten() {
        // 202 from a process that has not heard of the ban (queued, not yet stored); never 500.
        assert!(
            [202, 403, 503].contains(&s),
            "unexpected status for a send after the ban: {s}"
        );
    }

    // Whatever was queued has been stored or discarded once a later message is stored: the
    // owner's, through node 2 (the group's partition is shared by both processes' queues).
    scene.apis[1]
        .send(&scene.gid, &scene.owner.token, "last")
        .await;
    let until = Instant::now() + WAIT;
    let history = loop {
        let h = scene.apis[1].history(&scene.gid, &scene.owner.token).await;
        if h.iter().any(|m| m["content"] == "last") {
            break h;
        }
        assert!(
            Instant::now() < until,
            "the owner's last message is never stored"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let leaked: Vec<_> = history
        .iter()
        .filter(|m| {
            m["content"]
                .as_str()
                .is_some_and(|c| c.starts_with("after-"))
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "messages dave sent after his ban were stored: {leaked:?}"
    );
    node1_redis.delay(Duration::ZERO);
    cluster.cleanup().await;
}

/// A leave is a loss of access like a ban: answered by a process that cannot reach the others,
/// it is refused with nothing changed (the leaver's sockets elsewhere would go on receiving the
/// group); through the other process it acts at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leave_through_a_process_without_redis_is_refused_there_and_acts_through_another() {
    let node2_redis = FaultProxy::start("127.0.0.1:6379").await;
    let options = Options {
        node_env: redis_through(1, &node2_redis),
        ..Options::default()
    };
    let cluster = Cluster::start_with(2, options).await;
    let scene = Scene::set_up(&cluster).await;
    node2_redis.down();
    wait_fanout_down(&cluster, 1).await;
    let leave = |via: usize| {
        let api = &scene.apis[via];
        let (gid, token) = (scene.gid.clone(), scene.dave.token.clone());
        async move {
            api.call(
                Method::POST,
                &format!("/groups/{gid}/leave"),
                Some(&token),
                None,
            )
            .await
        }
    };
    let (s, b) = leave(1).await;
    assert_eq!((s, b["code"].as_str()), (503, Some("unavailable")), "{b}");
    let (s, b) = leave(0).await;
    assert_eq!(s, 204, "{b}");
    // Dave's socket on node 1 left the room: nothing sent after reaches it, while the owner's
    // socket there gets it (checked once node 2 has Redis again, since a process without it
    // cannot publish what its partitions store).
    node2_redis.up();
    scene.receives_nothing_more(&cluster).await;
    cluster.cleanup().await;
}
