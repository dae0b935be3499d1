//! Three cluster processes against the same Redis, RabbitMQ and MongoDB: users, groups, rooms and
//! messages are shared; order holds across processes; a ban on one process acts on a socket held
//! by another, and on what another process remembered about who may send.

use std::time::Duration;

use crate::common::cluster::{Cluster, NodeApi};
use crate::common::sio::SioClient;
use reqwest::Method;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn messages_through_any_process_reach_members_on_another_in_order() {
    let cluster = Cluster::start(3).await;
    let (n1, n2, n3) = (
        NodeApi::new(&cluster.nodes[0].base),
        NodeApi::new(&cluster.nodes[1].base),
        NodeApi::new(&cluster.nodes[2].base),
    );
    let alice = n1.user().await;
    let bob = n2.user().await;
    let carol = n3.user().await;
    let gid = n1.group(&alice.token, "cluster", "open").await;
    for (node, u) in [(&n2, &bob), (&n3, &carol)] {
        node.join(&gid, &u.token).await;
    }
    let mut watcher = SioClient::connect(&cluster.nodes[0].base, &alice.token)
        .await
        .expect("connect to node 1");
    let bob_sock = SioClient::connect(&cluster.nodes[1].base, &bob.token)
        .await
        .expect("connect to node 2");

    const EACH: usize = 20;
    let via_socket = async {
        for i in 0..EACH {
            let ack = bob_sock
                .emit_with_ack(
                    "message:send",
                    json!({"group_id": gid, "content": format!("socket {i}")}),
                )
                .await;
            assert_eq!(ack["ok"], true, "{ack}");
        }
    };
    let via_http = async {
        for i in 0..EACH {
            let (s, b) = n3
                .call(
                    Method::POST,
                    &format!("/groups/{gid}/messages"),
                    Some(&carol.token),
                    Some(json!({"content": format!("http {i}")})),
                )
                .await;
            assert_eq!(s, 202, "{b}");
        }
    };
    tokio::join!(via_socket, via_http);

    let mut seqs = Vec::new();
    while seqs.len() < 2 * EACH {
        let m = watcher
            .next_event("message:new", WAIT)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "only {} of {} messages reached node 1",
                    seqs.len(),
                    2 * EACH
                )
            });
        seqs.push(m["seq"].as_u64().unwrap());
    }
    assert_eq!(
        seqs,
        (1..=(2 * EACH) as u64).collect::<Vec<_>>(),
        "node 1 saw every message once, in seq order"
    );
    let history = n1.history(&gid, &alice.token).await;
    assert_eq!(history.len(), 2 * EACH);
    for (i, m) in history.iter().enumerate() {
        assert_eq!(m["seq"], (i + 1) as u64);
    }
    cluster.cleanup().await;
}

