//! Groups, membership and its listings. The membership algorithm is `store::membership`'s; this
//! file says how MongoDB reads and writes inside its session ([`Session`]).

use std::collections::HashMap;

use mongodb::Collection;
use mongodb::options::ReturnDocument;

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::ClientSession;
use mongodb::bson::{Bson, Document, doc};
use time::OffsetDateTime;

use super::docs::{self, date, escape_regex};
use super::tx::{TxError, TxResult, db_error, transaction};
use super::{Colls, MongoStore, app, collect, page_rows, usernames};
use crate::domain::{Command, Cursor, Effect, GroupId, Limit, Relation, Role, UserId};
use crate::error::{AppError, AppResult};
use crate::store::membership::{self, GroupReads, MembershipTx, Reads};
use crate::store::paging::{page, rows_for, split_time_key, time_key};
use crate::store::{
    AccountStore, BanRecord, Executed, GroupFilter, GroupRecord, GroupStore, InvitationRecord,
    JoinRequestRecord, MemberRecord, Page, Policy,
};

/// A session (in a transaction, or causally consistent reads) as the membership algorithm sees
/// it.
struct Session<'a> {
    c: &'a Colls,
    s: &'a mut ClientSession,
}

impl Session<'_> {
    fn key(g: GroupId, u: UserId) -> Document {
        doc! { "group_id": g.to_string(), "user_id": u.to_string() }
    }

    async fn present(
        &mut self,
        coll: &Collection<Document>,
        g: GroupId,
        u: UserId,
    ) -> TxResult<bool> {
        Ok(coll
            .find_one(Self::key(g, u))
            .projection(doc! { "_id": 1 })
            .session(&mut *self.s)
            .await?
            .is_some())
    }
}

impl GroupReads for Session<'_> {
    type Error = TxError;

    async fn group(&mut self, g: GroupId) -> TxResult<Option<GroupRecord>> {
        load_group(self.c, self.s, g).await
    }

    async fn role(&mut self, g: GroupId, u: UserId) -> TxResult<Option<Role>> {
        let m = self
            .c
            .memberships
            .find_one(Self::key(g, u))
            .session(&mut *self.s)
            .await?;
        Ok(m.as_ref().map(docs::role).transpose()?)
    }

    async fn pending(&mut self, g: GroupId, u: UserId) -> TxResult<bool> {
        let c = self.c;
        self.present(&c.join_requests, g, u).await
    }

    async fn banned(&mut self, g: GroupId, u: UserId) -> TxResult<bool> {
        let c = self.c;
        self.present(&c.bans, g, u).await
    }

    async fn invited(&mut self, g: GroupId, u: UserId) -> TxResult<bool> {
        let c = self.c;
        self.present(&c.invitations, g, u).await
    }

    async fn cooldown_until(&mut self, g: GroupId, u: UserId) -> TxResult<Option<OffsetDateTime>> {
        let d = self
            .c
            .cooldowns
            .find_one(Self::key(g, u))
            .session(&mut *self.s)
            .await?;
        Ok(d.as_ref().map(|d| docs::time(d, "until")).transpose()?)
    }
}

impl MembershipTx for Session<'_> {
    async fn lock_group(&mut self, g: GroupId) -> TxResult<Option<GroupRecord>> {
        // Load the group and write it in one step: see the module docs on write skew.
        let d = self
            .c
            .groups
            .find_one_and_update(
                doc! { "_id": g.to_string() },
                doc! { "$inc": { "rev": 1i64 } },
            )
            .return_document(ReturnDocument::After)
            .session(&mut *self.s)
            .await?;
        Ok(d.as_ref().map(docs::group).transpose()?)
    }

    async fn user_exists(&mut self, u: UserId) -> TxResult<bool> {
        Ok(self
            .c
            .users
            .find_one(doc! { "_id": u.to_string() })
            .projection(doc! { "_id": 1 })
            .session(&mut *self.s)
            .await?
            .is_some())
    }

    async fn member_ids(&mut self, g: GroupId) -> TxResult<Vec<UserId>> {
        Ok(collect(
            &self.c.memberships,
            self.s,
            doc! { "group_id": g.to_string() },
            None,
        )
        .await?
        .iter()
        .map(|d| docs::id(d, "user_id"))
        .collect::<AppResult<Vec<UserId>>>()?)
    }

    async fn lock_user(&mut self, u: UserId) -> TxResult<()> {
        // Any two transactions adding this user now write the same document: the second one
        // gets a write conflict and runs again, seeing the first one's membership.
        self.c
            .users
            .update_one(
                doc! { "_id": u.to_string() },
                doc! { "$inc": { "rev": 1i64 } },
            )
            .session(&mut *self.s)
            .await?;
        Ok(())
    }

    async fn membership_count(&mut self, u: UserId) -> TxResult<u64> {
        Ok(self
            .c
            .memberships
            .count_documents(doc! { "user_id": u.to_string() })
            .session(&mut *self.s)
            .await?)
    }

    async fn apply(&mut self, g: GroupId, effect: &Effect, now: OffsetDateTime) -> TxResult<()> {
        apply(self.c, self.s, &g.to_string(), effect, now).await
    }
}

