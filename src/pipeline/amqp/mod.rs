//! The cluster pipeline on RabbitMQ (docs/architecture.md, "A message's path").
//!
//! Topology (declared idempotently by every process): a durable direct exchange
//! `conclave.messages`; P durable quorum queues `conclave.messages.p<i>`, each bound with routing
//! key `p<i>`, with single active consumer (one process at a time owns a partition, so a group's
//! messages are stored in order) and a delivery limit after which a poison message is
//! dead-lettered to `conclave.messages.dead` (counted in metrics).
//!
//! Publishing: persistent, mandatory, on a channel in confirm mode; the sender is answered only
//! after the broker confirms. Publishers and consumers use separate connections, because a broker
//! memory or disk alarm blocks publishing connections and must not stall consumption. Both
//! connections are supervised: lost ones are re-established with backoff, and consumers are
//! re-subscribed (a lapin consumer can go silent after a broker restart, so we watch the
//! connection ourselves rather than trust the stream to end).
//!
//! Consuming: bounded prefetch; what has arrived is taken as a batch, written to the store in one
//! transaction (write-behind; batches of several partitions that wait together share one, see
//! `group_commit`), emitted, then acked. A redelivered batch is harmless: the store
//! recognises message ids it already holds. A batch that fails to store is returned to the queue.
//!
//! A process that cannot store for a while (`vitals`) steps back: it closes its consumer
//! connection, which returns what it holds and lets single active consumer move each of its
//! partitions to a waiting consumer of another process, and leaves the partition registry; it
//! subscribes again once its store answers. A process that stops answering at all (paused,
//! partitioned) loses its connection, and so its partitions, when the broker misses its
//! heartbeats (`CONCLAVE_AMQP_HEARTBEAT`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::balance::{Balance, Registry};
use super::group_commit::GroupCommit;
use super::vitals::Vitals;
use super::{Pipeline, partition_of};
use crate::domain::{GroupId, MessageId, UserId, from_millis, to_millis};
use crate::error::{AppError, AppResult};
use crate::events::EventSink;
use crate::ops::backoff;
use crate::ops::metrics as metric;
use crate::store::{EntryAction, MaintenanceStore, MessageStore, NewMessage};

const EXCHANGE: &str = "conclave.messages";
const DEAD_EXCHANGE: &str = "conclave.messages.dlx";
const DEAD_QUEUE: &str = "conclave.messages.dead";
const PREFETCH: u16 = 512;
const BATCH: usize = 256;
const DELIVERY_LIMIT: i64 = 20;
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

mod wire;
use wire::Wire;

/// Names are prefixed so several deployments (or test runs) can share one broker.
#[derive(Clone)]
struct Names {
    prefix: String,
}

impl Names {
    fn exchange(&self) -> String {
        format!("{}{EXCHANGE}", self.prefix)
    }
    fn dead_exchange(&self) -> String {
        format!("{}{DEAD_EXCHANGE}", self.prefix)
    }
    fn dead_queue(&self) -> String {
        format!("{}{DEAD_QUEUE}", self.prefix)
    }
    fn queue(&self, p: u32) -> String {
        format!("{}{EXCHANGE}.p{p}", self.prefix)
    }
}

fn key(p: u32) -> String {
    format!("p{p}")
}

pub struct AmqpPipeline {
    publisher: Arc<RwLock<Option<Channel>>>,
    consuming: Arc<AtomicBool>,
    /// Set while this process has given its partitions up because it cannot store.
    stepped_back: Arc<AtomicBool>,
    names: Names,
    partitions: u32,
    stop: CancellationToken,
    /// The consumers' supervisor: it ends after closing the consumer connection.
    consumers: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

pub struct AmqpSettings {
    pub broker: Broker,
    pub partitions: u32,
    /// Prefix of every exchange and queue name.
    pub prefix: String,
    /// Where the processes agree who writes which partition (`balance`); `None`: whoever
    /// RabbitMQ makes active keeps it.
    pub registry: Option<Registry>,
    /// Asked of the broker (`CONCLAVE_AMQP_HEARTBEAT`), unless its URL names one.
    pub heartbeat: Duration,
    /// How long the store may fail before this process gives its partitions up.
    pub step_back_after: Duration,
    /// Pinged to tell whether this process can store.
    pub health: Arc<dyn MaintenanceStore>,
}

/// `url` with `heartbeat=<seconds>` unless it names a heartbeat already.
fn with_heartbeat(url: &str, heartbeat: Duration) -> String {
    if url.contains("heartbeat=") {
        url.to_owned()
    } else {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}heartbeat={}", heartbeat.as_secs().max(1))
    }
}

