//! The cluster engine: MongoDB (a replica set, sharded in production).
//!
//! # Atomicity: multi-document transactions
//!
//! A membership change touches several documents at once (the group's `member_count` and
//! `owner_id`, a membership, a join request, a ban, a cooldown), and the invariants of docs/api.md
//! ("exactly one owner", "no banned member", "never more members than `max_members`") hold
//! across them. Folding all of a group's state into one document would make each change a
//! single atomic update, but that document would grow with every member and every ban (16 MB
//! cap, rewritten on every change, members not pageable by index), and "my groups" would need a
//! second, unsynchronised copy anyway. So each concern keeps its own collection, and every
//! change runs in a multi-document transaction (read concern `snapshot`, write concern
//! `majority`): [`Store::execute`] loads the snapshot, asks `domain::membership::decide`, applies
//! the effects and commits, or changes nothing.
//!
//! Snapshot isolation alone allows write skew (a ban and a join that each read the old state and
//! write different documents). Every `execute` therefore starts by incrementing the group's `rev`
//! field, and every append increments its `last_seq`: any two transactions on the same group
//! write the same document, so the second one gets a write conflict (code 112, label
//! `TransientTransactionError`) and is run again from the start on the new state. Retries back
//! off with jitter (2 ms doubling-ish up to 100 ms) for at most 10 s; an `UnknownTransactionCommitResult`
//! retries only the commit. Transactions stay small: one group, a few documents; message batches
//! are bounded by the pipeline's batch size.
//!
//! `append_messages` reserves a group's `seq`s with `$inc` on `last_seq` and inserts the
//! messages in the same transaction, so a failure leaves no gap and two writers (a stale
//! partition owner and the new one) are serialised by the conflict on the group document; the
//! second one then sees the first one's messages and returns them as duplicates.
//!
//! # Collections and indexes ([`MongoStore::ensure_indexes`])
//! | collection | `_id` | indexes |
//! |---|---|---|
//! | `users` | user id | unique `username_canon` |
//! | `refresh_tokens` | SHA-256 hex of the token | `family_id`; TTL on `expires_at` |
//! | `groups` | group id | `(visibility, _id)` for the directory |
//! | `memberships` | generated | unique `(group_id, user_id)`; `(user_id, group_id)` for "my groups"; `(group_id, joined_at, user_id)` for paging |
//! | `join_requests`, `bans` | generated | unique `(group_id, user_id)`; `(group_id, <time>, user_id)` for paging |
//! | `cooldowns` | generated | unique `(group_id, user_id)` |
//! | `audit_events` | event id | `(group_id, at, _id)` where `group_id` exists; TTL on `at` (`CONCLAVE_AUDIT_RETENTION`) |
//! | `messages` | message id (so unique) | unique `(group_id, seq)`; `(group_id, client_key)` for deduplication (`client_key` = `<sender>:<client_msg_id>`, present only when a `client_msg_id` was given) |
//!
//! # Shard keys ([`SHARD_KEYS`], applied by [`MongoStore::apply_shard_keys`] on a `mongos`)
//! - `messages`: `{group_id: 1, seq: 1}`, ranged. A group's history is one contiguous key range,
//!   so every history read (`group_id` = x, `seq` in a range, sorted by `seq`) is targeted at one
//!   shard and served in index order; a very large group can still be split between chunks at
//!   `seq` boundaries (a `{group_id: "hashed"}` key would make such a group one unsplittable
//!   jumbo chunk, and a hashed key forbids the unique `(group_id, seq)` index that guards the
//!   ordering). Groups spread over shards as the balancer moves chunks of the group-id range.
//!   The cost: UUIDv7 group ids increase, so the first messages of *new* groups land in the
//!   top chunk until it splits; a group's own appends are serialised anyway, and the busy old
//!   groups are spread.
//!   On a sharded cluster a unique index must start with the shard key, so there `_id` (the
//!   message id) is unique per shard only. Deduplication never rests on a unique index: every
//!   append to a group writes the group's `last_seq` in the same transaction as its duplicate
//!   checks (by `_id`, and by `(group_id, client_key)` for a message whose id is not derived
//!   from its client key), so two appends to one group can never both miss each other's
//!   messages.
//! - `memberships`, `join_requests`, `bans`, `cooldowns`: `{group_id: 1, user_id: 1}`. Every
//!   membership transaction and every member listing names the group, so they stay on one shard
//!   per collection, and the unique `(group_id, user_id)` index is the shard key index itself.
//!   The price is that "my groups" (by user) is a scatter-gather over the `(user_id, group_id)`
//!   index; it runs once per socket connection and per `/groups/mine` page, and it is bounded by
//!   how many groups a user joins. Sharding by user instead would scatter every membership
//!   change and every member list, which are the hotter paths.
//! - `groups`, `refresh_tokens`: `{_id: "hashed"}`, spreading the hot `last_seq`/`rev` updates
//!   and token rotations evenly.
//! - `audit_events`: `{_id: "hashed"}`. Writes are batched inserts of UUIDv7 ids, which a
//!   ranged key would pile onto the top chunk; a hash spreads them. Account events have no
//!   group, so a `group_id` key would make them one unsplittable chunk. The price is that the
//!   owner's audit listing (by group) is a scatter-gather over the `(group_id, at, _id)` index,
//!   which is fine for a rarely read, owner-only page.
//! - `users` stays unsharded: its unique `username_canon` index could not be enforced across
//!   shards, and the collection is small (a few hundred bytes a user).
//!
//! [`MongoStore::ensure_indexes`] shards first (when connected to a `mongos`) and then creates
//! the indexes, because `shardCollection` refuses a collection that already has a unique index
//! not prefixed by the shard key.
//!
//! # Test server
//! The conformance suite runs against SecantusDB (wire-compatible, test-only, never a
//! dependency): see `scripts/mongo-test-server`.