pub(super) async fn load_group(
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

/// `{group_id, ((time, user_id) > cursor)}` for the per-group listings.
fn after_time_key(gid: GroupId, field: &str, after: Option<&Cursor>) -> AppResult<Document> {
    let mut f = doc! { "group_id": gid.to_string() };
    if let Some(c) = after {
        let (t, u) = split_time_key(c)?;
        let t = mongodb::bson::DateTime::from_millis(t);
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
            let after = c
                .groups
                .find_one_and_update(group, doc! { "$inc": { "member_count": 1i64 } })
                .projection(doc! { "last_seq": 1 })
                .session(&mut *s)
                .await?;
            // A new member's read marker starts at the group's last seq: history before the
            // join is not unread.
            let last_seq = after.map(|d| docs::int(&d, "last_seq")).transpose()?;
            let mut m = key(user);
            m.insert("role", role.as_str());
            m.insert("joined_at", date(now));
            m.insert("last_read_seq", last_seq.unwrap_or(0));
            c.memberships.insert_one(m).session(&mut *s).await?;
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
        Effect::AddInvitation { user, by } => {
            let mut i = key(user);
            i.insert("invited_by", by.to_string());
            i.insert("invited_at", date(now));
            c.invitations.insert_one(i).session(&mut *s).await?;
        }
        Effect::RemoveInvitation { user } => {
            c.invitations.delete_one(key(user)).session(&mut *s).await?;
        }
        Effect::UpdateGroup(p) => {
            let mut set = Document::new();
            if let Some(n) = &p.name {
                set.insert("name", n);
                set.insert("name_lower", n.to_lowercase());
            }
            if let Some(d) = &p.description {
                set.insert("description", d);
            }
            if let Some(v) = p.visibility {
                set.insert("visibility", v.as_str());
            }
            if let Some(m) = p.max_members {
                set.insert("max_members", i64::from(m));
            }
            if !set.is_empty() {
                c.groups
                    .update_one(group, doc! { "$set": set })
                    .session(&mut *s)
                    .await?;
            }
        }
        Effect::DeleteGroup => {
            let of_group = doc! { "group_id": g };
            let colls = [
                &c.memberships,
                &c.join_requests,
                &c.bans,
                &c.cooldowns,
                &c.invitations,
            ];
            for coll in colls {
                coll.delete_many(of_group.clone()).session(&mut *s).await?;
            }
            // The messages go after the commit (see `execute`): a long history would make the
            // transaction too large, and without the group they are unreachable anyway.
            c.groups.delete_one(group).session(&mut *s).await?;
        }
    }
    Ok(())
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
            "last_read_seq": 0i64,
        })
        .session(&mut *s)
        .await?;
    Ok(())
}

impl MongoStore {
    /// A group and a user's relation to it (`None`: no such group), for `relation` and `access`.
    async fn group_and_relation(
        &self,
        group: GroupId,
        user: UserId,
        reads: Reads,
    ) -> AppResult<Option<(GroupRecord, Relation)>> {
        let mut s = self.session().await?;
        let mut session = Session {
            c: &self.c,
            s: &mut s,
        };
        membership::group_and_relation(&mut session, group, user, reads)
            .await
            .map_err(app)
    }

    /// One page of a per-group listing of users (members, requests, bans, invitations), oldest
    /// first by `(time_field, user_id)` (`key`), with usernames (`name`) looked up in one more
    /// query.
    pub(super) async fn user_listing<T>(
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
        let docs = page_rows(coll, &mut s, f, doc! { time_field: 1, "user_id": 1 }, limit).await?;
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

#[async_trait]
impl GroupStore for MongoStore {
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
            .limit(i64::from(rows_for(limit)))
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
        let rows = page_rows(
            &self.c.memberships,
            &mut s,
            f,
            doc! { "user_id": 1, "group_id": 1 },
            limit,
        )
        .await?;
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
        let executed = transaction!(self, |s| membership::execute(
            &mut Session { c: &self.c, s },
            group,
            actor,
            cmd,
            now,
            policy
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

    async fn managed_group_ids(&self, user: UserId) -> AppResult<Vec<GroupId>> {
        self.managed_by(user).await
    }

    async fn username_of(&self, user: UserId) -> AppResult<Option<String>> {
        Ok(self
            .user_by_id(user)
            .await?
            .map(|u| u.username.as_str().to_owned()))
    }

    async fn member(&self, group: GroupId, user: UserId) -> AppResult<Option<MemberRecord>> {
        self.one_member(group, user).await
    }

    async fn group_invitations(
        &self,
        group: GroupId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<InvitationRecord>> {
        self.invitations_of_group(group, limit, after).await
    }

    async fn invitations_of_user(
        &self,
        user: UserId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<(GroupRecord, InvitationRecord)>> {
        self.invitations_to_user(user, limit, after).await
    }
}
