//! Real time over Socket.IO against the real server, with the wire-level client in
//! `common::sio`: token expiry on live sockets (bad tokens at connect: tests/tokens.rs),
//! delivery and its shape, order, catch-up, errors in acks, rate limits, typing, and
//! membership changes on live sockets.
//!
//! Negative checks ("this socket receives nothing") use barriers rather than sleeps where they
//! can: the server emits one broadcast to every socket of a room at once, so once a member has
//! received a message, a round trip on another socket (an ack) flushes anything that socket would
//! have been sent before it.

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::sio::{SioClient, SioError};
use common::{TestApp, TestUser};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "realtime-tests-secret-0123456789abcdef";

async fn app() -> TestApp {
    TestApp::spawn_with(&[("CONCLAVE_JWT_SECRET", SECRET)]).await
}

async fn ws(app: &TestApp, user: &TestUser) -> SioClient {
    SioClient::connect(&app.base, &user.token)
        .await
        .unwrap_or_else(|e| panic!("socket for {}: {e}", user.username))
}

/// Sends over the socket; returns the id from the ack.
async fn ws_send(c: &SioClient, group: &str, content: &str) -> String {
    let ack = c
        .emit_with_ack(
            "message:send",
            json!({"group_id": group, "content": content}),
        )
        .await;
    assert_eq!(ack["ok"], true, "send refused: {ack}");
    ack["id"].as_str().expect("id in ack").to_owned()
}

/// A round trip on this socket: anything the server queued for it before is now received.
async fn barrier(c: &SioClient) {
    let ack = c
        .emit_with_ack(
            "group:sync",
            json!({"group_id": "00000000-0000-0000-0000-000000000000", "after_seq": 0}),
        )
        .await;
    assert_eq!(ack["ok"], false, "{ack}");
}

/// Waits for `message:new` with this id (skipping others); returns it.
async fn expect_message(c: &mut SioClient, id: &str) -> Value {
    loop {
        let m = c
            .next_event("message:new", WAIT)
            .await
            .unwrap_or_else(|| panic!("message {id} not delivered"));
        if m["id"] == id {
            return m;
        }
    }
}

/// Every `message:new` of this group received so far.
fn messages_of(c: &mut SioClient, group: &str) -> Vec<Value> {
    let events = c.drain();
    events
        .into_iter()
        .filter(|(n, m)| n == "message:new" && m["group_id"] == group)
        .map(|(_, m)| m)
        .collect()
}