mod append;
mod docs;
mod tx;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::{
    Acknowledgment, ClientOptions, DatabaseOptions, IndexOptions, ReadConcern, ReturnDocument,
    TransactionOptions, WriteConcern,
};
use mongodb::{Client, ClientSession, Collection, Database, IndexModel};
use time::OffsetDateTime;

use self::docs::{date, escape_regex, split_time_key, time_key};
use self::tx::{TxResult, db_error, is_duplicate_key, transaction};
use super::{
    Appended, BanRecord, Executed, GroupFilter, GroupRecord, HistoryQuery, JoinRequestRecord,
    MemberRecord, NewMessage, Page, Policy, Purged, RefreshTokenRecord, Rotation, Store,
    StoredMessage, TokenHash, UserRecord,
};
use crate::domain::AuditEvent;
use crate::domain::membership::{Snapshot, decide};
use crate::domain::{
    Command, Cursor, Effect, GroupFacts, GroupId, Limit, MessageId, Relation, UserId, Username,
};
use crate::error::{AppError, AppResult};

/// The name the server gives an index when none is set: `field_direction` pairs joined by `_`.
fn default_index_name(keys: &Document) -> String {
    keys.iter()
        .map(|(k, v)| match v {
            Bson::Int32(n) => format!("{k}_{n}"),
            Bson::Int64(n) => format!("{k}_{n}"),
            Bson::String(t) => format!("{k}_{t}"),
            other => format!("{k}_{other}"),
        })
        .collect::<Vec<_>>()
        .join("_")
}

/// How a field takes part in a shard key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPart {
    Ascending,
    Hashed,
}

/// One collection's shard key; see the module docs for why each was chosen.
#[derive(Clone, Copy, Debug)]
pub struct ShardKey {
    pub collection: &'static str,
    pub fields: &'static [(&'static str, KeyPart)],
    /// Whether the shard key index enforces uniqueness (ranged keys only).
    pub unique: bool,
}

use KeyPart::{Ascending, Hashed};

pub const SHARD_KEYS: &[ShardKey] = &[
    ShardKey {
        collection: "messages",
        fields: &[("group_id", Ascending), ("seq", Ascending)],
        unique: true,
    },
    ShardKey {
        collection: "memberships",
        fields: &[("group_id", Ascending), ("user_id", Ascending)],
        unique: true,
    },
    ShardKey {
        collection: "join_requests",
        fields: &[("group_id", Ascending), ("user_id", Ascending)],
        unique: true,
    },
    ShardKey {
        collection: "bans",
        fields: &[("group_id", Ascending), ("user_id", Ascending)],
        unique: true,
    },
    ShardKey {
        collection: "cooldowns",
        fields: &[("group_id", Ascending), ("user_id", Ascending)],
        unique: true,
    },
    ShardKey {
        collection: "groups",
        fields: &[("_id", Hashed)],
        unique: false,
    },
    ShardKey {
        collection: "refresh_tokens",
        fields: &[("_id", Hashed)],
        unique: false,
    },
    ShardKey {
        collection: "audit_events",
        fields: &[("_id", Hashed)],
        unique: false,
    },
];

impl ShardKey {
    pub fn key_document(&self) -> Document {
        self.fields
            .iter()
            .map(|(f, p)| {
                let v = match p {
                    Ascending => Bson::Int32(1),
                    Hashed => Bson::String("hashed".into()),
                };
                ((*f).to_owned(), v)
            })
            .collect()
    }
}

#[derive(Clone)]
struct Colls {
    users: Collection<Document>,
    refresh_tokens: Collection<Document>,
    groups: Collection<Document>,
    memberships: Collection<Document>,
    join_requests: Collection<Document>,
    bans: Collection<Document>,
    cooldowns: Collection<Document>,
    messages: Collection<Document>,
    audit: Collection<Document>,
}

pub struct MongoStore {
    client: Client,
    db: Database,
    c: Colls,
    tx_options: TransactionOptions,
    audit_retention: Duration,
}

fn majority() -> WriteConcern {
    WriteConcern::builder()
        .w(Acknowledgment::Majority)
        .w_timeout(Duration::from_secs(10))
        .build()
}

impl MongoStore {
    /// A client for `uri`, using database `db`. The driver connects lazily in the background, so
    /// this succeeds while the database is down; every call then fails within the 5 s server
    /// selection timeout with `unavailable`, and `/readyz` says so.
    pub async fn connect(uri: &str, db: &str) -> anyhow::Result<Self> {
        let mut opts = ClientOptions::parse(uri)
            .await
            .context("CONCLAVE_MONGODB_URI is not a valid MongoDB connection string")?;
        opts.app_name = Some("conclave".into());
        opts.server_selection_timeout
            .get_or_insert(Duration::from_secs(5));
        opts.connect_timeout.get_or_insert(Duration::from_secs(5));
        let client = Client::with_options(opts).context("cannot build the MongoDB client")?;
        // Every write waits for a majority: an acknowledged message or membership change
        // survives the loss of the primary.
        let db = client.database_with_options(
            db,
            DatabaseOptions::builder().write_concern(majority()).build(),
        );
        let c = Colls {
            users: db.collection("users"),
            refresh_tokens: db.collection("refresh_tokens"),
            groups: db.collection("groups"),
            memberships: db.collection("memberships"),
            join_requests: db.collection("join_requests"),
            bans: db.collection("bans"),
            cooldowns: db.collection("cooldowns"),
            messages: db.collection("messages"),
            audit: db.collection("audit_events"),
        };
        let tx_options = TransactionOptions::builder()
            .read_concern(ReadConcern::snapshot())
            .write_concern(majority())
            .build();
        Ok(Self {
            client,
            db,
            c,
            tx_options,
            audit_retention: Duration::from_secs(90 * 86_400),
        })
    }

