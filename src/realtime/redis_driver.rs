//! The Redis pub/sub driver behind socketioxide's Redis adapter, made resilient.
//!
//! socketioxide-redis's own driver never reconnects or resubscribes, and drops inter-node
//! messages with only a log line when a local buffer is full (STACK.md). This one sits on redis'
//! `ConnectionManager`, which reconnects and re-subscribes every channel by itself; a heartbeat
//! makes it notice a dead server within a second even when nothing is published, and both
//! disconnections and drops are counted in metrics. What was broadcast while Redis was away is
//! lost to remote sockets; clients notice the gap in `seq` and catch up with `group:sync`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, FromRedisValue, PushInfo, PushKind};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ops::metrics as m;

type Handlers = Arc<RwLock<HashMap<String, mpsc::Sender<ChanItem>>>>;

#[derive(Clone)]
pub struct ResilientRedisDriver {
    handlers: Handlers,
    conn: ConnectionManager,
}

#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct DriverError(#[from] redis::RedisError);

impl ResilientRedisDriver {
    /// Connects (RESP3 is required for pub/sub on a multiplexed connection) and starts the
    /// heartbeat, which ends with `stop`.
    pub async fn connect(url: &str, stop: CancellationToken) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(with_resp3(url))?;
        let handlers: Handlers = Arc::default();
        let h = handlers.clone();
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_automatic_resubscription()
            .set_push_sender(move |msg: PushInfo| {
                on_push(msg, &h);
                Ok::<(), std::convert::Infallible>(())
            });
        let conn = ConnectionManager::new_with_config(client, config).await?;
        let driver = Self { handlers, conn };
        tokio::spawn(heartbeat(driver.conn.clone(), stop));
        Ok(driver)
    }
}

/// The URL with `protocol=resp3` unless it names a protocol already.
pub fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

fn on_push(msg: PushInfo, handlers: &Handlers) {
    match msg.kind {
        PushKind::Message | PushKind::SMessage if msg.data.len() >= 2 => {
            let mut it = msg.data.into_iter();
            let (Some(chan), Some(data)) = (it.next(), it.next()) else {
                return;
            };
            let (Ok(chan), Ok(data)) = (
                String::from_redis_value(chan),
                Vec::<u8>::from_redis_value(data),
            ) else {
                return;
            };
            if let Some(tx) = handlers.read().get(&chan)
                && tx.try_send((chan, data)).is_err()
            {
                metrics::counter!(m::SOCKET_DROPPED, "event" => "adapter_inbound").increment(1);
            }
        }
        PushKind::Disconnection => {
            metrics::counter!(m::ADAPTER_RECONNECTS).increment(1);
            tracing::warn!(
                "Redis adapter connection lost; it reconnects and re-subscribes by itself"
            );
        }
        _ => {}
    }
}

/// A PING a second: a command is what makes the manager notice a dead connection and rebuild it.
async fn heartbeat(mut conn: ConnectionManager, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let _: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
    }
}

impl Driver for ResilientRedisDriver {
    type Error = DriverError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Self::Error> {
        self.conn
            .clone()
            .publish::<_, _, redis::Value>(chan, val)
            .await?;
        Ok(())
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, Self::Error> {
        let (tx, rx) = mpsc::channel(size);
        self.handlers.write().insert(chan.clone(), tx);
        self.conn.clone().subscribe(chan.as_str()).await?;
        Ok(MessageStream::new(rx))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), Self::Error> {
        self.handlers.write().remove(&chan);
        self.conn.clone().unsubscribe(chan).await?;
        Ok(())
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, Self::Error> {
        let (_, count): (String, u16) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(chan)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(count)
    }
}
