//! docs/api.md, Messages: sending, history and its paging, content limits, idempotency, who may read
//! and send, and the per-user send rate.

use crate::common;

use std::collections::HashSet;

use crate::common::{Reply, TestApp, TestUser};
use reqwest::Method;
use serde_json::{Value, json};

const UNKNOWN_ID: &str = "01900000-0000-7000-8000-000000000000";

async fn send(app: &TestApp, user: &TestUser, g: &str, body: Value) -> Reply {
    app.call_full(
        Method::POST,
        &format!("/groups/{g}/messages"),
        Some(&user.token),
        Some(body),
    )
    .await
}

async fn history(app: &TestApp, user: &TestUser, g: &str, query: &str) -> Reply {
    app.call_full(
        Method::GET,
        &format!("/groups/{g}/messages{query}"),
        Some(&user.token),
        None,
    )
    .await
}

fn items(r: &Reply) -> Vec<Value> {
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["items"].as_array().unwrap().clone()
}

fn seqs(items: &[Value]) -> Vec<u64> {
    items.iter().map(|m| m["seq"].as_u64().unwrap()).collect()
}

/// Follows `next_cursor` from `query` to the end; returns every page's seqs.
async fn pages(app: &TestApp, user: &TestUser, g: &str, query: &str) -> Vec<Vec<u64>> {
    let mut out = Vec::new();
    let mut q = query.to_owned();
    loop {
        let r = history(app, user, g, &q).await;
        out.push(seqs(&items(&r)));
        match r.body["next_cursor"].as_str() {
            Some(c) => q = format!("?limit={}&cursor={c}", limit_of(query)),
            None => {
                assert!(r.body["next_cursor"].is_null());
                return out;
            }
        }
        assert!(out.len() < 100, "paging does not end");
    }
}

fn limit_of(query: &str) -> &str {
    query
        .split("limit=")
        .nth(1)
        .and_then(|r| r.split('&').next())
        .unwrap_or("50")
}

/// A group owned by a fresh user, with `n` messages "m1".."mN" from its owner.
async fn group_with(app: &TestApp, visibility: &str, n: usize) -> (TestUser, String, Vec<String>) {
    let owner = app.user().await;
    let g = app.group(&owner, visibility).await;
    let mut ids = Vec::new();
    for i in 1..=n {
        ids.push(app.send(&g, &owner, &format!("m{i}")).await);
    }
    (owner, g, ids)
}

#[tokio::test]
async fn sent_messages_come_back_in_order_with_contiguous_seqs() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.user().await, app.user().await);
    let g = app.group(&alice, "private").await;
    app.add_member(&g, &alice, &bob).await;

    let r = send(&app, &alice, &g, json!({"content": "first"})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["status"], "accepted");
    let first = r.body["id"].as_str().expect("id").to_owned();
    let mut sent = vec![(first, alice.id.clone(), "first".to_owned())];
    for i in 0..9 {
        let who = if i % 2 == 0 { &bob } else { &alice };
        let content = format!("message {i} from {}", who.username);
        let id = app.send(&g, who, &content).await;
        sent.push((id, who.id.clone(), content));
    }
    let ids: HashSet<&String> = sent.iter().map(|(id, _, _)| id).collect();
    assert_eq!(ids.len(), 10, "every message has its own id");

    for reader in [&alice, &bob] {
        let r = history(&app, reader, &g, "").await;
        let got = items(&r);
        assert_eq!(seqs(&got), (1..=10).collect::<Vec<u64>>());
        assert!(r.body["next_cursor"].is_null());
        for (m, (id, sender, content)) in got.iter().zip(&sent) {
            assert_eq!(m["id"], id.as_str());
            assert_eq!(m["group_id"], g.as_str());
            assert_eq!(m["sender_id"], sender.as_str());
            assert_eq!(m["content"], content.as_str());
            let at = m["sent_at"].as_str().unwrap();
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                .unwrap();
            assert!(m.get("client_msg_id").is_none_or(Value::is_null), "{m}");
        }
    }
    // Groups number their messages independently.
    let other = app.group(&alice, "open").await;
    app.send(&other, &alice, "elsewhere").await;
    assert_eq!(seqs(&items(&history(&app, &alice, &other, "").await)), [1]);
    // An empty group has an empty history.
    let empty = app.group(&alice, "open").await;
    let r = history(&app, &alice, &empty, "").await;
    assert_eq!(r.body, json!({"items": [], "next_cursor": null}));
}

