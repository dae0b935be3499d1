//! The append transaction: a batch of new messages, deduplicated against what is stored and
//! against itself, each group's `seq`s reserved, inserted in one go.
//!
//! The first attempt does not ask whether the batch's ids are stored already: they almost never
//! are (a message comes back only after a failure), and the unique `_id` says so anyway. A
//! duplicate aborts that attempt (its seqs with it), and the transaction runs again with the
//! look-up. That saves a round trip in every transaction but the rare one after a redelivery.

use std::collections::{HashMap, HashSet};

use mongodb::ClientSession;
use mongodb::bson::doc;
use mongodb::options::ReturnDocument;

use super::tx::{TxError, TxResult, is_duplicate_key};
use super::{Colls, collect, docs};
use crate::domain::{EntryKind, GroupId, MessageId, UserId};
use crate::store::{Appended, EntryAction, NewMessage, StoredMessage};

/// What to do with one message of a batch.
enum Slot {
    /// Stored before this batch.
    Stored(StoredMessage),
    /// Same id or client id as an earlier message of this batch.
    SameAs(usize),
    New,
    /// New, but its sender is not a member of the group (any more).
    NotMember,
    /// A new edit or deletion without a live target.
    TargetGone,
}

/// `look_up`: ask for the batch's ids first. Without it a duplicate id makes this return
/// [`TxError::Again`] with `look_up` set, so the next attempt asks.
pub(super) async fn append_tx(
    c: &Colls,
    s: &mut ClientSession,
    batch: &[NewMessage],
    look_up: &mut bool,
) -> TxResult<Vec<Appended>> {
    // What is stored already, by id (when asked to) and by (group, sender, client id).
    let mut by_id: HashMap<MessageId, StoredMessage> = HashMap::new();
    if *look_up {
        let ids: Vec<String> = batch.iter().map(|m| m.id.to_string()).collect();
        for d in collect(&c.messages, s, doc! { "_id": { "$in": ids } }, None).await? {
            let m = docs::message(&d)?;
            by_id.insert(m.id, m);
        }
    }
    type ClientKey = (GroupId, UserId, String);
    // One query per group (a batch usually holds one): equality on the group keeps it on one
    // shard and on the `(group_id, client_key)` index. Only for messages whose id is not the
    // one derived from their client key: a derived id is the same for every copy of that key,
    // so a stored copy is found by id (the unique `_id` on the first attempt, the look-up on the
    // next; the send path always derives it, so this saves a round trip per group).
    let mut client_keys: Vec<(GroupId, Vec<String>)> = Vec::new();
    for m in batch {
        let Some(cmid) = &m.client_msg_id else {
            continue;
        };
        if m.id == MessageId::for_client_key(m.group_id, m.sender_id, cmid) {
            continue;
        }
        let key = docs::client_key(m.sender_id, cmid);
        match client_keys.iter_mut().find(|(g, _)| *g == m.group_id) {
            Some((_, keys)) => keys.push(key),
            None => client_keys.push((m.group_id, vec![key])),
        }
    }
    let mut by_client: HashMap<ClientKey, StoredMessage> = HashMap::new();
    for (gid, keys) in client_keys {
        let filter = doc! { "group_id": gid.to_string(), "client_key": { "$in": keys } };
        for d in collect(&c.messages, s, filter, None).await? {
            let m = docs::message(&d)?;
            if let Some(cmid) = m.client_msg_id.clone() {
                by_client.insert((m.group_id, m.sender_id, cmid), m);
            }
        }
    }

    // Classify in batch order, counting the new messages of each group.
    let mut slots = Vec::with_capacity(batch.len());
    let mut seen_id: HashMap<MessageId, usize> = HashMap::new();
    let mut seen_client: HashMap<ClientKey, usize> = HashMap::new();
    let mut new_per_group: Vec<(GroupId, i64)> = Vec::new();
    for (i, m) in batch.iter().enumerate() {
        let client_key = m
            .client_msg_id
            .as_ref()
            .map(|c| (m.group_id, m.sender_id, c.clone()));
        let slot = if let Some(x) = by_id.get(&m.id) {
            Slot::Stored(x.clone())
        } else if let Some(&j) = seen_id.get(&m.id) {
            Slot::SameAs(j)
        } else if let Some(x) = client_key.as_ref().and_then(|k| by_client.get(k)) {
            Slot::Stored(x.clone())
        } else if let Some(&j) = client_key.as_ref().and_then(|k| seen_client.get(k)) {
            Slot::SameAs(j)
        } else {
            seen_id.insert(m.id, i);
            if let Some(k) = client_key {
                seen_client.insert(k, i);
            }
            Slot::New
        };
        slots.push(slot);
    }

    // Membership is checked here, in the writing transaction, not only where the send was
    // accepted: a ban committed first refuses the message. (A removal also writes the group
    // document, as the seq reservation below does, so the two cannot pass each other.)
    let members = senders_who_are_members(c, s, batch, &slots).await?;
    // The targets of edits and deletions as they stand, updated in batch order below.
    let mut targets = targets_of(c, s, batch, &slots).await?;
    let mut refused_groups: Vec<GroupId> = Vec::new();
    for (m, slot) in batch.iter().zip(slots.iter_mut()) {
        if !matches!(slot, Slot::New) {
            continue;
        }
        if !members.contains(&(m.group_id, m.sender_id)) {
            *slot = Slot::NotMember;
            if !refused_groups.contains(&m.group_id) {
                refused_groups.push(m.group_id);
            }
            continue;
        }
        match &m.action {
            EntryAction::Text => {
                targets.insert(
                    m.id,
                    Target {
                        group: m.group_id,
                        sender: m.sender_id,
                        live: true,
                    },
                );
            }
            action => {
                let t = action.target().and_then(|t| targets.get_mut(&t));
                let fits = t.as_ref().is_some_and(|t| {
                    t.live
                        && t.group == m.group_id
                        && (!matches!(action, EntryAction::Edit { .. }) || t.sender == m.sender_id)
                });
                if !fits {
                    *slot = Slot::TargetGone;
                    continue;
                }
                if let (Some(t), EntryAction::Delete { .. }) = (t, action) {
                    t.live = false;
                }
            }
        }
        match new_per_group.iter_mut().find(|(g, _)| *g == m.group_id) {
            Some((_, n)) => *n += 1,
            None => new_per_group.push((m.group_id, 1)),
        }
    }
    // A redelivered change finds its target changed by itself (a deletion, its target deleted):
    // only the look-up by id tells that apart from a change that came too late.
    if !*look_up && slots.iter().any(|s| matches!(s, Slot::TargetGone)) {
        *look_up = true;
        return Err(TxError::Again);
    }
    // A deleted group has no members either: tell the two apart.
    let existing = existing_groups(c, s, &refused_groups).await?;

    let mut next_seq = reserve_seqs(c, s, &new_per_group).await?;

    let mut out: Vec<Appended> = Vec::with_capacity(batch.len());
    let mut inserts = Vec::new();
    for (m, slot) in batch.iter().zip(slots) {
        let appended = match slot {
            Slot::Stored(x) => Appended::Duplicate(x),
            Slot::SameAs(j) => match &out[j] {
                Appended::Stored(x) | Appended::Duplicate(x) => Appended::Duplicate(x.clone()),
                gone_or_refused => gone_or_refused.clone(),
            },
            Slot::NotMember if existing.contains(&m.group_id) => Appended::NotMember,
            Slot::NotMember => Appended::GroupGone,
            Slot::TargetGone => Appended::TargetGone,
            Slot::New => match next_seq.get_mut(&m.group_id) {
                Some(Some(seq)) => {
                    let stored = StoredMessage::from_new(m, *seq);
                    *seq += 1;
                    inserts.push(docs::message_doc(&stored));
                    Appended::Stored(stored)
                }
                _ => Appended::GroupGone,
            },
        };
        out.push(appended);
    }
    if !inserts.is_empty() {
        match c.messages.insert_many(inserts).session(&mut *s).await {
            Ok(_) => {}
            Err(e) if !*look_up && is_duplicate_key(&e) => {
                *look_up = true;
                return Err(TxError::Again);
            }
            Err(e) => return Err(e.into()),
        }
    }
    apply_actions(c, s, batch, &out).await?;
    move_senders_markers(c, s, &out).await?;
    Ok(out)
}

