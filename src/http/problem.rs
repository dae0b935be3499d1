//! The one place errors become HTTP: `application/problem+json` (RFC 9457) with the stable
//! `code` of docs/api.md, `errors` for validation, `retry_after` (and a `Retry-After` header) where a
//! client should wait. Server faults are logged here with their cause and shown to clients
//! without it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::AppError;

#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// A URN naming the problem type, `urn:conclave:problem:<code>`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `validation_failed`, `cooldown_active`.
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldProblem>>,
    /// Seconds to wait before trying again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

fn title(code: &str) -> &'static str {
    match code {
        "validation_failed" => "Validation failed",
        "weak_password" => "Password too weak",
        "malformed_request" => "Malformed request",
        "unauthenticated" => "Authentication required",
        "invalid_credentials" => "Invalid credentials",
        "forbidden" => "Forbidden",
        "banned" => "Banned from this group",
        "cooldown_active" => "Rejoin cooldown active",
        "not_found" => "Not found",
        "method_not_allowed" => "Method not allowed",
        "username_taken" => "Username taken",
        "already_member" => "Already a member",
        "request_pending" => "Join request pending",
        "owner_must_transfer" => "Owner must transfer ownership first",
        "group_full" => "Group is full",
        "too_many_groups" => "Too many groups",
        "payload_too_large" => "Payload too large",
        "request_timeout" => "Request timeout",
        "rate_limited" => "Too many requests",
        "unavailable" => "Service unavailable",
        _ => "Internal server error",
    }
}

impl AppError {
    pub fn to_problem(&self) -> Problem {
        let code = self.code();
        Problem {
            type_: format!("urn:conclave:problem:{code}"),
            title: title(code).to_owned(),
            status: self.status(),
            detail: self.public_message(),
            code: code.to_owned(),
            errors: match self {
                AppError::Validation(errs) => Some(
                    errs.iter()
                        .map(|e| FieldProblem {
                            field: e.field.to_owned(),
                            message: e.message.clone(),
                        })
                        .collect(),
                ),
                AppError::WeakPassword(why) => Some(vec![FieldProblem {
                    field: "password".to_owned(),
                    message: why.clone(),
                }]),
                _ => None,
            },
            retry_after: self
                .retry_after()
                .map(|d| d.as_secs_f64().ceil().max(1.0) as u64),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match &self {
            AppError::Internal(e) => tracing::error!(error = ?e, "request failed"),
            AppError::Unavailable(what) => {
                tracing::warn!(dependency = %what, "dependency unavailable")
            }
            AppError::Busy { .. } => tracing::debug!("busy: password hashing at capacity"),
            _ => {}
        }
        let problem = self.to_problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry = problem.retry_after;
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut res = (status, body).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        // Every answer that says when to come back says it in the header too (rate limits,
        // a busy server, a rejoin cooldown).
        if let Some(secs) = retry {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}
