//! v1.1 group management: roles, invitations and settings (docs/api.md, "Roles",
//! "Invitations", "Group settings").

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::groups::{GroupReply, MemberReply};
use crate::domain::{
    Command, Description, FieldError, GroupName, GroupPatch, MaxMembers, Role, UserId, Visibility,
};
use crate::error::{AppError, AppResult};
use crate::http::dto::{List, PageParams, StatusReply};
use crate::http::extract::{ApiJson, ApiQuery, AuthUser, ClientAddr, path_id};
use crate::http::problem::Problem;
use crate::input::Validator;
use crate::state::AppState;
use crate::store::{GroupRecord, InvitationRecord};

#[derive(Debug, Deserialize, ToSchema)]
pub struct RoleRequest {
    /// `moderator` or `member` (ownership moves only by transfer).
    #[schema(value_type = String, example = "moderator")]
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InviteRequest {
    pub user_id: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvitationReply {
    pub group_id: String,
    /// The invitee.
    pub user_id: String,
    pub invited_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub invited_at: OffsetDateTime,
}

impl From<InvitationRecord> for InvitationReply {
    fn from(i: InvitationRecord) -> Self {
        Self {
            group_id: i.group_id.to_string(),
            user_id: i.user_id.to_string(),
            invited_by: i.invited_by.to_string(),
            invited_at: i.invited_at,
        }
    }
}

/// An invitation to the caller, with the group it is for.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MyInvitationReply {
    pub group: GroupReply,
    pub invited_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub invited_at: OffsetDateTime,
}

impl From<(GroupRecord, InvitationRecord)> for MyInvitationReply {
    fn from((g, i): (GroupRecord, InvitationRecord)) -> Self {
        Self {
            group: g.into(),
            invited_by: i.invited_by.to_string(),
            invited_at: i.invited_at,
        }
    }
}

/// `PATCH /groups/{id}`: every field optional, at least one present.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateGroup {
    /// 1..100 characters (owner or moderator).
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    /// Up to 1000 characters (owner or moderator).
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// Owner only.
    #[schema(value_type = Option<Visibility>)]
    pub visibility: Option<String>,
    /// Owner only; 2..the server's limit, and not below the current member count.
    #[schema(minimum = 2)]
    pub max_members: Option<i64>,
}

fn user_field(field: &'static str, raw: &str) -> AppResult<UserId> {
    raw.parse()
        .map_err(|_| AppError::field(field, "is not a user id"))
}

