//! The storage conformance suite against the standalone engine (SQLite), each test on a fresh
//! database in its own temp dir.

use std::sync::Arc;

use conclave::store::Store;
use conclave::store::prelude::*;
use conclave::store::sqlite::SqliteStore;
use tempfile::TempDir;

/// A fresh, empty store; the temp dir (returned as the guard) lives until the test ends.
async fn sqlite_store() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).expect("open sqlite store");
    (Arc::new(store), dir)
}

crate::conformance_suite!(sqlite_store());

/// The standalone engine bounds its audit table itself (MongoDB uses a TTL index): writing a
/// batch deletes events older than the retention.
#[tokio::test]
async fn sqlite_audit_events_older_than_the_retention_are_pruned() {
    use conclave::audit::{AuditEvent, AuditKind};
    use conclave::domain::{self, GroupId, Limit};

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path())
        .unwrap()
        .with_audit_retention(std::time::Duration::from_secs(3600));
    let g = GroupId::new();
    let mut old = AuditEvent::new(AuditKind::MemberBanned).group(g);
    old.at = domain::now() - time::Duration::hours(2);
    let fresh = AuditEvent::new(AuditKind::MemberUnbanned).group(g);
    store.append_audit(&[old, fresh.clone()]).await.unwrap();
    let page = store
        .audit_of_group(g, Limit::new_clamped(10), None)
        .await
        .unwrap();
    assert_eq!(page.items, vec![fresh]);
}