/// Sending a message moves its sender's read marker to it: one update per (group, sender) of
/// the batch's stored messages.
async fn move_senders_markers(c: &Colls, s: &mut ClientSession, out: &[Appended]) -> TxResult<()> {
    let mut last: HashMap<(GroupId, UserId), u64> = HashMap::new();
    for r in out {
        if let Appended::Stored(m) = r
            && m.kind == EntryKind::Text
        {
            let e = last.entry((m.group_id, m.sender_id)).or_default();
            *e = (*e).max(m.seq);
        }
    }
    for ((g, u), seq) in last {
        c.memberships
            .update_one(
                doc! { "group_id": g.to_string(), "user_id": u.to_string() },
                doc! { "$max": { "last_read_seq": seq as i64 } },
            )
            .session(&mut *s)
            .await?;
    }
    Ok(())
}

/// What an edit or deletion needs to know of its target.
struct Target {
    group: GroupId,
    sender: UserId,
    /// A `text` entry not deleted.
    live: bool,
}

/// The stored targets of the batch's new edits and deletions (one query per group).
async fn targets_of(
    c: &Colls,
    s: &mut ClientSession,
    batch: &[NewMessage],
    slots: &[Slot],
) -> TxResult<HashMap<MessageId, Target>> {
    let mut wanted: Vec<(GroupId, Vec<String>)> = Vec::new();
    for (m, slot) in batch.iter().zip(slots) {
        let (Slot::New, Some(t)) = (slot, m.action.target()) else {
            continue;
        };
        match wanted.iter_mut().find(|(g, _)| *g == m.group_id) {
            Some((_, ids)) => ids.push(t.to_string()),
            None => wanted.push((m.group_id, vec![t.to_string()])),
        }
    }
    let mut found = HashMap::new();
    for (g, ids) in wanted {
        let filter = doc! { "group_id": g.to_string(), "_id": { "$in": ids } };
        for d in collect(&c.messages, s, filter, None).await? {
            let t = docs::message(&d)?;
            let live = t.is_live_text();
            found.insert(
                t.id,
                Target {
                    group: t.group_id,
                    sender: t.sender_id,
                    live,
                },
            );
        }
    }
    Ok(found)
}

