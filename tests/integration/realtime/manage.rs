//! v1.1 live events: join requests to the owner and moderators (kept right as roles change),
//! `group:invited` to the invitee, `group:updated` to members.

use super::*;

async fn set_role(app: &TestApp, g: &str, owner: &TestUser, user: &TestUser, role: &str) {
    let (s, b) = app
        .call(
            reqwest::Method::PUT,
            &format!("/groups/{g}/members/{}/role", user.id),
            Some(&owner.token),
            Some(json!({"role": role})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["role"], role, "{b}");
}

async fn ask(app: &TestApp, g: &str, u: &TestUser) {
    let (s, b) = app
        .post(&format!("/groups/{g}/join"), &u.token, json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
}

/// The next `group:join_requested` (skipping other events), or a panic.
async fn expect_request(c: &mut SioClient, who: &TestUser) -> Value {
    let r = c
        .next_event("group:join_requested", WAIT)
        .await
        .expect("group:join_requested");
    assert_eq!(r["user_id"], who.id.as_str(), "{r}");
    r
}

/// No `group:join_requested` for `who` has reached `c` (after a round trip on it).
async fn no_request(c: &mut SioClient, who: &TestUser) {
    barrier(c).await;
    let leaked: Vec<_> = c
        .drain()
        .into_iter()
        .filter(|(n, m)| n == "group:join_requested" && m["user_id"] == who.id.as_str())
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
}

#[tokio::test]
async fn join_requests_reach_the_owner_and_moderators_live_and_follow_role_changes() {
    let app = app().await;
    let owner = app.user().await;
    let deputy = app.user().await;
    let plain = app.user().await;
    let g = app.group(&owner, "private").await;
    app.add_member(&g, &owner, &deputy).await;
    app.add_member(&g, &owner, &plain).await;
    let mut o = ws(&app, &owner).await;
    let mut d = ws(&app, &deputy).await;
    let mut p = ws(&app, &plain).await;

    let first = app.user().await;
    ask(&app, &g, &first).await;
    let r = expect_request(&mut o, &first).await;
    assert_eq!(r["group_id"], g.as_str());
    assert_eq!(r["username"], first.username.as_str());
    let listed = app
        .get(&format!("/groups/{g}/join-requests"), &owner.token)
        .await
        .1;
    assert_eq!(r["requested_at"], listed["items"][0]["requested_at"], "{r}");
    no_request(&mut d, &first).await;
    no_request(&mut p, &first).await;

    // Promoted with its socket connected: it hears the next request at once.
    set_role(&app, &g, &owner, &deputy, "moderator").await;
    let second = app.user().await;
    ask(&app, &g, &second).await;
    expect_request(&mut o, &second).await;
    expect_request(&mut d, &second).await;
    no_request(&mut p, &second).await;

    // A withdrawal is announced to both; an approval shows as member_joined.
    let (s, _) = app
        .delete(&format!("/groups/{g}/join-request"), &second.token)
        .await;
    assert_eq!(s, 204);
    for c in [&mut o, &mut d] {
        let w = c
            .next_event("group:join_request_withdrawn", WAIT)
            .await
            .expect("withdrawn");
        assert_eq!(w, json!({"group_id": g, "user_id": second.id}));
    }

    // Demoted: it hears nothing more; a socket connecting as moderator is in the room.
    set_role(&app, &g, &owner, &deputy, "member").await;
    set_role(&app, &g, &owner, &plain, "moderator").await;
    let mut p2 = ws(&app, &plain).await;
    let third = app.user().await;
    ask(&app, &g, &third).await;
    expect_request(&mut o, &third).await;
    expect_request(&mut p2, &third).await;
    expect_request(&mut p, &third).await;
    no_request(&mut d, &third).await;

    // A new owner by transfer hears requests; the old one, now a member, does not.
    let (s, b) = app
        .post(
            &format!("/groups/{g}/transfer-ownership"),
            &owner.token,
            json!({"new_owner_id": deputy.id}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let fourth = app.user().await;
    ask(&app, &g, &fourth).await;
    expect_request(&mut d, &fourth).await;
    no_request(&mut o, &fourth).await;
}

#[tokio::test]
async fn a_group_created_with_the_owners_socket_connected_announces_requests_to_it() {
    let app = app().await;
    let owner = app.user().await;
    let mut o = ws(&app, &owner).await;
    let g = app.group(&owner, "private").await;
    let asker = app.user().await;
    ask(&app, &g, &asker).await;
    expect_request(&mut o, &asker).await;
}

#[tokio::test]
async fn the_invitee_is_told_live_and_joins_the_room_on_accepting() {
    let app = app().await;
    let owner = app.user().await;
    let guest = app.user().await;
    let g = app.group(&owner, "private").await;
    let name = app.get(&format!("/groups/{g}"), &owner.token).await.1["name"].clone();
    let mut c = ws(&app, &guest).await;
    let (s, b) = app
        .post(
            &format!("/groups/{g}/invitations"),
            &owner.token,
            json!({"user_id": guest.id}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let inv = c
        .next_event("group:invited", WAIT)
        .await
        .expect("group:invited");
    assert_eq!(
        inv,
        json!({"group_id": g, "group_name": name, "invited_by": owner.id})
    );
    let (s, b) = app
        .post(
            &format!("/groups/{g}/invitations/accept"),
            &guest.token,
            json!({}),
        )
        .await;
    assert_eq!((s.as_u16(), b), (200, json!({"status": "member"})));
    let joined = c
        .next_event("group:member_joined", WAIT)
        .await
        .expect("member_joined");
    assert_eq!(joined["user_id"], guest.id.as_str());
    let id = app.send(&g, &owner, "welcome").await;
    expect_message(&mut c, &id).await;
}

#[tokio::test]
async fn members_get_the_group_after_a_settings_change() {
    let app = app().await;
    let owner = app.user().await;
    let deputy = app.user().await;
    let plain = app.user().await;
    let g = app.group(&owner, "open").await;
    app.add_member(&g, &owner, &deputy).await;
    app.add_member(&g, &owner, &plain).await;
    set_role(&app, &g, &owner, &deputy, "moderator").await;
    let mut c = ws(&app, &plain).await;
    let (s, b) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/groups/{g}"),
            Some(&deputy.token),
            Some(json!({"name": "Renamed live", "description": "now with words"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let u = c
        .next_event("group:updated", WAIT)
        .await
        .expect("group:updated");
    let fresh = app.get(&format!("/groups/{g}"), &plain.token).await.1;
    assert_eq!(u, fresh, "the event carries the group as GET returns it");
    assert_eq!(u["name"], "Renamed live");
}
