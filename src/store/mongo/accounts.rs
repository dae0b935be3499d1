//! Accounts and refresh tokens.

use async_trait::async_trait;
use mongodb::ClientSession;
use mongodb::bson::{Document, doc};
use time::OffsetDateTime;

use super::docs::{self, date};
use super::tx::{TxResult, db_error, is_duplicate_key, transaction};
use super::{Colls, MongoStore};
use crate::domain::{UserId, Username};
use crate::error::AppResult;
use crate::store::{AccountStore, NewAccount, RefreshTokenRecord, Rotation, TokenHash, UserRecord};

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

#[async_trait]
impl AccountStore for MongoStore {
    async fn create_user(&self, user: &UserRecord) -> AppResult<NewAccount> {
        match self.c.users.insert_one(docs::user_doc(user)).await {
            Ok(_) => Ok(NewAccount::Created),
            Err(e) if is_duplicate_key(&e) => Ok(NewAccount::UsernameTaken),
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
}