/// Applies the stored edits and deletions to their targets, in batch order (after the insert,
/// so a target stored by this batch is there). A deletion erases the content of its target and
/// of every edit of it.
async fn apply_actions(
    c: &Colls,
    s: &mut ClientSession,
    batch: &[NewMessage],
    out: &[Appended],
) -> TxResult<()> {
    for (m, r) in batch.iter().zip(out) {
        if !matches!(r, Appended::Stored(_)) {
            continue;
        }
        let g = m.group_id.to_string();
        match &m.action {
            EntryAction::Text => {}
            EntryAction::Edit { target, current } => {
                c.messages
                    .update_one(
                        doc! { "group_id": &g, "_id": target.to_string() },
                        doc! { "$set": { "envelope": docs::bin(current), "edited_at": docs::date(m.sent_at) } },
                    )
                    .session(&mut *s)
                    .await?;
            }
            EntryAction::Delete { target } => {
                c.messages
                    .update_one(
                        doc! { "group_id": &g, "_id": target.to_string() },
                        doc! { "$set": { "envelope": docs::bin(&[]), "deleted_at": docs::date(m.sent_at) } },
                    )
                    .session(&mut *s)
                    .await?;
                c.messages
                    .update_many(
                        doc! { "group_id": &g, "target_id": target.to_string(), "kind": "edit" },
                        doc! { "$set": { "envelope": docs::bin(&[]) } },
                    )
                    .session(&mut *s)
                    .await?;
            }
        }
    }
    Ok(())
}

