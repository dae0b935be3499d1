use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::ops::health::{Readiness, ReadinessReport};
use crate::ops::metrics::Metrics;
use crate::state::AppState;

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: whether this pod should get traffic. 503 while starting and while draining;
/// 200 otherwise, even with a shared dependency down (`degraded`: requests that need it answer
/// 503 `unavailable`). Answered from the background prober's cached results. With
/// `CONCLAVE_ADMIN_ADDR` set, the public listener leaves out the per-dependency `details`.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready (or degraded: a dependency is down)", body = ReadinessReport),
        (status = 503, description = "Starting or draining", body = ReadinessReport),
    ))]
pub async fn readyz(State(s): State<AppState>) -> (StatusCode, Json<ReadinessReport>) {
    readiness_answer(&s.readiness, !s.http.admin_listener)
}

pub(crate) fn readiness_answer(
    r: &Readiness,
    detailed: bool,
) -> (StatusCode, Json<ReadinessReport>) {
    let (ok, report) = r.report(detailed);
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(report),
    )
}

/// Prometheus metrics, text exposition format (only on the admin listener when
/// `CONCLAVE_ADMIN_ADDR` is set).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    metrics_answer(&s.metrics)
}

pub(crate) fn metrics_answer(m: &Metrics) -> impl IntoResponse + use<> {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(),
    )
}
