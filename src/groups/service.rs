use std::sync::Arc;

use std::net::IpAddr;

use crate::audit::Audit;
use crate::config::GroupSettings;
use crate::domain::{
    self, Command, Cursor, Description, Effect, GroupId, GroupName, Limit, MaxMembers, Outcome,
    Relation, Role, UserId, Visibility, can_read_members,
};
use crate::domain::{AuditEvent, AuditKind};
use crate::error::{AppError, AppResult};
use crate::events::{EventSink, GroupEvent, RemovalReason};
use crate::limits::{self, RateLimiter};
use crate::ops::metrics as metric;
use crate::store::{
    BanRecord, Executed, GroupFilter, GroupRecord, GroupStore, JoinRequestRecord, MemberRecord,
    Page, Policy,
};

pub struct NewGroup {
    pub name: GroupName,
    pub description: Description,
    pub visibility: Visibility,
    pub max_members: Option<MaxMembers>,
}

#[derive(Clone)]
pub struct GroupService {
    pub(super) store: Arc<dyn GroupStore>,
    events: Arc<dyn EventSink>,
    pub(super) audit: Audit,
    limiter: Arc<dyn RateLimiter>,
    settings: GroupSettings,
}

impl GroupService {
    pub fn new(
        store: Arc<dyn GroupStore>,
        events: Arc<dyn EventSink>,
        audit: Audit,
        limiter: Arc<dyn RateLimiter>,
        settings: GroupSettings,
    ) -> Self {
        Self {
            store,
            events,
            audit,
            limiter,
            settings,
        }
    }

    pub async fn create(&self, owner: UserId, g: NewGroup) -> AppResult<GroupRecord> {
        self.spend_group_action(owner).await?;
        self.ensure_room_for(owner, None).await?;
        let record = GroupRecord {
            id: GroupId::new(),
            name: g.name.as_str().to_owned(),
            description: g.description.as_str().to_owned(),
            visibility: g.visibility,
            owner_id: owner,
            member_count: 1,
            max_members: g
                .max_members
                .map(MaxMembers::get)
                .unwrap_or(self.settings.default_group_members),
            created_at: domain::now(),
        };
        self.store.create_group(&record).await?;
        // Not a removal: carried later if the fan-out is down, never refused.
        let _ = self
            .events
            .group_events(vec![
                GroupEvent::MemberJoined {
                    group: record.id,
                    user: owner,
                },
                // Into the managers' room, where join requests are announced.
                GroupEvent::RoleChanged {
                    group: record.id,
                    user: owner,
                    role: Role::Owner,
                },
            ])
            .await;
        Ok(record)
    }

    /// The largest `max_members` a group may ask for.
    pub fn max_members_ceiling(&self) -> u32 {
        self.settings.max_group_members
    }

    /// Every group the user belongs to (the rooms of their sockets).
    pub async fn ids_of_member(&self, user: UserId) -> AppResult<Vec<GroupId>> {
        self.store.group_ids_of_user(user).await
    }

    /// Every group the user owns or moderates (the managers' rooms of their sockets).
    pub async fn ids_managed_by(&self, user: UserId) -> AppResult<Vec<GroupId>> {
        self.store.managed_group_ids(user).await
    }

    pub async fn get(&self, id: GroupId) -> AppResult<GroupRecord> {
        self.store.group(id).await?.ok_or(AppError::NotFound)
    }

