//! Rate limits. A trait with an in-memory engine (standalone) and, in cluster mode, a Redis one
//! so that every process counts against the same budget.

pub mod memory;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;

use crate::config::RateLimit;
use crate::error::{AppError, AppResult};
use crate::ops::metrics as metric;

pub use self::redis::RedisLimiter;
pub use memory::MemoryLimiter;

#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Count one event for `key`; `Err(retry_after)` when over `limit`.
    async fn hit(&self, key: &str, limit: RateLimit) -> Result<(), Duration>;
    /// Whether a `hit` now would be refused, counting nothing (to check a budget that only
    /// some outcomes spend, such as failed logins).
    async fn peek(&self, key: &str, limit: RateLimit) -> Result<(), Duration>;
    /// [`Self::hit`] for an event a client may retry: the first event carrying `once` is counted;
    /// a retry carrying it again within `limit.window` is neither counted nor refused (up to
    /// [`FREE_RETRIES`] times), so retrying a send whose first attempt is still in flight does
    /// not run into the limit that attempt spent.
    async fn hit_once(&self, key: &str, limit: RateLimit, once: &str) -> Result<(), Duration>;
}

/// Retries of one event that [`RateLimiter::hit_once`] lets through free; later ones count.
pub const FREE_RETRIES: u32 = 5;

/// Counts one event for `key`; over `limit`, the client's `rate_limited` (with the wait) and
/// `conclave_rate_limited_total{limit=<name>}`.
pub async fn spend(
    limiter: &dyn RateLimiter,
    key: &str,
    limit: RateLimit,
    name: &'static str,
) -> AppResult<()> {
    limiter.hit(key, limit).await.map_err(|retry_after| {
        metrics::counter!(metric::RATE_LIMITED, "limit" => name).increment(1);
        AppError::RateLimited { retry_after }
    })
}

/// [`spend`] with [`RateLimiter::hit_once`]: a retry of the event `once` is not counted again.
pub async fn spend_once(
    limiter: &dyn RateLimiter,
    key: &str,
    limit: RateLimit,
    once: &str,
    name: &'static str,
) -> AppResult<()> {
    limiter
        .hit_once(key, limit, once)
        .await
        .map_err(|retry_after| {
            metrics::counter!(metric::RATE_LIMITED, "limit" => name).increment(1);
            AppError::RateLimited { retry_after }
        })
}
