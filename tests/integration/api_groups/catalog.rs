//! Creating groups and finding them: by id, by search and visibility (paged), the caller's own,
//! and the OpenAPI links from a created group to its operations.

use super::*;

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
