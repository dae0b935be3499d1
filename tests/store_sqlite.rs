//! The storage conformance suite against the standalone engine (SQLite), each test on a fresh
//! database in its own temp dir.

mod conformance;

use std::sync::Arc;

use conclave::store::Store;
use conclave::store::sqlite::SqliteStore;
use tempfile::TempDir;

/// A fresh, empty store; the temp dir (returned as the guard) lives until the test ends.
async fn sqlite_store() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).expect("open sqlite store");
    (Arc::new(store), dir)
}

conformance_suite!(sqlite_store());
