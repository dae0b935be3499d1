//! Each group's ordered log of messages.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::cached::CachedSql;
use super::rows::*;
use super::{SqliteStore, db, id, ms};
use crate::domain::{GroupId, MessageId, UserId};
use crate::error::AppResult;
use crate::store::{
    Appended, EntryAction, HistoryQuery, MessageStore, NewMessage, ReadMark, ReadMarker, ReadState,
    StoredMessage, UNREAD_CAP,
};

#[async_trait]
impl MessageStore for SqliteStore {
    async fn message_id_for_client_id(
        &self,
        gid: GroupId,
        sender: UserId,
        cmid: &str,
    ) -> AppResult<Option<MessageId>> {
        let cmid = cmid.to_owned();
        self.read(move |c| {
            c.row(
                "SELECT id FROM messages WHERE group_id = ?1 AND sender_id = ?2 AND client_msg_id = ?3",
                params![gid.to_string(), sender.to_string(), cmid],
                |r| id(r.get(0)?),
            )
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn append_messages(&self, batch: &[NewMessage]) -> AppResult<Vec<Appended>> {
        let batch = batch.to_vec();
        self.write(move |tx| {
            let mut out = Vec::with_capacity(batch.len());
            for m in batch {
                let (g, s, mid) = (m.group_id.to_string(), m.sender_id.to_string(), m.id.to_string());
                if let Some(existing) = find_message(tx, "id = ?1", &[&mid])? {
                    out.push(Appended::Duplicate(existing));
                    continue;
                }
                if let Some(cmid) = &m.client_msg_id
                    && let Some(existing) =
                        find_message(tx, "group_id = ?1 AND sender_id = ?2 AND client_msg_id = ?3", &[&g, &s, cmid])?
                    {
                        out.push(Appended::Duplicate(existing));
                        continue;
                    }
                // Membership is checked here, in the writing transaction, not only where the
                // send was accepted: a ban committed before this point refuses the message.
                let member: bool = tx
                    .row("SELECT EXISTS(SELECT 1 FROM memberships WHERE group_id = ?1 AND user_id = ?2)", [&g, &s], |r| r.get(0))
                    .map_err(db)?;
                if !member {
                    let group_exists: bool = tx
                        .row("SELECT EXISTS(SELECT 1 FROM groups WHERE id = ?1)", [&g], |r| r.get(0))
                        .map_err(db)?;
                    out.push(if group_exists { Appended::NotMember } else { Appended::GroupGone });
                    continue;
                }
                // An edit or deletion needs a live target, and an edit its own sender's; both
                // are applied below in this transaction, so batch order holds.
                if let Some(target) = m.action.target() {
                    let t = find_message(tx, "id = ?1 AND group_id = ?2", &[&target.to_string(), &g])?;
                    let fits = t.is_some_and(|t| {
                        t.is_live_text() && (!matches!(m.action, EntryAction::Edit { .. }) || t.sender_id == m.sender_id)
                    });
                    if !fits {
                        out.push(Appended::TargetGone);
                        continue;
                    }
                }
                let seq: Option<i64> = tx
                    .row("UPDATE groups SET last_seq = last_seq + 1 WHERE id = ?1 RETURNING last_seq", [&g], |r| r.get(0))
                    .optional()
                    .map_err(db)?;
                let Some(seq) = seq else {
                    out.push(Appended::GroupGone);
                    continue;
                };
                let target = m.action.target().map(|t| t.to_string());
                tx.prepare_cached(
                    "INSERT INTO messages (group_id, seq, id, sender_id, envelope, sent_at, client_msg_id, kind, target_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .and_then(|mut st| st.execute(params![g, seq, mid, s, m.envelope, ms(m.sent_at), m.client_msg_id, m.action.kind().as_str(), target]))
                .map_err(db)?;
                let at = ms(m.sent_at);
                match &m.action {
                    EntryAction::Text => {}
                    EntryAction::Edit { current, .. } => {
                        tx.execute("UPDATE messages SET envelope = ?1, edited_at = ?2 WHERE id = ?3", params![current, at, target])
                            .map_err(db)?;
                    }
                    EntryAction::Delete { .. } => {
                        // Erased, not hidden: the message's content and every edit's.
                        tx.execute("UPDATE messages SET envelope = x'', deleted_at = ?1 WHERE id = ?2", params![at, target])
                            .map_err(db)?;
                        tx.execute("UPDATE messages SET envelope = x'' WHERE target_id = ?1 AND kind = 'edit'", params![target])
                            .map_err(db)?;
                    }
                }
                if m.action == EntryAction::Text {
                    // Sending a message moves its sender's read marker to it.
                    tx.prepare_cached("UPDATE memberships SET last_read_seq = ?3 WHERE group_id = ?1 AND user_id = ?2")
                        .and_then(|mut st| st.execute(params![g, s, seq]))
                        .map_err(db)?;
                }
                out.push(Appended::Stored(StoredMessage::from_new(&m, seq as u64)));
            }
            Ok(out)
        })
        .await
    }

    async fn messages(&self, gid: GroupId, q: &HistoryQuery) -> AppResult<Vec<StoredMessage>> {
        let q = *q;
        self.read(move |c| {
            // SQLite integers are i64: a larger position saturates instead of wrapping negative.
            let bound = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
            let after = q.after_seq.map(bound).unwrap_or(0);
            let before = q.before_seq.map(bound).unwrap_or(i64::MAX);
            // Reading forwards only when asked to; otherwise the newest page, so a client opening
            // a chat sees the latest messages and pages back with `before_seq`.
            let forwards = q.after_seq.is_some();
            let order = if forwards { "ASC" } else { "DESC" };
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLS} FROM messages WHERE group_id = ?1 AND seq > ?2 AND seq < ?3 ORDER BY seq {order} LIMIT ?4"
                ))
                .map_err(db)?;
            let mut items = st
                .query_map(params![gid.to_string(), after, before, q.limit], message_row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)?;
            if !forwards {
                items.reverse();
            }
            Ok(items)
        })
        .await
    }

    async fn entry(&self, gid: GroupId, mid: MessageId) -> AppResult<Option<StoredMessage>> {
        self.read(move |c| {
            find_message(
                c,
                "id = ?1 AND group_id = ?2",
                &[&mid.to_string(), &gid.to_string()],
            )
        })
        .await
    }

    async fn mark_read(&self, gid: GroupId, user: UserId, seq: u64) -> AppResult<ReadMark> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        self.write(move |tx| {
            let (g, u) = (gid.to_string(), user.to_string());
            let found: Option<(i64, i64)> = tx
                .row(
                    "SELECT m.last_read_seq, g.last_seq FROM memberships m JOIN groups g ON g.id = m.group_id WHERE m.group_id = ?1 AND m.user_id = ?2",
                    [&g, &u],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(db)?;
            let Some((read, last)) = found else {
                return Ok(ReadMark::NotMember);
            };
            if seq > last {
                return Ok(ReadMark::BeyondLast);
            }
            if seq <= read {
                return Ok(ReadMark::NotForward);
            }
            tx.execute("UPDATE memberships SET last_read_seq = ?3 WHERE group_id = ?1 AND user_id = ?2", params![g, u, seq])
                .map_err(db)?;
            Ok(ReadMark::Moved)
        })
        .await
    }

    async fn read_markers(&self, gid: GroupId) -> AppResult<Vec<ReadMarker>> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached("SELECT user_id, last_read_seq FROM memberships WHERE group_id = ?1 ORDER BY user_id")
                .map_err(db)?;
            st.query_map([gid.to_string()], |r| {
                Ok(ReadMarker { user_id: id(r.get(0)?)?, last_read_seq: r.get::<_, i64>(1)?.max(0) as u64 })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(db)
        })
        .await
    }

