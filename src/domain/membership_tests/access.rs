//! The read and send rules of access.rs (`can_read_members`, `can_read_messages`, `can_send`):
//! who reads the members and messages of a group, and who sends.

use super::enumeration::{Case, Occupancy, STATES, St, VISIBILITIES, build};
use super::*;

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

/// docs/api.md: only members read and send messages; a banned user cannot read or send; a non-member
/// asking about a private group's members or messages gets 404 `not_found`. The members list is
/// for "members". A non-member of an open group is refused with 403 `forbidden` (nothing is
/// hidden there).
fn access_oracle(visibility: Visibility, st: St) -> Result<(), Refusal> {
    match st {
        St::Member | St::Owner | St::Moderator => Ok(()),
        St::Banned => Err(Refusal::Banned),
        // An invitation gives no access until it is accepted.
        St::Stranger
        | St::Pending
        | St::CoolingDown
        | St::CooldownOver
        | St::Invited
        | St::InvitedPending
        | St::InvitedCoolingDown => match visibility {
            Visibility::Private => Err(Refusal::NotFound),
            Visibility::Open => Err(Refusal::Forbidden),
        },
    }
}

/// See `access_open_group_member_list_is_for_members_only`.
fn reads_open_member_list_as_non_member(a: Access, visibility: Visibility, st: St) -> bool {
    a == Access::ReadMembers
        && visibility == Visibility::Open
        && !matches!(st, St::Member | St::Owner | St::Moderator | St::Banned)
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
    assert_eq!(checked, 3 * 2 * 11 - 7);
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
