//! The audit trail (a TTL index keeps it to its retention).

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};

use super::docs::{self};
use super::tx::db_error;
use super::{MongoStore, only_duplicates};
use crate::domain::{AuditEvent, Cursor, GroupId, Limit};
use crate::error::{AppError, AppResult};
use crate::store::paging::{page, rows_for};
use crate::store::{AuditStore, Page};

#[async_trait]
impl AuditStore for MongoStore {
    async fn append_audit(&self, batch: &[AuditEvent]) -> AppResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let docs = batch.iter().map(docs::audit_doc);
        match self.c.audit.insert_many(docs).ordered(false).await {
            Ok(_) => Ok(()),
            // Already stored by an earlier attempt of this batch: the rest went in.
            Err(e) if only_duplicates(&e) => Ok(()),
            Err(e) => Err(db_error(e)),
        }
    }

    async fn audit_of_group(
        &self,
        group: GroupId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<AuditEvent>> {
        let mut f = doc! { "group_id": group.to_string() };
        if let Some(c) = after {
            let (t, id) = AuditEvent::split_cursor_key(c.key())
                .ok_or_else(|| AppError::field("cursor", "is not a cursor this server issued"))?;
            let t = mongodb::bson::DateTime::from_millis(t);
            f.insert(
                "$or",
                vec![
                    Bson::Document(doc! { "at": { "$gt": t } }),
                    Bson::Document(doc! { "at": t, "_id": { "$gt": id.to_string() } }),
                ],
            );
        }
        let rows: Vec<Document> = self
            .c
            .audit
            .find(f)
            .sort(doc! { "at": 1, "_id": 1 })
            .limit(i64::from(rows_for(limit)))
            .await
            .map_err(db_error)?
            .try_collect()
            .await
            .map_err(db_error)?;
        let rows = rows
            .iter()
            .map(docs::audit_event)
            .collect::<AppResult<Vec<_>>>()?;
        Ok(page(rows, limit, AuditEvent::cursor_key, Some))
    }
}
