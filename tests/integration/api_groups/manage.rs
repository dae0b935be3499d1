//! docs/api.md v1.1, against the real server: roles, invitations and group settings, with the
//! choices of "v1.1 details".

use super::*;

async fn call(app: &TestApp, user: &TestUser, m: Method, path: &str, body: Value) -> Reply {
    app.call_full(m, path, Some(&user.token), Some(body)).await
}

async fn set_role(app: &TestApp, owner: &TestUser, g: &str, user: &str, role: &str) -> Reply {
    let path = format!("/groups/{g}/members/{user}/role");
    call(app, owner, Method::PUT, &path, json!({ "role": role })).await
}

async fn invite(app: &TestApp, by: &TestUser, g: &str, user: &str) -> Reply {
    post(
        app,
        by,
        &format!("/groups/{g}/invitations"),
        json!({ "user_id": user }),
    )
    .await
}

async fn patch(app: &TestApp, by: &TestUser, g: &str, body: Value) -> Reply {
    call(app, by, Method::PATCH, &format!("/groups/{g}"), body).await
}

#[track_caller]
fn code(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["code"], code, "{}", r.body);
}

#[tokio::test]
async fn the_owner_names_moderators_who_manage_plain_members_only() {
    let app = TestApp::spawn().await;
    let owner = app.user().await;
    let [m1, m2, plain] = [app.user().await, app.user().await, app.user().await];
    let g = app.group(&owner, "open").await;
    for u in [&m1, &m2, &plain] {
        app.add_member(&g, &owner, u).await;
    }
    let r = set_role(&app, &owner, &g, &m1.id, "moderator").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["user_id"], m1.id.as_str());
    assert_eq!(r.body["username"], m1.username.as_str());
    assert_eq!(r.body["role"], "moderator");
    assert!(r.body["joined_at"].is_string());
    set_role(&app, &owner, &g, &m2.id, "moderator").await;
    assert!(
        members(&app, &plain, &g)
            .await
            .contains(&(m1.id.clone(), "moderator".into()))
    );
    let mine = get(&app, &m1, "/groups/mine").await;
    assert_eq!(mine.body["items"][0]["role"], "moderator");

    // 422: the owner's own role, `owner`, anything else; 404: not a member; 403: not the owner.
    code(
        &set_role(&app, &owner, &g, &owner.id, "member").await,
        422,
        "validation_failed",
    );
    code(
        &set_role(&app, &owner, &g, &m1.id, "owner").await,
        422,
        "validation_failed",
    );
    code(
        &set_role(&app, &owner, &g, &m1.id, "admin").await,
        422,
        "validation_failed",
    );
    let stranger = app.user().await;
    code(
        &set_role(&app, &owner, &g, &stranger.id, "moderator").await,
        404,
        "not_found",
    );
    code(
        &set_role(&app, &m1, &g, &plain.id, "moderator").await,
        403,
        "forbidden",
    );

    // Never the owner or another moderator.
    for target in [&owner.id, &m2.id] {
        let r = delete(&app, &m1, &format!("/groups/{g}/members/{target}")).await;
        code(&r, 403, "forbidden");
        let r = post(
            &app,
            &m1,
            &format!("/groups/{g}/bans"),
            json!({"user_id": target}),
        )
        .await;
        code(&r, 403, "forbidden");
    }
    let r = post(
        &app,
        &m1,
        &format!("/groups/{g}/bans"),
        json!({"user_id": plain.id}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    code(
        &post(
            &app,
            &m1,
            &format!("/groups/{g}/transfer-ownership"),
            json!({"new_owner_id": m2.id}),
        )
        .await,
        403,
        "forbidden",
    );
    code(
        &delete(&app, &m1, &format!("/groups/{g}")).await,
        403,
        "forbidden",
    );

    // Audited, and moderators read the trail.
    let audit = get(&app, &m2, &format!("/groups/{g}/audit")).await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    let kinds: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "role_changed").count(),
        2,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"member_banned"), "{kinds:?}");
}

