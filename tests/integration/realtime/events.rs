//! Client events beyond sending: error acks with HTTP codes, the per-socket event rate limit,
//! and typing indicators.

use super::*;

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