    /// How long audit events are kept (the TTL index on `audit_events.at`; default 90 days).
    pub fn with_audit_retention(mut self, d: Duration) -> Self {
        self.audit_retention = d;
        self
    }

    /// Whether this is a sharded cluster's router (`hello` answers `msg: "isdbgrid"`).
    pub async fn is_mongos(&self) -> anyhow::Result<bool> {
        let hello = self
            .client
            .database("admin")
            .run_command(doc! { "hello": 1 })
            .await
            .context("mongodb hello")?;
        Ok(hello.get_str("msg").ok() == Some("isdbgrid"))
    }

    /// Shards the collections of [`SHARD_KEYS`] when connected to a `mongos`; does nothing (and
    /// returns false) on a replica set. Idempotent: a collection already sharded on the same key
    /// is left alone; one sharded on another key is an error (resharding is a deliberate
    /// operator action, not something to do at start-up).
    pub async fn apply_shard_keys(&self) -> anyhow::Result<bool> {
        if !self.is_mongos().await? {
            return Ok(false);
        }
        let admin = self.client.database("admin");
        let db = self.db.name();
        // A no-op from MongoDB 6 on, required before.
        admin
            .run_command(doc! { "enableSharding": db })
            .await
            .context("enableSharding")?;
        let config = self
            .client
            .database("config")
            .collection::<Document>("collections");
        for sk in SHARD_KEYS {
            let ns = format!("{db}.{}", sk.collection);
            let key = sk.key_document();
            if let Some(existing) = config
                .find_one(doc! { "_id": &ns, "dropped": { "$ne": true } })
                .await?
            {
                let current = existing.get_document("key").ok();
                anyhow::ensure!(
                    current == Some(&key),
                    "{ns} is sharded on {current:?}, not on {key}; reshard it deliberately"
                );
                continue;
            }
            admin
                .run_command(doc! { "shardCollection": &ns, "key": key, "unique": sk.unique })
                .await
                .with_context(|| format!("shardCollection {ns}"))?;
            tracing::info!(collection = %ns, "sharded");
        }
        Ok(true)
    }

    /// Creates every index (and on a `mongos` first the shard keys). Idempotent; the leader
    /// runs it (`ops::maintenance`), the other processes wait for [`Self::indexes_present`].
    pub async fn ensure_indexes(&self) -> anyhow::Result<()> {
        self.apply_shard_keys().await?;
        for (coll, models) in self.index_plan() {
            coll.create_indexes(models)
                .await
                .with_context(|| format!("indexes of {}", coll.name()))?;
        }
        self.ensure_audit_indexes().await
    }

