//! The audit trail: security events, recorded off the request path.
//!
//! Services call [`Audit::record`], which never waits: the event goes into a bounded buffer
//! (`CONCLAVE_AUDIT_BUFFER`), and when that is full it is dropped and counted
//! (`conclave_audit_events_dropped_total{reason="full"}`) rather than slowing the action down.
//! One background task writes the buffer to the store in batches, every
//! `CONCLAVE_AUDIT_BATCH` events or `CONCLAVE_AUDIT_FLUSH_INTERVAL`, whichever comes first, and
//! writes what is left when the server shuts down ([`Audit::close`]). Events are never on the
//! message path: only account and moderation actions are audited.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use crate::domain::{AuditEvent, AuditKind};

use crate::config::AuditSettings;
use crate::domain::{Cursor, GroupId, Limit};
use crate::error::AppResult;
use crate::ops::metrics as metric;
use crate::store::{AuditStore, Page};

/// Cheap to clone; every clone feeds the same writer.
#[derive(Clone)]
pub struct Audit {
    /// Where the writer writes, and listings read.
    store: Arc<dyn AuditStore>,
    events: mpsc::Sender<AuditEvent>,
    flushes: mpsc::Sender<oneshot::Sender<()>>,
    stop: CancellationToken,
    writer: Arc<parking_lot::Mutex<Option<JoinHandle<()>>>>,
}

impl Audit {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Arc<dyn AuditStore>, settings: AuditSettings) -> Self {
        let (events, rx) = mpsc::channel(settings.buffer);
        let (flushes, flush_rx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        // Registered at zero so dashboards and alerts have a series before the first event.
        for reason in ["full", "closed", "store_error"] {
            metrics::counter!(metric::AUDIT_DROPPED, "reason" => reason).increment(0);
        }
        metrics::counter!(metric::AUDIT_WRITTEN).increment(0);
        let writer = Writer {
            store: store.clone(),
            settings,
            rx,
            flush_rx,
            buf: Vec::with_capacity(settings.batch),
        };
        let task = tokio::spawn(writer.run(stop.clone()));
        Self {
            store,
            events,
            flushes,
            stop,
            writer: Arc::new(parking_lot::Mutex::new(Some(task))),
        }
    }

    /// A page of one group's events, oldest first. Events recorded on this process are written
    /// first (waiting up to 2 s), so an owner sees their own latest actions.
    pub async fn of_group(
        &self,
        group: GroupId,
        limit: Limit,
        after: Option<&Cursor>,
    ) -> AppResult<Page<AuditEvent>> {
        self.flush(Duration::from_secs(2)).await;
        self.store.audit_of_group(group, limit, after).await
    }

    /// Queues an event; never waits. A full buffer drops it (counted, and logged at warn);
    /// returns whether it was queued.
    pub fn record(&self, event: AuditEvent) -> bool {
        let Err(e) = self.events.try_send(event) else {
            return true;
        };
        {
            let (reason, event) = match e {
                mpsc::error::TrySendError::Full(ev) => ("full", ev),
                mpsc::error::TrySendError::Closed(ev) => ("closed", ev),
            };
            metrics::counter!(metric::AUDIT_DROPPED, "reason" => reason).increment(1);
            tracing::warn!(target: "audit", event = event.kind.as_str(), reason, "audit event dropped");
        }
        false
    }

    /// Writes everything recorded so far on this process before returning (bounded by
    /// `timeout`), so a reader sees their own recent actions.
    pub async fn flush(&self, timeout: Duration) {
        let (ack, done) = oneshot::channel();
        if self.flushes.send(ack).await.is_ok() {
            let _ = tokio::time::timeout(timeout, done).await;
        }
    }