#[tokio::test]
async fn paging_forwards_visits_every_message_once() {
    let app = TestApp::spawn().await;
    let (alice, g, ids) = group_with(&app, "open", 10).await;
    let p = pages(&app, &alice, &g, "?after_seq=0&limit=3").await;
    let flat: Vec<u64> = p.iter().flatten().copied().collect();
    assert_eq!(flat, (1..=10).collect::<Vec<u64>>());
    assert_eq!(p[0], [1, 2, 3]);
    assert_eq!(p[1], [4, 5, 6]);
    let page = items(&history(&app, &alice, &g, "?after_seq=4&limit=3").await);
    assert_eq!(seqs(&page), [5, 6, 7]);
    assert_eq!(page[0]["id"], ids[4].as_str());
    assert_eq!(page[0]["content"], "m5");
    // Both bounds: the messages strictly between them.
    assert_eq!(
        seqs(&items(
            &history(&app, &alice, &g, "?after_seq=2&before_seq=6").await
        )),
        [3, 4, 5]
    );
    // Nothing after the last one; a later message shows up from the same position.
    let r = history(&app, &alice, &g, "?after_seq=10").await;
    assert_eq!(r.body, json!({"items": [], "next_cursor": null}));
    // However large the position, nothing is after it, and everything is before it.
    for huge in [u64::MAX, i64::MAX as u64 + 1, i64::MAX as u64] {
        let r = history(&app, &alice, &g, &format!("?after_seq={huge}")).await;
        assert_eq!(
            r.body,
            json!({"items": [], "next_cursor": null}),
            "after_seq={huge}"
        );
        let r = history(&app, &alice, &g, &format!("?before_seq={huge}&limit=2")).await;
        assert_eq!(seqs(&items(&r)), [9, 10], "before_seq={huge}");
    }
    app.send(&g, &alice, "m11").await;
    assert_eq!(
        seqs(&items(&history(&app, &alice, &g, "?after_seq=10").await)),
        [11]
    );
}

#[tokio::test]
async fn paging_backwards_from_the_newest() {
    let app = TestApp::spawn().await;
    let (alice, g, _) = group_with(&app, "private", 10).await;
    // Without after_seq: the newest page, still ascending, then older pages.
    let p = pages(&app, &alice, &g, "?limit=3").await;
    assert_eq!(p, [vec![8, 9, 10], vec![5, 6, 7], vec![2, 3, 4], vec![1]]);
    let p = pages(&app, &alice, &g, "?limit=5").await;
    let mut flat: Vec<u64> = p.iter().flatten().copied().collect();
    flat.sort();
    assert_eq!(
        flat,
        (1..=10).collect::<Vec<u64>>(),
        "each message exactly once"
    );
    assert_eq!(
        seqs(&items(
            &history(&app, &alice, &g, "?before_seq=5&limit=2").await
        )),
        [3, 4]
    );
    assert_eq!(
        seqs(&items(&history(&app, &alice, &g, "?before_seq=3").await)),
        [1, 2]
    );
    let p = pages(&app, &alice, &g, "?before_seq=6&limit=2").await;
    assert_eq!(p, [vec![4, 5], vec![2, 3], vec![1]]);
    let r = history(&app, &alice, &g, "?before_seq=1").await;
    assert_eq!(r.body, json!({"items": [], "next_cursor": null}));
}

