//! Abuse limits on groups: one account cannot flood owners with join requests or the store with
//! groups (`CONCLAVE_GROUP_ACTIONS_PER_USER`), nor belong to unboundedly many groups
//! (`CONCLAVE_MAX_GROUPS_PER_USER`). A refusal changes nothing and shows in the metrics.
//! In cluster mode every limit is one budget for the whole cluster, whichever process is asked.
//! (Logins, sends, socket events, bodies and frames have their tests beside their features.)

use crate::common;

use crate::common::cluster::{Cluster, NodeApi, Options};
use crate::common::sio::SioClient;
use crate::common::{Reply, TestApp, TestUser};
use reqwest::Method;
use serde_json::{Value, json};

async fn post(app: &TestApp, user: &TestUser, path: &str, body: Value) -> Reply {
    app.call_full(Method::POST, path, Some(&user.token), Some(body))
        .await
}

async fn get(app: &TestApp, user: &TestUser, path: &str) -> Reply {
    app.call_full(Method::GET, path, Some(&user.token), None)
        .await
}

async fn create(app: &TestApp, user: &TestUser, visibility: &str) -> Reply {
    post(
        app,
        user,
        "/groups",
        json!({"name": common::unique("lim"), "visibility": visibility}),
    )
    .await
}

async fn join(app: &TestApp, user: &TestUser, g: &str) -> Reply {
    post(app, user, &format!("/groups/{g}/join"), json!({})).await
}

