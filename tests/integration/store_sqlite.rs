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

/// The schema of the last v1 release (migrations 1 and 2, `user_version` 2), frozen here so an
/// edit of a released migration shows up as a failure.
const V1_SCHEMA: &str = r#"
CREATE TABLE users (id TEXT PRIMARY KEY, username TEXT NOT NULL, username_canon TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE refresh_tokens (hash BLOB PRIMARY KEY, user_id TEXT NOT NULL, family_id TEXT NOT NULL,
    issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, spent INTEGER NOT NULL DEFAULT 0,
    revoked INTEGER NOT NULL DEFAULT 0);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE TABLE groups (id TEXT PRIMARY KEY, name TEXT NOT NULL, name_lower TEXT NOT NULL,
    description TEXT NOT NULL, visibility TEXT NOT NULL, owner_id TEXT NOT NULL,
    member_count INTEGER NOT NULL, max_members INTEGER NOT NULL, created_at INTEGER NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0);
CREATE TABLE memberships (group_id TEXT NOT NULL, user_id TEXT NOT NULL, role TEXT NOT NULL,
    joined_at INTEGER NOT NULL, PRIMARY KEY (group_id, user_id)) WITHOUT ROWID;
CREATE INDEX memberships_by_user ON memberships (user_id, group_id);
CREATE TABLE join_requests (group_id TEXT NOT NULL, user_id TEXT NOT NULL,
    requested_at INTEGER NOT NULL, PRIMARY KEY (group_id, user_id)) WITHOUT ROWID;
CREATE TABLE bans (group_id TEXT NOT NULL, user_id TEXT NOT NULL, banned_by TEXT NOT NULL,
    banned_at INTEGER NOT NULL, PRIMARY KEY (group_id, user_id)) WITHOUT ROWID;
CREATE TABLE cooldowns (group_id TEXT NOT NULL, user_id TEXT NOT NULL, until INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)) WITHOUT ROWID;
CREATE TABLE messages (group_id TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL UNIQUE,
    sender_id TEXT NOT NULL, envelope BLOB NOT NULL, sent_at INTEGER NOT NULL, client_msg_id TEXT,
    PRIMARY KEY (group_id, seq)) WITHOUT ROWID;
CREATE UNIQUE INDEX messages_client_id ON messages (group_id, sender_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
CREATE TABLE audit_events (id TEXT PRIMARY KEY, kind TEXT NOT NULL, actor_id TEXT, group_id TEXT,
    target_id TEXT, client_addr TEXT, at INTEGER NOT NULL);
CREATE INDEX audit_events_by_group ON audit_events (group_id, at, id) WHERE group_id IS NOT NULL;
CREATE INDEX audit_events_by_time ON audit_events (at);
PRAGMA user_version = 2;
"#;

/// A database written by v1 opens, keeps its data, and takes the v1.1 features: the migration
/// adds the invitations, and a v1 member can be made a moderator.
#[tokio::test]
async fn sqlite_a_v1_database_opens_and_takes_v11_changes() {
    use conclave::domain::{self, Command, GroupId, Limit, Role, UserId};
    use conclave::store::Policy;

    let dir = tempfile::tempdir().unwrap();
    let (owner, member, guest, g) = (UserId::new(), UserId::new(), UserId::new(), GroupId::new());
    {
        let c = rusqlite::Connection::open(dir.path().join("conclave.db")).unwrap();
        c.execute_batch(V1_SCHEMA).unwrap();
        for (id, name) in [
            (owner, "old_owner"),
            (member, "old_member"),
            (guest, "guest"),
        ] {
            c.execute(
                "INSERT INTO users VALUES (?1, ?2, ?2, 'x', 1700000000000)",
                [id.to_string(), name.to_owned()],
            )
            .unwrap();
        }
        c.execute(
            "INSERT INTO groups (id, name, name_lower, description, visibility, owner_id, member_count, max_members, created_at)
             VALUES (?1, 'Old', 'old', '', 'private', ?2, 2, 10, 1700000000000)",
            [g.to_string(), owner.to_string()],
        )
        .unwrap();
        for (u, role) in [(owner, "owner"), (member, "member")] {
            c.execute(
                "INSERT INTO memberships VALUES (?1, ?2, ?3, 1700000000000)",
                [g.to_string(), u.to_string(), role.to_owned()],
            )
            .unwrap();
        }
    }
    let store = SqliteStore::open(dir.path()).expect("a v1 database opens");
    let policy = Policy {
        rejoin_cooldown: std::time::Duration::from_secs(3600),
        max_groups_per_user: 100,
    };
    let run = |actor: UserId, cmd: Command| {
        let store = &store;
        async move { store.execute(g, actor, &cmd, domain::now(), policy).await }
    };
    let members = store
        .members(g, Limit::new_clamped(10), None)
        .await
        .unwrap();
    assert_eq!(members.items.len(), 2, "v1 data kept");
    let target = member;
    run(
        owner,
        Command::SetRole {
            target,
            role: Role::Moderator,
        },
    )
    .await
    .unwrap();
    run(member, Command::Invite { target: guest })
        .await
        .unwrap();
    let invited = store
        .group_invitations(g, Limit::new_clamped(10), None)
        .await
        .unwrap();
    assert_eq!(invited.items[0].invited_by, member);
    run(guest, Command::AcceptInvitation).await.unwrap();
    assert_eq!(store.group(g).await.unwrap().unwrap().member_count, 3);
    // Opening again runs nothing twice.
    drop(store);
    let again = SqliteStore::open(dir.path()).unwrap();
    let m = again.member(g, member).await.unwrap().unwrap();
    assert_eq!(m.role, Role::Moderator);
}
