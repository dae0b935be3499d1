//! docs/api.md, Read state: `PUT /groups/{id}/read`, `GET /groups/{id}/reads`, the read state in
//! `GET /groups/mine`, and `message:read` on live sockets.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::sio::SioClient;
use crate::common::{Reply, TestApp, TestUser};

const WAIT: Duration = Duration::from_secs(10);

async fn read(app: &TestApp, who: &TestUser, g: &str, seq: Value) -> Reply {
    let path = format!("/groups/{g}/read");
    app.call_full(
        Method::PUT,
        &path,
        Some(&who.token),
        Some(json!({"seq": seq})),
    )
    .await
}

async fn mine(app: &TestApp, who: &TestUser, g: &str) -> Value {
    let (s, b) = app.get("/groups/mine?limit=100", &who.token).await;
    assert_eq!(s, 200, "{b}");
    b["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == g)
        .cloned()
        .expect("the group is listed")
}

fn read_state(item: &Value) -> (u64, u64, u64) {
    let n = |k: &str| item[k].as_u64().unwrap_or_else(|| panic!("{k} in {item}"));
    (n("last_seq"), n("last_read_seq"), n("unread_count"))
}

#[tokio::test]
async fn markers_move_forward_and_unread_counts_follow() {
    let app = TestApp::spawn().await;
    let (alice, bob, stranger) = (app.user().await, app.user().await, app.user().await);
    let g = app.group(&alice, "private").await;
    let open = app.group(&alice, "open").await;
    app.send(&g, &alice, "before bob").await;
    app.add_member(&g, &alice, &bob).await;
    assert_eq!(
        read_state(&mine(&app, &bob, &g).await),
        (1, 1, 0),
        "history is not unread"
    );

    let m2 = app.send(&g, &alice, "one").await;
    app.send(&g, &alice, "two").await;
    app.send(&g, &alice, "three").await;
    assert_eq!(read_state(&mine(&app, &bob, &g).await), (4, 1, 3));
    assert_eq!(
        read_state(&mine(&app, &alice, &g).await),
        (4, 4, 0),
        "sending reads"
    );

    // A deleted message is not unread.
    let d = app
        .call_full(
            Method::DELETE,
            &format!("/groups/{g}/messages/{m2}"),
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(d.status, 202, "{}", d.body);
    assert_eq!(read_state(&mine(&app, &bob, &g).await), (5, 1, 2));

    assert_eq!(read(&app, &bob, &g, json!(3)).await.status, 204);
    assert_eq!(read_state(&mine(&app, &bob, &g).await), (5, 3, 1));
    assert_eq!(
        read(&app, &bob, &g, json!(2)).await.status,
        204,
        "backwards: a no-op"
    );
    assert_eq!(read_state(&mine(&app, &bob, &g).await), (5, 3, 1));
    read(&app, &bob, &g, json!(6))
        .await
        .assert_problem(422, "validation_failed");
    read(&app, &bob, &g, json!("x"))
        .await
        .assert_problem(422, "validation_failed");
    read(&app, &stranger, &g, json!(1))
        .await
        .assert_problem(404, "not_found");
    read(&app, &stranger, &open, json!(0))
        .await
        .assert_problem(403, "forbidden");

    let (s, b) = app.get(&format!("/groups/{g}/reads"), &bob.token).await;
    assert_eq!(s, 200, "{b}");
    let mut got: Vec<(String, u64)> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["user_id"].as_str().unwrap().to_owned(),
                i["last_read_seq"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![(alice.id.clone(), 4), (bob.id.clone(), 3)];
    want.sort();
    assert_eq!(got, want);
    assert!(b["next_cursor"].is_null());
    let (s, _) = app
        .get(&format!("/groups/{g}/reads"), &stranger.token)
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn other_members_get_message_read_and_the_latest_marker_always_arrives() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.user().await, app.user().await);
    let g = app.group(&alice, "open").await;
    app.add_member(&g, &alice, &bob).await;
    for i in 0..5 {
        app.send(&g, &alice, &format!("m{i}")).await;
    }
    let mut a = SioClient::connect(&app.base, &alice.token).await.unwrap();
    let mut b = SioClient::connect(&app.base, &bob.token).await.unwrap();
    // A burst: the first and the last must arrive, in order, and nothing past the last.
    for seq in 1..=5 {
        assert_eq!(read(&app, &bob, &g, json!(seq)).await.status, 204);
    }
    let mut seen = Vec::new();
    while seen.last() != Some(&5) {
        let e = a
            .next_event("message:read", WAIT)
            .await
            .unwrap_or_else(|| panic!("the latest marker did not arrive: {seen:?}"));
        assert_eq!(e["group_id"], g.as_str());
        assert_eq!(e["user_id"], bob.id.as_str());
        seen.push(e["seq"].as_u64().unwrap());
    }
    assert_eq!(seen[0], 1);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    // The reader's own sockets get none; sending a message moves a marker silently.
    app.send(&g, &alice, "silent").await;
    b.next_event("message:new", WAIT).await.expect("delivered");
    let events = b.drain();
    assert!(
        events.iter().all(|(n, _)| n != "message:read"),
        "{events:?}"
    );
}

/// The cost of `GET /groups/mine` for a user in 500 groups, each with unread messages (a
/// measurement, not a pass/fail test: `cargo test --test integration mine_for_500_groups --
/// --ignored --nocapture`).
#[tokio::test]
#[ignore = "a measurement; prints timings"]
async fn measure_mine_for_500_groups() {
    let app = TestApp::spawn_with(&[
        ("CONCLAVE_GROUP_ACTIONS_PER_USER", "1000000"),
        ("CONCLAVE_MESSAGES_PER_USER", "1000000"),
        ("CONCLAVE_MAX_GROUPS_PER_USER", "1000"),
    ])
    .await;
    let (owner, reader) = (app.user().await, app.user().await);
    let mut groups = Vec::new();
    for i in 0..500 {
        let g = app.group(&owner, "open").await;
        app.add_member(&g, &owner, &reader).await;
        // Every group unread; every tenth with 50 unread.
        let n = if i % 10 == 0 { 50 } else { 3 };
        for _ in 0..n {
            app.send(&g, &owner, "x").await;
        }
        groups.push((g, n));
    }
    measure(&app, &reader, "all 500 groups unread").await;
    for (g, n) in &groups {
        assert_eq!(read(&app, &reader, g, json!(n)).await.status, 204);
    }
    measure(&app, &reader, "all read").await;
}

async fn measure(app: &TestApp, reader: &TestUser, what: &str) {
    let mut per_listing = Vec::new();
    for _ in 0..20 {
        let start = std::time::Instant::now();
        let mut q = "/groups/mine?limit=100".to_owned();
        let mut n = 0;
        loop {
            let (s, b) = app.get(&q, &reader.token).await;
            assert_eq!(s, 200);
            n += b["items"].as_array().unwrap().len();
            match b["next_cursor"].as_str() {
                Some(c) => q = format!("/groups/mine?limit=100&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(n, 500);
        per_listing.push(start.elapsed());
    }
    per_listing.sort();
    println!(
        "GET /groups/mine, {what}, 5 pages of 100: median {:?}, max {:?} for all 5 pages",
        per_listing[per_listing.len() / 2],
        per_listing.last().unwrap()
    );
}