    /// Stops taking events, writes what is buffered, and waits for the writer to finish.
    pub async fn close(&self) {
        self.stop.cancel();
        let task = self.writer.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

struct Writer {
    store: Arc<dyn AuditStore>,
    settings: AuditSettings,
    rx: mpsc::Receiver<AuditEvent>,
    flush_rx: mpsc::Receiver<oneshot::Sender<()>>,
    buf: Vec<AuditEvent>,
}

impl Writer {
    async fn run(mut self, stop: CancellationToken) {
        // When the oldest buffered event must be written at the latest.
        let mut deadline: Option<Instant> = None;
        loop {
            let due = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                Some(ack) = self.flush_rx.recv() => {
                    while let Ok(e) = self.rx.try_recv() {
                        self.buf.push(e);
                    }
                    self.write().await;
                    deadline = None;
                    let _ = ack.send(());
                }
                e = self.rx.recv() => match e {
                    Some(e) => {
                        self.buf.push(e);
                        if self.buf.len() >= self.settings.batch {
                            self.write().await;
                            deadline = None;
                        } else if deadline.is_none() {
                            deadline = Some(Instant::now() + self.settings.flush_interval);
                        }
                    }
                    None => break,
                },
                _ = due => {
                    self.write().await;
                    deadline = None;
                }
            }
            // A failed write keeps its events for the next tick.
            if !self.buf.is_empty() && deadline.is_none() {
                deadline = Some(Instant::now() + self.settings.flush_interval);
            }
        }
        // Shutdown: refuse new events (they count as dropped), then drain what is queued.
        self.rx.close();
        while let Some(e) = self.rx.recv().await {
            self.buf.push(e);
            if self.buf.len() >= self.settings.batch {
                self.write().await;
            }
        }
        self.write().await;
        if !self.buf.is_empty() {
            metrics::counter!(metric::AUDIT_DROPPED, "reason" => "store_error")
                .increment(self.buf.len() as u64);
            tracing::error!(target: "audit", lost = self.buf.len(), "audit events could not be written before shutdown");
        }
        while let Ok(ack) = self.flush_rx.try_recv() {
            let _ = ack.send(());
        }
    }

    /// Writes the buffer in batches. On a store error the events stay buffered for a retry,
    /// up to the buffer's capacity; beyond that the oldest are dropped and counted.
    async fn write(&mut self) {
        while !self.buf.is_empty() {
            let n = self.buf.len().min(self.settings.batch);
            match self.store.append_audit(&self.buf[..n]).await {
                Ok(()) => {
                    metrics::counter!(metric::AUDIT_WRITTEN).increment(n as u64);
                    self.buf.drain(..n);
                }
                Err(e) => {
                    tracing::warn!(target: "audit", error = %e, buffered = self.buf.len(), "audit batch not written; will retry");
                    let excess = self.buf.len().saturating_sub(self.settings.buffer);
                    if excess > 0 {
                        self.buf.drain(..excess);
                        metrics::counter!(metric::AUDIT_DROPPED, "reason" => "store_error")
                            .increment(excess as u64);
                    }
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{GroupId, Limit};
    use crate::store::sqlite::SqliteStore;

    fn settings(buffer: usize) -> AuditSettings {
        AuditSettings {
            buffer,
            batch: 4,
            flush_interval: Duration::from_secs(60),
            retention: Duration::from_secs(86_400),
        }
    }

    async fn listed(store: &Arc<dyn AuditStore>, g: GroupId) -> usize {
        store
            .audit_of_group(g, Limit::new_clamped(100), None)
            .await
            .unwrap()
            .items
            .len()
    }

    // On a current-thread runtime the writer cannot run between these `record` calls, so
    // the buffer fills deterministically.
    #[tokio::test(flavor = "current_thread")]
    async fn a_full_buffer_drops_new_events_and_keeps_the_queued_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn AuditStore> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let audit = Audit::start(store.clone(), settings(16));
        let g = GroupId::new();
        let queued = (0..20)
            .filter(|_| audit.record(AuditEvent::new(AuditKind::MemberBanned).group(g)))
            .count();
        assert_eq!(queued, 16);
        audit.flush(Duration::from_secs(10)).await;
        assert_eq!(listed(&store, g).await, 16);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn close_writes_what_is_buffered_and_refuses_later_events() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn AuditStore> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let audit = Audit::start(store.clone(), settings(64));
        let g = GroupId::new();
        for _ in 0..10 {
            assert!(audit.record(AuditEvent::new(AuditKind::MemberRemoved).group(g)));
        }
        audit.close().await;
        assert_eq!(listed(&store, g).await, 10);
        assert!(!audit.record(AuditEvent::new(AuditKind::MemberRemoved).group(g)));
    }
}