    async fn read_states(&self, user: UserId, groups: &[GroupId]) -> AppResult<Vec<ReadState>> {
        let groups = groups.to_vec();
        self.read(move |c| {
            let u = user.to_string();
            let mut out = Vec::with_capacity(groups.len());
            for gid in groups {
                let g = gid.to_string();
                let found: Option<(i64, i64)> = c
                    .row(
                        "SELECT g.last_seq, m.last_read_seq FROM memberships m JOIN groups g ON g.id = m.group_id WHERE m.group_id = ?1 AND m.user_id = ?2",
                        [&g, &u],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(db)?;
                let Some((last, read)) = found else { continue };
                // Nothing after the marker: no count at all (the usual case).
                let unread: i64 = if last > read {
                    c.row(
                        "SELECT COUNT(*) FROM (SELECT 1 FROM messages WHERE group_id = ?1 AND seq > ?2 AND kind = 'text' AND deleted_at IS NULL AND sender_id != ?3 LIMIT ?4)",
                        params![g, read, u, UNREAD_CAP],
                        |r| r.get(0),
                    )
                    .map_err(db)?
                } else {
                    0
                };
                out.push(ReadState {
                    group_id: gid,
                    last_seq: last.max(0) as u64,
                    last_read_seq: read.max(0) as u64,
                    unread_count: unread as u32,
                });
            }
            Ok(out)
        })
        .await
    }
}