#[tokio::test]
async fn page_size_limits() {
    let app = TestApp::spawn().await;
    let (alice, g, _) = group_with(&app, "open", 52).await;
    let r = history(&app, &alice, &g, "").await;
    assert_eq!(
        seqs(&items(&r)),
        (3..=52).collect::<Vec<u64>>(),
        "50 by default, the newest"
    );
    assert!(r.body["next_cursor"].is_string());
    assert_eq!(
        items(&history(&app, &alice, &g, "?limit=100").await).len(),
        52
    );
    assert_eq!(
        seqs(&items(&history(&app, &alice, &g, "?limit=1").await)),
        [52]
    );
    for (bad, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("after_seq=-1", "after_seq"),
        ("after_seq=abc", "after_seq"),
        ("before_seq=x", "before_seq"),
        ("cursor=***", "cursor"),
        ("cursor=Zm9v", "cursor"),
    ] {
        let r = history(&app, &alice, &g, &format!("?{bad}")).await;
        r.assert_problem(422, "validation_failed");
        assert_eq!(r.error_fields(), [field], "{bad}");
    }
}

#[tokio::test]
async fn content_length_rules() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let g = app.group(&alice, "open").await;
    let mut accepted = Vec::new();
    for ok in [
        "x".repeat(4096),
        "é".repeat(4096),
        "😀".repeat(4096),
        "a".into(),
        "  padded  ".into(),
    ] {
        let r = send(&app, &alice, &g, json!({"content": ok})).await;
        assert_eq!(r.status, 202, "{} chars: {}", ok.chars().count(), r.body);
        accepted.push(ok);
    }
    for bad in [
        String::new(),
        "   ".into(),
        "\n\t \r\n".into(),
        "x".repeat(4097),
        "é".repeat(4097),
        "😀".repeat(4097),
    ] {
        let r = send(&app, &alice, &g, json!({"content": bad})).await;
        r.assert_problem(422, "validation_failed");
        assert_eq!(
            r.error_fields(),
            ["content"],
            "{} chars",
            bad.chars().count()
        );
    }
    for (body, field) in [
        (json!({}), "content"),
        (json!({"content": 5}), "content"),
        (json!({"content": null}), "content"),
        (
            json!({"content": "ok", "client_msg_id": ""}),
            "client_msg_id",
        ),
        (
            json!({"content": "ok", "client_msg_id": "x".repeat(65)}),
            "client_msg_id",
        ),
        (
            json!({"content": "ok", "client_msg_id": "has space"}),
            "client_msg_id",
        ),
        (
            json!({"content": "ok", "client_msg_id": 7}),
            "client_msg_id",
        ),
    ] {
        let r = send(&app, &alice, &g, body.clone()).await;
        r.assert_problem(422, "validation_failed");
        assert_eq!(r.error_fields(), [field], "{body}");
    }
    // Stored exactly as sent, and nothing refused was stored.
    let got = items(&history(&app, &alice, &g, "").await);
    let contents: Vec<&str> = got.iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(
        contents,
        accepted.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let app = TestApp::spawn_with(&[("CONCLAVE_MAX_BODY_BYTES", "2048")]).await;
    let alice = app.user().await;
    let g = app.group(&alice, "open").await;
    assert_eq!(
        send(&app, &alice, &g, json!({"content": "x".repeat(1500)}))
            .await
            .status,
        202
    );
    send(&app, &alice, &g, json!({"content": "x".repeat(3000)}))
        .await
        .assert_problem(413, "payload_too_large");
    assert_eq!(items(&history(&app, &alice, &g, "").await).len(), 1);
}

