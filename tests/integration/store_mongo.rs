//! The storage conformance suite (unchanged) against the MongoDB engine, plus a few checks
//! of its own, on a MongoDB-compatible server: `./scripts/test` starts SecantusDB and sets
//! `CONCLAVE_TEST_MONGODB_URI`. Each test gets a fresh database `conclave_test_<pid>_<n>`,
//! dropped when the test ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use conclave::domain::{
    self, Command, GroupId, Limit, MessageId, Outcome, Role, UserId, Username, Visibility,
};
use conclave::store::NewAccount;
use conclave::store::mongo::MongoStore;
use conclave::store::prelude::*;
use conclave::store::{
    Appended, GroupRecord, HistoryQuery, NewMessage, Policy, RefreshTokenRecord, Rotation, Store,
    TokenHash, UserRecord,
};

static NEXT_DB: AtomicU64 = AtomicU64::new(0);

fn uri() -> String {
    std::env::var("CONCLAVE_TEST_MONGODB_URI").unwrap_or_else(|_| {
        panic!(
            "CONCLAVE_TEST_MONGODB_URI is not set: the MongoDB engine tests need a server. \
             Run ./scripts/test (it starts one), or \
             `export CONCLAVE_TEST_MONGODB_URI=$(./scripts/mongo-test-server)` first."
        )
    })
}

/// A store on a fresh database with its indexes.
async fn store() -> MongoStore {
    let db = format!(
        "conclave_test_{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    let s = MongoStore::connect(&uri(), &db).await.expect("connect");
    s.ensure_indexes().await.expect("indexes");
    s
}

/// Drops the test's database when the test ends, pass or fail.
struct DropDatabase(Arc<MongoStore>);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let s = self.0.clone();
        // The suite's tests run on a multi-threaded runtime, where blocking here is allowed.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            tokio::task::block_in_place(|| {
                let _ = rt.block_on(s.drop_database());
            });
        }
    }
}

async fn mongo_store() -> (Arc<dyn Store>, DropDatabase) {
    let s = Arc::new(store().await);
    (s.clone(), DropDatabase(s))
}

crate::conformance_suite!(mongo_store());

fn policy() -> Policy {
    Policy {
        max_groups_per_user: 1_000,
        rejoin_cooldown: Duration::from_secs(3600),
    }
}

async fn user(s: &MongoStore, name: &str) -> UserId {
    let u = UserRecord {
        id: UserId::new(),
        username: Username::parse(name).unwrap(),
        password_hash: "x".into(),
        created_at: domain::now(),
    };
    assert_eq!(s.create_user(&u).await.unwrap(), NewAccount::Created);
    u.id
}

async fn group(s: &MongoStore, owner: UserId, vis: Visibility, max: u32) -> GroupId {
    let g = GroupRecord {
        id: GroupId::new(),
        name: "Rust (fans)".into(),
        description: "d".into(),
        visibility: vis,
        owner_id: owner,
        member_count: 1,
        max_members: max,
        created_at: domain::now(),
    };
    s.create_group(&g).await.unwrap();
    g.id
}

