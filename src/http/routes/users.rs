use axum::Json;
use axum::extract::State;

use super::auth::UserReply;
use crate::error::AppResult;
use crate::http::extract::AuthUser;
use crate::http::problem::Problem;
use crate::state::AppState;

/// The caller's account.
#[utoipa::path(get, path = "/users/me", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserReply),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn me(State(s): State<AppState>, AuthUser(me): AuthUser) -> AppResult<Json<UserReply>> {
    // Read afresh: a valid token for an account that no longer exists authenticates no one.
    let user = s.auth.account(me).await?;
    Ok(Json(user.into()))
}
