//! Readiness, schema, retention and the re-encryption scan.

use async_trait::async_trait;
use rusqlite::params;
use time::OffsetDateTime;

use super::cached::CachedSql;
use super::rows::*;
use super::{SqliteStore, db, ms};
use crate::domain::GroupId;
use crate::error::AppResult;
use crate::store::{MaintenanceStore, Purged, StoredMessage};

#[async_trait]
impl MaintenanceStore for SqliteStore {
    async fn ping(&self) -> AppResult<()> {
        self.read(|c| c.row("SELECT 1", [], |_| Ok(())).map_err(db))
            .await
    }

    async fn prepare_schema(&self) -> AppResult<()> {
        // The migrations ran when the file was opened.
        Ok(())
    }

    async fn schema_ready(&self) -> AppResult<bool> {
        Ok(true)
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> AppResult<Purged> {
        let now = ms(now);
        self.write(move |tx| {
            let refresh_tokens = tx
                .exec("DELETE FROM refresh_tokens WHERE expires_at <= ?1", [now])
                .map_err(db)? as u64;
            let cooldowns = tx
                .exec("DELETE FROM cooldowns WHERE until <= ?1", [now])
                .map_err(db)? as u64;
            Ok(Purged {
                refresh_tokens,
                cooldowns,
            })
        })
        .await
    }

    async fn scan_messages(
        &self,
        after: Option<(GroupId, u64)>,
        limit: u32,
    ) -> AppResult<Vec<StoredMessage>> {
        self.read(move |c| {
            let (group, seq) = after
                .map(|(g, s)| (g.to_string(), i64::try_from(s).unwrap_or(i64::MAX)))
                .unwrap_or_default();
            // The primary key (group_id, seq) serves this order, page after page.
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLS} FROM messages WHERE (group_id, seq) > (?1, ?2) ORDER BY group_id, seq LIMIT ?3"
                ))
                .map_err(db)?;
            st.query_map(params![group, seq, limit], message_row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)
        })
        .await
    }

    async fn replace_envelope(
        &self,
        group: GroupId,
        seq: u64,
        old: &[u8],
        new: &[u8],
    ) -> AppResult<bool> {
        let (old, new) = (old.to_vec(), new.to_vec());
        self.write(move |tx| {
            let n = tx
                .exec(
                    "UPDATE messages SET envelope = ?4 WHERE group_id = ?1 AND seq = ?2 AND envelope = ?3",
                    params![group.to_string(), i64::try_from(seq).unwrap_or(i64::MAX), old, new],
                )
                .map_err(db)?;
            Ok(n == 1)
        })
        .await
    }
}
