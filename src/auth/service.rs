//! Register, login, refresh, logout.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::known::KnownAccounts;
use super::{PasswordHasher, TokenIssuer};
use crate::audit::Audit;
use crate::config::AuthSettings;
use crate::domain::{self, Password, UserId, Username};
use crate::domain::{AuditEvent, AuditKind};
use crate::error::{AppError, AppResult};
use crate::limits::{self, RateLimiter};
use crate::ops::metrics as metric;
use crate::store::{AccountStore, NewAccount, RefreshTokenRecord, Rotation, TokenHash, UserRecord};

#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
}

/// Who an access token proved to be.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated {
    pub user: UserId,
    /// When the token expires (unix seconds).
    pub expires_at: i64,
}

#[derive(Clone)]
pub struct AuthService {
    store: Arc<dyn AccountStore>,
    hasher: PasswordHasher,
    tokens: TokenIssuer,
    limiter: Arc<dyn RateLimiter>,
    audit: Audit,
    settings: AuthSettings,
    known: KnownAccounts,
}

impl AuthService {
    pub fn new(
        store: Arc<dyn AccountStore>,
        hasher: PasswordHasher,
        tokens: TokenIssuer,
        limiter: Arc<dyn RateLimiter>,
        audit: Audit,
        settings: AuthSettings,
    ) -> Self {
        Self {
            known: KnownAccounts::new(settings.account_cache_ttl),
            store,
            hasher,
            tokens,
            limiter,
            audit,
            settings,
        }
    }

    pub fn tokens(&self) -> &TokenIssuer {
        &self.tokens
    }

    /// The one door for both transports: a valid access token naming an account that exists.
    /// Whether it exists is remembered for `CONCLAVE_ACCOUNT_CACHE_TTL`, so a busy client costs
    /// the store one read per period, not one per request.
    pub async fn authenticate(&self, token: &str) -> AppResult<Authenticated> {
        let claims = self.tokens.verify(token)?;
        let user = claims.user_id()?;
        if !self.known.contains(user) {
            if self.store.user_by_id(user).await?.is_none() {
                return Err(AppError::Unauthenticated);
            }
            self.known.insert(user);
        }
        Ok(Authenticated {
            user,
            expires_at: claims.exp,
        })
    }

    /// The caller's account; `Unauthenticated` if it no longer exists.
    pub async fn account(&self, user: UserId) -> AppResult<UserRecord> {
        self.store
            .user_by_id(user)
            .await?
            .ok_or(AppError::Unauthenticated)
    }

    pub async fn register(
        &self,
        username: Username,
        password: Password,
        client: Option<IpAddr>,
    ) -> AppResult<UserRecord> {
        super::weak::refuse_weak(&password, &username)?;
        // Every account multiplies every per-user limit: one address gets a few per window.
        if let Some(ip) = client {
            limits::spend(
                &*self.limiter,
                &format!("register:addr:{ip}"),
                self.settings.register_per_address,
                "register",
            )
            .await?;
        }
        // Cheap check first so a taken name costs no hashing; the unique index still decides races.
        if self.store.user_by_username(&username).await?.is_some() {
            return Err(AppError::conflict(
                "username_taken",
                "this username is taken",
            ));
        }
        let user = UserRecord {
            id: UserId::new(),
            username,
            password_hash: self.hasher.hash(&password).await?,
            created_at: domain::now(),
        };
        if self.store.create_user(&user).await? == NewAccount::UsernameTaken {
            return Err(AppError::conflict(
                "username_taken",
                "this username is taken",
            ));
        }
        tracing::info!(target: "audit", event = "user_registered", user_id = %user.id);
        self.audit.record(
            AuditEvent::new(AuditKind::UserRegistered)
                .actor(user.id)
                .client(client),
        );
        Ok(user)
    }