impl AmqpPipeline {
    /// Starts the supervisors; returns at once. Readiness reports when the broker is reachable.
    pub fn start(s: AmqpSettings, store: Arc<dyn MessageStore>, sink: Arc<dyn EventSink>) -> Self {
        let names = Names { prefix: s.prefix };
        let publisher = Arc::new(RwLock::new(None));
        let consuming = Arc::new(AtomicBool::new(false));
        let stepped_back = Arc::new(AtomicBool::new(false));
        let stop = CancellationToken::new();
        let broker = Broker {
            url: with_heartbeat(&s.broker.url, s.heartbeat),
            ..s.broker
        };
        let vitals = Vitals::start(s.health, s.step_back_after, stop.clone());
        let balance = match s.registry {
            Some(r) => Balance::start(r, &names.prefix, consuming.clone(), stop.clone()),
            None => Balance::off(),
        };
        tokio::spawn(supervise_publisher(
            broker.clone(),
            names.clone(),
            s.partitions,
            publisher.clone(),
            stop.clone(),
        ));
        let consumers = tokio::spawn(supervise_consumers(ConsumerSetup {
            broker,
            names: names.clone(),
            partitions: s.partitions,
            store,
            sink,
            balance,
            consuming: consuming.clone(),
            stepped_back: stepped_back.clone(),
            vitals,
            stop: stop.clone(),
        }));
        Self {
            publisher,
            consuming,
            stepped_back,
            names,
            partitions: s.partitions,
            stop,
            consumers: parking_lot::Mutex::new(Some(consumers)),
        }
    }
}

/// Where RabbitMQ is: its URL (`amqps://` for TLS) and, for a private CA, the CA certificates
/// to trust (PEM) instead of the system's.
#[derive(Clone, Debug)]
pub struct Broker {
    pub url: String,
    pub tls_ca: Option<String>,
}

async fn connect(broker: &Broker, role: &str) -> lapin::Result<Connection> {
    let props = ConnectionProperties::default()
        .with_connection_name(format!("conclave-{role}-{}", std::process::id()).into());
    let tls = lapin::tcp::OwnedTLSConfig {
        identity: None,
        cert_chain: broker.tls_ca.clone(),
    };
    Connection::connect_with_config(&broker.url, props, tls, lapin::runtime::default_runtime()?)
        .await
}

/// Declares the exchange, the partition queues and the dead-letter path (idempotent).
async fn declare(ch: &Channel, names: &Names, partitions: u32) -> lapin::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(
        names.exchange().into(),
        ExchangeKind::Direct,
        durable,
        FieldTable::default(),
    )
    .await?;
    ch.exchange_declare(
        names.dead_exchange().into(),
        ExchangeKind::Fanout,
        durable,
        FieldTable::default(),
    )
    .await?;
    let qopts = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let mut dead_args = FieldTable::default();
    dead_args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    ch.queue_declare(names.dead_queue().into(), qopts, dead_args)
        .await?;
    ch.queue_bind(
        names.dead_queue().into(),
        names.dead_exchange().into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    for p in 0..partitions {
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(names.dead_exchange().into()),
        );
        ch.queue_declare(names.queue(p).into(), qopts, args).await?;
        ch.queue_bind(
            names.queue(p).into(),
            names.exchange().into(),
            key(p).into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    }
    Ok(())
}

async fn watch_connection(conn: &Connection, stop: &CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        if !conn.status().connected() {
            return;
        }
    }
}

async fn supervise_publisher(
    broker: Broker,
    names: Names,
    partitions: u32,
    slot: Arc<RwLock<Option<Channel>>>,
    stop: CancellationToken,
) {
    let mut attempt = 0;
    while !stop.is_cancelled() {
        let setup = async {
            let conn = connect(&broker, "publisher").await?;
            let ch = conn.create_channel().await?;
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            declare(&ch, &names, partitions).await?;
            Ok::<_, lapin::Error>((conn, ch))
        };
        match setup.await {
            Ok((conn, ch)) => {
                attempt = 0;
                tracing::info!("connected to RabbitMQ (publisher)");
                *slot.write() = Some(ch);
                watch_connection(&conn, &stop).await;
                slot.write().take();
                metrics::counter!(metric::BROKER_RECONNECTS, "role" => "publisher").increment(1);
                let _ = conn.close(200, "reconnecting".into()).await;
                if !stop.is_cancelled() {
                    tracing::warn!("RabbitMQ publisher connection lost; reconnecting");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, "waiting for RabbitMQ (publisher)");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff(attempt)) => {}
                }
                attempt += 1;
            }
        }
    }
}

