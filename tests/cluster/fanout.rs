//! The cluster's fan-out: a group's traffic reaches only the processes holding a socket of one
//! of its members, and a process starts receiving it the moment such a socket appears there
//! (a member connecting, or a connected user joining).

use crate::common;

use std::time::Duration;

use crate::common::cluster::{Cluster, NodeApi};
use crate::common::sio::SioClient;

const WAIT: Duration = Duration::from_secs(10);

/// Group frames a node has read from Redis so far.
async fn group_frames(node: &NodeApi) -> f64 {
    let text = common::metrics_text(&format!("{}/metrics", node.base)).await;
    common::metric_value(
        &text,
        "conclave_fanout_frames_received_total{channel=\"group\"}",
    )
}

#[tokio::test]
async fn a_process_receives_a_groups_traffic_only_while_it_holds_a_members_socket() {
    let cluster = Cluster::start(2).await;
    let (n1, n2) = (
        NodeApi::new(&cluster.nodes[0].base),
        NodeApi::new(&cluster.nodes[1].base),
    );
    let alice = n1.user().await;
    let bob = n1.user().await;
    let carol = n2.user().await;
    let gid = n1.group(&alice.token, "fan-out", "open").await;
    n1.join(&gid, &bob.token).await;

    // Alice's socket is on node 1; node 2 holds only Carol's, who is not a member yet.
    let mut alice_sock = SioClient::connect(&n1.base, &alice.token).await.unwrap();
    let mut carol_sock = SioClient::connect(&n2.base, &carol.token).await.unwrap();
    let before = group_frames(&n2).await;

    // Sent through node 2, delivered on node 1 only.
    for i in 0..3 {
        n2.send(&gid, &bob.token, &format!("early {i}")).await;
    }
    for seq in 1..=3u64 {
        let m = alice_sock
            .next_event("message:new", WAIT)
            .await
            .unwrap_or_else(|| panic!("message {seq} did not reach node 1\n{}", cluster.logs()));
        assert_eq!(m["seq"], seq);
    }
    assert_eq!(
        group_frames(&n2).await,
        before,
        "node 2 holds no member's socket, so it read none of the group's traffic"
    );
    assert!(
        group_frames(&n1).await >= 3.0,
        "node 1 read the group's messages"
    );

    // Carol joins through node 1; her socket on node 2 enters the room at once.
    n1.join(&gid, &carol.token).await;
    let joined = carol_sock
        .next_event("group:member_joined", WAIT)
        .await
        .unwrap_or_else(|| panic!("Carol's socket did not see her join\n{}", cluster.logs()));
    assert_eq!(joined["user_id"], carol.id.as_str());

    n1.send(&gid, &bob.token, "after the join").await;
    for sock in [&mut carol_sock, &mut alice_sock] {
        let m = sock
            .next_event("message:new", WAIT)
            .await
            .unwrap_or_else(|| panic!("the message after the join was lost\n{}", cluster.logs()));
        assert_eq!(m["seq"], 4);
        assert_eq!(m["content"], "after the join");
    }
    assert!(
        group_frames(&n2).await > before,
        "node 2 reads the group's traffic now that it holds a member's socket"
    );
    cluster.cleanup().await;
}
