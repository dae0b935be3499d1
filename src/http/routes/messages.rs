use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{Cursor, GroupId, Limit, MessageId};
use crate::error::{AppError, AppResult};
use crate::http::dto::List;
use crate::http::extract::{ApiJson, ApiQuery, AuthUser, ClientAddr, path_id};
use crate::http::problem::Problem;
use crate::messages::{MessageView, SendRequest};
use crate::state::AppState;
use crate::store::HistoryQuery;

#[derive(Debug, Deserialize, ToSchema)]
pub struct SendMessage {
    /// 1..4096 characters, not blank.
    #[schema(min_length = 1, max_length = 4096, pattern = "\\S")]
    pub content: String,
    /// Idempotency key (1..64 printable ASCII): the same key from the same sender is stored once
    /// and answers with the same id.
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EditMessage {
    /// The new content: 1..4096 characters, not blank.
    #[schema(min_length = 1, max_length = 4096, pattern = "\\S")]
    pub content: String,
    /// Idempotency key, as for a send.
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub client_msg_id: Option<String>,
}

fn accepted(id: MessageId) -> (StatusCode, Json<Accepted>) {
    (
        StatusCode::ACCEPTED,
        Json(Accepted {
            id: id.to_string(),
            status: "accepted".into(),
        }),
    )
}

/// Edit a message (its sender only): appends an `edit` entry with its own `seq`, and the
/// message shows the new content with `edited_at`. 202 with the new entry's id.
#[utoipa::path(patch, path = "/groups/{id}/messages/{message_id}", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id"), ("message_id" = String, Path, description = "The `text` entry to edit")),
    request_body = EditMessage,
    responses(
        (status = 202, description = "Accepted: the id of the `edit` entry", body = Accepted),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: someone else's message, or a non-member of an open group; `banned`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such `text` entry, or it was deleted; also for non-members of a private group", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Validation failed", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (edits count as sends)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn edit(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    Path((id, message_id)): Path<(String, String)>,
    ApiJson(b): ApiJson<EditMessage>,
) -> AppResult<(StatusCode, Json<Accepted>)> {
    let gid: GroupId = path_id(&id)?;
    let mid: MessageId = path_id(&message_id)?;
    let request = SendRequest {
        content: b.content,
        client_msg_id: b.client_msg_id,
    };
    Ok(accepted(s.messages.edit(me, gid, mid, request).await?))
}

/// Delete a message (its sender, or the group's owner): appends a `delete` entry with its own
/// `seq`; the message's content and its edits' are erased from storage. 202 with the new entry's
/// id.
#[utoipa::path(delete, path = "/groups/{id}/messages/{message_id}", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id"), ("message_id" = String, Path, description = "The `text` entry to delete")),
    responses(
        (status = 202, description = "Accepted: the id of the `delete` entry", body = Accepted),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: someone else's message for a plain member, or a non-member of an open group; `banned`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such `text` entry, or it was deleted already; also for non-members of a private group", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (deletions count as sends)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    ClientAddr(addr): ClientAddr,
    Path((id, message_id)): Path<(String, String)>,
) -> AppResult<(StatusCode, Json<Accepted>)> {
    let gid: GroupId = path_id(&id)?;
    let mid: MessageId = path_id(&message_id)?;
    Ok(accepted(s.messages.delete(me, gid, mid, addr).await?))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    pub id: String,
    /// Always `accepted`.
    pub status: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Messages with `seq` greater than this, oldest first.
    pub after_seq: Option<u64>,
    /// Messages with `seq` less than this (the newest of them), to page backwards.
    pub before_seq: Option<u64>,
    /// 1..100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (continues in the same direction).
    pub cursor: Option<String>,
}

/// Send a message to a group (members only). 202 once durably accepted; it reaches live members
/// as `message:new` with its `seq`.
#[utoipa::path(post, path = "/groups/{id}/messages", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id")), request_body = SendMessage,
    responses(
        (status = 202, description = "Accepted", body = Accepted),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`banned`, or `forbidden` for non-members of an open group", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`, also for non-members of a private group", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Validation failed", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn send(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<SendMessage>,
) -> AppResult<(StatusCode, Json<Accepted>)> {
    let gid: GroupId = path_id(&id)?;
    let request = SendRequest {
        content: b.content,
        client_msg_id: b.client_msg_id,
    };
    Ok(accepted(s.messages.send_request(me, gid, request).await?))
}

/// Message history (members only), ascending by `seq`. With `after_seq`, reads forwards from
/// there; otherwise the newest messages (before `before_seq`, if given).
#[utoipa::path(get, path = "/groups/{id}/messages", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id"), HistoryParams),
    responses(
        (status = 200, description = "Messages, ascending by `seq`", body = List<MessageView>),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`banned`, or `forbidden` for non-members of an open group", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`, also for non-members of a private group", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Validation failed", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many history reads by this user (`CONCLAVE_HISTORY_PER_USER`, REST and socket `group:sync` together), see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn history(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<HistoryParams>,
) -> AppResult<Json<List<MessageView>>> {
    let gid: GroupId = path_id(&id)?;
    let limit = Limit::parse(p.limit)?;
    let (mut after_seq, mut before_seq) = (p.after_seq, p.before_seq);
    if let Some(raw) = &p.cursor {
        let c = Cursor::decode(raw)?;
        let bad = || AppError::field("cursor", "is not a cursor this server issued");
        let (dir, seq) = c.key().split_once(':').ok_or_else(bad)?;
        let seq: u64 = seq.parse().map_err(|_| bad())?;
        match dir {
            "a" => after_seq = Some(seq),
            "b" => before_seq = Some(seq),
            _ => return Err(bad()),
        }
    }
    let forwards = after_seq.is_some();
    let items = s
        .messages
        .history(
            me,
            gid,
            HistoryQuery {
                after_seq,
                before_seq,
                limit: limit.get(),
            },
        )
        .await?;
    let next_cursor = if items.len() as u32 == limit.get() {
        let key = if forwards {
            items.last().map(|m| format!("a:{}", m.seq))
        } else {
            items
                .first()
                .filter(|m| m.seq > 1)
                .map(|m| format!("b:{}", m.seq))
        };
        key.map(|k| Cursor::from_key(&k).encode())
    } else {
        None
    };
    Ok(Json(List { items, next_cursor }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MarkRead {
    /// The `seq` read up to: at most the group's last.
    pub seq: u64,
}

/// One member's read marker.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadMarkerReply {
    pub user_id: String,
    pub last_read_seq: u64,
}

/// Move the caller's read marker forward (members only). A `seq` at or behind the marker is a
/// no-op (204); other members get `message:read` (at most once a second per member and group).
#[utoipa::path(put, path = "/groups/{id}/read", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id")), request_body = MarkRead,
    responses(
        (status = 204, description = "Marker moved, or already there"),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`banned`, or `forbidden` for non-members of an open group", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`, also for non-members of a private group", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `seq` beyond the group's last", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn mark_read(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<MarkRead>,
) -> AppResult<StatusCode> {
    s.reads.mark_read(me, path_id(&id)?, b.seq).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every member's read marker (members only).
#[utoipa::path(get, path = "/groups/{id}/reads", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id")),
    responses(
        (status = 200, description = "Every member's marker", body = List<ReadMarkerReply>),
        (status = 401, description = "`unauthenticated`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`banned`, or `forbidden` for non-members of an open group", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`, also for non-members of a private group", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reads(
    State(s): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
) -> AppResult<Json<List<ReadMarkerReply>>> {
    let markers = s.reads.markers(me, path_id(&id)?).await?;
    let items = markers
        .into_iter()
        .map(|m| ReadMarkerReply {
            user_id: m.user_id.to_string(),
            last_read_seq: m.last_read_seq,
        })
        .collect();
    Ok(Json(List {
        items,
        next_cursor: None,
    }))
}