/// Opens a channel on `conn` and subscribes to partition `p` (waiting behind the active
/// consumer, if there is one).
async fn subscribe(
    conn: &Connection,
    names: &Names,
    p: u32,
) -> lapin::Result<(Channel, lapin::Consumer)> {
    let ch = conn.create_channel().await?;
    ch.basic_qos(PREFETCH, BasicQosOptions::default()).await?;
    let tag = format!("conclave-{}-p{p}", std::process::id());
    let consumer = ch
        .basic_consume(
            names.queue(p).into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((ch, consumer))
}

/// What the consumers of one connection share.
#[derive(Clone)]
struct Consuming {
    conn: Arc<Connection>,
    names: Names,
    writer: GroupCommit,
    sink: Arc<dyn EventSink>,
    balance: Balance,
    vitals: Vitals,
    stop: CancellationToken,
}

/// What the consumer supervisor keeps across reconnections.
struct ConsumerSetup {
    broker: Broker,
    names: Names,
    partitions: u32,
    store: Arc<dyn MessageStore>,
    sink: Arc<dyn EventSink>,
    balance: Balance,
    /// Set while subscribed (readiness, and membership in the partition registry).
    consuming: Arc<AtomicBool>,
    stepped_back: Arc<AtomicBool>,
    vitals: Vitals,
    stop: CancellationToken,
}

async fn supervise_consumers(s: ConsumerSetup) {
    let ConsumerSetup {
        broker,
        names,
        partitions,
        store,
        sink,
        balance,
        consuming,
        stepped_back,
        vitals,
        stop,
    } = s;
    let mut attempt = 0;
    while !stop.is_cancelled() {
        if vitals.is_sick() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = vitals.healthy() => {}
            }
        }
        let setup = async {
            let conn = connect(&broker, "consumer").await?;
            let ch = conn.create_channel().await?;
            declare(&ch, &names, partitions).await?;
            let mut subscriptions = Vec::new();
            for p in 0..partitions {
                subscriptions.push(subscribe(&conn, &names, p).await?);
            }
            Ok::<_, lapin::Error>((conn, ch, subscriptions))
        };
        match setup.await {
            Ok((conn, ch, subscriptions)) => {
                attempt = 0;
                tracing::info!(partitions, "consuming from RabbitMQ");
                consuming.store(true, Ordering::SeqCst);
                stepped_back.store(false, Ordering::SeqCst);
                metrics::gauge!(metric::PIPELINE_STEPPED_BACK).set(0.0);
                let conn = Arc::new(conn);
                let local_stop = stop.child_token();
                let shared = Consuming {
                    conn: conn.clone(),
                    names: names.clone(),
                    writer: GroupCommit::start(store.clone(), super::group_commit::IN_FLIGHT),
                    sink: sink.clone(),
                    balance: balance.clone(),
                    vitals: vitals.clone(),
                    stop: local_stop.clone(),
                };
                let mut tasks = Vec::new();
                for (p, subscription) in (0..).zip(subscriptions) {
                    tasks.push(tokio::spawn(run_partition(p, subscription, shared.clone())));
                }
                drop(shared);
                tasks.push(tokio::spawn(watch_queues(
                    ch,
                    names.clone(),
                    partitions,
                    local_stop.clone(),
                )));
                let sick = tokio::select! {
                    _ = watch_connection(&conn, &stop) => false,
                    _ = vitals.sick() => true,
                };
                consuming.store(false, Ordering::SeqCst);
                if sick {
                    // Close first: the batches in hand may wait for the store as long as its
                    // driver lets them; closing returns them to their queues at once, for the
                    // consumers of other processes.
                    stepped_back.store(true, Ordering::SeqCst);
                    metrics::gauge!(metric::PIPELINE_STEPPED_BACK).set(1.0);
                    let _ = conn.close(200, "cannot store; stepping back".into()).await;
                    local_stop.cancel();
                    // Those stuck in a store call end with it (their acks go nowhere).
                    drop(tasks);
                    continue;
                }
                // On shutdown the consumers finish their batch; unacked deliveries return to the
                // broker when the connection closes.
                local_stop.cancel();
                for t in tasks {
                    let _ = t.await;
                }
                let _ = conn.close(200, "bye".into()).await;
                if !stop.is_cancelled() {
                    metrics::counter!(metric::BROKER_RECONNECTS, "role" => "consumer").increment(1);
                    tracing::warn!("RabbitMQ consumer connection lost; re-subscribing");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, "waiting for RabbitMQ (consumer)");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff(attempt)) => {}
                }
                attempt += 1;
            }
        }
    }
}

