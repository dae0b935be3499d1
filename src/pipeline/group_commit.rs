//! Group commit: a process's partition consumers share one store writer, so the batches that
//! arrive while a transaction is in flight are written together in the next one.
//!
//! Each partition consumer has at most one batch in hand and waits for its result before taking
//! the next, so a partition's messages are still stored in order. Under light load every batch
//! is written alone, as before; under load the transactions grow instead of queueing, and the
//! store's per-transaction cost (session, look-ups, commit) is shared by more messages: with
//! small per-partition batches that cost dominated the test store's CPU.
//!
//! Up to `in_flight` transactions may run at once ([`IN_FLIGHT`] for MongoDB), so a batch that
//! arrives just after one started need not wait for its commit. They never touch the same group
//! (a group is in one partition, and a partition has one batch in hand), so they do not
//! conflict. SQLite has one writer connection, so the standalone engine runs one at a time:
//! everything that arrives during a commit (its `fsync`) goes into the next.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::{AppError, AppResult};
use crate::ops::metrics as metric;
use crate::store::{Appended, MessageStore, NewMessage};

/// Most messages written in one transaction (a partition's batch is never split).
const MAX_MESSAGES: usize = 1024;
/// Transactions of one process in flight at once, for a store that runs them side by side.
pub const IN_FLIGHT: usize = 2;

struct Job {
    batch: Vec<NewMessage>,
    done: oneshot::Sender<AppResult<Vec<Appended>>>,
}

/// Handle to the writer; the writer ends when every handle is dropped.
#[derive(Clone)]
pub struct GroupCommit {
    jobs: mpsc::UnboundedSender<Job>,
}

impl GroupCommit {
    /// A writer running up to `in_flight` transactions at once, each started at once.
    pub fn start(store: Arc<dyn MessageStore>, in_flight: usize) -> Self {
        Self::start_gathering(store, in_flight, Duration::ZERO)
    }

    /// [`Self::start`], but a transaction waits up to `gather` after its first batch arrived for
    /// more to join it: fewer commits (and `fsync`s) per message under load, for that much more
    /// latency on every send.
    pub fn start_gathering(
        store: Arc<dyn MessageStore>,
        in_flight: usize,
        gather: Duration,
    ) -> Self {
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(store, rx, in_flight.max(1), gather));
        Self { jobs }
    }

    /// Stores `batch` (in one transaction with whatever else is waiting); one result per message,
    /// in order.
    pub async fn append(&self, batch: Vec<NewMessage>) -> AppResult<Vec<Appended>> {
        let (done, result) = oneshot::channel();
        self.jobs
            .send(Job { batch, done })
            .map_err(|_| AppError::Unavailable("store writer stopped".into()))?;
        result
            .await
            .map_err(|_| AppError::Unavailable("store writer stopped".into()))?
    }
}

async fn writer(
    store: Arc<dyn MessageStore>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    in_flight: usize,
    gather: Duration,
) {
    let slots = Arc::new(Semaphore::new(in_flight));
    while let Some(first) = rx.recv().await {
        let until = tokio::time::Instant::now() + gather;
        // A free slot first: while every slot is busy, what arrives joins the next transaction.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut size = first.batch.len();
        let mut jobs = vec![first];
        while size < MAX_MESSAGES {
            let next = match rx.try_recv() {
                Ok(j) => Some(j),
                Err(_) if gather.is_zero() => None,
                Err(_) => tokio::time::timeout_at(until, rx.recv())
                    .await
                    .ok()
                    .flatten(),
            };
            let Some(j) = next else { break };
            size += j.batch.len();
            jobs.push(j);
        }
        let store = store.clone();
        tokio::spawn(async move {
            write(&*store, jobs, size).await;
            drop(slot);
        });
    }
}

/// One transaction for `jobs` (`size` messages in all); answers each job.
async fn write(store: &dyn MessageStore, jobs: Vec<Job>, size: usize) {
    // Each caller's reply, with how many of the results are its own.
    let mut all = Vec::with_capacity(size);
    let mut replies = Vec::with_capacity(jobs.len());
    for j in jobs {
        replies.push((j.done, j.batch.len()));
        all.extend(j.batch);
    }
    metrics::histogram!(metric::PIPELINE_BATCH).record(size as f64);
    let started = Instant::now();
    match store.append_messages(&all).await {
        Ok(results) if results.len() == size => {
            metrics::histogram!(metric::STORE_BATCH_LATENCY)
                .record(started.elapsed().as_secs_f64());
            let mut results = results.into_iter();
            for (reply, n) in replies {
                let _ = reply.send(Ok(results.by_ref().take(n).collect()));
            }
        }
        Ok(results) => {
            tracing::error!(
                asked = size,
                answered = results.len(),
                "the store answered a batch with the wrong number of results"
            );
            for (reply, _) in replies {
                let _ = reply.send(Err(AppError::Internal(anyhow::anyhow!(
                    "store answered {} results for {size} messages",
                    results.len()
                ))));
            }
        }
        Err(e) => {
            let why = match &e {
                AppError::Internal(cause) => format!("{cause:#}"),
                other => other.to_string(),
            };
            for (reply, _) in replies {
                let _ = reply.send(Err(AppError::Unavailable(why.clone())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{GroupId, MessageId, UserId, Username, Visibility, now};
    use crate::store::prelude::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{GroupRecord, NewAccount, UserRecord};

    /// Partitions writing side by side through one writer each get their own messages' results,
    /// in their order, and every group's seqs follow the order its partition sent them in.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_partitions_get_their_own_results_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let owner = UserRecord {
            id: UserId::new(),
            username: Username::parse("writer").unwrap(),
            password_hash: "$argon2id$v=19$m=64,t=1,p=1$fake$writer".into(),
            created_at: now(),
        };
        assert_eq!(
            store.create_user(&owner).await.unwrap(),
            NewAccount::Created
        );
        let writer = GroupCommit::start(store.clone(), IN_FLIGHT);
        let partitions = (0..4).map(|p| {
            let (store, writer) = (store.clone(), writer.clone());
            async move {
                let group = GroupRecord {
                    id: GroupId::new(),
                    name: format!("partition {p}"),
                    description: String::new(),
                    visibility: Visibility::Open,
                    owner_id: owner.id,
                    member_count: 1,
                    max_members: 10,
                    created_at: now(),
                };
                store.create_group(&group).await.unwrap();
                let mut seqs = Vec::new();
                for round in 0..20 {
                    let batch: Vec<NewMessage> = (0..3)
                        .map(|k| NewMessage {
                            id: MessageId::new(),
                            group_id: group.id,
                            sender_id: owner.id,
                            envelope: vec![p, round, k],
                            sent_at: now(),
                            client_msg_id: Some(format!("{round}-{k}")),
                            action: Default::default(),
                        })
                        .collect();
                    let ids: Vec<MessageId> = batch.iter().map(|m| m.id).collect();
                    let results = writer.append(batch).await.unwrap();
                    assert_eq!(results.len(), 3);
                    for (r, id) in results.iter().zip(ids) {
                        let Appended::Stored(m) = r else {
                            panic!("partition {p}: {r:?}")
                        };
                        assert_eq!((m.id, m.group_id), (id, group.id));
                        seqs.push(m.seq);
                    }
                }
                assert_eq!(seqs, (1..=60).collect::<Vec<u64>>(), "partition {p}");
            }
        });
        futures::future::join_all(partitions).await;
    }
}
