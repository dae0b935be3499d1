//! Keeping users out: removal by the owner, bans (and the pending requests they cancel), and the
//! rejoin cooldown of private groups.

use super::*;

#[tokio::test]
async fn the_owner_removes_members() {
    let app = TestApp::spawn().await;
    let (alice, bob, carol, stranger) = (
        app.user().await,
        app.user().await,
        app.user().await,
        app.user().await,
    );
    let g = app.group(&alice, "open").await;
    app.add_member(&g, &alice, &bob).await;
    app.add_member(&g, &alice, &carol).await;
    let remove = |u: &str| format!("/groups/{g}/members/{u}");

    delete(&app, &bob, &remove(&carol.id))
        .await
        .assert_problem(403, "forbidden");
    delete(&app, &stranger, &remove(&carol.id))
        .await
        .assert_problem(403, "forbidden");
    delete(&app, &alice, &remove(&alice.id))
        .await
        .assert_problem(403, "forbidden");
    assert_eq!(member_count(&app, &g).await, 3);

    let r = delete(&app, &alice, &remove(&bob.id)).await;
    assert_eq!(r.status, 204);
    assert_eq!(member_count(&app, &g).await, 2);
    assert_eq!(
        members(&app, &alice, &g).await,
        [
            (alice.id.clone(), "owner".to_owned()),
            (carol.id.clone(), "member".to_owned())
        ]
    );
    let mine = get(&app, &bob, "/groups/mine").await;
    assert_eq!(mine.body["items"], json!([]));
    delete(&app, &alice, &remove(&bob.id))
        .await
        .assert_problem(404, "not_found");
    delete(&app, &alice, &remove(&stranger.id))
        .await
        .assert_problem(404, "not_found");
    delete(&app, &alice, &remove(UNKNOWN_ID))
        .await
        .assert_problem(404, "not_found");
    delete(&app, &alice, &remove("nope"))
        .await
        .assert_problem(404, "not_found");
    delete(
        &app,
        &alice,
        &format!("/groups/{UNKNOWN_ID}/members/{}", carol.id),
    )
    .await
    .assert_problem(404, "not_found");
    // Open group: no cooldown, Bob can come straight back.
    assert_eq!(join(&app, &bob, &g).await.status, 200);
    assert_eq!(member_count(&app, &g).await, 3);
}

#[tokio::test]
async fn bans_keep_a_user_out() {
    let app = TestApp::spawn().await;
    let (alice, bob, carol, dave, member) = (
        app.user().await,
        app.user().await,
        app.user().await,
        app.user().await,
        app.user().await,
    );
    let g = app.group(&alice, "open").await;
    app.add_member(&g, &alice, &bob).await;
    app.add_member(&g, &alice, &member).await;
    let bans = format!("/groups/{g}/bans");

    // Only the owner bans, and not themself.
    post(&app, &member, &bans, json!({"user_id": bob.id}))
        .await
        .assert_problem(403, "forbidden");
    post(&app, &alice, &bans, json!({"user_id": alice.id}))
        .await
        .assert_problem(403, "forbidden");
    let r = post(&app, &alice, &bans, json!({"user_id": "nope"})).await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.error_fields(), ["user_id"]);
    post(&app, &alice, &bans, json!({}))
        .await
        .assert_problem(422, "validation_failed");
    post(&app, &alice, &bans, json!({"user_id": UNKNOWN_ID}))
        .await
        .assert_problem(404, "not_found");
    post(
        &app,
        &alice,
        &format!("/groups/{UNKNOWN_ID}/bans"),
        json!({"user_id": bob.id}),
    )
    .await
    .assert_problem(404, "not_found");
    assert_eq!(member_count(&app, &g).await, 3);

    // A member: their membership goes.
    let r = post(&app, &alice, &bans, json!({"user_id": bob.id})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(member_count(&app, &g).await, 2);
    assert!(
        !members(&app, &alice, &g)
            .await
            .iter()
            .any(|(id, _)| *id == bob.id)
    );
    join(&app, &bob, &g).await.assert_problem(403, "banned");
    get(&app, &bob, &format!("/groups/{g}/messages"))
        .await
        .assert_problem(403, "banned");
    post(
        &app,
        &bob,
        &format!("/groups/{g}/messages"),
        json!({"content": "hi"}),
    )
    .await
    .assert_problem(403, "banned");
    get(&app, &bob, &format!("/groups/{g}/members"))
        .await
        .assert_problem(403, "banned");
    post(&app, &bob, &format!("/groups/{g}/leave"), json!({}))
        .await
        .assert_problem(404, "not_found");
    // Banning again changes nothing.
    assert_eq!(
        post(&app, &alice, &bans, json!({"user_id": bob.id}))
            .await
            .status,
        201
    );
    // Someone who never was a member can be banned pre-emptively.
    assert_eq!(
        post(&app, &alice, &bans, json!({"user_id": carol.id}))
            .await
            .status,
        201
    );
    join(&app, &carol, &g).await.assert_problem(403, "banned");
    assert_eq!(member_count(&app, &g).await, 2);

    // The list: owner only.
    let r = get(&app, &alice, &bans).await;
    assert_eq!(r.status, 200);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(ids(items, "user_id"), [bob.id.clone(), carol.id.clone()]);
    assert_eq!(items[0]["username"], bob.username.as_str());
    assert_eq!(items[0]["banned_by"], alice.id.as_str());
    assert!(items[0]["banned_at"].is_string());
    let (paged, _) = all_pages(&app, &alice, &format!("{bans}?limit=1")).await;
    assert_eq!(paged.len(), 2);
    get(&app, &member, &bans)
        .await
        .assert_problem(403, "forbidden");
    get(&app, &bob, &bans)
        .await
        .assert_problem(403, "forbidden");
    get(&app, &dave, &bans)
        .await
        .assert_problem(403, "forbidden");

    // Unban: owner only, once; in an open group the user can then join at once.
    let unban = |u: &TestUser| format!("{bans}/{}", u.id);
    delete(&app, &member, &unban(&bob))
        .await
        .assert_problem(403, "forbidden");
    assert_eq!(delete(&app, &alice, &unban(&bob)).await.status, 204);
    delete(&app, &alice, &unban(&bob))
        .await
        .assert_problem(404, "not_found");
    delete(&app, &alice, &unban(&dave))
        .await
        .assert_problem(404, "not_found");
    delete(&app, &alice, &format!("{bans}/{UNKNOWN_ID}"))
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        ids(
            get(&app, &alice, &bans).await.body["items"]
                .as_array()
                .unwrap(),
            "user_id"
        ),
        [carol.id.as_str()]
    );
    assert_eq!(join(&app, &bob, &g).await.status, 200);
    assert_eq!(member_count(&app, &g).await, 3);
}

