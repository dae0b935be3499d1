//! Messages: send (validated, rate limited, encrypted, submitted to the pipeline) and history
//! (decrypted on the way out).

pub mod reencrypt;
pub mod senders;
pub mod service;

pub use senders::SenderCache;
pub use service::{MessageService, MessageView, SendRequest};