    /// Whether every index of the plan exists (by the name the server gives it). Shard keys are
    /// applied before the indexes, so this also means they are in place.
    pub async fn indexes_present(&self) -> anyhow::Result<bool> {
        for (coll, models) in self.index_plan() {
            let names = match coll.list_index_names().await {
                Ok(n) => n,
                // A collection that does not exist yet has no indexes.
                Err(e) if matches!(*e.kind, mongodb::error::ErrorKind::Command(ref c) if c.code == 26) =>
                {
                    return Ok(false);
                }
                Err(e) => return Err(e).with_context(|| format!("indexes of {}", coll.name())),
            };
            if models
                .iter()
                .any(|m| !names.contains(&default_index_name(&m.keys)))
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Every collection's indexes. Each unique one starts with its collection's shard key (or
    /// its collection is unsharded), so one plan holds on a replica set and a sharded cluster.
    fn index_plan(&self) -> Vec<(&Collection<Document>, Vec<IndexModel>)> {
        let idx = |keys: Document, unique: bool| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().unique(unique).build())
                .build()
        };
        let c = &self.c;
        vec![
            (&c.users, vec![idx(doc! { "username_canon": 1 }, true)]),
            (
                &c.refresh_tokens,
                vec![
                    idx(doc! { "family_id": 1 }, false),
                    IndexModel::builder()
                        .keys(doc! { "expires_at": 1 })
                        .options(IndexOptions::builder().expire_after(Duration::ZERO).build())
                        .build(),
                ],
            ),
            (
                &c.groups,
                vec![idx(doc! { "visibility": 1, "_id": 1 }, false)],
            ),
            (
                &c.memberships,
                vec![
                    idx(doc! { "group_id": 1, "user_id": 1 }, true),
                    idx(doc! { "user_id": 1, "group_id": 1 }, false),
                    idx(doc! { "group_id": 1, "joined_at": 1, "user_id": 1 }, false),
                ],
            ),
            (
                &c.join_requests,
                vec![
                    idx(doc! { "group_id": 1, "user_id": 1 }, true),
                    idx(
                        doc! { "group_id": 1, "requested_at": 1, "user_id": 1 },
                        false,
                    ),
                ],
            ),
            (
                &c.bans,
                vec![
                    idx(doc! { "group_id": 1, "user_id": 1 }, true),
                    idx(doc! { "group_id": 1, "banned_at": 1, "user_id": 1 }, false),
                ],
            ),
            (
                &c.cooldowns,
                vec![idx(doc! { "group_id": 1, "user_id": 1 }, true)],
            ),
            (
                &c.messages,
                vec![
                    idx(doc! { "group_id": 1, "seq": 1 }, true),
                    idx(doc! { "group_id": 1, "client_key": 1 }, false),
                ],
            ),
        ]
    }

    /// The audit listing index, and the TTL index that bounds the collection. A changed
    /// retention updates the existing TTL index in place (`collMod`) instead of failing.
    async fn ensure_audit_indexes(&self) -> anyhow::Result<()> {
        let coll = &self.c.audit;
        coll.create_index(
            IndexModel::builder()
                .keys(doc! { "group_id": 1, "at": 1, "_id": 1 })
                .options(
                    IndexOptions::builder()
                        .partial_filter_expression(doc! { "group_id": { "$exists": true } })
                        .build(),
                )
                .build(),
        )
        .await
        .context("indexes of audit_events")?;
        let ttl = IndexModel::builder()
            .keys(doc! { "at": 1 })
            .options(
                IndexOptions::builder()
                    .name("audit_ttl".to_owned())
                    .expire_after(self.audit_retention)
                    .build(),
            )
            .build();
        match coll.create_index(ttl).await {
            Ok(_) => Ok(()),
            // IndexOptionsConflict / IndexKeySpecsConflict: the retention was changed.
            Err(e) if matches!(tx::code(&e), Some(85 | 86)) => {
                self.db
                    .run_command(doc! {
                        "collMod": coll.name(),
                        "index": { "name": "audit_ttl", "expireAfterSeconds": self.audit_retention.as_secs() as i64 },
                    })
                    .await
                    .context("updating the audit TTL index")?;
                Ok(())
            }
            Err(e) => Err(e).context("TTL index of audit_events"),
        }
    }

    /// Drops the whole database (tests only).
    #[doc(hidden)]
    pub async fn drop_database(&self) -> anyhow::Result<()> {
        self.db.drop().await?;
        Ok(())
    }

    /// A session for consistent reads outside transactions (causally consistent).
    async fn session(&self) -> AppResult<ClientSession> {
        self.client.start_session().await.map_err(db_error)
    }

    /// A group and a user's relation to it (`None`: no such group), for `relation` and `access`.
    async fn group_and_relation(
        &self,
        group: GroupId,
        user: UserId,
        reads: Reads,
    ) -> AppResult<Option<(GroupRecord, Relation)>> {
        let mut s = self.session().await?;
        let Some(g) = load_group(&self.c, &mut s, group).await.map_err(app)? else {
            return Ok(None);
        };
        let r = load_relation(&self.c, &mut s, group, user, reads)
            .await
            .map_err(app)?;
        Ok(Some((g, r)))
    }

    /// One page of a per-group listing of users (members, requests, bans), oldest first by
    /// `(time_field, user_id)` (`key`), with usernames (`name`) looked up in one more query.
    async fn user_listing<T>(
        &self,
        coll: &Collection<Document>,
        time_field: &str,
        (group, limit, after): (GroupId, Limit, Option<&Cursor>),
        row: impl Fn(&Document) -> AppResult<T>,
        key: impl Fn(&T) -> (OffsetDateTime, UserId),
        name: impl Fn(&mut T) -> &mut String,
    ) -> AppResult<Page<T>> {
        let f = after_time_key(group, time_field, after)?;
        let mut s = self.session().await?;
        let mut cursor = coll
            .find(f)
            .sort(doc! { time_field: 1, "user_id": 1 })
            .limit(limit_plus_one(limit))
            .session(&mut s)
            .await
            .map_err(db_error)?;
        let docs: Vec<Document> = cursor
            .stream(&mut s)
            .try_collect()
            .await
            .map_err(db_error)?;
        let rows = docs.iter().map(row).collect::<AppResult<Vec<T>>>()?;
        let ids = rows.iter().map(|r| key(r).1.to_string());
        let names = usernames(&self.c, &mut s, ids).await.map_err(app)?;
        Ok(page(
            rows,
            limit,
            |r| {
                let (t, u) = key(r);
                time_key(t, u)
            },
            |mut r| {
                let u = key(&r).1.to_string();
                *name(&mut r) = names.get(&u).cloned().unwrap_or_default();
                Some(r)
            },
        ))
    }
}

/// An unordered bulk insert whose only failures are duplicate ids.
fn only_duplicates(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        mongodb::error::ErrorKind::InsertMany(m) => {
            m.write_concern_error.is_none()
                && m.write_errors
                    .as_ref()
                    .is_some_and(|w| w.iter().all(|w| w.code == 11000))
        }
        _ => is_duplicate_key(e),
    }
}

fn limit_plus_one(limit: Limit) -> i64 {
    i64::from(limit.get()) + 1
}

/// Keyset paging: `rows` holds up to `limit + 1` raw rows; the extra one only says more follow.
fn page<R, T>(
    mut rows: Vec<R>,
    limit: Limit,
    key: impl Fn(&R) -> String,
    convert: impl FnMut(R) -> Option<T>,
) -> Page<T> {
    let more = rows.len() > limit.get() as usize;
    rows.truncate(limit.get() as usize);
    let next = if more {
        rows.last().map(|r| Cursor::from_key(&key(r)))
    } else {
        None
    };
    Page {
        items: rows.into_iter().filter_map(convert).collect(),
        next,
    }
}