fn msg(g: GroupId, sender: UserId, cmid: Option<&str>) -> NewMessage {
    NewMessage {
        id: MessageId::new(),
        group_id: g,
        sender_id: sender,
        envelope: vec![1, 2, 3],
        sent_at: domain::now(),
        client_msg_id: cmid.map(str::to_owned),
        action: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_users_and_tokens() {
    let s = store().await;
    s.ping().await.unwrap();
    let a = user(&s, "Alice").await;
    let dup = UserRecord {
        id: UserId::new(),
        username: Username::parse("alice").unwrap(),
        password_hash: "x".into(),
        created_at: domain::now(),
    };
    assert_eq!(
        s.create_user(&dup).await.unwrap(),
        NewAccount::UsernameTaken
    );
    let found = s
        .user_by_username(&Username::parse("ALICE").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, a);
    assert_eq!(s.user_by_id(a).await.unwrap().unwrap(), found);

    let now = domain::now();
    let tok = |b: u8| RefreshTokenRecord {
        hash: TokenHash([b; 32]),
        user_id: a,
        family_id: "f1".into(),
        issued_at: now,
        expires_at: now + time::Duration::hours(1),
    };
    s.insert_refresh_token(&tok(1)).await.unwrap();
    assert_eq!(
        s.rotate_refresh_token(&TokenHash([1; 32]), &tok(2), now)
            .await
            .unwrap(),
        Rotation::Rotated { user_id: a }
    );
    assert_eq!(
        s.rotate_refresh_token(&TokenHash([1; 32]), &tok(3), now)
            .await
            .unwrap(),
        Rotation::ReuseDetected { user_id: a }
    );
    assert_eq!(
        s.rotate_refresh_token(&TokenHash([2; 32]), &tok(4), now)
            .await
            .unwrap(),
        Rotation::Invalid
    );
    assert!(!s.revoke_refresh_family(&TokenHash([9; 32])).await.unwrap());
    s.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_membership_and_messages() {
    let s = store().await;
    let o = user(&s, "owner").await;
    let b = user(&s, "bob").await;
    let g = group(&s, o, Visibility::Private, 10).await;
    let now = domain::now();
    let e = s
        .execute(g, b, &Command::Join, now, policy())
        .await
        .unwrap();
    assert_eq!(e.outcome, Outcome::Pending);
    assert_eq!(
        s.join_requests(g, Limit::default(), None)
            .await
            .unwrap()
            .items[0]
            .username,
        "bob"
    );
    let e = s
        .execute(g, o, &Command::Approve { target: b }, now, policy())
        .await
        .unwrap();
    assert_eq!(e.outcome, Outcome::Member);
    assert_eq!(e.group.unwrap().member_count, 2);
    let members = s.members(g, Limit::new_clamped(1), None).await.unwrap();
    assert_eq!(members.items.len(), 1);
    let rest = s
        .members(g, Limit::new_clamped(1), members.next.as_ref())
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(rest.next.is_none());
    assert_eq!(
        s.groups_of_user(b, Limit::default(), None)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(s.group_ids_of_user(b).await.unwrap(), vec![g]);

    let m1 = msg(g, b, Some("c1"));
    let out = s
        .append_messages(&[
            m1.clone(),
            msg(g, o, None),
            m1.clone(),
            msg(g, b, Some("c1")),
        ])
        .await
        .unwrap();
    let seqs: Vec<_> = out.iter().map(|a| a.message().unwrap().seq).collect();
    assert_eq!(seqs, vec![1, 2, 1, 1]);
    assert!(matches!(out[2], Appended::Duplicate(_)));
    assert_eq!(
        s.message_id_for_client_id(g, b, "c1").await.unwrap(),
        Some(m1.id)
    );
    let again = s
        .append_messages(&[m1.clone(), msg(g, o, None)])
        .await
        .unwrap();
    assert!(matches!(again[0], Appended::Duplicate(_)));
    assert_eq!(again[1].message().unwrap().seq, 3);
    let all = s
        .messages(
            g,
            &HistoryQuery {
                after_seq: Some(0),
                before_seq: None,
                limit: 50,
            },
        )
        .await
        .unwrap();
    assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    let newest = s
        .messages(
            g,
            &HistoryQuery {
                after_seq: None,
                before_seq: None,
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(newest.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![2, 3]);

    s.execute(g, o, &Command::Ban { target: b }, now, policy())
        .await
        .unwrap();
    let (_, rel) = s.relation(g, b).await.unwrap().unwrap();
    assert!(rel.banned && !rel.is_member());
    assert_eq!(
        s.execute(g, b, &Command::Join, now, policy())
            .await
            .unwrap_err()
            .code(),
        "banned"
    );
    let e = s
        .execute(g, o, &Command::Leave, now, policy())
        .await
        .unwrap();
    assert_eq!(e.outcome, Outcome::GroupDeleted);
    assert!(s.group(g).await.unwrap().is_none());
    assert!(matches!(
        s.append_messages(&[msg(g, o, None)]).await.unwrap()[0],
        Appended::GroupGone
    ));
    s.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_concurrent_joins_and_appends() {
    let s = std::sync::Arc::new(store().await);
    let o = user(&s, "owner").await;
    let g = group(&s, o, Visibility::Open, 5).await;
    let mut users = Vec::new();
    for i in 0..12 {
        users.push(user(&s, &format!("user{i}")).await);
    }
    let tasks: Vec<_> = users
        .into_iter()
        .map(|u| {
            let s = s.clone();
            tokio::spawn(async move {
                s.execute(g, u, &Command::Join, domain::now(), policy())
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e.code(), "group_full"),
        }
    }
    assert_eq!(ok, 4);
    assert_eq!(s.group(g).await.unwrap().unwrap().member_count, 5);
    // Concurrent appends: no gaps, no duplicates.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(
                async move { s.append_messages(&[msg(g, o, None), msg(g, o, None)]).await },
            )
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let all = s
        .messages(
            g,
            &HistoryQuery {
                after_seq: Some(0),
                before_seq: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=16).collect::<Vec<_>>()
    );
    s.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_ensure_indexes_is_idempotent_and_no_shards_on_a_replica_set() {
    let s = store().await;
    s.ensure_indexes().await.unwrap();
    assert!(
        !s.apply_shard_keys().await.unwrap(),
        "not a mongos: nothing to shard"
    );
    s.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_down_is_unavailable_quickly() {
    // Nothing listens on port 1: server selection gives up within the 5 s timeout.
    let s = MongoStore::connect("mongodb://127.0.0.1:1/", "conclave_down")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let e = s.ping().await.unwrap_err();
    assert_eq!(e.code(), "unavailable", "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(8));
}

/// A v1 database (no invitations collection, no indexes for it) is not ready until the leader
/// has prepared the schema; then v1 data takes the v1.1 features.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_a_v1_database_is_migrated_by_prepare_schema() {
    let s = store().await;
    let owner = user(&s, "v1_owner").await;
    let member = user(&s, "v1_member").await;
    let guest = user(&s, "v1_guest").await;
    let g = group(&s, owner, Visibility::Private, 10).await;
    let now = domain::now();
    s.execute(g, member, &Command::Join, now, policy())
        .await
        .unwrap();
    let approve = Command::Approve { target: member };
    s.execute(g, owner, &approve, now, policy()).await.unwrap();
    // What a v1 deployment left behind: everything but the v1.1 collection.
    let client = mongodb::Client::with_uri_str(uri()).await.unwrap();
    let db = client.database(s.database_name());
    db.collection::<mongodb::bson::Document>("invitations")
        .drop()
        .await
        .unwrap();
    assert!(!s.schema_ready().await.unwrap(), "v1.1 indexes missing");
    s.prepare_schema().await.unwrap();
    assert!(s.schema_ready().await.unwrap());

    let make = Command::SetRole {
        target: member,
        role: Role::Moderator,
    };
    s.execute(g, owner, &make, domain::now(), policy())
        .await
        .unwrap();
    let invite = Command::Invite { target: guest };
    s.execute(g, member, &invite, domain::now(), policy())
        .await
        .unwrap();
    let accept = Command::AcceptInvitation;
    s.execute(g, guest, &accept, domain::now(), policy())
        .await
        .unwrap();
    assert_eq!(s.group(g).await.unwrap().unwrap().member_count, 3);
    s.drop_database().await.unwrap();
}

/// A message document as v1 wrote it (no `kind`, `target_id`, `edited_at`, `deleted_at`) reads
/// as a `text` entry and can be edited and deleted; a v1 membership gets its read marker from
/// the leader's schema step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_message_documents_are_text_entries_that_can_be_changed() {
    use conclave::domain::EntryKind;
    use conclave::store::EntryAction;
    use mongodb::bson::{Binary, DateTime, doc, spec::BinarySubtype};

    let name = format!("conclave_test_{}_v1_documents", std::process::id());
    let store = Arc::new(MongoStore::connect(&uri(), &name).await.unwrap());
    store.ensure_indexes().await.unwrap();
    let _guard = DropDatabase(store.clone());
    let raw = mongodb::Client::with_uri_str(uri())
        .await
        .unwrap()
        .database(&name);
    let owner = user(&store, "v1owner").await;
    let g = group(&store, owner, Visibility::Open, 10).await;
    let first = MessageId::new();
    raw.collection::<mongodb::bson::Document>("messages")
        .insert_one(doc! {
            "_id": first.to_string(), "group_id": g.to_string(), "seq": 1_i64,
            "sender_id": owner.to_string(),
            "envelope": Binary { subtype: BinarySubtype::Generic, bytes: vec![1, 2, 3] },
            "sent_at": DateTime::now(),
        })
        .await
        .unwrap();
    raw.collection::<mongodb::bson::Document>("groups")
        .update_one(
            doc! { "_id": g.to_string() },
            doc! { "$set": { "last_seq": 1_i64 } },
        )
        .await
        .unwrap();
    // A membership as v1 wrote it has no read marker: the leader's schema step gives it one,
    // with everything so far read.
    let reader = user(&store, "v1reader").await;
    raw.collection::<mongodb::bson::Document>("memberships")
        .insert_one(doc! {
            "group_id": g.to_string(), "user_id": reader.to_string(), "role": "member",
            "joined_at": DateTime::now(),
        })
        .await
        .unwrap();
    store.prepare_schema().await.unwrap();
    let st = store.read_states(reader, &[g]).await.unwrap();
    assert_eq!(
        (st[0].last_seq, st[0].last_read_seq, st[0].unread_count),
        (1, 1, 0)
    );
    let old = store.entry(g, first).await.unwrap().unwrap();
    assert_eq!(
        (old.kind, old.target_id, old.edited_at),
        (EntryKind::Text, None, None)
    );
    let edit = NewMessage {
        action: EntryAction::Edit {
            target: first,
            current: vec![7],
        },
        ..msg(g, owner, None)
    };
    let out = store.append_messages(&[edit]).await.unwrap();
    assert_eq!(out[0].message().map(|m| m.seq), Some(2));
    assert_eq!(store.entry(g, first).await.unwrap().unwrap().envelope, [7]);
    let del = NewMessage {
        action: EntryAction::Delete { target: first },
        envelope: Vec::new(),
        ..msg(g, owner, None)
    };
    store.append_messages(&[del]).await.unwrap();
    let q = HistoryQuery {
        after_seq: Some(0),
        before_seq: None,
        limit: 10,
    };
    let all = store.messages(g, &q).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all[0].envelope.is_empty() && all[1].envelope.is_empty());
}

/// The store's part of `GET /groups/mine` on MongoDB: read states of a page of 100 groups of a
/// member of 500, every group with unread messages (a measurement: `cargo test --test
/// integration measure_mongo_read_states -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; prints timings"]
async fn measure_mongo_read_states() {
    let (store, _guard) = mongo_store().await;
    let owner = UserRecord {
        id: UserId::new(),
        username: Username::parse("owner").unwrap(),
        password_hash: "x".into(),
        created_at: domain::now(),
    };
    assert_eq!(
        store.create_user(&owner).await.unwrap(),
        NewAccount::Created
    );
    let reader = UserRecord {
        id: UserId::new(),
        username: Username::parse("reader").unwrap(),
        ..owner.clone()
    };
    assert_eq!(
        store.create_user(&reader).await.unwrap(),
        NewAccount::Created
    );
    let mut groups = Vec::new();
    for i in 0..500 {
        let g = GroupRecord {
            id: GroupId::new(),
            name: format!("g{i}"),
            description: String::new(),
            visibility: Visibility::Open,
            owner_id: owner.id,
            member_count: 1,
            max_members: 10,
            created_at: domain::now(),
        };
        store.create_group(&g).await.unwrap();
        store
            .execute(g.id, reader.id, &Command::Join, domain::now(), policy())
            .await
            .unwrap();
        let n = if i % 10 == 0 { 50 } else { 3 };
        let batch: Vec<_> = (0..n).map(|_| msg(g.id, owner.id, None)).collect();
        store.append_messages(&batch).await.unwrap();
        groups.push((g.id, n));
    }
    let ids: Vec<GroupId> = groups.iter().map(|(g, _)| *g).collect();
    time_read_states(&store, reader.id, &ids, "all unread").await;
    for (g, n) in &groups {
        let _ = store.mark_read(*g, reader.id, *n as u64).await.unwrap();
    }
    time_read_states(&store, reader.id, &ids, "all read").await;
}

async fn time_read_states(store: &Arc<dyn Store>, reader: UserId, groups: &[GroupId], what: &str) {
    let mut took = Vec::new();
    for _ in 0..10 {
        let start = std::time::Instant::now();
        for page in groups.chunks(100) {
            let states = store.read_states(reader, page).await.unwrap();
            assert_eq!(states.len(), 100);
        }
        took.push(start.elapsed());
    }
    took.sort();
    println!(
        "MongoDB read_states, 500 groups {what}, 5 pages of 100: median {:?}, max {:?}",
        took[took.len() / 2],
        took.last().unwrap()
    );
}
