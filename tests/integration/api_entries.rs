//! docs/api.md, Edits and deletions: entries of the group's log with their own `seq`, who may
//! make them, how history, `group:sync` and live sockets show them, and the audit of a
//! moderator's deletion.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::sio::SioClient;
use crate::common::{Reply, TestApp, TestUser};

const WAIT: Duration = Duration::from_secs(10);

async fn edit(app: &TestApp, who: &TestUser, g: &str, m: &str, body: Value) -> Reply {
    let path = format!("/groups/{g}/messages/{m}");
    app.call_full(Method::PATCH, &path, Some(&who.token), Some(body))
        .await
}

async fn delete(app: &TestApp, who: &TestUser, g: &str, m: &str) -> Reply {
    let path = format!("/groups/{g}/messages/{m}");
    app.call_full(Method::DELETE, &path, Some(&who.token), None)
        .await
}

async fn entries(app: &TestApp, who: &TestUser, g: &str) -> Vec<Value> {
    let (s, b) = app
        .get(&format!("/groups/{g}/messages?after_seq=0"), &who.token)
        .await;
    assert_eq!(s, 200, "{b}");
    b["items"].as_array().unwrap().clone()
}

#[track_caller]
fn accepted(r: &Reply) -> String {
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["status"], "accepted");
    r.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn edits_and_deletions_are_entries_and_the_message_shows_its_current_state() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.user().await, app.user().await);
    let g = app.group(&alice, "private").await;
    app.add_member(&g, &alice, &bob).await;
    let m = app.send(&g, &bob, "helo").await;

    let e = accepted(&edit(&app, &bob, &g, &m, json!({"content": "hello"})).await);
    let items = entries(&app, &alice, &g).await;
    assert_eq!(items.len(), 2);
    let (text, ed) = (&items[0], &items[1]);
    assert_eq!(text["kind"], "text");
    assert_eq!(text["content"], "hello");
    assert!(text["edited_at"].is_string());
    assert!(text.get("deleted_at").is_none());
    assert_eq!(ed["id"], e.as_str());
    assert_eq!(ed["seq"], 2);
    assert_eq!(ed["kind"], "edit");
    assert_eq!(ed["target_id"], m.as_str());
    assert_eq!(ed["sender_id"], bob.id.as_str());
    assert_eq!(ed["content"], "hello");

    let d = accepted(&delete(&app, &bob, &g, &m).await);
    let items = entries(&app, &alice, &g).await;
    let seqs: Vec<_> = items.iter().map(|i| i["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert!(items[0]["content"].is_null());
    assert!(items[0]["deleted_at"].is_string());
    assert!(
        items[1]["content"].is_null(),
        "the edit's content is gone too"
    );
    assert_eq!(items[2]["id"], d.as_str());
    assert_eq!(items[2]["kind"], "delete");
    assert_eq!(items[2]["target_id"], m.as_str());
    assert!(items[2]["content"].is_null());

    // A deleted message can be neither edited nor deleted again.
    edit(&app, &bob, &g, &m, json!({"content": "x"}))
        .await
        .assert_problem(404, "not_found");
    delete(&app, &bob, &g, &m)
        .await
        .assert_problem(404, "not_found");
    // Nor is anything but a `text` entry a target.
    for other in [&e, &d, "01900000-0000-7000-8000-000000000000", "nope"] {
        delete(&app, &bob, &g, other)
            .await
            .assert_problem(404, "not_found");
    }
}

#[tokio::test]
async fn who_may_edit_and_delete() {
    let app = TestApp::spawn().await;
    let (owner, bob, carol, stranger) = (
        app.user().await,
        app.user().await,
        app.user().await,
        app.user().await,
    );
    let g = app.group(&owner, "open").await;
    let private = app.group(&owner, "private").await;
    app.add_member(&g, &owner, &bob).await;
    app.add_member(&g, &owner, &carol).await;
    let of_bob = app.send(&g, &bob, "bob's").await;
    let of_owner = app.send(&g, &owner, "owner's").await;
    let in_private = app.send(&private, &owner, "private").await;

    // Only the sender edits, the owner included.
    edit(&app, &carol, &g, &of_bob, json!({"content": "x"}))
        .await
        .assert_problem(403, "forbidden");
    edit(&app, &owner, &g, &of_bob, json!({"content": "x"}))
        .await
        .assert_problem(403, "forbidden");
    // A member deletes only their own; the owner deletes anyone's.
    delete(&app, &carol, &g, &of_bob)
        .await
        .assert_problem(403, "forbidden");
    delete(&app, &bob, &g, &of_owner)
        .await
        .assert_problem(403, "forbidden");
    // Non-members: 403 on an open group, 404 on a private one, as for reading.
    delete(&app, &stranger, &g, &of_owner)
        .await
        .assert_problem(403, "forbidden");
    edit(
        &app,
        &stranger,
        &private,
        &in_private,
        json!({"content": "x"}),
    )
    .await
    .assert_problem(404, "not_found");
    // Bad content is 422, as for a send.
    edit(&app, &bob, &g, &of_bob, json!({"content": "  "}))
        .await
        .assert_problem(422, "validation_failed");
    accepted(&delete(&app, &owner, &g, &of_bob).await);
    // The same client_msg_id makes one edit.
    let body = json!({"content": "owner's, edited", "client_msg_id": "e-1"});
    let first = accepted(&edit(&app, &owner, &g, &of_owner, body.clone()).await);
    let again = accepted(&edit(&app, &owner, &g, &of_owner, body).await);
    assert_eq!(first, again);
    assert_eq!(entries(&app, &owner, &g).await.len(), 4);
}

#[tokio::test]
async fn a_moderators_deletion_is_audited_and_an_own_one_is_not() {
    let app = TestApp::spawn().await;
    let (owner, bob) = (app.user().await, app.user().await);
    let g = app.group(&owner, "open").await;
    app.add_member(&g, &owner, &bob).await;
    let mine = app.send(&g, &bob, "mine").await;
    let theirs = app.send(&g, &bob, "theirs").await;
    accepted(&delete(&app, &bob, &g, &mine).await);
    accepted(&delete(&app, &owner, &g, &theirs).await);
    // The trail is written in the background: wait for the deletion to show.
    let deadline = tokio::time::Instant::now() + WAIT;
    let found = loop {
        let (s, b) = app.get(&format!("/groups/{g}/audit"), &owner.token).await;
        assert_eq!(s, 200, "{b}");
        let deleted: Vec<Value> = b["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "message_deleted")
            .cloned()
            .collect();
        if !deleted.is_empty() || tokio::time::Instant::now() > deadline {
            break deleted;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["actor_id"], owner.id.as_str());
    assert_eq!(found[0]["target_id"], bob.id.as_str());
}

#[tokio::test]
async fn sockets_edit_and_delete_and_receive_the_entries_in_order() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.user().await, app.user().await);
    let g = app.group(&alice, "open").await;
    app.add_member(&g, &alice, &bob).await;
    let a = SioClient::connect(&app.base, &alice.token).await.unwrap();
    let mut b = SioClient::connect(&app.base, &bob.token).await.unwrap();
    let m = app.send(&g, &alice, "first").await;

    let ack = a
        .emit_with_ack(
            "message:edit",
            json!({"group_id": g, "message_id": m, "content": "first!"}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let edit_id = ack["id"].clone();
    let refused = b
        .emit_with_ack("message:delete", json!({"group_id": g, "message_id": m}))
        .await;
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["error"]["code"], "forbidden");
    let missing = a
        .emit_with_ack("message:edit", json!({"group_id": g, "message_id": m}))
        .await;
    assert_eq!(missing["error"]["code"], "validation_failed", "{missing}");
    let ack = a
        .emit_with_ack("message:delete", json!({"group_id": g, "message_id": m}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");

    let mut live = Vec::new();
    while live.len() < 3 {
        let e = b
            .next_event("message:new", WAIT)
            .await
            .expect("entry delivered");
        live.push(e);
    }
    let shape: Vec<_> = live
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [(1, "text".into()), (2, "edit".into()), (3, "delete".into())]
    );
    assert_eq!(live[1]["id"], edit_id);
    assert_eq!(live[1]["content"], "first!");
    assert_eq!(live[2]["target_id"], m.as_str());

    // group:sync returns every entry, the message in its current state.
    let sync = b
        .emit_with_ack("group:sync", json!({"group_id": g, "after_seq": 0}))
        .await;
    let items = sync["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(items[0]["content"].is_null() && items[0]["deleted_at"].is_string());
    assert!(items[1]["content"].is_null());
}