#[tokio::test]
async fn invitations_are_made_listed_accepted_declined_and_revoked() {
    let app = TestApp::spawn().await;
    let owner = app.user().await;
    let member = app.user().await;
    let guest = app.user().await;
    let g = app.group(&owner, "private").await;
    app.add_member(&g, &owner, &member).await;

    code(
        &invite(&app, &owner, &g, UNKNOWN_ID).await,
        404,
        "not_found",
    );
    code(
        &invite(&app, &owner, &g, &member.id).await,
        409,
        "already_member",
    );
    code(
        &invite(&app, &member, &g, &guest.id).await,
        403,
        "forbidden",
    );
    let r = invite(&app, &owner, &g, &guest.id).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["group_id"], g.as_str());
    assert_eq!(r.body["user_id"], guest.id.as_str());
    assert_eq!(r.body["invited_by"], owner.id.as_str());
    code(
        &invite(&app, &owner, &g, &guest.id).await,
        409,
        "invitation_pending",
    );

    let listed = get(&app, &owner, &format!("/groups/{g}/invitations")).await;
    assert_eq!(listed.body["items"][0], r.body, "the same invitation");
    assert_eq!(listed.body["next_cursor"], Value::Null);
    code(
        &get(&app, &member, &format!("/groups/{g}/invitations")).await,
        403,
        "forbidden",
    );
    let mine = get(&app, &guest, "/users/me/invitations").await;
    let item = &mine.body["items"][0];
    assert_eq!(
        item["group"],
        get(&app, &guest, &format!("/groups/{g}")).await.body
    );
    assert_eq!(item["invited_by"], owner.id.as_str());
    assert_eq!(item["invited_at"], r.body["invited_at"]);

    // Someone else may not decline for the invitee; the invitee declines once.
    let path = format!("/groups/{g}/invitations/{}", guest.id);
    code(&delete(&app, &member, &path).await, 403, "forbidden");
    assert_eq!(delete(&app, &guest, &path).await.status, 204);
    code(&delete(&app, &guest, &path).await, 404, "not_found");
    let accept = format!("/groups/{g}/invitations/accept");
    code(
        &post(&app, &guest, &accept, json!({})).await,
        404,
        "not_found",
    );

    // Invited again, with a request of their own pending: accepting consumes it.
    assert_eq!(join(&app, &guest, &g).await.status, 202);
    assert_eq!(invite(&app, &owner, &g, &guest.id).await.status, 201);
    let r = post(&app, &guest, &accept, json!({})).await;
    assert_eq!(
        (r.status.as_u16(), &r.body),
        (200, &json!({"status": "member"}))
    );
    let requests = get(&app, &owner, &format!("/groups/{g}/join-requests")).await;
    assert_eq!(requests.body["items"], json!([]));
    assert!(get(&app, &guest, "/users/me/invitations").await.body["items"] == json!([]));

    // A revoked invitation is gone.
    let other = app.user().await;
    invite(&app, &owner, &g, &other.id).await;
    let path = format!("/groups/{g}/invitations/{}", other.id);
    assert_eq!(delete(&app, &owner, &path).await.status, 204);
    code(
        &post(&app, &other, &accept, json!({})).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn bans_cooldown_and_max_members_apply_at_acceptance() {
    let app = TestApp::spawn().await;
    let owner = app.user().await;
    let [left, late, troll] = [app.user().await, app.user().await, app.user().await];
    let r = create(
        &app,
        &owner,
        json!({"name": "small", "visibility": "private", "max_members": 2}),
    )
    .await;
    let g = r.body["id"].as_str().unwrap().to_owned();
    let accept = format!("/groups/{g}/invitations/accept");

    // Inviting someone in their cooldown succeeds; accepting is refused and keeps the invitation.
    app.add_member(&g, &owner, &left).await;
    assert_eq!(leave(&app, &left, &g).await.status, 204);
    assert_eq!(invite(&app, &owner, &g, &left.id).await.status, 201);
    let r = post(&app, &left, &accept, json!({})).await;
    code(&r, 403, "cooldown_active");
    assert!(r.body["retry_after"].as_u64().unwrap() > 0);
    let mine = get(&app, &left, "/users/me/invitations").await;
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 1, "kept");

    // Full at acceptance.
    app.add_member(&g, &owner, &late).await;
    let filler = app.user().await;
    assert_eq!(invite(&app, &owner, &g, &filler.id).await.status, 201);
    code(
        &post(&app, &filler, &accept, json!({})).await,
        409,
        "group_full",
    );

    // A banned user cannot be invited; a ban removes an invitation.
    assert_eq!(invite(&app, &owner, &g, &troll.id).await.status, 201);
    let r = post(
        &app,
        &owner,
        &format!("/groups/{g}/bans"),
        json!({"user_id": troll.id}),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        get(&app, &troll, "/users/me/invitations").await.body["items"],
        json!([])
    );
    code(&invite(&app, &owner, &g, &troll.id).await, 403, "banned");
}

