//! Records to BSON documents and back. Ids are UUID text, times BSON dates (millisecond
//! precision, the precision every store keeps; the TTL index needs dates), counters `i64`,
//! envelopes BSON binary.

use std::str::FromStr;

use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, DateTime, Document, doc};
use time::OffsetDateTime;

use super::super::{GroupRecord, StoredMessage, UserRecord};
use crate::domain::{AuditEvent, AuditKind, EntryKind};
use crate::domain::{Role, UserId, Username, Visibility, from_millis, to_millis};
use crate::error::AppError;

pub(super) fn date(t: OffsetDateTime) -> DateTime {
    DateTime::from_millis(to_millis(t))
}

pub(super) fn bin(bytes: &[u8]) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    })
}

fn corrupt(field: &str, d: &Document) -> AppError {
    AppError::Internal(anyhow::anyhow!(
        "mongodb: document {:?} has a missing or malformed `{field}`",
        d.get("_id")
    ))
}

pub(super) fn text<'a>(d: &'a Document, k: &str) -> Result<&'a str, AppError> {
    d.get_str(k).map_err(|_| corrupt(k, d))
}

pub(super) fn id<T: FromStr>(d: &Document, k: &str) -> Result<T, AppError> {
    text(d, k)?.parse().map_err(|_| corrupt(k, d))
}

pub(super) fn time(d: &Document, k: &str) -> Result<OffsetDateTime, AppError> {
    d.get_datetime(k)
        .map(|t| from_millis(t.timestamp_millis()))
        .map_err(|_| corrupt(k, d))
}

pub(super) fn int(d: &Document, k: &str) -> Result<i64, AppError> {
    match d.get(k) {
        Some(Bson::Int64(v)) => Ok(*v),
        Some(Bson::Int32(v)) => Ok(i64::from(*v)),
        Some(Bson::Double(v)) if v.fract() == 0.0 => Ok(*v as i64),
        _ => Err(corrupt(k, d)),
    }
}

pub(super) fn user_doc(u: &UserRecord) -> Document {
    doc! {
        "_id": u.id.to_string(),
        "username": u.username.as_str(),
        "username_canon": u.username.canonical(),
        "password_hash": &u.password_hash,
        "created_at": date(u.created_at),
    }
}

pub(super) fn user(d: &Document) -> Result<UserRecord, AppError> {
    Ok(UserRecord {
        id: id(d, "_id")?,
        username: Username::parse(text(d, "username")?).map_err(|_| corrupt("username", d))?,
        password_hash: text(d, "password_hash")?.to_owned(),
        created_at: time(d, "created_at")?,
    })
}

pub(super) fn group_doc(g: &GroupRecord) -> Document {
    doc! {
        "_id": g.id.to_string(),
        "name": &g.name,
        "name_lower": g.name.to_lowercase(),
        "description": &g.description,
        "visibility": g.visibility.as_str(),
        "owner_id": g.owner_id.to_string(),
        "member_count": 1i64,
        "max_members": i64::from(g.max_members),
        "created_at": date(g.created_at),
        "last_seq": 0i64,
        // Bumped by every membership transaction, so two of them on one group always conflict
        // (see the module docs on write skew).
        "rev": 0i64,
    }
}

pub(super) fn group(d: &Document) -> Result<GroupRecord, AppError> {
    Ok(GroupRecord {
        id: id(d, "_id")?,
        name: text(d, "name")?.to_owned(),
        description: text(d, "description")?.to_owned(),
        visibility: Visibility::parse(text(d, "visibility")?)
            .map_err(|_| corrupt("visibility", d))?,
        owner_id: id(d, "owner_id")?,
        member_count: int(d, "member_count")?.clamp(0, u32::MAX as i64) as u32,
        max_members: int(d, "max_members")?.clamp(0, u32::MAX as i64) as u32,
        created_at: time(d, "created_at")?,
    })
}

pub(super) fn role(d: &Document) -> Result<Role, AppError> {
    Role::parse(text(d, "role")?).ok_or_else(|| corrupt("role", d))
}

