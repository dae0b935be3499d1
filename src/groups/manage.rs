//! v1.1 group management: roles, invitations and settings. Every change is a membership command
//! (`GroupService::run`: decided by the pure rules, applied atomically, audited, announced);
//! this file adds the reads and the shapes the routes answer with.

use std::net::IpAddr;

use crate::domain::{Command, Cursor, GroupId, GroupPatch, Limit, Role, UserId};
use crate::error::{AppError, AppResult};
use crate::store::{GroupRecord, InvitationRecord, MemberRecord, Page};

use super::GroupService;

impl GroupService {
    /// Makes a member a moderator or a plain member again (owner only); the member after.
    pub async fn set_role(
        &self,
        group: GroupId,
        actor: UserId,
        target: UserId,
        role: Role,
        client: Option<IpAddr>,
    ) -> AppResult<MemberRecord> {
        self.run(group, actor, Command::SetRole { target, role }, client)
            .await?;
        self.store
            .member(group, target)
            .await?
            .ok_or(AppError::NotFound)
    }

    /// Invites a user (owner or moderator); the invitation made.
    pub async fn invite(
        &self,
        group: GroupId,
        actor: UserId,
        target: UserId,
        client: Option<IpAddr>,
    ) -> AppResult<InvitationRecord> {
        let done = self
            .run(group, actor, Command::Invite { target }, client)
            .await?;
        Ok(InvitationRecord {
            group_id: group,
            user_id: target,
            username: String::new(),
            invited_by: actor,
            invited_at: done.at,
        })
    }

    /// The group's pending invitations (owner and moderators).
    pub async fn invitations(
        &self,
        group: GroupId,
        viewer: UserId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<InvitationRecord>> {
        self.managers_only(group, viewer).await?;
        self.store.group_invitations(group, limit, after).await
    }

    /// The caller's pending invitations, with their groups.
    pub async fn my_invitations(
        &self,
        user: UserId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<(GroupRecord, InvitationRecord)>> {
        self.store.invitations_of_user(user, limit, after).await
    }

    /// Changes name and description (owner or moderator), visibility and `max_members` (owner);
    /// the group after.
    pub async fn update(
        &self,
        group: GroupId,
        actor: UserId,
        patch: GroupPatch,
        client: Option<IpAddr>,
    ) -> AppResult<GroupRecord> {
        let done = self
            .run(group, actor, Command::UpdateSettings(patch), client)
            .await?;
        done.group.ok_or(AppError::NotFound)
    }
}
