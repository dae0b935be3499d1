//! A database written by the previous schema (v1: migrations 1 and 2) opens, its messages read
//! as `text` entries, they can be edited and deleted, and members start with everything read.

use rusqlite::{Connection, params};

use super::{SqliteStore, schema};
use crate::domain::{EntryKind, GroupId, MessageId, UserId, now, to_millis};
use crate::store::{EntryAction, HistoryQuery, MessageStore, NewMessage};

#[tokio::test]
async fn a_v1_database_opens_and_its_messages_are_text_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (user, group, first) = (UserId::new(), GroupId::new(), MessageId::new());
    {
        // Written as v1 did: its two migrations, then its rows.
        let c = Connection::open(dir.path().join("conclave.db")).unwrap();
        for sql in &schema::MIGRATIONS[..2] {
            c.execute_batch(sql).unwrap();
        }
        c.pragma_update(None, "user_version", 2).unwrap();
        let (u, g, at) = (user.to_string(), group.to_string(), to_millis(now()));
        c.execute(
            "INSERT INTO users VALUES (?1, 'ada', 'ada', 'hash', ?2)",
            params![u, at],
        )
        .unwrap();
        c.execute(
            "INSERT INTO groups VALUES (?1, 'g', 'g', '', 'open', ?2, 1, 10, ?3, 1)",
            params![g, u, at],
        )
        .unwrap();
        c.execute(
            "INSERT INTO memberships VALUES (?1, ?2, 'owner', ?3)",
            params![g, u, at],
        )
        .unwrap();
        c.execute(
            "INSERT INTO messages VALUES (?1, 1, ?2, ?3, x'010203', ?4, NULL)",
            params![g, first.to_string(), u, at],
        )
        .unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let q = HistoryQuery {
        after_seq: Some(0),
        before_seq: None,
        limit: 10,
    };
    let old = store.messages(group, &q).await.unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].kind, EntryKind::Text);
    assert_eq!(old[0].envelope, [1, 2, 3]);
    assert_eq!((old[0].edited_at, old[0].deleted_at), (None, None));
    // Members of v1 have read everything so far.
    let st = store.read_states(user, &[group]).await.unwrap();
    assert_eq!((st[0].last_seq, st[0].last_read_seq), (1, 1));

    let change = |action| NewMessage {
        id: MessageId::new(),
        group_id: group,
        sender_id: user,
        envelope: vec![4],
        sent_at: now(),
        client_msg_id: None,
        action,
    };
    let edit = change(EntryAction::Edit {
        target: first,
        current: vec![5],
    });
    let out = store.append_messages(&[edit]).await.unwrap();
    assert_eq!(out[0].message().map(|m| m.seq), Some(2));
    let now_text = store.entry(group, first).await.unwrap().unwrap();
    assert_eq!(now_text.envelope, [5]);
    assert!(now_text.edited_at.is_some());
    store
        .append_messages(&[change(EntryAction::Delete { target: first })])
        .await
        .unwrap();
    let all = store.messages(group, &q).await.unwrap();
    let kinds: Vec<_> = all.iter().map(|m| (m.seq, m.kind)).collect();
    assert_eq!(
        kinds,
        [
            (1, EntryKind::Text),
            (2, EntryKind::Edit),
            (3, EntryKind::Delete)
        ]
    );
    assert!(all[0].envelope.is_empty() && all[1].envelope.is_empty());
}