#[tokio::test]
async fn client_msg_id_makes_sending_idempotent_per_sender() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.user().await, app.user().await);
    let g = app.group(&alice, "open").await;
    app.add_member(&g, &alice, &bob).await;

    let a1 = send(
        &app,
        &alice,
        &g,
        json!({"content": "hello", "client_msg_id": "c-1"}),
    )
    .await;
    assert_eq!(a1.status, 202);
    let id = a1.body["id"].as_str().unwrap();
    // A retry, even with other content, answers with the same id and stores nothing new.
    let a2 = send(
        &app,
        &alice,
        &g,
        json!({"content": "hello again", "client_msg_id": "c-1"}),
    )
    .await;
    assert_eq!(a2.status, 202);
    assert_eq!(a2.body, json!({"id": id, "status": "accepted"}));
    // Another sender's identical key is theirs alone.
    let b1 = send(
        &app,
        &bob,
        &g,
        json!({"content": "hello", "client_msg_id": "c-1"}),
    )
    .await;
    assert_eq!(b1.status, 202);
    assert_ne!(b1.body["id"], id);
    // So is the same sender's key in another group.
    let other = app.group(&alice, "open").await;
    let o1 = send(
        &app,
        &alice,
        &other,
        json!({"content": "hello", "client_msg_id": "c-1"}),
    )
    .await;
    assert_ne!(o1.body["id"], id);
    // A different key is a different message.
    let a3 = send(
        &app,
        &alice,
        &g,
        json!({"content": "hello", "client_msg_id": "c-2"}),
    )
    .await;
    assert_ne!(a3.body["id"], id);

    let got = items(&history(&app, &alice, &g, "").await);
    assert_eq!(seqs(&got), [1, 2, 3]);
    assert_eq!(got[0]["id"], id);
    assert_eq!(got[0]["content"], "hello");
    assert_eq!(got[0]["client_msg_id"], "c-1");
    assert_eq!(got[1]["id"], b1.body["id"]);
    assert_eq!(got[1]["sender_id"], bob.id.as_str());
    assert_eq!(got[2]["client_msg_id"], "c-2");
}

#[tokio::test]
async fn only_members_read_and_send() {
    let app = TestApp::spawn().await;
    let (alice, stranger, requester, banned) = (
        app.user().await,
        app.user().await,
        app.user().await,
        app.user().await,
    );
    let open = app.group(&alice, "open").await;
    let private = app.group(&alice, "private").await;
    for g in [&open, &private] {
        app.send(g, &alice, "secret stuff").await;
        app.add_member(g, &alice, &banned).await;
        let r = app
            .post(
                &format!("/groups/{g}/bans"),
                &alice.token,
                json!({"user_id": banned.id}),
            )
            .await;
        assert_eq!(r.0, 201);
    }
    assert_eq!(
        app.post(
            &format!("/groups/{private}/join"),
            &requester.token,
            json!({})
        )
        .await
        .0,
        202
    );
    let hi = json!({"content": "hi"});

    // Open group: a stranger is told they are not allowed.
    history(&app, &stranger, &open, "")
        .await
        .assert_problem(403, "forbidden");
    send(&app, &stranger, &open, hi.clone())
        .await
        .assert_problem(403, "forbidden");
    // Private group: nothing is revealed.
    for who in [&stranger, &requester] {
        history(&app, who, &private, "")
            .await
            .assert_problem(404, "not_found");
        send(&app, who, &private, hi.clone())
            .await
            .assert_problem(404, "not_found");
    }
    // Banned, in either kind of group.
    for g in [&open, &private] {
        history(&app, &banned, g, "")
            .await
            .assert_problem(403, "banned");
        send(&app, &banned, g, hi.clone())
            .await
            .assert_problem(403, "banned");
    }
    // No such group.
    for g in [UNKNOWN_ID, "not-a-group"] {
        history(&app, &alice, g, "")
            .await
            .assert_problem(404, "not_found");
        send(&app, &alice, g, hi.clone())
            .await
            .assert_problem(404, "not_found");
    }
    // No token.
    let url = app.url(&format!("/groups/{open}/messages"));
    app.fetch(app.client.get(&url))
        .await
        .assert_problem(401, "unauthenticated");
    app.fetch(app.client.post(&url).json(&hi))
        .await
        .assert_problem(401, "unauthenticated");
    // None of the refused sends was stored.
    for g in [&open, &private] {
        assert_eq!(items(&history(&app, &alice, g, "").await).len(), 1);
    }
}

