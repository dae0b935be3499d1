//! The standalone engine: SQLite in one file under the data directory (WAL, `synchronous=FULL`,
//! so a commit survives a crash of the process or the machine). One writer connection, taken
//! under a mutex, serialises every change: with a single process that is all the atomicity the
//! membership rules need, and SQLite commits in microseconds. Reads use their own connections
//! so they never wait behind a write.

mod cached;
mod schema;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use time::OffsetDateTime;

use self::cached::CachedSql;
use super::{
    Appended, BanRecord, Executed, GroupFilter, GroupRecord, HistoryQuery, JoinRequestRecord,
    MemberRecord, NewMessage, Page, Policy, Purged, RefreshTokenRecord, Rotation, Store,
    StoredMessage, TokenHash, UserRecord,
};
use crate::domain::membership::{Snapshot, decide};
use crate::domain::{AuditEvent, AuditKind};
use crate::domain::{
    Command, Cursor, Effect, GroupFacts, GroupId, Limit, MessageId, Relation, Role, UserId,
    Username, Visibility, from_millis, now as domain_now, to_millis,
};
use crate::error::{AppError, AppResult};

const READERS: usize = 4;

pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
    audit_retention: std::time::Duration,
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

    async fn write<T, F>(&self, f: F) -> AppResult<T>
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

    async fn read<T, F>(&self, f: F) -> AppResult<T>
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

fn db(e: rusqlite::Error) -> AppError {
    AppError::Internal(anyhow::Error::new(e).context("sqlite"))
}

fn id<T: std::str::FromStr>(s: String) -> rusqlite::Result<T> {
    s.parse().map_err(|_| {
        rusqlite::Error::InvalidColumnType(0, "id".into(), rusqlite::types::Type::Text)
    })
}

fn ms(t: OffsetDateTime) -> i64 {
    to_millis(t)
}

fn user_row(r: &Row<'_>) -> rusqlite::Result<UserRecord> {
    let name: String = r.get(1)?;
    Ok(UserRecord {
        id: id(r.get(0)?)?,
        username: Username::parse(&name).map_err(|_| {
            rusqlite::Error::InvalidColumnType(1, "username".into(), rusqlite::types::Type::Text)
        })?,
        password_hash: r.get(2)?,
        created_at: from_millis(r.get(3)?),
    })
}

const GROUP_COLS: &str = "g.id, g.name, g.description, g.visibility, g.owner_id, g.member_count, g.max_members, g.created_at";

fn group_row(r: &Row<'_>) -> rusqlite::Result<GroupRecord> {
    let vis: String = r.get(3)?;
    Ok(GroupRecord {
        id: id(r.get(0)?)?,
        name: r.get(1)?,
        description: r.get(2)?,
        visibility: if vis == "private" {
            Visibility::Private
        } else {
            Visibility::Open
        },
        owner_id: id(r.get(4)?)?,
        member_count: r.get(5)?,
        max_members: r.get(6)?,
        created_at: from_millis(r.get(7)?),
    })
}

fn role(s: String) -> Role {
    Role::parse(&s).unwrap_or(Role::Member)
}

fn message_row(r: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        group_id: id(r.get(0)?)?,
        seq: r.get::<_, i64>(1)? as u64,
        id: id(r.get(2)?)?,
        sender_id: id(r.get(3)?)?,
        envelope: r.get(4)?,
        sent_at: from_millis(r.get(5)?),
        client_msg_id: r.get(6)?,
    })
}

const MESSAGE_COLS: &str = "group_id, seq, id, sender_id, envelope, sent_at, client_msg_id";

fn load_group(c: &Connection, g: GroupId) -> AppResult<Option<GroupRecord>> {
    c.row(
        &format!("SELECT {GROUP_COLS} FROM groups g WHERE g.id = ?1"),
        [g.to_string()],
        group_row,
    )
    .optional()
    .map_err(db)
}

