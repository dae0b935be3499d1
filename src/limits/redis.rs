//! Rate limits shared by every process through Redis: the same GCRA as the memory limiter, run
//! as one Lua script so the check and the update are atomic, on the Redis server's clock (`TIME`)
//! so the processes' clocks need not agree.
//!
//! If Redis fails or does not answer within a short timeout, the limiter uses this process's
//! memory limiter at once, for every request, behind a circuit breaker
//! ([`crate::ops::breaker`]) that probes Redis in the background: an outage neither refuses
//! every login or send nor makes each wait for Redis. While it does, each process allows its
//! share of every limit (the limit divided by the live processes the partition registry last
//! saw), so the cluster as a whole still allows about the limit, not one limit per process.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;

use super::{FREE_RETRIES, MemoryLimiter, RateLimiter};
use crate::config::RateLimit;
use crate::ops::breaker::{Breaker, Call};

/// KEYS[1]: the budget; KEYS[2] (optional): the retry token of the event.
/// ARGV: interval (ms), window (ms), 1 to count the event or 0 to only look, free retries.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('INCR', KEYS[2]) <= tonumber(ARGV[4]) + 1 then
    return 0
  end
end
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local nxt = tat + interval
if nxt > now + window then
  return nxt - now - window
end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], nxt, 'PX', math.ceil(nxt - now) + 1)
  if KEYS[2] then
    redis.call('SET', KEYS[2], 1, 'PX', window)
  end
end
return 0
"#;

/// How the limiter treats a failing Redis.
#[derive(Clone, Copy, Debug)]
pub struct RedisLimits {
    /// Longest wait for Redis before a request uses the fallback.
    pub timeout: Duration,
    /// After a failure, how long requests use the fallback before Redis is probed again.
    pub probe_interval: Duration,
}

pub struct RedisLimiter {
    conn: ConnectionManager,
    script: Script,
    prefix: String,
    fallback: MemoryLimiter,
    breaker: Breaker,
    timeout: Duration,
    /// Live processes of the cluster, as the partition registry last saw them (0: unknown).
    processes: Arc<AtomicU32>,
}

impl RedisLimiter {
    pub fn new(
        conn: ConnectionManager,
        prefix: &str,
        limits: RedisLimits,
        processes: Arc<AtomicU32>,
    ) -> Self {
        Self {
            conn,
            script: Script::new(GCRA),
            prefix: prefix.to_owned(),
            fallback: MemoryLimiter::new(),
            breaker: Breaker::new("redis (rate limits)", limits.probe_interval),
            timeout: limits.timeout,
            processes,
        }
    }

    /// Runs the GCRA for `key` in Redis, counting the event when `spend`; `once` is the event's
    /// retry token. On a Redis failure, this process's share of `limit` on the memory limiter.
    async fn gcra(
        &self,
        key: &str,
        limit: RateLimit,
        spend: bool,
        once: Option<&str>,
    ) -> Result<(), Duration> {
        match self.breaker.call() {
            Call::Try => {}
            Call::Skip => return self.fallback(key, limit, spend, once),
            Call::SkipAndProbe => {
                self.probe();
                return self.fallback(key, limit, spend, once);
            }
        }
        let interval = (limit.window.as_millis() as u64 / limit.max.max(1) as u64).max(1);
        let budget = format!("{}rl:{key}", self.prefix);
        let mut invocation = self.script.key(&budget);
        if let Some(once) = once {
            invocation.key(format!("{budget}:once:{once}"));
        }
        invocation
            .arg(interval)
            .arg(limit.window.as_millis() as u64)
            .arg(u8::from(spend))
            .arg(FREE_RETRIES);
        let mut conn = self.conn.clone();
        let res =
            tokio::time::timeout(self.timeout, invocation.invoke_async::<u64>(&mut conn)).await;
        match res {
            Ok(Ok(wait_ms)) => {
                self.breaker.succeeded();
                if wait_ms == 0 {
                    Ok(())
                } else {
                    Err(Duration::from_millis(wait_ms))
                }
            }
            Ok(Err(e)) => {
                self.breaker.failed(&e);
                self.fallback(key, limit, spend, once)
            }
            Err(_) => {
                self.breaker.failed(&format_args!(
                    "no answer within {} ms",
                    self.timeout.as_millis()
                ));
                self.fallback(key, limit, spend, once)
            }
        }
    }

    /// This process's share of `limit` on its own memory: the limit divided by the live
    /// processes, at least one event per window.
    fn fallback(
        &self,
        key: &str,
        limit: RateLimit,
        spend: bool,
        once: Option<&str>,
    ) -> Result<(), Duration> {
        let share = RateLimit {
            max: share(limit.max, self.processes.load(Ordering::Relaxed)),
            window: limit.window,
        };
        let now = std::time::Instant::now();
        match (spend, once) {
            (false, _) => self.fallback.peek_at(key, share, now),
            (true, None) => self.fallback.check_at(key, share, now),
            (true, Some(once)) => self.fallback.check_once_at(key, share, once, now),
        }
    }

    /// Asks Redis, in the background, whether it answers again within the timeout.
    fn probe(&self) {
        let (mut conn, breaker, timeout) = (self.conn.clone(), self.breaker.clone(), self.timeout);
        tokio::spawn(async move {
            let ping = redis::cmd("PING");
            match tokio::time::timeout(timeout, ping.query_async::<String>(&mut conn)).await {
                Ok(Ok(_)) => breaker.succeeded(),
                Ok(Err(e)) => breaker.failed(&e),
                Err(_) => breaker.failed(&"no answer"),
            }
        });
    }
}

/// One process's share of `max` among `processes` (0: unknown, counted as one).
fn share(max: u32, processes: u32) -> u32 {
    (max / processes.max(1)).max(1)
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn peek(&self, key: &str, limit: RateLimit) -> Result<(), Duration> {
        self.gcra(key, limit, false, None).await
    }

    async fn hit(&self, key: &str, limit: RateLimit) -> Result<(), Duration> {
        self.gcra(key, limit, true, None).await
    }

    async fn hit_once(&self, key: &str, limit: RateLimit, once: &str) -> Result<(), Duration> {
        self.gcra(key, limit, true, Some(once)).await
    }
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn each_process_gets_its_share_and_at_least_one() {
        assert_eq!(share(100, 0), 100);
        assert_eq!(share(100, 1), 100);
        assert_eq!(share(100, 3), 33);
        assert_eq!(share(10, 3), 3);
        assert_eq!(share(2, 3), 1);
    }
}
