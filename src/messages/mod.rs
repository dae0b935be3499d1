//! Messages: send (validated, rate limited, encrypted, submitted to the pipeline) and history
//! (decrypted on the way out).

pub mod reencrypt;
pub mod service;

pub use service::{MessageService, MessageView};
