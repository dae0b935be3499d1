//! A tiny in-memory group that applies effects strictly, one checked step of it (`decide`
//! against the oracle), and a world around it (a clock, a cooldown) for scenarios and property
//! tests.

use super::*;

// ---------------------------------------------------------------------------------------------
// A tiny in-memory group that applies effects strictly
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Model {
    pub(super) visibility: Visibility,
    pub(super) max_members: u32,
    pub(super) owner_id: UserId,
    pub(super) members: BTreeMap<UserId, Role>,
    pub(super) pending: BTreeSet<UserId>,
    /// banned user -> banned by
    pub(super) bans: BTreeMap<UserId, UserId>,
    pub(super) cooldowns: BTreeMap<UserId, OffsetDateTime>,
    /// invitee -> invited by
    pub(super) invitations: BTreeMap<UserId, UserId>,
    pub(super) name: String,
    pub(super) deleted: bool,
}

impl Model {
    /// `POST /groups`: the creator becomes owner and first member.
    pub(super) fn new(visibility: Visibility, max_members: u32, owner: UserId) -> Self {
        Model {
            visibility,
            max_members,
            owner_id: owner,
            members: BTreeMap::from([(owner, Role::Owner)]),
            pending: BTreeSet::new(),
            bans: BTreeMap::new(),
            cooldowns: BTreeMap::new(),
            invitations: BTreeMap::new(),
            name: "group".into(),
            deleted: false,
        }
    }

    pub(super) fn relation(&self, u: UserId) -> Relation {
        Relation {
            role: self.members.get(&u).copied(),
            pending: self.pending.contains(&u),
            banned: self.bans.contains_key(&u),
            invited: self.invitations.contains_key(&u),
            cooldown_until: self.cooldowns.get(&u).copied(),
        }
    }

    pub(super) fn party(&self, u: UserId) -> Party {
        Party {
            id: u,
            member: self.members.contains_key(&u),
            moderator: self.members.get(&u) == Some(&Role::Moderator),
            pending: self.pending.contains(&u),
            banned: self.bans.contains_key(&u),
            invited: self.invitations.contains_key(&u),
            cooldown_until: self.cooldowns.get(&u).copied(),
        }
    }

    pub(super) fn facts(&self) -> GroupFacts {
        GroupFacts {
            visibility: self.visibility,
            owner_id: self.owner_id,
            member_count: self.members.len() as u32,
            max_members: self.max_members,
        }
    }

    pub(super) fn view(&self, now: OffsetDateTime, cooldown: Duration) -> View {
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
    pub(super) fn apply(
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
                    let manager =
                        matches!(self.members.get(&by), Some(Role::Owner | Role::Moderator));
                    if by != actor || !manager {
                        return Err(format!("{e:?}: not banned by the acting manager"));
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
                Effect::AddInvitation { user, by } => {
                    if by != actor {
                        return Err(format!("{e:?}: not invited by the actor"));
                    }
                    if m.invitations.insert(user, by).is_some() {
                        return Err(format!("{e:?}: already invited"));
                    }
                }
                Effect::RemoveInvitation { user } => {
                    if m.invitations.remove(&user).is_none() {
                        return Err(format!("{e:?}: no invitation"));
                    }
                }
                Effect::UpdateGroup(ref p) => {
                    if let Some(n) = &p.name {
                        m.name = n.clone();
                    }
                    if let Some(v) = p.visibility {
                        m.visibility = v;
                    }
                    if let Some(max) = p.max_members {
                        m.max_members = max;
                    }
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
    pub(super) fn check_invariants(&self) -> Result<(), String> {
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
        for i in self.invitations.keys() {
            if self.members.contains_key(i) || self.bans.contains_key(i) {
                return Err(format!("invited user {i} is a member or banned"));
            }
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
pub(super) struct StepResult {
    pub(super) got: Result<Decision, Refusal>,
    pub(super) want: Result<Decision, Refusal>,
    pub(super) after: Result<Option<Model>, String>,
}

impl StepResult {
    pub(super) fn matches(&self) -> bool {
        normalized(&self.got) == self.want
    }
}

pub(super) fn step(
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
pub(super) fn check_retry_after(
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
// A world around the model, for scenarios and property tests
// ---------------------------------------------------------------------------------------------

pub(super) const OWNER: u128 = 0;

/// A group, a clock and a cooldown; every command is checked against the oracle and the
/// invariants, then applied.
pub(super) struct World {
    pub(super) model: Model,
    pub(super) now: OffsetDateTime,
    pub(super) cooldown: Duration,
}

impl World {
    pub(super) fn new(visibility: Visibility, max_members: u32, cooldown: Duration) -> Self {
        World {
            model: Model::new(visibility, max_members, uid(OWNER)),
            now: T0,
            cooldown,
        }
    }

    pub(super) fn run(&mut self, actor: u128, cmd: Command) -> Result<Decision, Refusal> {
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

    pub(super) fn outcome(&mut self, actor: u128, cmd: Command) -> Result<Outcome, Refusal> {
        self.run(actor, cmd).map(|d| d.outcome)
    }

    /// Makes `user` a member: join, plus approval in a private group.
    pub(super) fn admit(&mut self, user: u128) {
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

    pub(super) fn owner(&self) -> u128 {
        self.model.owner_id.as_uuid().as_u128()
    }

    pub(super) fn wait(&mut self, d: Duration) {
        self.now += d;
    }
}

pub(super) fn cooldown_refusal(secs: u64) -> Result<Outcome, Refusal> {
    Err(Refusal::CooldownActive {
        retry_after: Duration::from_secs(secs),
    })
}
