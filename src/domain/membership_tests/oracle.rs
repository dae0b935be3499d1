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
    pub(super) pending: bool,
    pub(super) banned: bool,
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
                Ok(Decision {
                    effects: vec![Effect::AddMember {
                        user: actor.id,
                        role: Role::Member,
                    }],
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
            owner_only()?;
            if !target.pending {
                return Err(Refusal::NotFound);
            }
            if full {
                return Err(Refusal::GroupFull);
            }
            Ok(Decision {
                effects: vec![
                    Effect::RemoveRequest { user: *t },
                    Effect::AddMember {
                        user: *t,
                        role: Role::Member,
                    },
                ],
                outcome: Outcome::Member,
            })
        }
        // reject: "owner"; 204; 404. Rejecting starts no cooldown (not in the Rules list).
        Command::Reject { target: t } => {
            owner_only()?;
            if !target.pending {
                return Err(Refusal::NotFound);
            }
            done(vec![Effect::RemoveRequest { user: *t }])
        }
        // DELETE /members/{user_id}: "owner (not self)"; 204; 403.
        Command::Remove { target: t } => {
            owner_only()?;
            if targets_self {
                return Err(Refusal::Forbidden);
            }
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
            owner_only()?;
            if targets_self {
                return Err(Refusal::Forbidden);
            }
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
            effects.push(Effect::AddBan {
                user: *t,
                by: actor.id,
            });
            done(effects)
        }
        // DELETE /bans/{user_id}: "owner"; 204 (unban; cooldown rules then apply); 404.
        Command::Unban { target: t } => {
            owner_only()?;
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
    }
}