#[tokio::test]
async fn a_ban_removes_a_pending_request() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.user().await, app.user().await);
    let g = app.group(&alice, "private").await;
    assert_eq!(join(&app, &bob, &g).await.status, 202);
    assert_eq!(
        post(
            &app,
            &alice,
            &format!("/groups/{g}/bans"),
            json!({"user_id": bob.id})
        )
        .await
        .status,
        201
    );
    let reqs = get(&app, &alice, &format!("/groups/{g}/join-requests")).await;
    assert_eq!(reqs.body["items"], json!([]));
    post(
        &app,
        &alice,
        &format!("/groups/{g}/join-requests/{}/approve", bob.id),
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");
    delete(&app, &bob, &format!("/groups/{g}/join-request"))
        .await
        .assert_problem(404, "not_found");
    join(&app, &bob, &g).await.assert_problem(403, "banned");
    get(&app, &bob, &format!("/groups/{g}/messages"))
        .await
        .assert_problem(403, "banned");
    assert_eq!(member_count(&app, &g).await, 1);
}

#[tokio::test]
async fn private_groups_have_a_rejoin_cooldown() {
    let app = TestApp::spawn_with(&[("CONCLAVE_REJOIN_COOLDOWN", "2s")]).await;
    let (alice, left, removed, unbanned, never) = (
        app.user().await,
        app.user().await,
        app.user().await,
        app.user().await,
        app.user().await,
    );
    let g = app.group(&alice, "private").await;
    for u in [&left, &removed, &unbanned] {
        app.add_member(&g, &alice, u).await;
    }
    assert_eq!(
        post(&app, &left, &format!("/groups/{g}/leave"), json!({}))
            .await
            .status,
        204
    );
    assert_eq!(
        delete(&app, &alice, &format!("/groups/{g}/members/{}", removed.id))
            .await
            .status,
        204
    );
    assert_eq!(
        post(
            &app,
            &alice,
            &format!("/groups/{g}/bans"),
            json!({"user_id": unbanned.id})
        )
        .await
        .status,
        201
    );
    assert_eq!(
        delete(&app, &alice, &format!("/groups/{g}/bans/{}", unbanned.id))
            .await
            .status,
        204
    );
    for u in [&left, &removed, &unbanned] {
        let r = join(&app, u, &g).await;
        r.assert_problem(403, "cooldown_active");
        let secs = r.body["retry_after"].as_u64().expect("retry_after");
        assert!((1..=2).contains(&secs), "retry_after {secs}");
        let header: u64 = r
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert_eq!(header, secs, "the header says what the body says");
    }
    // Someone without history is not affected.
    assert_eq!(join(&app, &never, &g).await.status, 202);
    assert_eq!(member_count(&app, &g).await, 1);

    tokio::time::sleep(Duration::from_millis(2_200)).await;
    for u in [&left, &removed, &unbanned] {
        let r = join(&app, u, &g).await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.body["status"], "pending");
    }
}

#[tokio::test]
async fn the_default_cooldown_is_48_hours_and_open_groups_have_none() {
    let app = TestApp::spawn().await;
    let (alice, bob, carol, dave) = (
        app.user().await,
        app.user().await,
        app.user().await,
        app.user().await,
    );
    let private = app.group(&alice, "private").await;
    app.add_member(&private, &alice, &bob).await;
    post(&app, &bob, &format!("/groups/{private}/leave"), json!({})).await;
    let r = join(&app, &bob, &private).await;
    r.assert_problem(403, "cooldown_active");
    let secs = r.body["retry_after"].as_u64().unwrap();
    assert!(
        (172_800 - 60..=172_800).contains(&secs),
        "retry_after {secs}"
    );

    // Open group: leave, removal and unban all allow an immediate return.
    let open = app.group(&alice, "open").await;
    for u in [&bob, &carol, &dave] {
        app.add_member(&open, &alice, u).await;
    }
    post(&app, &bob, &format!("/groups/{open}/leave"), json!({})).await;
    delete(
        &app,
        &alice,
        &format!("/groups/{open}/members/{}", carol.id),
    )
    .await;
    post(
        &app,
        &alice,
        &format!("/groups/{open}/bans"),
        json!({"user_id": dave.id}),
    )
    .await;
    delete(&app, &alice, &format!("/groups/{open}/bans/{}", dave.id)).await;
    for u in [&bob, &carol, &dave] {
        let r = join(&app, u, &open).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(member_count(&app, &open).await, 4);
}
