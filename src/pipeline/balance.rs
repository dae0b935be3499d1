//! Spreads the partitions' writers over the cluster's processes.
//!
//! With single active consumer, RabbitMQ makes the *first* subscriber of a queue its active
//! consumer and keeps the others waiting; since every process subscribes to every partition, the
//! process started first ends up storing every message of the cluster while the others idle
//! (RabbitMQ 3.12's consumer priorities for single active consumer would let us steer this; the
//! brokers we support start at 3.10).
//!
//! So the processes agree on an owner per partition: each one that is consuming keeps itself in
//! a Redis sorted set (scored by the Redis server's clock, so clock skew between nodes does not
//! matter), and partition `p` belongs to the `p mod n`-th live member in sorted order. A process
//! that finds itself active on a partition it does not own, once it has stored and acknowledged
//! the batch in hand, closes that partition's channel and subscribes again: the broker returns the
//! deliveries it had prefetched to the head of the queue and activates the next waiting
//! consumer, and the process waits at the back of the line. After at most `n - 1` such hand-offs
//! the owner is active. The registry is only advice: if Redis is unreachable, or the owner is
//! registered but not actually subscribed, messages are still stored in order by whoever is
//! active; a process hands a given partition to the same owner at most once per
//! [`HANDOFF_COOLDOWN`], so a wrong view costs a few redeliveries, never a stall. (While
//! processes start, their views differ for a heartbeat or two; a hand-off made on such a view
//! does not hold back the next one, which goes to a different owner.)

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use redis::Script;
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

/// How often a process renews its entry and reads the others'.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A member whose entry is older than this is gone (five missed heartbeats).
const MEMBER_TTL: Duration = Duration::from_secs(10);
/// A view older than this is not trusted: no hand-offs until Redis answers again.
const VIEW_STALE: Duration = Duration::from_secs(3);
/// A process hands a given partition to the same owner at most this often (a partition that came
/// back although its owner has not changed: the owner is registered but not subscribed).
pub const HANDOFF_COOLDOWN: Duration = Duration::from_secs(30);

/// Registers `ARGV[1]` (when `ARGV[3]` is "1", else removes it), drops members older than
/// `ARGV[2]` ms on the server's clock, and answers the live members.
const HEARTBEAT_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl * 3)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"#;

/// Where the members register.
pub struct Registry {
    pub redis: ConnectionManager,
    /// This process's name among the members (unique per process).
    pub identity: String,
    /// Set to the live processes seen, this one included (the rate limiter's fallback divides
    /// the limits by it while Redis is down).
    pub processes: Arc<AtomicU32>,
}

/// The owner of partition `p` among `members` (sorted, non-empty).
fn owner(members: &[String], p: u32) -> &str {
    &members[p as usize % members.len()]
}

/// To whom `me`, active on partition `p`, should hand it, given the members seen: its owner, or
/// nobody when that is `me`.
fn hand_off<'a>(members: &'a [String], me: &str, p: u32) -> Option<&'a str> {
    // Not registered (yet, or Redis lost us): we cannot know the others' view of the owners.
    if !members.iter().any(|m| m == me) {
        return None;
    }
    Some(owner(members, p)).filter(|o| *o != me)
}

struct View {
    members: Vec<String>,
    at: Option<Instant>,
}

struct Inner {
    me: String,
    view: RwLock<View>,
    /// Per partition: to whom this process last handed it, and when.
    handed_off: Mutex<HashMap<u32, (String, Instant)>>,
}

/// Shared by a process's partition consumers.
#[derive(Clone)]
pub struct Balance(Option<Arc<Inner>>);

impl Balance {
    /// No registry: every partition stays with whichever process RabbitMQ made active.
    pub fn off() -> Self {
        Self(None)
    }

    /// Keeps this process registered while `consuming` is set, until `stop`, then leaves.
    pub fn start(
        registry: Registry,
        prefix: &str,
        consuming: Arc<AtomicBool>,
        stop: CancellationToken,
    ) -> Self {
        let inner = Arc::new(Inner {
            me: registry.identity,
            view: RwLock::new(View {
                members: Vec::new(),
                at: None,
            }),
            handed_off: Mutex::new(HashMap::new()),
        });
        tokio::spawn(heartbeat(
            inner.clone(),
            registry.redis,
            registry.processes,
            format!("{prefix}pipeline:members"),
            consuming,
            stop,
        ));
        Self(Some(inner))
    }

    /// Called by the active consumer of partition `p` between batches: true when it should close
    /// its channel so the owner takes over (and then it records the hand-off).
    pub fn should_hand_off(&self, p: u32) -> bool {
        let Some(inner) = &self.0 else { return false };
        let to = {
            let view = inner.view.read();
            let stale = view.at.is_none_or(|at| at.elapsed() >= VIEW_STALE);
            if stale {
                return false;
            }
            match hand_off(&view.members, &inner.me, p) {
                Some(owner) => owner.to_owned(),
                None => return false,
            }
        };
        let mut handed = inner.handed_off.lock();
        let now = Instant::now();
        if handed
            .get(&p)
            .is_some_and(|(last, t)| *last == to && now.duration_since(*t) < HANDOFF_COOLDOWN)
        {
            return false;
        }
        handed.insert(p, (to, now));
        true
    }
}