/// Consumes partition `p` until the connection's consumers stop, handing the partition to its
/// owner when `balance` says so: closing the channel returns what was prefetched to the head of
/// the queue and lets the broker activate the next waiting consumer; then this process
/// subscribes again, at the back of the line.
async fn run_partition(p: u32, first: (Channel, lapin::Consumer), c: Consuming) {
    let mut subscription = Some(first);
    let mut failures = 0u32;
    while !c.stop.is_cancelled() {
        let (ch, consumer) = match subscription.take() {
            Some(s) => s,
            None => match subscribe(&c.conn, &c.names, p).await {
                Ok(s) => s,
                Err(e) => {
                    // The connection watcher re-subscribes everything if the connection is gone.
                    tracing::warn!(partition = p, error = %e, "re-subscribing to a partition failed");
                    tokio::select! {
                        _ = c.stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff(failures)) => {}
                    }
                    failures += 1;
                    continue;
                }
            },
        };
        failures = 0;
        if consume(p, &ch, consumer, &c).await == Ended::HandOff {
            metrics::counter!(metric::PIPELINE_HANDOFFS).increment(1);
            tracing::info!(partition = p, "handing the partition to its owner");
            let _ = ch.close(200, "partition handed to its owner".into()).await;
        } else {
            return;
        }
    }
}

/// The broker's ready counts, polled: each partition queue's depth (how far its writer is
/// behind) and the dead-letter queue, where messages the broker dead-lettered (undecodable, or
/// redelivered past the delivery limit) wait for an operator.
async fn watch_queues(ch: Channel, names: Names, partitions: u32, stop: CancellationToken) {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let ready = |queue: String| {
        let ch = ch.clone();
        async move {
            ch.queue_declare(queue.into(), passive, FieldTable::default())
                .await
                .ok()
                .map(|q| q.message_count() as f64)
        }
    };
    loop {
        if let Some(n) = ready(names.dead_queue()).await {
            metrics::gauge!(metric::DEAD_LETTER_DEPTH).set(n);
        }
        for p in 0..partitions {
            if let Some(n) = ready(names.queue(p)).await {
                metrics::gauge!(metric::PIPELINE_QUEUE_DEPTH, "partition" => p.to_string()).set(n);
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(15)) => {}
        }
    }
}

#[derive(PartialEq)]
enum Ended {
    /// Stopped, or the subscription ended.
    Done,
    /// Another process owns the partition.
    HandOff,
}

async fn consume(p: u32, ch: &Channel, mut consumer: lapin::Consumer, c: &Consuming) -> Ended {
    let (sink, stop) = (&c.sink, &c.stop);
    let unacked = metrics::gauge!(metric::PIPELINE_UNACKED, "partition" => p.to_string());
    let mut failures = 0u32;
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => return Ended::Done,
            d = consumer.next() => d,
        };
        let Some(Ok(first)) = first else {
            return Ended::Done;
        };
        let mut deliveries = vec![first];
        while deliveries.len() < BATCH {
            match futures::FutureExt::now_or_never(consumer.next()) {
                Some(Some(Ok(d))) => deliveries.push(d),
                _ => break,
            }
        }
        let mut batch = Vec::with_capacity(deliveries.len());
        let mut kept = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            match Wire::decode(&d.data) {
                Some(msg) => {
                    batch.push(msg);
                    kept.push(d);
                }
                None => {
                    metrics::counter!(metric::MESSAGES_DEAD_LETTERED).increment(1);
                    tracing::error!(routing_key = %d.routing_key, "undecodable message dead-lettered");
                    let _ = d.acker.reject(BasicRejectOptions { requeue: false }).await;
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        unacked.set(kept.len() as f64);
        match c.writer.append(batch).await {
            Ok(results) => {
                failures = 0;
                c.vitals.stored();
                // Senders were answered when RabbitMQ confirmed the publish.
                let (_, fresh) = super::settle(results);
                if !fresh.is_empty() {
                    sink.messages_stored(&fresh).await;
                }
                if let Some(last) = kept.last() {
                    let _ = ch
                        .basic_ack(last.delivery_tag, BasicAckOptions { multiple: true })
                        .await;
                }
                unacked.set(0.0);
                if c.balance.should_hand_off(p) {
                    return Ended::HandOff;
                }
            }
            Err(e) => {
                failures += 1;
                c.vitals.failed();
                metrics::counter!(metric::PIPELINE_ERRORS).increment(1);
                tracing::warn!(error = %e, batch = kept.len(), "storing a batch failed; returning it to the queue");
                if let Some(last) = kept.last() {
                    let _ = ch
                        .basic_nack(
                            last.delivery_tag,
                            BasicNackOptions {
                                multiple: true,
                                requeue: true,
                            },
                        )
                        .await;
                }
                unacked.set(0.0);
                tokio::select! {
                    _ = stop.cancelled() => return Ended::Done,
                    _ = tokio::time::sleep(backoff(failures)) => {}
                }
            }
        }
    }
}

