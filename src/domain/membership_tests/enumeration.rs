//! Every (state × command × visibility × occupancy × actor/target) case, each decided by
//! `decide` and by the oracle.

use super::*;

// ---------------------------------------------------------------------------------------------
// The enumeration
// ---------------------------------------------------------------------------------------------

/// A user's relation to the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum St {
    Stranger,
    Pending,
    Member,
    Owner,
    Banned,
    /// Left / was removed / was unbanned; the cooldown has 1h 30m 0.25s left.
    CoolingDown,
    /// Same, but the cooldown ended an hour ago.
    CooldownOver,
    Moderator,
    /// Invited by the owner, nothing else.
    Invited,
    /// Invited, with a join request of their own pending.
    InvitedPending,
    /// Invited while in the cooldown of [`St::CoolingDown`].
    InvitedCoolingDown,
}

pub(super) const STATES: [St; 11] = [
    St::Stranger,
    St::Pending,
    St::Member,
    St::Owner,
    St::Banned,
    St::CoolingDown,
    St::CooldownOver,
    St::Moderator,
    St::Invited,
    St::InvitedPending,
    St::InvitedCoolingDown,
];

const COOLING_LEFT: Duration = Duration::from_millis(90 * 60_000 + 250);

/// How many seats are taken besides the named users.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Occupancy {
    /// Only the owner and the named users are members (a lone owner is the sole member).
    NoOthers,
    /// Filled up to one seat below max_members.
    OneSeatLeft,
    /// member_count == max_members.
    Full,
}

const OCCUPANCIES: [Occupancy; 3] = [Occupancy::NoOthers, Occupancy::OneSeatLeft, Occupancy::Full];
pub(super) const VISIBILITIES: [Visibility; 2] = [Visibility::Open, Visibility::Private];
const ENUM_MAX_MEMBERS: u32 = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tgt {
    Myself,
    Other(St),
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Case {
    pub(super) kind: Kind,
    pub(super) visibility: Visibility,
    pub(super) occupancy: Occupancy,
    pub(super) actor: St,
    pub(super) target: Option<Tgt>,
}

const ACTOR: u128 = 1;
const OTHER: u128 = 2;
const THIRD_PARTY_OWNER: u128 = 3;

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        for visibility in VISIBILITIES {
            for occupancy in OCCUPANCIES {
                for actor in STATES {
                    let targets: Vec<Option<Tgt>> = if kind.targeted() {
                        std::iter::once(Tgt::Myself)
                            .chain(
                                STATES
                                    .iter()
                                    // There is one owner: it cannot be both actor and other.
                                    .filter(|s| !(actor == St::Owner && **s == St::Owner))
                                    .map(|s| Tgt::Other(*s)),
                            )
                            .map(Some)
                            .collect()
                    } else {
                        vec![None]
                    };
                    for target in targets {
                        out.push(Case {
                            kind,
                            visibility,
                            occupancy,
                            actor,
                            target,
                        });
                    }
                }
            }
        }
    }
    out
}

fn place(m: &mut Model, u: UserId, st: St, now: OffsetDateTime) {
    match st {
        St::Stranger => {}
        St::Pending => {
            m.pending.insert(u);
        }
        St::Member => {
            m.members.insert(u, Role::Member);
        }
        St::Owner => assert_eq!(m.owner_id, u),
        St::Banned => {
            m.bans.insert(u, m.owner_id);
        }
        St::CoolingDown => {
            m.cooldowns.insert(u, now + COOLING_LEFT);
        }
        St::CooldownOver => {
            m.cooldowns.insert(u, now - Duration::from_secs(3600));
        }
        St::Moderator => {
            m.members.insert(u, Role::Moderator);
        }
        St::Invited => {
            m.invitations.insert(u, m.owner_id);
        }
        St::InvitedPending => {
            m.invitations.insert(u, m.owner_id);
            m.pending.insert(u);
        }
        St::InvitedCoolingDown => {
            m.invitations.insert(u, m.owner_id);
            m.cooldowns.insert(u, now + COOLING_LEFT);
        }
    }
}

