//! In-process partitions for the standalone engine. Each partition is a task owning a bounded
//! queue: it takes whatever has queued up (up to a batch), stores it, answers the senders, then
//! hands the stored messages to the event sink. The partitions share one store writer
//! ([`GroupCommit`], one transaction at a time): the batches of every partition that arrive while
//! a commit is in flight are written by the next in one transaction and one `fsync`, instead of
//! one each. Since SQLite commits with `synchronous=FULL`, "accepted" here means "stored":
//! stronger than the cluster's "queued".

use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::group_commit::GroupCommit;
use super::{Pipeline, partition_of};
use crate::domain::MessageId;
use crate::error::{AppError, AppResult};
use crate::events::EventSink;
use crate::ops::metrics as metric;
use crate::store::{MessageStore, NewMessage};

const QUEUE: usize = 4096;
const BATCH: usize = 256;

struct Job {
    msg: NewMessage,
    reply: oneshot::Sender<AppResult<MessageId>>,
}

pub struct LocalPipeline {
    senders: Mutex<Option<Vec<mpsc::Sender<Job>>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    partitions: u32,
}

impl LocalPipeline {
    pub fn start(store: Arc<dyn MessageStore>, sink: Arc<dyn EventSink>, partitions: u32) -> Self {
        let mut senders = Vec::new();
        let mut tasks = Vec::new();
        // One transaction at a time: SQLite has one writer connection.
        let writer = GroupCommit::start(store, 1);
        for p in 0..partitions {
            let (tx, rx) = mpsc::channel(QUEUE);
            senders.push(tx);
            tasks.push(tokio::spawn(run_partition(
                p,
                rx,
                writer.clone(),
                sink.clone(),
            )));
        }
        Self {
            senders: Mutex::new(Some(senders)),
            tasks: Mutex::new(tasks),
            partitions,
        }
    }
}

async fn run_partition(
    partition: u32,
    mut rx: mpsc::Receiver<Job>,
    writer: GroupCommit,
    sink: Arc<dyn EventSink>,
) {
    let depth = metrics::gauge!(metric::PIPELINE_QUEUE_DEPTH, "partition" => partition.to_string());
    let unacked = metrics::gauge!(metric::PIPELINE_UNACKED, "partition" => partition.to_string());
    let mut jobs = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut jobs, BATCH).await > 0 {
        depth.set(rx.len() as f64);
        unacked.set(jobs.len() as f64);
        let batch: Vec<NewMessage> = jobs.iter().map(|j| j.msg.clone()).collect();
        // The writer records the batch size of each transaction.
        let stored = writer.append(batch).await;
        unacked.set(0.0);
        match stored {
            Ok(results) => {
                let (answers, fresh) = super::settle(results);
                for (job, answer) in jobs.drain(..).zip(answers) {
                    let _ = job.reply.send(answer);
                }
                if !fresh.is_empty() {
                    sink.messages_stored(&fresh).await;
                }
            }
            Err(e) => {
                metrics::counter!(metric::PIPELINE_ERRORS).increment(1);
                tracing::error!(error = %e, batch = jobs.len(), "storing a message batch failed; senders are told");
                for job in jobs.drain(..) {
                    let _ = job
                        .reply
                        .send(Err(AppError::Unavailable("message store".into())));
                }
            }
        }
    }
}

#[async_trait]
impl Pipeline for LocalPipeline {
    async fn submit(&self, msg: NewMessage) -> AppResult<MessageId> {
        let tx = {
            let guard = self.senders.lock();
            let Some(senders) = guard.as_ref() else {
                return Err(AppError::Unavailable("shutting down".into()));
            };
            senders[partition_of(&msg.group_id, self.partitions) as usize].clone()
        };
        let (reply, answer) = oneshot::channel();
        tx.send(Job { msg, reply })
            .await
            .map_err(|_| AppError::Unavailable("shutting down".into()))?;
        let id = answer
            .await
            .map_err(|_| AppError::Unavailable("pipeline stopped".into()))??;
        metrics::counter!(metric::MESSAGES_ACCEPTED).increment(1);
        Ok(id)
    }

    async fn ready(&self) -> Result<(), String> {
        if self.senders.lock().is_some() {
            Ok(())
        } else {
            Err("stopped".into())
        }
    }

    async fn shutdown(&self) {
        // Dropping the senders lets each partition drain its queue and end.
        self.senders.lock().take();
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            let _ = t.await;
        }
    }
}