pub(super) fn message(d: &Document) -> Result<StoredMessage, AppError> {
    Ok(StoredMessage {
        id: id(d, "_id")?,
        group_id: id(d, "group_id")?,
        seq: int(d, "seq")?.max(0) as u64,
        sender_id: id(d, "sender_id")?,
        envelope: d
            .get_binary_generic("envelope")
            .map_err(|_| corrupt("envelope", d))?
            .clone(),
        sent_at: time(d, "sent_at")?,
        client_msg_id: match d.get("client_msg_id") {
            None | Some(Bson::Null) => None,
            Some(Bson::String(s)) => Some(s.clone()),
            Some(_) => return Err(corrupt("client_msg_id", d)),
        },
        // v1 documents have none of these: a message, never edited nor deleted.
        kind: match d.get("kind") {
            None => EntryKind::Text,
            Some(Bson::String(k)) => EntryKind::parse(k).ok_or_else(|| corrupt("kind", d))?,
            Some(_) => return Err(corrupt("kind", d)),
        },
        target_id: match d.get("target_id") {
            None | Some(Bson::Null) => None,
            Some(_) => Some(id(d, "target_id")?),
        },
        edited_at: optional_time(d, "edited_at")?,
        deleted_at: optional_time(d, "deleted_at")?,
    })
}

fn optional_time(d: &Document, k: &str) -> Result<Option<OffsetDateTime>, AppError> {
    match d.get(k) {
        None | Some(Bson::Null) => Ok(None),
        Some(_) => time(d, k).map(Some),
    }
}

pub(super) fn message_doc(m: &StoredMessage) -> Document {
    let mut d = doc! {
        "_id": m.id.to_string(),
        "group_id": m.group_id.to_string(),
        "seq": m.seq as i64,
        "sender_id": m.sender_id.to_string(),
        "envelope": bin(&m.envelope),
        "sent_at": date(m.sent_at),
    };
    if let Some(c) = &m.client_msg_id {
        d.insert("client_msg_id", c.as_str());
        d.insert("client_key", client_key(m.sender_id, c));
    }
    // Absent for `text`, as in v1 documents.
    if m.kind != EntryKind::Text {
        d.insert("kind", m.kind.as_str());
    }
    if let Some(t) = m.target_id {
        d.insert("target_id", t.to_string());
    }
    d
}

/// A sender's `client_msg_id` as one field, `<sender>:<client id>` (the sender id is a
/// fixed-width UUID, so the key is unambiguous). Deduplication looks messages up by
/// `(group_id, client_key)`: two equality fields of one plain index, which every server plans
/// as an index scan; SecantusDB, the test server, scanned the whole collection for the former
/// three-field partial index and for an `$or` of such filters.
pub(super) fn client_key(sender: UserId, client_msg_id: &str) -> String {
    format!("{sender}:{client_msg_id}")
}

/// Escapes a user's search text for a `$regex` substring match.
pub(super) fn escape_regex(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if c.is_ascii_punctuation() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(super) fn audit_doc(e: &AuditEvent) -> Document {
    let mut d = doc! {
        "_id": e.id.to_string(),
        "kind": e.kind.as_str(),
        "at": date(e.at),
    };
    // Absent rather than null, so the partial `group_id` index skips account events.
    let opt = [
        ("actor_id", e.actor.map(|u| u.to_string())),
        ("group_id", e.group.map(|g| g.to_string())),
        ("target_id", e.target.map(|u| u.to_string())),
        ("client_addr", e.client.map(|c| c.to_string())),
    ];
    for (k, v) in opt {
        if let Some(v) = v {
            d.insert(k, v);
        }
    }
    d
}

fn opt_id<T: FromStr>(d: &Document, k: &str) -> Result<Option<T>, AppError> {
    d.get_str(k).ok().map(|_| id(d, k)).transpose()
}

pub(super) fn audit_event(d: &Document) -> Result<AuditEvent, AppError> {
    Ok(AuditEvent {
        id: id(d, "_id")?,
        kind: AuditKind::parse(text(d, "kind")?).ok_or_else(|| corrupt("kind", d))?,
        actor: opt_id(d, "actor_id")?,
        group: opt_id(d, "group_id")?,
        target: opt_id(d, "target_id")?,
        client: d.get_str("client_addr").ok().and_then(|c| c.parse().ok()),
        at: time(d, "at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_escaping() {
        assert_eq!(escape_regex("a.b*(c)"), r"a\.b\*\(c\)");
        assert_eq!(escape_regex("é_1"), r"é\_1");
    }
}
