//! Real time over Socket.IO (protocol v5, Engine.IO v4) at `/socket.io/`, namespace `/`.
//!
//! Rooms: `g:<group id>` holds this process's sockets of a group's members, `m:<group id>` those
//! of its owner and moderators (v1.1), `u:<user id>` its sockets of one user, so membership changes reach every socket of the user at once. [`Fanout`]
//! is the `events::Broadcast` port: opened messages become `message:new` in the group's room
//! (serialized once per broadcast), and membership events move sockets between rooms, on every
//! process holding a member's socket (in the cluster, over per-group Redis channels).
//!
//! Token expiry: an access token is checked at connect, again on every event, and by a sweep
//! every few seconds; a socket whose token has expired is disconnected, and the client
//! reconnects with a fresh token. So no one keeps sending, or receiving, on an expired token.

pub mod fanout;
pub mod handlers;
pub mod owned_parts;
mod rate;
mod resync;
pub mod session;

use std::time::Duration;

use socketioxide::SocketIo;
use socketioxide::layer::SocketIoLayer;

use crate::domain::{GroupId, UserId};

pub use fanout::{Fanout, GroupEmit};
pub use handlers::register;

pub fn group_room(g: GroupId) -> String {
    format!("g:{g}")
}

/// The group whose room this is (the inverse of [`group_room`]).
pub fn group_of_room(room: &str) -> Option<GroupId> {
    room.strip_prefix("g:")?.parse().ok()
}

/// v1.1: this process's sockets of a group's owner and moderators (join requests go there).
pub fn managers_room(g: GroupId) -> String {
    format!("m:{g}")
}

/// The group whose managers' room this is (the inverse of [`managers_room`]).
pub fn group_of_managers_room(room: &str) -> Option<GroupId> {
    room.strip_prefix("m:")?.parse().ok()
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
    /// Inbound events per second per socket (burst: twice that).
    pub events_per_sec: u32,
    /// Live sockets one user may hold on this process.
    pub max_sockets_per_user: u32,
    /// CONNECTs to namespaces that do not exist before the connection is closed.
    pub max_invalid_namespaces: u32,
}

/// Bytes of each socket's WebSocket read buffer (grown while a larger frame is read).
const WS_READ_BUFFER: usize = 512;

/// The Socket.IO layer. Its rooms hold this process's sockets; [`Fanout`] carries events between
/// processes.
pub fn layer(s: SocketSettings) -> (SocketIoLayer, SocketIo) {
    SocketIo::builder()
        .max_payload(s.max_payload)
        .ws_max_message_size(s.max_payload as usize)
        .ws_max_frame_size(s.max_payload as usize)
        .max_buffer_size(s.max_buffer)
        // A client asking for namespaces that do not exist is closed after a few (vendored
        // socketioxide's patch): each answer used to be logged, an unauthenticated log flood.
        .max_invalid_namespaces(s.max_invalid_namespaces)
        // The WebSocket read buffer every socket keeps (engineioxide's default is 4 KiB): most
        // sockets are idle, and a client frame (a `message:send`) fits in one read of this.
        .ws_read_buffer_size(WS_READ_BUFFER)
        .ack_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(10))
        .build_layer()
}
