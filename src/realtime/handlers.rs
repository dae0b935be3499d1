//! Socket.IO handlers: authentication at connect, then `message:send`, `message:edit`,
//! `message:delete`, `group:sync` and `typing`. Payloads get the same validation, limits and error codes as HTTP; every event with
//! an ack is answered, even when its payload cannot be parsed.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;

use super::session::{SocketSlot, SocketUser, SocketsPerUser};
use super::{Fanout, GroupEmit, group_room, managers_room, user_room};
use crate::domain::{GroupId, Limit, UserId};
use crate::error::{AppError, AppResult};
use crate::messages::SendRequest;
use crate::ops::metrics as metric;
use crate::state::AppState;
use crate::store::HistoryQuery;

/// Why a connect is refused: the `connect_error` message.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("unauthorized")]
    Unauthorized,
    /// A dependency (the store) did not answer; the client may retry.
    #[error("unavailable")]
    Unavailable,
    /// The user already holds `CONCLAVE_MAX_SOCKETS_PER_USER` sockets on this process.
    #[error("too_many_sockets")]
    TooManySockets,
}

/// Registers the namespace: authentication, then rooms (through `fanout`) and event handlers.
pub fn register(io: &SocketIo, state: AppState, fanout: Fanout, limits: super::SocketSettings) {
    let events_per_sec = limits.events_per_sec;
    let st = state.clone();
    let authenticate = move |s: SocketRef, TryData(auth): TryData<Value>| {
        let st = st.clone();
        async move {
            let token = auth
                .ok()
                .and_then(|a| a.get("token").and_then(Value::as_str).map(str::to_owned));
            let who = match token {
                Some(t) => st.auth.authenticate(&t).await,
                None => Err(AppError::Unauthenticated),
            };
            // The JWT check allows a few seconds of clock skew; a socket does not: a token
            // expiring within that leeway would connect, have every event refused and be swept
            // at once, instead of telling the client (connect_error) to refresh.
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let who = match who {
                Ok(w) if w.expires_at > now => w,
                Ok(_) | Err(AppError::Unauthenticated) => {
                    metrics::counter!(metric::SOCKET_AUTH_FAILURES).increment(1);
                    return Err(Refused::Unauthorized);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot load the account of a connecting socket");
                    return Err(Refused::Unavailable);
                }
            };
            s.extensions
                .insert(SocketUser::new(who.user, who.expires_at, events_per_sec));
            Ok::<(), Refused>(())
        }
    };
    tokio::spawn(super::resync::run(
        io.clone(),
        state.groups.clone(),
        fanout.clone(),
    ));
    // One shared copy: every socket's handlers hold a pointer to it, not a clone of the state
    // (about 0.7 KiB per handler per socket).
    let st = Arc::new(SocketContext {
        st: state,
        fanout,
        sockets: SocketsPerUser::new(limits.max_sockets_per_user),
    });
    let set_up = move |s: SocketRef| set_up(st.clone(), s);
    // Middlewares run before the CONNECT ack is sent, the connect handler only after it (in a
    // task of its own). So the rooms and event handlers are set up in a middleware: a client may
    // emit, and must receive, the moment it is told it is connected.
    io.ns(
        "/",
        (async |_: SocketRef| {}).with(set_up).with(authenticate),
    );
}

/// What every socket's handlers share.
struct SocketContext {
    st: AppState,
    fanout: Fanout,
    sockets: Arc<SocketsPerUser>,
}

