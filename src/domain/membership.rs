//! The membership state machine: every command the API offers on a group, decided from a
//! snapshot of the group and of the users involved. Pure: the stores load the snapshot inside a
//! transaction, call [`decide`], and apply the returned effects in the same transaction, which is
//! what makes concurrent approvals, bans racing joins and transfers racing leaves safe.
//!
//! A user's relation to a group is one of: none, pending (join request), member, moderator,
//! owner, banned, or cooled down (a former member of a private group within the rejoin
//! cooldown); an invitation can sit beside none, pending and cooled down. Banned and cooled-down
//! can co-exist with "none" only; the store never holds a banned member or a banned invitee.
//!
//! The owner and the moderators manage the group ("managers"): they approve and reject requests,
//! invite, remove, ban and unban. A moderator never acts on the owner or another moderator.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{UserId, Visibility};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Moderator,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Moderator => "moderator",
            Role::Member => "member",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "owner" => Some(Role::Owner),
            "moderator" => Some(Role::Moderator),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// What the rules need to know about the group itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupFacts {
    pub visibility: Visibility,
    pub owner_id: UserId,
    pub member_count: u32,
    pub max_members: u32,
}

/// What one user is to the group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relation {
    pub role: Option<Role>,
    pub pending: bool,
    pub banned: bool,
    /// An invitation waits for this user's answer.
    pub invited: bool,
    /// End of the private-group rejoin cooldown, if one was ever set.
    pub cooldown_until: Option<OffsetDateTime>,
}

impl Relation {
    pub fn is_member(&self) -> bool {
        self.role.is_some()
    }

    pub fn is_owner(&self) -> bool {
        self.role == Some(Role::Owner)
    }

    /// The owner or a moderator.
    pub fn is_manager(&self) -> bool {
        matches!(self.role, Some(Role::Owner | Role::Moderator))
    }
}

/// The settings `PATCH /groups/{id}` changes; `None` leaves a field as it is. Values are
/// validated before they get here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub visibility: Option<Visibility>,
    pub max_members: Option<u32>,
}

impl GroupPatch {
    /// Fields only the owner may change.
    pub fn has_owner_fields(&self) -> bool {
        self.visibility.is_some() || self.max_members.is_some()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Join an open group, or ask to join a private one.
    Join,
    WithdrawRequest,
    Approve {
        target: UserId,
    },
    Reject {
        target: UserId,
    },
    Remove {
        target: UserId,
    },
    Leave,
    Ban {
        target: UserId,
    },
    Unban {
        target: UserId,
    },
    TransferOwnership {
        target: UserId,
    },
    Delete,
    /// Owner only: make a member a moderator or a plain member again.
    SetRole {
        target: UserId,
        role: Role,
    },
    Invite {
        target: UserId,
    },
    AcceptInvitation,
    /// The invitee declines (target = actor), or a manager revokes.
    CancelInvitation {
        target: UserId,
    },
    UpdateSettings(GroupPatch),
}

impl Command {
    pub fn target(&self) -> Option<UserId> {
        match self {
            Command::Approve { target }
            | Command::Reject { target }
            | Command::Remove { target }
            | Command::Ban { target }
            | Command::Unban { target }
            | Command::TransferOwnership { target }
            | Command::SetRole { target, .. }
            | Command::Invite { target }
            | Command::CancelInvitation { target } => Some(*target),
            Command::Join
            | Command::WithdrawRequest
            | Command::Leave
            | Command::Delete
            | Command::AcceptInvitation
            | Command::UpdateSettings(_) => None,
        }
    }

