//! Records the stores keep. Content is only ever here as a sealed envelope.

use time::OffsetDateTime;

use crate::domain::{GroupId, MessageId, Role, UserId, Username, Visibility};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub username: Username,
    pub password_hash: String,
    pub created_at: OffsetDateTime,
}

/// SHA-256 of a refresh token: the token itself is never stored.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub hash: TokenHash,
    pub user_id: UserId,
    /// All tokens rotated from one login share a family; reuse of a spent one revokes it.
    pub family_id: String,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    Rotated {
        user_id: UserId,
    },
    /// The presented token had been spent already: its family is now revoked.
    ReuseDetected {
        user_id: UserId,
    },
    /// Unknown, expired or revoked.
    Invalid,
}

/// Serialized, this is the group of docs/api.md (`group:updated` carries it as is).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupRecord {
    pub id: GroupId,
    pub name: String,
    pub description: String,
    pub visibility: Visibility,
    pub owner_id: UserId,
    pub member_count: u32,
    pub max_members: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    pub user_id: UserId,
    pub username: String,
    pub role: Role,
    pub joined_at: OffsetDateTime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRequestRecord {
    pub user_id: UserId,
    pub username: String,
    pub requested_at: OffsetDateTime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanRecord {
    pub user_id: UserId,
    pub username: String,
    pub banned_by: UserId,
    pub banned_at: OffsetDateTime,
}

/// A pending invitation (v1.1): `user_id` is the invitee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvitationRecord {
    pub group_id: GroupId,
    pub user_id: UserId,
    pub username: String,
    pub invited_by: UserId,
    pub invited_at: OffsetDateTime,
}

#[derive(Clone, Debug, Default)]
pub struct GroupFilter {
    /// Case-insensitive substring of the name.
    pub query: Option<String>,
    pub visibility: Option<Visibility>,
}

#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Sort key of the last item when more may follow.
    pub next: Option<crate::domain::Cursor>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    pub id: MessageId,
    pub group_id: GroupId,
    pub sender_id: UserId,
    pub envelope: Vec<u8>,
    pub sent_at: OffsetDateTime,
    pub client_msg_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: MessageId,
    pub group_id: GroupId,
    pub seq: u64,
    pub sender_id: UserId,
    pub envelope: Vec<u8>,
    pub sent_at: OffsetDateTime,
    pub client_msg_id: Option<String>,
}

/// `after_seq` reads forwards, `before_seq` backwards; results are always ascending by `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryQuery {
    pub after_seq: Option<u64>,
    pub before_seq: Option<u64>,
    pub limit: u32,
}

/// The fate of one message of an appended batch, in batch order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Appended {
    Stored(StoredMessage),
    /// Already stored (same id, or same sender and `client_msg_id`): this is the stored one.
    Duplicate(StoredMessage),
    /// The group was deleted before the message could be stored.
    GroupGone,
    /// The sender is no longer a member (removed, banned or left after the send was accepted):
    /// checked where the message is stored, so a send cannot outrun a ban on another process.
    NotMember,
}

impl Appended {
    pub fn message(&self) -> Option<&StoredMessage> {
        match self {
            Appended::Stored(m) | Appended::Duplicate(m) => Some(m),
            Appended::GroupGone | Appended::NotMember => None,
        }
    }
}
