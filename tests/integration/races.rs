//! Races through the real HTTP server: the atomicity docs/api.md promises ("two concurrent approvals,
//! a ban racing a join, or an ownership transfer racing a leave never leave a group without
//! exactly one owner, nor a banned member inside, nor more members than `max_members`"), and the
//! message pipeline's ordering and idempotency under concurrent senders. Each race is run many
//! rounds; every round checks what a user would see afterwards.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use crate::common::{TestApp, TestUser, unique};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinSet;

const ROUNDS: usize = 30;

type App = Arc<TestApp>;

async fn spawn() -> App {
    Arc::new(TestApp::spawn().await)
}

async fn users(app: &App, n: usize) -> Vec<TestUser> {
    let mut set = JoinSet::new();
    for _ in 0..n {
        let app = app.clone();
        set.spawn(async move { app.user().await });
    }
    set.join_all().await
}

async fn group_with(app: &App, owner: &TestUser, visibility: &str, max_members: u32) -> String {
    let (s, g) = app
        .post(
            "/groups",
            &owner.token,
            json!({"name": unique("race "), "visibility": visibility, "max_members": max_members}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    g["id"].as_str().unwrap().to_owned()
}

/// The group as anyone sees it, or `None` once it is gone (404).
async fn group_info(app: &App, g: &str, viewer: &TestUser) -> Option<Value> {
    let (s, body) = app.get(&format!("/groups/{g}"), &viewer.token).await;
    match s {
        StatusCode::OK => Some(body),
        StatusCode::NOT_FOUND => None,
        other => panic!("GET group: {other} {body}"),
    }
}

/// The member list as `viewer` (a member) sees it: user id -> role.
async fn member_roles(app: &App, g: &str, viewer: &TestUser) -> BTreeMap<String, String> {
    let (s, body) = app
        .get(&format!("/groups/{g}/members?limit=100"), &viewer.token)
        .await;
    assert_eq!(s, StatusCode::OK, "members: {body}");
    assert!(body["next_cursor"].is_null(), "test groups fit on one page");
    body["items"]
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

/// `member_count` equals the member list, which never exceeds `max_members`, and holds exactly
/// one owner, who is `owner_id`. Returns the members.
async fn assert_group_sound(app: &App, g: &str, viewer: &TestUser) -> BTreeMap<String, String> {
    let info = group_info(app, g, viewer).await.expect("group exists");
    let owner_id = info["owner_id"].as_str().unwrap().to_owned();
    let owner = TestUser {
        token: viewer.token.clone(),
        ..viewer.clone()
    };
    let members = member_roles(app, g, &owner).await;
    assert_eq!(
        info["member_count"].as_u64().unwrap() as usize,
        members.len(),
        "member_count vs list: {info} {members:?}"
    );
    assert!(
        members.len() as u64 <= info["max_members"].as_u64().unwrap(),
        "over max_members: {info}"
    );
    let owners: Vec<_> = members
        .iter()
        .filter(|(_, r)| *r == "owner")
        .map(|(u, _)| u.clone())
        .collect();
    assert_eq!(
        owners,
        vec![owner_id],
        "exactly one owner, and it is owner_id: {members:?} {info}"
    );
    members
}

fn spawn_call(
    set: &mut JoinSet<(usize, StatusCode, Value)>,
    tag: usize,
    app: &App,
    method: reqwest::Method,
    path: String,
    token: &str,
    body: Option<Value>,
) {
    let (app, token) = (app.clone(), token.to_owned());
    set.spawn(async move {
        let (s, b) = app.call(method, &path, Some(&token), body).await;
        (tag, s, b)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_approvals_never_overfill_a_private_group() {
    let app = spawn().await;
    let owner = app.user().await;
    let applicants = users(&app, 8).await;
    for round in 0..ROUNDS {
        let g = group_with(&app, &owner, "private", 4).await;
        for u in &applicants {
            let (s, b) = app
                .post(&format!("/groups/{g}/join"), &u.token, json!({}))
                .await;
            assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        }
        let mut set = JoinSet::new();
        for (i, u) in applicants.iter().enumerate() {
            let path = format!("/groups/{g}/join-requests/{}/approve", u.id);
            spawn_call(
                &mut set,
                i,
                &app,
                reqwest::Method::POST,
                path,
                &owner.token,
                Some(json!({})),
            );
        }
        let results = set.join_all().await;
        let approved: BTreeSet<_> = results
            .iter()
            .filter(|(_, s, _)| *s == StatusCode::OK)
            .map(|(i, _, _)| applicants[*i].id.clone())
            .collect();
        for (_, s, b) in &results {
            assert!(
                *s == StatusCode::OK || (*s == StatusCode::CONFLICT && b["code"] == "group_full"),
                "round {round}: {s} {b}"
            );
        }
        assert_eq!(approved.len(), 3, "round {round}: room for exactly 3 more");
        let members = assert_group_sound(&app, &g, &owner).await;
        let expected: BTreeSet<_> = approved.iter().cloned().chain([owner.id.clone()]).collect();
        assert_eq!(
            members.keys().cloned().collect::<BTreeSet<_>>(),
            expected,
            "round {round}"
        );
        // The refused ones are still waiting.
        let (s, reqs) = app
            .get(
                &format!("/groups/{g}/join-requests?limit=100"),
                &owner.token,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            reqs["items"].as_array().unwrap().len(),
            5,
            "round {round}: {reqs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_joins_never_overfill_an_open_group() {
    let app = spawn().await;
    let owner = app.user().await;
    let joiners = users(&app, 8).await;
    for round in 0..ROUNDS {
        let g = group_with(&app, &owner, "open", 3).await;
        let mut set = JoinSet::new();
        for (i, u) in joiners.iter().enumerate() {
            spawn_call(
                &mut set,
                i,
                &app,
                reqwest::Method::POST,
                format!("/groups/{g}/join"),
                &u.token,
                Some(json!({})),
            );
        }
        let results = set.join_all().await;
        let joined: BTreeSet<_> = results
            .iter()
            .filter(|(_, s, _)| *s == StatusCode::OK)
            .map(|(i, _, _)| joiners[*i].id.clone())
            .collect();
        for (_, s, b) in &results {
            assert!(
                *s == StatusCode::OK || (*s == StatusCode::CONFLICT && b["code"] == "group_full"),
                "round {round}: {s} {b}"
            );
        }
        assert_eq!(joined.len(), 2, "round {round}");
        let members = assert_group_sound(&app, &g, &owner).await;
        assert_eq!(members.len(), 3);
        assert!(joined.iter().all(|u| members.contains_key(u)));
    }
}

/// After a ban raced anything, the user is banned, outside, and cannot read or send.
async fn assert_banned_and_out(app: &App, g: &str, owner: &TestUser, u: &TestUser, round: usize) {
    let (s, bans) = app
        .get(&format!("/groups/{g}/bans?limit=100"), &owner.token)
        .await;
    assert_eq!(s, StatusCode::OK);
    let banned: Vec<_> = bans["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        banned,
        vec![u.id.as_str()],
        "round {round}: the ban always lands"
    );
    let members = assert_group_sound(app, g, owner).await;
    assert!(
        !members.contains_key(&u.id),
        "round {round}: a banned member is inside: {members:?}"
    );
    let (s, b) = app
        .post(
            &format!("/groups/{g}/messages"),
            &u.token,
            json!({"content": "let me in"}),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("banned")),
        "round {round}: send {b}"
    );
    let (s, b) = app.get(&format!("/groups/{g}/messages"), &u.token).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("banned")),
        "round {round}: read {b}"
    );
    let (s, b) = app
        .post(&format!("/groups/{g}/join"), &u.token, json!({}))
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("banned")),
        "round {round}: join {b}"
    );
    let (s, mine) = app.get("/groups/mine?limit=100", &u.token).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        !mine["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == g),
        "round {round}: still listed in mine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ban_racing_a_join_never_leaves_a_banned_member() {
    let app = spawn().await;
    let owner = app.user().await;
    let others = users(&app, 2).await;
    let u = app.user().await;
    for round in 0..ROUNDS {
        let g = group_with(&app, &owner, "open", 10).await;
        for o in &others {
            app.add_member(&g, &owner, o).await;
        }
        let mut set = JoinSet::new();
        spawn_call(
            &mut set,
            0,
            &app,
            reqwest::Method::POST,
            format!("/groups/{g}/join"),
            &u.token,
            Some(json!({})),
        );
        spawn_call(
            &mut set,
            1,
            &app,
            reqwest::Method::POST,
            format!("/groups/{g}/bans"),
            &owner.token,
            Some(json!({"user_id": u.id})),
        );
        for (tag, s, b) in set.join_all().await {
            match tag {
                0 => assert!(
                    s == StatusCode::OK || (s == StatusCode::FORBIDDEN && b["code"] == "banned"),
                    "round {round}: join {s} {b}"
                ),
                _ => assert_eq!(s, StatusCode::CREATED, "round {round}: ban {b}"),
            }
        }
        assert_banned_and_out(&app, &g, &owner, &u, round).await;
        assert_eq!(
            member_roles(&app, &g, &owner).await.len(),
            3,
            "round {round}: bystanders stay"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ban_racing_an_approval_never_leaves_a_banned_member() {
    let app = spawn().await;
    let owner = app.user().await;
    let u = app.user().await;
    for round in 0..ROUNDS {
        let g = group_with(&app, &owner, "private", 10).await;
        let (s, b) = app
            .post(&format!("/groups/{g}/join"), &u.token, json!({}))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        let mut set = JoinSet::new();
        let approve = format!("/groups/{g}/join-requests/{}/approve", u.id);
        spawn_call(
            &mut set,
            0,
            &app,
            reqwest::Method::POST,
            approve,
            &owner.token,
            Some(json!({})),
        );
        spawn_call(
            &mut set,
            1,
            &app,
            reqwest::Method::POST,
            format!("/groups/{g}/bans"),
            &owner.token,
            Some(json!({"user_id": u.id})),
        );
        // The user also tries to send the moment they might be in.
        spawn_call(
            &mut set,
            2,
            &app,
            reqwest::Method::POST,
            format!("/groups/{g}/messages"),
            &u.token,
            Some(json!({"content": "sneaky"})),
        );
        for (tag, s, b) in set.join_all().await {
            match tag {
                0 => assert!(
                    s == StatusCode::OK || (s == StatusCode::NOT_FOUND && b["code"] == "not_found"),
                    "round {round}: approve {s} {b}"
                ),
                1 => assert_eq!(s, StatusCode::CREATED, "round {round}: ban {b}"),
                _ => assert!(
                    s == StatusCode::ACCEPTED
                        || s == StatusCode::NOT_FOUND
                        || s == StatusCode::FORBIDDEN,
                    "round {round}: send {s} {b}"
                ),
            }
        }
        assert_banned_and_out(&app, &g, &owner, &u, round).await;
        let (s, reqs) = app
            .get(&format!("/groups/{g}/join-requests"), &owner.token)
            .await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            reqs["items"].as_array().unwrap().is_empty(),
            "round {round}: a banned user's request remains"
        );
    }
}

/// Transfer to `heir`, the owner leaving and the heir leaving, all at once.
async fn transfer_race(
    app: &App,
    owner: &TestUser,
    heir: &TestUser,
    bystander: Option<&TestUser>,
    round: usize,
) {
    let g = group_with(app, owner, "open", 10).await;
    app.add_member(&g, owner, heir).await;
    if let Some(b) = bystander {
        app.add_member(&g, owner, b).await;
    }
    let mut set = JoinSet::new();
    spawn_call(
        &mut set,
        0,
        app,
        reqwest::Method::POST,
        format!("/groups/{g}/transfer-ownership"),
        &owner.token,
        Some(json!({"new_owner_id": heir.id})),
    );
    spawn_call(
        &mut set,
        1,
        app,
        reqwest::Method::POST,
        format!("/groups/{g}/leave"),
        &owner.token,
        Some(json!({})),
    );
    spawn_call(
        &mut set,
        2,
        app,
        reqwest::Method::POST,
        format!("/groups/{g}/leave"),
        &heir.token,
        Some(json!({})),
    );
    let results = set.join_all().await;
    for (tag, s, b) in &results {
        let fine = match tag {
            0 => {
                *s == StatusCode::OK
                    || s.as_u16() == 422
                    || s.as_u16() == 403
                    || *s == StatusCode::NOT_FOUND
            }
            _ => {
                *s == StatusCode::NO_CONTENT
                    || (*s == StatusCode::CONFLICT && b["code"] == "owner_must_transfer")
                    || *s == StatusCode::NOT_FOUND
            }
        };
        assert!(fine, "round {round}: call {tag}: {s} {b}");
        assert_ne!(s.as_u16(), 500, "round {round}: {b}");
    }
    let viewer = bystander.unwrap_or(owner);
    match group_info(app, &g, viewer).await {
        Some(info) => {
            // Whoever is still inside sees one owner.
            let owner_id = info["owner_id"].as_str().unwrap();
            let who = [owner, heir]
                .into_iter()
                .chain(bystander)
                .find(|u| u.id == owner_id)
                .expect("owner is a known user");
            let members = assert_group_sound(app, &g, who).await;
            assert!(members.contains_key(owner_id));
            if let Some(b) = bystander {
                assert!(
                    members.contains_key(&b.id),
                    "round {round}: the bystander never left"
                );
            }
        }
        None => {
            // Only legitimate if everybody left: the last one out was the sole owner.
            assert!(
                bystander.is_none(),
                "round {round}: a group with a member left in it vanished"
            );
            for u in [owner, heir] {
                let (s, mine) = app.get("/groups/mine?limit=100", &u.token).await;
                assert_eq!(s, StatusCode::OK);
                assert!(
                    !mine["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|x| x["id"] == g.as_str())
                );
            }
            let codes: Vec<_> = results.iter().map(|(t, s, _)| (*t, s.as_u16())).collect();
            assert!(
                codes.contains(&(2, 204)) && codes.contains(&(1, 204)),
                "round {round}: deleted though not everyone left: {codes:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transfer_racing_leaves_keeps_exactly_one_owner() {
    let app = spawn().await;
    let people = users(&app, 3).await;
    for round in 0..ROUNDS {
        transfer_race(&app, &people[0], &people[1], Some(&people[2]), round).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transfer_racing_leaves_in_a_pair_keeps_one_owner_or_deletes_an_empty_group() {
    let app = spawn().await;
    let people = users(&app, 2).await;
    for round in 0..ROUNDS {
        transfer_race(&app, &people[0], &people[1], None, round).await;
    }
}

async fn all_messages(app: &App, g: &str, reader: &TestUser) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0u64;
    loop {
        let (s, page) = app
            .get(
                &format!("/groups/{g}/messages?after_seq={after}&limit=100"),
                &reader.token,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap().clone();
        if items.is_empty() {
            return out;
        }
        after = items.last().unwrap()["seq"].as_u64().unwrap();
        out.extend(items);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_senders_get_contiguous_seq_and_every_message_once() {
    let app = spawn().await;
    let owner = app.user().await;
    let senders = users(&app, 3).await;
    const PER_SENDER: usize = 8;
    for round in 0..ROUNDS {
        let g = group_with(&app, &owner, "private", 10).await;
        for u in &senders {
            app.add_member(&g, &owner, u).await;
        }
        let everyone: Vec<_> = senders.iter().chain([&owner]).cloned().collect();
        let mut set = JoinSet::new();
        for (i, u) in everyone.iter().enumerate() {
            for k in 0..PER_SENDER {
                let path = format!("/groups/{g}/messages");
                spawn_call(
                    &mut set,
                    i * 100 + k,
                    &app,
                    reqwest::Method::POST,
                    path,
                    &u.token,
                    Some(json!({"content": format!("r{round} s{i} m{k}")})),
                );
            }
        }
        let mut accepted = HashSet::new();
        for (_, s, b) in set.join_all().await {
            assert_eq!(s, StatusCode::ACCEPTED, "round {round}: {b}");
            assert!(
                accepted.insert(b["id"].as_str().unwrap().to_owned()),
                "round {round}: an id was handed out twice"
            );
        }
        let n = everyone.len() * PER_SENDER;
        let msgs = all_messages(&app, &g, &senders[0]).await;
        let seqs: Vec<_> = msgs.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=n as u64).collect::<Vec<_>>(),
            "round {round}: seq 1..N without gaps or repeats"
        );
        let ids: Vec<_> = msgs
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            ids.iter().collect::<HashSet<_>>().len(),
            n,
            "round {round}: a message stored twice"
        );
        assert_eq!(
            ids.into_iter().collect::<HashSet<_>>(),
            accepted,
            "round {round}: accepted ids vs stored ids"
        );
        // Each sender's own messages are in the order... of nothing in particular, but all there
        // with the right content and sender.
        for (i, u) in everyone.iter().enumerate() {
            let mine: BTreeSet<_> = msgs
                .iter()
                .filter(|m| m["sender_id"] == u.id.as_str())
                .map(|m| m["content"].as_str().unwrap().to_owned())
                .collect();
            let expected: BTreeSet<_> = (0..PER_SENDER)
                .map(|k| format!("r{round} s{i} m{k}"))
                .collect();
            assert_eq!(mine, expected, "round {round}: sender {i}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_client_msg_ids_store_one_message() {
    let app = spawn().await;
    let owner = app.user().await;
    let other = app.user().await;
    const COPIES: usize = 8;
    for round in 0..ROUNDS {
        let g = group_with(&app, &owner, "open", 10).await;
        app.add_member(&g, &owner, &other).await;
        let cmid = format!("retry-{round}");
        let mut set = JoinSet::new();
        for k in 0..COPIES {
            let body = json!({"content": "only once", "client_msg_id": cmid});
            spawn_call(
                &mut set,
                k,
                &app,
                reqwest::Method::POST,
                format!("/groups/{g}/messages"),
                &owner.token,
                Some(body),
            );
        }
        // Another member's identical key is theirs alone.
        let body = json!({"content": "mine", "client_msg_id": cmid});
        spawn_call(
            &mut set,
            99,
            &app,
            reqwest::Method::POST,
            format!("/groups/{g}/messages"),
            &other.token,
            Some(body),
        );
        let mut ids = BTreeSet::new();
        let mut other_id = None;
        for (tag, s, b) in set.join_all().await {
            assert_eq!(s, StatusCode::ACCEPTED, "round {round}: {b}");
            let id = b["id"].as_str().unwrap().to_owned();
            if tag == 99 {
                other_id = Some(id);
            } else {
                ids.insert(id);
            }
        }
        assert_eq!(
            ids.len(),
            1,
            "round {round}: every copy gets the same id: {ids:?}"
        );
        let id = ids.into_iter().next().unwrap();
        let other_id = other_id.unwrap();
        assert_ne!(id, other_id);
        let msgs = all_messages(&app, &g, &owner).await;
        assert_eq!(
            msgs.len(),
            2,
            "round {round}: stored once per sender: {msgs:?}"
        );
        let seqs: Vec<_> = msgs.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, vec![1, 2]);
        let ours: Vec<_> = msgs.iter().filter(|m| m["id"] == id.as_str()).collect();
        assert_eq!(ours.len(), 1);
        assert_eq!(ours[0]["content"], "only once");
        assert_eq!(ours[0]["client_msg_id"], cmid.as_str());
        assert!(
            msgs.iter()
                .any(|m| m["id"] == other_id.as_str() && m["content"] == "mine")
        );
        // A later retry still answers with the same id, and stores nothing.
        let (s, b) = app
            .post(
                &format!("/groups/{g}/messages"),
                &owner.token,
                json!({"content": "only once", "client_msg_id": cmid}),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        assert_eq!(b["id"], id.as_str());
        assert_eq!(all_messages(&app, &g, &owner).await.len(), 2);
    }
}
