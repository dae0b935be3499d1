//! v1.1 events: the managers' room kept right when roles change, and the notices (`group:invited`,
//! `group:updated`, `group:join_requested`, `group:join_request_withdrawn`). Carried like every
//! membership event (on the membership channel in the cluster), so every process applies them
//! to its own sockets.

use serde_json::json;
use socketioxide::SocketIo;

use super::{emit_room, room};
use crate::domain::{GroupId, Role, UserId};
use crate::events::GroupEvent;
use crate::realtime::{group_room, managers_room, user_room};

/// Applies a v1.1 event to this process's sockets; the v1 events are `super::apply`'s.
pub(super) async fn apply(io: &SocketIo, ev: GroupEvent) {
    match ev {
        GroupEvent::RoleChanged { group, user, role } => match role {
            Role::Owner | Role::Moderator => join_managers(io, user, group).await,
            Role::Member => leave_managers(io, user, group).await,
        },
        GroupEvent::Invited {
            group,
            group_name,
            user,
            by,
        } => {
            let body = json!({"group_id": group, "group_name": group_name, "invited_by": by});
            emit_room(io, user_room(user), "group:invited", body).await;
        }
        GroupEvent::Updated { record } => {
            let g = record.id;
            let body = serde_json::to_value(record).unwrap_or_default();
            emit_room(io, group_room(g), "group:updated", body).await;
        }
        GroupEvent::JoinRequested {
            group,
            user,
            username,
            requested_at,
        } => {
            let at = requested_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let body = json!({"group_id": group, "user_id": user, "username": username, "requested_at": at});
            emit_room(io, managers_room(group), "group:join_requested", body).await;
        }
        GroupEvent::JoinRequestWithdrawn { group, user } => {
            let body = json!({"group_id": group, "user_id": user});
            emit_room(
                io,
                managers_room(group),
                "group:join_request_withdrawn",
                body,
            )
            .await;
        }
        GroupEvent::MemberJoined { .. }
        | GroupEvent::MemberLeft { .. }
        | GroupEvent::Removed { .. } => {}
    }
}

async fn join_managers(io: &SocketIo, user: UserId, group: GroupId) {
    if let Some(to) = room(io, user_room(user))
        && let Err(e) = to.join(managers_room(group)).await
    {
        tracing::warn!(error = %e, "joining sockets to a managers' room failed");
    }
}

/// Also when the user leaves the group, whatever their role was.
pub(super) async fn leave_managers(io: &SocketIo, user: UserId, group: GroupId) {
    if let Some(to) = room(io, user_room(user))
        && let Err(e) = to.leave(managers_room(group)).await
    {
        tracing::warn!(error = %e, "removing sockets from a managers' room failed");
    }
}
