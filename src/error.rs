//! The one error type of the service. Every failure a client can see is one of these variants,
//! each with a stable `code`; `http::problem` turns it into `application/problem+json` and the
//! Socket.IO layer into an ack `{ok:false, error:{code, message}}`.

use std::time::Duration;

use crate::domain::{FieldError, Refusal};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("the request did not pass validation")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Malformed(String),
    /// A password too easy to guess (the username, a common password); says why.
    #[error("the password is too easy to guess")]
    WeakPassword(String),
    #[error("authentication is required")]
    Unauthenticated,
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(String),
    #[error("you are banned from this group")]
    Banned,
    #[error("you left this private group recently; you can join again later")]
    CooldownActive { retry_after: Duration },
    #[error("not found")]
    NotFound,
    #[error("this method is not allowed on this resource")]
    MethodNotAllowed,
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("the request is larger than allowed")]
    PayloadTooLarge,
    /// The request body did not arrive within the request deadline: the client is slow.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("too many requests")]
    RateLimited { retry_after: Duration },
    #[error("a dependency is unavailable: {0}")]
    Unavailable(String),
    /// This process is at capacity for this kind of work (password hashing); try again later.
    #[error("the server is busy; try again shortly")]
    Busy { retry_after: Duration },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// The stable machine-readable code of docs/api.md ("Error codes").
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Validation(_) => "validation_failed",
            AppError::Malformed(_) => "malformed_request",
            AppError::WeakPassword(_) => "weak_password",
            AppError::Unauthenticated => "unauthenticated",
            AppError::InvalidCredentials => "invalid_credentials",
            AppError::Forbidden(_) => "forbidden",
            AppError::Banned => "banned",
            AppError::CooldownActive { .. } => "cooldown_active",
            AppError::NotFound => "not_found",
            AppError::MethodNotAllowed => "method_not_allowed",
            AppError::Conflict { code, .. } => code,
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::RequestTimeout => "request_timeout",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::Unavailable(_) | AppError::Busy { .. } => "unavailable",
            AppError::Internal(_) => "internal_error",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            AppError::Validation(_) | AppError::WeakPassword(_) => 422,
            AppError::Malformed(_) => 400,
            AppError::Unauthenticated | AppError::InvalidCredentials => 401,
            AppError::Forbidden(_) | AppError::Banned | AppError::CooldownActive { .. } => 403,
            AppError::NotFound => 404,
            AppError::MethodNotAllowed => 405,
            AppError::Conflict { .. } => 409,
            AppError::PayloadTooLarge => 413,
            AppError::RequestTimeout => 408,
            AppError::RateLimited { .. } => 429,
            AppError::Unavailable(_) | AppError::Busy { .. } => 503,
            AppError::Internal(_) => 500,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AppError::CooldownActive { retry_after }
            | AppError::RateLimited { retry_after }
            | AppError::Busy { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        AppError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn forbidden() -> Self {
        AppError::Forbidden("only the group owner may do this".into())
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Conflict {
            code,
            message: message.into(),
        }
    }

    /// What a client is shown; internal details stay in the logs.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) => "an internal error occurred; it has been logged".into(),
            AppError::Unavailable(_) => "a dependency is unavailable; try again shortly".into(),
            AppError::Busy { .. } => "the server is busy; try again shortly".into(),
            other => other.to_string(),
        }
    }
}

impl From<FieldError> for AppError {
    fn from(e: FieldError) -> Self {
        AppError::Validation(vec![e])
    }
}

impl From<Vec<FieldError>> for AppError {
    fn from(e: Vec<FieldError>) -> Self {
        AppError::Validation(e)
    }
}

impl From<Refusal> for AppError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Forbidden => AppError::forbidden(),
            Refusal::Banned => AppError::Banned,
            Refusal::CooldownActive { retry_after } => AppError::CooldownActive { retry_after },
            Refusal::NotFound => AppError::NotFound,
            Refusal::AlreadyMember => AppError::conflict("already_member", r.to_string()),
            Refusal::RequestPending => AppError::conflict("request_pending", r.to_string()),
            Refusal::OwnerMustTransfer => AppError::conflict("owner_must_transfer", r.to_string()),
            Refusal::GroupFull => AppError::conflict("group_full", r.to_string()),
            Refusal::InvitationPending => AppError::conflict("invitation_pending", r.to_string()),
            Refusal::MembersExceedLimit => {
                AppError::conflict("members_exceed_limit", r.to_string())
            }
            Refusal::TooManyGroups { .. } => AppError::conflict("too_many_groups", r.to_string()),
            Refusal::InvalidTarget { field, message } => AppError::field(field, message),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
