use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::domain::{Password, Username};
use crate::error::AppResult;
use crate::http::extract::{ApiJson, ClientAddr};
use crate::http::problem::Problem;
use crate::input::Validator;
use crate::state::AppState;
use crate::store::UserRecord;

#[derive(Debug, Deserialize, ToSchema)]
pub struct Credentials {
    /// 3..32 letters, digits, `_`, `.`, `-`; unique ignoring case.
    #[schema(min_length = 3, max_length = 32, pattern = "^[A-Za-z0-9_.-]+$")]
    pub username: String,
    /// 8..128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserReply {
    pub id: String,
    pub username: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<UserRecord> for UserReply {
    fn from(u: UserRecord) -> Self {
        Self {
            id: u.id.to_string(),
            username: u.username.to_string(),
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenReply {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single use: each refresh returns a new one and spends this one.
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

impl From<crate::auth::TokenPair> for TokenReply {
    fn from(p: crate::auth::TokenPair) -> Self {
        Self {
            access_token: p.access_token,
            token_type: "Bearer".into(),
            expires_in: p.expires_in,
            refresh_token: p.refresh_token,
        }
    }
}

/// Create an account. Accounts per client address are limited.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = Credentials,
    responses(
        (status = 201, description = "Account created", body = UserReply),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`username_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (a field out of range), or `weak_password`: the password is the username (ignoring case), one character repeated, or one of the few thousand most common passwords shipped with the server; `errors` names the field `password` and says which", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many accounts created from this address (`CONCLAVE_REGISTER_MAX_PER_ADDRESS`), see `Retry-After`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: password hashing is at capacity (`CONCLAVE_ARGON2_CONCURRENCY` + `CONCLAVE_ARGON2_QUEUE`), see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn register(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<Credentials>,
) -> AppResult<(StatusCode, Json<UserReply>)> {
    let mut v = Validator::default();
    let username = v.check(Username::parse(&body.username));
    let password = v.check(Password::parse(&body.password));
    v.finish()?;
    let (Some(username), Some(password)) = (username, password) else {
        unreachable!("validated above")
    };
    let user = s.auth.register(username, password, addr).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Log in: a short-lived access token and a refresh token.
///
/// Unknown usernames and wrong passwords answer identically. Attempts are rate limited per
/// client address, and failed attempts per account and address, so guesses from elsewhere never
/// lock the owner out.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = Credentials,
    responses(
        (status = 200, description = "Logged in", body = TokenReply),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Validation failed", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many attempts from this address, or failed ones for this account from this address; see `Retry-After`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: password hashing is at capacity, see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<Credentials>,
) -> AppResult<Json<TokenReply>> {
    if body.username.len() > 256 || body.password.len() > 1024 {
        return Err(crate::error::AppError::field(
            "body",
            "username or password is far too long",
        ));
    }
    Ok(Json(
        s.auth
            .login(&body.username, &body.password, addr)
            .await?
            .into(),
    ))
}

/// Exchange a refresh token for a new pair. The presented token is spent; presenting a spent
/// token again revokes every token of its login.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair", body = TokenReply),
        (status = 401, description = "`unauthenticated`: unknown, expired, revoked or spent token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Validation failed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn refresh(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> AppResult<Json<TokenReply>> {
    Ok(Json(
        s.auth.refresh(&body.refresh_token, addr).await?.into(),
    ))
}

/// Revoke a refresh token and every token rotated from the same login.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 204, description = "Logged out"),
        (status = 422, description = "Validation failed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn logout(
    State(s): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> AppResult<StatusCode> {
    s.auth.logout(&body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}