async fn pending_ids(app: &TestApp, owner: &TestUser, g: &str) -> Vec<String> {
    let r = get(app, owner, &format!("/groups/{g}/join-requests")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["user_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn my_group_count(app: &TestApp, user: &TestUser) -> usize {
    let r = get(app, user, "/groups/mine").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["items"].as_array().unwrap().len()
}

/// The value of `conclave_rate_limited_total{limit="<limit>"}`, 0 when absent.
async fn refused(app: &TestApp, limit: &str) -> f64 {
    let text = common::metrics_text(&app.url("/metrics")).await;
    common::metric_value(
        &text,
        &format!("conclave_rate_limited_total{{limit=\"{limit}\"}}"),
    )
}

#[tokio::test]
async fn join_requests_and_group_creation_share_a_per_user_budget() {
    let app = TestApp::spawn_with(&[
        ("CONCLAVE_GROUP_ACTIONS_PER_USER", "3"),
        ("CONCLAVE_GROUP_ACTIONS_WINDOW", "1h"),
    ])
    .await;
    let (spammer, bob, carol) = (app.user().await, app.user().await, app.user().await);
    let bobs = create(&app, &bob, "private").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let carols = create(&app, &carol, "private").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();

    assert_eq!(create(&app, &spammer, "open").await.status, 201);
    assert_eq!(create(&app, &spammer, "open").await.status, 201);
    assert_eq!(join(&app, &spammer, &bobs).await.status, 202);

    // The budget is spent: more requests and more groups are refused, with a time to retry.
    let r = join(&app, &spammer, &carols).await;
    r.assert_problem(429, "rate_limited");
    let wait: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(wait >= 1, "{wait}");
    create(&app, &spammer, "open")
        .await
        .assert_problem(429, "rate_limited");

    // A refused request reached no owner and created nothing.
    assert!(pending_ids(&app, &carol, &carols).await.is_empty());
    assert_eq!(
        pending_ids(&app, &bob, &bobs).await,
        std::slice::from_ref(&spammer.id)
    );
    assert_eq!(my_group_count(&app, &spammer).await, 2);
    assert!(refused(&app, "group_actions").await >= 2.0);

    // Other users keep their own budget, and the owner can still act on the request.
    assert_eq!(join(&app, &carol, &bobs).await.status, 202);
    let approve = format!("/groups/{bobs}/join-requests/{}/approve", spammer.id);
    assert_eq!(post(&app, &bob, &approve, json!({})).await.status, 200);
}

#[tokio::test]
async fn a_user_belongs_to_at_most_the_configured_number_of_groups() {
    let app = TestApp::spawn_with(&[("CONCLAVE_MAX_GROUPS_PER_USER", "2")]).await;
    let (alice, bob, olga, dave) = (
        app.user().await,
        app.user().await,
        app.user().await,
        app.user().await,
    );
    let id = |r: Reply| r.body["id"].as_str().unwrap().to_owned();
    let open = id(create(&app, &olga, "open").await);
    let private = id(create(&app, &dave, "private").await);

    // alice: her own group plus one she joins makes two.
    assert_eq!(create(&app, &alice, "open").await.status, 201);
    assert_eq!(join(&app, &alice, &open).await.status, 200);

    let full = |r: Reply| r.assert_problem(409, "too_many_groups");
    full(create(&app, &alice, "open").await);
    full(join(&app, &alice, &private).await);
    assert!(
        pending_ids(&app, &dave, &private).await.is_empty(),
        "a refused join left a request behind"
    );
    // Being a member already is still reported as such, not as the limit.
    join(&app, &alice, &open)
        .await
        .assert_problem(409, "already_member");
    assert_eq!(my_group_count(&app, &alice).await, 2);

    // bob asks while he has room; by approval time he has none, and the request keeps waiting.
    assert_eq!(join(&app, &bob, &private).await.status, 202);
    assert_eq!(create(&app, &bob, "open").await.status, 201);
    assert_eq!(join(&app, &bob, &open).await.status, 200);
    let approve = format!("/groups/{private}/join-requests/{}/approve", bob.id);
    full(post(&app, &dave, &approve, json!({})).await);
    assert_eq!(
        pending_ids(&app, &dave, &private).await,
        std::slice::from_ref(&bob.id)
    );
    // Leaving a group makes room again.
    let leave = format!("/groups/{open}/leave");
    assert_eq!(post(&app, &bob, &leave, json!({})).await.status, 204);
    assert_eq!(post(&app, &dave, &approve, json!({})).await.status, 200);
    assert_eq!(my_group_count(&app, &bob).await, 2);
    assert!(refused(&app, "groups_per_user").await >= 3.0);
}

/// A busy group cannot demand deliveries without bound: all its senders together share one
/// message budget (`CONCLAVE_MESSAGES_PER_GROUP`), while other groups keep theirs.
#[tokio::test]
async fn a_group_has_one_message_budget_whoever_sends() {
    let app = TestApp::spawn_with(&[
        ("CONCLAVE_MESSAGES_PER_GROUP", "3"),
        ("CONCLAVE_MESSAGES_WINDOW", "1h"),
    ])
    .await;
    let (alice, bob) = (app.user().await, app.user().await);
    let busy = app.group(&alice, "open").await;
    let quiet = app.group(&alice, "open").await;
    app.add_member(&busy, &alice, &bob).await;
    app.send(&busy, &alice, "1").await;
    app.send(&busy, &bob, "2").await;
    app.send(&busy, &alice, "3").await;
    let path = format!("/groups/{busy}/messages");
    let r = post(&app, &bob, &path, json!({"content": "4"})).await;
    r.assert_problem(429, "rate_limited");
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    assert!(refused(&app, "group_messages").await >= 1.0);
    // Another group has its own budget, and bob's own budget was not the limit.
    app.send(&quiet, &alice, "elsewhere").await;
}

/// A client cannot multiply its budget by spreading requests over the processes behind the
/// ingress: logins, sends and group actions count in Redis, once for the whole cluster.
#[tokio::test]
async fn abuse_limits_are_one_budget_across_processes() {
    let budget = [
        "CONCLAVE_LOGIN_MAX_PER_ACCOUNT",
        "CONCLAVE_MESSAGES_PER_USER",
        "CONCLAVE_GROUP_ACTIONS_PER_USER",
    ];
    let cluster = Cluster::start_with(
        2,
        Options {
            env: budget
                .iter()
                .map(|k| (*k, "4".to_owned()))
                .chain([
                    ("CONCLAVE_LOGIN_WINDOW", "1h".to_owned()),
                    ("CONCLAVE_MESSAGES_WINDOW", "1h".to_owned()),
                    ("CONCLAVE_GROUP_ACTIONS_WINDOW", "1h".to_owned()),
                ])
                .collect(),
            ..Options::default()
        },
    )
    .await;
    let apis: Vec<NodeApi> = cluster
        .nodes
        .iter()
        .map(|n| NodeApi::new(&n.base))
        .collect();
    // Four of each go through, alternating between the two processes; the fifth is refused.
    let four_then_429 = |what: &str, results: Vec<(u16, serde_json::Value)>, ok: u16| {
        for (i, (s, b)) in results.iter().enumerate() {
            let want = if i < 4 { ok } else { 429 };
            assert_eq!(*s, want, "{what} #{}: {b}", i + 1);
        }
        assert_eq!(results[4].1["code"], "rate_limited", "{what}");
    };

    let name = common::unique("lim");
    let (s, _) = apis[0]
        .call(
            Method::POST,
            "/auth/register",
            None,
            Some(json!({"username": name, "password": "right-password"})),
        )
        .await;
    assert_eq!(s, 201);
    let mut logins = Vec::new();
    for i in 0..5 {
        let wrong = json!({"username": name, "password": "wrong-password"});
        logins.push(
            apis[i % 2]
                .call(Method::POST, "/auth/login", None, Some(wrong))
                .await,
        );
    }
    four_then_429("failed login", logins, 401);

    let u = apis[0].user().await;
    let mut creates = Vec::new();
    for i in 0..5 {
        let body = json!({"name": format!("g{i}"), "visibility": "open"});
        creates.push(
            apis[i % 2]
                .call(Method::POST, "/groups", Some(&u.token), Some(body))
                .await,
        );
    }
    let gid = creates[0].1["id"].as_str().unwrap().to_owned();
    four_then_429("group create", creates, 201);

    let mut sends = Vec::new();
    for i in 0..5 {
        let body = json!({"content": format!("m{i}")});
        let path = format!("/groups/{gid}/messages");
        sends.push(
            apis[i % 2]
                .call(Method::POST, &path, Some(&u.token), Some(body))
                .await,
        );
    }
    four_then_429("send", sends, 202);
    cluster.cleanup().await;
}

/// History pages and socket syncs draw on one per-user budget (`CONCLAVE_HISTORY_PER_USER`):
/// past it both answer `rate_limited` with a time to retry, and other users read on.
#[tokio::test]
async fn history_reads_and_syncs_share_a_per_user_budget() {
    let app = TestApp::spawn_with(&[
        ("CONCLAVE_HISTORY_PER_USER", "3"),
        ("CONCLAVE_HISTORY_WINDOW", "1h"),
    ])
    .await;
    let (alice, bob) = (app.user().await, app.user().await);
    let (ga, gb) = (
        app.group(&alice, "open").await,
        app.group(&bob, "open").await,
    );
    let history = |g: &str| format!("/groups/{g}/messages");
    let sock = SioClient::connect(&app.base, &alice.token).await.unwrap();
    let sync = json!({"group_id": ga, "after_seq": 0});

    assert_eq!(get(&app, &alice, &history(&ga)).await.status, 200);
    assert_eq!(get(&app, &alice, &history(&ga)).await.status, 200);
    let ack = sock.emit_with_ack("group:sync", sync.clone()).await;
    assert_eq!(ack["ok"], true, "{ack}");

    let r = get(&app, &alice, &history(&ga)).await;
    r.assert_problem(429, "rate_limited");
    assert!(r.header("retry-after").is_some());
    let ack = sock.emit_with_ack("group:sync", sync).await;
    assert_eq!(ack["error"]["code"], "rate_limited", "{ack}");
    assert!(refused(&app, "history").await >= 2.0);

    assert_eq!(get(&app, &bob, &history(&gb)).await.status, 200);
}
