//! API.md, Groups: creating, finding and deleting groups, joining, join requests, members,
//! removal, leaving, bans, the rejoin cooldown and ownership transfer.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Reply, TestApp, TestUser};
use reqwest::Method;
use serde_json::{Value, json};

const UNKNOWN_ID: &str = "01900000-0000-7000-8000-000000000000";

async fn create(app: &TestApp, owner: &TestUser, body: Value) -> Reply {
    app.call_full(Method::POST, "/groups", Some(&owner.token), Some(body))
        .await
}

async fn get(app: &TestApp, user: &TestUser, path: &str) -> Reply {
    app.call_full(Method::GET, path, Some(&user.token), None)
        .await
}

async fn post(app: &TestApp, user: &TestUser, path: &str, body: Value) -> Reply {
    app.call_full(Method::POST, path, Some(&user.token), Some(body))
        .await
}

async fn delete(app: &TestApp, user: &TestUser, path: &str) -> Reply {
    app.call_full(Method::DELETE, path, Some(&user.token), None)
        .await
}

async fn join(app: &TestApp, user: &TestUser, g: &str) -> Reply {
    post(app, user, &format!("/groups/{g}/join"), json!({})).await
}

async fn leave(app: &TestApp, user: &TestUser, g: &str) -> Reply {
    post(app, user, &format!("/groups/{g}/leave"), json!({})).await
}

