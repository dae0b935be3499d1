//! Read markers: a `last_read_seq` field on each membership document. Unread counts are counted
//! on the `(group_id, seq)` index from the marker, and only for groups with something after it.

use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{Document, doc};

use super::Colls;
use super::docs;
use super::tx::db_error;
use crate::domain::{GroupId, UserId};
use crate::error::AppResult;
use crate::store::{ReadMark, ReadMarker, ReadState, UNREAD_CAP};

/// Counts run a few at a time: a page of `/groups/mine` is up to 100 groups.
const CONCURRENT_COUNTS: usize = 8;

/// A membership's marker. Documents written before read markers existed have none until the
/// leader's schema step sets it ([`backfill_markers`]); until then they count as read to the
/// start.
fn marker(d: &Document) -> AppResult<u64> {
    Ok(match d.get("last_read_seq") {
        None => 0,
        Some(_) => docs::int(d, "last_read_seq")?.max(0) as u64,
    })
}

async fn last_seqs(c: &Colls, groups: &[GroupId]) -> AppResult<HashMap<GroupId, u64>> {
    let ids: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let rows: Vec<Document> = c
        .groups
        .find(doc! { "_id": { "$in": ids } })
        .projection(doc! { "last_seq": 1 })
        .await
        .map_err(db_error)?
        .try_collect()
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(|d| Ok((docs::id(d, "_id")?, docs::int(d, "last_seq")?.max(0) as u64)))
        .collect()
}

pub(super) async fn mark_read(
    c: &Colls,
    group: GroupId,
    user: UserId,
    seq: u64,
) -> AppResult<ReadMark> {
    // `last_seq` only grows: checked first, outside any transaction, it stays true.
    let Some(&last) = last_seqs(c, &[group]).await?.get(&group) else {
        return Ok(ReadMark::NotMember);
    };
    let key = doc! { "group_id": group.to_string(), "user_id": user.to_string() };
    if seq > last {
        let member = c.memberships.find_one(key).await.map_err(db_error)?;
        return Ok(if member.is_some() {
            ReadMark::BeyondLast
        } else {
            ReadMark::NotMember
        });
    }
    let seq = seq as i64;
    let mut filter = key.clone();
    filter.insert(
        "$or",
        vec![
            doc! { "last_read_seq": { "$lt": seq } },
            doc! { "last_read_seq": { "$exists": false } },
        ],
    );
    let moved = c
        .memberships
        .update_one(filter, doc! { "$set": { "last_read_seq": seq } })
        .await
        .map_err(db_error)?
        .matched_count
        > 0;
    if moved {
        return Ok(ReadMark::Moved);
    }
    let member = c.memberships.find_one(key).await.map_err(db_error)?;
    Ok(if member.is_some() {
        ReadMark::NotForward
    } else {
        ReadMark::NotMember
    })
}

pub(super) async fn read_markers(c: &Colls, group: GroupId) -> AppResult<Vec<ReadMarker>> {
    let rows: Vec<Document> = c
        .memberships
        .find(doc! { "group_id": group.to_string() })
        .projection(doc! { "user_id": 1, "last_read_seq": 1, "_id": 0 })
        .sort(doc! { "user_id": 1 })
        .await
        .map_err(db_error)?
        .try_collect()
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(|d| {
            Ok(ReadMarker {
                user_id: docs::id(d, "user_id")?,
                last_read_seq: marker(d)?,
            })
        })
        .collect()
}

pub(super) async fn read_states(
    c: &Colls,
    user: UserId,
    groups: &[GroupId],
) -> AppResult<Vec<ReadState>> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let rows: Vec<Document> = c
        .memberships
        .find(doc! { "user_id": user.to_string(), "group_id": { "$in": ids } })
        .projection(doc! { "group_id": 1, "last_read_seq": 1, "_id": 0 })
        .await
        .map_err(db_error)?
        .try_collect()
        .await
        .map_err(db_error)?;
    let mut read: HashMap<GroupId, u64> = HashMap::with_capacity(rows.len());
    for d in &rows {
        read.insert(docs::id(d, "group_id")?, marker(d)?);
    }
    let last = last_seqs(c, groups).await?;
    let states: Vec<(GroupId, u64, u64)> = groups
        .iter()
        .filter_map(|g| Some((*g, *last.get(g)?, *read.get(g)?)))
        .collect();
    let me = user.to_string();
    futures::stream::iter(states)
        .map(|(g, last, read)| {
            let me = me.clone();
            async move {
                // Nothing after the marker: no count at all (the usual case).
                let unread = if last > read {
                    // `text` entries are the documents without `kind`.
                    let filter = doc! {
                        "group_id": g.to_string(),
                        "seq": { "$gt": read as i64 },
                        "kind": { "$exists": false },
                        "deleted_at": { "$exists": false },
                        "sender_id": { "$ne": me },
                    };
                    c.messages
                        .count_documents(filter)
                        .limit(u64::from(UNREAD_CAP))
                        .await
                        .map_err(db_error)?
                } else {
                    0
                };
                Ok(ReadState {
                    group_id: g,
                    last_seq: last,
                    last_read_seq: read,
                    unread_count: unread.min(u64::from(UNREAD_CAP)) as u32,
                })
            }
        })
        .buffered(CONCURRENT_COUNTS)
        .try_collect()
        .await
}

/// Gives memberships written before read markers existed the marker of a member who has read
/// everything so far (nothing turns unread on the upgrade). Idempotent; the leader runs it with
/// the indexes. One pass over the memberships without a marker, one update per group.
pub(super) async fn backfill_markers(c: &Colls) -> AppResult<u64> {
    let rows: Vec<Document> = c
        .memberships
        .find(doc! { "last_read_seq": { "$exists": false } })
        .projection(doc! { "group_id": 1, "_id": 0 })
        .await
        .map_err(db_error)?
        .try_collect()
        .await
        .map_err(db_error)?;
    let mut groups: Vec<GroupId> = Vec::new();
    for d in &rows {
        let g = docs::id(d, "group_id")?;
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let mut updated = 0;
    for chunk in groups.chunks(500) {
        for (g, last) in last_seqs(c, chunk).await? {
            updated += c
                .memberships
                .update_many(
                    doc! { "group_id": g.to_string(), "last_read_seq": { "$exists": false } },
                    doc! { "$set": { "last_read_seq": last as i64 } },
                )
                .await
                .map_err(db_error)?
                .modified_count;
        }
    }
    Ok(updated)
}
