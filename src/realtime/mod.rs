//! Real time over Socket.IO (protocol v5, Engine.IO v4) at `/socket.io/`, namespace `/`.
//!
//! Rooms: `g:<group id>` holds the sockets of a group's members, `u:<user id>` all sockets of one
//! user, so membership changes reach every socket of the user at once. [`Realtime`] is the
//! [`EventSink`]: stored messages become `message:new` in the group's room (serialized once per
//! broadcast), and membership events move sockets between rooms.
//!
//! Token expiry: an access token is checked at connect, again on every event, and by a sweep
//! every few seconds; a socket whose token has expired is disconnected, and the client
//! reconnects with a fresh token. So no one keeps sending, or receiving, on an expired token.

pub mod handlers;
pub mod owned_parts;
mod rate;
pub mod redis_driver;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use socketioxide::adapter::Adapter;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{SocketIo, SocketIoBuilder};
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};

use crate::crypto::Keyring;
use crate::domain::{GroupId, UserId};
use crate::events::{EventSink, GroupEvent};
use crate::messages::service::decrypt;
use crate::ops::metrics as m;
use crate::store::StoredMessage;

pub use handlers::register;

pub fn group_room(g: GroupId) -> String {
    format!("g:{g}")
}

pub fn user_room(u: UserId) -> String {
    format!("u:{u}")
}

/// Limits of the Socket.IO layer.
#[derive(Clone, Copy, Debug)]
pub struct SocketSettings {
    /// Largest inbound frame / polling body (bytes).
    pub max_payload: u64,
    /// Packets buffered for one socket before further ones are dropped (a slow client must not
    /// grow the server's memory); a client notices the gap in `seq` and catches up with `group:sync`.
    pub max_buffer: usize,
}

/// Bytes of each socket's WebSocket read buffer (grown while a larger frame is read).
const WS_READ_BUFFER: usize = 512;

fn builder(s: SocketSettings) -> SocketIoBuilder {
    SocketIo::builder()
        .max_payload(s.max_payload)
        .ws_max_message_size(s.max_payload as usize)
        .ws_max_frame_size(s.max_payload as usize)
        .max_buffer_size(s.max_buffer)
        // The WebSocket read buffer every socket keeps (engineioxide's default is 4 KiB): most
        // sockets are idle, and a client frame (a `message:send`) fits in one read of this.
        .ws_read_buffer_size(WS_READ_BUFFER)
        .ack_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(10))
}

/// Standalone: rooms live in this process.
pub fn local_layer(s: SocketSettings) -> (SocketIoLayer, SocketIo) {
    builder(s).build_layer()
}

/// The adapter that shares rooms and broadcasts between processes through Redis.
pub type ClusterAdapter =
    CustomRedisAdapter<socketioxide::adapter::Emitter, redis_driver::ResilientRedisDriver>;

/// Cluster: rooms and broadcasts shared through Redis.
pub fn cluster_layer(
    s: SocketSettings,
    driver: redis_driver::ResilientRedisDriver,
    prefix: &str,
) -> (SocketIoLayer<ClusterAdapter>, SocketIo<ClusterAdapter>) {
    let config = RedisAdapterConfig::new()
        .with_prefix(format!("{prefix}socket.io"))
        .with_stream_buffer(4096);
    builder(s)
        .with_adapter::<ClusterAdapter>(RedisAdapterCtr::new_with_driver(driver, config))
        .build_layer()
}

/// Delivers events to live sockets.
pub struct Realtime<A: Adapter> {
    io: SocketIo<A>,
    keyring: Keyring,
}

impl<A: Adapter> Realtime<A> {
    pub fn new(io: SocketIo<A>, keyring: Keyring) -> Self {
        Self { io, keyring }
    }
}

/// Counts what a broadcast could not hand to a socket (full buffer or closed).
fn count_drops(res: Result<(), socketioxide::BroadcastError>, event: &'static str) {
    match res {
        Ok(()) => {}
        Err(socketioxide::BroadcastError::Socket(errs)) => {
            metrics::counter!(m::SOCKET_DROPPED, "event" => event).increment(errs.len() as u64);
        }
        Err(e) => tracing::warn!(error = %e, event, "broadcast failed"),
    }
}

#[async_trait]
impl<A: Adapter> EventSink for Realtime<A> {
    async fn messages_stored(&self, messages: &[StoredMessage]) {
        let now = crate::domain::now();
        for stored in messages {
            let view = match decrypt(&self.keyring, stored) {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(error = %e, "stored message cannot be delivered");
                    continue;
                }
            };
            let res = self
                .io
                .to(group_room(stored.group_id))
                .emit("message:new", &view)
                .await;
            count_drops(res, "message:new");
            metrics::counter!(m::SOCKET_EVENTS_OUT, "event" => "message:new").increment(1);
            metrics::counter!(m::MESSAGES_DELIVERED).increment(1);
            let latency = (now - stored.sent_at).as_seconds_f64().max(0.0);
            metrics::histogram!(m::DELIVERY_LATENCY).record(latency);
        }
    }

    async fn group_events(&self, events: Vec<GroupEvent>) {
        for ev in events {
            match ev {
                GroupEvent::MemberJoined { group, user } => {
                    // Join first, so the newcomer's sockets see their own join and all after it.
                    if let Err(e) = self.io.to(user_room(user)).join(group_room(group)).await {
                        tracing::warn!(error = %e, "joining sockets to a room failed");
                    }
                    let res = self
                        .io
                        .to(group_room(group))
                        .emit(
                            "group:member_joined",
                            &json!({"group_id": group, "user_id": user}),
                        )
                        .await;
                    count_drops(res, "group:member_joined");
                }
                GroupEvent::MemberLeft { group, user } => {
                    if let Err(e) = self.io.to(user_room(user)).leave(group_room(group)).await {
                        tracing::warn!(error = %e, "removing sockets from a room failed");
                    }
                    let res = self
                        .io
                        .to(group_room(group))
                        .emit(
                            "group:member_left",
                            &json!({"group_id": group, "user_id": user}),
                        )
                        .await;
                    count_drops(res, "group:member_left");
                }
                GroupEvent::Removed {
                    group,
                    user,
                    reason,
                } => {
                    // Out of the room before anything else can be broadcast to it.
                    if let Err(e) = self.io.to(user_room(user)).leave(group_room(group)).await {
                        tracing::warn!(error = %e, "removing sockets from a room failed");
                    }
                    let res = self
                        .io
                        .to(user_room(user))
                        .emit(
                            "group:removed",
                            &json!({"group_id": group, "reason": reason.as_str()}),
                        )
                        .await;
                    count_drops(res, "group:removed");
                }
            }
        }
    }
}
