//! The audit trail as a group owner sees it: `GET /groups/{id}/audit` lists the group's
//! moderation events in order, to the owner only, in pages; events buffered in memory survive a
//! graceful shutdown.

use crate::common;

use crate::common::{TestApp, TestUser};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const UNKNOWN_ID: &str = "01900000-0000-7000-8000-000000000000";

fn audit_path(g: &str) -> String {
    format!("/groups/{g}/audit")
}

/// Every entry of the group's trail as (kind, actor, target), reading page by page.
async fn trail(
    app: &TestApp,
    viewer: &TestUser,
    g: &str,
    page: u32,
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("{}?limit={page}", audit_path(g));
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (s, b) = app.get(&path, &viewer.token).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let items = b["items"].as_array().unwrap();
        assert!(
            items.len() <= page as usize,
            "a page holds at most `limit` entries"
        );
        for e in items {
            let text = |k: &str| e[k].as_str().unwrap_or("").to_owned();
            assert!(e["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
            assert!(
                e.get("client_addr").is_none(),
                "addresses are not shown to owners: {e}"
            );
            out.push((text("kind"), text("actor_id"), text("target_id")));
        }
        match b["next_cursor"].as_str() {
            Some(c) => {
                assert!(!items.is_empty());
                cursor = Some(c.to_owned());
            }
            None => return out,
        }
    }
}

fn ev(kind: &str, actor: &TestUser, target: &TestUser) -> (String, String, String) {
    (kind.to_owned(), actor.id.clone(), target.id.clone())
}

#[tokio::test]
async fn owner_sees_the_groups_moderation_events_in_order() {
    let app = TestApp::spawn().await;
    let (alice, bob, carol, dave, erin) = (
        app.user().await,
        app.user().await,
        app.user().await,
        app.user().await,
        app.user().await,
    );
    let g = app.group(&alice, "private").await;
    let other = app.group(&bob, "open").await;

    app.add_member(&g, &alice, &bob).await; // request + approve
    let (s, _) = app
        .post(&format!("/groups/{g}/join"), &carol.token, json!({}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, _) = app
        .post(
            &format!("/groups/{g}/join-requests/{}/reject", carol.id),
            &alice.token,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    app.add_member(&g, &alice, &erin).await;
    let (s, _) = app
        .post(
            &format!("/groups/{g}/bans"),
            &alice.token,
            json!({"user_id": dave.id}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = app
        .delete(&format!("/groups/{g}/bans/{}", dave.id), &alice.token)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    app.send(&g, &bob, "not an audit event").await;
    let (s, _) = app
        .delete(&format!("/groups/{g}/members/{}", bob.id), &alice.token)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // Another group's events and account events stay out of this trail.
    let (s, _) = app
        .post(
            &format!("/groups/{other}/bans"),
            &bob.token,
            json!({"user_id": carol.id}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = app
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"username": alice.username, "password": "wrong-password"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let before_transfer = vec![
        ev("join_approved", &alice, &bob),
        ev("join_rejected", &alice, &carol),
        ev("join_approved", &alice, &erin),
        ev("member_banned", &alice, &dave),
        ev("member_unbanned", &alice, &dave),
        ev("member_removed", &alice, &bob),
    ];
    assert_eq!(trail(&app, &alice, &g, 50).await, before_transfer);

    // A member is not the owner: 403, like the other owner-only listings.
    let (s, b) = app.get(&audit_path(&g), &erin.token).await;
    common::assert_problem(&(s, b), 403, "forbidden");
    let (s, b) = app.get(&audit_path(&g), &carol.token).await;
    common::assert_problem(&(s, b), 403, "forbidden");

    let (s, b) = app
        .post(
            &format!("/groups/{g}/transfer-ownership"),
            &alice.token,
            json!({"new_owner_id": erin.id}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let mut all = before_transfer;
    all.push(ev("ownership_transferred", &alice, &erin));
    // The new owner reads the whole trail; the old one no longer can.
    assert_eq!(trail(&app, &erin, &g, 50).await, all);
    let (s, b) = app.get(&audit_path(&g), &alice.token).await;
    common::assert_problem(&(s, b), 403, "forbidden");
    assert_eq!(
        trail(&app, &bob, &other, 50).await,
        vec![ev("member_banned", &bob, &carol)]
    );
}

#[tokio::test]
async fn audit_listing_pages_and_refuses_bad_requests() {
    let app = TestApp::spawn().await;
    let owner = app.user().await;
    let g = app.group(&owner, "open").await;
    let mut expected = Vec::new();
    for _ in 0..3 {
        let u = app.user().await;
        for (method, path, body) in [
            (
                "POST",
                format!("/groups/{g}/bans"),
                json!({"user_id": u.id}),
            ),
            ("DELETE", format!("/groups/{g}/bans/{}", u.id), Value::Null),
        ] {
            let (s, b) = if method == "POST" {
                app.post(&path, &owner.token, body).await
            } else {
                app.delete(&path, &owner.token).await
            };
            assert!(s.is_success(), "{b}");
        }
        expected.push(ev("member_banned", &owner, &u));
        expected.push(ev("member_unbanned", &owner, &u));
    }
    for page in [1, 2, 4, 100] {
        assert_eq!(
            trail(&app, &owner, &g, page).await,
            expected,
            "page size {page}"
        );
    }

    for bad in ["?limit=0", "?limit=101", "?cursor=!!!"] {
        let (s, b) = app
            .get(&format!("{}{bad}", audit_path(&g)), &owner.token)
            .await;
        common::assert_problem(&(s, b), 422, "validation_failed");
    }
    let (s, b) = app.get(&audit_path(UNKNOWN_ID), &owner.token).await;
    common::assert_problem(&(s, b), 404, "not_found");
    let (s, b) = app.get(&audit_path("not-an-id"), &owner.token).await;
    assert!(
        s == StatusCode::NOT_FOUND || s == StatusCode::UNPROCESSABLE_ENTITY,
        "{s} {b}"
    );
    let (s, b) = app.call(Method::GET, &audit_path(&g), None, None).await;
    common::assert_problem(&(s, b), 401, "unauthenticated");
}

/// With a long flush interval and a large batch the events are still only in memory when the
/// server stops; the graceful shutdown writes them, so the restarted server lists them.
#[tokio::test]
async fn buffered_events_are_written_on_graceful_shutdown() {
    let mut app = TestApp::spawn_with(&[
        ("CONCLAVE_AUDIT_FLUSH_INTERVAL", "60s"),
        ("CONCLAVE_AUDIT_BATCH", "1000"),
    ])
    .await;
    let (owner, u) = (app.user().await, app.user().await);
    let g = app.group(&owner, "open").await;
    let (s, _) = app
        .post(
            &format!("/groups/{g}/bans"),
            &owner.token,
            json!({"user_id": u.id}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    app.restart().await;
    assert_eq!(
        trail(&app, &owner, &g, 10).await,
        vec![ev("member_banned", &owner, &u)]
    );
}

#[tokio::test]
async fn the_openapi_document_describes_the_audit_listing() {
    let app = TestApp::spawn().await;
    let (s, doc) = app
        .call(Method::GET, "/api-docs/openapi.json", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let op = &doc["paths"]["/api/v1/groups/{id}/audit"]["get"];
    assert!(op.is_object(), "missing from the OpenAPI document");
    for code in ["200", "401", "403", "404", "422"] {
        assert!(
            op["responses"][code].is_object(),
            "response {code} undocumented"
        );
    }
    let names: Vec<&str> = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["id", "limit", "cursor"]);
}
