//! The admin listener (`CONCLAVE_ADMIN_ADDR`): `/healthz`, the detailed `/readyz` and
//! `/metrics`, on a port the ingress never routes to. It opens before the engine starts, so
//! probes and scrapes see a pod that is still waiting for its dependencies (503 `starting`,
//! `conclave_dependency_up` 0) rather than a closed port.

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::routes::ops;
use crate::ops::health::Readiness;
use crate::ops::metrics::{Metrics, track_http};

#[derive(Clone)]
struct Admin {
    readiness: Readiness,
    metrics: Metrics,
}

pub fn router(readiness: Readiness, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route(
            "/readyz",
            get(|State(a): State<Admin>| async move { ops::readiness_answer(&a.readiness, true) }),
        )
        .route(
            "/metrics",
            get(|State(a): State<Admin>| async move { ops::metrics_answer(&a.metrics) }),
        )
        .route_layer(axum::middleware::from_fn(track_http))
        .with_state(Admin { readiness, metrics })
}
