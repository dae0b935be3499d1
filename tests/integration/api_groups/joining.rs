//! Joining open and private groups: join requests (withdrawn, seen by the owner, approved,
//! rejected), the member limit, and who sees the member list.

use super::*;

#[tokio::test]
async fn joining_open_and_private_groups() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.user().await, app.user().await);
    let open = app.group(&alice, "open").await;
    let private = app.group(&alice, "private").await;

    let r = join(&app, &bob, &open).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"status": "member"}));
    assert_eq!(member_count(&app, &open).await, 2);
    join(&app, &bob, &open)
        .await
        .assert_problem(409, "already_member");
    join(&app, &alice, &open)
        .await
        .assert_problem(409, "already_member");
    assert_eq!(member_count(&app, &open).await, 2);

    let r = join(&app, &bob, &private).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.body, json!({"status": "pending"}));
    assert_eq!(
        member_count(&app, &private).await,
        1,
        "a request is not membership"
    );
    join(&app, &bob, &private)
        .await
        .assert_problem(409, "request_pending");
    join(&app, &alice, &private)
        .await
        .assert_problem(409, "already_member");

    join(&app, &bob, UNKNOWN_ID)
        .await
        .assert_problem(404, "not_found");
    join(&app, &bob, "nope")
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn a_request_can_be_withdrawn_once() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.user().await, app.user().await);
    let g = app.group(&alice, "private").await;
    assert_eq!(join(&app, &bob, &g).await.status, 202);
    let path = format!("/groups/{g}/join-request");
    let r = delete(&app, &bob, &path).await;
    assert_eq!(r.status, 204);
    let reqs = get(&app, &alice, &format!("/groups/{g}/join-requests")).await;
    assert_eq!(reqs.body["items"], json!([]));
    delete(&app, &bob, &path)
        .await
        .assert_problem(404, "not_found");
    // No cooldown after withdrawing: asking again works.
    assert_eq!(join(&app, &bob, &g).await.status, 202);
    // Nothing to withdraw for a member, the owner, a stranger or an unknown group.
    let open = app.group(&alice, "open").await;
    app.add_member(&open, &alice, &bob).await;
    delete(&app, &bob, &format!("/groups/{open}/join-request"))
        .await
        .assert_problem(404, "not_found");
    delete(&app, &alice, &path)
        .await
        .assert_problem(404, "not_found");
    delete(&app, &bob, &format!("/groups/{UNKNOWN_ID}/join-request"))
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn only_the_owner_sees_join_requests() {
    let app = TestApp::spawn().await;
    let (alice, bob, carol, member) = (
        app.user().await,
        app.user().await,
        app.user().await,
        app.user().await,
    );
    let g = app.group(&alice, "private").await;
    app.add_member(&g, &alice, &member).await;
    assert_eq!(join(&app, &bob, &g).await.status, 202);
    assert_eq!(join(&app, &carol, &g).await.status, 202);
    let path = format!("/groups/{g}/join-requests");
    let r = get(&app, &alice, &path).await;
    assert_eq!(r.status, 200);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(
        ids(items, "user_id"),
        [bob.id.clone(), carol.id.clone()],
        "oldest first"
    );
    assert_eq!(items[0]["username"], bob.username.as_str());
    assert!(items[0]["requested_at"].is_string());
    assert!(r.body["next_cursor"].is_null());
    let (paged, _) = all_pages(&app, &alice, &format!("{path}?limit=1")).await;
    assert_eq!(ids(&paged, "user_id"), [bob.id.clone(), carol.id.clone()]);
    for who in [&member, &bob, &app.user().await] {
        get(&app, who, &path).await.assert_problem(403, "forbidden");
    }
    get(&app, &alice, &format!("/groups/{UNKNOWN_ID}/join-requests"))
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn approve_and_reject() {
    let app = TestApp::spawn().await;
    let (alice, bob, carol, member) = (
        app.user().await,
        app.user().await,
        app.user().await,
        app.user().await,
    );
    let g = app.group(&alice, "private").await;
    app.add_member(&g, &alice, &member).await;
    join(&app, &bob, &g).await;
    join(&app, &carol, &g).await;
    let approve = |u: &TestUser| format!("/groups/{g}/join-requests/{}/approve", u.id);
    let reject = |u: &TestUser| format!("/groups/{g}/join-requests/{}/reject", u.id);

    post(&app, &member, &approve(&bob), json!({}))
        .await
        .assert_problem(403, "forbidden");
    post(&app, &bob, &approve(&bob), json!({}))
        .await
        .assert_problem(403, "forbidden");
    post(&app, &member, &reject(&carol), json!({}))
        .await
        .assert_problem(403, "forbidden");

    let r = post(&app, &alice, &approve(&bob), json!({})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"status": "member"}));
    assert_eq!(member_count(&app, &g).await, 3);
    assert!(
        members(&app, &alice, &g)
            .await
            .contains(&(bob.id.clone(), "member".to_owned()))
    );
    post(&app, &alice, &approve(&bob), json!({}))
        .await
        .assert_problem(404, "not_found");
    post(&app, &alice, &reject(&bob), json!({}))
        .await
        .assert_problem(404, "not_found");

    let r = post(&app, &alice, &reject(&carol), json!({})).await;
    assert_eq!(r.status, 204);
    assert_eq!(member_count(&app, &g).await, 3);
    assert!(
        !members(&app, &alice, &g)
            .await
            .iter()
            .any(|(id, _)| *id == carol.id)
    );
    post(&app, &alice, &reject(&carol), json!({}))
        .await
        .assert_problem(404, "not_found");
    post(&app, &alice, &approve(&carol), json!({}))
        .await
        .assert_problem(404, "not_found");
    // A rejected user may ask again (no cooldown: they never were a member).
    assert_eq!(join(&app, &carol, &g).await.status, 202);

    let stranger = app.user().await;
    post(&app, &alice, &approve(&stranger), json!({}))
        .await
        .assert_problem(404, "not_found");
    for who in [UNKNOWN_ID, "not-an-id"] {
        post(
            &app,
            &alice,
            &format!("/groups/{g}/join-requests/{who}/approve"),
            json!({}),
        )
        .await
        .assert_problem(404, "not_found");
        post(
            &app,
            &alice,
            &format!("/groups/{g}/join-requests/{who}/reject"),
            json!({}),
        )
        .await
        .assert_problem(404, "not_found");
    }
}

