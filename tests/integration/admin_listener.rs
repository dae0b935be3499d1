//! The admin listener (`CONCLAVE_ADMIN_ADDR`): `/metrics` and the detailed readiness view move
//! there, off the public port the ingress routes; and every metric is exported from a fresh
//! process's first scrape, at zero, before any workload.

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{self, ChildServer, TestApp};
use conclave::ops::metrics as m;

async fn get(url: &str) -> (StatusCode, String) {
    let r = reqwest::get(url).await.expect("answers");
    (r.status(), r.text().await.unwrap())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn with_an_admin_listener_the_public_port_serves_no_metrics_and_no_details() {
    let app = TestApp::spawn_with(&[("CONCLAVE_ADMIN_ADDR", "127.0.0.1:0")]).await;
    let admin = app.admin_base.clone().expect("an admin listener");

    let (s, body) = get(&format!("{}/metrics", app.base)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "public /metrics: {body}");
    let (s, body) = get(&format!("{}/readyz", app.base)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let public = json(&body);
    assert_eq!(public["status"], "ready", "{public}");
    assert_eq!(public["checks"]["store"], "ok", "{public}");
    assert!(public.get("details").is_none(), "public details: {public}");
    let (_, doc) = get(&format!("{}/api-docs/openapi.json", app.base)).await;
    assert!(
        json(&doc)["paths"].get("/metrics").is_none(),
        "the public API document lists /metrics"
    );

    let (s, text) = get(&format!("{admin}/metrics")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        text.contains("conclave_dependency_up{dependency=\"store\"}"),
        "{text}"
    );
    let (s, body) = get(&format!("{admin}/readyz")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let detailed = json(&body);
    assert_eq!(detailed["details"]["store"]["up"], true, "{detailed}");
    assert!(
        detailed["details"]["pipeline"]["checked_at"].is_string(),
        "{detailed}"
    );
    let (s, _) = get(&format!("{admin}/healthz")).await;
    assert_eq!(s, StatusCode::OK);
    // The admin listener is not a second API port.
    let (s, _) = get(&format!("{admin}/api/v1/users/me")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_an_admin_listener_the_one_port_serves_everything() {
    let app = TestApp::spawn().await;
    assert!(app.admin_base.is_none());
    let (s, _) = get(&format!("{}/metrics", app.base)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = get(&format!("{}/readyz", app.base)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(json(&body)["details"]["store"]["up"], true, "{body}");
}

/// A fresh process (the real binary, nothing sent yet): the counters, histograms and gauges of
/// the paths not taken yet are there, at zero, with their known label values.
#[tokio::test]
async fn a_fresh_server_exports_every_metric_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let admin_port = common::free_port();
    let admin_addr = format!("127.0.0.1:{admin_port}");
    let p = ChildServer::start(dir.path(), &[("CONCLAVE_ADMIN_ADDR", &admin_addr)]).await;
    let text = common::metrics_text(&format!("http://{admin_addr}/metrics")).await;
    let zero = |series: &str| {
        assert!(
            text.lines().any(|l| l.strip_prefix(series) == Some(" 0")),
            "{series} not exported at 0 from start:\n{text}"
        );
    };
    for name in [
        m::PIPELINE_ERRORS,
        m::STORE_TX_RETRIES,
        m::MESSAGES_ACCEPTED,
        m::MESSAGES_DEAD_LETTERED,
        m::AUTH_TOKEN_REUSE,
        m::ADAPTER_RECONNECTS,
        m::SOCKET_CONNECTS,
        m::SOCKETS_CONNECTED,
        m::DEAD_LETTER_DEPTH,
    ] {
        zero(name);
    }
    zero(&format!("{}{{limit=\"login\"}}", m::RATE_LIMITED));
    zero(&format!("{}{{event=\"message:new\"}}", m::SOCKET_DROPPED));
    zero(&format!("{}{{role=\"consumer\"}}", m::BROKER_RECONNECTS));
    zero(&format!("{}{{partition=\"0\"}}", m::PIPELINE_UNACKED));
    for histogram in [
        m::STORE_BATCH_LATENCY,
        m::PIPELINE_BATCH,
        m::DELIVERY_LATENCY,
    ] {
        zero(&format!("{histogram}_count"));
    }
    assert_eq!(
        common::metric_value(
            &text,
            &format!("{}{{dependency=\"store\"}}", m::DEPENDENCY_UP)
        ),
        1.0,
        "{text}"
    );
    let (s, _) = get(&format!("{}/metrics", p.base)).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "public /metrics with an admin port"
    );
}