#[tokio::test]
async fn settings_split_between_owner_and_moderators() {
    let app = TestApp::spawn().await;
    let owner = app.user().await;
    let [deputy, plain, asker] = [app.user().await, app.user().await, app.user().await];
    let g = app.group(&owner, "private").await;
    app.add_member(&g, &owner, &deputy).await;
    app.add_member(&g, &owner, &plain).await;
    set_role(&app, &owner, &g, &deputy.id, "moderator").await;
    assert_eq!(join(&app, &asker, &g).await.status, 202);

    code(
        &patch(&app, &owner, &g, json!({})).await,
        422,
        "validation_failed",
    );
    code(
        &patch(&app, &owner, &g, json!({"name": "  "})).await,
        422,
        "validation_failed",
    );
    code(
        &patch(&app, &owner, &g, json!({"max_members": 1})).await,
        422,
        "validation_failed",
    );
    code(
        &patch(&app, &plain, &g, json!({"name": "mine now"})).await,
        403,
        "forbidden",
    );
    code(
        &patch(&app, &asker, &g, json!({"name": "mine now"})).await,
        404,
        "not_found",
    );

    let r = patch(
        &app,
        &deputy,
        &g,
        json!({"name": "Deputy's", "description": "d"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["name"].as_str(), r.body["description"].as_str()),
        (Some("Deputy's"), Some("d"))
    );
    assert_eq!(
        r.body,
        get(&app, &plain, &format!("/groups/{g}")).await.body
    );

    // A moderator sending an owner-only field: 403, and nothing changes, the name included.
    let r = patch(
        &app,
        &deputy,
        &g,
        json!({"name": "sneaky", "visibility": "open"}),
    )
    .await;
    code(&r, 403, "forbidden");
    let now = get(&app, &plain, &format!("/groups/{g}")).await.body;
    assert_eq!(
        (now["name"].as_str(), now["visibility"].as_str()),
        (Some("Deputy's"), Some("private"))
    );

    code(
        &patch(&app, &owner, &g, json!({"max_members": 2})).await,
        409,
        "members_exceed_limit",
    );
    let r = patch(
        &app,
        &owner,
        &g,
        json!({"max_members": 3, "visibility": "open"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            r.body["max_members"].as_u64(),
            r.body["visibility"].as_str()
        ),
        (Some(3), Some("open"))
    );
    // private -> open leaves pending requests pending.
    let requests = get(&app, &deputy, &format!("/groups/{g}/join-requests")).await;
    assert_eq!(requests.body["items"][0]["user_id"], asker.id.as_str());
    // Open now: an outsider is told 403, not 404.
    code(
        &patch(&app, &asker, &g, json!({"name": "x"})).await,
        403,
        "forbidden",
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_v11_call() {
    let app = TestApp::spawn().await;
    let doc = app
        .call_full(Method::GET, "/api-docs/openapi.json", None, None)
        .await
        .body;
    for (path, method) in [
        ("/api/v1/groups/{id}", "patch"),
        ("/api/v1/groups/{id}/members/{user_id}/role", "put"),
        ("/api/v1/groups/{id}/invitations", "post"),
        ("/api/v1/groups/{id}/invitations", "get"),
        ("/api/v1/groups/{id}/invitations/accept", "post"),
        ("/api/v1/groups/{id}/invitations/{user_id}", "delete"),
        ("/api/v1/users/me/invitations", "get"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(
            op.is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
        assert!(
            op["responses"]["401"].is_object(),
            "{method} {path}: 401 documented"
        );
    }
    let codes = doc.to_string();
    for code in ["invitation_pending", "members_exceed_limit"] {
        assert!(codes.contains(code), "{code} documented");
    }
    let roles = &doc["components"]["schemas"]["Role"]["enum"];
    assert!(
        roles.as_array().unwrap().contains(&json!("moderator")),
        "{roles}"
    );
}

/// Invitations share the per-user budget of group creations and join requests.
#[tokio::test]
async fn invitations_spend_the_group_actions_budget() {
    let app = TestApp::spawn_with(&[("CONCLAVE_GROUP_ACTIONS_PER_USER", "2")]).await;
    let owner = app.user().await;
    let g = app.group(&owner, "open").await;
    let [a, b] = [app.user().await, app.user().await];
    assert_eq!(invite(&app, &owner, &g, &a.id).await.status, 201);
    let r = invite(&app, &owner, &g, &b.id).await;
    code(&r, 429, "rate_limited");
    assert!(r.headers.get("retry-after").is_some());
}
