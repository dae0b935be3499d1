//! What the audit trail records: one security-relevant action, who did it, to whom, where.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{AuditId, Command, GroupId, UserId};
use crate::domain;

/// The kinds of security events. Account events (`user_registered`, `login_*`,
/// `refresh_token_reuse`) carry no group; the others belong to the group they changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    UserRegistered,
    LoginSucceeded,
    LoginFailed,
    /// A spent refresh token was presented again; its whole family was revoked.
    RefreshTokenReuse,
    JoinApproved,
    JoinRejected,
    MemberBanned,
    MemberUnbanned,
    MemberRemoved,
    OwnershipTransferred,
    GroupDeleted,
    RoleChanged,
    InvitationCreated,
    InvitationAccepted,
    /// Declined by the invitee or revoked by a manager (the actor says which).
    InvitationCancelled,
    GroupUpdated,
    /// A message deleted by someone other than its sender (a moderator or the owner); the
    /// target is the message's sender.
    MessageDeleted,
}

impl AuditKind {
    pub const ALL: [AuditKind; 17] = [
        AuditKind::UserRegistered,
        AuditKind::LoginSucceeded,
        AuditKind::LoginFailed,
        AuditKind::RefreshTokenReuse,
        AuditKind::JoinApproved,
        AuditKind::JoinRejected,
        AuditKind::MemberBanned,
        AuditKind::MemberUnbanned,
        AuditKind::MemberRemoved,
        AuditKind::OwnershipTransferred,
        AuditKind::GroupDeleted,
        AuditKind::RoleChanged,
        AuditKind::InvitationCreated,
        AuditKind::InvitationAccepted,
        AuditKind::InvitationCancelled,
        AuditKind::GroupUpdated,
        AuditKind::MessageDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::UserRegistered => "user_registered",
            AuditKind::LoginSucceeded => "login_succeeded",
            AuditKind::LoginFailed => "login_failed",
            AuditKind::RefreshTokenReuse => "refresh_token_reuse",
            AuditKind::JoinApproved => "join_approved",
            AuditKind::JoinRejected => "join_rejected",
            AuditKind::MemberBanned => "member_banned",
            AuditKind::MemberUnbanned => "member_unbanned",
            AuditKind::MemberRemoved => "member_removed",
            AuditKind::OwnershipTransferred => "ownership_transferred",
            AuditKind::GroupDeleted => "group_deleted",
            AuditKind::RoleChanged => "role_changed",
            AuditKind::InvitationCreated => "invitation_created",
            AuditKind::InvitationAccepted => "invitation_accepted",
            AuditKind::InvitationCancelled => "invitation_cancelled",
            AuditKind::GroupUpdated => "group_updated",
            AuditKind::MessageDeleted => "message_deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The audit kind of a successful group command, if it is one worth auditing. A sole
    /// owner leaving deletes the group, which the caller reports as `GroupDeleted`.
    pub fn of_command(cmd: &Command) -> Option<Self> {
        Some(match cmd {
            Command::Approve { .. } => AuditKind::JoinApproved,
            Command::Reject { .. } => AuditKind::JoinRejected,
            Command::Ban { .. } => AuditKind::MemberBanned,
            Command::Unban { .. } => AuditKind::MemberUnbanned,
            Command::Remove { .. } => AuditKind::MemberRemoved,
            Command::TransferOwnership { .. } => AuditKind::OwnershipTransferred,
            Command::Delete => AuditKind::GroupDeleted,
            Command::SetRole { .. } => AuditKind::RoleChanged,
            Command::Invite { .. } => AuditKind::InvitationCreated,
            Command::AcceptInvitation => AuditKind::InvitationAccepted,
            Command::CancelInvitation { .. } => AuditKind::InvitationCancelled,
            Command::UpdateSettings(_) => AuditKind::GroupUpdated,
            Command::Join | Command::WithdrawRequest | Command::Leave => return None,
        })
    }
}

/// One recorded event. Ids are UUIDv7, so `(at, id)` orders events as they were recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: AuditId,
    pub kind: AuditKind,
    /// Who acted; `None` for a failed login (no account was proven).
    pub actor: Option<UserId>,
    pub group: Option<GroupId>,
    /// Whom it was done to (the banned, approved, new owner...).
    pub target: Option<UserId>,
    pub client: Option<IpAddr>,
    pub at: OffsetDateTime,
}

impl AuditEvent {
    pub fn new(kind: AuditKind) -> Self {
        Self {
            id: AuditId::new(),
            kind,
            actor: None,
            group: None,
            target: None,
            client: None,
            at: domain::now(),
        }
    }

    pub fn actor(mut self, u: UserId) -> Self {
        self.actor = Some(u);
        self
    }

    pub fn group(mut self, g: GroupId) -> Self {
        self.group = Some(g);
        self
    }

    pub fn target(mut self, u: Option<UserId>) -> Self {
        self.target = u;
        self
    }

    pub fn client(mut self, ip: Option<IpAddr>) -> Self {
        self.client = ip;
        self
    }

    /// The keyset cursor key of this event in a group's listing.
    pub fn cursor_key(&self) -> String {
        format!("{}|{}", domain::to_millis(self.at), self.id)
    }

    /// Splits a key written by [`AuditEvent::cursor_key`].
    pub fn split_cursor_key(key: &str) -> Option<(i64, AuditId)> {
        let (t, id) = key.split_once('|')?;
        Some((t.parse().ok()?, id.parse().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in AuditKind::ALL {
            assert_eq!(AuditKind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::Value::String(k.as_str().into())
            );
        }
        assert_eq!(AuditKind::parse("nope"), None);
    }

    #[test]
    fn cursor_keys_round_trip() {
        let e = AuditEvent::new(AuditKind::MemberBanned);
        let (t, id) = AuditEvent::split_cursor_key(&e.cursor_key()).unwrap();
        assert_eq!((t, id), (domain::to_millis(e.at), e.id));
        assert!(AuditEvent::split_cursor_key("x|y").is_none());
    }
}
