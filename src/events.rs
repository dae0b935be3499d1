//! What happened, for whoever must tell live clients: the realtime layer implements
//! [`EventSink`]; without it, events go nowhere.

use crate::domain::{GroupId, UserId};
use crate::store::StoredMessage;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovalReason {
    Banned,
    Removed,
    Deleted,
}

impl RemovalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalReason::Banned => "banned",
            RemovalReason::Removed => "removed",
            RemovalReason::Deleted => "deleted",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupEvent {
    MemberJoined {
        group: GroupId,
        user: UserId,
    },
    MemberLeft {
        group: GroupId,
        user: UserId,
    },
    /// The user lost access; their sockets must leave the room at once.
    Removed {
        group: GroupId,
        user: UserId,
        reason: RemovalReason,
    },
}

pub trait EventSink: Send + Sync + 'static {
    fn group_events(&self, events: Vec<GroupEvent>);
    /// Newly stored messages, in `seq` order per group.
    fn messages_stored(&self, messages: &[StoredMessage]);
}

/// For a server with no live clients (and for tests of the REST layer alone).
pub struct NoEvents;

impl EventSink for NoEvents {
    fn group_events(&self, _: Vec<GroupEvent>) {}
    fn messages_stored(&self, _: &[StoredMessage]) {}
}
