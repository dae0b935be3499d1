//! In-memory GCRA (generic cell rate algorithm): one timestamp per key, allows bursts of `max`
//! and then one event every `window / max`. Idle keys are swept out so memory stays bounded by
//! the number of recently active keys. Retry tokens (`hit_once`) are kept for one window.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{FREE_RETRIES, RateLimiter};
use crate::config::RateLimit;

const SHARDS: usize = 16;
const SWEEP_AT: usize = 4096;

pub struct MemoryLimiter {
    shards: Vec<Mutex<HashMap<String, Instant>>>,
    /// Per counted event with a retry token: the free retries it has had, and until when.
    onces: Vec<Mutex<HashMap<String, (u32, Instant)>>>,
    epoch: Instant,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryLimiter {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            onces: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            epoch: Instant::now(),
        }
    }

    pub fn check_at(&self, key: &str, limit: RateLimit, now: Instant) -> Result<(), Duration> {
        self.gcra(key, limit, now, true)
    }

    /// [`Self::check_at`] for an event `once` that may be retried (`RateLimiter::hit_once`).
    pub fn check_once_at(
        &self,
        key: &str,
        limit: RateLimit,
        once: &str,
        now: Instant,
    ) -> Result<(), Duration> {
        let token = format!("{key}\u{0}{once}");
        let shard = &self.onces[shard_of(&token)];
        {
            let mut map = shard.lock();
            if map.len() >= SWEEP_AT {
                map.retain(|_, (_, until)| *until > now);
            }
            if let Some((retries, until)) = map.get_mut(&token)
                && *until > now
                && *retries < FREE_RETRIES
            {
                *retries += 1;
                return Ok(());
            }
        }
        self.check_at(key, limit, now)?;
        shard.lock().insert(token, (0, now + limit.window));
        Ok(())
    }

    /// [`Self::check_at`] without counting the event.
    pub fn peek_at(&self, key: &str, limit: RateLimit, now: Instant) -> Result<(), Duration> {
        self.gcra(key, limit, now, false)
    }

    fn gcra(&self, key: &str, limit: RateLimit, now: Instant, spend: bool) -> Result<(), Duration> {
        let interval = limit.window / limit.max.max(1);
        let shard = &self.shards[shard_of(key)];
        let mut map = shard.lock();
        if map.len() >= SWEEP_AT {
            map.retain(|_, tat| *tat > now);
        }
        // TAT: the theoretical arrival time of the next event if events came evenly spaced.
        let tat = map.get(key).copied().unwrap_or(self.epoch).max(now);
        let next = tat + interval;
        let allowed_until = now + limit.window;
        if next > allowed_until {
            let wait = next - allowed_until;
            return Err(wait.max(Duration::from_millis(1)));
        }
        if spend {
            map.insert(key.to_owned(), next);
        }
        Ok(())
    }
}

fn shard_of(key: &str) -> usize {
    // FNV-1a: cheap and good enough to spread keys over the shards.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in key.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    (h as usize) % SHARDS
}

#[async_trait]
impl RateLimiter for MemoryLimiter {
    async fn hit(&self, key: &str, limit: RateLimit) -> Result<(), Duration> {
        self.check_at(key, limit, Instant::now())
    }

    async fn peek(&self, key: &str, limit: RateLimit) -> Result<(), Duration> {
        self.peek_at(key, limit, Instant::now())
    }

    async fn hit_once(&self, key: &str, limit: RateLimit, once: &str) -> Result<(), Duration> {
        self.check_once_at(key, limit, once, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peek_counts_nothing_and_says_what_a_hit_would() {
        let l = MemoryLimiter::new();
        let lim = RateLimit {
            max: 2,
            window: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        for _ in 0..10 {
            l.peek_at("a", lim, t0).unwrap();
        }
        l.check_at("a", lim, t0).unwrap();
        l.check_at("a", lim, t0).unwrap();
        assert!(l.peek_at("a", lim, t0).is_err());
        assert!(l.check_at("a", lim, t0).is_err());
    }

    #[test]
    fn allows_a_burst_then_refuses_until_the_budget_refills() {
        let l = MemoryLimiter::new();
        let lim = RateLimit {
            max: 5,
            window: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        for _ in 0..5 {
            l.check_at("a", lim, t0).unwrap();
        }
        let wait = l.check_at("a", lim, t0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(2),
            "{wait:?}"
        );
        // Another key has its own budget.
        l.check_at("b", lim, t0).unwrap();
        // One interval later, exactly one more event fits.
        let t1 = t0 + Duration::from_secs(2);
        l.check_at("a", lim, t1).unwrap();
        assert!(l.check_at("a", lim, t1).is_err());
        // After a whole window the full burst is back.
        let t2 = t1 + Duration::from_secs(10);
        for _ in 0..5 {
            l.check_at("a", lim, t2).unwrap();
        }
    }

    #[test]
    fn a_retry_is_not_counted_again_nor_refused() {
        let l = MemoryLimiter::new();
        let lim = RateLimit {
            max: 2,
            window: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        l.check_once_at("a", lim, "m1", t0).unwrap();
        l.check_once_at("a", lim, "m2", t0).unwrap();
        assert!(l.check_once_at("a", lim, "m3", t0).is_err(), "at the limit");
        for _ in 0..FREE_RETRIES {
            l.check_once_at("a", lim, "m2", t0).unwrap();
        }
        assert!(
            l.check_once_at("a", lim, "m2", t0).is_err(),
            "free retries are bounded"
        );
        assert!(
            l.check_once_at("a", lim, "m3", t0).is_err(),
            "a refused event is no retry"
        );
    }

    #[test]
    fn idle_keys_are_swept() {
        let l = MemoryLimiter::new();
        let lim = RateLimit {
            max: 1,
            window: Duration::from_millis(1),
        };
        let t0 = Instant::now();
        for i in 0..(SWEEP_AT * SHARDS) {
            l.check_at(&format!("k{i}"), lim, t0).unwrap();
        }
        l.check_at("late", lim, t0 + Duration::from_secs(1))
            .unwrap();
        let total: usize = l.shards.iter().map(|s| s.lock().len()).sum();
        assert!(total < SWEEP_AT * SHARDS, "{total}");
    }
}
