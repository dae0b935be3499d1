//! v1.1 live events across processes, through the Redis fan-out: join requests reach the owner
//! and a moderator whose sockets are held by other processes than the ones that ran the
//! commands, and so do `group:invited` and `group:updated`.

use std::time::Duration;

use crate::common::cluster::{Cluster, ClusterUser, NodeApi};
use crate::common::sio::SioClient;
use reqwest::Method;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

async fn socket(cluster: &Cluster, node: usize, u: &ClusterUser) -> SioClient {
    SioClient::connect(&cluster.nodes[node].base, &u.token)
        .await
        .expect("connect")
}

async fn ask(api: &NodeApi, g: &str, u: &ClusterUser) {
    let (s, b) = api
        .call(
            Method::POST,
            &format!("/groups/{g}/join"),
            Some(&u.token),
            None,
        )
        .await;
    assert_eq!(s, 202, "{b}");
}

#[tokio::test]
async fn requests_invitations_and_settings_reach_sockets_on_other_processes() {
    let cluster = Cluster::start(2).await;
    let (n1, n2) = (
        NodeApi::new(&cluster.nodes[0].base),
        NodeApi::new(&cluster.nodes[1].base),
    );
    let owner = n1.user().await;
    let deputy = n1.user().await;
    // The owner's socket is on node 1 before the group exists; the group is made on node 2.
    let mut o = socket(&cluster, 0, &owner).await;
    let g = n2.group(&owner.token, "managed", "private").await;
    let first = n2.user().await;
    ask(&n2, &g, &first).await;
    let r = o
        .next_event("group:join_requested", WAIT)
        .await
        .expect("the owner on node 1 hears a request made on node 2");
    assert_eq!(r["user_id"], first.id.as_str());

    // The deputy, connected to node 1, is approved and promoted through node 2.
    let mut d = socket(&cluster, 0, &deputy).await;
    ask(&n1, &g, &deputy).await;
    let path = format!("/groups/{g}/join-requests/{}/approve", deputy.id);
    assert_eq!(
        n2.call(Method::POST, &path, Some(&owner.token), None)
            .await
            .0,
        200
    );
    let path = format!("/groups/{g}/members/{}/role", deputy.id);
    let (s, b) = n2
        .call(
            Method::PUT,
            &path,
            Some(&owner.token),
            Some(json!({"role": "moderator"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let second = n2.user().await;
    ask(&n2, &g, &second).await;
    loop {
        let r = d
            .next_event("group:join_requested", WAIT)
            .await
            .expect("the moderator on node 1 hears the next request");
        if r["user_id"] == second.id.as_str() {
            break;
        }
    }
    let (s, _) = n2
        .call(
            Method::DELETE,
            &format!("/groups/{g}/join-request"),
            Some(&second.token),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let w = d
        .next_event("group:join_request_withdrawn", WAIT)
        .await
        .expect("withdrawal on node 1");
    assert_eq!(w, json!({"group_id": g, "user_id": second.id}));

    // An invitation made on node 2 reaches the invitee on node 1; a rename made on node 2
    // reaches the members on node 1.
    let guest = n1.user().await;
    let mut c = socket(&cluster, 0, &guest).await;
    let (s, b) = n2
        .call(
            Method::POST,
            &format!("/groups/{g}/invitations"),
            Some(&deputy.token),
            Some(json!({"user_id": guest.id})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let inv = c
        .next_event("group:invited", WAIT)
        .await
        .expect("group:invited");
    assert_eq!(inv["invited_by"], deputy.id.as_str());
    let (s, b) = n2
        .call(
            Method::PATCH,
            &format!("/groups/{g}"),
            Some(&deputy.token),
            Some(json!({"name": "renamed across"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let u = o
        .next_event("group:updated", WAIT)
        .await
        .expect("group:updated");
    assert_eq!(u["name"], "renamed across");
}
