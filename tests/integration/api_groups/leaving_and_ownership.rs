//! Leaving a group, transferring its ownership, and deleting it.

use super::*;

#[tokio::test]
async fn leaving() {
    let app = TestApp::spawn().await;
    let (alice, bob, stranger) = (app.user().await, app.user().await, app.user().await);
    let g = app.group(&alice, "open").await;
    app.add_member(&g, &alice, &bob).await;

    leave(&app, &alice, &g)
        .await
        .assert_problem(409, "owner_must_transfer");
    leave(&app, &stranger, &g)
        .await
        .assert_problem(404, "not_found");
    let r = leave(&app, &bob, &g).await;
    assert_eq!(r.status, 204);
    assert_eq!(member_count(&app, &g).await, 1);
    leave(&app, &bob, &g).await.assert_problem(404, "not_found");
    post(
        &app,
        &bob,
        &format!("/groups/{UNKNOWN_ID}/leave"),
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");

    // The owner alone: leaving deletes the group.
    let r = leave(&app, &alice, &g).await;
    assert_eq!(r.status, 204);
    get(&app, &alice, &format!("/groups/{g}"))
        .await
        .assert_problem(404, "not_found");
    let listed = get(&app, &alice, "/groups").await;
    assert!(!ids(listed.body["items"].as_array().unwrap(), "id").contains(&g));
    assert_eq!(
        get(&app, &alice, "/groups/mine").await.body["items"],
        json!([])
    );
    join(&app, &bob, &g).await.assert_problem(404, "not_found");
}

#[tokio::test]
async fn transferring_ownership() {
    let app = TestApp::spawn().await;
    let (alice, bob, carol, requester, stranger) = (
        app.user().await,
        app.user().await,
        app.user().await,
        app.user().await,
        app.user().await,
    );
    let g = app.group(&alice, "private").await;
    app.add_member(&g, &alice, &bob).await;
    app.add_member(&g, &alice, &carol).await;
    join(&app, &requester, &g).await;
    let path = format!("/groups/{g}/transfer-ownership");

    post(&app, &bob, &path, json!({"new_owner_id": carol.id}))
        .await
        .assert_problem(403, "forbidden");
    post(&app, &stranger, &path, json!({"new_owner_id": bob.id}))
        .await
        .assert_problem(403, "forbidden");
    for (target, why) in [
        (&alice, "self"),
        (&stranger, "non-member"),
        (&requester, "pending requester"),
    ] {
        let r = post(&app, &alice, &path, json!({"new_owner_id": target.id})).await;
        r.assert_problem(422, "validation_failed");
        assert_eq!(r.error_fields(), ["new_owner_id"], "{why}");
    }
    let r = post(&app, &alice, &path, json!({"new_owner_id": "nope"})).await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.error_fields(), ["new_owner_id"]);
    post(&app, &alice, &path, json!({}))
        .await
        .assert_problem(422, "validation_failed");
    post(&app, &alice, &path, json!({"new_owner_id": UNKNOWN_ID}))
        .await
        .assert_problem(404, "not_found");
    post(
        &app,
        &alice,
        &format!("/groups/{UNKNOWN_ID}/transfer-ownership"),
        json!({"new_owner_id": bob.id}),
    )
    .await
    .assert_problem(404, "not_found");

    let r = post(&app, &alice, &path, json!({"new_owner_id": bob.id})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], g.as_str());
    assert_eq!(r.body["owner_id"], bob.id.as_str());
    assert_eq!(r.body["member_count"], 3);
    assert_eq!(
        get(&app, &stranger, &format!("/groups/{g}")).await.body["owner_id"],
        bob.id.as_str()
    );
    let roles = members(&app, &carol, &g).await;
    assert!(roles.contains(&(bob.id.clone(), "owner".to_owned())));
    assert!(roles.contains(&(alice.id.clone(), "member".to_owned())));
    assert_eq!(roles.iter().filter(|(_, r)| r == "owner").count(), 1);
    let mine = get(&app, &alice, "/groups/mine").await;
    assert_eq!(mine.body["items"][0]["role"], "member");

    // The powers moved with the title.
    get(&app, &alice, &format!("/groups/{g}/join-requests"))
        .await
        .assert_problem(403, "forbidden");
    assert_eq!(
        get(&app, &bob, &format!("/groups/{g}/join-requests"))
            .await
            .status,
        200
    );
    post(&app, &alice, &path, json!({"new_owner_id": carol.id}))
        .await
        .assert_problem(403, "forbidden");
    post(&app, &bob, &format!("/groups/{g}/leave"), json!({}))
        .await
        .assert_problem(409, "owner_must_transfer");
    // The old owner is an ordinary member now and may leave.
    assert_eq!(
        post(&app, &alice, &format!("/groups/{g}/leave"), json!({}))
            .await
            .status,
        204
    );
    assert_eq!(member_count(&app, &g).await, 2);
}

#[tokio::test]
async fn deleting_a_group() {
    let app = TestApp::spawn().await;
    let (alice, bob, stranger) = (app.user().await, app.user().await, app.user().await);
    let g = app.group(&alice, "open").await;
    app.add_member(&g, &alice, &bob).await;
    app.send(&g, &bob, "before the end").await;
    let path = format!("/groups/{g}");

    delete(&app, &bob, &path)
        .await
        .assert_problem(403, "forbidden");
    delete(&app, &stranger, &path)
        .await
        .assert_problem(403, "forbidden");
    assert_eq!(get(&app, &alice, &path).await.status, 200);

    let r = delete(&app, &alice, &path).await;
    assert_eq!(r.status, 204);
    get(&app, &alice, &path)
        .await
        .assert_problem(404, "not_found");
    delete(&app, &alice, &path)
        .await
        .assert_problem(404, "not_found");
    get(&app, &bob, &format!("{path}/messages"))
        .await
        .assert_problem(404, "not_found");
    get(&app, &bob, &format!("{path}/members"))
        .await
        .assert_problem(404, "not_found");
    join(&app, &stranger, &g)
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        get(&app, &bob, "/groups/mine").await.body["items"],
        json!([])
    );
    delete(&app, &alice, &format!("/groups/{UNKNOWN_ID}"))
        .await
        .assert_problem(404, "not_found");
}
