//! Rows to records, and the column lists the queries select.

use rusqlite::{Connection, OptionalExtension, Row};

use super::cached::CachedSql;
use super::{db, id};
use crate::domain::{AuditEvent, AuditKind, EntryKind, Role, Username, Visibility, from_millis};
use crate::error::AppResult;
use crate::store::{GroupRecord, StoredMessage, UserRecord};

pub(super) fn user_row(r: &Row<'_>) -> rusqlite::Result<UserRecord> {
    let name: String = r.get(1)?;
    Ok(UserRecord {
        id: id(r.get(0)?)?,
        username: Username::parse(&name).map_err(|_| {
            rusqlite::Error::InvalidColumnType(1, "username".into(), rusqlite::types::Type::Text)
        })?,
        password_hash: r.get(2)?,
        created_at: from_millis(r.get(3)?),
    })
}

pub(super) const GROUP_COLS: &str = "g.id, g.name, g.description, g.visibility, g.owner_id, g.member_count, g.max_members, g.created_at";

pub(super) fn group_row(r: &Row<'_>) -> rusqlite::Result<GroupRecord> {
    let vis: String = r.get(3)?;
    Ok(GroupRecord {
        id: id(r.get(0)?)?,
        name: r.get(1)?,
        description: r.get(2)?,
        visibility: if vis == "private" {
            Visibility::Private
        } else {
            Visibility::Open
        },
        owner_id: id(r.get(4)?)?,
        member_count: r.get(5)?,
        max_members: r.get(6)?,
        created_at: from_millis(r.get(7)?),
    })
}

pub(super) fn role(s: String) -> Role {
    Role::parse(&s).unwrap_or(Role::Member)
}

pub(super) fn message_row(r: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        group_id: id(r.get(0)?)?,
        seq: r.get::<_, i64>(1)? as u64,
        id: id(r.get(2)?)?,
        sender_id: id(r.get(3)?)?,
        envelope: r.get(4)?,
        sent_at: from_millis(r.get(5)?),
        client_msg_id: r.get(6)?,
        kind: EntryKind::parse(&r.get::<_, String>(7)?).ok_or_else(|| {
            rusqlite::Error::InvalidColumnType(7, "kind".into(), rusqlite::types::Type::Text)
        })?,
        target_id: r.get::<_, Option<String>>(8)?.map(id).transpose()?,
        edited_at: r.get::<_, Option<i64>>(9)?.map(from_millis),
        deleted_at: r.get::<_, Option<i64>>(10)?.map(from_millis),
    })
}

pub(super) const MESSAGE_COLS: &str = "group_id, seq, id, sender_id, envelope, sent_at, client_msg_id, kind, target_id, edited_at, deleted_at";

pub(super) fn audit_row(r: &Row<'_>) -> rusqlite::Result<AuditEvent> {
    let opt_id = |i: usize| -> rusqlite::Result<Option<String>> { r.get(i) };
    let kind: String = r.get(1)?;
    let client: Option<String> = r.get(5)?;
    Ok(AuditEvent {
        id: id(r.get(0)?)?,
        kind: AuditKind::parse(&kind).ok_or_else(|| {
            rusqlite::Error::InvalidColumnType(1, "kind".into(), rusqlite::types::Type::Text)
        })?,
        actor: opt_id(2)?.map(id).transpose()?,
        group: opt_id(3)?.map(id).transpose()?,
        target: opt_id(4)?.map(id).transpose()?,
        client: client.and_then(|c| c.parse().ok()),
        at: from_millis(r.get(6)?),
    })
}

pub(super) fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

pub(super) fn find_message(
    c: &Connection,
    where_: &str,
    args: &[&dyn rusqlite::ToSql],
) -> AppResult<Option<StoredMessage>> {
    c.row(
        &format!("SELECT {MESSAGE_COLS} FROM messages WHERE {where_}"),
        args,
        message_row,
    )
    .optional()
    .map_err(db)
}
