//! Accounts and sessions: argon2id password hashes, short-lived JWT access tokens with the
//! algorithm pinned, and rotating refresh tokens whose reuse revokes their family.

pub mod password;
pub mod service;
pub mod token;

pub use password::PasswordHasher;
pub use service::{AuthService, TokenPair};
pub use token::{AccessClaims, TokenIssuer};
