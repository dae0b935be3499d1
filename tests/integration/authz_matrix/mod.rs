//! The authorization matrix: every REST endpoint of docs/api.md and every Socket.IO event, for every
//! relation a caller can have to a group (owner, moderator, member, pending requester, invitee,
//! banned, former member within the private-group cooldown, stranger, unauthenticated), in open
//! and private groups, with the exact status and `code` docs/api.md promises (v1.1 included).
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
    Moderator,
    Member,
    Pending,
    /// Invited (v1.1), not yet answered.
    Invited,
    Banned,
    /// Left the group; in a private group within the rejoin cooldown.
    Former,
    Stranger,
    Anonymous,
}

const RELS: [Rel; 9] = [
    Rel::Owner,
    Rel::Moderator,
    Rel::Member,
    Rel::Pending,
    Rel::Invited,
    Rel::Banned,
    Rel::Former,
    Rel::Stranger,
    Rel::Anonymous,
];

impl fmt::Display for Rel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rel::Owner => "owner",
            Rel::Moderator => "moderator",
            Rel::Member => "member",
            Rel::Pending => "pending requester",
            Rel::Invited => "invitee",
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
/// `{requester}` the pending requester, `{invited}` the invitee, `{banned}` the banned user,
/// `{outsider}` a user with no relation to the group, `{name}` a fresh name.
/// Expectations are in [`RELS`] order: owner, moderator, member, pending, invitee, banned,
/// former, stranger, anonymous.
struct Row {
    method: Method,
    path: &'static str,
    body: Option<&'static str>,
    private: [Want; 9],
    open: [Want; 9],
}

/// Where the pending requester's expectation sits in a row.
const PENDING: usize = 3;

/// The same expectations for both visibilities (`NA` for a pending requester in open groups).
fn both(method: Method, path: &'static str, body: Option<&'static str>, w: [Want; 9]) -> Row {
    let mut open = w;
    open[PENDING] = NA;
    Row {
        method,
        path,
        body,
        private: w,
        open,
    }
}

const F: Want = FORBID;
/// Any signed-in caller may; no token, no entry.
const ANYONE: [Want; 9] = [
    ok(200),
    ok(200),
    ok(200),
    ok(200),
    ok(200),
    ok(200),
    ok(200),
    ok(200),
    UNAUTH,
];
const OWNER_ONLY_200: [Want; 9] = [ok(200), F, F, F, F, F, F, F, UNAUTH];
const OWNER_ONLY_204: [Want; 9] = [ok(204), F, F, F, F, F, F, F, UNAUTH];
/// The owner and moderators (v1.1).
const MANAGERS_200: [Want; 9] = [ok(200), ok(200), F, F, F, F, F, F, UNAUTH];
const MANAGERS_204: [Want; 9] = [ok(204), ok(204), F, F, F, F, F, F, UNAUTH];