fn load_relation(c: &Connection, g: GroupId, u: UserId) -> AppResult<Relation> {
    let (g, u) = (g.to_string(), u.to_string());
    let role = c
        .row(
            "SELECT role FROM memberships WHERE group_id = ?1 AND user_id = ?2",
            [&g, &u],
            |r| r.get::<_, String>(0),
        )
        .optional()
        .map_err(db)?
        .map(role);
    let pending = c
        .row(
            "SELECT 1 FROM join_requests WHERE group_id = ?1 AND user_id = ?2",
            [&g, &u],
            |_| Ok(()),
        )
        .optional()
        .map_err(db)?
        .is_some();
    let banned = c
        .row(
            "SELECT 1 FROM bans WHERE group_id = ?1 AND user_id = ?2",
            [&g, &u],
            |_| Ok(()),
        )
        .optional()
        .map_err(db)?
        .is_some();
    let cooldown_until = c
        .row(
            "SELECT until FROM cooldowns WHERE group_id = ?1 AND user_id = ?2",
            [&g, &u],
            |r| r.get::<_, i64>(0),
        )
        .optional()
        .map_err(db)?
        .map(from_millis);
    Ok(Relation {
        role,
        pending,
        banned,
        cooldown_until,
    })
}

fn user_exists(c: &Connection, u: UserId) -> AppResult<bool> {
    Ok(
        c.row("SELECT 1 FROM users WHERE id = ?1", [u.to_string()], |_| {
            Ok(())
        })
        .optional()
        .map_err(db)?
        .is_some(),
    )
}

fn apply(tx: &Transaction<'_>, g: GroupId, effect: &Effect, now: OffsetDateTime) -> AppResult<()> {
    let gs = g.to_string();
    let r = match effect {
        Effect::AddMember { user, role } => {
            tx.exec(
                "INSERT INTO memberships (group_id, user_id, role, joined_at) VALUES (?1, ?2, ?3, ?4)",
                params![gs, user.to_string(), role.as_str(), ms(now)],
            )
            .and_then(|_| tx.exec("UPDATE groups SET member_count = member_count + 1 WHERE id = ?1", [&gs]))
        }
        Effect::RemoveMember { user } => tx
            .exec("DELETE FROM memberships WHERE group_id = ?1 AND user_id = ?2", [&gs, &user.to_string()])
            .and_then(|n| tx.exec("UPDATE groups SET member_count = member_count - ?2 WHERE id = ?1", params![gs, n as i64])),
        Effect::SetRole { user, role } => tx.exec(
            "UPDATE memberships SET role = ?3 WHERE group_id = ?1 AND user_id = ?2",
            params![gs, user.to_string(), role.as_str()],
        ),
        Effect::SetOwner { user } => tx.exec("UPDATE groups SET owner_id = ?2 WHERE id = ?1", [&gs, &user.to_string()]),
        Effect::AddRequest { user } => tx.exec(
            "INSERT INTO join_requests (group_id, user_id, requested_at) VALUES (?1, ?2, ?3)",
            params![gs, user.to_string(), ms(now)],
        ),
        Effect::RemoveRequest { user } => {
            tx.exec("DELETE FROM join_requests WHERE group_id = ?1 AND user_id = ?2", [&gs, &user.to_string()])
        }
        Effect::AddBan { user, by } => tx.exec(
            "INSERT OR IGNORE INTO bans (group_id, user_id, banned_by, banned_at) VALUES (?1, ?2, ?3, ?4)",
            params![gs, user.to_string(), by.to_string(), ms(now)],
        ),
        Effect::RemoveBan { user } => {
            tx.exec("DELETE FROM bans WHERE group_id = ?1 AND user_id = ?2", [&gs, &user.to_string()])
        }
        Effect::SetCooldown { user, until } => tx.exec(
            "INSERT INTO cooldowns (group_id, user_id, until) VALUES (?1, ?2, ?3)
             ON CONFLICT (group_id, user_id) DO UPDATE SET until = excluded.until",
            params![gs, user.to_string(), ms(*until)],
        ),
        Effect::DeleteGroup => {
            for table in ["memberships", "join_requests", "bans", "cooldowns", "messages"] {
                tx.exec(&format!("DELETE FROM {table} WHERE group_id = ?1"), [&gs]).map_err(db)?;
            }
            tx.exec("DELETE FROM groups WHERE id = ?1", [&gs])
        }
    };
    r.map(|_| ()).map_err(db)
}