/// The socket's rooms and event handlers, once authenticated.
async fn set_up(ctx: Arc<SocketContext>, s: SocketRef) -> Result<(), Refused> {
    let Some(user) = s.extensions.get::<SocketUser>() else {
        return Err(Refused::Unavailable);
    };
    let Some(slot) = ctx.sockets.try_enter(user.id) else {
        metrics::counter!(metric::RATE_LIMITED, "limit" => "sockets_per_user").increment(1);
        return Err(Refused::TooManySockets);
    };
    // A refusal here drops the slot, which frees it.
    join_rooms(&ctx, &s, user.id).await?;
    s.extensions.insert(Arc::new(slot));

    // Counted only once nothing can refuse the connection any more.
    metrics::gauge!(metric::SOCKETS_CONNECTED).increment(1.0);
    metrics::counter!(metric::SOCKET_CONNECTS).increment(1);
    s.on_disconnect(|s: SocketRef, reason: DisconnectReason| async move {
        if let Some(slot) = s.extensions.get::<Arc<SocketSlot>>() {
            slot.release();
        }
        metrics::gauge!(metric::SOCKETS_CONNECTED).decrement(1.0);
        metrics::counter!(metric::SOCKET_DISCONNECTS, "reason" => disconnect_reason(reason))
            .increment(1);
    });
    handle_events(ctx, &s);
    Ok(())
}

/// The user's room, then the rooms of their groups.
async fn join_rooms(ctx: &SocketContext, s: &SocketRef, user: UserId) -> Result<(), Refused> {
    let st = &ctx.st;
    // The user room first: a membership change from now on reaches this socket as an event, so
    // reading the groups afterwards cannot miss one. A second read closes the window in which a
    // removal committed between the first read and the joins.
    s.join(user_room(user));
    let groups = match st.groups.ids_of_member(user).await {
        Ok(groups) => groups,
        Err(e) => {
            tracing::warn!(error = %e, "cannot load groups of a connecting socket");
            return Err(Refused::Unavailable);
        }
    };
    if let Err(e) = ctx.fanout.enter(s, &groups).await {
        tracing::warn!(error = %e, "cannot subscribe the groups of a connecting socket");
        return Err(Refused::Unavailable);
    }
    if let Ok(now) = st.groups.ids_of_member(user).await {
        for room in s.rooms() {
            if room.starts_with("g:") && !now.iter().any(|g| group_room(*g) == room.as_ref()) {
                s.leave(room);
            }
        }
    }
    // v1.1: the managers' rooms, read the same way (twice) so a role change racing the connect
    // cannot leave a demoted moderator hearing of join requests.
    match st.groups.ids_managed_by(user).await {
        Ok(managed) => s.join(managed.into_iter().map(managers_room).collect::<Vec<_>>()),
        Err(e) => {
            tracing::warn!(error = %e, "cannot load the managed groups of a connecting socket");
            return Err(Refused::Unavailable);
        }
    }
    if let Ok(now) = st.groups.ids_managed_by(user).await {
        for room in s.rooms() {
            if room.starts_with("m:") && !now.iter().any(|g| managers_room(*g) == room.as_ref()) {
                s.leave(room);
            }
        }
    }
    Ok(())
}

/// The socket's event handlers.
fn handle_events(ctx: Arc<SocketContext>, s: &SocketRef) {
    let ctx1 = ctx.clone();
    s.on(
        "message:send",
        move |s: SocketRef, TryData(data): TryData<Value>, ack: AckSender| {
            let ctx = ctx1.clone();
            async move {
                let res = match guard(&s, "message:send") {
                    Ok(user) => send(&ctx.st, user, data.ok())
                        .await
                        .map(|id| json!({"ok": true, "id": id})),
                    Err(e) => Err(e),
                };
                reply(&s, ack, res);
            }
        },
    );
    let ctx2 = ctx.clone();
    s.on(
        "group:sync",
        move |s: SocketRef, TryData(data): TryData<Value>, ack: AckSender| {
            let ctx = ctx2.clone();
            async move {
                let res = match guard(&s, "group:sync") {
                    Ok(user) => sync(&ctx.st, user, data.ok())
                        .await
                        .map(|items| json!({"ok": true, "items": items})),
                    Err(e) => Err(e),
                };
                reply(&s, ack, res);
            }
        },
    );
    for event in ["message:edit", "message:delete"] {
        let ctx = ctx.clone();
        s.on(
            event,
            move |s: SocketRef, TryData(data): TryData<Value>, ack: AckSender| {
                let ctx = ctx.clone();
                async move {
                    let res = match guard(&s, event) {
                        Ok(user) => change(&ctx.st, user, event, data.ok())
                            .await
                            .map(|id| json!({"ok": true, "id": id})),
                        Err(e) => Err(e),
                    };
                    reply(&s, ack, res);
                }
            },
        );
    }
    let ctx3 = ctx;
    s.on(
        "typing",
        move |s: SocketRef, TryData(data): TryData<Value>| {
            let ctx = ctx3.clone();
            async move {
                if let Ok(user) = guard(&s, "typing")
                    && let Err(e) = typing(&ctx, user, data.ok()).await
                {
                    tracing::debug!(error = %e, "typing not relayed");
                }
            }
        },
    );
}