#[tokio::test]
async fn former_members_lose_access_but_their_messages_stay() {
    let app = TestApp::spawn().await;
    let (alice, bob, carol) = (app.user().await, app.user().await, app.user().await);
    let open = app.group(&alice, "open").await;
    let private = app.group(&alice, "private").await;
    for g in [&open, &private] {
        app.add_member(g, &alice, &bob).await;
        app.add_member(g, &alice, &carol).await;
        app.send(g, &bob, "bob was here").await;
        app.send(g, &carol, "carol too").await;
        assert_eq!(items(&history(&app, &bob, g, "").await).len(), 2);
    }
    // Bob leaves, Carol is removed.
    for g in [&open, &private] {
        assert_eq!(
            app.post(&format!("/groups/{g}/leave"), &bob.token, json!({}))
                .await
                .0,
            204
        );
        assert_eq!(
            app.delete(&format!("/groups/{g}/members/{}", carol.id), &alice.token)
                .await
                .0,
            204
        );
    }
    for who in [&bob, &carol] {
        history(&app, who, &open, "")
            .await
            .assert_problem(403, "forbidden");
        send(&app, who, &open, json!({"content": "still here?"}))
            .await
            .assert_problem(403, "forbidden");
        history(&app, who, &private, "")
            .await
            .assert_problem(404, "not_found");
        send(&app, who, &private, json!({"content": "still here?"}))
            .await
            .assert_problem(404, "not_found");
    }
    for g in [&open, &private] {
        let got = items(&history(&app, &alice, g, "").await);
        assert_eq!(seqs(&got), [1, 2]);
        assert_eq!(got[0]["sender_id"], bob.id.as_str());
        assert_eq!(got[0]["content"], "bob was here");
        assert_eq!(got[1]["sender_id"], carol.id.as_str());
    }
    // Back in the open group, Bob reads the whole history and numbering continues.
    assert_eq!(
        app.post(&format!("/groups/{open}/join"), &bob.token, json!({}))
            .await
            .0,
        200
    );
    app.send(&open, &bob, "back").await;
    assert_eq!(
        seqs(&items(&history(&app, &bob, &open, "").await)),
        [1, 2, 3]
    );
    // An ownership transfer changes nothing either.
    let r = app
        .post(
            &format!("/groups/{open}/transfer-ownership"),
            &alice.token,
            json!({"new_owner_id": bob.id}),
        )
        .await;
    assert_eq!(r.0, 200);
    app.send(&open, &alice, "as a member now").await;
    let got = items(&history(&app, &alice, &open, "").await);
    assert_eq!(seqs(&got), [1, 2, 3, 4]);
    assert_eq!(got[3]["sender_id"], alice.id.as_str());
}

/// The server remembers for a while who may send (`CONCLAVE_SENDER_CACHE_TTL`, long here); a
/// ban, a removal, a departure or the group's deletion must still stop the very next message.
#[tokio::test]
async fn losing_access_stops_the_next_message_of_someone_who_just_sent() {
    let app = TestApp::spawn_with(&[("CONCLAVE_SENDER_CACHE_TTL", "300s")]).await;
    let alice = app.user().await;
    let open = app.group(&alice, "open").await;
    let private = app.group(&alice, "private").await;
    let (banned, removed, gone, deleted) = (
        app.user().await,
        app.user().await,
        app.user().await,
        app.user().await,
    );
    for (g, who) in [
        (&open, &banned),
        (&private, &removed),
        (&open, &gone),
        (&private, &deleted),
    ] {
        app.add_member(g, &alice, who).await;
        app.send(g, who, "hello").await;
    }
    let r = app
        .post(
            &format!("/groups/{open}/bans"),
            &alice.token,
            json!({"user_id": banned.id}),
        )
        .await;
    assert_eq!(r.0, 201, "{}", r.1);
    let r = app
        .delete(
            &format!("/groups/{private}/members/{}", removed.id),
            &alice.token,
        )
        .await;
    assert_eq!(r.0, 204, "{}", r.1);
    let r = app
        .post(&format!("/groups/{open}/leave"), &gone.token, json!({}))
        .await;
    assert_eq!(r.0, 204, "{}", r.1);
    let again = json!({"content": "again"});
    send(&app, &banned, &open, again.clone())
        .await
        .assert_problem(403, "banned");
    send(&app, &removed, &private, again.clone())
        .await
        .assert_problem(404, "not_found");
    send(&app, &gone, &open, again.clone())
        .await
        .assert_problem(403, "forbidden");
    let r = app
        .delete(&format!("/groups/{private}"), &alice.token)
        .await;
    assert_eq!(r.0, 204, "{}", r.1);
    send(&app, &deleted, &private, again)
        .await
        .assert_problem(404, "not_found");
    // Nothing after the changes was stored.
    let got = items(&history(&app, &alice, &open, "").await);
    assert_eq!(seqs(&got), [1, 2]);
}

