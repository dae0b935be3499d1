//! The standalone engine: SQLite in one file under the data directory (WAL, `synchronous=FULL`,
//! so a commit survives a crash of the process or the machine). One writer connection, taken
//! under a mutex, serialises every change: with a single process that is all the atomicity the
//! membership rules need, and SQLite commits in microseconds. Reads use their own connections
//! so they never wait behind a write.

mod accounts;
mod audit;
mod cached;
mod groups;
mod maintenance;
mod messages;
mod rows;
mod schema;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use parking_lot::Mutex;
use rusqlite::{Connection, Transaction};
use time::OffsetDateTime;

use crate::domain::to_millis;
use crate::error::{AppError, AppResult};

const READERS: usize = 4;

pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
    pub(super) audit_retention: std::time::Duration,
}

impl SqliteStore {
    /// Opens (creating if needed) `conclave.db` in `dir` and brings its schema up to date.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data directory {}", dir.display()))?;
        // Password and token hashes live here: readable by this user only.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict permissions of {}", dir.display()))?;
        let path = dir.join("conclave.db");
        let mut writer =
            Connection::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        configure(&writer)?;
        migrate(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| {
                let c = Connection::open(&path)?;
                configure(&c)?;
                Ok(Mutex::new(c))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(readers),
            next_reader: AtomicUsize::new(0),
            audit_retention: std::time::Duration::from_secs(90 * 86_400),
        })
    }

    /// Audit events older than this are deleted as new ones are written (default 90 days).
    pub fn with_audit_retention(mut self, d: std::time::Duration) -> Self {
        self.audit_retention = d;
        self
    }

    pub(super) async fn write<T, F>(&self, f: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Transaction<'_>) -> AppResult<T> + Send + 'static,
    {
        let writer = self.writer.clone();
        blocking(move || {
            let mut conn = writer.lock();
            let mut tx = conn.transaction().map_err(db)?;
            let out = f(&mut tx)?;
            tx.commit().map_err(db)?;
            Ok(out)
        })
        .await
    }

    pub(super) async fn read<T, F>(&self, f: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> AppResult<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % readers.len();
        blocking(move || f(&readers[i].lock())).await
    }
}

fn configure(c: &Connection) -> anyhow::Result<()> {
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    c.set_prepared_statement_cache_capacity(cached::CAPACITY);
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn migrate(c: &mut Connection) -> anyhow::Result<()> {
    let version = c.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
    anyhow::ensure!(
        version <= schema::MIGRATIONS.len(),
        "the database was written by a newer Conclave (schema {version}); refusing to downgrade it"
    );
    for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version) {
        let tx = c.transaction()?;
        tx.execute_batch(sql)
            .with_context(|| format!("schema migration {}", i + 1))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> AppResult<T> + Send + 'static,
) -> AppResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("storage task failed: {e}")))?
}

pub(super) fn db(e: rusqlite::Error) -> AppError {
    AppError::Internal(anyhow::Error::new(e).context("sqlite"))
}

pub(super) fn id<T: std::str::FromStr>(s: String) -> rusqlite::Result<T> {
    s.parse().map_err(|_| {
        rusqlite::Error::InvalidColumnType(0, "id".into(), rusqlite::types::Type::Text)
    })
}

pub(super) fn ms(t: OffsetDateTime) -> i64 {
    to_millis(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MaintenanceStore;

    #[tokio::test]
    async fn migrations_are_idempotent_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let s = SqliteStore::open(dir.path()).unwrap();
        s.ping().await.unwrap();
    }
}

#[cfg(test)]
mod upgrade_tests;
