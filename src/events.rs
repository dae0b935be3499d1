//! What happened, for whoever must tell live clients. The pipelines and services report to an
//! [`EventSink`] (`messages::Delivery`, which opens stored messages); what must reach live
//! sockets goes through the real-time layer's narrow port, [`Broadcast`].

use serde::{Deserialize, Serialize};

use async_trait::async_trait;

use time::OffsetDateTime;

use crate::domain::{GroupId, MessageView, Role, UserId};
use crate::store::{GroupRecord, StoredMessage};

/// Serialized, this is also the cluster's membership frame (`realtime::fanout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
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
    /// v1.1: the member's sockets join (owner, moderator) or leave the room of the group's
    /// managers, where join requests are announced.
    RoleChanged {
        group: GroupId,
        user: UserId,
        role: Role,
    },
    /// v1.1: `group:invited` to the invitee's sockets.
    Invited {
        group: GroupId,
        group_name: String,
        user: UserId,
        by: UserId,
    },
    /// v1.1: `group:updated` (the group) to its members.
    Updated {
        record: GroupRecord,
    },
    /// v1.1: `group:join_requested` to the group's managers.
    JoinRequested {
        group: GroupId,
        user: UserId,
        username: String,
        #[serde(with = "time::serde::rfc3339")]
        requested_at: OffsetDateTime,
    },
    /// v1.1: `group:join_request_withdrawn` to the group's managers.
    JoinRequestWithdrawn {
        group: GroupId,
        user: UserId,
    },
}

impl GroupEvent {
    /// The user whose sockets' rooms the event changes, if any: the one to re-read when the
    /// event could not be carried.
    pub fn user(&self) -> Option<UserId> {
        match *self {
            GroupEvent::MemberJoined { user, .. }
            | GroupEvent::MemberLeft { user, .. }
            | GroupEvent::Removed { user, .. }
            | GroupEvent::RoleChanged { user, .. } => Some(user),
            // Notices only: one lost is like a lost live message.
            GroupEvent::Invited { .. }
            | GroupEvent::Updated { .. }
            | GroupEvent::JoinRequested { .. }
            | GroupEvent::JoinRequestWithdrawn { .. } => None,
        }
    }

    /// The member who lost access to the group through this event, if any.
    pub fn lost_access(&self) -> Option<(GroupId, UserId)> {
        match *self {
            GroupEvent::MemberLeft { group, user } | GroupEvent::Removed { group, user, .. } => {
                Some((group, user))
            }
            _ => None,
        }
    }
}

/// A removal that could not be carried to every process's live sockets in time. It is applied
/// here and carried once the fan-out is back; until then the command must not be reported done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unpublished;

#[async_trait::async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// Applied before the command's HTTP reply is sent, so a removed user's sockets are out of
    /// the room by the time anyone learns of the removal. `Err` when a removal among them did
    /// not reach every process.
    async fn group_events(&self, events: Vec<GroupEvent>) -> Result<(), Unpublished>;
    /// Whether a removal made now would reach every process's live sockets: asked before a
    /// command that takes someone's access away, so it is refused with nothing changed rather
    /// than stored and left unenforced.
    async fn removals_deliverable(&self) -> bool {
        true
    }
    /// Newly stored messages, in `seq` order per group; awaited before the next batch.
    async fn messages_stored(&self, messages: &[StoredMessage]);
    /// A member's read marker moved (already throttled): `message:read` to the other members.
    async fn read_moved(&self, _group: GroupId, _user: UserId, _seq: u64) {}
}

/// For a server with no live clients (and for tests of the REST layer alone).
pub struct NoEvents;

#[async_trait::async_trait]
impl EventSink for NoEvents {
    async fn group_events(&self, _: Vec<GroupEvent>) -> Result<(), Unpublished> {
        Ok(())
    }
    async fn messages_stored(&self, _: &[StoredMessage]) {}
}

/// Told what the real-time fan-out learns about membership, so that what other parts remember
/// about members (the send path's permission cache) stays true. The fan-out knows nothing of
/// who listens.
pub trait MembershipWatcher: Send + Sync + 'static {
    /// A membership event reached this process: on the process that ran the command, before
    /// its reply; elsewhere, when the fan-out delivers it.
    fn event(&self, ev: &GroupEvent);
    /// Membership events may have been lost (the fan-out's connection dropped, or a frame was
    /// unreadable): forget whatever they could have changed.
    fn events_lost(&self);
}

/// The real-time layer's port: what must reach the live sockets of a group's members, wherever
/// they are connected. Content arrives here already opened; the keyring never leaves `messages`.
#[async_trait]
pub trait Broadcast: Send + Sync + 'static {
    /// `message:new` for each view, to its group's members, in order.
    async fn messages(&self, views: &[MessageView]);
    /// Moves sockets between rooms and tells them, on every process; `Err` when a removal could
    /// not be carried to every process in time (it is applied here, and carried later).
    async fn group_event(&self, event: GroupEvent) -> Result<(), Unpublished>;
    /// See [`EventSink::removals_deliverable`].
    async fn removals_deliverable(&self) -> bool;
    async fn read_moved(&self, _group: GroupId, _user: UserId, _seq: u64) {}
}
