//! docs/api.md, Groups: creating, finding and deleting groups, joining, join requests, members,
//! removal, leaving, bans, the rejoin cooldown and ownership transfer.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::{Reply, TestApp, TestUser};
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

mod catalog;
mod joining;
mod leaving_and_ownership;
mod manage;
mod removal_and_bans;