impl AmqpPipeline {
    async fn publish(&self, ch: &Channel, msg: &NewMessage) -> AppResult<MessageId> {
        let p = partition_of(&msg.group_id, self.partitions);
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(ShortString::from("application/json"))
            .with_message_id(msg.id.to_string().into());
        let publish = async {
            let confirm = ch
                .basic_publish(
                    self.names.exchange().into(),
                    key(p).into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &Wire::encode(msg),
                    props,
                )
                .await?
                .await?;
            Ok::<_, lapin::Error>(confirm)
        };
        match tokio::time::timeout(CONFIRM_TIMEOUT, publish).await {
            Ok(Ok(Confirmation::Ack(None))) => {
                metrics::counter!(metric::MESSAGES_ACCEPTED).increment(1);
                Ok(msg.id)
            }
            Ok(Ok(other)) => {
                tracing::warn!(confirmation = ?other, "broker did not accept a message");
                Err(AppError::Unavailable("rabbitmq".into()))
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "publishing failed");
                Err(AppError::Unavailable("rabbitmq".into()))
            }
            Err(_) => Err(AppError::Unavailable("rabbitmq (confirm timed out)".into())),
        }
    }
}

#[async_trait]
impl Pipeline for AmqpPipeline {
    async fn submit(&self, msg: NewMessage) -> AppResult<MessageId> {
        let ch = self
            .publisher
            .read()
            .clone()
            .ok_or_else(|| AppError::Unavailable("rabbitmq".into()))?;
        self.publish(&ch, &msg).await
    }

    async fn ready(&self) -> Result<(), String> {
        // Not consuming on purpose: the store's own check says why.
        if self.stepped_back.load(Ordering::SeqCst) && self.publisher.read().is_some() {
            return Ok(());
        }
        match (
            self.publisher.read().is_some(),
            self.consuming.load(Ordering::SeqCst),
        ) {
            (true, true) => Ok(()),
            (false, _) => Err("rabbitmq publisher not connected".into()),
            (_, false) => Err("rabbitmq consumers not subscribed".into()),
        }
    }

    async fn shutdown(&self) {
        self.stop.cancel();
        // Each consumer finishes the batch in hand; closing the connection then cancels every
        // subscription and returns unacknowledged deliveries, so each partition's single active
        // consumer moves to another process at once. Bounded: a hung broker cannot hold the
        // process past its grace period.
        let supervisor = self.consumers.lock().take();
        if let Some(task) = supervisor
            && tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_err()
        {
            tracing::warn!("RabbitMQ consumers did not stop within 10 s; exiting anyway");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heartbeat_is_asked_unless_the_url_names_one() {
        let hb = Duration::from_secs(5);
        assert_eq!(
            with_heartbeat("amqp://h/%2f", hb),
            "amqp://h/%2f?heartbeat=5"
        );
        assert_eq!(
            with_heartbeat("amqp://h/%2f?frame_max=8192", hb),
            "amqp://h/%2f?frame_max=8192&heartbeat=5"
        );
        assert_eq!(
            with_heartbeat("amqp://h/%2f?heartbeat=30", hb),
            "amqp://h/%2f?heartbeat=30"
        );
    }
}
