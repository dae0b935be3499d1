//! Indexes and shard keys (see the module docs of `store::mongo`), created by the leader.

use anyhow::Context;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};

use std::time::Duration;

use super::{MongoStore, tx};

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
        collection: "invitations",
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

impl MongoStore {
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
            // v1.1. A v1 database lacks these: the leader creates them at start, and until then
            // `indexes_present` keeps the other processes waiting (the migration of this engine).
            (
                &c.invitations,
                vec![
                    idx(doc! { "group_id": 1, "user_id": 1 }, true),
                    idx(doc! { "group_id": 1, "invited_at": 1, "user_id": 1 }, false),
                    idx(doc! { "user_id": 1, "invited_at": 1, "group_id": 1 }, false),
                ],
            ),
            (
                &c.messages,
                vec![
                    idx(doc! { "group_id": 1, "seq": 1 }, true),
                    idx(doc! { "group_id": 1, "client_key": 1 }, false),
                    // A deletion erases the edits of its target.
                    idx(doc! { "group_id": 1, "target_id": 1 }, false),
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
}