/// `{group_id, ((time, user_id) > cursor)}` for the per-group listings.
fn after_time_key(gid: GroupId, field: &str, after: Option<&Cursor>) -> AppResult<Document> {
    let mut f = doc! { "group_id": gid.to_string() };
    if let Some(c) = after {
        let (t, u) = split_time_key(c.key())
            .ok_or_else(|| AppError::field("cursor", "is not a cursor this server issued"))?;
        f.insert(
            "$or",
            vec![
                Bson::Document(doc! { field: { "$gt": t } }),
                Bson::Document(doc! { field: t, "user_id": { "$gt": u } }),
            ],
        );
    }
    Ok(f)
}

/// Every document matching `filter`, read in the session's transaction; with `fields`, only
/// those fields.
async fn collect(
    coll: &Collection<Document>,
    s: &mut ClientSession,
    filter: Document,
    fields: Option<Document>,
) -> mongodb::error::Result<Vec<Document>> {
    let mut find = coll.find(filter);
    if let Some(f) = fields {
        find = find.projection(f);
    }
    let mut cursor = find.session(&mut *s).await?;
    cursor.stream(s).try_collect().await
}

async fn usernames(
    c: &Colls,
    s: &mut ClientSession,
    ids: impl Iterator<Item = String>,
) -> TxResult<HashMap<String, String>> {
    let ids: Vec<String> = ids.collect();
    let filter = doc! { "_id": { "$in": ids } };
    let docs = collect(&c.users, s, filter, Some(doc! { "username": 1 })).await?;
    docs.iter()
        .map(|d| {
            Ok((
                docs::text(d, "_id")?.to_owned(),
                docs::text(d, "username")?.to_owned(),
            ))
        })
        .collect()
}

async fn load_group(
    c: &Colls,
    s: &mut ClientSession,
    gid: GroupId,
) -> TxResult<Option<GroupRecord>> {
    let d = c
        .groups
        .find_one(doc! { "_id": gid.to_string() })
        .session(&mut *s)
        .await?;
    Ok(d.as_ref().map(docs::group).transpose()?)
}

/// How much of a relation [`load_relation`] reads.
#[derive(Clone, Copy)]
enum Reads {
    /// All four per-(group, user) collections.
    Full,
    /// A member's membership alone: pending requests, bans and cooldowns never change what a
    /// member may read or send ([`Store::access`]); a non-member's relation is still read in full.
    MemberShortcut,
}

async fn load_relation(
    c: &Colls,
    s: &mut ClientSession,
    gid: GroupId,
    uid: UserId,
    reads: Reads,
) -> TxResult<Relation> {
    let key = doc! { "group_id": gid.to_string(), "user_id": uid.to_string() };
    let only_id = doc! { "_id": 1 };
    let membership = c.memberships.find_one(key.clone()).session(&mut *s).await?;
    if let (Reads::MemberShortcut, Some(m)) = (reads, &membership) {
        return Ok(docs::relation(Some(m), false, false, None)?);
    }
    let pending = c
        .join_requests
        .find_one(key.clone())
        .projection(only_id.clone())
        .session(&mut *s)
        .await?
        .is_some();
    let banned = c
        .bans
        .find_one(key.clone())
        .projection(only_id)
        .session(&mut *s)
        .await?
        .is_some();
    let cooldown = c.cooldowns.find_one(key).session(&mut *s).await?;
    Ok(docs::relation(
        membership.as_ref(),
        pending,
        banned,
        cooldown.as_ref(),
    )?)
}

async fn execute_tx(
    c: &Colls,
    s: &mut ClientSession,
    gid: GroupId,
    actor: UserId,
    cmd: &Command,
    now: OffsetDateTime,
    policy: Policy,
) -> TxResult<Executed> {
    let g = gid.to_string();
    // Load the group and write it in one step: see the module docs on write skew.
    let Some(group) = c
        .groups
        .find_one_and_update(doc! { "_id": &g }, doc! { "$inc": { "rev": 1i64 } })
        .return_document(ReturnDocument::After)
        .session(&mut *s)
        .await?
    else {
        return Err(AppError::NotFound.into());
    };
    let group = docs::group(&group)?;
    let facts = GroupFacts {
        visibility: group.visibility,
        owner_id: group.owner_id,
        member_count: group.member_count,
        max_members: group.max_members,
    };
    let actor_rel = load_relation(c, s, gid, actor, Reads::Full).await?;
    let target_rel = match cmd.target() {
        Some(t) if t == actor => actor_rel.clone(),
        Some(t) => {
            let exists = c
                .users
                .find_one(doc! { "_id": t.to_string() })
                .projection(doc! { "_id": 1 })
                .session(&mut *s)
                .await?
                .is_some();
            if !exists {
                return Err(AppError::NotFound.into());
            }
            load_relation(c, s, gid, t, Reads::Full).await?
        }
        None => Relation::default(),
    };
    let snapshot = Snapshot {
        group: &facts,
        actor_id: actor,
        actor: &actor_rel,
        target: &target_rel,
    };
    let decision = decide(cmd, &snapshot, now, policy.rejoin_cooldown).map_err(AppError::from)?;
    let former_members = if decision.effects.contains(&Effect::DeleteGroup) {
        collect(&c.memberships, s, doc! { "group_id": &g }, None)
            .await?
            .iter()
            .map(|d| docs::id(d, "user_id"))
            .collect::<AppResult<Vec<UserId>>>()?
    } else {
        Vec::new()
    };
    for e in &decision.effects {
        apply(c, s, &g, e, now).await?;
    }
    Ok(Executed {
        outcome: decision.outcome,
        group: load_group(c, s, gid).await?,
        effects: decision.effects,
        former_members,
    })
}