    /// Whether the command takes someone's access away (a removal, a ban, a deletion, or the
    /// caller's own leave): such a command is only reported done once every process has carried
    /// it out.
    pub fn takes_access_away(&self) -> bool {
        matches!(
            self,
            Command::Remove { .. } | Command::Ban { .. } | Command::Delete | Command::Leave
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            Command::Join => "join",
            Command::WithdrawRequest => "withdraw_request",
            Command::Approve { .. } => "approve",
            Command::Reject { .. } => "reject",
            Command::Remove { .. } => "remove",
            Command::Leave => "leave",
            Command::Ban { .. } => "ban",
            Command::Unban { .. } => "unban",
            Command::TransferOwnership { .. } => "transfer_ownership",
            Command::Delete => "delete",
            Command::SetRole { .. } => "set_role",
            Command::Invite { .. } => "invite",
            Command::AcceptInvitation => "accept_invitation",
            Command::CancelInvitation { .. } => "cancel_invitation",
            Command::UpdateSettings(_) => "update_settings",
        }
    }
}

/// A state change for the store to apply, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    AddMember { user: UserId, role: Role },
    RemoveMember { user: UserId },
    SetRole { user: UserId, role: Role },
    SetOwner { user: UserId },
    AddRequest { user: UserId },
    RemoveRequest { user: UserId },
    AddBan { user: UserId, by: UserId },
    RemoveBan { user: UserId },
    SetCooldown { user: UserId, until: OffsetDateTime },
    AddInvitation { user: UserId, by: UserId },
    RemoveInvitation { user: UserId },
    UpdateGroup(GroupPatch),
    DeleteGroup,
}

/// What the caller is told when the command succeeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The user is now a member (open join, approval).
    Member,
    /// A join request now waits for the owner.
    Pending,
    Done,
    GroupDeleted,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub effects: Vec<Effect>,
    pub outcome: Outcome,
}

/// Why a command is refused; each maps to one stable API error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("you may not do this in this group")]
    Forbidden,
    #[error("you are banned from this group")]
    Banned,
    #[error("you left this private group recently; try again later")]
    CooldownActive { retry_after: Duration },
    #[error("not found")]
    NotFound,
    #[error("already a member of this group")]
    AlreadyMember,
    #[error("a join request is already pending")]
    RequestPending,
    #[error("the owner must transfer ownership before leaving")]
    OwnerMustTransfer,
    #[error("the group is full")]
    GroupFull,
    #[error("an invitation is already pending")]
    InvitationPending,
    #[error("the group has more members than that")]
    MembersExceedLimit,
    #[error("a user may belong to at most {max} groups")]
    TooManyGroups { max: u32 },
    #[error("{message}")]
    InvalidTarget {
        field: &'static str,
        message: &'static str,
    },
}

/// The state a command is decided on.
#[derive(Clone, Debug)]
pub struct Snapshot<'a> {
    pub group: &'a GroupFacts,
    pub actor_id: UserId,
    pub actor: &'a Relation,
    /// The target's relation, for commands that name one (equal to `actor` when they are the same user).
    pub target: &'a Relation,
}