    pub async fn list(
        &self,
        filter: &GroupFilter,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<GroupRecord>> {
        self.store.list_groups(filter, limit, after).await
    }

    pub async fn mine(
        &self,
        user: UserId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<(GroupRecord, MemberRecord)>> {
        self.store.groups_of_user(user, limit, after).await
    }

    /// The group and the caller's relation to it; `NotFound` if there is no such group.
    pub async fn relation(
        &self,
        group: GroupId,
        user: UserId,
    ) -> AppResult<(GroupRecord, Relation)> {
        self.store
            .relation(group, user)
            .await?
            .ok_or(AppError::NotFound)
    }

    /// Runs a membership command; `client` is the caller's address, for the audit trail.
    pub async fn run(
        &self,
        group: GroupId,
        actor: UserId,
        cmd: Command,
        client: Option<IpAddr>,
    ) -> AppResult<Executed> {
        match cmd {
            Command::Join => {
                self.spend_group_action(actor).await?;
                self.ensure_room_for(actor, Some(group)).await?;
            }
            // Inviting notifies someone else, like a join request: the same budget.
            Command::Invite { .. } => self.spend_group_action(actor).await?,
            Command::Approve { target } => self.ensure_room_for(target, Some(group)).await?,
            Command::AcceptInvitation => self.ensure_room_for(actor, Some(group)).await?,
            _ => {}
        }
        // A ban that cannot reach the banned user's sockets would answer 201 and leave them
        // reading on: refuse it with nothing changed instead.
        if cmd.takes_access_away() && !self.events.removals_deliverable().await {
            return Err(AppError::Unavailable(
                "the real-time fan-out cannot carry removals right now".into(),
            ));
        }
        let policy = Policy {
            rejoin_cooldown: self.settings.rejoin_cooldown,
            max_groups_per_user: self.settings.max_groups_per_user,
        };
        let res = self
            .store
            .execute(group, actor, &cmd, domain::now(), policy)
            .await;
        let result = match &res {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        if result == "too_many_groups" {
            metrics::counter!(metric::RATE_LIMITED, "limit" => "groups_per_user").increment(1);
        }
        metrics::counter!(metric::GROUP_COMMANDS, "command" => cmd.name(), "result" => result)
            .increment(1);
        let done = res?;
        let kind = if done.effects.contains(&Effect::DeleteGroup) {
            Some(AuditKind::GroupDeleted)
        } else if done.effects.is_empty() && matches!(cmd, Command::SetRole { .. }) {
            // Setting the role a member already has changed nothing.
            None
        } else {
            AuditKind::of_command(&cmd)
        };
        if let Some(kind) = kind {
            tracing::info!(target: "audit", event = kind.as_str(), group_id = %group, actor_id = %actor, target_id = ?cmd.target().map(|t| t.to_string()));
            self.audit.record(
                AuditEvent::new(kind)
                    .actor(actor)
                    .group(group)
                    .target(cmd.target())
                    .client(client),
            );
        }
        let mut events = events_of(group, &cmd, &done);
        if let (Command::Join, Outcome::Pending) = (&cmd, done.outcome) {
            // The managers see who asks; a name lost to a failed read is not worth failing for.
            let username = self.store.username_of(actor).await.ok().flatten();
            events.push(GroupEvent::JoinRequested {
                group,
                user: actor,
                username: username.unwrap_or_default(),
                requested_at: done.at,
            });
        }
        if self.events.group_events(events).await.is_err() {
            // Stored, and applied to this process's sockets, but not yet to every process's:
            // not done as far as the caller may tell. Repeating the command is safe; it
            // succeeds once the fan-out has carried it.
            tracing::warn!(group_id = %group, command = cmd.name(), "a removal is stored but not yet carried to every process; answering 503");
            return Err(AppError::Unavailable(
                "the change is stored but has not reached every live connection yet".into(),
            ));
        }
        Ok(done)
    }

    pub async fn members(
        &self,
        group: GroupId,
        viewer: UserId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<MemberRecord>> {
        let (g, me) = self.relation(group, viewer).await?;
        can_read_members(g.visibility, &me)?;
        self.store.members(group, limit, after).await
    }

    pub async fn join_requests(
        &self,
        group: GroupId,
        viewer: UserId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<JoinRequestRecord>> {
        self.managers_only(group, viewer).await?;
        self.store.join_requests(group, limit, after).await
    }

    /// The group's audit trail (owner and moderators).
    pub async fn audit(
        &self,
        group: GroupId,
        viewer: UserId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<AuditEvent>> {
        self.managers_only(group, viewer).await?;
        self.audit.of_group(group, limit, after).await
    }

    pub async fn bans(
        &self,
        group: GroupId,
        viewer: UserId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<BanRecord>> {
        self.managers_only(group, viewer).await?;
        self.store.bans(group, limit, after).await
    }

    /// Creating a group, asking to join one and inviting share a per-user budget, so one
    /// account cannot flood owners with join requests, users with invitations or the store
    /// with groups.
    async fn spend_group_action(&self, user: UserId) -> AppResult<()> {
        let key = format!("group:{user}");
        limits::spend(
            &*self.limiter,
            &key,
            self.settings.group_actions_per_user,
            "group_actions",
        )
        .await
    }

    /// Refuses a new membership of `user` once they belong to `max_groups_per_user` groups: the
    /// cheap early answer. The store decides it again inside the transaction that adds the
    /// member, with the user locked (`store::membership`), so concurrent joins cannot overshoot.
    async fn ensure_room_for(&self, user: UserId, joining: Option<GroupId>) -> AppResult<()> {
        let max = self.settings.max_groups_per_user as usize;
        let groups = self.store.group_ids_of_user(user).await?;
        // Already a member of this group: the membership rules answer (`already_member`).
        if groups.len() < max || joining.is_some_and(|g| groups.contains(&g)) {
            return Ok(());
        }
        metrics::counter!(metric::RATE_LIMITED, "limit" => "groups_per_user").increment(1);
        Err(AppError::conflict(
            "too_many_groups",
            format!("a user may belong to at most {max} groups"),
        ))
    }

    /// The owner or a moderator (v1.1: moderators read requests, bans and the audit trail).
    pub(super) async fn managers_only(&self, group: GroupId, viewer: UserId) -> AppResult<()> {
        let (_, me) = self.relation(group, viewer).await?;
        if me.is_manager() {
            Ok(())
        } else {
            Err(AppError::forbidden())
        }
    }
}

/// What live clients must hear about an applied command.
fn events_of(group: GroupId, cmd: &Command, done: &Executed) -> Vec<GroupEvent> {
    let mut out = Vec::new();
    for e in &done.effects {
        match e {
            Effect::AddMember { user, .. } => {
                out.push(GroupEvent::MemberJoined { group, user: *user })
            }
            Effect::RemoveMember { user } => {
                let reason = match cmd {
                    Command::Ban { .. } => Some(RemovalReason::Banned),
                    Command::Remove { .. } => Some(RemovalReason::Removed),
                    _ => None,
                };
                if let Some(reason) = reason {
                    out.push(GroupEvent::Removed {
                        group,
                        user: *user,
                        reason,
                    });
                }
                out.push(GroupEvent::MemberLeft { group, user: *user });
            }
            Effect::DeleteGroup => {
                out.extend(done.former_members.iter().map(|u| GroupEvent::Removed {
                    group,
                    user: *u,
                    reason: RemovalReason::Deleted,
                }))
            }
            Effect::SetRole { user, role } => out.push(GroupEvent::RoleChanged {
                group,
                user: *user,
                role: *role,
            }),
            Effect::AddInvitation { user, by } => out.push(GroupEvent::Invited {
                group,
                group_name: done
                    .group
                    .as_ref()
                    .map(|g| g.name.clone())
                    .unwrap_or_default(),
                user: *user,
                by: *by,
            }),
            Effect::UpdateGroup(_) => out.extend(
                done.group
                    .clone()
                    .map(|record| GroupEvent::Updated { record }),
            ),
            Effect::RemoveRequest { user } if *cmd == Command::WithdrawRequest => {
                out.push(GroupEvent::JoinRequestWithdrawn { group, user: *user })
            }
            _ => {}
        }
    }
    out
}