/// The `(group, sender)` pairs of the batch's new messages whose sender is a member: one query
/// for the whole batch, on the unique `(group_id, user_id)` index.
async fn senders_who_are_members(
    c: &Colls,
    s: &mut ClientSession,
    batch: &[NewMessage],
    slots: &[Slot],
) -> TxResult<HashSet<(GroupId, UserId)>> {
    let mut wanted: Vec<(GroupId, Vec<String>)> = Vec::new();
    for (m, slot) in batch.iter().zip(slots) {
        if !matches!(slot, Slot::New) {
            continue;
        }
        let user = m.sender_id.to_string();
        match wanted.iter_mut().find(|(g, _)| *g == m.group_id) {
            Some((_, users)) if users.contains(&user) => {}
            Some((_, users)) => users.push(user),
            None => wanted.push((m.group_id, vec![user])),
        }
    }
    let mut found = HashSet::new();
    if wanted.is_empty() {
        return Ok(found);
    }
    let per_group: Vec<_> = wanted
        .into_iter()
        .map(|(g, users)| doc! { "group_id": g.to_string(), "user_id": { "$in": users } })
        .collect();
    let filter = doc! { "$or": per_group };
    let projection = doc! { "group_id": 1, "user_id": 1, "_id": 0 };
    for d in collect(&c.memberships, s, filter, Some(projection)).await? {
        found.insert((docs::id(&d, "group_id")?, docs::id(&d, "user_id")?));
    }
    Ok(found)
}

/// Which of `groups` exist (usually none are asked: only groups of refused messages).
async fn existing_groups(
    c: &Colls,
    s: &mut ClientSession,
    groups: &[GroupId],
) -> TxResult<HashSet<GroupId>> {
    let mut found = HashSet::new();
    if groups.is_empty() {
        return Ok(found);
    }
    let ids: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let filter = doc! { "_id": { "$in": ids } };
    for d in collect(&c.groups, s, filter, Some(doc! { "_id": 1 })).await? {
        found.insert(docs::id(&d, "_id")?);
    }
    Ok(found)
}

/// Reserves each group's next `counts` seqs in the transaction: the first seq of each group's
/// new messages, or `None` for a group that is gone. One group (a light load's batch): one
/// `findAndModify`. Several: one `$inc` per distinct count and one read of what they made,
/// instead of a round trip per group (a busy process's batch spans many groups, and those round
/// trips were most of its transaction).
async fn reserve_seqs(
    c: &Colls,
    s: &mut ClientSession,
    counts: &[(GroupId, i64)],
) -> TxResult<HashMap<GroupId, Option<u64>>> {
    let first = |last: i64, n: i64| (last - n + 1) as u64;
    let mut out = HashMap::with_capacity(counts.len());
    if let [(gid, n)] = counts {
        let after = c
            .groups
            .find_one_and_update(
                doc! { "_id": gid.to_string() },
                doc! { "$inc": { "last_seq": n } },
            )
            .return_document(ReturnDocument::After)
            .projection(doc! { "last_seq": 1 })
            .session(&mut *s)
            .await?;
        let last = after.map(|d| docs::int(&d, "last_seq")).transpose()?;
        out.insert(*gid, last.map(|l| first(l, *n)));
        return Ok(out);
    }
    let mut by_count: HashMap<i64, Vec<String>> = HashMap::new();
    for (gid, n) in counts {
        by_count.entry(*n).or_default().push(gid.to_string());
    }
    for (n, ids) in by_count {
        c.groups
            .update_many(
                doc! { "_id": { "$in": ids } },
                doc! { "$inc": { "last_seq": n } },
            )
            .session(&mut *s)
            .await?;
    }
    // Read in this transaction: its own increments, which no other writer can interleave with
    // (a concurrent one conflicts and is retried).
    let ids: Vec<String> = counts.iter().map(|(g, _)| g.to_string()).collect();
    let mut last: HashMap<GroupId, i64> = HashMap::with_capacity(counts.len());
    let filter = doc! { "_id": { "$in": ids } };
    for d in collect(&c.groups, s, filter, Some(doc! { "last_seq": 1 })).await? {
        last.insert(docs::id(&d, "_id")?, docs::int(&d, "last_seq")?);
    }
    for (gid, n) in counts {
        out.insert(*gid, last.get(gid).map(|l| first(*l, *n)));
    }
    Ok(out)
}
