//! Groups, membership and its listings. The membership algorithm is `store::membership`'s; this
//! file says how SQLite reads and writes inside its transaction ([`Sql`]).

use futures::executor::block_on;
use rusqlite::Connection;

use async_trait::async_trait;

use crate::store::AccountStore;
use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;

use super::cached::CachedSql;
use super::rows::*;
use super::{SqliteStore, db, id, ms};
use crate::domain::{Command, Cursor, Effect, GroupId, Limit, Relation, Role, UserId, from_millis};
use crate::error::{AppError, AppResult};
use crate::store::membership::{self, GroupReads, MembershipTx, Reads};
use crate::store::paging::{page, rows_for, split_time_key, time_key};
use crate::store::{
    BanRecord, Executed, GroupFilter, GroupRecord, GroupStore, InvitationRecord, JoinRequestRecord,
    MemberRecord, Page, Policy,
};

/// One connection (a reader, or the writer inside its transaction) as the membership algorithm
/// sees it. Its futures never wait: the queries run synchronously on the calling thread.
struct Sql<'a>(&'a Connection);

impl GroupReads for Sql<'_> {
    type Error = AppError;

    async fn group(&mut self, g: GroupId) -> AppResult<Option<GroupRecord>> {
        load_group(self.0, g)
    }

    async fn role(&mut self, g: GroupId, u: UserId) -> AppResult<Option<Role>> {
        self.0
            .row(
                "SELECT role FROM memberships WHERE group_id = ?1 AND user_id = ?2",
                [g.to_string(), u.to_string()],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(db)
            .map(|r| r.map(role))
    }

    async fn pending(&mut self, g: GroupId, u: UserId) -> AppResult<bool> {
        exists(self.0, "join_requests", g, u)
    }

    async fn banned(&mut self, g: GroupId, u: UserId) -> AppResult<bool> {
        exists(self.0, "bans", g, u)
    }

    async fn invited(&mut self, g: GroupId, u: UserId) -> AppResult<bool> {
        exists(self.0, "invitations", g, u)
    }

    async fn cooldown_until(&mut self, g: GroupId, u: UserId) -> AppResult<Option<OffsetDateTime>> {
        self.0
            .row(
                "SELECT until FROM cooldowns WHERE group_id = ?1 AND user_id = ?2",
                [g.to_string(), u.to_string()],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map_err(db)
            .map(|t| t.map(from_millis))
    }
}

impl MembershipTx for Sql<'_> {
    async fn lock_group(&mut self, g: GroupId) -> AppResult<Option<GroupRecord>> {
        // The one writer connection serialises every change already.
        load_group(self.0, g)
    }

    async fn user_exists(&mut self, u: UserId) -> AppResult<bool> {
        Ok(self
            .0
            .row("SELECT 1 FROM users WHERE id = ?1", [u.to_string()], |_| {
                Ok(())
            })
            .optional()
            .map_err(db)?
            .is_some())
    }

    async fn member_ids(&mut self, g: GroupId) -> AppResult<Vec<UserId>> {
        let mut st = self
            .0
            .prepare_cached("SELECT user_id FROM memberships WHERE group_id = ?1")
            .map_err(db)?;
        st.query_map([g.to_string()], |r| id(r.get(0)?))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(db)
    }

    async fn lock_user(&mut self, _: UserId) -> AppResult<()> {
        // The one writer connection serialises every change already.
        Ok(())
    }

    async fn membership_count(&mut self, u: UserId) -> AppResult<u64> {
        self.0
            .row(
                "SELECT COUNT(*) FROM memberships WHERE user_id = ?1",
                [u.to_string()],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(db)
    }

    async fn apply(&mut self, g: GroupId, effect: &Effect, now: OffsetDateTime) -> AppResult<()> {
        apply(self.0, g, effect, now)
    }
}

/// The `(time, id)` a listing continues after; the start for the first page.
fn after_time_key(after: Option<&Cursor>) -> AppResult<(i64, String)> {
    Ok(match after {
        Some(c) => split_time_key(c)?,
        None => (i64::MIN, String::new()),
    })
}

/// Whether a (group, user) row exists in `table` (a fixed table name, never client input).
fn exists(c: &Connection, table: &str, g: GroupId, u: UserId) -> AppResult<bool> {
    Ok(c.row(
        &format!("SELECT 1 FROM {table} WHERE group_id = ?1 AND user_id = ?2"),
        [g.to_string(), u.to_string()],
        |_| Ok(()),
    )
    .optional()
    .map_err(db)?
    .is_some())
}

fn load_group(c: &Connection, g: GroupId) -> AppResult<Option<GroupRecord>> {
    c.row(
        &format!("SELECT {GROUP_COLS} FROM groups g WHERE g.id = ?1"),
        [g.to_string()],
        group_row,
    )
    .optional()
    .map_err(db)
}

fn apply(tx: &Connection, g: GroupId, effect: &Effect, now: OffsetDateTime) -> AppResult<()> {
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
        Effect::AddInvitation { user, by } => tx.exec(
            "INSERT INTO invitations (group_id, user_id, invited_by, invited_at) VALUES (?1, ?2, ?3, ?4)",
            params![gs, user.to_string(), by.to_string(), ms(now)],
        ),
        Effect::RemoveInvitation { user } => {
            tx.exec("DELETE FROM invitations WHERE group_id = ?1 AND user_id = ?2", [&gs, &user.to_string()])
        }
        Effect::UpdateGroup(p) => tx.exec(
            "UPDATE groups SET name = coalesce(?2, name), name_lower = coalesce(?3, name_lower),
             description = coalesce(?4, description), visibility = coalesce(?5, visibility),
             max_members = coalesce(?6, max_members) WHERE id = ?1",
            params![
                gs,
                p.name,
                p.name.as_ref().map(|n| n.to_lowercase()),
                p.description,
                p.visibility.map(|v| v.as_str()),
                p.max_members
            ],
        ),
        Effect::DeleteGroup => {
            for table in ["memberships", "join_requests", "bans", "cooldowns", "invitations", "messages"] {
                tx.exec(&format!("DELETE FROM {table} WHERE group_id = ?1"), [&gs]).map_err(db)?;
            }
            tx.exec("DELETE FROM groups WHERE id = ?1", [&gs])
        }
    };
    r.map(|_| ()).map_err(db)
}

