//! Delivery of messages to live sockets: the ack, the stored shape, order across concurrent
//! senders, and catch-up with `group:sync` after a disconnect.

use super::*;

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
