//! The oracle: what docs/api.md ("Groups" table and "Rules") says a command decides, written from
//! the contract, never from `decide`.

use super::*;

// ---------------------------------------------------------------------------------------------
// The oracle: docs/api.md, "Groups" table and "Rules"
// ---------------------------------------------------------------------------------------------

/// What the oracle knows about one user; built from the test model, never from `Relation`.
#[derive(Clone, Debug)]
pub(super) struct Party {
    pub(super) id: UserId,
    pub(super) member: bool,
    pub(super) moderator: bool,
    pub(super) pending: bool,
    pub(super) banned: bool,
    pub(super) invited: bool,
    pub(super) cooldown_until: Option<OffsetDateTime>,
}

#[derive(Clone, Debug)]
pub(super) struct View {
    pub(super) visibility: Visibility,
    pub(super) owner_id: UserId,
    pub(super) member_count: u32,
    pub(super) max_members: u32,
    pub(super) now: OffsetDateTime,
    pub(super) cooldown: Duration,
}

/// `retry_after`: how long is left, in whole seconds rounded up, at least one second.
pub(super) fn expected_retry_after(left: time::Duration) -> Duration {
    let nanos = left.whole_nanoseconds().max(0);
    let secs = (nanos + 999_999_999) / 1_000_000_000;
    Duration::from_secs(secs.max(1) as u64)
}