/// Make a member a moderator, or a moderator a plain member (owner only). Audited as
/// `role_changed`; setting the role a member already has changes nothing.
#[utoipa::path(put, path = "/groups/{id}/members/{user_id}/role", tag = "moderation", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id"), ("user_id" = String, Path, description = "Member")),
    request_body = RoleRequest,
    responses(
        (status = 200, description = "The member with the new role", body = MemberReply),
        (status = 403, description = "`forbidden`: not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such group, or the user is not a member", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a role other than `moderator`/`member`, or the owner's own role", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_role(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    ClientAddr(addr): ClientAddr,
    Path((id, user)): Path<(String, String)>,
    ApiJson(b): ApiJson<RoleRequest>,
) -> AppResult<Json<MemberReply>> {
    let role = Role::parse(&b.role)
        .ok_or_else(|| AppError::field("role", "must be \"moderator\" or \"member\""))?;
    let m = s
        .groups
        .set_role(path_id(&id)?, me, path_id(&user)?, role, addr)
        .await?;
    Ok(Json(m.into()))
}

/// Invite a user (owner or moderator). The invitee joins only by accepting; bans, the rejoin
/// cooldown and `max_members` are checked then.
#[utoipa::path(post, path = "/groups/{id}/invitations", tag = "invitations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id")), request_body = InviteRequest,
    responses(
        (status = 201, description = "Invited", body = InvitationReply),
        (status = 403, description = "`forbidden` (not the owner or a moderator), or `banned`: the user is banned from the group", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such group or user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_member`, or `invitation_pending`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Validation failed", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many groups created, joins requested or invitations sent (`CONCLAVE_GROUP_ACTIONS_PER_USER`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn invite(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<InviteRequest>,
) -> AppResult<(StatusCode, Json<InvitationReply>)> {
    let target = user_field("user_id", &b.user_id)?;
    let inv = s.groups.invite(path_id(&id)?, me, target, addr).await?;
    Ok((StatusCode::CREATED, Json(inv.into())))
}

/// The group's pending invitations (owner and moderators), oldest first.
#[utoipa::path(get, path = "/groups/{id}/invitations", tag = "invitations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id"), PageParams),
    responses(
        (status = 200, description = "A page of invitations", body = List<InvitationReply>),
        (status = 403, description = "`forbidden`: not the owner or a moderator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Validation failed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn invitations(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> AppResult<Json<List<InvitationReply>>> {
    let (limit, cursor) = p.parse()?;
    let page = s
        .groups
        .invitations(path_id(&id)?, me, limit, cursor.as_ref())
        .await?;
    Ok(Json(List::from_page(page, InvitationReply::from)))
}

/// Accept the caller's invitation: 200 `{status: "member"}`. A pending join request of the
/// caller's is consumed. A refused acceptance keeps the invitation.
#[utoipa::path(post, path = "/groups/{id}/invitations/accept", tag = "invitations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id")),
    responses(
        (status = 200, description = "Joined: `{status: \"member\"}`", body = StatusReply),
        (status = 403, description = "`banned`, or `cooldown_active` with `retry_after`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such group, or no invitation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`group_full`, `already_member`, or `too_many_groups`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn accept(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<String>,
) -> AppResult<Json<StatusReply>> {
    s.groups
        .run(path_id(&id)?, me, Command::AcceptInvitation, addr)
        .await?;
    Ok(Json(StatusReply {
        status: "member".into(),
    }))
}

/// Decline (the invitee) or revoke (the owner or a moderator) an invitation.
#[utoipa::path(delete, path = "/groups/{id}/invitations/{user_id}", tag = "invitations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id"), ("user_id" = String, Path, description = "The invitee")),
    responses(
        (status = 204, description = "Declined or revoked"),
        (status = 403, description = "`forbidden`: neither the invitee, the owner nor a moderator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such group, or no invitation", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn cancel(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    ClientAddr(addr): ClientAddr,
    Path((id, user)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    let target = path_id(&user)?;
    s.groups
        .run(
            path_id(&id)?,
            me,
            Command::CancelInvitation { target },
            addr,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's pending invitations, oldest first, each with its group.
#[utoipa::path(get, path = "/users/me/invitations", tag = "invitations", security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of invitations", body = List<MyInvitationReply>),
        (status = 422, description = "Validation failed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn my_invitations(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    ApiQuery(p): ApiQuery<PageParams>,
) -> AppResult<Json<List<MyInvitationReply>>> {
    let (limit, cursor) = p.parse()?;
    let page = s.groups.my_invitations(me, limit, cursor.as_ref()).await?;
    Ok(Json(List::from_page(page, MyInvitationReply::from)))
}

/// Change a group's settings: `name` and `description` (owner or moderator), `visibility` and
/// `max_members` (owner only; a moderator sending either gets 403 and nothing changes).
/// Making a private group open leaves its pending requests pending. Members' sockets get
/// `group:updated`.
#[utoipa::path(patch, path = "/groups/{id}", tag = "groups", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id")), request_body = UpdateGroup,
    responses(
        (status = 200, description = "The group after the change", body = GroupReply),
        (status = 403, description = "`forbidden`: not allowed to change these fields, or not a member of an open group", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such group, or not a member of a private one", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`members_exceed_limit`: `max_members` below the current member count", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Validation failed (also: no field given)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateGroup>,
) -> AppResult<Json<GroupReply>> {
    let mut v = Validator::default();
    let empty = b.name.is_none()
        && b.description.is_none()
        && b.visibility.is_none()
        && b.max_members.is_none();
    let name = v.check(b.name.as_deref().map(GroupName::parse).transpose());
    let description = v.check(b.description.as_deref().map(Description::parse).transpose());
    let visibility = v.check(b.visibility.as_deref().map(Visibility::parse).transpose());
    let ceiling = s.groups.max_members_ceiling();
    let max_members = v.check(
        b.max_members
            .map(|m| MaxMembers::parse(m, ceiling))
            .transpose(),
    );
    let patch = GroupPatch {
        name: name.flatten().map(|n| n.as_str().to_owned()),
        description: description.flatten().map(|d| d.as_str().to_owned()),
        visibility: visibility.flatten(),
        max_members: max_members.flatten().map(MaxMembers::get),
    };
    if empty {
        v.check::<()>(Err(FieldError::new(
            "name",
            "give at least one of name, description, visibility, max_members",
        )));
    }
    v.finish()?;
    let g = s.groups.update(path_id(&id)?, me, patch, addr).await?;
    Ok(Json(g.into()))
}