impl SqliteStore {
    /// One page of a per-group listing of users (members, requests, bans), oldest first by
    /// `(time, user_id)`: `sql` takes the group, the cursor's time and user, and the row count.
    async fn user_listing<T: Send + 'static>(
        &self,
        sql: &'static str,
        (gid, limit, after): (GroupId, Limit, Option<&Cursor>),
        row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
        key: fn(&T) -> String,
    ) -> AppResult<Page<T>> {
        let (t, u) = after_time_key(after)?;
        self.read(move |c| {
            let mut st = c.prepare_cached(sql).map_err(db)?;
            let items = st
                .query_map(params![gid.to_string(), t, u, rows_for(limit)], row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)?;
            Ok(page(items, limit, key, Some))
        })
        .await
    }
}

#[async_trait]
impl GroupStore for SqliteStore {
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
                .query_map(params![after, query, vis, rows_for(limit)], group_row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)?;
            Ok(page(items, limit, |g| g.id.to_string(), Some))
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
                .query_map(params![user.to_string(), after, rows_for(limit)], |r| {
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
            Ok(page(items, limit, |(g, _)| g.id.to_string(), Some))
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
            block_on(membership::group_and_relation(
                &mut Sql(c),
                gid,
                user,
                Reads::Full,
            ))
        })
        .await
    }

    async fn access(
        &self,
        gid: GroupId,
        user: UserId,
    ) -> AppResult<Option<(GroupRecord, Relation)>> {
        self.read(move |c| {
            block_on(membership::group_and_relation(
                &mut Sql(c),
                gid,
                user,
                Reads::MemberShortcut,
            ))
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
            block_on(membership::execute(
                &mut Sql(tx),
                gid,
                actor,
                &cmd,
                now,
                policy,
            ))
        })
        .await
    }

    async fn members(
        &self,
        gid: GroupId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<MemberRecord>> {
        self.user_listing(
            "SELECT m.user_id, u.username, m.role, m.joined_at FROM memberships m JOIN users u ON u.id = m.user_id
             WHERE m.group_id = ?1 AND (m.joined_at, m.user_id) > (?2, ?3)
             ORDER BY m.joined_at, m.user_id LIMIT ?4",
            (gid, limit, after),
            |r| Ok(MemberRecord { user_id: id(r.get(0)?)?, username: r.get(1)?, role: role(r.get(2)?), joined_at: from_millis(r.get(3)?) }),
            |m| time_key(m.joined_at, m.user_id),
        )
        .await
    }

    async fn join_requests(
        &self,
        gid: GroupId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<JoinRequestRecord>> {
        self.user_listing(
            "SELECT j.user_id, u.username, j.requested_at FROM join_requests j JOIN users u ON u.id = j.user_id
             WHERE j.group_id = ?1 AND (j.requested_at, j.user_id) > (?2, ?3)
             ORDER BY j.requested_at, j.user_id LIMIT ?4",
            (gid, limit, after),
            |r| Ok(JoinRequestRecord { user_id: id(r.get(0)?)?, username: r.get(1)?, requested_at: from_millis(r.get(2)?) }),
            |j| time_key(j.requested_at, j.user_id),
        )
        .await
    }

    async fn bans(
        &self,
        gid: GroupId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<BanRecord>> {
        self.user_listing(
            "SELECT b.user_id, u.username, b.banned_by, b.banned_at FROM bans b JOIN users u ON u.id = b.user_id
             WHERE b.group_id = ?1 AND (b.banned_at, b.user_id) > (?2, ?3)
             ORDER BY b.banned_at, b.user_id LIMIT ?4",
            (gid, limit, after),
            |r| Ok(BanRecord { user_id: id(r.get(0)?)?, username: r.get(1)?, banned_by: id(r.get(2)?)?, banned_at: from_millis(r.get(3)?) }),
            |b| time_key(b.banned_at, b.user_id),
        )
        .await
    }

    async fn managed_group_ids(&self, user: UserId) -> AppResult<Vec<GroupId>> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached("SELECT group_id FROM memberships WHERE user_id = ?1 AND role IN ('owner', 'moderator')")
                .map_err(db)?;
            st.query_map([user.to_string()], |r| id(r.get(0)?))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)
        })
        .await
    }

    async fn username_of(&self, user: UserId) -> AppResult<Option<String>> {
        Ok(self
            .user_by_id(user)
            .await?
            .map(|u| u.username.as_str().to_owned()))
    }

    async fn member(&self, gid: GroupId, user: UserId) -> AppResult<Option<MemberRecord>> {
        self.read(move |c| {
            c.row(
                "SELECT m.user_id, u.username, m.role, m.joined_at FROM memberships m JOIN users u ON u.id = m.user_id
                 WHERE m.group_id = ?1 AND m.user_id = ?2",
                [gid.to_string(), user.to_string()],
                |r| Ok(MemberRecord { user_id: id(r.get(0)?)?, username: r.get(1)?, role: role(r.get(2)?), joined_at: from_millis(r.get(3)?) }),
            )
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn group_invitations(
        &self,
        gid: GroupId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<InvitationRecord>> {
        self.user_listing(
            "SELECT i.group_id, i.user_id, u.username, i.invited_by, i.invited_at FROM invitations i JOIN users u ON u.id = i.user_id
             WHERE i.group_id = ?1 AND (i.invited_at, i.user_id) > (?2, ?3)
             ORDER BY i.invited_at, i.user_id LIMIT ?4",
            (gid, limit, after),
            invitation_row,
            |i| time_key(i.invited_at, i.user_id),
        )
        .await
    }

    async fn invitations_of_user(
        &self,
        user: UserId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<(GroupRecord, InvitationRecord)>> {
        let (t, g) = after_time_key(after)?;
        self.read(move |c| {
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT {GROUP_COLS}, i.group_id, i.user_id, u.username, i.invited_by, i.invited_at FROM invitations i
                     JOIN groups g ON g.id = i.group_id JOIN users u ON u.id = i.user_id
                     WHERE i.user_id = ?1 AND (i.invited_at, i.group_id) > (?2, ?3)
                     ORDER BY i.invited_at, i.group_id LIMIT ?4"
                ))
                .map_err(db)?;
            let items = st
                .query_map(params![user.to_string(), t, g, rows_for(limit)], |r| {
                    Ok((group_row(r)?, invitation_row_at(r, 8)?))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)?;
            Ok(page(items, limit, |(_, i)| time_key(i.invited_at, i.group_id), Some))
        })
        .await
    }
}

fn invitation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<InvitationRecord> {
    invitation_row_at(r, 0)
}

/// An invitation from five columns starting at `at`: group, user, username, by, when.
fn invitation_row_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<InvitationRecord> {
    Ok(InvitationRecord {
        group_id: id(r.get(at)?)?,
        user_id: id(r.get(at + 1)?)?,
        username: r.get(at + 2)?,
        invited_by: id(r.get(at + 3)?)?,
        invited_at: from_millis(r.get(at + 4)?),
    })
}
