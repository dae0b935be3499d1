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
