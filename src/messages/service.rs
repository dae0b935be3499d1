use std::sync::Arc;

use crate::audit::Audit;
use crate::config::MessageSettings;
use crate::crypto::Keyring;
use crate::domain::{
    self, AuditEvent, AuditKind, ClientMsgId, Content, GroupId, MessageId, MessageView, Refusal,
    Relation, UserId, Visibility, can_delete_message, can_edit_message, can_read_messages,
    can_send,
};
use crate::error::{AppError, AppResult};
use crate::input::Validator;
use crate::limits::{self, RateLimiter};
use crate::ops::metrics as metric;
use crate::pipeline::{NOT_A_MEMBER, Pipeline};
use crate::store::{
    EntryAction, GroupRecord, GroupStore, HistoryQuery, MessageStore, NewMessage, StoredMessage,
};

use super::SenderCache;

/// A send as a client asks for it, whichever transport carried it.
#[derive(Debug, Clone)]
pub struct SendRequest {
    pub content: String,
    pub client_msg_id: Option<String>,
}

impl SendRequest {
    /// Every bad field at once (422 `validation_failed`).
    pub fn validate(self) -> AppResult<(Content, Option<ClientMsgId>)> {
        let mut v = Validator::default();
        let content = v.check(Content::parse(self.content));
        let cmid = v.check(
            self.client_msg_id
                .as_deref()
                .map(ClientMsgId::parse)
                .transpose(),
        );
        v.finish()?;
        match (content, cmid) {
            (Some(content), Some(cmid)) => Ok((content, cmid)),
            _ => unreachable!("validated above"),
        }
    }
}

#[derive(Clone)]
pub struct MessageService {
    /// Who may send or read (the access check).
    groups: Arc<dyn GroupStore>,
    /// The groups' logs.
    log: Arc<dyn MessageStore>,
    pipeline: Arc<dyn Pipeline>,
    keyring: Keyring,
    limiter: Arc<dyn RateLimiter>,
    settings: MessageSettings,
    senders: SenderCache,
    audit: Audit,
}

/// A bounded label for group sizes, so activity can be read per kind of group without a label
/// per group.
fn group_size_bucket(members: u32) -> &'static str {
    match members {
        0..=10 => "1-10",
        11..=100 => "11-100",
        101..=1000 => "101-1000",
        _ => "1001+",
    }
}

/// Binds an envelope to its message, so one cannot be moved onto another.
pub(super) fn aad(group: &GroupId, id: &MessageId) -> [u8; 32] {
    let mut a = [0u8; 32];
    a[..16].copy_from_slice(group.as_uuid().as_bytes());
    a[16..].copy_from_slice(id.as_uuid().as_bytes());
    a
}

