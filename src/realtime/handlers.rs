//! Socket.IO handlers: authentication at connect, then `message:send`, `group:sync` and
//! `typing`. Payloads get the same validation, limits and error codes as HTTP; every event with
//! an ack is answered, even when its payload cannot be parsed.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use tokio_util::sync::CancellationToken;

use super::rate::Bucket;
use super::{Fanout, GroupEmit, group_room, user_room};
use crate::app::AppState;
use crate::config::RateLimit;
use crate::domain::{ClientMsgId, Content, GroupId, Limit, UserId};
use crate::error::{AppError, AppResult};
use crate::ops::metrics as m;
use crate::store::HistoryQuery;

/// Who a socket belongs to, set once authenticated.
#[derive(Clone)]
pub(super) struct SocketUser {
    pub(super) id: UserId,
    /// Access token expiry (unix seconds).
    exp: i64,
    bucket: Arc<Bucket>,
}

#[derive(Debug)]
struct Unauthorized;

impl std::fmt::Display for Unauthorized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unauthorized")
    }
}

/// Why a connect is refused: the `connect_error` message.
#[derive(Debug)]
enum Refused {
    Unauthorized,
    Unavailable,
}

impl From<Unauthorized> for Refused {
    fn from(_: Unauthorized) -> Self {
        Refused::Unauthorized
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Unauthorized => Unauthorized.fmt(f),
            Refused::Unavailable => Unavailable.fmt(f),
        }
    }
}

/// A connect refused for want of a dependency (the store); the client may retry.
#[derive(Debug)]
struct Unavailable;

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unavailable")
    }
}

/// Registers the namespace: authentication, then rooms (through `fanout`) and event handlers.
pub fn register(io: &SocketIo, state: AppState, fanout: Fanout) {
    let st = state.clone();
    let authenticate = move |s: SocketRef, TryData(auth): TryData<Value>| {
        let st = st.clone();
        async move {
            let token = auth
                .ok()
                .and_then(|a| a.get("token").and_then(Value::as_str).map(str::to_owned));
            let claims = token
                .as_deref()
                .ok_or(Unauthorized)
                .and_then(|t| st.auth.tokens().verify(t).map_err(|_| Unauthorized));
            // The JWT check allows a few seconds of clock skew; a socket does not: a token
            // expiring within that leeway would connect, have every event refused and be swept
            // at once, instead of telling the client (connect_error) to refresh.
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let claims = claims.and_then(|c| {
                if c.exp > now {
                    Ok(c)
                } else {
                    Err(Unauthorized)
                }
            });
            let claims = match claims {
                Ok(c) => c,
                Err(e) => {
                    metrics::counter!(m::SOCKET_AUTH_FAILURES).increment(1);
                    return Err(e.into());
                }
            };
            let id = claims.user_id().map_err(|_| Refused::Unauthorized)?;
            // As GET /users/me: a well-signed token naming no account authenticates no one.
            match st.store.user_by_id(id).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    metrics::counter!(m::SOCKET_AUTH_FAILURES).increment(1);
                    return Err(Refused::Unauthorized);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot load the account of a connecting socket");
                    return Err(Refused::Unavailable);
                }
            }
            let s_cfg = &st.settings;
            let bucket = Bucket::new(
                s_cfg.socket_events_per_sec as f64,
                s_cfg.socket_events_per_sec as f64 * 2.0,
            );
            s.extensions.insert(SocketUser {
                id,
                exp: claims.exp,
                bucket: Arc::new(bucket),
            });
            Ok::<(), Refused>(())
        }
    };
    tokio::spawn(super::resync::run(
        io.clone(),
        state.store.clone(),
        fanout.clone(),
    ));
    // One shared copy: every socket's handlers hold a pointer to it, not a clone of the state
    // (about 0.7 KiB per handler per socket).
    let st = Arc::new(Ctx { st: state, fanout });
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
struct Ctx {
    st: AppState,
    fanout: Fanout,
}