    /// Unknown user and wrong password answer the same, in the same time.
    ///
    /// Only failures count against an account, and only those from the same address: the
    /// owner's correct password is never refused because someone elsewhere guessed wrong
    /// (`CONCLAVE_LOGIN_MAX_PER_ACCOUNT` failures per account and address per window). Every
    /// attempt from one address counts against `CONCLAVE_LOGIN_MAX_PER_ADDRESS`.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> AppResult<TokenPair> {
        let s = &self.settings;
        if let Some(ip) = client {
            self.limit(&format!("login:addr:{ip}"), s.login_per_address)
                .await?;
        }
        let failures = format!(
            "login:fail:{}:{}",
            username.to_ascii_lowercase(),
            client.map(|c| c.to_string()).unwrap_or_default()
        );
        if let Err(retry_after) = self.limiter.peek(&failures, s.login_per_account).await {
            metrics::counter!(metric::RATE_LIMITED, "limit" => "login").increment(1);
            return Err(AppError::RateLimited { retry_after });
        }
        let user = match Username::parse(username) {
            Ok(u) => self.store.user_by_username(&u).await?,
            Err(_) => None,
        };
        let ok = self
            .hasher
            .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
            .await?;
        let claimed = user.as_ref().map(|u| u.id);
        let Some(user) = user.filter(|_| ok) else {
            metrics::counter!(metric::AUTH_LOGINS, "result" => "failure").increment(1);
            // Counted whether or not it fits: the next attempt's peek decides.
            let _ = self.limiter.hit(&failures, s.login_per_account).await;
            tracing::info!(target: "audit", event = "login_failed", client = ?client);
            // The claimed user, if the name exists, is the target: whose account was tried.
            self.audit.record(
                AuditEvent::new(AuditKind::LoginFailed)
                    .target(claimed)
                    .client(client),
            );
            return Err(AppError::InvalidCredentials);
        };
        metrics::counter!(metric::AUTH_LOGINS, "result" => "success").increment(1);
        tracing::info!(target: "audit", event = "login_succeeded", user_id = %user.id, client = ?client);
        self.audit.record(
            AuditEvent::new(AuditKind::LoginSucceeded)
                .actor(user.id)
                .client(client),
        );
        let now = domain::now();
        let (refresh, record) =
            self.new_refresh(user.id, URL_SAFE_NO_PAD.encode(rand_bytes()), now);
        self.store.insert_refresh_token(&record).await?;
        self.pair(user.id, refresh, now)
    }

    pub async fn refresh(&self, presented: &str, client: Option<IpAddr>) -> AppResult<TokenPair> {
        let now = domain::now();
        let Some(hash) = hash_token(presented) else {
            return Err(AppError::Unauthenticated);
        };
        // The family id is kept by the store; the one given here is ignored on rotation.
        let (refresh, record) = self.new_refresh(UserId::new(), String::new(), now);
        match self.store.rotate_refresh_token(&hash, &record, now).await? {
            Rotation::Rotated { user_id } => {
                if self.store.user_by_id(user_id).await?.is_none() {
                    return Err(AppError::Unauthenticated);
                }
                self.pair(user_id, refresh, now)
            }
            Rotation::ReuseDetected { user_id } => {
                metrics::counter!(metric::AUTH_TOKEN_REUSE).increment(1);
                tracing::warn!(target: "audit", event = "refresh_token_reuse", user_id = %user_id, "spent refresh token presented; family revoked");
                // Whoever presented it is unproven: the account is the target.
                self.audit.record(
                    AuditEvent::new(AuditKind::RefreshTokenReuse)
                        .target(Some(user_id))
                        .client(client),
                );
                Err(AppError::Unauthenticated)
            }
            Rotation::Invalid => Err(AppError::Unauthenticated),
        }
    }

    pub async fn logout(&self, presented: &str) -> AppResult<()> {
        if let Some(hash) = hash_token(presented) {
            self.store.revoke_refresh_family(&hash).await?;
        }
        Ok(())
    }

    async fn limit(&self, key: &str, limit: crate::config::RateLimit) -> AppResult<()> {
        limits::spend(&*self.limiter, key, limit, "login").await
    }

    fn new_refresh(
        &self,
        user_id: UserId,
        family_id: String,
        now: OffsetDateTime,
    ) -> (String, RefreshTokenRecord) {
        let token = URL_SAFE_NO_PAD.encode(rand_bytes());
        let record = RefreshTokenRecord {
            hash: hash_token(&token).expect("fresh tokens are well formed"),
            user_id,
            family_id,
            issued_at: now,
            expires_at: now + self.settings.refresh_token_ttl,
        };
        (token, record)
    }

    fn pair(
        &self,
        user: UserId,
        refresh_token: String,
        now: OffsetDateTime,
    ) -> AppResult<TokenPair> {
        Ok(TokenPair {
            access_token: self.tokens.issue(user, now)?,
            expires_in: self.tokens.ttl().as_secs(),
            refresh_token,
        })
    }
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// Refresh tokens are 32 random bytes, so a plain SHA-256 is a safe way to store them.
fn hash_token(token: &str) -> Option<TokenHash> {
    if token.is_empty() || token.len() > 256 {
        return None;
    }
    Some(TokenHash(Sha256::digest(token.as_bytes()).into()))
}