impl MessageService {
    #[expect(
        clippy::too_many_arguments,
        reason = "wiring only: each is a distinct dependency, named at the one call site"
    )]
    pub fn new(
        groups: Arc<dyn GroupStore>,
        log: Arc<dyn MessageStore>,
        pipeline: Arc<dyn Pipeline>,
        keyring: Keyring,
        limiter: Arc<dyn RateLimiter>,
        settings: MessageSettings,
        senders: SenderCache,
        audit: Audit,
    ) -> Self {
        Self {
            groups,
            log,
            pipeline,
            keyring,
            limiter,
            settings,
            senders,
            audit,
        }
    }

    /// Validates a send request (the one parse both transports use) and sends it.
    pub async fn send_request(
        &self,
        sender: UserId,
        group: GroupId,
        request: SendRequest,
    ) -> AppResult<MessageId> {
        let (content, client_msg_id) = request.validate()?;
        self.send(sender, group, content, client_msg_id).await
    }

    pub async fn send(
        &self,
        sender: UserId,
        group: GroupId,
        content: Content,
        client_msg_id: Option<ClientMsgId>,
    ) -> AppResult<MessageId> {
        let member_count = self.may_send(sender, group).await?;
        if let Some(id) = self
            .spend_send(sender, group, client_msg_id.as_ref())
            .await?
        {
            return Ok(id);
        }
        let id = entry_id(group, sender, client_msg_id.as_ref());
        let envelope = self
            .keyring
            .seal(content.as_str().as_bytes(), &aad(&group, &id));
        let msg = NewMessage {
            id,
            group_id: group,
            sender_id: sender,
            envelope,
            sent_at: domain::now(),
            client_msg_id: client_msg_id.map(|c| c.as_str().to_owned()),
            action: EntryAction::Text,
        };
        let id = self.submit(msg).await?;
        metrics::counter!(metric::MESSAGES_BY_GROUP_SIZE, "group_size" => group_size_bucket(member_count))
            .increment(1);
        Ok(id)
    }

    /// Spends one send of the sender's budget and then of the group's
    /// (`CONCLAVE_MESSAGES_PER_USER`, `CONCLAVE_MESSAGES_PER_GROUP`; edits and deletions count
    /// as sends). A retry of a `client_msg_id` is not counted again (its first attempt may still
    /// be in flight); a retry of something stored longer ago than the window still learns its id
    /// (`Some`) when the budget is spent. A store that cannot answer leaves the refusal standing.
    async fn spend_send(
        &self,
        sender: UserId,
        group: GroupId,
        client_msg_id: Option<&ClientMsgId>,
    ) -> AppResult<Option<MessageId>> {
        let budgets = [
            (
                format!("send:{sender}"),
                self.settings.messages_per_user,
                "message_send",
            ),
            (
                format!("send:group:{group}"),
                self.settings.messages_per_group,
                "group_messages",
            ),
        ];
        for (key, limit, name) in budgets {
            let spent = match client_msg_id {
                Some(c) => {
                    let once = format!("{group}:{sender}:{}", c.as_str());
                    limits::spend_once(&*self.limiter, &key, limit, &once, name).await
                }
                None => limits::spend(&*self.limiter, &key, limit, name).await,
            };
            if let Err(refused) = spent {
                if let Some(cmid) = client_msg_id
                    && let Ok(Some(id)) = self
                        .log
                        .message_id_for_client_id(group, sender, cmid.as_str())
                        .await
                {
                    return Ok(Some(id));
                }
                return Err(refused);
            }
        }
        Ok(None)
    }

    /// Hands an entry to the pipeline; a sender who lost membership meanwhile gets the refusal a
    /// fresh request would.
    async fn submit(&self, msg: NewMessage) -> AppResult<MessageId> {
        let (sender, group) = (msg.sender_id, msg.group_id);
        match self.pipeline.submit(msg).await {
            Err(AppError::Forbidden(why)) if why == NOT_A_MEMBER => {
                Err(self.lost_membership(sender, group).await)
            }
            other => other,
        }
    }

    /// Edits a message (its sender only): appends an `edit` entry, which also replaces the
    /// message's content. The new entry's id.
    pub async fn edit(
        &self,
        editor: UserId,
        group: GroupId,
        target: MessageId,
        request: SendRequest,
    ) -> AppResult<MessageId> {
        let (content, client_msg_id) = request.validate()?;
        let (me, target_msg) = self.target(editor, group, target).await?;
        can_edit_message(&me, target_msg.sender_id == editor)
            .map_err(|_| AppError::Forbidden("only its sender may edit a message".into()))?;
        if let Some(id) = self
            .spend_send(editor, group, client_msg_id.as_ref())
            .await?
        {
            return Ok(id);
        }
        let id = entry_id(group, editor, client_msg_id.as_ref());
        let bytes = content.as_str().as_bytes();
        let msg = NewMessage {
            id,
            group_id: group,
            sender_id: editor,
            envelope: self.keyring.seal(bytes, &aad(&group, &id)),
            sent_at: domain::now(),
            client_msg_id: client_msg_id.map(|c| c.as_str().to_owned()),
            action: EntryAction::Edit {
                target,
                current: self.keyring.seal(bytes, &aad(&group, &target)),
            },
        };
        let id = self.submit(msg).await?;
        metrics::counter!(metric::MESSAGE_CHANGES, "kind" => "edit").increment(1);
        Ok(id)
    }

    /// Deletes a message (its sender, or whoever moderates the group): appends a `delete`
    /// entry, and the message's content and its edits' are erased. The new entry's id.
    pub async fn delete(
        &self,
        actor: UserId,
        group: GroupId,
        target: MessageId,
        client: Option<std::net::IpAddr>,
    ) -> AppResult<MessageId> {
        let (me, target_msg) = self.target(actor, group, target).await?;
        let own = target_msg.sender_id == actor;
        can_delete_message(&me, own).map_err(|_| {
            AppError::Forbidden("only its sender or a moderator may delete a message".into())
        })?;
        self.spend_send(actor, group, None).await?;
        let msg = NewMessage {
            id: MessageId::new(),
            group_id: group,
            sender_id: actor,
            envelope: Vec::new(),
            sent_at: domain::now(),
            client_msg_id: None,
            action: EntryAction::Delete { target },
        };
        let id = self.submit(msg).await?;
        metrics::counter!(metric::MESSAGE_CHANGES, "kind" => "delete").increment(1);
        if !own {
            // Moderation is audited; a sender deleting their own message is not.
            tracing::info!(target: "audit", event = "message_deleted", group_id = %group, actor_id = %actor, target_id = %target_msg.sender_id);
            self.audit.record(
                AuditEvent::new(AuditKind::MessageDeleted)
                    .actor(actor)
                    .group(group)
                    .target(Some(target_msg.sender_id))
                    .client(client),
            );
        }
        Ok(id)
    }

    /// The caller's relation and the live `text` entry an edit or deletion targets: a reader
    /// of the group gets 404 for anything else (an unknown id, an edit or delete entry, a
    /// deleted message).
    async fn target(
        &self,
        user: UserId,
        group: GroupId,
        target: MessageId,
    ) -> AppResult<(Relation, StoredMessage)> {
        let (g, me) = self
            .groups
            .access(group, user)
            .await?
            .ok_or(AppError::NotFound)?;
        can_send(g.visibility, &me)?;
        let msg = self
            .log
            .entry(group, target)
            .await?
            .filter(StoredMessage::is_live_text)
            .ok_or(AppError::NotFound)?;
        Ok((me, msg))
    }

    /// Whether `sender` may send to `group` (also for typing indicators); the group's member
    /// count when so.
    pub async fn may_send(&self, sender: UserId, group: GroupId) -> AppResult<u32> {
        if let Some(n) = self.senders.get(group, sender) {
            return Ok(n);
        }
        let ticket = self.senders.ticket();
        let g = self.allowed(group, sender, can_send).await?;
        self.senders.remember(ticket, group, sender, g.member_count);
        Ok(g.member_count)
    }

    /// The answer for a send the store refused because its sender is no longer a member (a ban
    /// or removal committed after the send was accepted, possibly on another process): the same
    /// refusal a fresh send would get (`banned`, or `not_found` for a private group).
    async fn lost_membership(&self, sender: UserId, group: GroupId) -> AppError {
        self.senders.forget(group, sender);
        match self.allowed(group, sender, can_send).await {
            Err(refusal) => refusal,
            // A member again by now: this message still was not stored.
            Ok(_) => AppError::Forbidden(NOT_A_MEMBER.into()),
        }
    }

    /// Whether a `typing` indicator from `user` may be relayed to `group`: within the per-user
    /// typing budget (one relay per user and group every half second is plenty for an indicator),
    /// and only from someone who may send there.
    pub async fn may_type(&self, user: UserId, group: GroupId) -> AppResult<()> {
        self.limiter
            .hit(
                &format!("typing:{user}:{group}"),
                self.settings.typing_per_user,
            )
            .await
            .map_err(|retry_after| AppError::RateLimited { retry_after })?;
        self.may_send(user, group).await?;
        Ok(())
    }

    pub async fn history(
        &self,
        reader: UserId,
        group: GroupId,
        q: HistoryQuery,
    ) -> AppResult<Vec<MessageView>> {
        // Each page is a store read and a decryption per message: bounded per user, REST and
        // socket sync together.
        limits::spend(
            &*self.limiter,
            &format!("history:{reader}"),
            self.settings.history_per_user,
            "history",
        )
        .await?;
        self.allowed(group, reader, can_read_messages).await?;
        let stored = self.log.messages(group, &q).await?;
        stored.iter().map(|m| self.view(m)).collect()
    }

    /// The group, if `rule` lets `user` act on it (read from the store's hot-path access check);
    /// a group that does not exist is `NotFound`.
    async fn allowed(
        &self,
        group: GroupId,
        user: UserId,
        rule: fn(Visibility, &Relation) -> Result<(), Refusal>,
    ) -> AppResult<GroupRecord> {
        let (g, me) = self
            .groups
            .access(group, user)
            .await?
            .ok_or(AppError::NotFound)?;
        rule(g.visibility, &me)?;
        Ok(g)
    }

    pub fn view(&self, m: &StoredMessage) -> AppResult<MessageView> {
        decrypt(&self.keyring, m)
    }
}

