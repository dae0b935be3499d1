//! Storage: one trait per concern (accounts, groups and membership, messages, audit,
//! maintenance), [`Store`] their sum, two engines (`sqlite` for standalone, MongoDB for cluster),
//! one conformance suite that both must pass unchanged. Services depend on the narrow trait they
//! use.
//!
//! Group state changes go through [`GroupStore::execute`]: one algorithm
//! ([`membership::execute`]) loads a snapshot of the group and the users involved inside one
//! engine transaction, asks the pure rules in `domain::membership::decide`, and applies the
//! effects before committing. The rules never see I/O and the engines never decide anything:
//! each engine only says how to read and write inside its transaction.

pub(crate) mod membership;
pub mod mongo;
pub(crate) mod paging;
pub mod records;
pub mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::AuditEvent;
use crate::domain::{
    Command, Cursor, Effect, GroupId, Limit, MessageId, Outcome, Relation, UserId, Username,
};
use crate::error::AppResult;

pub use records::*;

/// Parameters of the rules that come from configuration.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub rejoin_cooldown: Duration,
    /// Groups one user may belong to; checked inside the transaction that adds a member.
    pub max_groups_per_user: u32,
}

/// What [`Store::purge_expired`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub refresh_tokens: u64,
    pub cooldowns: u64,
}

/// What [`Store::execute`] did.
#[derive(Clone, Debug)]
pub struct Executed {
    pub outcome: Outcome,
    pub effects: Vec<Effect>,
    /// The group after the change (`None` once deleted).
    pub group: Option<GroupRecord>,
    /// Members at the moment of deletion, so their live sockets can be told.
    pub former_members: Vec<UserId>,
    /// When the change was made (the time stored with it, e.g. `invited_at`).
    pub at: OffsetDateTime,
}

/// What [`AccountStore::create_user`] did. A taken name is an answer, not an error: the service
/// decides what the client is told.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewAccount {
    Created,
    /// The name is taken, ignoring case.
    UsernameTaken,
}

/// Accounts and their sessions.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    async fn create_user(&self, user: &UserRecord) -> AppResult<NewAccount>;
    async fn user_by_username(&self, username: &Username) -> AppResult<Option<UserRecord>>;
    async fn user_by_id(&self, id: UserId) -> AppResult<Option<UserRecord>>;

    // --- refresh tokens (stored by hash only)
    async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> AppResult<()>;
    /// Atomically: if `presented` is live, spend it and store `next` in its family; if it was
    /// already spent, revoke the whole family (a stolen token was replayed).
    async fn rotate_refresh_token(
        &self,
        presented: &TokenHash,
        next: &RefreshTokenRecord,
        now: OffsetDateTime,
    ) -> AppResult<Rotation>;
    /// Revoke the family of this token; false if no such token.
    async fn revoke_refresh_family(&self, presented: &TokenHash) -> AppResult<bool>;
}