/// The model, actor and command of one case.
pub(super) fn build(case: &Case) -> (Model, UserId, Command) {
    let actor = uid(ACTOR);
    let other = uid(OTHER);
    let owner = if case.actor == St::Owner {
        actor
    } else if case.target == Some(Tgt::Other(St::Owner)) {
        other
    } else {
        uid(THIRD_PARTY_OWNER)
    };
    let mut m = Model::new(case.visibility, ENUM_MAX_MEMBERS, owner);
    place(&mut m, actor, case.actor, T0);
    let target = match case.target {
        Some(Tgt::Other(st)) => {
            place(&mut m, other, st, T0);
            other
        }
        Some(Tgt::Myself) | None => actor,
    };
    let named = m.members.len() as u32;
    let fillers = match case.occupancy {
        Occupancy::NoOthers => 0,
        Occupancy::OneSeatLeft => ENUM_MAX_MEMBERS - 1 - named,
        Occupancy::Full => ENUM_MAX_MEMBERS - named,
    };
    for i in 0..fillers {
        m.members.insert(uid(100 + u128::from(i)), Role::Member);
    }
    (m, actor, case.kind.command(target))
}

fn run_case(case: &Case) -> StepResult {
    let (model, actor, cmd) = build(case);
    model
        .check_invariants()
        .unwrap_or_else(|e| panic!("bad fixture {case:?}: {e}"));
    step(&model, actor, &cmd, T0, COOLDOWN_48H)
}

/// 7 untargeted commands × 11 actor states + 10 targeted commands × 131 (actor, target) pairs
/// (11 actor states × (self + 11 other states), minus owner/owner), each × 2 visibilities × 3
/// occupancies.
const EXPECTED_CASES: usize = (7 * 11 + 10 * (11 * 12 - 1)) * 2 * 3;

#[test]
fn enumeration_has_every_combination_once() {
    let all = cases();
    assert_eq!(all.len(), EXPECTED_CASES);
    assert_eq!(EXPECTED_CASES, 8322);
    let distinct: BTreeSet<String> = all.iter().map(|c| format!("{c:?}")).collect();
    assert_eq!(distinct.len(), all.len());
}

