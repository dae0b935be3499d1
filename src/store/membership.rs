//! The membership algorithm, written once for both engines: inside one engine transaction, load
//! the group (marking it written, so two changes of one group conflict), the actor's and the
//! target's relations, ask the pure rules (`domain::membership::decide`), and apply the effects.
//! An engine only says how to read and write inside its transaction ([`GroupReads`],
//! [`MembershipTx`]); it never decides anything.
//!
//! The traits use `async fn` without a `Send` bound: SQLite runs them on its blocking writer
//! thread (its futures never wait), MongoDB on the runtime with its session.

use time::OffsetDateTime;

use super::{Executed, GroupRecord, Policy};
use crate::domain::membership::{Snapshot, decide};
use crate::domain::{Command, Effect, GroupFacts, GroupId, Refusal, Relation, Role, UserId};
use crate::error::AppError;

/// The reads of one (group, user) relation, inside whatever transaction or snapshot the engine
/// holds.
pub(crate) trait GroupReads {
    type Error: From<AppError>;
    async fn group(&mut self, group: GroupId) -> Result<Option<GroupRecord>, Self::Error>;
    async fn role(&mut self, group: GroupId, user: UserId) -> Result<Option<Role>, Self::Error>;
    async fn pending(&mut self, group: GroupId, user: UserId) -> Result<bool, Self::Error>;
    async fn banned(&mut self, group: GroupId, user: UserId) -> Result<bool, Self::Error>;
    async fn invited(&mut self, group: GroupId, user: UserId) -> Result<bool, Self::Error>;
    async fn cooldown_until(
        &mut self,
        group: GroupId,
        user: UserId,
    ) -> Result<Option<OffsetDateTime>, Self::Error>;
}

/// The writes of a membership change, inside one engine transaction.
pub(crate) trait MembershipTx: GroupReads {
    /// The group, marked written in this transaction (see the module docs); `None` if absent.
    async fn lock_group(&mut self, group: GroupId) -> Result<Option<GroupRecord>, Self::Error>;
    async fn user_exists(&mut self, user: UserId) -> Result<bool, Self::Error>;
    async fn member_ids(&mut self, group: GroupId) -> Result<Vec<UserId>, Self::Error>;
    /// Marks the user written in this transaction, so two transactions adding the same user to
    /// different groups conflict (an engine that serialises every write does nothing).
    async fn lock_user(&mut self, user: UserId) -> Result<(), Self::Error>;
    /// How many groups the user belongs to.
    async fn membership_count(&mut self, user: UserId) -> Result<u64, Self::Error>;
    async fn apply(
        &mut self,
        group: GroupId,
        effect: &Effect,
        now: OffsetDateTime,
    ) -> Result<(), Self::Error>;
}

/// How much of a relation [`relation`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reads {
    /// Everything: role, pending request, ban, invitation and cooldown.
    Full,
    /// A member's role alone: requests, bans, invitations and cooldowns never change what a member
    /// may read or send (`GroupStore::access`); a non-member's relation is still read in full.
    MemberShortcut,
}

/// The user's relation to the group.
pub(crate) async fn relation<T: GroupReads>(
    tx: &mut T,
    group: GroupId,
    user: UserId,
    reads: Reads,
) -> Result<Relation, T::Error> {
    let role = tx.role(group, user).await?;
    if reads == Reads::MemberShortcut && role.is_some() {
        return Ok(Relation {
            role,
            ..Relation::default()
        });
    }
    Ok(Relation {
        role,
        pending: tx.pending(group, user).await?,
        banned: tx.banned(group, user).await?,
        invited: tx.invited(group, user).await?,
        cooldown_until: tx.cooldown_until(group, user).await?,
    })
}

/// The group and the user's relation to it (`None`: no such group).
pub(crate) async fn group_and_relation<T: GroupReads>(
    tx: &mut T,
    group: GroupId,
    user: UserId,
    reads: Reads,
) -> Result<Option<(GroupRecord, Relation)>, T::Error> {
    let Some(g) = tx.group(group).await? else {
        return Ok(None);
    };
    Ok(Some((g, relation(tx, group, user, reads).await?)))
}

/// Decides and applies `cmd` by `actor` on `group` inside the engine's transaction `tx`.
pub(crate) async fn execute<T: MembershipTx>(
    tx: &mut T,
    gid: GroupId,
    actor: UserId,
    cmd: &Command,
    now: OffsetDateTime,
    policy: Policy,
) -> Result<Executed, T::Error> {
    let group = tx.lock_group(gid).await?.ok_or(AppError::NotFound)?;
    let facts = GroupFacts {
        visibility: group.visibility,
        owner_id: group.owner_id,
        member_count: group.member_count,
        max_members: group.max_members,
    };
    let actor_rel = relation(tx, gid, actor, Reads::Full).await?;
    let target_rel = match cmd.target() {
        Some(t) if t == actor => actor_rel.clone(),
        Some(t) => {
            if !tx.user_exists(t).await? {
                return Err(AppError::NotFound.into());
            }
            relation(tx, gid, t, Reads::Full).await?
        }
        None => Relation::default(),
    };
    let snapshot = Snapshot {
        group: &facts,
        actor_id: actor,
        actor: &actor_rel,
        target: &target_rel,
    };
    let decision = decide(cmd, &snapshot, now, policy.rejoin_cooldown).map_err(AppError::from)?;
    // The groups-per-user cap, decided here with the user locked: checked before the
    // transaction, two joins of one user at once could each see room for one more.
    for e in &decision.effects {
        if let Effect::AddMember { user, .. } = e {
            tx.lock_user(*user).await?;
            if tx.membership_count(*user).await? >= u64::from(policy.max_groups_per_user) {
                let max = policy.max_groups_per_user;
                return Err(AppError::from(Refusal::TooManyGroups { max }).into());
            }
        }
    }
    let former_members = if decision.effects.contains(&Effect::DeleteGroup) {
        tx.member_ids(gid).await?
    } else {
        Vec::new()
    };
    for e in &decision.effects {
        tx.apply(gid, e, now).await?;
    }
    Ok(Executed {
        outcome: decision.outcome,
        group: tx.group(gid).await?,
        effects: decision.effects,
        former_members,
        at: now,
    })
}