/// Keyset paging: fetch one more than asked to learn whether a next page exists.
fn page<T>(mut items: Vec<T>, limit: Limit, key: impl Fn(&T) -> String) -> Page<T> {
    let more = items.len() > limit.get() as usize;
    items.truncate(limit.get() as usize);
    let next = if more {
        items.last().map(|i| Cursor::from_key(&key(i)))
    } else {
        None
    };
    Page { items, next }
}

/// A `(time, id)` cursor key, as written by [`time_key`].
fn split_time_key(c: Option<&Cursor>) -> (i64, String) {
    c.and_then(|c| {
        let (t, u) = c.key().split_once('|')?;
        Some((t.parse().ok()?, u.to_owned()))
    })
    .unwrap_or((i64::MIN, String::new()))
}

fn time_key(t: OffsetDateTime, u: UserId) -> String {
    format!("{}|{}", ms(t), u)
}

fn find_message(
    c: &Connection,
    where_: &str,
    args: &[&dyn rusqlite::ToSql],
) -> AppResult<Option<StoredMessage>> {
    c.row(
        &format!("SELECT {MESSAGE_COLS} FROM messages WHERE {where_}"),
        args,
        message_row,
    )
    .optional()
    .map_err(db)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> AppResult<()> {
        self.read(|c| c.row("SELECT 1", [], |_| Ok(())).map_err(db))
            .await
    }

    async fn prepare_schema(&self) -> AppResult<()> {
        // The migrations ran when the file was opened.
        Ok(())
    }

    async fn schema_ready(&self) -> AppResult<bool> {
        Ok(true)
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> AppResult<Purged> {
        let now = ms(now);
        self.write(move |tx| {
            let refresh_tokens = tx
                .exec("DELETE FROM refresh_tokens WHERE expires_at <= ?1", [now])
                .map_err(db)? as u64;
            let cooldowns = tx
                .exec("DELETE FROM cooldowns WHERE until <= ?1", [now])
                .map_err(db)? as u64;
            Ok(Purged {
                refresh_tokens,
                cooldowns,
            })
        })
        .await
    }

    async fn create_user(&self, user: &UserRecord) -> AppResult<()> {
        let u = user.clone();
        self.write(move |tx| {
            let r = tx.exec(
                "INSERT INTO users (id, username, username_canon, password_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![u.id.to_string(), u.username.as_str(), u.username.canonical(), u.password_hash, ms(u.created_at)],
            );
            match r {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                    Err(AppError::conflict("username_taken", "this username is taken"))
                }
                Err(e) => Err(db(e)),
            }
        })
        .await
    }

    async fn user_by_username(&self, username: &Username) -> AppResult<Option<UserRecord>> {
        let canon = username.canonical();
        self.read(move |c| {
            c.row(
                "SELECT id, username, password_hash, created_at FROM users WHERE username_canon = ?1",
                [canon],
                user_row,
            )
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn user_by_id(&self, uid: UserId) -> AppResult<Option<UserRecord>> {
        self.read(move |c| {
            c.row(
                "SELECT id, username, password_hash, created_at FROM users WHERE id = ?1",
                [uid.to_string()],
                user_row,
            )
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn insert_refresh_token(&self, t: &RefreshTokenRecord) -> AppResult<()> {
        let t = t.clone();
        self.write(move |tx| {
            tx.exec(
                "INSERT INTO refresh_tokens (hash, user_id, family_id, issued_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![&t.hash.0[..], t.user_id.to_string(), t.family_id, ms(t.issued_at), ms(t.expires_at)],
            )
            .map(|_| ())
            .map_err(db)
        })
        .await
    }

    async fn rotate_refresh_token(
        &self,
        presented: &TokenHash,
        next: &RefreshTokenRecord,
        now: OffsetDateTime,
    ) -> AppResult<Rotation> {
        let (presented, next) = (presented.clone(), next.clone());
        self.write(move |tx| {
            let row = tx
                .row(
                    "SELECT user_id, family_id, expires_at, spent, revoked FROM refresh_tokens WHERE hash = ?1",
                    [&presented.0[..]],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, bool>(3)?, r.get::<_, bool>(4)?)),
                )
                .optional()
                .map_err(db)?;
            let Some((user, family, expires, spent, revoked)) = row else { return Ok(Rotation::Invalid) };
            let user_id: UserId = user.parse().map_err(|_| AppError::Internal(anyhow::anyhow!("bad user id in refresh_tokens")))?;
            if revoked || expires <= ms(now) {
                return Ok(Rotation::Invalid);
            }
            if spent {
                tx.exec("UPDATE refresh_tokens SET revoked = 1 WHERE family_id = ?1", [&family]).map_err(db)?;
                return Ok(Rotation::ReuseDetected { user_id });
            }
            tx.exec("UPDATE refresh_tokens SET spent = 1 WHERE hash = ?1", [&presented.0[..]]).map_err(db)?;
            tx.exec(
                "INSERT INTO refresh_tokens (hash, user_id, family_id, issued_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![&next.hash.0[..], user_id.to_string(), family, ms(next.issued_at), ms(next.expires_at)],
            )
            .map_err(db)?;
            Ok(Rotation::Rotated { user_id })
        })
        .await
    }

    async fn revoke_refresh_family(&self, presented: &TokenHash) -> AppResult<bool> {
        let presented = presented.clone();
        self.write(move |tx| {
            let n = tx
                .exec(
                    "UPDATE refresh_tokens SET revoked = 1 WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE hash = ?1)",
                    [&presented.0[..]],
                )
                .map_err(db)?;
            Ok(n > 0)
        })
        .await
    }

    async fn create_group(&self, g: &GroupRecord) -> AppResult<()> {
        let g = g.clone();
        self.write(move |tx| {
            tx.exec(
                "INSERT INTO groups (id, name, name_lower, description, visibility, owner_id, member_count, max_members, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8)",
                params![g.id.to_string(), g.name, g.name.to_lowercase(), g.description, g.visibility.as_str(), g.owner_id.to_string(), g.max_members, ms(g.created_at)],
            )
            .map_err(db)?;
            tx.exec(
                "INSERT INTO memberships (group_id, user_id, role, joined_at) VALUES (?1, ?2, 'owner', ?3)",
                params![g.id.to_string(), g.owner_id.to_string(), ms(g.created_at)],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn group(&self, gid: GroupId) -> AppResult<Option<GroupRecord>> {
        self.read(move |c| load_group(c, gid)).await
    }

    async fn list_groups(
        &self,
        filter: &GroupFilter,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<GroupRecord>> {
        let query = filter
            .query
            .as_ref()
            .map(|q| format!("%{}%", escape_like(&q.to_lowercase())));
        let vis = filter.visibility.map(|v| v.as_str());
        let after = after.map(|c| c.key().to_owned()).unwrap_or_default();
        self.read(move |c| {
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT {GROUP_COLS} FROM groups g
                     WHERE g.id > ?1 AND (?2 IS NULL OR g.name_lower LIKE ?2 ESCAPE '\\') AND (?3 IS NULL OR g.visibility = ?3)
                     ORDER BY g.id LIMIT ?4"
                ))
                .map_err(db)?;
            let items = st
                .query_map(params![after, query, vis, limit.get() + 1], group_row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)?;
            Ok(page(items, limit, |g| g.id.to_string()))
        })
        .await
    }

    async fn groups_of_user(
        &self,
        user: UserId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<(GroupRecord, MemberRecord)>> {
        let after = after.map(|c| c.key().to_owned()).unwrap_or_default();
        self.read(move |c| {
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT {GROUP_COLS}, m.role, m.joined_at, u.username FROM memberships m
                     JOIN groups g ON g.id = m.group_id JOIN users u ON u.id = m.user_id
                     WHERE m.user_id = ?1 AND m.group_id > ?2 ORDER BY m.group_id LIMIT ?3"
                ))
                .map_err(db)?;
            let items = st
                .query_map(params![user.to_string(), after, limit.get() + 1], |r| {
                    Ok((
                        group_row(r)?,
                        MemberRecord {
                            user_id: user,
                            role: role(r.get(8)?),
                            joined_at: from_millis(r.get(9)?),
                            username: r.get(10)?,
                        },
                    ))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)?;
            Ok(page(items, limit, |(g, _)| g.id.to_string()))
        })
        .await
    }

    async fn group_ids_of_user(&self, user: UserId) -> AppResult<Vec<GroupId>> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached("SELECT group_id FROM memberships WHERE user_id = ?1")
                .map_err(db)?;
            st.query_map([user.to_string()], |r| id(r.get(0)?))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)
        })
        .await
    }

    async fn relation(
        &self,
        gid: GroupId,
        user: UserId,
    ) -> AppResult<Option<(GroupRecord, Relation)>> {
        self.read(move |c| {
            let Some(g) = load_group(c, gid)? else {
                return Ok(None);
            };
            Ok(Some((g, load_relation(c, gid, user)?)))
        })
        .await
    }

    async fn execute(
        &self,
        gid: GroupId,
        actor: UserId,
        cmd: &Command,
        now: OffsetDateTime,
        policy: Policy,
    ) -> AppResult<Executed> {
        let cmd = cmd.clone();
        self.write(move |tx| {
            let group = load_group(tx, gid)?.ok_or(AppError::NotFound)?;
            let facts = GroupFacts {
                visibility: group.visibility,
                owner_id: group.owner_id,
                member_count: group.member_count,
                max_members: group.max_members,
            };
            let actor_rel = load_relation(tx, gid, actor)?;
            let target_rel = match cmd.target() {
                Some(t) if t == actor => actor_rel.clone(),
                Some(t) => {
                    if !user_exists(tx, t)? {
                        return Err(AppError::NotFound);
                    }
                    load_relation(tx, gid, t)?
                }
                None => Relation::default(),
            };
            let snapshot = Snapshot {
                group: &facts,
                actor_id: actor,
                actor: &actor_rel,
                target: &target_rel,
            };
            let decision = decide(&cmd, &snapshot, now, policy.rejoin_cooldown)?;
            let former_members = if decision.effects.contains(&Effect::DeleteGroup) {
                let mut st = tx
                    .prepare_cached("SELECT user_id FROM memberships WHERE group_id = ?1")
                    .map_err(db)?;
                st.query_map([gid.to_string()], |r| id(r.get(0)?))
                    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                    .map_err(db)?
            } else {
                Vec::new()
            };
            for e in &decision.effects {
                apply(tx, gid, e, now)?;
            }
            Ok(Executed {
                outcome: decision.outcome,
                group: load_group(tx, gid)?,
                effects: decision.effects,
                former_members,
            })
        })
        .await
    }

    async fn members(
        &self,
        gid: GroupId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<MemberRecord>> {
        let (t, u) = split_time_key(after);
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT m.user_id, u.username, m.role, m.joined_at FROM memberships m JOIN users u ON u.id = m.user_id
                     WHERE m.group_id = ?1 AND (m.joined_at, m.user_id) > (?2, ?3)
                     ORDER BY m.joined_at, m.user_id LIMIT ?4",
                )
                .map_err(db)?;
            let items = st
                .query_map(params![gid.to_string(), t, u, limit.get() + 1], |r| {
                    Ok(MemberRecord { user_id: id(r.get(0)?)?, username: r.get(1)?, role: role(r.get(2)?), joined_at: from_millis(r.get(3)?) })
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)?;
            Ok(page(items, limit, |m| time_key(m.joined_at, m.user_id)))
        })
        .await
    }

    async fn join_requests(
        &self,
        gid: GroupId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<JoinRequestRecord>> {
        let (t, u) = split_time_key(after);
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT j.user_id, u.username, j.requested_at FROM join_requests j JOIN users u ON u.id = j.user_id
                     WHERE j.group_id = ?1 AND (j.requested_at, j.user_id) > (?2, ?3)
                     ORDER BY j.requested_at, j.user_id LIMIT ?4",
                )
                .map_err(db)?;
            let items = st
                .query_map(params![gid.to_string(), t, u, limit.get() + 1], |r| {
                    Ok(JoinRequestRecord { user_id: id(r.get(0)?)?, username: r.get(1)?, requested_at: from_millis(r.get(2)?) })
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)?;
            Ok(page(items, limit, |j| time_key(j.requested_at, j.user_id)))
        })
        .await
    }

    async fn bans(
        &self,
        gid: GroupId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<BanRecord>> {
        let (t, u) = split_time_key(after);
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT b.user_id, u.username, b.banned_by, b.banned_at FROM bans b JOIN users u ON u.id = b.user_id
                     WHERE b.group_id = ?1 AND (b.banned_at, b.user_id) > (?2, ?3)
                     ORDER BY b.banned_at, b.user_id LIMIT ?4",
                )
                .map_err(db)?;
            let items = st
                .query_map(params![gid.to_string(), t, u, limit.get() + 1], |r| {
                    Ok(BanRecord { user_id: id(r.get(0)?)?, username: r.get(1)?, banned_by: id(r.get(2)?)?, banned_at: from_millis(r.get(3)?) })
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)?;
            Ok(page(items, limit, |b| time_key(b.banned_at, b.user_id)))
        })
        .await
    }

    async fn message_id_for_client_id(
        &self,
        gid: GroupId,
        sender: UserId,
        cmid: &str,
    ) -> AppResult<Option<MessageId>> {
        let cmid = cmid.to_owned();
        self.read(move |c| {
            c.row(
                "SELECT id FROM messages WHERE group_id = ?1 AND sender_id = ?2 AND client_msg_id = ?3",
                params![gid.to_string(), sender.to_string(), cmid],
                |r| id(r.get(0)?),
            )
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn append_messages(&self, batch: &[NewMessage]) -> AppResult<Vec<Appended>> {
        let batch = batch.to_vec();
        self.write(move |tx| {
            let mut out = Vec::with_capacity(batch.len());
            for m in batch {
                let (g, s, mid) = (m.group_id.to_string(), m.sender_id.to_string(), m.id.to_string());
                if let Some(existing) = find_message(tx, "id = ?1", &[&mid])? {
                    out.push(Appended::Duplicate(existing));
                    continue;
                }
                if let Some(cmid) = &m.client_msg_id
                    && let Some(existing) =
                        find_message(tx, "group_id = ?1 AND sender_id = ?2 AND client_msg_id = ?3", &[&g, &s, cmid])?
                    {
                        out.push(Appended::Duplicate(existing));
                        continue;
                    }
                let seq: Option<i64> = tx
                    .row("UPDATE groups SET last_seq = last_seq + 1 WHERE id = ?1 RETURNING last_seq", [&g], |r| r.get(0))
                    .optional()
                    .map_err(db)?;
                let Some(seq) = seq else {
                    out.push(Appended::GroupGone);
                    continue;
                };
                tx.prepare_cached(
                    "INSERT INTO messages (group_id, seq, id, sender_id, envelope, sent_at, client_msg_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .and_then(|mut st| st.execute(params![g, seq, mid, s, m.envelope, ms(m.sent_at), m.client_msg_id]))
                .map_err(db)?;
                out.push(Appended::Stored(StoredMessage {
                    id: m.id,
                    group_id: m.group_id,
                    seq: seq as u64,
                    sender_id: m.sender_id,
                    envelope: m.envelope,
                    sent_at: m.sent_at,
                    client_msg_id: m.client_msg_id,
                }));
            }
            Ok(out)
        })
        .await
    }

    async fn messages(&self, gid: GroupId, q: &HistoryQuery) -> AppResult<Vec<StoredMessage>> {
        let q = *q;
        self.read(move |c| {
            // SQLite integers are i64: a larger position saturates instead of wrapping negative.
            let bound = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
            let after = q.after_seq.map(bound).unwrap_or(0);
            let before = q.before_seq.map(bound).unwrap_or(i64::MAX);
            // Reading forwards only when asked to; otherwise the newest page, so a client opening
            // a chat sees the latest messages and pages back with `before_seq`.
            let forwards = q.after_seq.is_some();
            let order = if forwards { "ASC" } else { "DESC" };
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLS} FROM messages WHERE group_id = ?1 AND seq > ?2 AND seq < ?3 ORDER BY seq {order} LIMIT ?4"
                ))
                .map_err(db)?;
            let mut items = st
                .query_map(params![gid.to_string(), after, before, q.limit], message_row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)?;
            if !forwards {
                items.reverse();
            }
            Ok(items)
        })
        .await
    }

    async fn scan_messages(
        &self,
        after: Option<(GroupId, u64)>,
        limit: u32,
    ) -> AppResult<Vec<StoredMessage>> {
        self.read(move |c| {
            let (group, seq) = after
                .map(|(g, s)| (g.to_string(), i64::try_from(s).unwrap_or(i64::MAX)))
                .unwrap_or_default();
            // The primary key (group_id, seq) serves this order, page after page.
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLS} FROM messages WHERE (group_id, seq) > (?1, ?2) ORDER BY group_id, seq LIMIT ?3"
                ))
                .map_err(db)?;
            st.query_map(params![group, seq, limit], message_row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)
        })
        .await
    }

    async fn replace_envelope(
        &self,
        group: GroupId,
        seq: u64,
        old: &[u8],
        new: &[u8],
    ) -> AppResult<bool> {
        let (old, new) = (old.to_vec(), new.to_vec());
        self.write(move |tx| {
            let n = tx
                .exec(
                    "UPDATE messages SET envelope = ?4 WHERE group_id = ?1 AND seq = ?2 AND envelope = ?3",
                    params![group.to_string(), i64::try_from(seq).unwrap_or(i64::MAX), old, new],
                )
                .map_err(db)?;
            Ok(n == 1)
        })
        .await
    }

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
                .query_map(params![gid.to_string(), t, after_id, limit.get() + 1], audit_row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)?;
            Ok(page(items, limit, AuditEvent::cursor_key))
        })
        .await
    }
}

fn audit_row(r: &Row<'_>) -> rusqlite::Result<AuditEvent> {
    let opt_id = |i: usize| -> rusqlite::Result<Option<String>> { r.get(i) };
    let kind: String = r.get(1)?;
    let client: Option<String> = r.get(5)?;
    Ok(AuditEvent {
        id: id(r.get(0)?)?,
        kind: AuditKind::parse(&kind).ok_or_else(|| {
            rusqlite::Error::InvalidColumnType(1, "kind".into(), rusqlite::types::Type::Text)
        })?,
        actor: opt_id(2)?.map(id).transpose()?,
        group: opt_id(3)?.map(id).transpose()?,
        target: opt_id(4)?.map(id).transpose()?,
        client: client.and_then(|c| c.parse().ok()),
        at: from_millis(r.get(6)?),
    })
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrations_are_idempotent_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let s = SqliteStore::open(dir.path()).unwrap();
        s.ping().await.unwrap();
    }
}
