//! The Socket.IO half of the matrix.

use super::*;

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
    let send_private = [ok(0), ok(0), ok(0), NOTF, NOTF, BANNED, NOTF, NOTF, UNAUTH];
    let send_open = [
        ok(0),
        ok(0),
        ok(0),
        NA,
        FORBID,
        BANNED,
        FORBID,
        FORBID,
        UNAUTH,
    ];
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
    let (g, _) = group_with_relations(app, &cast, vis, &secret).await;
    let mut after = connect(actor.clone()).await;
    let mut watch = connect(watcher.clone()).await;
    let member = matches!(rel, Rel::Owner | Rel::Moderator | Rel::Member);

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

    // message:edit and message:delete answer like PATCH and DELETE .../messages/{id}, on the
    // owner's message (edits: its sender only; deletions: its sender or a manager). Run on a
    // group of their own, so the entries they add do not disturb the checks below.
    {
        let (g2, target) = group_with_relations(app, &cast, vis, &unique("to change ")).await;
        let edit_want = if matches!(rel, Rel::Moderator | Rel::Member) {
            FORBID
        } else {
            want
        };
        let delete_want = if rel == Rel::Member { FORBID } else { want };
        let edit = json!({"group_id": g2, "message_id": target, "content": "edited"});
        let ack = after.emit_with_ack("message:edit", edit).await;
        if let Some(f) = ack_check(edit_want, &ack) {
            failures.push(format!("message:edit: {f}"));
        }
        let delete = json!({"group_id": g2, "message_id": target});
        let ack = after.emit_with_ack("message:delete", delete).await;
        if let Some(f) = ack_check(delete_want, &ack) {
            failures.push(format!("message:delete: {f}"));
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
    failures
}
