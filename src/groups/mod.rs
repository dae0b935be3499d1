//! Groups: creation, listing, and every membership command, run through the store's atomic
//! `execute` and announced to live clients.

mod manage;
pub mod service;

pub use service::{GroupService, NewGroup};