#[tokio::test]
async fn a_ban_on_one_process_removes_the_socket_held_by_another() {
    let cluster = Cluster::start(3).await;
    let (n1, n2, n3) = (
        NodeApi::new(&cluster.nodes[0].base),
        NodeApi::new(&cluster.nodes[1].base),
        NodeApi::new(&cluster.nodes[2].base),
    );
    let owner = n3.user().await;
    let dave = n1.user().await;
    let (_, g) = n3
        .call(
            Method::POST,
            "/groups",
            Some(&owner.token),
            Some(json!({"name": "private", "visibility": "private"})),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_owned();
    let (s, _) = n1
        .call(
            Method::POST,
            &format!("/groups/{gid}/join"),
            Some(&dave.token),
            None,
        )
        .await;
    assert_eq!(s, 202);
    let mut dave_sock = SioClient::connect(&cluster.nodes[0].base, &dave.token)
        .await
        .expect("connect");
    let (s, _) = n2
        .call(
            Method::POST,
            &format!("/groups/{gid}/join-requests/{}/approve", dave.id),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(s, 200);
    // Approved on node 2: dave's socket on node 1 is now in the room.
    let (s, _) = n3
        .call(
            Method::POST,
            &format!("/groups/{gid}/messages"),
            Some(&owner.token),
            Some(json!({"content": "welcome"})),
        )
        .await;
    assert_eq!(s, 202);
    let m = dave_sock
        .next_event("message:new", WAIT)
        .await
        .expect("dave receives on node 1 after approval on node 2");
    assert_eq!(m["content"], "welcome");
    // Dave answers through node 1, which now remembers that he may send there.
    let ack = dave_sock
        .emit_with_ack(
            "message:send",
            json!({"group_id": gid, "content": "thanks"}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let own = dave_sock
        .next_event("message:new", WAIT)
        .await
        .expect("dave's own message comes back");
    assert_eq!(own["content"], "thanks");

    let (s, b) = n3
        .call(
            Method::POST,
            &format!("/groups/{gid}/bans"),
            Some(&owner.token),
            Some(json!({"user_id": dave.id})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let removed = dave_sock
        .next_event("group:removed", WAIT)
        .await
        .expect("group:removed on node 1");
    assert_eq!(removed["reason"], "banned");
    // Node 1 forgot him with the same frame: his next message there is refused, not queued.
    let (s, b) = n1
        .call(
            Method::POST,
            &format!("/groups/{gid}/messages"),
            Some(&dave.token),
            Some(json!({"content": "still here?"})),
        )
        .await;
    assert_eq!((s, b["code"].as_str()), (403, Some("banned")), "{b}");
    for i in 0..10 {
        let (s, _) = n2
            .call(
                Method::POST,
                &format!("/groups/{gid}/messages"),
                Some(&owner.token),
                Some(json!({"content": format!("after ban {i}")})),
            )
            .await;
        assert_eq!(s, 202);
    }
    // The owner's own socket sees them, so they were delivered; dave's saw none.
    let mut owner_sock = SioClient::connect(&cluster.nodes[0].base, &owner.token)
        .await
        .expect("connect");
    let (s, _) = n2
        .call(
            Method::POST,
            &format!("/groups/{gid}/messages"),
            Some(&owner.token),
            Some(json!({"content": "last"})),
        )
        .await;
    assert_eq!(s, 202);
    // In cluster mode 202 means queued: earlier messages may still be on their way, so read up
    // to the last one.
    loop {
        let m = owner_sock
            .next_event("message:new", WAIT)
            .await
            .expect("the owner receives on node 1");
        if m["content"] == "last" {
            break;
        }
    }
    dave_sock
        .expect_no_event("message:new", Duration::from_millis(500))
        .await;
    let ack = dave_sock
        .emit_with_ack(
            "message:send",
            json!({"group_id": gid, "content": "let me in"}),
        )
        .await;
    assert_eq!(ack["error"]["code"], "banned", "{ack}");
    cluster.cleanup().await;
}

#[tokio::test]
async fn concurrent_retries_of_one_client_msg_id_on_every_process_get_one_id_and_one_message() {
    let cluster = Cluster::start(3).await;
    let apis = cluster.apis();
    let u = apis[0].user().await;
    let (_, g) = apis[0]
        .call(
            Method::POST,
            "/groups",
            Some(&u.token),
            Some(json!({"name": "retries", "visibility": "private"})),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_owned();
    let sends = (0..12).map(|i| {
        let (api, token, gid) = (apis[i % 3].clone(), u.token.clone(), gid.clone());
        async move {
            let body = json!({"content": "once", "client_msg_id": "retry-me"});
            let (s, b) = api
                .call(
                    Method::POST,
                    &format!("/groups/{gid}/messages"),
                    Some(&token),
                    Some(body),
                )
                .await;
            assert_eq!(s, 202, "{b}");
            b["id"].as_str().unwrap().to_owned()
        }
    });
    let ids = futures::future::join_all(sends).await;
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "every retry got the same id: {ids:?}"
    );
    let mut history = Vec::new();
    for _ in 0..50 {
        history = apis[1].history(&gid, &u.token).await;
        if !history.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let history = if history.is_empty() {
        history
    } else {
        apis[1].history(&gid, &u.token).await
    };
    assert_eq!(history.len(), 1, "stored once");
    assert_eq!(history[0]["id"], ids[0].as_str());
    cluster.cleanup().await;
}
