//! Edits, deletions and read state across processes: changes go through the RabbitMQ partitions
//! with messages and reach sockets on another process in `seq` order; `message:read` crosses
//! processes; unread counts come from the MongoDB engine.

use std::time::Duration;

use crate::common::cluster::{Cluster, NodeApi};
use crate::common::sio::SioClient;
use reqwest::Method;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn edits_deletions_and_read_markers_cross_processes_in_order() {
    let cluster = Cluster::start(2).await;
    let (n1, n2) = (
        NodeApi::new(&cluster.nodes[0].base),
        NodeApi::new(&cluster.nodes[1].base),
    );
    let alice = n1.user().await;
    let bob = n2.user().await;
    let g = n1.group(&alice.token, "entries", "open").await;
    n2.join(&g, &bob.token).await;
    let mut alice_sock = SioClient::connect(&cluster.nodes[0].base, &alice.token)
        .await
        .expect("connect to node 1");
    let mut bob_sock = SioClient::connect(&cluster.nodes[1].base, &bob.token)
        .await
        .expect("connect to node 2");

    n1.send(&g, &alice.token, "first").await;
    n1.send(&g, &alice.token, "second").await;
    let first = bob_sock
        .next_event("message:new", WAIT)
        .await
        .expect("first");
    bob_sock
        .next_event("message:new", WAIT)
        .await
        .expect("second");
    let m = first["id"].as_str().unwrap().to_owned();
    let path = format!("/groups/{g}/messages/{m}");
    let (s, b) = n2
        .call(
            Method::PATCH,
            &path,
            Some(&alice.token),
            Some(json!({"content": "first!"})),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let (s, b) = n1
        .call(Method::DELETE, &path, Some(&alice.token), None)
        .await;
    assert_eq!(s, 202, "{b}");
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let e = bob_sock
            .next_event("message:new", WAIT)
            .await
            .expect("change delivered");
        kinds.push((
            e["seq"].as_u64().unwrap(),
            e["kind"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(kinds, [(3, "edit".to_owned()), (4, "delete".to_owned())]);
    let history = n2.history(&g, &bob.token).await;
    assert_eq!(history.len(), 4);
    assert!(history[0]["content"].is_null() && history[0]["deleted_at"].is_string());
    assert!(
        history[2]["content"].is_null(),
        "the edit's content is erased too"
    );

    // One message left unread for bob (the other was deleted); reading it crosses to node 1.
    let mine = |node: NodeApi, token: String| async move {
        let (s, b) = node
            .call(Method::GET, "/groups/mine", Some(&token), None)
            .await;
        assert_eq!(s, 200, "{b}");
        b["items"][0].clone()
    };
    let item = mine(NodeApi::new(&cluster.nodes[0].base), bob.token.clone()).await;
    assert_eq!(item["unread_count"], 1, "{item}");
    let (s, b) = n2
        .call(
            Method::PUT,
            &format!("/groups/{g}/read"),
            Some(&bob.token),
            Some(json!({"seq": 4})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let e = alice_sock
        .next_event("message:read", WAIT)
        .await
        .expect("message:read on node 1");
    assert_eq!(e, json!({"group_id": g, "user_id": bob.id, "seq": 4}));
    let item = mine(NodeApi::new(&cluster.nodes[0].base), bob.token.clone()).await;
    assert_eq!(
        (
            item["last_read_seq"].as_u64(),
            item["unread_count"].as_u64()
        ),
        (Some(4), Some(0))
    );
    cluster.cleanup().await;
}
