//! Scenarios on the model: cooldowns, ownership, bans and the member limit, step by step.

use super::enumeration::VISIBILITIES;
use super::*;

// ---------------------------------------------------------------------------------------------
// Scenarios on the model
// ---------------------------------------------------------------------------------------------

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

#[test]
fn scenario_a_moderator_manages_plain_members_until_demoted() {
    let mut w = World::new(Visibility::Private, 10, COOLDOWN_48H);
    for u in [1, 2, 3] {
        w.admit(u);
    }
    let promote = |u: u128, role| Command::SetRole {
        target: uid(u),
        role,
    };
    assert_eq!(
        w.outcome(OWNER, promote(1, Role::Moderator)),
        Ok(Outcome::Done)
    );
    assert_eq!(
        w.outcome(OWNER, promote(2, Role::Moderator)),
        Ok(Outcome::Done)
    );
    assert_eq!(w.outcome(4, Command::Join), Ok(Outcome::Pending));
    assert_eq!(
        w.outcome(1, Command::Approve { target: uid(4) }),
        Ok(Outcome::Member)
    );
    assert_eq!(
        w.outcome(1, Command::Ban { target: uid(2) }),
        Err(Refusal::Forbidden)
    );
    assert_eq!(
        w.outcome(1, Command::Remove { target: uid(OWNER) }),
        Err(Refusal::Forbidden)
    );
    assert_eq!(
        w.outcome(1, Command::Ban { target: uid(3) }),
        Ok(Outcome::Done)
    );
    assert_eq!(
        w.model.bans.get(&uid(3)),
        Some(&uid(1)),
        "banned by the moderator"
    );
    assert_eq!(
        w.outcome(OWNER, promote(1, Role::Member)),
        Ok(Outcome::Done)
    );
    assert_eq!(
        w.outcome(1, Command::Remove { target: uid(4) }),
        Err(Refusal::Forbidden)
    );
    // Transfer to a moderator: they own it, the old owner is a plain member.
    assert_eq!(
        w.outcome(OWNER, Command::TransferOwnership { target: uid(2) }),
        Ok(Outcome::Done)
    );
    assert_eq!(w.model.members.get(&uid(2)), Some(&Role::Owner));
    assert_eq!(w.model.members.get(&uid(OWNER)), Some(&Role::Member));
}

#[test]
fn scenario_an_invitation_outlives_a_refused_acceptance_and_consumes_the_request() {
    let mut w = World::new(Visibility::Private, 10, Duration::from_secs(60));
    w.admit(1);
    assert_eq!(w.outcome(1, Command::Leave), Ok(Outcome::Done));
    assert_eq!(
        w.outcome(OWNER, Command::Invite { target: uid(1) }),
        Ok(Outcome::Done)
    );
    assert_eq!(
        w.outcome(1, Command::AcceptInvitation),
        cooldown_refusal(60)
    );
    assert!(w.model.invitations.contains_key(&uid(1)), "kept");
    w.wait(Duration::from_secs(60));
    assert_eq!(w.outcome(1, Command::Join), Ok(Outcome::Pending));
    assert_eq!(w.outcome(1, Command::AcceptInvitation), Ok(Outcome::Member));
    assert!(w.model.pending.is_empty() && w.model.invitations.is_empty());
    // A ban takes an invitation away; nobody can invite the banned.
    assert_eq!(
        w.outcome(OWNER, Command::Invite { target: uid(2) }),
        Ok(Outcome::Done)
    );
    assert_eq!(
        w.outcome(OWNER, Command::Ban { target: uid(2) }),
        Ok(Outcome::Done)
    );
    assert!(w.model.invitations.is_empty());
    assert_eq!(
        w.outcome(OWNER, Command::Invite { target: uid(2) }),
        Err(Refusal::Banned)
    );
}
