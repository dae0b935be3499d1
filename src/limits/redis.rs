//! Rate limits shared by every process through Redis: the same GCRA as the memory limiter, run
//! as one Lua script so the check and the update are atomic. If Redis cannot be reached the
//! limiter falls back to this process's memory limiter (limits still hold per process) rather
//! than refusing every login or send.

use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;

use super::{MemoryLimiter, RateLimiter};
use crate::config::RateLimit;

/// ARGV: now (ms), interval (ms), window (ms), and 1 to count the event or 0 to only look.
const GCRA: &str = r#"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local nxt = tat + interval
if nxt > now + window then
  return nxt - now - window
end
if ARGV[4] == '1' then
  redis.call('SET', KEYS[1], nxt, 'PX', math.ceil(nxt - now) + 1)
end
return 0
"#;

pub struct RedisLimiter {
    conn: ConnectionManager,
    script: Script,
    prefix: String,
    fallback: MemoryLimiter,
}

impl RedisLimiter {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            script: Script::new(GCRA),
            prefix: prefix.to_owned(),
            fallback: MemoryLimiter::new(),
        }
    }
}

impl RedisLimiter {
    /// Runs the GCRA for `key`, counting the event when `spend`; on a Redis failure, the same
    /// on this process's memory limiter.
    async fn gcra(&self, key: &str, limit: RateLimit, spend: bool) -> Result<(), Duration> {
        let interval = (limit.window.as_millis() as u64 / limit.max.max(1) as u64).max(1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let res: Result<u64, _> = self
            .script
            .key(format!("{}rl:{key}", self.prefix))
            .arg(now)
            .arg(interval)
            .arg(limit.window.as_millis() as u64)
            .arg(u8::from(spend))
            .invoke_async(&mut self.conn.clone())
            .await;
        match res {
            Ok(0) => Ok(()),
            Ok(wait_ms) => Err(Duration::from_millis(wait_ms)),
            Err(e) => {
                tracing::warn!(error = %e, "Redis rate limiter unavailable; using the per-process limiter");
                if spend {
                    self.fallback.hit(key, limit).await
                } else {
                    self.fallback.peek(key, limit).await
                }
            }
        }
    }
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn peek(&self, key: &str, limit: RateLimit) -> Result<(), Duration> {
        self.gcra(key, limit, false).await
    }

    async fn hit(&self, key: &str, limit: RateLimit) -> Result<(), Duration> {
        self.gcra(key, limit, true).await
    }
}
