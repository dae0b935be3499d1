//! Conclave: a secure group messaging backend. See docs/architecture.md for the architecture; each module
//! is one concern.

pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod events;
pub mod groups;
pub mod http;
pub mod input;
pub mod limits;
pub mod messages;
pub mod ops;
pub mod pipeline;
pub mod realtime;
pub mod state;
pub mod store;
pub mod web;
