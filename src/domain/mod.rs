//! Pure domain: validated value types and the group membership rules. No I/O lives here, so every
//! rule can be tested fast and exhaustively; the stores load state, call these rules, and apply
//! the effects they return inside one transaction.

pub mod access;
pub mod audit;
pub mod group;
pub mod ids;
pub mod membership;
pub mod message;
pub mod page;
pub mod text;
pub mod user;

use time::OffsetDateTime;

pub use access::{
    can_delete_message, can_edit_message, can_read_members, can_read_messages, can_send,
};
pub use audit::{AuditEvent, AuditKind};
pub use group::{Description, GroupName, MaxMembers, Visibility};
pub use ids::{AuditId, GroupId, MessageId, UserId};
pub use membership::{
    Command, Decision, Effect, GroupFacts, GroupPatch, Outcome, Refusal, Relation, Role,
};
pub use message::{ClientMsgId, Content, EntryKind, MessageView};
pub use page::{Cursor, Limit};
pub use user::{Password, Username};

#[cfg(test)]
mod membership_tests;

/// A field that failed validation, reported to the client as `{field, message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// The current time truncated to whole milliseconds, the precision every store keeps, so a value
/// read back compares equal to the one written.
pub fn now() -> OffsetDateTime {
    let ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    from_millis(ms as i64)
}

pub fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn to_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}
