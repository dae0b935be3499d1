//! Membership changes on live sockets: joining, approval, leaving, removal, bans and deletion
//! start or stop delivery and tell the members.

use super::*;

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