async fn stored(app: &TestApp, group: &str, user: &TestUser) -> Vec<Value> {
    let (s, page) = app
        .get(&format!("/groups/{group}/messages?limit=100"), &user.token)
        .await;
    assert_eq!(s, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

fn error_code(ack: &Value) -> &str {
    assert_eq!(ack["ok"], false, "expected an error ack, got {ack}");
    assert!(ack["error"]["message"].is_string(), "{ack}");
    ack["error"]["code"].as_str().expect("error code")
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn expired_socket_is_disconnected_and_cannot_send() {
    let app = TestApp::spawn_with(&[("CONCLAVE_ACCESS_TOKEN_TTL", "1s")]).await;
    let alice = app.user().await;
    let g = app.group(&alice, "open").await;
    let exp = claims_of(&alice.token)["exp"].as_i64().unwrap();
    let mut c = ws(&app, &alice).await;

    // Past expiry, an event is refused (unless the sweep already closed the socket).
    let until = exp + 1 - now();
    if until > 0 {
        tokio::time::sleep(Duration::from_secs(until as u64)).await;
    }
    match c
        .try_emit_with_ack(
            "message:send",
            json!({"group_id": g, "content": "late"}),
            WAIT,
        )
        .await
    {
        Ok(ack) => assert_eq!(error_code(&ack), "unauthenticated"),
        Err(e) => assert_eq!(e, SioError::Closed),
    }
    // The sweep runs every 5 s.
    assert!(
        c.wait_closed(Duration::from_secs(15)).await,
        "socket with an expired token still open"
    );
    assert!(
        c.emit("message:send", json!({"group_id": g, "content": "x"}))
            .is_err()
    );

    // Past the 5 s leeway the token cannot connect either.
    let until = exp + 7 - now();
    if until > 0 {
        tokio::time::sleep(Duration::from_secs(until as u64)).await;
    }
    match SioClient::connect(&app.base, &alice.token).await {
        Err(SioError::Refused(m)) => assert_eq!(m, "unauthorized"),
        Err(e) => panic!("expected connect_error, got {e}"),
        Ok(_) => panic!("expired token accepted"),
    }
    // Nothing was stored on the expired token (read with a fresh one).
    let (s, tok) = app
        .post("/auth/refresh", "", json!({"refresh_token": alice.refresh}))
        .await;
    assert_eq!(s, 200, "{tok}");
    let fresh = TestUser {
        token: tok["access_token"].as_str().unwrap().to_owned(),
        ..alice.clone()
    };
    assert!(stored(&app, &g, &fresh).await.is_empty());
}

#[tokio::test]
async fn send_is_acked_and_delivered_to_every_member_socket_in_the_stored_shape() {
    let app = app().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    let g = app.group(&alice, "private").await;
    app.add_member(&g, &alice, &bob).await;
    let mut a1 = ws(&app, &alice).await;
    let mut a2 = ws(&app, &alice).await;
    let mut b = ws(&app, &bob).await;
    let mut c = ws(&app, &carol).await;

    let ack = a1
        .emit_with_ack(
            "message:send",
            json!({"group_id": g, "content": "héllo 👋", "client_msg_id": "m-1"}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let id = ack["id"].as_str().unwrap().to_owned();
    let stored = stored(&app, &g, &bob).await;
    assert_eq!(stored.len(), 1);
    let want = &stored[0];
    assert_eq!(want["id"], id.as_str());
    assert_eq!(want["client_msg_id"], "m-1");
    for (who, s) in [
        ("sender", &mut a1),
        ("sender's 2nd socket", &mut a2),
        ("bob", &mut b),
    ] {
        let got = expect_message(s, &id).await;
        assert_eq!(&got, want, "{who} got another shape than GET /messages");
    }
    barrier(&c).await;
    assert!(messages_of(&mut c, &g).is_empty(), "a non-member got it");

    // The same client_msg_id again: same id, stored once.
    let again = a1
        .emit_with_ack(
            "message:send",
            json!({"group_id": g, "content": "héllo 👋", "client_msg_id": "m-1"}),
        )
        .await;
    assert_eq!(again, json!({"ok": true, "id": id}));
    assert_eq!(self::stored(&app, &g, &bob).await.len(), 1);
}

#[tokio::test]
async fn messages_sent_over_http_are_delivered_the_same_way() {
    let app = app().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let g = app.group(&alice, "open").await;
    app.add_member(&g, &alice, &bob).await;
    let mut a = ws(&app, &alice).await;
    let mut b = ws(&app, &bob).await;
    let id = app.send(&g, &bob, "over http").await;
    let want = stored(&app, &g, &alice).await.pop().unwrap();
    assert_eq!(expect_message(&mut a, &id).await, want);
    assert_eq!(expect_message(&mut b, &id).await, want);
    assert_eq!(want["seq"], 1);
    assert!(want.get("client_msg_id").is_none(), "{want}");
}

#[tokio::test]
async fn concurrent_senders_every_receiver_sees_seq_in_order_without_gaps() {
    const SENDERS: usize = 4;
    const EACH: usize = 25;
    let app = TestApp::spawn_with(&[("CONCLAVE_SOCKET_EVENTS_PER_SEC", "1000")]).await;
    let owner = app.user().await;
    let g = app.group(&owner, "open").await;
    let mut users = vec![owner.clone()];
    for _ in 1..SENDERS {
        let u = app.user().await;
        app.add_member(&g, &owner, &u).await;
        users.push(u);
    }
    let mut senders = Vec::new();
    for u in &users {
        senders.push(ws(&app, u).await);
    }
    let mut listeners = vec![ws(&app, &owner).await, ws(&app, &users[1]).await];

    // Every sender fires all its messages at once, all senders together.
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let g = g.clone();
            tokio::spawn(async move {
                let acks = futures_util::future::join_all((0..EACH).map(|n| {
                    c.emit_with_ack(
                        "message:send",
                        json!({"group_id": g, "content": format!("s{i} n{n}")}),
                    )
                }))
                .await;
                let ids: Vec<String> = acks
                    .iter()
                    .map(|a| {
                        assert_eq!(a["ok"], true, "{a}");
                        a["id"].as_str().unwrap().to_owned()
                    })
                    .collect();
                (c, ids)
            })
        })
        .collect();
    let mut receivers = Vec::new();
    let mut all_ids = std::collections::HashSet::new();
    for t in tasks {
        let (c, ids) = t.await.unwrap();
        all_ids.extend(ids);
        receivers.push(c);
    }
    assert_eq!(all_ids.len(), SENDERS * EACH);
    receivers.append(&mut listeners);
    for (i, r) in receivers.iter_mut().enumerate() {
        let mut seqs = Vec::new();
        let mut ids = std::collections::HashSet::new();
        while seqs.len() < SENDERS * EACH {
            let m = r
                .next_event("message:new", WAIT)
                .await
                .unwrap_or_else(|| panic!("receiver {i} got only {} messages", seqs.len()));
            if ids.insert(m["id"].as_str().unwrap().to_owned()) {
                seqs.push(m["seq"].as_u64().unwrap());
            }
        }
        let want: Vec<u64> = (1..=(SENDERS * EACH) as u64).collect();
        assert_eq!(seqs, want, "receiver {i}: seq out of order or with gaps");
        assert_eq!(ids, all_ids, "receiver {i}");
    }
}

#[tokio::test]
async fn group_sync_after_a_disconnect_returns_what_was_missed() {
    let app = app().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    let g = app.group(&alice, "private").await;
    app.add_member(&g, &alice, &bob).await;
    let mut b = ws(&app, &bob).await;
    let first = app.send(&g, &alice, "one").await;
    let seen = expect_message(&mut b, &first).await;
    b.close().await;
    for n in ["two", "three", "four"] {
        app.send(&g, &alice, n).await;
    }
    let b = ws(&app, &bob).await;
    let ack = b
        .emit_with_ack(
            "group:sync",
            json!({"group_id": g, "after_seq": seen["seq"]}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let all = stored(&app, &g, &alice).await;
    assert_eq!(
        ack["items"],
        json!(all[1..]),
        "sync must return exactly the missed messages"
    );
    let ack = b
        .emit_with_ack(
            "group:sync",
            json!({"group_id": g, "after_seq": 1, "limit": 2}),
        )
        .await;
    let seqs: Vec<_> = ack["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].clone())
        .collect();
    assert_eq!(seqs, vec![json!(2), json!(3)]);
    let ack = b
        .emit_with_ack("group:sync", json!({"group_id": g, "after_seq": 4}))
        .await;
    assert_eq!(ack, json!({"ok": true, "items": []}));

    let c = ws(&app, &carol).await;
    let ack = c
        .emit_with_ack("group:sync", json!({"group_id": g, "after_seq": 0}))
        .await;
    assert_eq!(
        error_code(&ack),
        "not_found",
        "a non-member reads a private group"
    );
}

#[tokio::test]
async fn invalid_events_get_error_acks_with_http_codes() {
    let app = app().await;
    let alice = app.user().await;
    let carol = app.user().await;
    let private = app.group(&alice, "private").await;
    let a = ws(&app, &alice).await;
    let c = ws(&app, &carol).await;

    let cases = [
        (
            "empty content",
            json!({"group_id": private, "content": ""}),
            "validation_failed",
        ),
        (
            "whitespace only",
            json!({"group_id": private, "content": "  \n "}),
            "validation_failed",
        ),
        (
            "4097 chars",
            json!({"group_id": private, "content": "x".repeat(4097)}),
            "validation_failed",
        ),
        (
            "unknown group",
            json!({"group_id": "0190f5d2-0000-7000-8000-000000000000", "content": "hi"}),
            "not_found",
        ),
        (
            "not an id",
            json!({"group_id": "nope", "content": "hi"}),
            "not_found",
        ),
        (
            "empty client_msg_id",
            json!({"group_id": private, "content": "hi", "client_msg_id": ""}),
            "validation_failed",
        ),
    ];
    for (name, data, code) in cases {
        let ack = a.emit_with_ack("message:send", data).await;
        assert_eq!(error_code(&ack), code, "{name}: {ack}");
        if code == "validation_failed" {
            assert!(
                ack["error"]["errors"].is_array(),
                "{name}: field errors: {ack}"
            );
        }
    }
    // Exactly 4096 is fine.
    ws_send(&a, &private, &"x".repeat(4096)).await;

    let ack = c
        .emit_with_ack(
            "message:send",
            json!({"group_id": private, "content": "hi"}),
        )
        .await;
    assert_eq!(
        error_code(&ack),
        "not_found",
        "non-member of a private group"
    );

    let malformed = [
        ("string payload", json!("hello")),
        ("number payload", json!(42)),
        ("null payload", Value::Null),
        ("missing content", json!({"group_id": private})),
        (
            "content not a string",
            json!({"group_id": private, "content": 5}),
        ),
        ("array payload", json!([1, 2])),
    ];
    for (name, data) in malformed {
        for event in ["message:send", "group:sync"] {
            let ack = a.emit_with_ack(event, data.clone()).await;
            let code = error_code(&ack);
            assert!(
                code == "malformed_request" || code == "validation_failed",
                "{event} {name}: {ack}"
            );
        }
    }
    // An event with an ack but no payload at all is answered too.
    let ack = a
        .try_emit_with_ack("message:send", Value::Null, WAIT)
        .await
        .expect("answered");
    assert_eq!(ack["ok"], false);
    let ack = a
        .emit_with_ack("group:sync", json!({"group_id": private, "after_seq": -1}))
        .await;
    let code = error_code(&ack);
    assert!(
        code == "malformed_request" || code == "validation_failed",
        "{ack}"
    );
    let ack = a
        .emit_with_ack(
            "group:sync",
            json!({"group_id": private, "after_seq": 0, "limit": 1000}),
        )
        .await;
    assert_eq!(error_code(&ack), "validation_failed", "{ack}");

    // Only the one valid message was stored.
    assert_eq!(stored(&app, &private, &alice).await.len(), 1);
}

#[tokio::test]
async fn each_socket_has_its_own_event_rate_limit() {
    let app = TestApp::spawn_with(&[("CONCLAVE_SOCKET_EVENTS_PER_SEC", "2")]).await;
    let alice = app.user().await;
    let g = app.group(&alice, "open").await;
    let a1 = ws(&app, &alice).await;
    let a2 = ws(&app, &alice).await;
    let acks = futures_util::future::join_all((0..12).map(|n| {
        a1.emit_with_ack(
            "message:send",
            json!({"group_id": g, "content": format!("flood {n}")}),
        )
    }))
    .await;
    let limited: Vec<_> = acks.iter().filter(|a| a["ok"] == false).collect();
    assert!(
        limited.len() >= 6,
        "a burst of 12 at 2/s (burst 4) should be mostly refused: {acks:?}"
    );
    for a in &limited {
        assert_eq!(a["error"]["code"], "rate_limited", "{a}");
        assert!(a["error"]["retry_after"].as_u64().unwrap_or(0) >= 1, "{a}");
    }
    let ok = acks.len() - limited.len();
    assert_eq!(stored(&app, &g, &alice).await.len(), ok);
    // Another socket of the same user is not affected.
    ws_send(&a2, &g, "from the other socket").await;
}

#[tokio::test]
async fn typing_reaches_other_members_only() {
    let app = app().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    let g = app.group(&alice, "private").await;
    app.add_member(&g, &alice, &bob).await;
    let mut a1 = ws(&app, &alice).await;
    let mut a2 = ws(&app, &alice).await;
    let mut b = ws(&app, &bob).await;
    let mut c = ws(&app, &carol).await;

    // A non-member typing into the group is not relayed.
    c.emit("typing", json!({"group_id": g})).unwrap();
    a1.emit("typing", json!({"group_id": g})).unwrap();
    let t = b
        .next_event("typing", WAIT)
        .await
        .expect("bob sees alice typing");
    assert_eq!(t, json!({"group_id": g, "user_id": alice.id}));
    for s in [&a1, &a2, &c] {
        barrier(s).await;
    }
    for (who, s) in [
        ("sender", &mut a1),
        ("sender's 2nd socket", &mut a2),
        ("non-member", &mut c),
    ] {
        let got: Vec<_> = s
            .drain()
            .into_iter()
            .filter(|(n, _)| n == "typing")
            .collect();
        assert!(got.is_empty(), "{who} got {got:?}");
    }
    // Carol's attempt never shows up (it was emitted before alice's).
    b.expect_no_event("typing", Duration::from_millis(300))
        .await;
    // Garbage typing payloads are ignored without harm.
    a1.emit("typing", json!("x")).unwrap();
    a1.emit("typing", json!({"group_id": 7})).unwrap();
    barrier(&a1).await;
}

#[tokio::test]
async fn joining_an_open_group_starts_delivery_to_live_sockets() {
    let app = app().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let g = app.group(&alice, "open").await;
    let mut a = ws(&app, &alice).await;
    let mut b = ws(&app, &bob).await;
    let before = app.send(&g, &alice, "before bob").await;
    expect_message(&mut a, &before).await;
    barrier(&b).await;
    assert!(messages_of(&mut b, &g).is_empty());

    app.add_member(&g, &alice, &bob).await;
    let joined = json!({"group_id": g, "user_id": bob.id});
    assert_eq!(
        a.next_event("group:member_joined", WAIT).await,
        Some(joined.clone())
    );
    assert_eq!(
        b.next_event("group:member_joined", WAIT).await,
        Some(joined)
    );
    let id = app.send(&g, &alice, "welcome").await;
    expect_message(&mut b, &id).await;
}

#[tokio::test]
async fn approving_a_private_join_request_starts_delivery() {
    let app = app().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let g = app.group(&alice, "private").await;
    let mut a = ws(&app, &alice).await;
    let mut b = ws(&app, &bob).await;
    let (s, body) = app
        .post(&format!("/groups/{g}/join"), &bob.token, json!({}))
        .await;
    assert_eq!(s, 202, "{body}");
    let pending = ws_send(&a, &g, "while bob waits").await;
    expect_message(&mut a, &pending).await;
    barrier(&b).await;
    assert!(
        messages_of(&mut b, &g).is_empty(),
        "a pending requester got a message"
    );

    let (s, body) = app
        .post(
            &format!("/groups/{g}/join-requests/{}/approve", bob.id),
            &alice.token,
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let joined = json!({"group_id": g, "user_id": bob.id});
    assert_eq!(
        a.next_event("group:member_joined", WAIT).await,
        Some(joined.clone())
    );
    assert_eq!(
        b.next_event("group:member_joined", WAIT).await,
        Some(joined)
    );
    let id = ws_send(&a, &g, "approved").await;
    expect_message(&mut b, &id).await;
}

#[tokio::test]
async fn leaving_stops_delivery_and_tells_the_others() {
    let app = app().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let g = app.group(&alice, "open").await;
    app.add_member(&g, &alice, &bob).await;
    let mut a = ws(&app, &alice).await;
    let mut b = ws(&app, &bob).await;
    let (s, body) = app
        .post(&format!("/groups/{g}/leave"), &bob.token, json!({}))
        .await;
    assert_eq!(s, 204, "{body}");
    assert_eq!(
        a.next_event("group:member_left", WAIT).await,
        Some(json!({"group_id": g, "user_id": bob.id}))
    );
    let id = ws_send(&a, &g, "after bob left").await;
    expect_message(&mut a, &id).await;
    barrier(&b).await;
    assert!(messages_of(&mut b, &g).is_empty());
}

#[tokio::test]
async fn removal_sends_group_removed_and_stops_delivery() {
    let app = app().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let g = app.group(&alice, "private").await;
    app.add_member(&g, &alice, &bob).await;
    let mut a = ws(&app, &alice).await;
    let mut b = ws(&app, &bob).await;
    let (s, body) = app
        .delete(&format!("/groups/{g}/members/{}", bob.id), &alice.token)
        .await;
    assert_eq!(s, 204, "{body}");
    assert_eq!(
        b.next_event("group:removed", WAIT).await,
        Some(json!({"group_id": g, "reason": "removed"}))
    );
    assert_eq!(
        a.next_event("group:member_left", WAIT).await,
        Some(json!({"group_id": g, "user_id": bob.id}))
    );
    let id = ws_send(&a, &g, "after removal").await;
    expect_message(&mut a, &id).await;
    barrier(&b).await;
    assert!(messages_of(&mut b, &g).is_empty());
}

#[tokio::test]
async fn after_a_ban_not_a_single_message_reaches_the_banned_user() {
    const AFTER: usize = 40;
    let app = TestApp::spawn_with(&[
        ("CONCLAVE_JWT_SECRET", SECRET),
        ("CONCLAVE_SOCKET_EVENTS_PER_SEC", "1000"),
    ])
    .await;
    let alice = app.user().await;
    let bob = app.user().await;
    let g = app.group(&alice, "private").await;
    let other = app.group(&alice, "open").await;
    app.add_member(&g, &alice, &bob).await;
    app.add_member(&other, &alice, &bob).await;
    let mut a = ws(&app, &alice).await;
    let mut b1 = ws(&app, &bob).await;
    let mut b2 = ws(&app, &bob).await;

    // Alice keeps sending while she bans bob.
    let a_sender = ws(&app, &alice).await;
    let g2 = g.clone();
    let stream = tokio::spawn(async move {
        let mut ids = Vec::new();
        for n in 0..60 {
            ids.push(ws_send(&a_sender, &g2, &format!("racing {n}")).await);
        }
        ids
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (s, body) = app
        .post(
            &format!("/groups/{g}/bans"),
            &alice.token,
            json!({"user_id": bob.id}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let racing = stream.await.unwrap();

    let mut after = Vec::new();
    for n in 0..AFTER {
        if n % 2 == 0 {
            after.push(ws_send(&a, &g, &format!("after ban {n}")).await);
        } else {
            after.push(app.send(&g, &alice, &format!("after ban {n}")).await);
        }
    }
    // Alice has received everything; so would have bob's sockets, had they been in the room.
    for id in racing.iter().chain(&after) {
        expect_message(&mut a, id).await;
    }
    // A fence in a group bob is still in: delivered after everything above.
    let fence = ws_send(&a, &other, "fence").await;
    for b in [&mut b1, &mut b2] {
        expect_message(b, &fence).await;
        barrier(b).await;
        let mut events = Vec::new();
        // Everything received so far, in order (the fence was taken out of the stream).
        while let Some(e) = b.next_any(Duration::from_millis(50)).await {
            events.push(e);
        }
        let removed = events
            .iter()
            .position(|(n, v)| n == "group:removed" && v["group_id"] == g.as_str());
        let removed = removed.unwrap_or_else(|| panic!("no group:removed in {events:?}"));
        assert_eq!(events[removed].1["reason"], "banned");
        let leaked: Vec<_> = events[removed..]
            .iter()
            .filter(|(n, v)| n == "message:new" && v["group_id"] == g.as_str())
            .collect();
        assert!(leaked.is_empty(), "after group:removed bob got {leaked:?}");
        let after_ban: Vec<_> = events
            .iter()
            .filter(|(n, v)| n == "message:new" && after.iter().any(|id| v["id"] == id.as_str()))
            .collect();
        assert!(
            after_ban.is_empty(),
            "bob got messages sent after the ban: {after_ban:?}"
        );
    }
    // Bob can neither send nor sync there, and a new socket of his is not in the room either.
    let ack = b1
        .emit_with_ack(
            "message:send",
            json!({"group_id": g, "content": "let me in"}),
        )
        .await;
    assert!(
        ["not_found", "banned", "forbidden"].contains(&error_code(&ack)),
        "{ack}"
    );
    let ack = b1
        .emit_with_ack("group:sync", json!({"group_id": g, "after_seq": 0}))
        .await;
    assert!(
        ["not_found", "banned", "forbidden"].contains(&error_code(&ack)),
        "{ack}"
    );
    let mut b3 = ws(&app, &bob).await;
    let id = ws_send(&a, &g, "still private").await;
    expect_message(&mut a, &id).await;
    let fence = ws_send(&a, &other, "fence 2").await;
    for b in [&mut b1, &mut b2, &mut b3] {
        expect_message(b, &fence).await;
        barrier(b).await;
        assert!(messages_of(b, &g).is_empty());
    }
}

#[tokio::test]
async fn deleting_a_group_tells_every_member() {
    let app = app().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let g = app.group(&alice, "open").await;
    app.add_member(&g, &alice, &bob).await;
    let mut a = ws(&app, &alice).await;
    let mut b = ws(&app, &bob).await;
    let (s, body) = app.delete(&format!("/groups/{g}"), &alice.token).await;
    assert_eq!(s, 204, "{body}");
    let removed = json!({"group_id": g, "reason": "deleted"});
    assert_eq!(
        a.next_event("group:removed", WAIT).await,
        Some(removed.clone())
    );
    assert_eq!(b.next_event("group:removed", WAIT).await, Some(removed));
    let ack = a
        .emit_with_ack("message:send", json!({"group_id": g, "content": "anyone?"}))
        .await;
    assert_eq!(error_code(&ack), "not_found");
}

#[tokio::test]
async fn a_socket_is_fully_set_up_when_told_it_is_connected() {
    // Clients emit in their `connect` callback: the handlers and rooms must already be there.
    let app = TestApp::spawn_with(&[("CONCLAVE_SOCKET_EVENTS_PER_SEC", "1000")]).await;
    let alice = app.user().await;
    let bob = app.user().await;
    let g = app.group(&alice, "open").await;
    app.add_member(&g, &alice, &bob).await;
    let a = ws(&app, &alice).await;
    for n in 0..20 {
        let mut b = ws(&app, &bob).await;
        let ack = b
            .try_emit_with_ack(
                "group:sync",
                json!({"group_id": g, "after_seq": 0, "limit": 1}),
                Duration::from_secs(5),
            )
            .await
            .unwrap_or_else(|e| panic!("connection {n}: first event not answered: {e}"));
        assert_eq!(ack["ok"], true, "{ack}");
        let mut b2 = ws(&app, &bob).await;
        let id = ws_send(&a, &g, &format!("right after connect {n}")).await;
        expect_message(&mut b, &id).await;
        expect_message(&mut b2, &id).await;
    }
}