async fn apply(
    c: &Colls,
    s: &mut ClientSession,
    g: &str,
    effect: &Effect,
    now: OffsetDateTime,
) -> TxResult<()> {
    let key = |u: &UserId| doc! { "group_id": g, "user_id": u.to_string() };
    let group = doc! { "_id": g };
    match effect {
        Effect::AddMember { user, role } => {
            let mut m = key(user);
            m.insert("role", role.as_str());
            m.insert("joined_at", date(now));
            c.memberships.insert_one(m).session(&mut *s).await?;
            c.groups
                .update_one(group, doc! { "$inc": { "member_count": 1i64 } })
                .session(&mut *s)
                .await?;
        }
        Effect::RemoveMember { user } => {
            let n = c
                .memberships
                .delete_one(key(user))
                .session(&mut *s)
                .await?
                .deleted_count as i64;
            if n > 0 {
                c.groups
                    .update_one(group, doc! { "$inc": { "member_count": -n } })
                    .session(&mut *s)
                    .await?;
            }
        }
        Effect::SetRole { user, role } => {
            c.memberships
                .update_one(key(user), doc! { "$set": { "role": role.as_str() } })
                .session(&mut *s)
                .await?;
        }
        Effect::SetOwner { user } => {
            c.groups
                .update_one(group, doc! { "$set": { "owner_id": user.to_string() } })
                .session(&mut *s)
                .await?;
        }
        Effect::AddRequest { user } => {
            let mut r = key(user);
            r.insert("requested_at", date(now));
            c.join_requests.insert_one(r).session(&mut *s).await?;
        }
        Effect::RemoveRequest { user } => {
            c.join_requests
                .delete_one(key(user))
                .session(&mut *s)
                .await?;
        }
        Effect::AddBan { user, by } => {
            c.bans
                .update_one(
                    key(user),
                    doc! { "$setOnInsert": { "banned_by": by.to_string(), "banned_at": date(now) } },
                )
                .upsert(true)
                .session(&mut *s)
                .await?;
        }
        Effect::RemoveBan { user } => {
            c.bans.delete_one(key(user)).session(&mut *s).await?;
        }
        Effect::SetCooldown { user, until } => {
            c.cooldowns
                .update_one(key(user), doc! { "$set": { "until": date(*until) } })
                .upsert(true)
                .session(&mut *s)
                .await?;
        }
        Effect::DeleteGroup => {
            let of_group = doc! { "group_id": g };
            for coll in [&c.memberships, &c.join_requests, &c.bans, &c.cooldowns] {
                coll.delete_many(of_group.clone()).session(&mut *s).await?;
            }
            // The messages go after the commit (see `execute`): a long history would make the
            // transaction too large, and without the group they are unreachable anyway.
            c.groups.delete_one(group).session(&mut *s).await?;
        }
    }
    Ok(())
}

async fn rotate_tx(
    c: &Colls,
    s: &mut ClientSession,
    presented: &TokenHash,
    next: &RefreshTokenRecord,
    now: OffsetDateTime,
) -> TxResult<Rotation> {
    let hash = presented.hex();
    let Some(d) = c
        .refresh_tokens
        .find_one(doc! { "_id": &hash })
        .session(&mut *s)
        .await?
    else {
        return Ok(Rotation::Invalid);
    };
    let user_id: UserId = docs::id(&d, "user_id")?;
    let family = docs::text(&d, "family_id")?.to_owned();
    let spent = d.get_bool("spent").unwrap_or(false);
    let revoked = d.get_bool("revoked").unwrap_or(false);
    if revoked || docs::time(&d, "expires_at")? <= now {
        return Ok(Rotation::Invalid);
    }
    if spent {
        c.refresh_tokens
            .update_many(
                doc! { "family_id": &family },
                doc! { "$set": { "revoked": true } },
            )
            .session(&mut *s)
            .await?;
        return Ok(Rotation::ReuseDetected { user_id });
    }
    c.refresh_tokens
        .update_one(doc! { "_id": &hash }, doc! { "$set": { "spent": true } })
        .session(&mut *s)
        .await?;
    let next = RefreshTokenRecord {
        user_id,
        family_id: family,
        ..next.clone()
    };
    c.refresh_tokens
        .insert_one(token_doc(&next))
        .session(&mut *s)
        .await?;
    Ok(Rotation::Rotated { user_id })
}

fn token_doc(t: &RefreshTokenRecord) -> Document {
    doc! {
        "_id": t.hash.hex(),
        "user_id": t.user_id.to_string(),
        "family_id": &t.family_id,
        "issued_at": date(t.issued_at),
        "expires_at": date(t.expires_at),
        "spent": false,
        "revoked": false,
    }
}

async fn create_group_tx(c: &Colls, s: &mut ClientSession, g: &GroupRecord) -> TxResult<()> {
    c.groups
        .insert_one(docs::group_doc(g))
        .session(&mut *s)
        .await?;
    c.memberships
        .insert_one(doc! {
            "group_id": g.id.to_string(),
            "user_id": g.owner_id.to_string(),
            "role": "owner",
            "joined_at": date(g.created_at),
        })
        .session(&mut *s)
        .await?;
    Ok(())
}

fn app(e: tx::TxError) -> AppError {
    tx::tx_error(e)
}

