//! The audit trail, pruned to its retention as it is written.

use async_trait::async_trait;
use rusqlite::params;

use super::cached::CachedSql;
use super::rows::*;
use super::{SqliteStore, db, ms};
use crate::domain::{AuditEvent, Cursor, GroupId, Limit, now as domain_now};
use crate::error::{AppError, AppResult};
use crate::store::paging::{page, rows_for};
use crate::store::{AuditStore, Page};

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, batch: &[AuditEvent]) -> AppResult<()> {
        let batch = batch.to_vec();
        let cutoff = ms(domain_now() - self.audit_retention);
        self.write(move |tx| {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO audit_events (id, kind, actor_id, group_id, target_id, client_addr, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(db)?;
            for e in &batch {
                st.execute(params![
                    e.id.to_string(),
                    e.kind.as_str(),
                    e.actor.map(|u| u.to_string()),
                    e.group.map(|g| g.to_string()),
                    e.target.map(|u| u.to_string()),
                    e.client.map(|c| c.to_string()),
                    ms(e.at),
                ])
                .map_err(db)?;
            }
            // Retention: the index on `at` makes this a short range scan of expired rows.
            tx.exec("DELETE FROM audit_events WHERE at < ?1", [cutoff])
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn audit_of_group(
        &self,
        gid: GroupId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<AuditEvent>> {
        let (t, after_id) = match after {
            Some(c) => {
                let (t, i) = AuditEvent::split_cursor_key(c.key()).ok_or_else(|| {
                    AppError::field("cursor", "is not a cursor this server issued")
                })?;
                (t, i.to_string())
            }
            None => (i64::MIN, String::new()),
        };
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT id, kind, actor_id, group_id, target_id, client_addr, at FROM audit_events
                     WHERE group_id = ?1 AND (at, id) > (?2, ?3) ORDER BY at, id LIMIT ?4",
                )
                .map_err(db)?;
            let items = st
                .query_map(params![gid.to_string(), t, after_id, rows_for(limit)], audit_row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)?;
            Ok(page(items, limit, AuditEvent::cursor_key, Some))
        })
        .await
    }
}
