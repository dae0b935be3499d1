//! v1.1 reads of the MongoDB engine: managed groups, one member, and the invitation listings (by group, and by
//! invitee with their groups). Writes go through the membership algorithm (`groups.rs`).

use std::collections::HashMap;

use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};

use super::docs;
use super::tx::db_error;
use super::{MongoStore, app, collect, page_rows, usernames};
use crate::domain::{Cursor, GroupId, Limit, UserId};
use crate::error::AppResult;
use crate::store::paging::{page, split_time_key, time_key};
use crate::store::{GroupRecord, InvitationRecord, MemberRecord, Page};

fn invitation(d: &Document) -> AppResult<InvitationRecord> {
    Ok(InvitationRecord {
        group_id: docs::id(d, "group_id")?,
        user_id: docs::id(d, "user_id")?,
        username: String::new(),
        invited_by: docs::id(d, "invited_by")?,
        invited_at: docs::time(d, "invited_at")?,
    })
}

impl MongoStore {
    pub(super) async fn managed_by(&self, user: UserId) -> AppResult<Vec<GroupId>> {
        let rows: Vec<Document> = self
            .c
            .memberships
            .find(doc! { "user_id": user.to_string(), "role": { "$in": ["owner", "moderator"] } })
            .projection(doc! { "group_id": 1 })
            .await
            .map_err(db_error)?
            .try_collect()
            .await
            .map_err(db_error)?;
        rows.iter().map(|d| docs::id(d, "group_id")).collect()
    }

    pub(super) async fn one_member(
        &self,
        group: GroupId,
        user: UserId,
    ) -> AppResult<Option<MemberRecord>> {
        let mut s = self.session().await?;
        let Some(d) = self
            .c
            .memberships
            .find_one(doc! { "group_id": group.to_string(), "user_id": user.to_string() })
            .session(&mut s)
            .await
            .map_err(db_error)?
        else {
            return Ok(None);
        };
        let names = usernames(&self.c, &mut s, std::iter::once(user.to_string()))
            .await
            .map_err(app)?;
        Ok(Some(MemberRecord {
            user_id: user,
            username: names.get(&user.to_string()).cloned().unwrap_or_default(),
            role: docs::role(&d)?,
            joined_at: docs::time(&d, "joined_at")?,
        }))
    }

    pub(super) async fn invitations_of_group(
        &self,
        group: GroupId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<InvitationRecord>> {
        self.user_listing(
            &self.c.invitations,
            "invited_at",
            (group, limit, after),
            invitation,
            |i: &InvitationRecord| (i.invited_at, i.user_id),
            |i| &mut i.username,
        )
        .await
    }

    pub(super) async fn invitations_to_user(
        &self,
        user: UserId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<(GroupRecord, InvitationRecord)>> {
        let mut f = doc! { "user_id": user.to_string() };
        if let Some(c) = after {
            let (t, g) = split_time_key(c)?;
            let t = mongodb::bson::DateTime::from_millis(t);
            f.insert(
                "$or",
                vec![
                    Bson::Document(doc! { "invited_at": { "$gt": t } }),
                    Bson::Document(doc! { "invited_at": t, "group_id": { "$gt": g } }),
                ],
            );
        }
        let mut s = self.session().await?;
        let rows = page_rows(
            &self.c.invitations,
            &mut s,
            f,
            doc! { "invited_at": 1, "group_id": 1 },
            limit,
        )
        .await?;
        let rows = rows.iter().map(invitation).collect::<AppResult<Vec<_>>>()?;
        let gids: Vec<String> = rows.iter().map(|i| i.group_id.to_string()).collect();
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
        let names = usernames(&self.c, &mut s, std::iter::once(user.to_string()))
            .await
            .map_err(app)?;
        let name = names.get(&user.to_string()).cloned().unwrap_or_default();
        Ok(page(
            rows,
            limit,
            |i| time_key(i.invited_at, i.group_id),
            |mut i| {
                // A group deleted between the two reads is simply not listed.
                let g = groups.remove(&i.group_id.to_string())?;
                i.username = name.clone();
                Some((g, i))
            },
        ))
    }
}
