//! Readiness, schema, retention and the re-encryption scan.

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use time::OffsetDateTime;

use super::MongoStore;
use super::docs::{self, date};
use super::tx::db_error;
use crate::domain::GroupId;
use crate::error::{AppError, AppResult};
use crate::store::{MaintenanceStore, Purged, StoredMessage};

#[async_trait]
impl MaintenanceStore for MongoStore {
    async fn ping(&self) -> AppResult<()> {
        self.db
            .run_command(doc! { "ping": 1 })
            .await
            .map(|_| ())
            .map_err(db_error)
    }

    async fn prepare_schema(&self) -> AppResult<()> {
        self.ensure_indexes().await.map_err(AppError::Internal)?;
        let n = super::reads::backfill_markers(&self.c).await?;
        if n > 0 {
            tracing::info!(
                memberships = n,
                "read markers set on memberships written by v1"
            );
        }
        Ok(())
    }

    async fn schema_ready(&self) -> AppResult<bool> {
        self.indexes_present().await.map_err(AppError::Internal)
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> AppResult<Purged> {
        // The TTL index removes expired refresh tokens too, within a minute or so; this makes
        // the sweep explicit and covers the cooldowns, which have no TTL index (a rejoin reads
        // them through the membership transaction).
        let refresh_tokens = self
            .c
            .refresh_tokens
            .delete_many(doc! { "expires_at": { "$lte": date(now) } })
            .await
            .map_err(db_error)?
            .deleted_count;
        let cooldowns = self
            .c
            .cooldowns
            .delete_many(doc! { "until": { "$lte": date(now) } })
            .await
            .map_err(db_error)?
            .deleted_count;
        Ok(Purged {
            refresh_tokens,
            cooldowns,
        })
    }

    async fn scan_messages(
        &self,
        after: Option<(GroupId, u64)>,
        limit: u32,
    ) -> AppResult<Vec<StoredMessage>> {
        let filter = match after {
            None => doc! {},
            Some((g, seq)) => {
                let (g, seq) = (g.to_string(), i64::try_from(seq).unwrap_or(i64::MAX));
                doc! { "$or": [
                    { "group_id": { "$gt": &g } },
                    { "group_id": &g, "seq": { "$gt": seq } },
                ] }
            }
        };
        // The (group_id, seq) index serves this order; on a sharded cluster it is a merge of
        // the shards' ordered streams.
        let rows: Vec<Document> = self
            .c
            .messages
            .find(filter)
            .sort(doc! { "group_id": 1, "seq": 1 })
            .limit(i64::from(limit))
            .await
            .map_err(db_error)?
            .try_collect()
            .await
            .map_err(db_error)?;
        rows.iter().map(docs::message).collect()
    }

    async fn replace_envelope(
        &self,
        group: GroupId,
        seq: u64,
        old: &[u8],
        new: &[u8],
    ) -> AppResult<bool> {
        let r = self
            .c
            .messages
            .update_one(
                doc! {
                    "group_id": group.to_string(),
                    "seq": i64::try_from(seq).unwrap_or(i64::MAX),
                    "envelope": docs::bin(old),
                },
                doc! { "$set": { "envelope": docs::bin(new) } },
            )
            .await
            .map_err(db_error)?;
        Ok(r.modified_count == 1)
    }
}