#[test]
fn decide_matches_contract_for_every_state_command_and_group_shape() {
    let mut failures = Vec::new();
    for case in cases() {
        let r = run_case(&case);
        if !r.matches() {
            failures.push(format!(
                "{case:?}\n    decide: {:?}\n  contract: {:?}",
                r.got, r.want
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases contradict the contract:\n{}",
        failures.len(),
        EXPECTED_CASES,
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn invariants_hold_after_every_allowed_command_in_the_enumeration() {
    let mut failures = Vec::new();
    for case in cases() {
        if let Err(e) = run_case(&case).after {
            failures.push(format!("{case:?}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} violations:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn enumeration_reaches_every_outcome_and_refusal() {
    let mut seen = BTreeSet::new();
    for case in cases() {
        match run_case(&case).got {
            Ok(d) => seen.insert(format!("{:?}:{}", case.kind, outcome_name(d.outcome))),
            Err(r) => seen.insert(refusal_name(&r).to_owned()),
        };
    }
    for name in [
        "forbidden",
        "banned",
        "cooldown_active",
        "not_found",
        "already_member",
        "request_pending",
        "owner_must_transfer",
        "group_full",
        "invalid_target",
        "invitation_pending",
        "members_exceed_limit",
    ] {
        assert!(seen.contains(name), "no case refused with {name}");
    }
    for ok in [
        "Join:member",
        "Join:pending",
        "Withdraw:done",
        "Approve:member",
        "Reject:done",
        "Remove:done",
        "Leave:done",
        "Leave:group_deleted",
        "Ban:done",
        "Unban:done",
        "Transfer:done",
        "Delete:group_deleted",
        "MakeModerator:done",
        "MakeMember:done",
        "Invite:done",
        "Accept:member",
        "CancelInvitation:done",
        "Rename:done",
        "Reconfigure:done",
    ] {
        assert!(seen.contains(ok), "no case succeeded as {ok}");
    }
}

/// A few rows of the enumeration spelled out, so the oracle itself is checked against the
/// contract text by hand.
#[test]
fn hand_checked_rows_of_the_enumeration() {
    use Occupancy::*;
    use Visibility::*;
    let row = |kind, visibility, occupancy, actor, target| {
        run_case(&Case {
            kind,
            visibility,
            occupancy,
            actor,
            target,
        })
        .got
        .map(|d| d.outcome)
    };
    let other = |s| Some(Tgt::Other(s));
    assert_eq!(
        row(Kind::Join, Open, NoOthers, St::Stranger, None),
        Ok(Outcome::Member)
    );
    assert_eq!(
        row(Kind::Join, Private, NoOthers, St::Stranger, None),
        Ok(Outcome::Pending)
    );
    assert_eq!(
        row(Kind::Join, Private, Full, St::Stranger, None),
        Err(Refusal::GroupFull)
    );
    assert_eq!(
        row(Kind::Join, Open, Full, St::Stranger, None),
        Err(Refusal::GroupFull)
    );
    assert_eq!(
        row(Kind::Join, Open, Full, St::Banned, None),
        Err(Refusal::Banned)
    );
    assert_eq!(
        row(Kind::Join, Open, NoOthers, St::CoolingDown, None),
        Ok(Outcome::Member)
    );
    assert_eq!(
        row(Kind::Join, Private, NoOthers, St::CoolingDown, None),
        Err(Refusal::CooldownActive {
            retry_after: Duration::from_secs(5401)
        })
    );
    assert_eq!(
        row(Kind::Join, Private, NoOthers, St::CooldownOver, None),
        Ok(Outcome::Pending)
    );
    assert_eq!(
        row(Kind::Leave, Private, NoOthers, St::Owner, None),
        Ok(Outcome::GroupDeleted)
    );
    assert_eq!(
        row(Kind::Leave, Private, OneSeatLeft, St::Owner, None),
        Err(Refusal::OwnerMustTransfer)
    );
    assert_eq!(
        row(Kind::Leave, Open, NoOthers, St::Pending, None),
        Err(Refusal::NotFound)
    );
    assert_eq!(
        row(Kind::Approve, Private, Full, St::Owner, other(St::Pending)),
        Err(Refusal::GroupFull)
    );
    assert_eq!(
        row(
            Kind::Approve,
            Private,
            NoOthers,
            St::Member,
            other(St::Pending)
        ),
        Err(Refusal::Forbidden)
    );
    assert_eq!(
        row(Kind::Remove, Open, NoOthers, St::Owner, Some(Tgt::Myself)),
        Err(Refusal::Forbidden)
    );
    assert_eq!(
        row(Kind::Ban, Open, NoOthers, St::Owner, Some(Tgt::Myself)),
        Err(Refusal::Forbidden)
    );
    assert_eq!(
        row(Kind::Ban, Open, NoOthers, St::Owner, other(St::Banned)),
        Ok(Outcome::Done)
    );
    assert_eq!(
        row(Kind::Unban, Open, NoOthers, St::Owner, other(St::Member)),
        Err(Refusal::NotFound)
    );
    assert!(matches!(
        row(
            Kind::Transfer,
            Open,
            NoOthers,
            St::Owner,
            other(St::Pending)
        ),
        Err(Refusal::InvalidTarget {
            field: "new_owner_id",
            ..
        })
    ));
    assert_eq!(
        row(Kind::Delete, Open, Full, St::Member, None),
        Err(Refusal::Forbidden)
    );
    // v1.1: moderators manage members, never the owner or each other.
    assert_eq!(
        row(
            Kind::Approve,
            Private,
            NoOthers,
            St::Moderator,
            other(St::Pending)
        ),
        Ok(Outcome::Member)
    );
    assert_eq!(
        row(Kind::Ban, Open, NoOthers, St::Moderator, other(St::Member)),
        Ok(Outcome::Done)
    );
    assert_eq!(
        row(Kind::Ban, Open, NoOthers, St::Moderator, other(St::Owner)),
        Err(Refusal::Forbidden)
    );
    assert_eq!(
        row(
            Kind::Remove,
            Open,
            NoOthers,
            St::Moderator,
            other(St::Moderator)
        ),
        Err(Refusal::Forbidden)
    );
    assert_eq!(
        row(Kind::Delete, Open, NoOthers, St::Moderator, None),
        Err(Refusal::Forbidden)
    );
    assert_eq!(
        row(
            Kind::MakeModerator,
            Open,
            NoOthers,
            St::Moderator,
            other(St::Member)
        ),
        Err(Refusal::Forbidden)
    );
    assert_eq!(
        row(
            Kind::MakeModerator,
            Open,
            NoOthers,
            St::Owner,
            other(St::Pending)
        ),
        Err(Refusal::NotFound)
    );
    assert!(matches!(
        row(
            Kind::MakeMember,
            Open,
            NoOthers,
            St::Owner,
            Some(Tgt::Myself)
        ),
        Err(Refusal::InvalidTarget {
            field: "user_id",
            ..
        })
    ));
    // Invitations: consent, with the rules applied at acceptance.
    assert_eq!(
        row(
            Kind::Invite,
            Private,
            Full,
            St::Moderator,
            other(St::CoolingDown)
        ),
        Ok(Outcome::Done)
    );
    assert_eq!(
        row(
            Kind::Invite,
            Private,
            NoOthers,
            St::Owner,
            other(St::Banned)
        ),
        Err(Refusal::Banned)
    );
    assert_eq!(
        row(
            Kind::Invite,
            Private,
            NoOthers,
            St::Owner,
            other(St::Invited)
        ),
        Err(Refusal::InvitationPending)
    );
    assert_eq!(
        row(
            Kind::Invite,
            Private,
            NoOthers,
            St::Member,
            other(St::Stranger)
        ),
        Err(Refusal::Forbidden)
    );
    assert_eq!(
        row(
            Kind::Accept,
            Private,
            NoOthers,
            St::InvitedCoolingDown,
            None
        ),
        Err(Refusal::CooldownActive {
            retry_after: Duration::from_secs(5401)
        })
    );
    assert_eq!(
        row(Kind::Accept, Open, NoOthers, St::InvitedCoolingDown, None),
        Ok(Outcome::Member)
    );
    assert_eq!(
        row(Kind::Accept, Private, Full, St::Invited, None),
        Err(Refusal::GroupFull)
    );
    assert_eq!(
        row(Kind::Accept, Private, NoOthers, St::Pending, None),
        Err(Refusal::NotFound)
    );
    assert_eq!(
        row(
            Kind::CancelInvitation,
            Open,
            NoOthers,
            St::Member,
            other(St::Invited)
        ),
        Err(Refusal::Forbidden)
    );
    assert_eq!(
        row(
            Kind::CancelInvitation,
            Open,
            NoOthers,
            St::Invited,
            Some(Tgt::Myself)
        ),
        Ok(Outcome::Done)
    );
    assert_eq!(
        row(
            Kind::CancelInvitation,
            Open,
            NoOthers,
            St::Owner,
            other(St::Member)
        ),
        Err(Refusal::NotFound)
    );
    // Settings.
    assert_eq!(
        row(Kind::Rename, Private, NoOthers, St::Moderator, None),
        Ok(Outcome::Done)
    );
    assert_eq!(
        row(Kind::Reconfigure, Private, NoOthers, St::Moderator, None),
        Err(Refusal::Forbidden)
    );
    assert_eq!(
        row(Kind::Reconfigure, Private, Full, St::Owner, None),
        Err(Refusal::MembersExceedLimit)
    );
    assert_eq!(
        row(Kind::Rename, Private, NoOthers, St::Stranger, None),
        Err(Refusal::NotFound)
    );
    assert_eq!(
        row(Kind::Rename, Open, NoOthers, St::Stranger, None),
        Err(Refusal::Forbidden)
    );
}
