//! Exhaustive tests of the membership state machine ([`decide`]) and of the read/send rules in
//! [`super::access`], checked against an oracle written from API.md ("Groups" and its "Rules"),
//! not from the implementation.
//!
//! Where API.md is silent, the choices documented in membership.rs are the spec:
//! - precedence of refusals: "who may do this" (`Forbidden`) first, then facts about the user
//!   (banned, already member, request pending, cooldown), then capacity (`GroupFull`);
//! - banning an already-banned user is a successful no-op;
//! - transferring to oneself or to a non-member is `InvalidTarget` (field `new_owner_id`);
//! - leaving or withdrawing without being a member / requester is `NotFound`;
//! - joining a full group, open or private, is `GroupFull`;
//! - removing or banning oneself (as owner) is `Forbidden`;
//! - a cooldown ends at its instant (`until == now` is no longer refused).
//!
//! Layout: an oracle, a tiny in-memory group model that applies effects strictly, a programmatic
//! enumeration of every (state × command × visibility × occupancy × actor/target) case, scenario
//! tests, property tests over random command sequences, and the access rules.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

use super::access::{can_read_members, can_read_messages, can_send};
use super::membership::{Snapshot, decide};
use super::{
    Command, Decision, Effect, GroupFacts, Outcome, Refusal, Relation, Role, UserId, Visibility,
};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn uid(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(n))
}

/// A millisecond-aligned instant, the precision every store keeps.
const T0: OffsetDateTime = datetime!(2030-01-01 00:00:00 UTC);

/// The default `CONCLAVE_REJOIN_COOLDOWN`.
const COOLDOWN_48H: Duration = Duration::from_secs(48 * 3600);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Every command the API offers on a group, without its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Join,
    Withdraw,
    Approve,
    Reject,
    Remove,
    Leave,
    Ban,
    Unban,
    Transfer,
    Delete,
}

impl Kind {
    const ALL: [Kind; 10] = [
        Kind::Join,
        Kind::Withdraw,
        Kind::Approve,
        Kind::Reject,
        Kind::Remove,
        Kind::Leave,
        Kind::Ban,
        Kind::Unban,
        Kind::Transfer,
        Kind::Delete,
    ];

    fn targeted(self) -> bool {
        matches!(
            self,
            Kind::Approve | Kind::Reject | Kind::Remove | Kind::Ban | Kind::Unban | Kind::Transfer
        )
    }

    fn command(self, target: UserId) -> Command {
        match self {
            Kind::Join => Command::Join,
            Kind::Withdraw => Command::WithdrawRequest,
            Kind::Approve => Command::Approve { target },
            Kind::Reject => Command::Reject { target },
            Kind::Remove => Command::Remove { target },
            Kind::Leave => Command::Leave,
            Kind::Ban => Command::Ban { target },
            Kind::Unban => Command::Unban { target },
            Kind::Transfer => Command::TransferOwnership { target },
            Kind::Delete => Command::Delete,
        }
    }

    /// Exhaustive on purpose: a new `Command` variant must be added to these tests.
    fn of(cmd: &Command) -> (Kind, Option<UserId>) {
        match cmd {
            Command::Join => (Kind::Join, None),
            Command::WithdrawRequest => (Kind::Withdraw, None),
            Command::Approve { target } => (Kind::Approve, Some(*target)),
            Command::Reject { target } => (Kind::Reject, Some(*target)),
            Command::Remove { target } => (Kind::Remove, Some(*target)),
            Command::Leave => (Kind::Leave, None),
            Command::Ban { target } => (Kind::Ban, Some(*target)),
            Command::Unban { target } => (Kind::Unban, Some(*target)),
            Command::TransferOwnership { target } => (Kind::Transfer, Some(*target)),
            Command::Delete => (Kind::Delete, None),
        }
    }
}

/// Exhaustive on purpose: a new `Refusal` variant must be added to the coverage check.
fn refusal_name(r: &Refusal) -> &'static str {
    match r {
        Refusal::Forbidden => "forbidden",
        Refusal::Banned => "banned",
        Refusal::CooldownActive { .. } => "cooldown_active",
        Refusal::NotFound => "not_found",
        Refusal::AlreadyMember => "already_member",
        Refusal::RequestPending => "request_pending",
        Refusal::OwnerMustTransfer => "owner_must_transfer",
        Refusal::GroupFull => "group_full",
        Refusal::InvalidTarget { .. } => "invalid_target",
    }
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Member => "member",
        Outcome::Pending => "pending",
        Outcome::Done => "done",
        Outcome::GroupDeleted => "group_deleted",
    }
}

