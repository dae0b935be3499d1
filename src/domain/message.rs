//! Message value types.

use serde::Serialize;
use time::OffsetDateTime;

use super::{FieldError, GroupId, MessageId, UserId};

/// 1..=4096 characters (Unicode scalar values), not only whitespace; line breaks and tabs, but
/// no other control characters and no bidirectional formatting characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Content(String);

impl Content {
    pub const MAX_CHARS: usize = 4096;
    /// A UTF-8 string of 4096 chars is at most 4 bytes each: anything longer is refused before
    /// counting characters.
    pub const MAX_BYTES: usize = Self::MAX_CHARS * 4;

    pub fn parse(raw: String) -> Result<Self, FieldError> {
        if raw.len() > Self::MAX_BYTES || raw.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new(
                "content",
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        if raw.trim().is_empty() {
            return Err(FieldError::new("content", "must not be empty"));
        }
        if let Some(c) = super::text::refused_char(&raw, true) {
            return Err(FieldError::new("content", super::text::refused_message(c)));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A client's idempotency key: 1..=64 printable ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientMsgId(String);

impl ClientMsgId {
    pub const MAX: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.is_empty() || raw.len() > Self::MAX {
            return Err(FieldError::new(
                "client_msg_id",
                format!("must be 1..{} characters", Self::MAX),
            ));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FieldError::new("client_msg_id", "must be printable ASCII"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_limits_count_characters_not_bytes() {
        assert!(Content::parse(String::new()).is_err());
        assert!(Content::parse("  \n".into()).is_err());
        assert!(Content::parse("é".repeat(4096)).is_ok());
        assert!(Content::parse("é".repeat(4097)).is_err());
        assert!(Content::parse("x".repeat(4096)).is_ok());
        assert!(Content::parse("x".repeat(4097)).is_err());
    }

    #[test]
    fn client_msg_ids_are_bounded_printable_ascii() {
        assert!(ClientMsgId::parse("abc-123").is_ok());
        assert!(ClientMsgId::parse("").is_err());
        assert!(ClientMsgId::parse(&"a".repeat(65)).is_err());
        assert!(ClientMsgId::parse("a b").is_err());
    }
}

/// What an entry of a group's log is: a message (`text`, every v1 item), or an edit or a
/// deletion of one. Each has its own `seq`, so all three reach clients in one order.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Default,
    Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    #[default]
    Text,
    Edit,
    Delete,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Text => "text",
            EntryKind::Edit => "edit",
            EntryKind::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "text" => Some(EntryKind::Text),
            "edit" => Some(EntryKind::Edit),
            "delete" => Some(EntryKind::Delete),
            _ => None,
        }
    }
}

/// An entry of a group's log as clients see it (HTTP and `message:new` alike). A `text` entry
/// shows its current state: the latest content and `edited_at` after an edit, `content: null`
/// and `deleted_at` after a deletion. An `edit` carries its content (null once its target is
/// deleted), a `delete` none. v1 fields keep their meaning; the others are additions.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct MessageView {
    pub id: MessageId,
    pub group_id: GroupId,
    pub seq: u64,
    pub kind: EntryKind,
    /// The `text` entry an `edit` or `delete` applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<MessageId>,
    /// Who sent the message, or who edited or deleted it.
    pub sender_id: UserId,
    pub content: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub sent_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub edited_at: Option<OffsetDateTime>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deleted_at: Option<OffsetDateTime>,
}
