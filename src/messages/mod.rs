//! Messages: send (validated, rate limited, encrypted, submitted to the pipeline) and history
//! (decrypted on the way out).

mod delivery;
pub mod reads;
pub mod reencrypt;
pub mod senders;
pub mod service;

pub use crate::domain::MessageView;
pub use delivery::Delivery;
pub use reads::ReadService;
pub use senders::SenderCache;
pub use service::{MessageService, SendRequest};