async fn member_count(app: &TestApp, g: &str) -> u64 {
    let anyone = app.user().await;
    let r = get(app, &anyone, &format!("/groups/{g}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["member_count"].as_u64().unwrap()
}

/// Member user ids with their roles, in the order listed.
async fn members(app: &TestApp, viewer: &TestUser, g: &str) -> Vec<(String, String)> {
    let r = get(app, viewer, &format!("/groups/{g}/members")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["user_id"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn ids(items: &[Value], key: &str) -> Vec<String> {
    items
        .iter()
        .map(|i| i[key].as_str().unwrap().to_owned())
        .collect()
}

/// Follows `next_cursor` from `path` (which already has a query string) to the end.
async fn all_pages(app: &TestApp, user: &TestUser, path: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_owned(),
        };
        let r = get(app, user, &url).await;
        assert_eq!(r.status, 200, "{url}: {}", r.body);
        pages += 1;
        items.extend(r.body["items"].as_array().unwrap().iter().cloned());
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => {
                assert!(r.body["next_cursor"].is_null(), "{}", r.body);
                break;
            }
        }
        assert!(pages < 100, "paging does not end");
    }
    (items, pages)
}

fn assert_unique(ids: &[String]) {
    let set: HashSet<&String> = ids.iter().collect();
    assert_eq!(set.len(), ids.len(), "an item was listed twice: {ids:?}");
}

#[tokio::test]
async fn create_returns_the_group_with_defaults() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let r = create(
        &app,
        &alice,
        json!({"name": "  Rustaceans  ", "visibility": "open"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let g = &r.body;
    assert!(g["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(g["name"], "Rustaceans", "the name is trimmed");
    assert_eq!(g["description"], "");
    assert_eq!(g["visibility"], "open");
    assert_eq!(g["owner_id"], alice.id.as_str());
    assert_eq!(g["member_count"], 1);
    assert_eq!(g["max_members"], 1000, "the configured default");
    let created = g["created_at"].as_str().unwrap();
    time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339).unwrap();
    let id = g["id"].as_str().unwrap();
    let fetched = get(&app, &alice, &format!("/groups/{id}")).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(&fetched.body, g, "GET returns what POST returned");

    let r = create(
        &app,
        &alice,
        json!({"name": "Secret", "visibility": "private", "description": "for us", "max_members": 7}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["visibility"], "private");
    assert_eq!(r.body["description"], "for us");
    assert_eq!(r.body["max_members"], 7);
    // The creator is the owner and only member.
    let gid = r.body["id"].as_str().unwrap();
    assert_eq!(
        members(&app, &alice, gid).await,
        [(alice.id.clone(), "owner".to_owned())]
    );
}

#[tokio::test]
async fn create_validates_every_field() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let base = json!({"name": "ok", "visibility": "open"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = base.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let ok = [
        with("name", json!("n".repeat(100))),
        with("name", json!("ü".repeat(100))),
        with("name", json!("x")),
        with("description", json!("d".repeat(1000))),
        with("description", json!("")),
        with("max_members", json!(2)),
        with("max_members", json!(10_000)),
        with("visibility", json!("private")),
    ];
    for body in ok {
        let r = create(&app, &alice, body.clone()).await;
        assert_eq!(r.status, 201, "{body}: {}", r.body);
    }
    let bad = [
        (with("name", json!("")), "name"),
        (with("name", json!("   ")), "name"),
        (with("name", json!("n".repeat(101))), "name"),
        (with("name", json!("a\u{0}b")), "name"),
        (with("name", json!(5)), "name"),
        (without("name"), "name"),
        (with("description", json!("d".repeat(1001))), "description"),
        (with("visibility", json!("Open")), "visibility"),
        (with("visibility", json!("secret")), "visibility"),
        (without("visibility"), "visibility"),
        (with("max_members", json!(1)), "max_members"),
        (with("max_members", json!(0)), "max_members"),
        (with("max_members", json!(-5)), "max_members"),
        (with("max_members", json!(10_001)), "max_members"),
        (with("max_members", json!("ten")), "max_members"),
        (with("max_members", json!(2.5)), "max_members"),
    ];
    for (body, field) in bad {
        let r = create(&app, &alice, body.clone()).await;
        r.assert_problem(422, "validation_failed");
        assert_eq!(r.error_fields(), [field], "{body}: {}", r.body);
    }
    // All the problems at once.
    let r = create(
        &app,
        &alice,
        json!({"name": "", "visibility": "x", "max_members": 1}),
    )
    .await;
    r.assert_problem(422, "validation_failed");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["max_members", "name", "visibility"]);
    // Nothing was created by the refused requests.
    let mine = get(&app, &alice, "/groups/mine?limit=100").await;
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn get_unknown_or_malformed_ids_is_404_and_metadata_is_public() {
    let app = TestApp::spawn().await;
    let (alice, stranger) = (app.user().await, app.user().await);
    for id in [UNKNOWN_ID, "not-a-uuid", "123"] {
        get(&app, &alice, &format!("/groups/{id}"))
            .await
            .assert_problem(404, "not_found");
    }
    let g = app.group(&alice, "private").await;
    let r = get(&app, &stranger, &format!("/groups/{g}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["visibility"], "private");
    assert_eq!(r.body["member_count"], 1);
    assert_eq!(r.body["owner_id"], alice.id.as_str());
    app.fetch(app.client.get(app.url(&format!("/groups/{g}"))))
        .await
        .assert_problem(401, "unauthenticated");
}

#[tokio::test]
async fn list_filters_by_query_and_visibility() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.user().await, app.user().await);
    for (owner, name, vis) in [
        (&alice, "Rust Lovers", "open"),
        (&bob, "rusty tools", "private"),
        (&alice, "Go Gophers", "open"),
        (&bob, "TRUST fund", "private"),
        (&alice, "100% pure", "open"),
        (&alice, "1000 things", "open"),
        (&alice, "a_b", "open"),
        (&alice, "axb", "open"),
    ] {
        assert_eq!(
            create(&app, owner, json!({"name": name, "visibility": vis}))
                .await
                .status,
            201
        );
    }
    let names = |r: &Reply| -> Vec<String> {
        let mut v = ids(r.body["items"].as_array().unwrap(), "name");
        v.sort();
        v
    };
    let all = get(&app, &alice, "/groups").await;
    assert_eq!(all.status, 200);
    assert_eq!(
        names(&all).len(),
        8,
        "private groups are listed too: metadata is public"
    );
    assert!(all.body["next_cursor"].is_null());
    let item = &all.body["items"][0];
    for k in [
        "id",
        "name",
        "description",
        "visibility",
        "owner_id",
        "member_count",
        "max_members",
        "created_at",
    ] {
        assert!(item.get(k).is_some(), "{k} missing in {item}");
    }

    let q = get(&app, &alice, "/groups?query=rUsT").await;
    assert_eq!(names(&q), ["Rust Lovers", "TRUST fund", "rusty tools"]);
    let q = get(&app, &alice, "/groups?visibility=private").await;
    assert_eq!(names(&q), ["TRUST fund", "rusty tools"]);
    let q = get(&app, &alice, "/groups?visibility=open&query=rust").await;
    assert_eq!(names(&q), ["Rust Lovers"]);
    let q = get(&app, &alice, "/groups?query=nothing-like-this").await;
    assert_eq!(names(&q), Vec::<String>::new());
    // `%` and `_` are matched literally, not as wildcards.
    let q = get(&app, &alice, "/groups?query=100%25").await;
    assert_eq!(names(&q), ["100% pure"]);
    let q = get(&app, &alice, "/groups?query=a_b").await;
    assert_eq!(names(&q), ["a_b"]);
    // An empty query filters nothing.
    assert_eq!(names(&get(&app, &alice, "/groups?query=").await).len(), 8);

    let r = get(&app, &alice, "/groups?visibility=secret").await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.error_fields(), ["visibility"]);
    let long = "q".repeat(101);
    let r = get(&app, &alice, &format!("/groups?query={long}")).await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.error_fields(), ["query"]);
}

#[tokio::test]
async fn list_pages_visit_every_group_once() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let mut created = Vec::new();
    for i in 0..7 {
        let vis = if i % 2 == 0 { "open" } else { "private" };
        created.push(app.group(&alice, vis).await);
    }
    let (items, pages) = all_pages(&app, &alice, "/groups?limit=3").await;
    assert_eq!(pages, 3);
    let mut got = ids(&items, "id");
    assert_unique(&got);
    got.sort();
    created.sort();
    assert_eq!(got, created);
    // The filter holds on every page.
    let (items, _) = all_pages(&app, &alice, "/groups?limit=1&visibility=open").await;
    assert_eq!(items.len(), 4);
    assert!(items.iter().all(|g| g["visibility"] == "open"));
    let r = get(&app, &alice, "/groups?limit=100").await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 7);
    assert_eq!(
        get(&app, &alice, "/groups?limit=1").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Default page size is 50.
    for _ in 0..44 {
        app.group(&alice, "open").await;
    }
    let r = get(&app, &alice, "/groups").await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 50);
    assert!(r.body["next_cursor"].is_string());

    for bad in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=ten",
        "cursor=***",
        "cursor=%20",
    ] {
        let r = get(&app, &alice, &format!("/groups?{bad}")).await;
        r.assert_problem(422, "validation_failed");
        let field = bad.split('=').next().unwrap();
        assert_eq!(r.error_fields(), [field], "{bad}");
    }
}

#[tokio::test]
async fn mine_lists_the_callers_groups_with_roles() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.user().await, app.user().await);
    let own = app.group(&alice, "open").await;
    let bobs_open = app.group(&bob, "open").await;
    let bobs_private = app.group(&bob, "private").await;
    let pending = app.group(&bob, "private").await;
    let _unrelated = app.group(&bob, "open").await;
    app.add_member(&bobs_open, &bob, &alice).await;
    app.add_member(&bobs_private, &bob, &alice).await;
    assert_eq!(join(&app, &alice, &pending).await.status, 202);

    let (items, _) = all_pages(&app, &alice, "/groups/mine?limit=1").await;
    let mut got: Vec<(String, String)> = items
        .iter()
        .map(|g| {
            (
                g["id"].as_str().unwrap().to_owned(),
                g["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        (own.clone(), "owner".to_owned()),
        (bobs_open.clone(), "member".to_owned()),
        (bobs_private.clone(), "member".to_owned()),
    ];
    want.sort();
    assert_eq!(got, want, "a pending request is not membership");
    let g = items
        .iter()
        .find(|g| g["id"] == bobs_private.as_str())
        .unwrap();
    assert_eq!(g["owner_id"], bob.id.as_str());
    assert_eq!(g["member_count"], 2);
    assert_eq!(g["visibility"], "private");
    // A new user has none.
    let carol = app.user().await;
    let r = get(&app, &carol, "/groups/mine").await;
    assert_eq!(r.body, json!({"items": [], "next_cursor": null}));
    get(&app, &carol, "/groups/mine?limit=0")
        .await
        .assert_problem(422, "validation_failed");
}

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

/// Clients and the fuzzer's stateful phase follow the links from a created group to what can be
/// done with it; every link must point at an operation the document really has.
#[tokio::test]
async fn the_openapi_document_links_a_created_group_to_its_operations() {
    let app = TestApp::spawn().await;
    let doc = app
        .call_full(Method::GET, "/api-docs/openapi.json", None, None)
        .await
        .body;
    let links = doc["paths"]["/api/v1/groups"]["post"]["responses"]["201"]["links"]
        .as_object()
        .expect("links on the 201 of POST /groups");
    assert!(links.len() >= 8, "{links:?}");
    for (name, link) in links {
        assert_eq!(link["parameters"]["id"], "$response.body#/id", "{name}");
        let pointer = link["operationRef"]
            .as_str()
            .and_then(|r| r.strip_prefix('#'))
            .unwrap_or_else(|| panic!("{name}: no local operationRef"));
        let op = doc.pointer(pointer);
        assert!(
            op.is_some_and(|op| op["parameters"][0]["name"] == "id"),
            "{name}: {pointer} is not an operation taking the group id"
        );
    }
}
