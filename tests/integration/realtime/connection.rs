//! A socket's life: set up completely once told it is connected, cut when its token expires.

use super::*;

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
