//! The authorization matrix: every REST endpoint of docs/api.md and every Socket.IO event, for every
//! relation a caller can have to a group (owner, member, pending requester, banned, former
//! member within the private-group cooldown, stranger, unauthenticated), in open and private
//! groups, with the exact status and `code` docs/api.md promises.
//!
//! Each cell gets a group of its own, built through the real API, so no cell depends on what
//! another did. Every mismatch is collected and reported with its cell, then the test fails.
//! On top of the codes: no one outside a private group finds a member's id or name, or a
//! message's content, in any answer; sockets of non-members (banned included) never receive
//! a message of the group, whether they were connected before the relation was set up or after.

use std::fmt;
use std::time::Duration;

use crate::common::sio::{SioClient, SioError};
use crate::common::{TestApp, TestUser, unique};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rel {
    Owner,
    Member,
    Pending,
    Banned,
    /// Left the group; in a private group within the rejoin cooldown.
    Former,
    Stranger,
    Anonymous,
}

const RELS: [Rel; 7] = [
    Rel::Owner,
    Rel::Member,
    Rel::Pending,
    Rel::Banned,
    Rel::Former,
    Rel::Stranger,
    Rel::Anonymous,
];

impl fmt::Display for Rel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rel::Owner => "owner",
            Rel::Member => "member",
            Rel::Pending => "pending requester",
            Rel::Banned => "banned",
            Rel::Former => "former member (cooldown)",
            Rel::Stranger => "stranger",
            Rel::Anonymous => "unauthenticated",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Vis {
    Open,
    Private,
}

impl Vis {
    fn as_str(self) -> &'static str {
        match self {
            Vis::Open => "open",
            Vis::Private => "private",
        }
    }
}

/// What a cell must answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Ok(u16),
    Err(u16, &'static str),
    /// The relation cannot exist here (no join requests in open groups).
    NA,
}

const fn ok(s: u16) -> Want {
    Want::Ok(s)
}
const fn err(s: u16, code: &'static str) -> Want {
    Want::Err(s, code)
}
const NA: Want = Want::NA;
const UNAUTH: Want = err(401, "unauthenticated");
const FORBID: Want = err(403, "forbidden");
const NOTF: Want = err(404, "not_found");
const BANNED: Want = err(403, "banned");

impl fmt::Display for Want {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Want::Ok(s) => write!(f, "{s}"),
            Want::Err(s, c) => write!(f, "{s} {c}"),
            Want::NA => f.write_str("n/a"),
        }
    }
}

/// One REST call. Placeholders in `path` and `body`: `{g}` the group, `{other}` another member,
/// `{requester}` the pending requester, `{banned}` the banned user, `{name}` a fresh name.
/// Expectations are in [`RELS`] order: owner, member, pending, banned, former, stranger, anonymous.
struct Row {
    method: Method,
    path: &'static str,
    body: Option<&'static str>,
    private: [Want; 7],
    open: [Want; 7],
}

/// The same expectations for both visibilities (`NA` for a pending requester in open groups).
fn both(method: Method, path: &'static str, body: Option<&'static str>, w: [Want; 7]) -> Row {
    let mut open = w;
    open[2] = NA;
    Row {
        method,
        path,
        body,
        private: w,
        open,
    }
}

/// Any signed-in caller may; no token, no entry.
const ANYONE: [Want; 7] = [ok(200), ok(200), ok(200), ok(200), ok(200), ok(200), UNAUTH];
const OWNER_ONLY_200: [Want; 7] = [ok(200), FORBID, FORBID, FORBID, FORBID, FORBID, UNAUTH];
const OWNER_ONLY_204: [Want; 7] = [ok(204), FORBID, FORBID, FORBID, FORBID, FORBID, UNAUTH];

