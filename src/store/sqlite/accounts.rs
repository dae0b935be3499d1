//! Accounts and refresh tokens.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;

use super::cached::CachedSql;
use super::rows::*;
use super::{SqliteStore, db, ms};
use crate::domain::{UserId, Username};
use crate::error::{AppError, AppResult};
use crate::store::{AccountStore, NewAccount, RefreshTokenRecord, Rotation, TokenHash, UserRecord};

#[async_trait]
impl AccountStore for SqliteStore {
    async fn create_user(&self, user: &UserRecord) -> AppResult<NewAccount> {
        let u = user.clone();
        self.write(move |tx| {
            let r = tx.exec(
                "INSERT INTO users (id, username, username_canon, password_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![u.id.to_string(), u.username.as_str(), u.username.canonical(), u.password_hash, ms(u.created_at)],
            );
            match r {
                Ok(_) => Ok(NewAccount::Created),
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                    Ok(NewAccount::UsernameTaken)
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
}
