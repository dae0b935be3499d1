//! Operating the service: telemetry (logs), metrics, health and readiness, graceful shutdown.

pub mod health;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;