async fn heartbeat(
    inner: Arc<Inner>,
    mut redis: ConnectionManager,
    processes: Arc<AtomicU32>,
    key: String,
    consuming: Arc<AtomicBool>,
    stop: CancellationToken,
) {
    let script = Script::new(HEARTBEAT_SCRIPT);
    let ttl = MEMBER_TTL.as_millis() as u64;
    let mut warned = false;
    loop {
        let present = consuming.load(Ordering::SeqCst) && !stop.is_cancelled();
        let r: Result<Vec<String>, _> = script
            .key(&key)
            .arg(&inner.me)
            .arg(ttl)
            .arg(if present { "1" } else { "0" })
            .invoke_async(&mut redis)
            .await;
        match r {
            Ok(mut members) => {
                // The set answers in heartbeat order, which differs from one moment to the next:
                // every process must rank the members alike.
                members.sort_unstable();
                // A process that stepped back still serves requests: it counts itself.
                let live = members.len() + usize::from(!members.contains(&inner.me));
                processes.store(live as u32, Ordering::Relaxed);
                metrics::gauge!(crate::ops::metrics::CLUSTER_PROCESSES).set(live as f64);
                if warned {
                    tracing::info!(
                        members = members.len(),
                        "partition registry reachable again"
                    );
                    warned = false;
                }
                let mut view = inner.view.write();
                if view.members != members {
                    tracing::info!(?members, "partition owners recomputed");
                }
                *view = View {
                    members,
                    at: Some(Instant::now()),
                };
            }
            Err(e) if !warned => {
                tracing::warn!(error = %e, "partition registry (Redis) unreachable; partitions stay where they are");
                warned = true;
            }
            Err(_) => {}
        }
        // Stopping: return once this round has taken us out of the set.
        if !present && stop.is_cancelled() {
            return;
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(HEARTBEAT) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("m{i}")).collect()
    }

    #[test]
    fn every_partition_has_exactly_one_owner_and_the_load_is_even() {
        let ms = members(3);
        let mut owned = HashMap::<&str, u32>::new();
        for p in 0..16 {
            let keepers: Vec<_> = ms
                .iter()
                .filter(|m| hand_off(&ms, m, p).is_none())
                .collect();
            assert_eq!(keepers.len(), 1, "partition {p}: {keepers:?}");
            *owned.entry(keepers[0]).or_default() += 1;
        }
        let mut counts: Vec<u32> = owned.into_values().collect();
        counts.sort_unstable();
        assert_eq!(counts, vec![5, 5, 6]);
    }

    #[test]
    fn an_unregistered_or_lone_process_keeps_what_it_is_given() {
        assert!(hand_off(&[], "m0", 3).is_none());
        assert!(hand_off(&members(2), "stranger", 3).is_none());
        assert!(hand_off(&members(1), "m0", 3).is_none());
    }

    fn balance_with(members: Vec<String>, me: &str, seen: Option<Instant>) -> Balance {
        Balance(Some(Arc::new(Inner {
            me: me.into(),
            view: RwLock::new(View { members, at: seen }),
            handed_off: Mutex::new(HashMap::new()),
        })))
    }

    #[test]
    fn a_partition_is_handed_off_once_per_cooldown() {
        let b = balance_with(members(2), "m0", Some(Instant::now()));
        assert!(b.should_hand_off(1), "m1 owns partition 1");
        assert!(!b.should_hand_off(1), "not again within the cooldown");
        assert!(b.should_hand_off(3), "the cooldown is per partition");
        assert!(!b.should_hand_off(0), "m0 owns partition 0");
    }

    #[test]
    fn a_new_owner_gets_the_partition_at_once() {
        let b = balance_with(members(2), "m0", Some(Instant::now()));
        assert!(b.should_hand_off(1), "to m1");
        // A third process registers: partition 1 now belongs to m1 still, partition 2 to m2.
        *b.0.as_ref().unwrap().view.write() = View {
            members: members(3),
            at: Some(Instant::now()),
        };
        assert!(!b.should_hand_off(1), "same owner, within the cooldown");
        assert!(b.should_hand_off(2), "m2 owns partition 2 now");
        // m1 leaves: partition 1's owner is m1 no longer, so it goes at once.
        *b.0.as_ref().unwrap().view.write() = View {
            members: vec!["m0".into(), "m2".into()],
            at: Some(Instant::now()),
        };
        assert!(b.should_hand_off(1), "m2 owns partition 1 now");
    }

    #[test]
    fn a_stale_or_missing_view_hands_nothing_off() {
        assert!(!balance_with(members(2), "m0", None).should_hand_off(1));
        let old = Instant::now().checked_sub(VIEW_STALE * 2);
        if let Some(old) = old {
            assert!(!balance_with(members(2), "m0", Some(old)).should_hand_off(1));
        }
        assert!(!Balance::off().should_hand_off(1));
    }
}
