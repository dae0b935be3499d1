//! Rate limits. A trait with an in-memory engine (standalone) and, in cluster mode, a Redis one
//! so that every process counts against the same budget.

pub mod memory;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;

use crate::config::RateLimit;

pub use self::redis::RedisLimiter;
pub use memory::MemoryLimiter;

#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Count one event for `key`; `Err(retry_after)` when over `limit`.
    async fn hit(&self, key: &str, limit: RateLimit) -> Result<(), Duration>;
}