/// Groups, their membership and its listings.
#[async_trait]
pub trait GroupStore: Send + Sync + 'static {
    /// Creates the group with its owner as first member.
    async fn create_group(&self, group: &GroupRecord) -> AppResult<()>;
    async fn group(&self, id: GroupId) -> AppResult<Option<GroupRecord>>;
    async fn list_groups(
        &self,
        filter: &GroupFilter,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<GroupRecord>>;
    async fn groups_of_user(
        &self,
        user: UserId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<(GroupRecord, MemberRecord)>>;
    /// Every group id the user is a member of (for joining Socket.IO rooms on connect).
    async fn group_ids_of_user(&self, user: UserId) -> AppResult<Vec<GroupId>>;
    /// The group and the user's relation to it, or `None` if the group does not exist.
    async fn relation(
        &self,
        group: GroupId,
        user: UserId,
    ) -> AppResult<Option<(GroupRecord, Relation)>>;
    /// As [`GroupStore::relation`], for access checks on the hot paths (send, history, typing):
    /// a member's relation may come back with only its role, since pending requests, bans and
    /// cooldowns never change what a member may read or send (`domain::access`); a non-member's
    /// is complete.
    async fn access(
        &self,
        group: GroupId,
        user: UserId,
    ) -> AppResult<Option<(GroupRecord, Relation)>>;
    /// Decide and apply a membership command atomically (see the module docs). Refusals come
    /// back as the matching `AppError`; a missing group or target user is `NotFound`.
    async fn execute(
        &self,
        group: GroupId,
        actor: UserId,
        cmd: &Command,
        now: OffsetDateTime,
        policy: Policy,
    ) -> AppResult<Executed>;
    async fn members(
        &self,
        group: GroupId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<MemberRecord>>;
    async fn join_requests(
        &self,
        group: GroupId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<JoinRequestRecord>>;
    async fn bans(
        &self,
        group: GroupId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<BanRecord>>;
    /// The groups the user owns or moderates (for the managers' rooms of their sockets).
    async fn managed_group_ids(&self, user: UserId) -> AppResult<Vec<GroupId>>;
    /// A user's name, for events that announce them (`None`: no such user).
    async fn username_of(&self, user: UserId) -> AppResult<Option<String>>;
    /// One member, or `None` if the user is not a member of the group.
    async fn member(&self, group: GroupId, user: UserId) -> AppResult<Option<MemberRecord>>;
    /// A group's pending invitations, oldest first.
    async fn group_invitations(
        &self,
        group: GroupId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<InvitationRecord>>;
    /// A user's pending invitations with their groups, oldest first.
    async fn invitations_of_user(
        &self,
        user: UserId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<(GroupRecord, InvitationRecord)>>;
}

/// Each group's ordered log: messages and the edits and deletions of them, each with its `seq`.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// The id already stored for this sender's `client_msg_id` in this group, if any.
    async fn message_id_for_client_id(
        &self,
        group: GroupId,
        sender: UserId,
        client_msg_id: &str,
    ) -> AppResult<Option<MessageId>>;
    /// Store a batch in order, assigning each group's next `seq`s atomically. A message whose
    /// id, or whose (group, sender, client_msg_id), is already stored is not stored again: the
    /// stored one is returned in its place. So a redelivered batch is harmless. An edit or a
    /// deletion is applied to its target in the same transaction, in batch order (see
    /// [`EntryAction`]); one whose target is not a live `text` entry (of its author, for an
    /// edit) is [`Appended::TargetGone`].
    async fn append_messages(&self, batch: &[NewMessage]) -> AppResult<Vec<Appended>>;
    async fn messages(&self, group: GroupId, query: &HistoryQuery)
    -> AppResult<Vec<StoredMessage>>;
    /// One entry of the group's log by id (any kind), as [`MessageStore::messages`] shows it.
    async fn entry(&self, group: GroupId, id: MessageId) -> AppResult<Option<StoredMessage>>;

    // --- read state. A member's marker starts at the group's last `seq` when they join, and a
    // stored `text` moves its sender's marker to it (in the append transaction).
    /// Moves `user`'s marker in `group` forward to `seq` (never back, never past the last).
    async fn mark_read(&self, group: GroupId, user: UserId, seq: u64) -> AppResult<ReadMark>;
    /// Every member's marker, by user id.
    async fn read_markers(&self, group: GroupId) -> AppResult<Vec<ReadMarker>>;
    /// `user`'s read state in each of `groups` they are a member of (others are left out). Cheap
    /// for a page of groups: a group with nothing after the marker costs no count, and a count
    /// stops at [`UNREAD_CAP`] on the `(group, seq)` index.
    async fn read_states(&self, user: UserId, groups: &[GroupId]) -> AppResult<Vec<ReadState>>;
}

/// The audit trail.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Store a batch of audit events. An event whose id is already stored is skipped, so a
    /// batch retried after an unclear failure is harmless. Engines may drop events older than
    /// their retention.
    async fn append_audit(&self, batch: &[AuditEvent]) -> AppResult<()>;
    /// A page of one group's events, oldest first by `(at, id)`. Events with no group (account
    /// events) are never listed here.
    async fn audit_of_group(
        &self,
        group: GroupId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<AuditEvent>>;
}

/// Readiness, schema, retention and the re-encryption job: the operator's concerns.
#[async_trait]
pub trait MaintenanceStore: Send + Sync + 'static {
    /// Cheap round trip for readiness.
    async fn ping(&self) -> AppResult<()>;
    /// Creates what the engine needs beyond its data (indexes, shard keys). Idempotent. Run by
    /// the leader only (`ops::maintenance`).
    async fn prepare_schema(&self) -> AppResult<()>;
    /// Whether [`MaintenanceStore::prepare_schema`] has completed, so a process that does not
    /// lead can wait for it before serving (a missing unique index would let duplicates in).
    async fn schema_ready(&self) -> AppResult<bool>;
    /// Deletes records that no longer matter at `now`: expired refresh tokens and ended
    /// rejoin cooldowns. Nothing a user can observe changes (both already count as absent).
    async fn purge_expired(&self, now: OffsetDateTime) -> AppResult<Purged>;
    /// Up to `limit` messages of every group, ordered by (group id as text, `seq`), strictly
    /// after `after`.
    async fn scan_messages(
        &self,
        after: Option<(GroupId, u64)>,
        limit: u32,
    ) -> AppResult<Vec<StoredMessage>>;
    /// Replaces a message's envelope only if it is still `old` (compare and set), so a
    /// concurrent rewrite is never overwritten. Returns whether it was replaced.
    async fn replace_envelope(
        &self,
        group: GroupId,
        seq: u64,
        old: &[u8],
        new: &[u8],
    ) -> AppResult<bool>;
}

/// A whole engine: every concern. Wiring holds this; services take the part they use.
pub trait Store: AccountStore + GroupStore + MessageStore + AuditStore + MaintenanceStore {}

impl<T: AccountStore + GroupStore + MessageStore + AuditStore + MaintenanceStore> Store for T {}

/// Every store trait, for code that calls several concerns on one engine (tests, tools).
pub mod prelude {
    pub use super::{AccountStore, AuditStore, GroupStore, MaintenanceStore, MessageStore, Store};
}