fn rows() -> Vec<Row> {
    use Method as M;
    // Reading messages or members: members only; banned users are told so; other outsiders get
    // 404 in private groups (nothing is leaked) and 403 in open ones (the group is public).
    let members_only = |s: u16| Row {
        method: M::GET,
        path: "",
        body: None,
        private: [ok(s), ok(s), NOTF, BANNED, NOTF, NOTF, UNAUTH],
        open: [ok(s), ok(s), NA, BANNED, FORBID, FORBID, UNAUTH],
    };
    vec![
        both(M::GET, "/users/me", None, ANYONE),
        both(
            M::POST,
            "/groups",
            Some(r#"{"name":"{name}","visibility":"private"}"#),
            [ok(201), ok(201), ok(201), ok(201), ok(201), ok(201), UNAUTH],
        ),
        both(M::GET, "/groups?query=group", None, ANYONE),
        both(M::GET, "/groups/mine", None, ANYONE),
        // Metadata is public.
        both(M::GET, "/groups/{g}", None, ANYONE),
        both(M::DELETE, "/groups/{g}", None, OWNER_ONLY_204),
        Row {
            method: M::POST,
            path: "/groups/{g}/join",
            body: Some("{}"),
            private: [
                err(409, "already_member"),
                err(409, "already_member"),
                err(409, "request_pending"),
                BANNED,
                err(403, "cooldown_active"),
                ok(202),
                UNAUTH,
            ],
            open: [
                err(409, "already_member"),
                err(409, "already_member"),
                NA,
                BANNED,
                ok(200),
                ok(200),
                UNAUTH,
            ],
        },
        both(
            M::DELETE,
            "/groups/{g}/join-request",
            None,
            [NOTF, NOTF, ok(204), NOTF, NOTF, NOTF, UNAUTH],
        ),
        both(M::GET, "/groups/{g}/join-requests", None, OWNER_ONLY_200),
        Row {
            method: M::POST,
            path: "/groups/{g}/join-requests/{requester}/approve",
            body: Some("{}"),
            private: OWNER_ONLY_200,
            // No request to approve in an open group.
            open: [NOTF, FORBID, NA, FORBID, FORBID, FORBID, UNAUTH],
        },
        Row {
            method: M::POST,
            path: "/groups/{g}/join-requests/{requester}/reject",
            body: Some("{}"),
            private: OWNER_ONLY_204,
            open: [NOTF, FORBID, NA, FORBID, FORBID, FORBID, UNAUTH],
        },
        Row {
            path: "/groups/{g}/members",
            ..members_only(200)
        },
        both(
            M::DELETE,
            "/groups/{g}/members/{other}",
            None,
            OWNER_ONLY_204,
        ),
        both(
            M::POST,
            "/groups/{g}/leave",
            Some("{}"),
            [
                err(409, "owner_must_transfer"),
                ok(204),
                NOTF,
                NOTF,
                NOTF,
                NOTF,
                UNAUTH,
            ],
        ),
        both(
            M::POST,
            "/groups/{g}/bans",
            Some(r#"{"user_id":"{other}"}"#),
            [ok(201), FORBID, FORBID, FORBID, FORBID, FORBID, UNAUTH],
        ),
        both(M::GET, "/groups/{g}/bans", None, OWNER_ONLY_200),
        both(M::DELETE, "/groups/{g}/bans/{banned}", None, OWNER_ONLY_204),
        both(
            M::POST,
            "/groups/{g}/transfer-ownership",
            Some(r#"{"new_owner_id":"{other}"}"#),
            OWNER_ONLY_200,
        ),
        Row {
            method: M::POST,
            path: "/groups/{g}/messages",
            body: Some(r#"{"content":"hello from the matrix"}"#),
            ..members_only(202)
        },
        Row {
            path: "/groups/{g}/messages",
            ..members_only(200)
        },
        // The owner's own message: only its sender edits; the sender or the owner deletes.
        Row {
            method: M::PATCH,
            path: "/groups/{g}/messages/{msg}",
            body: Some(r#"{"content":"edited by the matrix"}"#),
            private: [ok(202), FORBID, NOTF, BANNED, NOTF, NOTF, UNAUTH],
            open: [ok(202), FORBID, NA, BANNED, FORBID, FORBID, UNAUTH],
        },
        Row {
            method: M::DELETE,
            path: "/groups/{g}/messages/{msg}",
            body: None,
            private: [ok(202), FORBID, NOTF, BANNED, NOTF, NOTF, UNAUTH],
            open: [ok(202), FORBID, NA, BANNED, FORBID, FORBID, UNAUTH],
        },
        Row {
            method: M::PUT,
            path: "/groups/{g}/read",
            body: Some(r#"{"seq":1}"#),
            ..members_only(204)
        },
        Row {
            path: "/groups/{g}/reads",
            ..members_only(200)
        },
    ]
}

/// The auth calls need no token; the caller's own credentials are what they act on.
fn auth_rows() -> Vec<(Method, &'static str)> {
    vec![
        (Method::POST, "/auth/register"),
        (Method::POST, "/auth/login"),
        (Method::POST, "/auth/refresh"),
        (Method::POST, "/auth/logout"),
    ]
}

/// The users of one cell: `actor` is the caller for `rel` (for anonymous calls, a user whose
/// credentials the public auth calls use).
struct Cast {
    owner: TestUser,
    other: TestUser,
    member: TestUser,
    requester: TestUser,
    banned: TestUser,
    former: TestUser,
    stranger: TestUser,
    outsider: TestUser,
}

impl Cast {
    async fn new(app: &TestApp) -> Self {
        Self {
            owner: app.user_named(&unique("owner")).await,
            other: app.user_named(&unique("other")).await,
            member: app.user_named(&unique("member")).await,
            requester: app.user_named(&unique("requester")).await,
            banned: app.user_named(&unique("banned")).await,
            former: app.user_named(&unique("former")).await,
            stranger: app.user_named(&unique("stranger")).await,
            outsider: app.user_named(&unique("outsider")).await,
        }
    }

    fn actor(&self, rel: Rel) -> &TestUser {
        match rel {
            Rel::Owner => &self.owner,
            Rel::Member => &self.member,
            Rel::Pending => &self.requester,
            Rel::Banned => &self.banned,
            Rel::Former => &self.former,
            Rel::Stranger => &self.stranger,
            Rel::Anonymous => &self.outsider,
        }
    }

    /// What an outsider of a private group must never see.
    fn secrets(&self) -> Vec<String> {
        vec![
            self.other.id.clone(),
            self.other.username.clone(),
            self.member.id.clone(),
            self.member.username.clone(),
        ]
    }
}

/// Builds a group in which each cast member has their relation, through the API; returns its
/// id and that of the message `secret` the owner has posted in it.
async fn group_with_relations(app: &TestApp, c: &Cast, vis: Vis, secret: &str) -> (String, String) {
    let g = app.group(&c.owner, vis.as_str()).await;
    app.add_member(&g, &c.owner, &c.other).await;
    app.add_member(&g, &c.owner, &c.member).await;
    if vis == Vis::Private {
        let (s, b) = app
            .post(&format!("/groups/{g}/join"), &c.requester.token, json!({}))
            .await;
        assert_eq!(s, 202, "join request: {b}");
    }
    // The banned user was a member first.
    app.add_member(&g, &c.owner, &c.banned).await;
    let (s, b) = app
        .post(
            &format!("/groups/{g}/bans"),
            &c.owner.token,
            json!({"user_id": c.banned.id}),
        )
        .await;
    assert_eq!(s, 201, "ban: {b}");
    app.add_member(&g, &c.owner, &c.former).await;
    let (s, b) = app
        .post(&format!("/groups/{g}/leave"), &c.former.token, json!({}))
        .await;
    assert_eq!(s, 204, "leave: {b}");
    let msg = app.send(&g, &c.owner, secret).await;
    (g, msg)
}

fn fill(template: &str, g: &str, msg: &str, c: &Cast) -> String {
    template
        .replace("{g}", g)
        .replace("{msg}", msg)
        .replace("{other}", &c.other.id)
        .replace("{requester}", &c.requester.id)
        .replace("{banned}", &c.banned.id)
        .replace("{name}", &unique("matrix group "))
}

/// Compares an answer with what the cell wants; `None` when it matches.
fn check(want: Want, status: u16, body: &Value) -> Option<String> {
    match want {
        Want::NA => None,
        Want::Ok(s) if s == status => None,
        Want::Err(s, code) if s == status && body["code"] == code && body["status"] == s => {
            if code == "cooldown_active" {
                let left = body["retry_after"].as_u64().unwrap_or(0);
                if !(1..=48 * 3600).contains(&left) {
                    return Some(format!(
                        "cooldown_active without a sane retry_after: {body}"
                    ));
                }
            }
            None
        }
        _ => Some(format!("expected {want}, got {status} {body}")),
    }
}

async fn spawn() -> TestApp {
    TestApp::spawn_with(&[("CONCLAVE_SOCKET_EVENTS_PER_SEC", "1000")]).await
}

/// Runs `cells` at most 8 at a time; returns every failure message.
async fn run_cells<F>(cells: Vec<F>) -> Vec<String>
where
    F: Future<Output = Vec<String>>,
{
    futures::stream::iter(cells)
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect()
}

fn report(what: &str, cells: usize, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} of {cells} {what} cells differ from docs/api.md:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn rest_endpoints_by_relation_and_visibility() {
    let app = spawn().await;
    let app = &app;
    let mut cells = Vec::new();
    for row in rows() {
        let row = std::sync::Arc::new(row);
        for vis in [Vis::Open, Vis::Private] {
            let row = row.clone();
            cells.push(async move {
                let cast = Cast::new(app).await;
                let mut failures = Vec::new();
                for (i, rel) in RELS.into_iter().enumerate() {
                    let want = match vis {
                        Vis::Open => row.open[i],
                        Vis::Private => row.private[i],
                    };
                    if want == NA {
                        continue;
                    }
                    let secret = unique("secret message ");
                    let (g, msg) = group_with_relations(app, &cast, vis, &secret).await;
                    let path = fill(row.path, &g, &msg, &cast);
                    let body = row.body.map(|b| {
                        serde_json::from_str::<Value>(&fill(b, &g, &msg, &cast))
                            .expect("body template")
                    });
                    let token = (rel != Rel::Anonymous).then(|| cast.actor(rel).token.as_str());
                    let (status, answer) = app.call(row.method.clone(), &path, token, body).await;
                    let cell = format!("[{}] {} {} × {rel}", vis.as_str(), row.method, row.path);
                    if let Some(f) = check(want, status.as_u16(), &answer) {
                        failures.push(format!("{cell}: {f}"));
                    }
                    if status.is_server_error() {
                        failures.push(format!("{cell}: server error {answer}"));
                    }
                    // An outsider learns nothing of a private group's members or messages.
                    if vis == Vis::Private && !matches!(rel, Rel::Owner | Rel::Member) {
                        let text = answer.to_string();
                        for s in cast.secrets().iter().chain([&secret]) {
                            if text.contains(s.as_str()) {
                                failures.push(format!("{cell}: leaks {s:?} in {answer}"));
                            }
                        }
                    }
                }
                failures
            });
        }
    }
    let n = cells.len() * RELS.len();
    report("REST", n, run_cells(cells).await);
}

#[tokio::test]
async fn auth_endpoints_need_no_token_and_act_on_the_callers_credentials() {
    let app = spawn().await;
    let mut failures = Vec::new();
    for (method, path) in auth_rows() {
        // Whoever calls (any token, or none), the credentials in the body decide.
        for rel in [Rel::Stranger, Rel::Anonymous] {
            let cast = Cast::new(&app).await;
            let u = cast.actor(rel);
            let body = match path {
                "/auth/register" => {
                    json!({"username": unique("newcomer"), "password": "long enough password"})
                }
                "/auth/login" => json!({"username": u.username, "password": u.password}),
                _ => json!({"refresh_token": u.refresh}),
            };
            let want = match path {
                "/auth/register" => ok(201),
                "/auth/logout" => ok(204),
                _ => ok(200),
            };
            let token = (rel == Rel::Stranger).then_some(cast.owner.token.as_str());
            let (status, answer) = app.call(method.clone(), path, token, Some(body)).await;
            if let Some(f) = check(want, status.as_u16(), &answer) {
                failures.push(format!("{method} {path} × {rel}: {f}"));
            }
        }
    }
    report("auth", auth_rows().len() * 2, failures);
}

// ---- Socket.IO ----------------------------------------------------------------------------

const WAIT: Duration = Duration::from_secs(10);

/// The ack of a socket event, as a status-like answer: `Ok` or the error code.
fn ack_check(want: Want, ack: &Value) -> Option<String> {
    match (want, ack["ok"].as_bool()) {
        (Want::NA, _) => None,
        (Want::Ok(_), Some(true)) => None,
        (Want::Err(_, code), Some(false)) if ack["error"]["code"] == code => None,
        _ => Some(format!("expected {want}, got ack {ack}")),
    }
}

/// Every `message:new` of `group` received so far.
fn messages_of(c: &mut SioClient, group: &str) -> Vec<Value> {
    c.drain()
        .into_iter()
        .filter(|(n, m)| n == "message:new" && m["group_id"] == group)
        .map(|(_, m)| m)
        .collect()
}

/// Every `message:new` received up to and including the one with this id (`None`: it never came).
async fn messages_until(c: &mut SioClient, id: &str) -> Option<Vec<Value>> {
    let mut seen = Vec::new();
    while let Some(m) = c.next_event("message:new", WAIT).await {
        let done = m["id"] == id;
        seen.push(m);
        if done {
            return Some(seen);
        }
    }
    None
}

async fn wait_for_message(c: &mut SioClient, id: &str) -> bool {
    messages_until(c, id).await.is_some()
}

/// `message:send`, `group:sync`, `typing`, `message:edit`, `message:delete` and room
/// membership, for every relation. Each user's
/// relation is set up twice over: one socket connected before (so it follows live changes:
/// joined, banned, left) and one after (the rooms joined at connect).
#[tokio::test]
async fn socket_events_by_relation_and_visibility() {
    let app = spawn().await;
    let app = &app;
    // Same codes as the REST rows for POST and GET .../messages.
    let send_private = [ok(0), ok(0), NOTF, BANNED, NOTF, NOTF, UNAUTH];
    let send_open = [ok(0), ok(0), NA, BANNED, FORBID, FORBID, UNAUTH];
    let mut cells = Vec::new();
    for vis in [Vis::Open, Vis::Private] {
        for (i, rel) in RELS.into_iter().enumerate() {
            let want = match vis {
                Vis::Open => send_open[i],
                Vis::Private => send_private[i],
            };
            if want == NA {
                continue;
            }
            cells.push(async move {
                let cell = format!("[{}] socket × {rel}", vis.as_str());
                socket_cell(app, vis, rel, want)
                    .await
                    .into_iter()
                    .map(|f| format!("{cell}: {f}"))
                    .collect::<Vec<_>>()
            });
        }
    }
    let n = cells.len();
    report("Socket.IO", n, run_cells(cells).await);
}

async fn socket_cell(app: &TestApp, vis: Vis, rel: Rel, want: Want) -> Vec<String> {
    let mut failures = Vec::new();
    let cast = Cast::new(app).await;
    if rel == Rel::Anonymous {
        for auth in [None, Some(json!({})), Some(json!({"token": "garbage"}))] {
            match SioClient::connect_auth(&app.base, auth.clone()).await {
                Err(SioError::Refused(m)) if m == "unauthorized" => {}
                other => failures.push(format!(
                    "connect with {auth:?}: expected connect_error unauthorized, got {:?}",
                    other.map(|_| ())
                )),
            }
        }
        return failures;
    }
    let actor = cast.actor(rel).clone();
    // Whoever watches for relayed events: the owner, or a member when the owner acts.
    let watcher = if rel == Rel::Owner {
        &cast.member
    } else {
        &cast.owner
    };
    // A group every actor is in, to fence delivery: once its message arrives, anything sent to
    // the group under test before it would have arrived too.
    let fence_group = app.group(&cast.owner, "open").await;
    app.add_member(&fence_group, &cast.owner, &cast.member)
        .await;
    if !matches!(rel, Rel::Owner | Rel::Member) {
        app.add_member(&fence_group, &cast.owner, &actor).await;
    }

    let connect = |u: TestUser| async move {
        SioClient::connect(&app.base, &u.token)
            .await
            .unwrap_or_else(|e| panic!("socket for {}: {e}", u.username))
    };
    let mut before = connect(actor.clone()).await;
    let secret = unique("secret message ");
    let (g, secret_id) = group_with_relations(app, &cast, vis, &secret).await;
    let mut after = connect(actor.clone()).await;
    let mut watch = connect(watcher.clone()).await;
    let member = matches!(rel, Rel::Owner | Rel::Member);

    // message:send and group:sync answer like POST and GET .../messages.
    for (name, c) in [("connected before", &before), ("connected after", &after)] {
        let ack = c
            .emit_with_ack(
                "message:send",
                json!({"group_id": g, "content": format!("socket send {name}")}),
            )
            .await;
        if let Some(f) = ack_check(want, &ack) {
            failures.push(format!("message:send ({name}): {f}"));
        }
        let ack = c
            .emit_with_ack("group:sync", json!({"group_id": g, "after_seq": 0}))
            .await;
        if let Some(f) = ack_check(want, &ack) {
            failures.push(format!("group:sync ({name}): {f}"));
        }
        if !member && ack.to_string().contains(&secret) {
            failures.push(format!("group:sync ({name}) leaks the history: {ack}"));
        }
    }

    // typing reaches the group only from members.
    after.emit("typing", json!({"group_id": g})).unwrap();
    let fence_typist = connect(cast.other.clone()).await;
    fence_typist.emit("typing", json!({"group_id": g})).unwrap();
    let mut typists = Vec::new();
    while let Some(t) = watch.next_event("typing", WAIT).await {
        let from = t["user_id"].as_str().unwrap_or_default().to_owned();
        typists.push(from.clone());
        if from == cast.other.id {
            break;
        }
    }
    // The actor's typing was emitted first, but handlers run concurrently: give a late relay a
    // moment to show up (this can only miss a leak, never invent one).
    while let Some(t) = watch.next_event("typing", Duration::from_millis(300)).await {
        typists.push(t["user_id"].as_str().unwrap_or_default().to_owned());
    }
    let relayed = typists.contains(&actor.id);
    if relayed != member {
        failures.push(format!(
            "typing relayed: {relayed}, expected {member} (saw {typists:?})"
        ));
    }

    // Delivery: a message from the owner reaches the actor's sockets only if a member. The
    // watcher (a member) receiving it means the broadcast has reached every socket of the room.
    let id = app
        .send(&g, &cast.owner, "after the relations were set")
        .await;
    if !wait_for_message(&mut watch, &id).await {
        failures.push("the watcher's socket never got the message".into());
    }
    let fence = app.send(&fence_group, &cast.owner, "fence").await;
    for (name, c) in [
        ("connected before", &mut before),
        ("connected after", &mut after),
    ] {
        let delivered = if member {
            wait_for_message(c, &id).await
        } else {
            let mut seen = messages_until(c, &fence).await.unwrap_or_else(|| {
                failures.push(format!("({name}) fence message not delivered"));
                Vec::new()
            });
            seen.extend(messages_of(c, &g));
            // Banned and former members were out before anything was posted: no message of
            // the group may reach them, the secret included.
            let leaked: Vec<_> = seen
                .into_iter()
                .filter(|m| m["group_id"] == g.as_str())
                .collect();
            if !leaked.is_empty() {
                failures.push(format!("({name}) received {leaked:?}"));
            }
            !leaked.is_empty()
        };
        if delivered != member {
            failures.push(format!(
                "message delivered to the actor's socket ({name}): {delivered}, expected {member}"
            ));
        }
    }

    // message:edit and message:delete answer like PATCH and DELETE .../messages/{id}, on the
    // owner's message (last: they add entries to the group).
    let change_want = if rel == Rel::Member { FORBID } else { want };
    let edit = json!({"group_id": g, "message_id": secret_id, "content": "edited"});
    let ack = after.emit_with_ack("message:edit", edit).await;
    if let Some(f) = ack_check(change_want, &ack) {
        failures.push(format!("message:edit: {f}"));
    }
    let delete = json!({"group_id": g, "message_id": secret_id});
    let ack = after.emit_with_ack("message:delete", delete).await;
    if let Some(f) = ack_check(change_want, &ack) {
        failures.push(format!("message:delete: {f}"));
    }
    failures
}