/// The socket's rooms and event handlers, once authenticated.
async fn set_up(ctx: Arc<Ctx>, s: SocketRef) -> Result<(), Unavailable> {
    let st = &ctx.st;
    let Some(user) = s.extensions.get::<SocketUser>() else {
        return Err(Unavailable);
    };
    // The user room first: a membership change from now on reaches this socket as an event, so
    // reading the groups afterwards cannot miss one. A second read closes the window in which a
    // removal committed between the first read and the joins.
    s.join(user_room(user.id));
    let groups = match st.store.group_ids_of_user(user.id).await {
        Ok(groups) => groups,
        Err(e) => {
            tracing::warn!(error = %e, "cannot load groups of a connecting socket");
            return Err(Unavailable);
        }
    };
    if let Err(e) = ctx.fanout.enter(&s, &groups).await {
        tracing::warn!(error = %e, "cannot subscribe the groups of a connecting socket");
        return Err(Unavailable);
    }
    if let Ok(now) = st.store.group_ids_of_user(user.id).await {
        for room in s.rooms() {
            if room.starts_with("g:") && !now.iter().any(|g| group_room(*g) == room.as_ref()) {
                s.leave(room);
            }
        }
    }

    // Counted only once nothing can refuse the connection any more.
    metrics::gauge!(m::SOCKETS_CONNECTED).increment(1.0);
    metrics::counter!(m::SOCKET_CONNECTS).increment(1);
    s.on_disconnect(|reason: DisconnectReason| async move {
        metrics::gauge!(m::SOCKETS_CONNECTED).decrement(1.0);
        metrics::counter!(m::SOCKET_DISCONNECTS, "reason" => disconnect_reason(reason))
            .increment(1);
    });

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
    Ok(())
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
    metrics::counter!(m::SOCKET_EVENTS_IN, "event" => event).increment(1);
    let user = s
        .extensions
        .get::<SocketUser>()
        .ok_or(AppError::Unauthenticated)?;
    if user.exp <= time::OffsetDateTime::now_utc().unix_timestamp() {
        let s = s.clone();
        // Answer first, then close: the client learns why.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = s.disconnect();
        });
        return Err(AppError::Unauthenticated);
    }
    if !user.bucket.take() {
        metrics::counter!(m::RATE_LIMITED, "limit" => "socket_events").increment(1);
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
        metrics::counter!(m::SOCKET_EVENTS_OUT, "event" => "ack").increment(1);
    }
}

fn payload<T: serde::de::DeserializeOwned>(data: Option<Value>) -> AppResult<T> {
    let data =
        data.ok_or_else(|| AppError::Malformed("the event needs a JSON object payload".into()))?;
    let bytes = serde_json::to_vec(&data).map_err(|e| AppError::Malformed(e.to_string()))?;
    crate::http::extract::parse_json(&bytes)
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
    let mut errors = Vec::new();
    let content = Content::parse(p.content).map_err(|e| errors.push(e)).ok();
    let cmid = p
        .client_msg_id
        .as_deref()
        .map(ClientMsgId::parse)
        .transpose()
        .map_err(|e| errors.push(e))
        .ok();
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let (Some(content), Some(cmid)) = (content, cmid) else {
        unreachable!("checked above")
    };
    let id = st
        .messages
        .send(user, group_id(&p.group_id)?, content, cmid)
        .await?;
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

async fn typing(ctx: &Ctx, user: UserId, data: Option<Value>) -> AppResult<()> {
    let st = &ctx.st;
    let p: TypingPayload = payload(data)?;
    let group = group_id(&p.group_id)?;
    // One relay per user and group every half second is plenty for an indicator.
    st.limiter
        .hit(
            &format!("typing:{user}:{group}"),
            RateLimit {
                max: 2,
                window: Duration::from_secs(1),
            },
        )
        .await
        .map_err(|retry_after| AppError::RateLimited { retry_after })?;
    st.messages.may_send(user, group).await?;
    ctx.fanout
        .to_group(
            group,
            GroupEmit::Typing { from: user },
            &json!({"group_id": group, "user_id": user}),
        )
        .await;
    Ok(())
}

/// Disconnects sockets whose access token has expired, every few seconds, until shutdown.
pub fn spawn_expiry_sweep(io: SocketIo, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            // `io.sockets()` panics once `io.close()` (the drain) has removed the namespace.
            let Some(ns) = io.of("/") else { return };
            for s in ns.sockets() {
                if s.extensions
                    .get::<SocketUser>()
                    .is_some_and(|u| u.exp <= now)
                {
                    metrics::counter!(m::SOCKET_EXPIRED).increment(1);
                    let _ = s.disconnect();
                }
            }
        }
    });
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