#[async_trait]
impl Store for MongoStore {
    async fn prepare_schema(&self) -> AppResult<()> {
        self.ensure_indexes().await.map_err(AppError::Internal)
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

    async fn ping(&self) -> AppResult<()> {
        self.db
            .run_command(doc! { "ping": 1 })
            .await
            .map(|_| ())
            .map_err(db_error)
    }

    async fn create_user(&self, user: &UserRecord) -> AppResult<()> {
        match self.c.users.insert_one(docs::user_doc(user)).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Err(AppError::conflict(
                "username_taken",
                "this username is taken",
            )),
            Err(e) => Err(db_error(e)),
        }
    }

    async fn user_by_username(&self, username: &Username) -> AppResult<Option<UserRecord>> {
        let d = self
            .c
            .users
            .find_one(doc! { "username_canon": username.canonical() })
            .await
            .map_err(db_error)?;
        d.as_ref().map(docs::user).transpose()
    }

    async fn user_by_id(&self, id: UserId) -> AppResult<Option<UserRecord>> {
        let d = self
            .c
            .users
            .find_one(doc! { "_id": id.to_string() })
            .await
            .map_err(db_error)?;
        d.as_ref().map(docs::user).transpose()
    }

    async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> AppResult<()> {
        self.c
            .refresh_tokens
            .insert_one(token_doc(token))
            .await
            .map(|_| ())
            .map_err(db_error)
    }

    async fn rotate_refresh_token(
        &self,
        presented: &TokenHash,
        next: &RefreshTokenRecord,
        now: OffsetDateTime,
    ) -> AppResult<Rotation> {
        transaction!(self, |s| rotate_tx(&self.c, s, presented, next, now))
    }

    async fn revoke_refresh_family(&self, presented: &TokenHash) -> AppResult<bool> {
        let Some(d) = self
            .c
            .refresh_tokens
            .find_one(doc! { "_id": presented.hex() })
            .projection(doc! { "family_id": 1 })
            .await
            .map_err(db_error)?
        else {
            return Ok(false);
        };
        let family = docs::text(&d, "family_id")?;
        self.c
            .refresh_tokens
            .update_many(
                doc! { "family_id": family },
                doc! { "$set": { "revoked": true } },
            )
            .await
            .map_err(db_error)?;
        Ok(true)
    }

    async fn create_group(&self, group: &GroupRecord) -> AppResult<()> {
        transaction!(self, |s| create_group_tx(&self.c, s, group))
    }

    async fn group(&self, id: GroupId) -> AppResult<Option<GroupRecord>> {
        let d = self
            .c
            .groups
            .find_one(doc! { "_id": id.to_string() })
            .await
            .map_err(db_error)?;
        d.as_ref().map(docs::group).transpose()
    }

