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
//! | `invitations` (v1.1) | generated | unique `(group_id, user_id)`; `(group_id, invited_at, user_id)` and `(user_id, invited_at, group_id)` for paging |
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
//! - `memberships`, `join_requests`, `bans`, `cooldowns`, `invitations`: `{group_id: 1,
//!   user_id: 1}`. Every
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

mod accounts;
mod append;
mod audit;
mod docs;
mod groups;
mod invitations;
mod maintenance;
mod messages;
mod reads;
mod schema;
mod tx;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::options::{
    Acknowledgment, ClientOptions, DatabaseOptions, ReadConcern, TransactionOptions, WriteConcern,
};
use mongodb::{Client, ClientSession, Collection, Database};

pub use self::schema::{KeyPart, SHARD_KEYS, ShardKey};
use self::tx::{TxResult, db_error, is_duplicate_key};
use crate::error::{AppError, AppResult};

#[derive(Clone)]
pub(crate) struct Colls {
    users: Collection<Document>,
    refresh_tokens: Collection<Document>,
    groups: Collection<Document>,
    memberships: Collection<Document>,
    join_requests: Collection<Document>,
    bans: Collection<Document>,
    cooldowns: Collection<Document>,
    invitations: Collection<Document>,
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
        Self::connect_trusting(uri, db, None).await
    }

    /// [`Self::connect`], trusting the CA certificates in `ca_file` (PEM) too when the URI asks
    /// for TLS (`tls=true`).
    pub async fn connect_trusting(
        uri: &str,
        db: &str,
        ca_file: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let mut opts = ClientOptions::parse(uri)
            .await
            .context("CONCLAVE_MONGODB_URI is not a valid MongoDB connection string")?;
        if let (Some(ca), Some(mongodb::options::Tls::Enabled(tls))) = (ca_file, opts.tls.as_mut())
        {
            tls.ca_file_path = Some(ca.to_path_buf());
        }
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
            invitations: db.collection("invitations"),
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

    /// A session for consistent reads outside transactions (causally consistent).
    async fn session(&self) -> AppResult<ClientSession> {
        self.client.start_session().await.map_err(db_error)
    }

    /// The database this store uses.
    pub fn database_name(&self) -> &str {
        self.db.name()
    }

    /// Drops the whole database (tests only).
    #[doc(hidden)]
    pub async fn drop_database(&self) -> anyhow::Result<()> {
        self.db.drop().await?;
        Ok(())
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

/// One page's rows in `sort` order: one more than `limit`, so `paging::page` can tell whether
/// another page follows.
async fn page_rows(
    coll: &Collection<Document>,
    s: &mut ClientSession,
    filter: Document,
    sort: Document,
    limit: crate::domain::Limit,
) -> AppResult<Vec<Document>> {
    let mut cursor = coll
        .find(filter)
        .sort(sort)
        .limit(i64::from(crate::store::paging::rows_for(limit)))
        .session(&mut *s)
        .await
        .map_err(db_error)?;
    cursor.stream(s).try_collect().await.map_err(db_error)
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

fn app(e: tx::TxError) -> AppError {
    tx::tx_error(e)
}
