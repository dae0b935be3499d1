//! Records the stores keep. Content is only ever here as a sealed envelope.

use time::OffsetDateTime;

use crate::domain::{EntryKind, GroupId, MessageId, Role, UserId, Username, Visibility};

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

/// What a new entry does to the group's log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum EntryAction {
    /// A message (every v1 item).
    #[default]
    Text,
    /// Replaces the content of `target`, a live `text` entry of the same sender. `current` is
    /// the new content sealed for the target's id (each envelope is bound to its own entry), and
    /// becomes the target's envelope; the entry's own `envelope` keeps the edit's copy.
    Edit { target: MessageId, current: Vec<u8> },
    /// Deletes `target`, a live `text` entry: its envelope and those of its edits are erased.
    Delete { target: MessageId },
}

impl EntryAction {
    pub fn kind(&self) -> EntryKind {
        match self {
            EntryAction::Text => EntryKind::Text,
            EntryAction::Edit { .. } => EntryKind::Edit,
            EntryAction::Delete { .. } => EntryKind::Delete,
        }
    }

    pub fn target(&self) -> Option<MessageId> {
        match self {
            EntryAction::Text => None,
            EntryAction::Edit { target, .. } | EntryAction::Delete { target } => Some(*target),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    pub id: MessageId,
    pub group_id: GroupId,
    pub sender_id: UserId,
    /// Empty for a deletion, which has no content.
    pub envelope: Vec<u8>,
    pub sent_at: OffsetDateTime,
    pub client_msg_id: Option<String>,
    pub action: EntryAction,
}

/// An entry of a group's log. `envelope` is empty when there is no content: a deletion, a
/// deleted message, or an edit of one (erased, not hidden).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: MessageId,
    pub group_id: GroupId,
    pub seq: u64,
    pub sender_id: UserId,
    pub envelope: Vec<u8>,
    pub sent_at: OffsetDateTime,
    pub client_msg_id: Option<String>,
    pub kind: EntryKind,
    pub target_id: Option<MessageId>,
    /// `text` entries: when last edited.
    pub edited_at: Option<OffsetDateTime>,
    /// `text` entries: when deleted.
    pub deleted_at: Option<OffsetDateTime>,
}

impl StoredMessage {
    /// The entry as first stored from `m` with its `seq`.
    pub fn from_new(m: &NewMessage, seq: u64) -> Self {
        Self {
            id: m.id,
            group_id: m.group_id,
            seq,
            sender_id: m.sender_id,
            envelope: m.envelope.clone(),
            sent_at: m.sent_at,
            client_msg_id: m.client_msg_id.clone(),
            kind: m.action.kind(),
            target_id: m.action.target(),
            edited_at: None,
            deleted_at: None,
        }
    }

    /// A `text` entry that can still be edited or deleted.
    pub fn is_live_text(&self) -> bool {
        self.kind == EntryKind::Text && self.deleted_at.is_none()
    }
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
    /// An edit or deletion whose target is not (any more) a live `text` entry of the group that
    /// its author may change (deleted meanwhile, say): nothing was stored.
    TargetGone,
}

impl Appended {
    pub fn message(&self) -> Option<&StoredMessage> {
        match self {
            Appended::Stored(m) | Appended::Duplicate(m) => Some(m),
            Appended::GroupGone | Appended::NotMember | Appended::TargetGone => None,
        }
    }
}

/// What [`MessageStore::mark_read`](super::MessageStore::mark_read) did.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMark {
    Moved,
    /// At or behind the marker already: nothing changed.
    NotForward,
    /// Beyond the group's last `seq`: nothing changed.
    BeyondLast,
    /// Not a member (or no such group).
    NotMember,
}

/// One member's read marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadMarker {
    pub user_id: UserId,
    pub last_read_seq: u64,
}

/// A member's read state in one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    pub group_id: GroupId,
    pub last_seq: u64,
    pub last_read_seq: u64,
    /// `text` entries after the marker, by others, not deleted; at most [`UNREAD_CAP`].
    pub unread_count: u32,
}

/// Unread counts stop here, so counting is bounded whatever a member left unread.
pub const UNREAD_CAP: u32 = 1000;
