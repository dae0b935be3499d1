use axum::Json;
use axum::extract::State;

use super::auth::UserReply;
use crate::app::AppState;
use crate::error::{AppError, AppResult};
use crate::http::extract::AuthUser;
use crate::http::problem::Problem;

/// The caller's account.
#[utoipa::path(get, path = "/users/me", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserReply),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn me(State(s): State<AppState>, AuthUser(me): AuthUser) -> AppResult<Json<UserReply>> {
    // A valid token for an account that no longer exists authenticates no one.
    let user = s
        .store
        .user_by_id(me)
        .await?
        .ok_or(AppError::Unauthenticated)?;
    Ok(Json(user.into()))
}
