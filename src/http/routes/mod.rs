//! Route handlers, one file per area of the API. Handlers stay thin: parse and validate into
//! domain types, call a service, shape the reply.

pub mod auth;
pub mod groups;
pub mod manage;
pub mod messages;
pub mod ops;
pub mod users;
