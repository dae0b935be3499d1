//! The delivery pipeline: accepts messages durably, stores them in order per group, then hands
//! them to the [`EventSink`](crate::events::EventSink) for live delivery. Messages of one group
//! always go through one partition, which is what keeps `seq` order. The standalone engine runs
//! the partitions in process (`local`); the cluster engine runs them on RabbitMQ, and its
//! processes share the partitions out among themselves (`balance`).

pub mod amqp;
pub mod balance;
pub mod group_commit;
pub mod local;
pub mod vitals;

use async_trait::async_trait;

use crate::domain::MessageId;
use crate::error::{AppError, AppResult};
use crate::ops::metrics as metric;
use crate::store::{Appended, NewMessage, StoredMessage};

pub use amqp::{AmqpPipeline, AmqpSettings, Broker};
pub use balance::Registry;
pub use local::LocalPipeline;

#[async_trait]
pub trait Pipeline: Send + Sync + 'static {
    /// Resolves once the message is durably accepted, with the id it is stored under (the
    /// earlier one if the same sender's `client_msg_id` was already accepted).
    async fn submit(&self, msg: NewMessage) -> AppResult<MessageId>;
    async fn ready(&self) -> Result<(), String>;
    /// Stop taking messages and finish those in hand.
    async fn shutdown(&self);
}

/// Which partition a group's messages go through.
pub fn partition_of(group: &crate::domain::GroupId, partitions: u32) -> u32 {
    let v = group.as_uuid().as_u128();
    // UUIDv7's low 62 bits are random, so folding them spreads groups evenly.
    ((v as u64) ^ ((v >> 64) as u64))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_shr(32) as u32
        % partitions
}

/// The refusal of a message whose sender lost membership between acceptance and storage
/// (`messages::MessageService` turns it into the precise refusal for the sender).
pub const NOT_A_MEMBER: &str = "you are not a member of this group";

/// What both pipelines do with a stored batch: each message's answer for its sender (its id,
/// `NotFound` once its group is gone, `Forbidden` once its sender is no longer a member), and the newly stored ones for live delivery. Counts
/// stored and duplicate messages, and records `conclave_message_persist_latency_seconds` with
/// one definition for both engines: from the message's `sent_at` (when the server accepted it)
/// until it is stored.
pub(crate) fn settle(results: Vec<Appended>) -> (Vec<AppResult<MessageId>>, Vec<StoredMessage>) {
    let now = crate::domain::now();
    let mut answers = Vec::with_capacity(results.len());
    let mut fresh = Vec::with_capacity(results.len());
    for r in results {
        answers.push(match r {
            Appended::Stored(msg) => {
                metrics::counter!(metric::MESSAGES_PERSISTED).increment(1);
                let lag = (now - msg.sent_at).as_seconds_f64().max(0.0);
                metrics::histogram!(metric::PERSIST_LATENCY).record(lag);
                let id = msg.id;
                fresh.push(msg);
                Ok(id)
            }
            Appended::Duplicate(msg) => {
                metrics::counter!(metric::MESSAGES_DUPLICATE).increment(1);
                Ok(msg.id)
            }
            Appended::GroupGone | Appended::TargetGone => Err(AppError::NotFound),
            Appended::NotMember => {
                metrics::counter!(metric::MESSAGES_SENDER_GONE).increment(1);
                Err(AppError::Forbidden(NOT_A_MEMBER.into()))
            }
        });
    }
    (answers, fresh)
}
