//! Who may read and send. A stranger must not learn anything about a private group's members
//! or messages, so refusals there are `NotFound`, exactly as if the group had none.

use super::{Refusal, Relation, Visibility};

pub fn can_read_messages(visibility: Visibility, me: &Relation) -> Result<(), Refusal> {
    if me.is_member() {
        return Ok(());
    }
    if me.banned {
        return Err(Refusal::Banned);
    }
    match visibility {
        Visibility::Private => Err(Refusal::NotFound),
        Visibility::Open => Err(Refusal::Forbidden),
    }
}

pub fn can_send(visibility: Visibility, me: &Relation) -> Result<(), Refusal> {
    can_read_messages(visibility, me)
}

/// Member lists are for members, like messages (only a group's metadata is public).
pub fn can_read_members(visibility: Visibility, me: &Relation) -> Result<(), Refusal> {
    can_read_messages(visibility, me)
}

/// Editing a message: its sender only, while a member (a former member's messages stay as
/// they are).
pub fn can_edit_message(me: &Relation, is_sender: bool) -> Result<(), Refusal> {
    if !me.is_member() {
        return Err(Refusal::NotFound);
    }
    if is_sender {
        Ok(())
    } else {
        Err(Refusal::Forbidden)
    }
}

/// Deleting a message: its sender, or whoever moderates the group. The one place that says who
/// moderates (the owner; a moderator role joins here).
pub fn can_delete_message(me: &Relation, is_sender: bool) -> Result<(), Refusal> {
    if !me.is_member() {
        return Err(Refusal::NotFound);
    }
    if is_sender || me.is_manager() {
        Ok(())
    } else {
        Err(Refusal::Forbidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn member(role: Option<Role>) -> Relation {
        Relation {
            role,
            ..Default::default()
        }
    }

    #[test]
    fn only_the_sender_edits() {
        assert!(can_edit_message(&member(Some(Role::Member)), true).is_ok());
        assert_eq!(
            can_edit_message(&member(Some(Role::Owner)), false),
            Err(Refusal::Forbidden)
        );
        assert_eq!(
            can_edit_message(&member(None), true),
            Err(Refusal::NotFound)
        );
    }

    #[test]
    fn the_sender_and_the_owner_delete() {
        assert!(can_delete_message(&member(Some(Role::Member)), true).is_ok());
        assert!(can_delete_message(&member(Some(Role::Owner)), false).is_ok());
        assert_eq!(
            can_delete_message(&member(Some(Role::Member)), false),
            Err(Refusal::Forbidden)
        );
        assert_eq!(
            can_delete_message(&member(None), true),
            Err(Refusal::NotFound)
        );
    }
}