#[tokio::test]
async fn sending_is_rate_limited_per_user() {
    let app = TestApp::spawn_with(&[("CONCLAVE_MESSAGES_PER_USER", "3")]).await;
    let (alice, bob) = (app.user().await, app.user().await);
    let g = app.group(&alice, "open").await;
    app.add_member(&g, &alice, &bob).await;
    let first = send(
        &app,
        &alice,
        &g,
        json!({"content": "1", "client_msg_id": "k1"}),
    )
    .await;
    assert_eq!(first.status, 202);
    for i in 2..=3 {
        assert_eq!(
            send(&app, &alice, &g, json!({"content": i.to_string()}))
                .await
                .status,
            202
        );
    }
    let r = send(&app, &alice, &g, json!({"content": "4"})).await;
    r.assert_problem(429, "rate_limited");
    let header: u64 = r
        .header("retry-after")
        .expect("Retry-After header")
        .parse()
        .expect("seconds");
    assert!(header >= 1);
    assert_eq!(r.body["retry_after"], header);
    // A retry of a message already accepted still gets its id back.
    let retry = send(
        &app,
        &alice,
        &g,
        json!({"content": "1", "client_msg_id": "k1"}),
    )
    .await;
    assert_eq!(retry.status, 202, "{}", retry.body);
    assert_eq!(retry.body["id"], first.body["id"]);
    // Another user has their own budget.
    assert_eq!(
        send(&app, &bob, &g, json!({"content": "mine"}))
            .await
            .status,
        202
    );
    assert_eq!(
        seqs(&items(&history(&app, &alice, &g, "").await)),
        [1, 2, 3, 4]
    );
}

/// SREs watch how far each partition's writer is behind and what it holds unacknowledged
/// (the pipeline panels and alerts read these gauges).
#[tokio::test]
async fn metrics_show_each_partitions_queue_depth_and_unacked_messages() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let g = app.group(&alice, "open").await;
    app.send(&g, &alice, "counted").await;
    let text = common::metrics_text(&app.url("/metrics")).await;
    for gauge in [
        "conclave_pipeline_queue_depth{partition=\"",
        "conclave_pipeline_unacked_messages{partition=\"",
    ] {
        assert!(text.contains(gauge), "{gauge} missing from /metrics");
    }
}

/// NUL, escape sequences and bidirectional overrides are refused in everything other members
/// see (content, group names, descriptions), so a name cannot impersonate another and a message
/// cannot hide what it says; line breaks and tabs stay allowed in text.
#[tokio::test]
async fn control_and_bidi_characters_are_refused_where_others_see_them() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let g = app.group(&alice, "open").await;
    for bad in [
        "nul\0here",
        "esc\u{1b}[2J",
        "gnp\u{202E}exe",
        "iso\u{2067}late",
    ] {
        let r = send(&app, &alice, &g, json!({"content": bad})).await;
        r.assert_problem(422, "validation_failed");
        assert_eq!(r.error_fields(), ["content"], "{bad:?}");
        let create = app
            .call_full(
                Method::POST,
                "/groups",
                Some(&alice.token),
                Some(json!({"name": format!("team {bad}"), "visibility": "open"})),
            )
            .await;
        create.assert_problem(422, "validation_failed");
        assert_eq!(create.error_fields(), ["name"], "{bad:?}");
        let described = app
            .call_full(
                Method::POST,
                "/groups",
                Some(&alice.token),
                Some(json!({"name": "fine", "description": bad, "visibility": "open"})),
            )
            .await;
        described.assert_problem(422, "validation_failed");
        assert_eq!(described.error_fields(), ["description"], "{bad:?}");
    }
    let ok = send(
        &app,
        &alice,
        &g,
        json!({"content": "two\nlines\tand a tab"}),
    )
    .await;
    assert_eq!(ok.status, 202, "{}", ok.body);
}