/// The message of `InvalidTarget` is free text the contract does not fix; only its field is
/// compared (after checking it is not empty).
fn normalized(r: &Result<Decision, Refusal>) -> Result<Decision, Refusal> {
    match r {
        Err(Refusal::InvalidTarget { field, .. }) => {
            Err(Refusal::InvalidTarget { field, message: "" })
        }
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// The oracle: API.md, "Groups" table and "Rules"
// ---------------------------------------------------------------------------------------------

/// What the oracle knows about one user; built from the test model, never from `Relation`.
#[derive(Clone, Debug)]
struct Party {
    id: UserId,
    member: bool,
    pending: bool,
    banned: bool,
    cooldown_until: Option<OffsetDateTime>,
}

#[derive(Clone, Debug)]
struct View {
    visibility: Visibility,
    owner_id: UserId,
    member_count: u32,
    max_members: u32,
    now: OffsetDateTime,
    cooldown: Duration,
}

/// `retry_after`: how long is left, in whole seconds rounded up, at least one second.
fn expected_retry_after(left: time::Duration) -> Duration {
    let nanos = left.whole_nanoseconds().max(0);
    let secs = (nanos + 999_999_999) / 1_000_000_000;
    Duration::from_secs(secs.max(1) as u64)
}

fn oracle(cmd: &Command, v: &View, actor: &Party, target: &Party) -> Result<Decision, Refusal> {
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

// ---------------------------------------------------------------------------------------------
// A tiny in-memory group that applies effects strictly
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct Model {
    visibility: Visibility,
    max_members: u32,
    owner_id: UserId,
    members: BTreeMap<UserId, Role>,
    pending: BTreeSet<UserId>,
    /// banned user -> banned by
    bans: BTreeMap<UserId, UserId>,
    cooldowns: BTreeMap<UserId, OffsetDateTime>,
    deleted: bool,
}

impl Model {
    /// `POST /groups`: the creator becomes owner and first member.
    fn new(visibility: Visibility, max_members: u32, owner: UserId) -> Self {
        Model {
            visibility,
            max_members,
            owner_id: owner,
            members: BTreeMap::from([(owner, Role::Owner)]),
            pending: BTreeSet::new(),
            bans: BTreeMap::new(),
            cooldowns: BTreeMap::new(),
            deleted: false,
        }
    }

    fn relation(&self, u: UserId) -> Relation {
        Relation {
            role: self.members.get(&u).copied(),
            pending: self.pending.contains(&u),
            banned: self.bans.contains_key(&u),
            cooldown_until: self.cooldowns.get(&u).copied(),
        }
    }

    fn party(&self, u: UserId) -> Party {
        Party {
            id: u,
            member: self.members.contains_key(&u),
            pending: self.pending.contains(&u),
            banned: self.bans.contains_key(&u),
            cooldown_until: self.cooldowns.get(&u).copied(),
        }
    }

    fn facts(&self) -> GroupFacts {
        GroupFacts {
            visibility: self.visibility,
            owner_id: self.owner_id,
            member_count: self.members.len() as u32,
            max_members: self.max_members,
        }
    }

    fn view(&self, now: OffsetDateTime, cooldown: Duration) -> View {
        View {
            visibility: self.visibility,
            owner_id: self.owner_id,
            member_count: self.members.len() as u32,
            max_members: self.max_members,
            now,
            cooldown,
        }
    }

    /// Applies a decision as a store would, refusing any effect inconsistent with the state.
    fn apply(
        &self,
        d: &Decision,
        actor: UserId,
        now: OffsetDateTime,
        cooldown: Duration,
    ) -> Result<Model, String> {
        let mut m = self.clone();
        for e in &d.effects {
            if m.deleted {
                return Err(format!("{e:?} after DeleteGroup"));
            }
            match *e {
                Effect::AddMember { user, role } => {
                    if m.members.insert(user, role).is_some() {
                        return Err(format!("{e:?}: already a member"));
                    }
                }
                Effect::RemoveMember { user } => {
                    if m.members.remove(&user).is_none() {
                        return Err(format!("{e:?}: not a member"));
                    }
                }
                Effect::SetRole { user, role } => match m.members.get_mut(&user) {
                    Some(r) => *r = role,
                    None => return Err(format!("{e:?}: not a member")),
                },
                Effect::SetOwner { user } => m.owner_id = user,
                Effect::AddRequest { user } => {
                    if !m.pending.insert(user) {
                        return Err(format!("{e:?}: already pending"));
                    }
                }
                Effect::RemoveRequest { user } => {
                    if !m.pending.remove(&user) {
                        return Err(format!("{e:?}: no request"));
                    }
                }
                Effect::AddBan { user, by } => {
                    if by != actor || by != self.owner_id {
                        return Err(format!("{e:?}: not banned by the acting owner"));
                    }
                    if m.bans.insert(user, by).is_some() {
                        return Err(format!("{e:?}: already banned"));
                    }
                }
                Effect::RemoveBan { user } => {
                    if m.bans.remove(&user).is_none() {
                        return Err(format!("{e:?}: not banned"));
                    }
                }
                Effect::SetCooldown { user, until } => {
                    if m.visibility != Visibility::Private {
                        return Err(format!("{e:?}: cooldown set on an open group"));
                    }
                    if until != now + cooldown {
                        return Err(format!("{e:?}: expected until = now + cooldown"));
                    }
                    m.cooldowns.insert(user, until);
                }
                Effect::DeleteGroup => m.deleted = true,
            }
        }
        if m.deleted != (d.outcome == Outcome::GroupDeleted) {
            return Err(format!(
                "outcome {:?} but deleted = {}",
                d.outcome, m.deleted
            ));
        }
        Ok(m)
    }

    /// Rules: exactly one owner, no banned member or request, never more than max_members.
    fn check_invariants(&self) -> Result<(), String> {
        if self.deleted {
            return Ok(());
        }
        let owners: Vec<_> = self
            .members
            .iter()
            .filter(|(_, r)| **r == Role::Owner)
            .map(|(u, _)| *u)
            .collect();
        if owners != [self.owner_id] {
            return Err(format!("owners {owners:?}, owner_id {}", self.owner_id));
        }
        for b in self.bans.keys() {
            if self.members.contains_key(b) || self.pending.contains(b) {
                return Err(format!("banned user {b} is a member or pending"));
            }
        }
        if let Some(p) = self.pending.iter().find(|p| self.members.contains_key(p)) {
            return Err(format!("member {p} also has a pending request"));
        }
        if self.members.len() as u32 > self.max_members {
            return Err(format!(
                "{} members > max {}",
                self.members.len(),
                self.max_members
            ));
        }
        Ok(())
    }
}

/// One command decided on the model: what `decide` said, what the contract says, and the model
/// after applying the effects (`None` when refused; `Err` when an invariant broke).
struct StepResult {
    got: Result<Decision, Refusal>,
    want: Result<Decision, Refusal>,
    after: Result<Option<Model>, String>,
}

impl StepResult {
    fn matches(&self) -> bool {
        normalized(&self.got) == self.want
    }
}

fn step(
    model: &Model,
    actor: UserId,
    cmd: &Command,
    now: OffsetDateTime,
    cooldown: Duration,
) -> StepResult {
    let (_, target) = Kind::of(cmd);
    let facts = model.facts();
    let actor_rel = model.relation(actor);
    // As the stores do: the actor's own relation when targeting oneself, nothing when untargeted.
    let target_rel = match target {
        Some(t) if t == actor => actor_rel.clone(),
        Some(t) => model.relation(t),
        None => Relation::default(),
    };
    let snapshot = Snapshot {
        group: &facts,
        actor_id: actor,
        actor: &actor_rel,
        target: &target_rel,
    };
    let got = decide(cmd, &snapshot, now, cooldown);
    let want = oracle(
        cmd,
        &model.view(now, cooldown),
        &model.party(actor),
        &model.party(target.unwrap_or(actor)),
    );
    let after = match &got {
        Ok(d) => model
            .apply(d, actor, now, cooldown)
            .and_then(|m| m.check_invariants().map(|()| Some(m))),
        Err(Refusal::InvalidTarget { message: "", .. }) => {
            Err("InvalidTarget without a message".to_owned())
        }
        Err(Refusal::CooldownActive { retry_after }) => {
            check_retry_after(*retry_after, &snapshot, cmd, now, cooldown).map(|()| None)
        }
        Err(_) => Ok(None),
    };
    StepResult { got, want, after }
}

/// `retry_after` is whole seconds, at least one, never less than what is left, less than a
/// second more than that, and waiting it out is enough.
fn check_retry_after(
    retry_after: Duration,
    snapshot: &Snapshot<'_>,
    cmd: &Command,
    now: OffsetDateTime,
    cooldown: Duration,
) -> Result<(), String> {
    if retry_after.subsec_nanos() != 0 || retry_after < Duration::from_secs(1) {
        return Err(format!(
            "retry_after {retry_after:?} is not whole seconds >= 1"
        ));
    }
    if snapshot.group.visibility != Visibility::Private {
        return Err("cooldown_active in an open group".to_owned());
    }
    let until = snapshot
        .actor
        .cooldown_until
        .ok_or("cooldown_active without a cooldown")?;
    let left = until - now;
    if left <= time::Duration::ZERO {
        return Err(format!("cooldown_active although it ended {left} ago"));
    }
    let slack = time::Duration::try_from(retry_after).expect("small") - left;
    if slack < time::Duration::ZERO || slack >= time::Duration::SECOND {
        return Err(format!("retry_after {retry_after:?} for {left} left"));
    }
    if let Err(Refusal::CooldownActive { .. }) = decide(cmd, snapshot, now + retry_after, cooldown)
    {
        return Err(format!(
            "still in cooldown after waiting retry_after {retry_after:?}"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The enumeration
// ---------------------------------------------------------------------------------------------

/// A user's relation to the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Stranger,
    Pending,
    Member,
    Owner,
    Banned,
    /// Left / was removed / was unbanned; the cooldown has 1h 30m 0.25s left.
    CoolingDown,
    /// Same, but the cooldown ended an hour ago.
    CooldownOver,
}

const STATES: [St; 7] = [
    St::Stranger,
    St::Pending,
    St::Member,
    St::Owner,
    St::Banned,
    St::CoolingDown,
    St::CooldownOver,
];

const COOLING_LEFT: Duration = Duration::from_millis(90 * 60_000 + 250);

/// How many seats are taken besides the named users.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Occupancy {
    /// Only the owner and the named users are members (a lone owner is the sole member).
    NoOthers,
    /// Filled up to one seat below max_members.
    OneSeatLeft,
    /// member_count == max_members.
    Full,
}

const OCCUPANCIES: [Occupancy; 3] = [Occupancy::NoOthers, Occupancy::OneSeatLeft, Occupancy::Full];
const VISIBILITIES: [Visibility; 2] = [Visibility::Open, Visibility::Private];
const ENUM_MAX_MEMBERS: u32 = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tgt {
    Myself,
    Other(St),
}

#[derive(Clone, Copy, Debug)]
struct Case {
    kind: Kind,
    visibility: Visibility,
    occupancy: Occupancy,
    actor: St,
    target: Option<Tgt>,
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
    }
}

/// The model, actor and command of one case.
fn build(case: &Case) -> (Model, UserId, Command) {
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

/// 4 untargeted commands × 7 actor states + 6 targeted commands × 55 (actor, target) pairs
/// (7 actor states × (self + 7 other states), minus owner/owner), each × 2 visibilities × 3
/// occupancies.
const EXPECTED_CASES: usize = (4 * 7 + 6 * (7 * 8 - 1)) * 2 * 3;

#[test]
fn enumeration_has_every_combination_once() {
    let all = cases();
    assert_eq!(all.len(), EXPECTED_CASES);
    assert_eq!(EXPECTED_CASES, 2148);
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
}

// ---------------------------------------------------------------------------------------------
// retry_after
// ---------------------------------------------------------------------------------------------

fn join_with_cooldown_left(left: time::Duration) -> Result<Decision, Refusal> {
    let facts = GroupFacts {
        visibility: Visibility::Private,
        owner_id: uid(0),
        member_count: 1,
        max_members: 10,
    };
    let me = Relation {
        cooldown_until: Some(T0 + left),
        ..Relation::default()
    };
    let s = Snapshot {
        group: &facts,
        actor_id: uid(1),
        actor: &me,
        target: &me,
    };
    decide(&Command::Join, &s, T0, COOLDOWN_48H)
}

#[test]
fn retry_after_rounds_up_to_whole_seconds_and_is_at_least_one() {
    let refused = |secs| {
        Err(Refusal::CooldownActive {
            retry_after: Duration::from_secs(secs),
        })
    };
    let table: [(i64, Result<Outcome, Refusal>); 12] = [
        (1, refused(1)),
        (500, refused(1)),
        (999, refused(1)),
        (1_000, refused(1)),
        (1_001, refused(2)),
        (1_999, refused(2)),
        (2_000, refused(2)),
        (59_001, refused(60)),
        (48 * 3_600_000 - 1, refused(48 * 3600)),
        (48 * 3_600_000, refused(48 * 3600)),
        // The cooldown is over at its instant, and of course after it.
        (0, Ok(Outcome::Pending)),
        (-1, Ok(Outcome::Pending)),
    ];
    for (left_ms, want) in table {
        let got = join_with_cooldown_left(time::Duration::milliseconds(left_ms));
        assert_eq!(got.map(|d| d.outcome), want, "{left_ms} ms left");
    }
}

#[test]
fn retry_after_rounds_up_sub_millisecond_remainders() {
    let left = time::Duration::SECOND + time::Duration::MICROSECOND;
    assert_eq!(
        join_with_cooldown_left(left),
        Err(Refusal::CooldownActive {
            retry_after: Duration::from_secs(2)
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Scenarios on the model
// ---------------------------------------------------------------------------------------------

const OWNER: u128 = 0;

/// A group, a clock and a cooldown; every command is checked against the oracle and the
/// invariants, then applied.
struct World {
    model: Model,
    now: OffsetDateTime,
    cooldown: Duration,
}

impl World {
    fn new(visibility: Visibility, max_members: u32, cooldown: Duration) -> Self {
        World {
            model: Model::new(visibility, max_members, uid(OWNER)),
            now: T0,
            cooldown,
        }
    }

    fn run(&mut self, actor: u128, cmd: Command) -> Result<Decision, Refusal> {
        let r = step(&self.model, uid(actor), &cmd, self.now, self.cooldown);
        assert!(
            r.matches(),
            "{cmd:?} by {actor}: decide {:?}, contract {:?}",
            r.got,
            r.want
        );
        match r.after {
            Err(e) => panic!("{cmd:?} by {actor}: {e}"),
            Ok(Some(m)) => self.model = m,
            Ok(None) => {}
        }
        r.got
    }

    fn outcome(&mut self, actor: u128, cmd: Command) -> Result<Outcome, Refusal> {
        self.run(actor, cmd).map(|d| d.outcome)
    }

    /// Makes `user` a member: join, plus approval in a private group.
    fn admit(&mut self, user: u128) {
        match self.outcome(user, Command::Join) {
            Ok(Outcome::Member) => {}
            Ok(Outcome::Pending) => {
                let owner = self.owner();
                assert_eq!(
                    self.outcome(owner, Command::Approve { target: uid(user) }),
                    Ok(Outcome::Member)
                );
            }
            other => panic!("user {user} could not join: {other:?}"),
        }
    }

    fn owner(&self) -> u128 {
        self.model.owner_id.as_uuid().as_u128()
    }

    fn wait(&mut self, d: Duration) {
        self.now += d;
    }
}

fn cooldown_refusal(secs: u64) -> Result<Outcome, Refusal> {
    Err(Refusal::CooldownActive {
        retry_after: Duration::from_secs(secs),
    })
}

#[test]
fn scenario_leave_private_group_rejoin_refused_until_cooldown_passes() {
    let mut w = World::new(Visibility::Private, 10, COOLDOWN_48H);
    w.admit(1);
    assert_eq!(w.outcome(1, Command::Leave), Ok(Outcome::Done));
    assert_eq!(w.model.cooldowns.get(&uid(1)), Some(&(T0 + COOLDOWN_48H)));
    assert_eq!(w.outcome(1, Command::Join), cooldown_refusal(48 * 3600));
    w.wait(Duration::from_secs(47 * 3600));
    assert_eq!(w.outcome(1, Command::Join), cooldown_refusal(3600));
    w.wait(Duration::from_secs(3600) - ms(1));
    assert_eq!(w.outcome(1, Command::Join), cooldown_refusal(1));
    w.wait(ms(1));
    assert_eq!(w.outcome(1, Command::Join), Ok(Outcome::Pending));
    assert_eq!(
        w.outcome(OWNER, Command::Approve { target: uid(1) }),
        Ok(Outcome::Member)
    );
}

#[test]
fn scenario_removed_from_private_group_rejoin_refused_until_cooldown_passes() {
    let mut w = World::new(Visibility::Private, 10, Duration::from_secs(3));
    w.admit(1);
    assert_eq!(
        w.outcome(OWNER, Command::Remove { target: uid(1) }),
        Ok(Outcome::Done)
    );
    assert_eq!(w.outcome(1, Command::Join), cooldown_refusal(3));
    w.wait(Duration::from_secs(3));
    assert_eq!(w.outcome(1, Command::Join), Ok(Outcome::Pending));
}

#[test]
fn scenario_unban_in_private_group_starts_cooldown() {
    let mut w = World::new(Visibility::Private, 10, COOLDOWN_48H);
    w.admit(1);
    assert_eq!(
        w.outcome(OWNER, Command::Ban { target: uid(1) }),
        Ok(Outcome::Done)
    );
    assert!(!w.model.members.contains_key(&uid(1)));
    assert_eq!(w.outcome(1, Command::Join), Err(Refusal::Banned));
    w.wait(Duration::from_secs(72 * 3600));
    assert_eq!(
        w.outcome(1, Command::Join),
        Err(Refusal::Banned),
        "bans do not expire"
    );
    assert_eq!(
        w.outcome(OWNER, Command::Unban { target: uid(1) }),
        Ok(Outcome::Done)
    );
    assert_eq!(w.outcome(1, Command::Join), cooldown_refusal(48 * 3600));
    w.wait(COOLDOWN_48H);
    assert_eq!(w.outcome(1, Command::Join), Ok(Outcome::Pending));
    // Unbanning a user who was never a member starts a cooldown too.
    assert_eq!(
        w.outcome(OWNER, Command::Ban { target: uid(2) }),
        Ok(Outcome::Done)
    );
    assert_eq!(
        w.outcome(OWNER, Command::Unban { target: uid(2) }),
        Ok(Outcome::Done)
    );
    assert_eq!(w.outcome(2, Command::Join), cooldown_refusal(48 * 3600));
}

#[test]
fn scenario_open_group_never_has_cooldown() {
    let mut w = World::new(Visibility::Open, 10, COOLDOWN_48H);
    w.admit(1);
    assert_eq!(w.outcome(1, Command::Leave), Ok(Outcome::Done));
    assert_eq!(w.outcome(1, Command::Join), Ok(Outcome::Member));
    assert_eq!(
        w.outcome(OWNER, Command::Remove { target: uid(1) }),
        Ok(Outcome::Done)
    );
    assert_eq!(w.outcome(1, Command::Join), Ok(Outcome::Member));
    assert_eq!(
        w.outcome(OWNER, Command::Ban { target: uid(1) }),
        Ok(Outcome::Done)
    );
    assert_eq!(w.outcome(1, Command::Join), Err(Refusal::Banned));
    assert_eq!(
        w.outcome(OWNER, Command::Unban { target: uid(1) }),
        Ok(Outcome::Done)
    );
    assert_eq!(w.outcome(1, Command::Join), Ok(Outcome::Member));
    assert!(w.model.cooldowns.is_empty());
}

#[test]
fn scenario_sole_owner_leaving_deletes_group() {
    let mut w = World::new(Visibility::Private, 10, COOLDOWN_48H);
    assert_eq!(w.outcome(1, Command::Join), Ok(Outcome::Pending));
    assert_eq!(w.outcome(OWNER, Command::Leave), Ok(Outcome::GroupDeleted));
    assert!(w.model.deleted);
}

#[test]
fn scenario_owner_with_others_must_transfer_before_leaving() {
    for visibility in VISIBILITIES {
        let mut w = World::new(visibility, 10, COOLDOWN_48H);
        w.admit(1);
        assert_eq!(
            w.outcome(OWNER, Command::Leave),
            Err(Refusal::OwnerMustTransfer)
        );
        assert_eq!(w.model.owner_id, uid(OWNER));
        // Once the others are gone the owner is alone, and leaving deletes the group.
        assert_eq!(w.outcome(1, Command::Leave), Ok(Outcome::Done));
        assert_eq!(w.outcome(OWNER, Command::Leave), Ok(Outcome::GroupDeleted));
    }
}

#[test]
fn scenario_transfer_then_old_owner_can_leave() {
    let mut w = World::new(Visibility::Private, 10, COOLDOWN_48H);
    w.admit(1);
    assert!(matches!(
        w.outcome(OWNER, Command::TransferOwnership { target: uid(2) }),
        Err(Refusal::InvalidTarget {
            field: "new_owner_id",
            ..
        })
    ));
    assert_eq!(
        w.outcome(OWNER, Command::TransferOwnership { target: uid(1) }),
        Ok(Outcome::Done)
    );
    assert_eq!(w.model.owner_id, uid(1));
    assert_eq!(
        w.model.members.get(&uid(OWNER)),
        Some(&Role::Member),
        "old owner stays"
    );
    assert_eq!(w.outcome(OWNER, Command::Delete), Err(Refusal::Forbidden));
    assert_eq!(w.outcome(OWNER, Command::Leave), Ok(Outcome::Done));
    assert_eq!(w.outcome(OWNER, Command::Join), cooldown_refusal(48 * 3600));
    assert_eq!(w.outcome(1, Command::Leave), Ok(Outcome::GroupDeleted));
}

#[test]
fn scenario_ban_removes_membership_and_request_and_repeats_safely() {
    let mut w = World::new(Visibility::Private, 10, COOLDOWN_48H);
    w.admit(1);
    assert_eq!(w.outcome(2, Command::Join), Ok(Outcome::Pending));
    for user in [1, 2, 3] {
        assert_eq!(
            w.outcome(OWNER, Command::Ban { target: uid(user) }),
            Ok(Outcome::Done)
        );
        let again = w.run(OWNER, Command::Ban { target: uid(user) });
        assert_eq!(
            again,
            Ok(Decision {
                effects: Vec::new(),
                outcome: Outcome::Done
            })
        );
    }
    assert_eq!(w.model.members.len(), 1);
    assert!(w.model.pending.is_empty());
    assert_eq!(
        w.outcome(2, Command::WithdrawRequest),
        Err(Refusal::NotFound)
    );
    assert_eq!(
        w.outcome(OWNER, Command::Approve { target: uid(2) }),
        Err(Refusal::NotFound)
    );
}

#[test]
fn scenario_approvals_never_exceed_max_members() {
    let mut w = World::new(Visibility::Private, 3, COOLDOWN_48H);
    for user in [1, 2, 3] {
        assert_eq!(w.outcome(user, Command::Join), Ok(Outcome::Pending));
    }
    assert_eq!(
        w.outcome(OWNER, Command::Approve { target: uid(1) }),
        Ok(Outcome::Member)
    );
    assert_eq!(
        w.outcome(OWNER, Command::Approve { target: uid(2) }),
        Ok(Outcome::Member)
    );
    assert_eq!(
        w.outcome(OWNER, Command::Approve { target: uid(3) }),
        Err(Refusal::GroupFull)
    );
    assert_eq!(w.outcome(4, Command::Join), Err(Refusal::GroupFull));
    assert_eq!(
        w.outcome(OWNER, Command::Reject { target: uid(3) }),
        Ok(Outcome::Done)
    );
    assert_eq!(w.model.members.len(), 3);
}

// ---------------------------------------------------------------------------------------------
// Property tests: random command sequences from random actors
// ---------------------------------------------------------------------------------------------

/// The owner (user 0 at first) and four more users.
const USERS: u128 = 5;
/// Long enough, against the waits of `arb_step`, for rejoins to hit and outlive the cooldown.
const SEQ_COOLDOWN: Duration = Duration::from_secs(30);

/// Who acts or is targeted: picking from the current sets makes meaningful commands frequent.
#[derive(Clone, Copy, Debug)]
enum Pick {
    Owner,
    User(u128),
    Pending(usize),
    /// A member other than the owner.
    Member(usize),
    Banned(usize),
    /// A user with a cooldown, over or not.
    Cooled(usize),
}

impl Pick {
    fn resolve(self, m: &Model) -> UserId {
        let nth = |set: Vec<UserId>, n: usize| {
            if set.is_empty() {
                uid(n as u128 % USERS)
            } else {
                set[n % set.len()]
            }
        };
        match self {
            Pick::Owner => m.owner_id,
            Pick::User(n) => uid(n),
            Pick::Pending(n) => nth(m.pending.iter().copied().collect(), n),
            Pick::Member(n) => nth(
                m.members
                    .keys()
                    .copied()
                    .filter(|u| *u != m.owner_id)
                    .collect(),
                n,
            ),
            Pick::Banned(n) => nth(m.bans.keys().copied().collect(), n),
            Pick::Cooled(n) => nth(m.cooldowns.keys().copied().collect(), n),
        }
    }
}

fn arb_pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        3 => Just(Pick::Owner),
        3 => (0..USERS).prop_map(Pick::User),
        2 => any::<usize>().prop_map(Pick::Pending),
        3 => any::<usize>().prop_map(Pick::Member),
        1 => any::<usize>().prop_map(Pick::Banned),
        2 => any::<usize>().prop_map(Pick::Cooled),
    ]
}

#[derive(Clone, Copy, Debug)]
struct Step {
    actor: Pick,
    /// For the owner-only commands: the owner acts, whatever `actor` says.
    by_owner: bool,
    kind: Kind,
    target: Pick,
    /// Time passing before the command.
    wait_ms: u64,
}

fn arb_step() -> impl Strategy<Value = Step> {
    // Deleting restarts the group, so it is kept rare.
    let kind = prop_oneof![
        12 => Just(Kind::Join),
        3 => Just(Kind::Withdraw),
        8 => Just(Kind::Approve),
        3 => Just(Kind::Reject),
        5 => Just(Kind::Remove),
        6 => Just(Kind::Leave),
        5 => Just(Kind::Ban),
        5 => Just(Kind::Unban),
        3 => Just(Kind::Transfer),
        1 => Just(Kind::Delete),
    ];
    let wait_ms = prop_oneof![4 => Just(0u64), 2 => 1..2_000u64, 1 => 2_000..12_000u64];
    (
        arb_pick(),
        prop::bool::weighted(0.7),
        kind,
        arb_pick(),
        wait_ms,
    )
        .prop_map(|(actor, by_owner, kind, target, wait_ms)| Step {
            actor,
            by_owner,
            kind,
            target,
            wait_ms,
        })
}

impl Step {
    fn actor(&self, m: &Model) -> UserId {
        let owner_only = !matches!(self.kind, Kind::Join | Kind::Withdraw | Kind::Leave);
        if owner_only && self.by_owner {
            m.owner_id
        } else {
            self.actor.resolve(m)
        }
    }
}

/// A fresh group owned by user 0 where users 1.. start as strangers (0), requesters (1, private
/// groups only) or members (2, while seats last).
fn populated(visibility: Visibility, max_members: u32, start: &[u8]) -> Model {
    let mut m = Model::new(visibility, max_members, uid(OWNER));
    for (i, s) in start.iter().enumerate() {
        let u = uid(i as u128 + 1);
        match s {
            1 if visibility == Visibility::Private => {
                m.pending.insert(u);
            }
            2 if (m.members.len() as u32) < max_members => {
                m.members.insert(u, Role::Member);
            }
            _ => {}
        }
    }
    m
}

fn prop_config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(prop_config())]

    #[test]
    fn random_command_sequences_keep_invariants(
        private in any::<bool>(),
        max_members in 2u32..=4,
        start in prop::collection::vec(0..3u8, USERS as usize - 1),
        steps in prop::collection::vec(arb_step(), 1..60),
    ) {
        let visibility = if private { Visibility::Private } else { Visibility::Open };
        let fresh = populated(visibility, max_members, &start);
        prop_assert_eq!(fresh.check_invariants(), Ok(()));
        let mut model = fresh.clone();
        let mut now = T0;
        for (i, s) in steps.iter().enumerate() {
            now += ms(s.wait_ms);
            let actor = s.actor(&model);
            let cmd = s.kind.command(s.target.resolve(&model));
            let r = step(&model, actor, &cmd, now, SEQ_COOLDOWN);
            prop_assert!(
                r.matches(),
                "step {i}: {cmd:?} by {actor} on {model:?}\n decide: {:?}\n contract: {:?}",
                r.got, r.want
            );
            if !private {
                let cooled = matches!(r.got, Err(Refusal::CooldownActive { .. }));
                prop_assert!(!cooled, "cooldown_active in an open group");
            }
            match r.after {
                Err(e) => prop_assert!(false, "step {i}: {cmd:?} by {actor}: {e}"),
                Ok(Some(next)) if next.deleted => {
                    // A new group, in the same shape, keeps the sequence going.
                    model = fresh.clone();
                }
                Ok(Some(next)) => model = next,
                Ok(None) => {}
            }
            prop_assert_eq!(model.check_invariants(), Ok(()));
            prop_assert!(private || model.cooldowns.is_empty(), "cooldown in an open group");
        }
    }

    /// Leaving, removal and unbanning in a private group refuse a rejoin with cooldown_active
    /// exactly until the cooldown has passed; open groups never refuse.
    #[test]
    fn cooldown_blocks_rejoin_exactly_until_it_passes(
        private in any::<bool>(),
        how in 0..3usize,
        (cooldown_ms, elapsed_ms) in (1u64..=48 * 3_600_000).prop_flat_map(|c| {
            (Just(c), prop_oneof![0..=2 * c, Just(c - 1), Just(c), Just(c + 1)])
        }),
    ) {
        let visibility = if private { Visibility::Private } else { Visibility::Open };
        let mut w = World::new(visibility, 10, ms(cooldown_ms));
        w.admit(1);
        let gone = match how {
            0 => w.outcome(1, Command::Leave),
            1 => w.outcome(OWNER, Command::Remove { target: uid(1) }),
            _ => w
                .outcome(OWNER, Command::Ban { target: uid(1) })
                .and_then(|_| w.outcome(OWNER, Command::Unban { target: uid(1) })),
        };
        prop_assert_eq!(gone, Ok(Outcome::Done));
        w.wait(ms(elapsed_ms));
        let admitted = if private { Outcome::Pending } else { Outcome::Member };
        let got = w.outcome(1, Command::Join);
        if private && elapsed_ms < cooldown_ms {
            let secs = (cooldown_ms - elapsed_ms).div_ceil(1000);
            prop_assert_eq!(&got, &cooldown_refusal(secs));
            w.wait(Duration::from_secs(secs));
            prop_assert_eq!(w.outcome(1, Command::Join), Ok(admitted));
        } else {
            prop_assert_eq!(got, Ok(admitted));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// access.rs: who reads and sends
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    ReadMessages,
    Send,
    ReadMembers,
}

fn access(a: Access, visibility: Visibility, me: &Relation) -> Result<(), Refusal> {
    match a {
        Access::ReadMessages => can_read_messages(visibility, me),
        Access::Send => can_send(visibility, me),
        Access::ReadMembers => can_read_members(visibility, me),
    }
}

/// A user in state `st`, as the store would load it.
fn relation_in(st: St) -> Relation {
    let (model, actor, _) = build(&Case {
        kind: Kind::Join,
        visibility: Visibility::Private,
        occupancy: Occupancy::NoOthers,
        actor: st,
        target: None,
    });
    model.relation(actor)
}

/// API.md: only members read and send messages; a banned user cannot read or send; a non-member
/// asking about a private group's members or messages gets 404 `not_found`. The members list is
/// for "members". A non-member of an open group is refused with 403 `forbidden` (nothing is
/// hidden there).
fn access_oracle(visibility: Visibility, st: St) -> Result<(), Refusal> {
    match st {
        St::Member | St::Owner => Ok(()),
        St::Banned => Err(Refusal::Banned),
        St::Stranger | St::Pending | St::CoolingDown | St::CooldownOver => match visibility {
            Visibility::Private => Err(Refusal::NotFound),
            Visibility::Open => Err(Refusal::Forbidden),
        },
    }
}

/// See `access_open_group_member_list_is_for_members_only`.
fn reads_open_member_list_as_non_member(a: Access, visibility: Visibility, st: St) -> bool {
    a == Access::ReadMembers
        && visibility == Visibility::Open
        && !matches!(st, St::Member | St::Owner | St::Banned)
}

#[test]
fn access_matches_contract_for_every_state_and_visibility() {
    let mut checked = 0;
    for a in [Access::ReadMessages, Access::Send, Access::ReadMembers] {
        for visibility in VISIBILITIES {
            for st in STATES {
                if reads_open_member_list_as_non_member(a, visibility, st) {
                    continue;
                }
                let got = access(a, visibility, &relation_in(st));
                assert_eq!(
                    got,
                    access_oracle(visibility, st),
                    "{a:?} {visibility:?} {st:?}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 3 * 2 * 7 - 4);
}

#[test]
fn access_private_group_strangers_get_not_found_never_forbidden() {
    for a in [Access::ReadMessages, Access::Send, Access::ReadMembers] {
        for st in [St::Stranger, St::Pending, St::CoolingDown, St::CooldownOver] {
            let got = access(a, Visibility::Private, &relation_in(st));
            assert_eq!(got, Err(Refusal::NotFound), "{a:?} {st:?}");
        }
        for visibility in VISIBILITIES {
            let got = access(a, visibility, &relation_in(St::Banned));
            assert_eq!(got, Err(Refusal::Banned), "{a:?} {visibility:?}");
        }
    }
}

#[test]
fn access_open_group_member_list_is_for_members_only() {
    for st in STATES {
        if reads_open_member_list_as_non_member(Access::ReadMembers, Visibility::Open, st) {
            assert_eq!(
                can_read_members(Visibility::Open, &relation_in(st)),
                Err(Refusal::Forbidden),
                "{st:?}"
            );
        }
    }
}
