//! Accounts and sessions: argon2id password hashes, short-lived JWT access tokens with the
//! algorithm pinned, and rotating refresh tokens whose reuse revokes their family.

mod known;
pub mod password;
pub mod service;
pub mod token;
pub mod weak;

pub use password::PasswordHasher;
pub use service::{AuthService, Authenticated, TokenPair};
pub use token::{AccessClaims, TokenIssuer};