fn disconnect_reason(r: DisconnectReason) -> &'static str {
    match r {
        DisconnectReason::TransportClose => "transport_close",
        DisconnectReason::MultipleHttpPollingError => "polling_error",
        DisconnectReason::PacketParsingError => "parse_error",
        DisconnectReason::TransportError => "transport_error",
        DisconnectReason::HeartbeatTimeout => "heartbeat_timeout",
        DisconnectReason::ClientNSDisconnect => "client_disconnect",
        DisconnectReason::ServerNSDisconnect => "server_disconnect",
        DisconnectReason::ClosingServer => "server_closing",
    }
}

/// Token still valid and within the per-socket event budget.
fn guard(s: &SocketRef, event: &'static str) -> AppResult<UserId> {
    metrics::counter!(metric::SOCKET_EVENTS_IN, "event" => event).increment(1);
    let user = s
        .extensions
        .get::<SocketUser>()
        .ok_or(AppError::Unauthenticated)?;
    if user.expired(time::OffsetDateTime::now_utc().unix_timestamp()) {
        let s = s.clone();
        // Answer first, then close: the client learns why.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = s.disconnect();
        });
        return Err(AppError::Unauthenticated);
    }
    if !user.bucket.take() {
        metrics::counter!(metric::RATE_LIMITED, "limit" => "socket_events").increment(1);
        return Err(AppError::RateLimited {
            retry_after: Duration::from_secs(1),
        });
    }
    Ok(user.id)
}

fn reply(s: &SocketRef, ack: AckSender, res: AppResult<Value>) {
    let body = match res {
        Ok(v) => v,
        Err(e) => {
            let mut err = json!({"code": e.code(), "message": e.public_message()});
            if let AppError::Validation(fields) = &e {
                err["errors"] = fields
                    .iter()
                    .map(|f| json!({"field": f.field, "message": f.message}))
                    .collect();
            }
            if let Some(r) = e.retry_after() {
                err["retry_after"] = json!(r.as_secs_f64().ceil().max(1.0) as u64);
            }
            if let AppError::Internal(inner) = &e {
                tracing::error!(error = ?inner, socket = %s.id, "socket event failed");
            }
            json!({"ok": false, "error": err})
        }
    };
    if ack.send(&body).is_ok() {
        metrics::counter!(metric::SOCKET_EVENTS_OUT, "event" => "ack").increment(1);
    }
}

fn payload<T: serde::de::DeserializeOwned>(data: Option<Value>) -> AppResult<T> {
    let data =
        data.ok_or_else(|| AppError::Malformed("the event needs a JSON object payload".into()))?;
    let bytes = serde_json::to_vec(&data).map_err(|e| AppError::Malformed(e.to_string()))?;
    crate::input::parse_json(&bytes)
}

fn group_id(raw: &str) -> AppResult<GroupId> {
    raw.parse().map_err(|_| AppError::NotFound)
}

#[derive(Deserialize)]
struct SendPayload {
    group_id: String,
    content: String,
    client_msg_id: Option<String>,
}

async fn send(st: &AppState, user: UserId, data: Option<Value>) -> AppResult<String> {
    let p: SendPayload = payload(data)?;
    let request = SendRequest {
        content: p.content,
        client_msg_id: p.client_msg_id,
    };
    let id = st
        .messages
        .send_request(user, group_id(&p.group_id)?, request)
        .await?;
    Ok(id.to_string())
}

