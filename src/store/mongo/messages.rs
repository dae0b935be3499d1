//! Each group's ordered log of messages (the append transaction is `append.rs`).

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};

use super::docs::{self};
use super::tx::{db_error, transaction};
use super::{MongoStore, append, reads};
use crate::domain::{GroupId, MessageId, UserId};
use crate::error::AppResult;
use crate::store::{
    Appended, HistoryQuery, MessageStore, NewMessage, ReadMark, ReadMarker, ReadState,
    StoredMessage,
};

#[async_trait]
impl MessageStore for MongoStore {
    async fn message_id_for_client_id(
        &self,
        group: GroupId,
        sender: UserId,
        client_msg_id: &str,
    ) -> AppResult<Option<MessageId>> {
        let d = self
            .c
            .messages
            .find_one(doc! {
                "group_id": group.to_string(),
                "client_key": docs::client_key(sender, client_msg_id),
            })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(db_error)?;
        d.as_ref().map(|d| docs::id(d, "_id")).transpose()
    }

    async fn append_messages(&self, batch: &[NewMessage]) -> AppResult<Vec<Appended>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut look_up = false;
        transaction!(self, |s| append::append_tx(&self.c, s, batch, &mut look_up))
    }

    async fn messages(
        &self,
        group: GroupId,
        query: &HistoryQuery,
    ) -> AppResult<Vec<StoredMessage>> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        // `seq` is stored as i64: a larger position saturates instead of wrapping negative
        // (after: nothing, before: everything).
        let bound = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
        let mut seq = Document::new();
        if let Some(a) = query.after_seq {
            seq.insert("$gt", bound(a));
        }
        if let Some(b) = query.before_seq {
            seq.insert("$lt", bound(b));
        }
        let mut f = doc! { "group_id": group.to_string() };
        if !seq.is_empty() {
            f.insert("seq", seq);
        }
        // Forwards only when asked to; otherwise the newest page, read backwards (as the
        // standalone engine does), and returned ascending.
        let forwards = query.after_seq.is_some();
        let rows: Vec<Document> = self
            .c
            .messages
            .find(f)
            .sort(doc! { "seq": if forwards { 1 } else { -1 } })
            .limit(i64::from(query.limit))
            .await
            .map_err(db_error)?
            .try_collect()
            .await
            .map_err(db_error)?;
        let mut items = rows
            .iter()
            .map(docs::message)
            .collect::<AppResult<Vec<_>>>()?;
        if !forwards {
            items.reverse();
        }
        Ok(items)
    }

    async fn entry(&self, group: GroupId, id: MessageId) -> AppResult<Option<StoredMessage>> {
        let d = self
            .c
            .messages
            .find_one(doc! { "group_id": group.to_string(), "_id": id.to_string() })
            .await
            .map_err(db_error)?;
        d.as_ref().map(docs::message).transpose()
    }

    async fn mark_read(&self, group: GroupId, user: UserId, seq: u64) -> AppResult<ReadMark> {
        reads::mark_read(&self.c, group, user, seq).await
    }

    async fn read_markers(&self, group: GroupId) -> AppResult<Vec<ReadMarker>> {
        reads::read_markers(&self.c, group).await
    }

    async fn read_states(&self, user: UserId, groups: &[GroupId]) -> AppResult<Vec<ReadState>> {
        reads::read_states(&self.c, user, groups).await
    }
}