fn rows() -> Vec<Row> {
    use Method as M;
    // Reading messages or members: members only; banned users are told so; other outsiders get
    // 404 in private groups (nothing is leaked) and 403 in open ones (the group is public).
    let members_only = |s: u16| Row {
        method: M::GET,
        path: "",
        body: None,
        private: [ok(s), ok(s), ok(s), NOTF, NOTF, BANNED, NOTF, NOTF, UNAUTH],
        open: [ok(s), ok(s), ok(s), NA, F, BANNED, F, F, UNAUTH],
    };
    // PATCH /groups/{g}: outsiders as for reading, but a ban is not told (v1.1 details).
    let settings = |manager: Want| Row {
        method: M::PATCH,
        path: "/groups/{g}",
        body: None,
        private: [ok(200), manager, F, NOTF, NOTF, NOTF, NOTF, NOTF, UNAUTH],
        open: [ok(200), manager, F, NA, F, F, F, F, UNAUTH],
    };
    vec![
        both(M::GET, "/users/me", None, ANYONE),
        both(
            M::POST,
            "/groups",
            Some(r#"{"name":"{name}","visibility":"private"}"#),
            [
                ok(201),
                ok(201),
                ok(201),
                ok(201),
                ok(201),
                ok(201),
                ok(201),
                ok(201),
                UNAUTH,
            ],
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
                err(409, "already_member"),
                err(409, "request_pending"),
                // An invitation does not stop a request of one's own.
                ok(202),
                BANNED,
                err(403, "cooldown_active"),
                ok(202),
                UNAUTH,
            ],
            open: [
                err(409, "already_member"),
                err(409, "already_member"),
                err(409, "already_member"),
                NA,
                ok(200),
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
            [NOTF, NOTF, NOTF, ok(204), NOTF, NOTF, NOTF, NOTF, UNAUTH],
        ),
        both(M::GET, "/groups/{g}/join-requests", None, MANAGERS_200),
        Row {
            method: M::POST,
            path: "/groups/{g}/join-requests/{requester}/approve",
            body: Some("{}"),
            private: MANAGERS_200,
            // No request to approve in an open group.
            open: [NOTF, NOTF, F, NA, F, F, F, F, UNAUTH],
        },
        Row {
            method: M::POST,
            path: "/groups/{g}/join-requests/{requester}/reject",
            body: Some("{}"),
            private: MANAGERS_204,
            open: [NOTF, NOTF, F, NA, F, F, F, F, UNAUTH],
        },
        Row {
            path: "/groups/{g}/members",
            ..members_only(200)
        },
        both(M::DELETE, "/groups/{g}/members/{other}", None, MANAGERS_204),
        both(
            M::POST,
            "/groups/{g}/leave",
            Some("{}"),
            [
                err(409, "owner_must_transfer"),
                ok(204),
                ok(204),
                NOTF,
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
            [ok(201), ok(201), F, F, F, F, F, F, UNAUTH],
        ),
        both(M::GET, "/groups/{g}/bans", None, MANAGERS_200),
        both(M::DELETE, "/groups/{g}/bans/{banned}", None, MANAGERS_204),
        both(
            M::POST,
            "/groups/{g}/transfer-ownership",
            Some(r#"{"new_owner_id":"{other}"}"#),
            OWNER_ONLY_200,
        ),
        both(M::GET, "/groups/{g}/audit", None, MANAGERS_200),
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
        // v1.1: roles, invitations, settings.
        both(
            M::PUT,
            "/groups/{g}/members/{other}/role",
            Some(r#"{"role":"moderator"}"#),
            OWNER_ONLY_200,
        ),
        both(
            M::POST,
            "/groups/{g}/invitations",
            Some(r#"{"user_id":"{outsider}"}"#),
            [ok(201), ok(201), F, F, F, F, F, F, UNAUTH],
        ),
        both(M::GET, "/groups/{g}/invitations", None, MANAGERS_200),
        both(
            M::POST,
            "/groups/{g}/invitations/accept",
            Some("{}"),
            [NOTF, NOTF, NOTF, NOTF, ok(200), NOTF, NOTF, NOTF, UNAUTH],
        ),
        both(
            M::DELETE,
            "/groups/{g}/invitations/{invited}",
            None,
            [ok(204), ok(204), F, F, ok(204), F, F, F, UNAUTH],
        ),
        both(M::GET, "/users/me/invitations", None, ANYONE),
        Row {
            body: Some(r#"{"name":"{name}","description":"renamed by the matrix"}"#),
            ..settings(ok(200))
        },
        Row {
            body: Some(r#"{"max_members":50,"visibility":"open"}"#),
            ..settings(F)
        },
        // The owner's own message: only its sender edits; the sender or a manager (owner,
        // moderator) deletes.
        Row {
            method: M::PATCH,
            path: "/groups/{g}/messages/{msg}",
            body: Some(r#"{"content":"edited by the matrix"}"#),
            private: [ok(202), F, F, NOTF, NOTF, BANNED, NOTF, NOTF, UNAUTH],
            open: [ok(202), F, F, NA, F, BANNED, F, F, UNAUTH],
        },
        Row {
            method: M::DELETE,
            path: "/groups/{g}/messages/{msg}",
            body: None,
            private: [ok(202), ok(202), F, NOTF, NOTF, BANNED, NOTF, NOTF, UNAUTH],
            open: [ok(202), ok(202), F, NA, F, BANNED, F, F, UNAUTH],
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
    moderator: TestUser,
    other: TestUser,
    member: TestUser,
    requester: TestUser,
    invited: TestUser,
    banned: TestUser,
    former: TestUser,
    stranger: TestUser,
    outsider: TestUser,
}

impl Cast {
    async fn new(app: &TestApp) -> Self {
        Self {
            owner: app.user_named(&unique("owner")).await,
            moderator: app.user_named(&unique("moderator")).await,
            invited: app.user_named(&unique("invited")).await,
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
            Rel::Moderator => &self.moderator,
            Rel::Member => &self.member,
            Rel::Pending => &self.requester,
            Rel::Invited => &self.invited,
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
            self.moderator.id.clone(),
            self.moderator.username.clone(),
        ]
    }
}

/// Builds a group in which each cast member has their relation, through the API; returns its
/// id and that of the message `secret` the owner has posted in it.
async fn group_with_relations(app: &TestApp, c: &Cast, vis: Vis, secret: &str) -> (String, String) {
    let g = app.group(&c.owner, vis.as_str()).await;
    app.add_member(&g, &c.owner, &c.other).await;
    app.add_member(&g, &c.owner, &c.member).await;
    app.add_member(&g, &c.owner, &c.moderator).await;
    let (s, b) = app
        .call(
            Method::PUT,
            &format!("/groups/{g}/members/{}/role", c.moderator.id),
            Some(&c.owner.token),
            Some(json!({"role": "moderator"})),
        )
        .await;
    assert_eq!(s, 200, "make a moderator: {b}");
    let (s, b) = app
        .post(
            &format!("/groups/{g}/invitations"),
            &c.owner.token,
            json!({"user_id": c.invited.id}),
        )
        .await;
    assert_eq!(s, 201, "invite: {b}");
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
        .replace("{invited}", &c.invited.id)
        .replace("{outsider}", &c.outsider.id)
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
                    let inside = matches!(rel, Rel::Owner | Rel::Moderator | Rel::Member);
                    if vis == Vis::Private && !inside {
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

mod sockets;