#[derive(Deserialize)]
struct ChangePayload {
    group_id: String,
    message_id: String,
    /// `message:edit` only.
    content: Option<String>,
    client_msg_id: Option<String>,
}

/// `message:edit` and `message:delete`: the rules and answers of `PATCH` and `DELETE
/// /groups/{id}/messages/{message_id}`.
async fn change(
    st: &AppState,
    user: UserId,
    event: &str,
    data: Option<Value>,
) -> AppResult<String> {
    let p: ChangePayload = payload(data)?;
    let group = group_id(&p.group_id)?;
    let target = p.message_id.parse().map_err(|_| AppError::NotFound)?;
    let id = if event == "message:edit" {
        let request = SendRequest {
            content: p
                .content
                .ok_or_else(|| AppError::field("content", "is required"))?,
            client_msg_id: p.client_msg_id,
        };
        st.messages.edit(user, group, target, request).await?
    } else {
        st.messages.delete(user, group, target, None).await?
    };
    Ok(id.to_string())
}

#[derive(Deserialize)]
struct SyncPayload {
    group_id: String,
    after_seq: u64,
    limit: Option<i64>,
}

async fn sync(
    st: &AppState,
    user: UserId,
    data: Option<Value>,
) -> AppResult<Vec<crate::messages::MessageView>> {
    let p: SyncPayload = payload(data)?;
    let limit = Limit::parse(p.limit)?;
    st.messages
        .history(
            user,
            group_id(&p.group_id)?,
            HistoryQuery {
                after_seq: Some(p.after_seq),
                before_seq: None,
                limit: limit.get(),
            },
        )
        .await
}

#[derive(Deserialize)]
struct TypingPayload {
    group_id: String,
}

async fn typing(ctx: &SocketContext, user: UserId, data: Option<Value>) -> AppResult<()> {
    let st = &ctx.st;
    let p: TypingPayload = payload(data)?;
    let group = group_id(&p.group_id)?;
    st.messages.may_type(user, group).await?;
    ctx.fanout
        .to_group(
            group,
            GroupEmit::Typing { from: user },
            &json!({"group_id": group, "user_id": user}),
        )
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Any JSON, biased towards the field names the events use.
    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            ".{0,24}".prop_map(Value::from),
        ];
        let key = prop_oneof![
            Just("group_id".to_owned()),
            Just("content".to_owned()),
            Just("client_msg_id".to_owned()),
            Just("after_seq".to_owned()),
            Just("limit".to_owned()),
            ".{0,8}",
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn clean<T>(r: AppResult<T>) -> bool {
        matches!(
            r,
            Ok(_) | Err(AppError::Malformed(_) | AppError::Validation(_))
        )
    }

    proptest! {
        /// Every event payload parses or is refused as a client error (400/422 codes), never
        /// a panic or an internal error; an object with the right fields always parses.
        #[test]
        fn event_payloads_parse_or_are_refused_cleanly(v in prop::option::of(json())) {
            prop_assert!(clean(payload::<SendPayload>(v.clone())));
            prop_assert!(clean(payload::<SyncPayload>(v.clone())));
            prop_assert!(clean(payload::<ChangePayload>(v.clone())));
            prop_assert!(clean(payload::<TypingPayload>(v)));
        }

        #[test]
        fn well_formed_payloads_parse(
            group in ".{0,40}",
            content in ".{0,40}",
            after_seq in any::<u64>(),
            limit in prop::option::of(any::<i64>()),
        ) {
            let send = payload::<SendPayload>(Some(json!({"group_id": group, "content": content})));
            prop_assert!(send.is_ok());
            let sync = payload::<SyncPayload>(Some(
                json!({"group_id": group, "after_seq": after_seq, "limit": limit}),
            ));
            prop_assert!(sync.is_ok());
        }
    }
}