pub fn decide(
    cmd: &Command,
    s: &Snapshot<'_>,
    now: OffsetDateTime,
    cooldown: Duration,
) -> Result<Decision, Refusal> {
    let private = s.group.visibility == Visibility::Private;
    let actor = s.actor_id;
    let cooldown_for = |user: UserId| -> Vec<Effect> {
        if private {
            vec![Effect::SetCooldown {
                user,
                until: now + cooldown,
            }]
        } else {
            Vec::new()
        }
    };
    let owner_only = || {
        if s.actor.is_owner() {
            Ok(())
        } else {
            Err(Refusal::Forbidden)
        }
    };
    let managers_only = || {
        if s.actor.is_manager() {
            Ok(())
        } else {
            Err(Refusal::Forbidden)
        }
    };
    // A moderator never acts on the owner or on another moderator.
    let above_target = || {
        if s.actor.is_owner() || !s.target.is_manager() {
            Ok(())
        } else {
            Err(Refusal::Forbidden)
        }
    };
    // Becoming a member answers any invitation.
    let consume_invitation = |rel: &Relation, user: UserId| -> Vec<Effect> {
        if rel.invited {
            vec![Effect::RemoveInvitation { user }]
        } else {
            Vec::new()
        }
    };

    match cmd {
        Command::Join => {
            let me = s.actor;
            if me.banned {
                return Err(Refusal::Banned);
            }
            if me.is_member() {
                return Err(Refusal::AlreadyMember);
            }
            if me.pending {
                return Err(Refusal::RequestPending);
            }
            if let Some(until) = me.cooldown_until.filter(|u| private && *u > now) {
                return Err(Refusal::CooldownActive {
                    retry_after: ceil_secs(until - now),
                });
            }
            if s.group.member_count >= s.group.max_members {
                return Err(Refusal::GroupFull);
            }
            Ok(if private {
                Decision {
                    effects: vec![Effect::AddRequest { user: actor }],
                    outcome: Outcome::Pending,
                }
            } else {
                let mut effects = consume_invitation(me, actor);
                effects.push(Effect::AddMember {
                    user: actor,
                    role: Role::Member,
                });
                Decision {
                    effects,
                    outcome: Outcome::Member,
                }
            })
        }
        Command::WithdrawRequest => {
            if !s.actor.pending {
                return Err(Refusal::NotFound);
            }
            Ok(done(vec![Effect::RemoveRequest { user: actor }]))
        }
        Command::Approve { target } => {
            managers_only()?;
            if !s.target.pending {
                return Err(Refusal::NotFound);
            }
            if s.group.member_count >= s.group.max_members {
                return Err(Refusal::GroupFull);
            }
            let mut effects = vec![Effect::RemoveRequest { user: *target }];
            effects.extend(consume_invitation(s.target, *target));
            effects.push(Effect::AddMember {
                user: *target,
                role: Role::Member,
            });
            Ok(Decision {
                effects,
                outcome: Outcome::Member,
            })
        }
        Command::Reject { target } => {
            managers_only()?;
            if !s.target.pending {
                return Err(Refusal::NotFound);
            }
            Ok(done(vec![Effect::RemoveRequest { user: *target }]))
        }
        Command::Remove { target } => {
            managers_only()?;
            if *target == actor {
                return Err(Refusal::Forbidden);
            }
            above_target()?;
            if !s.target.is_member() {
                return Err(Refusal::NotFound);
            }
            let mut effects = vec![Effect::RemoveMember { user: *target }];
            effects.extend(cooldown_for(*target));
            Ok(done(effects))
        }
        Command::Leave => {
            if !s.actor.is_member() {
                return Err(Refusal::NotFound);
            }
            if s.actor.is_owner() {
                if s.group.member_count > 1 {
                    return Err(Refusal::OwnerMustTransfer);
                }
                return Ok(Decision {
                    effects: vec![Effect::DeleteGroup],
                    outcome: Outcome::GroupDeleted,
                });
            }
            let mut effects = vec![Effect::RemoveMember { user: actor }];
            effects.extend(cooldown_for(actor));
            Ok(done(effects))
        }
        Command::Ban { target } => {
            managers_only()?;
            if *target == actor {
                return Err(Refusal::Forbidden);
            }
            above_target()?;
            // Banning again changes nothing; the call stays successful so retries are safe.
            if s.target.banned {
                return Ok(done(Vec::new()));
            }
            let mut effects = Vec::new();
            if s.target.is_member() {
                effects.push(Effect::RemoveMember { user: *target });
            }
            if s.target.pending {
                effects.push(Effect::RemoveRequest { user: *target });
            }
            effects.extend(consume_invitation(s.target, *target));
            effects.push(Effect::AddBan {
                user: *target,
                by: actor,
            });
            Ok(done(effects))
        }
        Command::Unban { target } => {
            managers_only()?;
            if !s.target.banned {
                return Err(Refusal::NotFound);
            }
            let mut effects = vec![Effect::RemoveBan { user: *target }];
            effects.extend(cooldown_for(*target));
            Ok(done(effects))
        }
        Command::TransferOwnership { target } => {
            owner_only()?;
            if *target == actor {
                return Err(Refusal::InvalidTarget {
                    field: "new_owner_id",
                    message: "is already the owner",
                });
            }
            if !s.target.is_member() {
                return Err(Refusal::InvalidTarget {
                    field: "new_owner_id",
                    message: "must be a member of the group",
                });
            }
            Ok(done(vec![
                Effect::SetRole {
                    user: *target,
                    role: Role::Owner,
                },
                Effect::SetRole {
                    user: actor,
                    role: Role::Member,
                },
                Effect::SetOwner { user: *target },
            ]))
        }
        Command::Delete => {
            owner_only()?;
            Ok(Decision {
                effects: vec![Effect::DeleteGroup],
                outcome: Outcome::GroupDeleted,
            })
        }
        Command::SetRole { target, role } => {
            owner_only()?;
            if *role == Role::Owner {
                return Err(Refusal::InvalidTarget {
                    field: "role",
                    message: "must be \"moderator\" or \"member\" (ownership moves by transfer)",
                });
            }
            if *target == actor {
                return Err(Refusal::InvalidTarget {
                    field: "user_id",
                    message: "the owner's role changes only by transferring ownership",
                });
            }
            match s.target.role {
                None => Err(Refusal::NotFound),
                // Setting the role a member already has changes nothing and stays successful.
                Some(current) if current == *role => Ok(done(Vec::new())),
                Some(_) => Ok(done(vec![Effect::SetRole {
                    user: *target,
                    role: *role,
                }])),
            }
        }
        Command::Invite { target } => {
            managers_only()?;
            if s.target.banned {
                return Err(Refusal::Banned);
            }
            if s.target.is_member() {
                return Err(Refusal::AlreadyMember);
            }
            if s.target.invited {
                return Err(Refusal::InvitationPending);
            }
            // A pending request or a running cooldown does not stop an invitation: the
            // cooldown is checked when it is accepted, which also consumes the request.
            Ok(done(vec![Effect::AddInvitation {
                user: *target,
                by: actor,
            }]))
        }
        Command::AcceptInvitation => {
            let me = s.actor;
            if !me.invited {
                return Err(Refusal::NotFound);
            }
            if me.banned {
                return Err(Refusal::Banned);
            }
            if me.is_member() {
                return Err(Refusal::AlreadyMember);
            }
            if let Some(until) = me.cooldown_until.filter(|u| private && *u > now) {
                return Err(Refusal::CooldownActive {
                    retry_after: ceil_secs(until - now),
                });
            }
            if s.group.member_count >= s.group.max_members {
                return Err(Refusal::GroupFull);
            }
            let mut effects = vec![Effect::RemoveInvitation { user: actor }];
            if me.pending {
                effects.push(Effect::RemoveRequest { user: actor });
            }
            effects.push(Effect::AddMember {
                user: actor,
                role: Role::Member,
            });
            Ok(Decision {
                effects,
                outcome: Outcome::Member,
            })
        }
        Command::CancelInvitation { target } => {
            if *target != actor {
                managers_only()?;
            }
            if !s.target.invited {
                return Err(Refusal::NotFound);
            }
            Ok(done(vec![Effect::RemoveInvitation { user: *target }]))
        }
        Command::UpdateSettings(patch) => {
            if !s.actor.is_member() {
                // As for reading: a private group's outsiders learn nothing.
                return Err(if private {
                    Refusal::NotFound
                } else {
                    Refusal::Forbidden
                });
            }
            if patch.has_owner_fields() {
                owner_only()?;
            } else {
                managers_only()?;
            }
            if patch.max_members.is_some_and(|m| m < s.group.member_count) {
                return Err(Refusal::MembersExceedLimit);
            }
            Ok(done(vec![Effect::UpdateGroup(patch.clone())]))
        }
    }
}

fn done(effects: Vec<Effect>) -> Decision {
    Decision {
        effects,
        outcome: Outcome::Done,
    }
}

/// Whole seconds, rounded up so a client that waits `retry_after` is never refused again.
fn ceil_secs(d: time::Duration) -> Duration {
    let ns = d.whole_nanoseconds().max(0) as u128;
    Duration::from_secs((ns.div_ceil(1_000_000_000) as u64).max(1))
}
