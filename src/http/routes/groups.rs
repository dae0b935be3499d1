use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::domain::{AuditEvent, AuditKind};
use crate::domain::{
    Command, Description, GroupId, GroupName, MaxMembers, Outcome, Role, UserId, Visibility,
};
use crate::error::{AppError, AppResult};
use crate::groups::NewGroup;
use crate::http::dto::{List, PageParams, StatusReply};
use crate::http::extract::{ApiJson, ApiQuery, AuthUser, ClientAddr, path_id};
use crate::http::problem::Problem;
use crate::input::Validator;
use crate::state::AppState;
use crate::store::{BanRecord, GroupFilter, GroupRecord, JoinRequestRecord, MemberRecord};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupReply {
    pub id: String,
    pub name: String,
    pub description: String,
    pub visibility: Visibility,
    pub owner_id: String,
    pub member_count: u32,
    pub max_members: u32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<GroupRecord> for GroupReply {
    fn from(g: GroupRecord) -> Self {
        Self {
            id: g.id.to_string(),
            name: g.name,
            description: g.description,
            visibility: g.visibility,
            owner_id: g.owner_id.to_string(),
            member_count: g.member_count,
            max_members: g.max_members,
            created_at: g.created_at,
        }
    }
}

/// A group of the caller's, with the caller's role in it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MyGroupReply {
    #[serde(flatten)]
    pub group: GroupReply,
    pub role: Role,
    /// The group's last `seq`.
    pub last_seq: u64,
    /// The caller's read marker.
    pub last_read_seq: u64,
    /// Messages (`text` entries) after the marker, by others, not deleted; at most 1000.
    pub unread_count: u32,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateGroup {
    /// 1..100 characters, not blank, no control characters (trimmed).
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
    #[schema(value_type = Visibility)]
    pub visibility: String,
    /// Up to 1000 characters.
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// 2..the server's limit; the server's default when absent.
    #[schema(minimum = 2)]
    pub max_members: Option<i64>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Case-insensitive substring of the group name (up to 100 characters).
    #[param(max_length = 100)]
    pub query: Option<String>,
    /// `open` or `private`.
    #[param(value_type = Option<Visibility>)]
    pub visibility: Option<String>,
    /// 1..100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberReply {
    pub user_id: String,
    pub username: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub joined_at: OffsetDateTime,
}

impl From<MemberRecord> for MemberReply {
    fn from(m: MemberRecord) -> Self {
        Self {
            user_id: m.user_id.to_string(),
            username: m.username,
            role: m.role,
            joined_at: m.joined_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JoinRequestReply {
    pub user_id: String,
    pub username: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub requested_at: OffsetDateTime,
}

impl From<JoinRequestRecord> for JoinRequestReply {
    fn from(j: JoinRequestRecord) -> Self {
        Self {
            user_id: j.user_id.to_string(),
            username: j.username,
            requested_at: j.requested_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BanReply {
    pub user_id: String,
    pub username: String,
    pub banned_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub banned_at: OffsetDateTime,
}

impl From<BanRecord> for BanReply {
    fn from(b: BanRecord) -> Self {
        Self {
            user_id: b.user_id.to_string(),
            username: b.username,
            banned_by: b.banned_by.to_string(),
            banned_at: b.banned_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct BanRequest {
    pub user_id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TransferRequest {
    pub new_owner_id: String,
}

fn user_field(field: &'static str, raw: &str) -> AppResult<UserId> {
    raw.parse()
        .map_err(|_| AppError::field(field, "is not a user id"))
}

/// Create a group; the caller becomes its owner and first member.
#[utoipa::path(post, path = "/groups", tag = "groups", security(("bearer" = [])), request_body = CreateGroup,
    responses(
        (status = 201, description = "Created", body = GroupReply),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`too_many_groups`: the caller already belongs to `CONCLAVE_MAX_GROUPS_PER_USER` groups", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Validation failed", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many groups created or joins requested (`CONCLAVE_GROUP_ACTIONS_PER_USER`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    ApiJson(b): ApiJson<CreateGroup>,
) -> AppResult<(StatusCode, Json<GroupReply>)> {
    let mut v = Validator::default();
    let name = v.check(GroupName::parse(&b.name));
    let visibility = v.check(Visibility::parse(&b.visibility));
    let description = v.check(Description::parse(b.description.as_deref().unwrap_or("")));
    let max_members = v.check(
        b.max_members
            .map(|m| MaxMembers::parse(m, s.groups.max_members_ceiling()))
            .transpose(),
    );
    v.finish()?;
    let (Some(name), Some(visibility), Some(description), Some(max_members)) =
        (name, visibility, description, max_members)
    else {
        unreachable!("validated above")
    };
    let g = s
        .groups
        .create(
            me,
            NewGroup {
                name,
                description,
                visibility,
                max_members,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(g.into())))
}

/// List and search groups (metadata is public for open and private groups alike).
#[utoipa::path(get, path = "/groups", tag = "groups", security(("bearer" = [])), params(ListQuery),
    responses(
        (status = 200, description = "A page of groups", body = List<GroupReply>),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Validation failed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(s): State<AppState>,
    AuthUser(_caller): AuthUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<Json<List<GroupReply>>> {
    let (limit, cursor) = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let visibility = q.visibility.as_deref().map(Visibility::parse).transpose()?;
    if q.query.as_ref().is_some_and(|s| s.chars().count() > 100) {
        return Err(AppError::field("query", "must be at most 100 characters"));
    }
    let filter = GroupFilter {
        query: q.query.filter(|s| !s.trim().is_empty()),
        visibility,
    };
    let page = s.groups.list(&filter, limit, cursor.as_ref()).await?;
    Ok(Json(List::from_page(page, GroupReply::from)))
}

/// The caller's groups, with the caller's role and read state in each.
#[utoipa::path(get, path = "/groups/mine", tag = "groups", security(("bearer" = [])), params(PageParams),
    responses(
        (status = 200, description = "A page of the caller's groups", body = List<MyGroupReply>),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Validation failed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn mine(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    ApiQuery(p): ApiQuery<PageParams>,
) -> AppResult<Json<List<MyGroupReply>>> {
    let (limit, cursor) = p.parse()?;
    let page = s.groups.mine(me, limit, cursor.as_ref()).await?;
    let ids: Vec<_> = page.items.iter().map(|(g, _)| g.id).collect();
    let reads = s.reads.states(me, &ids).await?;
    Ok(Json(List::from_page(page, |(g, m)| {
        // A group left between the two reads shows as read.
        let r = reads.get(&g.id);
        MyGroupReply {
            last_seq: r.map_or(0, |r| r.last_seq),
            last_read_seq: r.map_or(0, |r| r.last_read_seq),
            unread_count: r.map_or(0, |r| r.unread_count),
            group: g.into(),
            role: m.role,
        }
    })))
}

/// One group's metadata.
#[utoipa::path(get, path = "/groups/{id}", tag = "groups", security(("bearer" = [])), params(("id" = String, Path, description = "Group id")),
    responses(
        (status = 200, description = "The group", body = GroupReply),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(s): State<AppState>,
    AuthUser(_caller): AuthUser,
    Path(id): Path<String>,
) -> AppResult<Json<GroupReply>> {
    Ok(Json(s.groups.get(path_id(&id)?).await?.into()))
}

/// Delete a group (owner only), with its members, requests, bans and messages.
#[utoipa::path(delete, path = "/groups/{id}", tag = "groups", security(("bearer" = [])), params(("id" = String, Path, description = "Group id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    s.groups
        .run(path_id(&id)?, me, Command::Delete, addr)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Join an open group (200 `member`) or ask to join a private one (202 `pending`).
#[utoipa::path(post, path = "/groups/{id}/join", tag = "membership", security(("bearer" = [])), params(("id" = String, Path, description = "Group id")),
    responses(
        (status = 200, description = "Joined: `{status: \"member\"}`", body = StatusReply),
        (status = 202, description = "Requested: `{status: \"pending\"}`", body = StatusReply),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`banned`, or `cooldown_active` with `retry_after`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_member`, `request_pending`, `group_full`, or `too_many_groups` (the caller already belongs to `CONCLAVE_MAX_GROUPS_PER_USER` groups)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many groups created or joins requested (`CONCLAVE_GROUP_ACTIONS_PER_USER`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn join(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<String>,
) -> AppResult<(StatusCode, Json<StatusReply>)> {
    let done = s.groups.run(path_id(&id)?, me, Command::Join, addr).await?;
    Ok(match done.outcome {
        Outcome::Pending => (
            StatusCode::ACCEPTED,
            Json(StatusReply {
                status: "pending".into(),
            }),
        ),
        _ => (
            StatusCode::OK,
            Json(StatusReply {
                status: "member".into(),
            }),
        ),
    })
}

/// Withdraw the caller's pending join request.
#[utoipa::path(delete, path = "/groups/{id}/join-request", tag = "membership", security(("bearer" = [])), params(("id" = String, Path, description = "Group id")),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such group or no pending request", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn withdraw(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    s.groups
        .run(path_id(&id)?, me, Command::WithdrawRequest, addr)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pending join requests (owner only).
#[utoipa::path(get, path = "/groups/{id}/join-requests", tag = "membership", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id"), PageParams),
    responses(
        (status = 200, description = "A page of requests, oldest first", body = List<JoinRequestReply>),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Validation failed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn join_requests(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> AppResult<Json<List<JoinRequestReply>>> {
    let (limit, cursor) = p.parse()?;
    let page = s
        .groups
        .join_requests(path_id(&id)?, me, limit, cursor.as_ref())
        .await?;
    Ok(Json(List::from_page(page, JoinRequestReply::from)))
}

/// Approve a join request (owner only).
#[utoipa::path(post, path = "/groups/{id}/join-requests/{user_id}/approve", tag = "membership", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id"), ("user_id" = String, Path, description = "Requester")),
    responses(
        (status = 200, description = "`{status: \"member\"}`", body = StatusReply),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such group or request", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`group_full`, or `too_many_groups`: the requester already belongs to `CONCLAVE_MAX_GROUPS_PER_USER` groups", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn approve(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    ClientAddr(addr): ClientAddr,
    Path((id, user)): Path<(String, String)>,
) -> AppResult<Json<StatusReply>> {
    s.groups
        .run(
            path_id(&id)?,
            me,
            Command::Approve {
                target: path_id(&user)?,
            },
            addr,
        )
        .await?;
    Ok(Json(StatusReply {
        status: "member".into(),
    }))
}

/// Reject a join request (owner only).
#[utoipa::path(post, path = "/groups/{id}/join-requests/{user_id}/reject", tag = "membership", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id"), ("user_id" = String, Path, description = "Requester")),
    responses(
        (status = 204, description = "Rejected"),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such group or request", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reject(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    ClientAddr(addr): ClientAddr,
    Path((id, user)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    s.groups
        .run(
            path_id(&id)?,
            me,
            Command::Reject {
                target: path_id(&user)?,
            },
            addr,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Members (members only; non-members of a private group get 404, of an open group 403).
#[utoipa::path(get, path = "/groups/{id}/members", tag = "membership", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id"), PageParams),
    responses(
        (status = 200, description = "A page of members, in joining order", body = List<MemberReply>),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`banned`, or `forbidden` for non-members of an open group", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`, also for non-members of a private group", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Validation failed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn members(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> AppResult<Json<List<MemberReply>>> {
    let (limit, cursor) = p.parse()?;
    let page = s
        .groups
        .members(path_id(&id)?, me, limit, cursor.as_ref())
        .await?;
    Ok(Json(List::from_page(page, MemberReply::from)))
}

/// Remove a member (owner only, not themself). In a private group the rejoin cooldown starts.
#[utoipa::path(delete, path = "/groups/{id}/members/{user_id}", tag = "membership", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id"), ("user_id" = String, Path, description = "Member to remove")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not the owner, or the owner themself", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such group or member", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove_member(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    ClientAddr(addr): ClientAddr,
    Path((id, user)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    s.groups
        .run(
            path_id(&id)?,
            me,
            Command::Remove {
                target: path_id(&user)?,
            },
            addr,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Leave a group. The owner must transfer ownership first unless they are the last member, in
/// which case the group is deleted. In a private group the rejoin cooldown starts.
#[utoipa::path(post, path = "/groups/{id}/leave", tag = "membership", security(("bearer" = [])), params(("id" = String, Path, description = "Group id")),
    responses(
        (status = 204, description = "Left"),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such group, or not a member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`owner_must_transfer`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn leave(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    s.groups
        .run(path_id(&id)?, me, Command::Leave, addr)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ban a user (owner only, not themself): their membership and pending request are removed and
/// they can no longer join, request, read or send. Banning again is harmless.
#[utoipa::path(post, path = "/groups/{id}/bans", tag = "moderation", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id")), request_body = BanRequest,
    responses(
        (status = 201, description = "Banned"),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not the owner, or the owner themself", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such group or user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Validation failed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn ban(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<BanRequest>,
) -> AppResult<StatusCode> {
    let gid: GroupId = path_id(&id)?;
    let target = user_field("user_id", &b.user_id)?;
    s.groups.run(gid, me, Command::Ban { target }, addr).await?;
    Ok(StatusCode::CREATED)
}

/// Banned users (owner only).
#[utoipa::path(get, path = "/groups/{id}/bans", tag = "moderation", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id"), PageParams),
    responses(
        (status = 200, description = "A page of bans", body = List<BanReply>),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Validation failed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn bans(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> AppResult<Json<List<BanReply>>> {
    let (limit, cursor) = p.parse()?;
    let page = s
        .groups
        .bans(path_id(&id)?, me, limit, cursor.as_ref())
        .await?;
    Ok(Json(List::from_page(page, BanReply::from)))
}

/// Lift a ban (owner only). In a private group the rejoin cooldown then applies.
#[utoipa::path(delete, path = "/groups/{id}/bans/{user_id}", tag = "moderation", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id"), ("user_id" = String, Path, description = "Banned user")),
    responses(
        (status = 204, description = "Unbanned"),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such group or ban", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn unban(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    ClientAddr(addr): ClientAddr,
    Path((id, user)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    s.groups
        .run(
            path_id(&id)?,
            me,
            Command::Unban {
                target: path_id(&user)?,
            },
            addr,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Hand ownership to another member (owner only); the old owner stays as a member.
#[utoipa::path(post, path = "/groups/{id}/transfer-ownership", tag = "moderation", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id")), request_body = TransferRequest,
    responses(
        (status = 200, description = "The group with its new owner", body = GroupReply),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such group or user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the new owner is not a member, or is the caller", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn transfer(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<TransferRequest>,
) -> AppResult<Json<GroupReply>> {
    let gid: GroupId = path_id(&id)?;
    let target = user_field("new_owner_id", &b.new_owner_id)?;
    let done = s
        .groups
        .run(gid, me, Command::TransferOwnership { target }, addr)
        .await?;
    done.group.map(|g| Json(g.into())).ok_or(AppError::NotFound)
}

/// One entry of a group's audit trail. The client address is kept for operators and is not
/// shown to group owners.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryReply {
    pub id: String,
    pub kind: AuditKind,
    /// Who acted.
    pub actor_id: Option<String>,
    /// Whom it was done to: the approved, rejected, banned, unbanned or removed user, or the
    /// new owner.
    pub target_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

impl From<AuditEvent> for AuditEntryReply {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id.to_string(),
            kind: e.kind,
            actor_id: e.actor.map(|u| u.to_string()),
            target_id: e.target.map(|u| u.to_string()),
            at: e.at,
        }
    }
}

/// The group's audit trail (owner only): approvals, rejections, bans, unbans, removals and
/// ownership transfers, oldest first. Account events (logins, registrations) are not listed.
/// Events are retained for `CONCLAVE_AUDIT_RETENTION` (90 days by default).
#[utoipa::path(get, path = "/groups/{id}/audit", tag = "moderation", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id"), PageParams),
    responses(
        (status = 200, description = "A page of audit events, oldest first", body = List<AuditEntryReply>),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Validation failed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn audit(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> AppResult<Json<List<AuditEntryReply>>> {
    let (limit, cursor) = p.parse()?;
    let page = s
        .groups
        .audit(path_id(&id)?, me, limit, cursor.as_ref())
        .await?;
    Ok(Json(List::from_page(page, AuditEntryReply::from)))
}
