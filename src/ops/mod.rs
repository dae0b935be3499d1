//! Operating the service: telemetry (logs), metrics, health and readiness, graceful shutdown,
//! leader election and the leader's maintenance jobs.

pub mod breaker;
pub mod health;
pub mod leader;
pub mod maintenance;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;

/// Retry delay for a dependency: 250 ms doubling to at most 10 s.
pub fn backoff(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_millis((250u64 << attempt.min(6)).min(10_000))
}
