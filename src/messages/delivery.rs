//! Stored messages on their way to live sockets: opened here, with the keyring, and handed to
//! the real-time layer's [`Broadcast`] port as views, so no other module holds the keyring.

use std::sync::Arc;

use async_trait::async_trait;

use super::service::decrypt;
use crate::crypto::Keyring;
use crate::domain::{GroupId, UserId};
use crate::events::{Broadcast, EventSink, GroupEvent, Unpublished};
use crate::ops::metrics as metric;
use crate::store::StoredMessage;

/// The [`EventSink`] of both engines.
pub struct Delivery {
    port: Arc<dyn Broadcast>,
    keyring: Keyring,
}

impl Delivery {
    pub fn new(port: Arc<dyn Broadcast>, keyring: Keyring) -> Self {
        Self { port, keyring }
    }
}

#[async_trait]
impl EventSink for Delivery {
    async fn messages_stored(&self, messages: &[StoredMessage]) {
        let now = crate::domain::now();
        let mut views = Vec::with_capacity(messages.len());
        for stored in messages {
            match decrypt(&self.keyring, stored) {
                Ok(v) => views.push(v),
                Err(e) => {
                    tracing::error!(error = %e, "stored message cannot be delivered");
                    continue;
                }
            }
            let latency = (now - stored.sent_at).as_seconds_f64().max(0.0);
            metrics::histogram!(metric::DELIVERY_LATENCY).record(latency);
        }
        metrics::counter!(metric::MESSAGES_DELIVERED).increment(views.len() as u64);
        self.port.messages(&views).await;
    }

    async fn group_events(&self, events: Vec<GroupEvent>) -> Result<(), Unpublished> {
        // Every event is applied, even after one is not carried.
        let mut carried = Ok(());
        for ev in events {
            if let Err(e) = self.port.group_event(ev).await {
                carried = Err(e);
            }
        }
        carried
    }

    async fn removals_deliverable(&self) -> bool {
        self.port.removals_deliverable().await
    }

    async fn read_moved(&self, group: GroupId, user: UserId, seq: u64) {
        self.port.read_moved(group, user, seq).await;
    }
}