pub(super) fn oracle(
    cmd: &Command,
    v: &View,
    actor: &Party,
    target: &Party,
) -> Result<Decision, Refusal> {
    let private = v.visibility == Visibility::Private;
    // "who: owner" means the group's `owner_id`.
    let actor_is_owner = actor.id == v.owner_id;
    let targets_self = target.id == actor.id;
    let full = v.member_count >= v.max_members;
    let done = |effects: Vec<Effect>| {
        Ok(Decision {
            effects,
            outcome: Outcome::Done,
        })
    };
    // Rules/Cooldown: leaving, being removed or being unbanned in a *private* group starts the
    // rejoin cooldown; open groups have none.
    let start_cooldown = |user: UserId| -> Vec<Effect> {
        if private {
            vec![Effect::SetCooldown {
                user,
                until: v.now + v.cooldown,
            }]
        } else {
            Vec::new()
        }
    };
    let owner_only = || {
        if actor_is_owner {
            Ok(())
        } else {
            Err(Refusal::Forbidden)
        }
    };
    // v1.1 Roles: "Moderators may: read, approve and reject join requests; invite; remove and
    // ban/unban members".
    let owner_or_moderator = || {
        if actor_is_owner || actor.moderator {
            Ok(())
        } else {
            Err(Refusal::Forbidden)
        }
    };
    // "... (not the owner, not other moderators: 403)".
    let may_act_on_target = || {
        let target_manages = target.id == v.owner_id || target.moderator;
        if actor.moderator && target_manages {
            Err(Refusal::Forbidden)
        } else {
            Ok(())
        }
    };
    // v1.1 Invitations: an invitation ends when its user becomes a member or is banned.
    let drop_invitation = |p: &Party| -> Vec<Effect> {
        if p.invited {
            vec![Effect::RemoveInvitation { user: p.id }]
        } else {
            Vec::new()
        }
    };

    match cmd {
        // POST /join: "any user"; open: 200 member, private: 202 pending;
        // 403 banned, 403 cooldown_active, 409 already_member, 409 request_pending, 409 group_full.
        Command::Join => {
            if actor.banned {
                return Err(Refusal::Banned);
            }
            if actor.member {
                return Err(Refusal::AlreadyMember);
            }
            if actor.pending {
                return Err(Refusal::RequestPending);
            }
            // Rules/Cooldown: only private groups, and only until the cooldown has passed.
            let cooling = actor
                .cooldown_until
                .filter(|until| private && *until > v.now);
            if let Some(until) = cooling {
                return Err(Refusal::CooldownActive {
                    retry_after: expected_retry_after(until - v.now),
                });
            }
            if full {
                return Err(Refusal::GroupFull);
            }
            if private {
                Ok(Decision {
                    effects: vec![Effect::AddRequest { user: actor.id }],
                    outcome: Outcome::Pending,
                })
            } else {
                let mut effects = drop_invitation(actor);
                effects.push(Effect::AddMember {
                    user: actor.id,
                    role: Role::Member,
                });
                Ok(Decision {
                    effects,
                    outcome: Outcome::Member,
                })
            }
        }
        // DELETE /join-request: "requester"; 204; 404.
        Command::WithdrawRequest => {
            if !actor.pending {
                return Err(Refusal::NotFound);
            }
            done(vec![Effect::RemoveRequest { user: actor.id }])
        }
        // approve: "owner"; 200 member; 404 (no such request), 409 group_full.
        Command::Approve { target: t } => {
            owner_or_moderator()?;
            if !target.pending {
                return Err(Refusal::NotFound);
            }
            if full {
                return Err(Refusal::GroupFull);
            }
            let mut effects = vec![Effect::RemoveRequest { user: *t }];
            effects.extend(drop_invitation(target));
            effects.push(Effect::AddMember {
                user: *t,
                role: Role::Member,
            });
            Ok(Decision {
                effects,
                outcome: Outcome::Member,
            })
        }
        // reject: "owner"; 204; 404. Rejecting starts no cooldown (not in the Rules list).
        Command::Reject { target: t } => {
            owner_or_moderator()?;
            if !target.pending {
                return Err(Refusal::NotFound);
            }
            done(vec![Effect::RemoveRequest { user: *t }])
        }
        // DELETE /members/{user_id}: "owner (not self)"; 204; 403.
        Command::Remove { target: t } => {
            owner_or_moderator()?;
            if targets_self {
                return Err(Refusal::Forbidden);
            }
            may_act_on_target()?;
            if !target.member {
                return Err(Refusal::NotFound);
            }
            let mut effects = vec![Effect::RemoveMember { user: *t }];
            effects.extend(start_cooldown(*t));
            done(effects)
        }
        // leave: "member"; 204; 409 owner_must_transfer when the owner leaves while others
        // remain; a sole owner leaving deletes the group.
        Command::Leave => {
            if !actor.member {
                return Err(Refusal::NotFound);
            }
            if actor_is_owner {
                if v.member_count > 1 {
                    return Err(Refusal::OwnerMustTransfer);
                }
                return Ok(Decision {
                    effects: vec![Effect::DeleteGroup],
                    outcome: Outcome::GroupDeleted,
                });
            }
            let mut effects = vec![Effect::RemoveMember { user: actor.id }];
            effects.extend(start_cooldown(actor.id));
            done(effects)
        }
        // bans: "owner (not self)"; 201; membership and pending request are removed; 403.
        // Bans outlive membership, so a stranger may be banned too.
        Command::Ban { target: t } => {
            owner_or_moderator()?;
            if targets_self {
                return Err(Refusal::Forbidden);
            }
            may_act_on_target()?;
            if target.banned {
                return done(Vec::new());
            }
            let mut effects = Vec::new();
            if target.member {
                effects.push(Effect::RemoveMember { user: *t });
            }
            if target.pending {
                effects.push(Effect::RemoveRequest { user: *t });
            }
            // "A ban removes the user's invitation to that group."
            effects.extend(drop_invitation(target));
            effects.push(Effect::AddBan {
                user: *t,
                by: actor.id,
            });
            done(effects)
        }
        // DELETE /bans/{user_id}: "owner"; 204 (unban; cooldown rules then apply); 404.
        Command::Unban { target: t } => {
            owner_or_moderator()?;
            if !target.banned {
                return Err(Refusal::NotFound);
            }
            let mut effects = vec![Effect::RemoveBan { user: *t }];
            effects.extend(start_cooldown(*t));
            done(effects)
        }
        // transfer-ownership: "owner; target must be a member"; the old owner stays a member.
        Command::TransferOwnership { target: t } => {
            owner_only()?;
            if targets_self || !target.member {
                return Err(Refusal::InvalidTarget {
                    field: "new_owner_id",
                    message: "",
                });
            }
            done(vec![
                Effect::SetRole {
                    user: *t,
                    role: Role::Owner,
                },
                Effect::SetRole {
                    user: actor.id,
                    role: Role::Member,
                },
                Effect::SetOwner { user: *t },
            ])
        }
        // DELETE /groups/{id}: "owner"; 204; 403.
        Command::Delete => {
            owner_only()?;
            Ok(Decision {
                effects: vec![Effect::DeleteGroup],
                outcome: Outcome::GroupDeleted,
            })
        }
        // PUT …/role: "owner only"; on the owner, or `role: owner`, 422; a non-member 404.
        Command::SetRole { target: t, role } => {
            owner_only()?;
            if *role == Role::Owner {
                return Err(Refusal::InvalidTarget {
                    field: "role",
                    message: "",
                });
            }
            if targets_self {
                return Err(Refusal::InvalidTarget {
                    field: "user_id",
                    message: "",
                });
            }
            if !target.member {
                return Err(Refusal::NotFound);
            }
            let current = if target.moderator {
                Role::Moderator
            } else {
                Role::Member
            };
            if current == *role {
                return done(Vec::new());
            }
            done(vec![Effect::SetRole {
                user: *t,
                role: *role,
            }])
        }
        // POST …/invitations: "owner or moderator"; 409 already_member, 409
        // invitation_pending; a banned user 403 banned; cooldown and a pending request do not
        // stop it.
        Command::Invite { target: t } => {
            owner_or_moderator()?;
            if target.banned {
                return Err(Refusal::Banned);
            }
            if target.member {
                return Err(Refusal::AlreadyMember);
            }
            if target.invited {
                return Err(Refusal::InvitationPending);
            }
            done(vec![Effect::AddInvitation {
                user: *t,
                by: actor.id,
            }])
        }
        // POST …/invitations/accept: "the invitee"; 404 without an invitation; bans, cooldown
        // and max_members apply; a pending request is consumed.
        Command::AcceptInvitation => {
            if !actor.invited {
                return Err(Refusal::NotFound);
            }
            if actor.banned {
                return Err(Refusal::Banned);
            }
            if actor.member {
                return Err(Refusal::AlreadyMember);
            }
            let cooling = actor
                .cooldown_until
                .filter(|until| private && *until > v.now);
            if let Some(until) = cooling {
                return Err(Refusal::CooldownActive {
                    retry_after: expected_retry_after(until - v.now),
                });
            }
            if full {
                return Err(Refusal::GroupFull);
            }
            let mut effects = vec![Effect::RemoveInvitation { user: actor.id }];
            if actor.pending {
                effects.push(Effect::RemoveRequest { user: actor.id });
            }
            effects.push(Effect::AddMember {
                user: actor.id,
                role: Role::Member,
            });
            Ok(Decision {
                effects,
                outcome: Outcome::Member,
            })
        }
        // DELETE …/invitations/{user_id}: the invitee, an owner or a moderator; others 403;
        // no invitation 404.
        Command::CancelInvitation { target: t } => {
            if !targets_self {
                owner_or_moderator()?;
            }
            if !target.invited {
                return Err(Refusal::NotFound);
            }
            done(vec![Effect::RemoveInvitation { user: *t }])
        }
        // PATCH /groups/{id}: non-members 404 (private) / 403 (open); name and description
        // owner or moderator, the rest owner only; max_members below the count 409.
        Command::UpdateSettings(patch) => {
            if !actor.member {
                return Err(if private {
                    Refusal::NotFound
                } else {
                    Refusal::Forbidden
                });
            }
            let owner_fields = patch.visibility.is_some() || patch.max_members.is_some();
            if owner_fields {
                owner_only()?;
            } else {
                owner_or_moderator()?;
            }
            if let Some(max) = patch.max_members
                && max < v.member_count
            {
                return Err(Refusal::MembersExceedLimit);
            }
            done(vec![Effect::UpdateGroup(patch.clone())])
        }
    }
}