    async fn list_groups(
        &self,
        filter: &GroupFilter,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<GroupRecord>> {
        let mut f = Document::new();
        if let Some(a) = after {
            f.insert("_id", doc! { "$gt": a.key() });
        }
        if let Some(q) = filter.query.as_deref().filter(|q| !q.is_empty()) {
            f.insert(
                "name_lower",
                doc! { "$regex": escape_regex(&q.to_lowercase()) },
            );
        }
        if let Some(v) = filter.visibility {
            f.insert("visibility", v.as_str());
        }
        let rows: Vec<Document> = self
            .c
            .groups
            .find(f)
            .sort(doc! { "_id": 1 })
            .limit(limit_plus_one(limit))
            .await
            .map_err(db_error)?
            .try_collect()
            .await
            .map_err(db_error)?;
        let rows = rows
            .iter()
            .map(docs::group)
            .collect::<AppResult<Vec<_>>>()?;
        Ok(page(rows, limit, |g| g.id.to_string(), Some))
    }

    async fn groups_of_user(
        &self,
        user: UserId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<(GroupRecord, MemberRecord)>> {
        let mut s = self.session().await?;
        let mut f = doc! { "user_id": user.to_string() };
        if let Some(a) = after {
            f.insert("group_id", doc! { "$gt": a.key() });
        }
        let mut cursor = self
            .c
            .memberships
            .find(f)
            .sort(doc! { "user_id": 1, "group_id": 1 })
            .limit(limit_plus_one(limit))
            .session(&mut s)
            .await
            .map_err(db_error)?;
        let rows: Vec<Document> = cursor
            .stream(&mut s)
            .try_collect()
            .await
            .map_err(db_error)?;
        let gids: Vec<String> = rows
            .iter()
            .map(|d| docs::text(d, "group_id").map(str::to_owned))
            .collect::<AppResult<_>>()?;
        let mut groups: HashMap<String, GroupRecord> = HashMap::new();
        for d in collect(
            &self.c.groups,
            &mut s,
            doc! { "_id": { "$in": gids } },
            None,
        )
        .await
        .map_err(db_error)?
        {
            let g = docs::group(&d)?;
            groups.insert(g.id.to_string(), g);
        }
        let username = self
            .user_by_id(user)
            .await?
            .map(|u| u.username.as_str().to_owned())
            .unwrap_or_default();
        let mut bad = None;
        let p = page(
            rows,
            limit,
            |d| docs::text(d, "group_id").unwrap_or_default().to_owned(),
            |d| {
                // A group deleted between the two reads is simply not listed.
                let g = groups.remove(docs::text(&d, "group_id").ok()?)?;
                let member = (|| {
                    Ok::<_, AppError>(MemberRecord {
                        user_id: user,
                        username: username.clone(),
                        role: docs::role(&d)?,
                        joined_at: docs::time(&d, "joined_at")?,
                    })
                })();
                match member {
                    Ok(m) => Some((g, m)),
                    Err(e) => {
                        bad = Some(e);
                        None
                    }
                }
            },
        );
        match bad {
            Some(e) => Err(e),
            None => Ok(p),
        }
    }

    async fn group_ids_of_user(&self, user: UserId) -> AppResult<Vec<GroupId>> {
        let rows: Vec<Document> = self
            .c
            .memberships
            .find(doc! { "user_id": user.to_string() })
            .projection(doc! { "group_id": 1 })
            .await
            .map_err(db_error)?
            .try_collect()
            .await
            .map_err(db_error)?;
        rows.iter().map(|d| docs::id(d, "group_id")).collect()
    }

    async fn relation(
        &self,
        group: GroupId,
        user: UserId,
    ) -> AppResult<Option<(GroupRecord, Relation)>> {
        self.group_and_relation(group, user, Reads::Full).await
    }

    async fn access(
        &self,
        group: GroupId,
        user: UserId,
    ) -> AppResult<Option<(GroupRecord, Relation)>> {
        // Two reads for a member instead of five.
        self.group_and_relation(group, user, Reads::MemberShortcut)
            .await
    }

    async fn execute(
        &self,
        group: GroupId,
        actor: UserId,
        cmd: &Command,
        now: OffsetDateTime,
        policy: Policy,
    ) -> AppResult<Executed> {
        let executed = transaction!(self, |s| execute_tx(
            &self.c, s, group, actor, cmd, now, policy
        ))?;
        if executed.effects.contains(&Effect::DeleteGroup) {
            // Outside the transaction (see `apply`). If this fails the messages are orphans
            // nobody can reach (group ids are never reused); say so and carry on.
            if let Err(e) = self
                .c
                .messages
                .delete_many(doc! { "group_id": group.to_string() })
                .await
            {
                tracing::warn!(group_id = %group, error = %e, "messages of a deleted group were not removed");
            }
        }
        Ok(executed)
    }

    async fn members(
        &self,
        group: GroupId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<MemberRecord>> {
        let row = |d: &Document| {
            Ok(MemberRecord {
                user_id: docs::id(d, "user_id")?,
                username: String::new(),
                role: docs::role(d)?,
                joined_at: docs::time(d, "joined_at")?,
            })
        };
        let key = |m: &MemberRecord| (m.joined_at, m.user_id);
        self.user_listing(
            &self.c.memberships,
            "joined_at",
            (group, limit, after),
            row,
            key,
            |m| &mut m.username,
        )
        .await
    }

    async fn join_requests(
        &self,
        group: GroupId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<JoinRequestRecord>> {
        let row = |d: &Document| {
            Ok(JoinRequestRecord {
                user_id: docs::id(d, "user_id")?,
                username: String::new(),
                requested_at: docs::time(d, "requested_at")?,
            })
        };
        let key = |r: &JoinRequestRecord| (r.requested_at, r.user_id);
        self.user_listing(
            &self.c.join_requests,
            "requested_at",
            (group, limit, after),
            row,
            key,
            |r| &mut r.username,
        )
        .await
    }

    async fn bans(
        &self,
        group: GroupId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<BanRecord>> {
        let row = |d: &Document| {
            Ok(BanRecord {
                user_id: docs::id(d, "user_id")?,
                username: String::new(),
                banned_by: docs::id(d, "banned_by")?,
                banned_at: docs::time(d, "banned_at")?,
            })
        };
        let key = |b: &BanRecord| (b.banned_at, b.user_id);
        self.user_listing(
            &self.c.bans,
            "banned_at",
            (group, limit, after),
            row,
            key,
            |b| &mut b.username,
        )
        .await
    }

    async fn message_id_for_client_id(
        &self,
        group: GroupId,
        sender: UserId,
        client_msg_id: &str,
    ) -> AppResult<Option<MessageId>> {
        let d = self
            .c
            .messages
            .find_one(doc! {
                "group_id": group.to_string(),
                "client_key": docs::client_key(sender, client_msg_id),
            })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(db_error)?;
        d.as_ref().map(|d| docs::id(d, "_id")).transpose()
    }

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
            .limit(limit_plus_one(limit))
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

    async fn append_messages(&self, batch: &[NewMessage]) -> AppResult<Vec<Appended>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut look_up = false;
        transaction!(self, |s| append::append_tx(&self.c, s, batch, &mut look_up))
    }

    async fn messages(
        &self,
        group: GroupId,
        query: &HistoryQuery,
    ) -> AppResult<Vec<StoredMessage>> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        // `seq` is stored as i64: a larger position saturates instead of wrapping negative
        // (after: nothing, before: everything).
        let bound = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
        let mut seq = Document::new();
        if let Some(a) = query.after_seq {
            seq.insert("$gt", bound(a));
        }
        if let Some(b) = query.before_seq {
            seq.insert("$lt", bound(b));
        }
        let mut f = doc! { "group_id": group.to_string() };
        if !seq.is_empty() {
            f.insert("seq", seq);
        }
        // Forwards only when asked to; otherwise the newest page, read backwards (as the
        // standalone engine does), and returned ascending.
        let forwards = query.after_seq.is_some();
        let rows: Vec<Document> = self
            .c
            .messages
            .find(f)
            .sort(doc! { "seq": if forwards { 1 } else { -1 } })
            .limit(i64::from(query.limit))
            .await
            .map_err(db_error)?
            .try_collect()
            .await
            .map_err(db_error)?;
        let mut items = rows
            .iter()
            .map(docs::message)
            .collect::<AppResult<Vec<_>>>()?;
        if !forwards {
            items.reverse();
        }
        Ok(items)
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