#[tokio::test]
async fn a_full_group_takes_nobody_more() {
    let app = TestApp::spawn().await;
    let (alice, bob, carol, dave) = (
        app.user().await,
        app.user().await,
        app.user().await,
        app.user().await,
    );
    let r = create(
        &app,
        &alice,
        json!({"name": "duo", "visibility": "private", "max_members": 2}),
    )
    .await;
    let g = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(join(&app, &bob, &g).await.status, 202);
    assert_eq!(join(&app, &carol, &g).await.status, 202);
    let r = post(
        &app,
        &alice,
        &format!("/groups/{g}/join-requests/{}/approve", bob.id),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200);
    post(
        &app,
        &alice,
        &format!("/groups/{g}/join-requests/{}/approve", carol.id),
        json!({}),
    )
    .await
    .assert_problem(409, "group_full");
    assert_eq!(member_count(&app, &g).await, 2);
    // Carol's request is still there for when a seat frees up; new requests are refused.
    let reqs = get(&app, &alice, &format!("/groups/{g}/join-requests")).await;
    assert_eq!(
        ids(reqs.body["items"].as_array().unwrap(), "user_id"),
        [carol.id.as_str()]
    );
    join(&app, &dave, &g)
        .await
        .assert_problem(409, "group_full");
    assert_eq!(
        delete(&app, &alice, &format!("/groups/{g}/members/{}", bob.id))
            .await
            .status,
        204
    );
    let r = post(
        &app,
        &alice,
        &format!("/groups/{g}/join-requests/{}/approve", carol.id),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(member_count(&app, &g).await, 2);

    let r = create(
        &app,
        &alice,
        json!({"name": "open duo", "visibility": "open", "max_members": 2}),
    )
    .await;
    let open = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(join(&app, &bob, &open).await.status, 200);
    join(&app, &carol, &open)
        .await
        .assert_problem(409, "group_full");
    assert_eq!(member_count(&app, &open).await, 2);
}

#[tokio::test]
async fn who_sees_the_member_list() {
    let app = TestApp::spawn().await;
    let (alice, bob, stranger, requester) = (
        app.user().await,
        app.user().await,
        app.user().await,
        app.user().await,
    );
    let open = app.group(&alice, "open").await;
    let private = app.group(&alice, "private").await;
    app.add_member(&open, &alice, &bob).await;
    app.add_member(&private, &alice, &bob).await;
    join(&app, &requester, &private).await;

    for g in [&open, &private] {
        for viewer in [&alice, &bob] {
            let r = get(&app, viewer, &format!("/groups/{g}/members")).await;
            assert_eq!(r.status, 200);
            let items = r.body["items"].as_array().unwrap();
            assert_eq!(
                ids(items, "user_id"),
                [alice.id.clone(), bob.id.clone()],
                "in joining order"
            );
            assert_eq!(items[0]["role"], "owner");
            assert_eq!(items[1]["role"], "member");
            assert_eq!(items[1]["username"], bob.username.as_str());
            assert!(items[1]["joined_at"].is_string());
        }
        let (paged, pages) = all_pages(&app, &bob, &format!("/groups/{g}/members?limit=1")).await;
        assert_eq!(ids(&paged, "user_id"), [alice.id.clone(), bob.id.clone()]);
        assert!(pages >= 2);
    }
    get(&app, &stranger, &format!("/groups/{open}/members"))
        .await
        .assert_problem(403, "forbidden");
    get(&app, &stranger, &format!("/groups/{private}/members"))
        .await
        .assert_problem(404, "not_found");
    get(&app, &requester, &format!("/groups/{private}/members"))
        .await
        .assert_problem(404, "not_found");
    get(&app, &alice, &format!("/groups/{UNKNOWN_ID}/members"))
        .await
        .assert_problem(404, "not_found");
    get(&app, &alice, &format!("/groups/{open}/members?limit=101"))
        .await
        .assert_problem(422, "validation_failed");
}