/// A new entry's id: derived from the client's idempotency key when there is one.
fn entry_id(group: GroupId, sender: UserId, client_msg_id: Option<&ClientMsgId>) -> MessageId {
    match client_msg_id {
        Some(c) => MessageId::for_client_key(group, sender, c.as_str()),
        None => MessageId::new(),
    }
}

/// Decrypts a stored entry for clients (an empty envelope is no content: a deletion, or
/// content erased by one). A failure means tampering or a missing key.
pub fn decrypt(keyring: &Keyring, m: &StoredMessage) -> AppResult<MessageView> {
    let content = if m.envelope.is_empty() {
        None
    } else {
        Some(open(keyring, m)?)
    };
    Ok(MessageView {
        id: m.id,
        group_id: m.group_id,
        seq: m.seq,
        kind: m.kind,
        target_id: m.target_id,
        sender_id: m.sender_id,
        content,
        sent_at: m.sent_at,
        client_msg_id: m.client_msg_id.clone(),
        edited_at: m.edited_at,
        deleted_at: m.deleted_at,
    })
}

fn open(keyring: &Keyring, m: &StoredMessage) -> AppResult<String> {
    let plain = keyring
        .open(&m.envelope, &aad(&m.group_id, &m.id))
        .map_err(|e| {
            AppError::Internal(anyhow::anyhow!("message {} cannot be decrypted: {e}", m.id))
        })?;
    String::from_utf8(plain)
        .map_err(|_| AppError::Internal(anyhow::anyhow!("message {} is not UTF-8", m.id)))
}

#[cfg(test)]
mod tests {
    use super::group_size_bucket;

    #[test]
    fn group_sizes_fall_in_four_buckets_at_the_edges() {
        let got: Vec<_> = [1, 10, 11, 100, 101, 1000, 1001, u32::MAX]
            .into_iter()
            .map(group_size_bucket)
            .collect();
        assert_eq!(
            got,
            [
                "1-10", "1-10", "11-100", "11-100", "101-1000", "101-1000", "1001+", "1001+"
            ]
        );
    }
}
