//! Prometheus metrics through the `metrics` facade, rendered at `/metrics`. One registry for the
//! whole process: the recorder is global, installed once (tests start many servers per process).
//! Names: `conclave_` prefix, base units, `_total` for counters; labels stay low-cardinality
//! (route templates, never raw paths or ids).
//!
//! Process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_open_fds`, `process_max_fds`, `process_threads`, ...) come from `metrics-process`
//! into the same registry, and a few stable tokio runtime gauges (`conclave_tokio_*`); both are
//! refreshed when `/metrics` is scraped, so they cost nothing between scrapes.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "conclave_http_requests_total";
pub const HTTP_DURATION: &str = "conclave_http_request_duration_seconds";
pub const AUTH_LOGINS: &str = "conclave_auth_logins_total";
pub const AUTH_TOKEN_REUSE: &str = "conclave_auth_refresh_token_reuse_total";
pub const RATE_LIMITED: &str = "conclave_rate_limited_total";
pub const MESSAGES_ACCEPTED: &str = "conclave_messages_accepted_total";
pub const MESSAGES_PERSISTED: &str = "conclave_messages_persisted_total";
pub const MESSAGES_DUPLICATE: &str = "conclave_messages_duplicate_total";
pub const MESSAGES_SENDER_GONE: &str = "conclave_messages_sender_not_member_total";
pub const MESSAGES_BY_GROUP_SIZE: &str = "conclave_messages_sent_by_group_size_total";
pub const PERSIST_LATENCY: &str = "conclave_message_persist_latency_seconds";
pub const PIPELINE_BATCH: &str = "conclave_pipeline_batch_size";
pub const PIPELINE_ERRORS: &str = "conclave_pipeline_errors_total";
pub const PIPELINE_QUEUE_DEPTH: &str = "conclave_pipeline_queue_depth";
pub const PIPELINE_UNACKED: &str = "conclave_pipeline_unacked_messages";
pub const PIPELINE_HANDOFFS: &str = "conclave_pipeline_partition_handoffs_total";
/// 1 while this process has given its partitions up because it cannot store, else 0.
pub const PIPELINE_STEPPED_BACK: &str = "conclave_pipeline_stepped_back";
/// Live processes in the partition registry, this one included.
pub const CLUSTER_PROCESSES: &str = "conclave_cluster_processes";
pub const GROUP_COMMANDS: &str = "conclave_group_commands_total";
/// Edits and deletions accepted, by `kind`.
pub const MESSAGE_CHANGES: &str = "conclave_message_changes_total";
/// Read markers moved forward (`PUT /groups/{id}/read`).
pub const READ_MARKERS_MOVED: &str = "conclave_read_markers_moved_total";
pub const MESSAGES_DELIVERED: &str = "conclave_messages_delivered_total";
pub const DELIVERY_LATENCY: &str = "conclave_message_delivery_latency_seconds";
pub const SOCKETS_CONNECTED: &str = "conclave_socket_connections";
pub const HTTP_CONNECTIONS: &str = "conclave_http_connections";
pub const CONNECTIONS_REFUSED: &str = "conclave_http_connections_refused_total";
pub const SOCKET_CONNECTS: &str = "conclave_socket_connects_total";
pub const SOCKET_DISCONNECTS: &str = "conclave_socket_disconnects_total";
pub const SOCKET_AUTH_FAILURES: &str = "conclave_socket_auth_failures_total";
pub const SOCKET_EXPIRED: &str = "conclave_socket_token_expired_total";
pub const SOCKET_EVENTS_IN: &str = "conclave_socket_events_in_total";
pub const SOCKET_EVENTS_OUT: &str = "conclave_socket_events_out_total";
pub const SOCKET_DROPPED: &str = "conclave_socket_dropped_total";
pub const BROKER_RECONNECTS: &str = "conclave_broker_reconnects_total";
pub const MESSAGES_DEAD_LETTERED: &str = "conclave_messages_dead_lettered_total";
pub const STORE_BATCH_LATENCY: &str = "conclave_store_batch_duration_seconds";
/// MongoDB transactions run again: after a conflict or transient error, or an append whose
/// duplicate-free bet lost.
pub const STORE_TX_RETRIES: &str = "conclave_store_tx_retries_total";
pub const DEAD_LETTER_DEPTH: &str = "conclave_pipeline_dead_letter_messages";
pub const ADAPTER_RECONNECTS: &str = "conclave_adapter_reconnects_total";
/// Groups whose Redis channel this process subscribes (it holds a socket of a member).
pub const FANOUT_GROUP_CHANNELS: &str = "conclave_fanout_group_channels";
/// Frames read from the fan-out channels, by `channel` (`group`, `members`).
pub const FANOUT_FRAMES_IN: &str = "conclave_fanout_frames_received_total";
pub const TOKIO_WORKERS: &str = "conclave_tokio_workers";
pub const TOKIO_ALIVE_TASKS: &str = "conclave_tokio_alive_tasks";
pub const TOKIO_GLOBAL_QUEUE: &str = "conclave_tokio_global_queue_depth";
pub const AUDIT_WRITTEN: &str = "conclave_audit_events_written_total";
pub const AUDIT_DROPPED: &str = "conclave_audit_events_dropped_total";
/// 1 while this process runs the one-per-cluster jobs (holds the leader Lease), else 0.
pub const LEADER: &str = "conclave_leader";
pub const RECORDS_PURGED: &str = "conclave_records_purged_total";
/// 1 while the background prober's last probe of a dependency succeeded, else 0.
pub const DEPENDENCY_UP: &str = "conclave_dependency_up";

static HANDLE: OnceLock<(PrometheusHandle, Arc<metrics_process::Collector>)> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What `/metrics` renders; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    /// `None` when metrics are disabled (`CONCLAVE_METRICS_ENABLED=false`).
    inner: Option<(PrometheusHandle, Arc<metrics_process::Collector>)>,
}

impl Metrics {
    /// The process-wide registry (installed on first use), or nothing when disabled: then no
    /// recorder is installed and every `metrics::` call is a no-op.
    pub fn new(enabled: bool) -> Self {
        Self {
            inner: enabled.then(global),
        }
    }

    /// Refreshes the scrape-time gauges and renders the Prometheus text.
    pub fn render(&self) -> String {
        let Some((handle, process)) = &self.inner else {
            return "# metrics are disabled (CONCLAVE_METRICS_ENABLED=false)\n".into();
        };
        process.collect();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let m = rt.metrics();
            metrics::gauge!(TOKIO_WORKERS).set(m.num_workers() as f64);
            metrics::gauge!(TOKIO_ALIVE_TASKS).set(m.num_alive_tasks() as f64);
            metrics::gauge!(TOKIO_GLOBAL_QUEUE).set(m.global_queue_depth() as f64);
        }
        handle.render()
    }
}

/// Installs the global recorder on first use.
fn global() -> (PrometheusHandle, Arc<metrics_process::Collector>) {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(PIPELINE_BATCH.into()),
                        &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0],
                    )
                })
                .expect("bucket lists are non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may exist in tests that embed us; then ours just renders nothing new.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            let process = metrics_process::Collector::default();
            process.describe();
            (handle, Arc::new(process))
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests by route template, method and status"
    );
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "HTTP request latency");
    describe_counter!(AUTH_LOGINS, "Login attempts by result");
    describe_counter!(
        AUTH_TOKEN_REUSE,
        "Spent refresh tokens presented again (family revoked)"
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests refused by an abuse limit (rate or count), by limit"
    );
    describe_counter!(MESSAGES_ACCEPTED, "Messages durably accepted");
    describe_counter!(MESSAGES_PERSISTED, "Messages written to the store");
    describe_counter!(
        MESSAGES_BY_GROUP_SIZE,
        "Messages accepted, by the size bucket of their group (1-10, 11-100, 101-1000, 1001+ members)"
    );
    describe_counter!(
        MESSAGES_DUPLICATE,
        "Messages not stored again because they already were"
    );
    describe_gauge!(
        HTTP_CONNECTIONS,
        "Open client connections (HTTP, long-polling and WebSocket alike)"
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections closed unread because a cap was reached (cap: total, per_address), and failed accepts (accept_error)"
    );
    describe_counter!(
        MESSAGES_SENDER_GONE,
        "Messages refused where they are stored because their sender was no longer a member"
    );
    describe_histogram!(
        PERSIST_LATENCY,
        Unit::Seconds,
        "Time from a message's acceptance (its sent_at) until it is stored, on both engines"
    );
    describe_histogram!(PIPELINE_BATCH, "Messages per store batch");
    describe_counter!(PIPELINE_ERRORS, "Store batches that failed");
    describe_counter!(
        STORE_TX_RETRIES,
        "MongoDB transactions run again (conflicts, transient errors, appends that met a stored id)"
    );
    describe_counter!(
        PIPELINE_HANDOFFS,
        "Partitions this process was active on and handed to their owning process"
    );
    describe_gauge!(
        PIPELINE_STEPPED_BACK,
        "1 while this process cannot store and has given its partitions to the others, else 0"
    );
    describe_gauge!(
        CLUSTER_PROCESSES,
        "Live processes in the partition registry, this one included (divides the rate limits while Redis is down)"
    );
    describe_gauge!(
        PIPELINE_QUEUE_DEPTH,
        "Messages waiting in a partition's queue (standalone: in memory, read as each batch is taken; cluster: the broker's ready count, polled every 15 s)"
    );
    describe_gauge!(
        PIPELINE_UNACKED,
        "Messages this process's partition writer has taken and not yet stored and acknowledged"
    );
    describe_gauge!(TOKIO_WORKERS, "Tokio runtime worker threads");
    describe_gauge!(
        TOKIO_ALIVE_TASKS,
        "Tokio tasks alive (spawned, not finished)"
    );
    describe_gauge!(
        TOKIO_GLOBAL_QUEUE,
        "Tasks waiting in the tokio runtime's global queue"
    );
    describe_counter!(AUDIT_WRITTEN, "Audit events written to the store");
    describe_counter!(
        AUDIT_DROPPED,
        "Audit events lost, by reason (full buffer, recorded after close, store errors)"
    );
    describe_counter!(
        GROUP_COMMANDS,
        "Group membership commands by command and result"
    );
    describe_counter!(
        READ_MARKERS_MOVED,
        "Read markers moved forward by PUT /groups/{id}/read"
    );
    describe_counter!(
        MESSAGE_CHANGES,
        "Message edits and deletions durably accepted, by kind (edit, delete)"
    );
    metrics::describe_gauge!(
        LEADER,
        "1 while this process leads (runs indexes, shard keys and retention), else 0"
    );
    describe_counter!(
        RECORDS_PURGED,
        "Expired records deleted by the leader's retention job, by kind"
    );
    describe_gauge!(
        FANOUT_GROUP_CHANNELS,
        "Groups whose Redis fan-out channel this process subscribes (cluster)"
    );
    describe_gauge!(
        DEPENDENCY_UP,
        "1 while the dependency answers this process's background probe, else 0"
    );
    describe_counter!(
        FANOUT_FRAMES_IN,
        "Frames read from the Redis fan-out channels, by channel (group, members)"
    );
}

/// Label values each labelled counter is exported with from start. They mirror the call sites
/// (a value missing here only appears on first use; a name missing here is caught by
/// `scripts/check-observability`, which reads a fresh server's `/metrics`).
const KNOWN_COUNTER_LABELS: &[(&str, &str, &[&str])] = &[
    (AUTH_LOGINS, "result", &["success", "failure"]),
    (
        RATE_LIMITED,
        "limit",
        &[
            "login",
            "register",
            "message_send",
            "group_messages",
            "group_actions",
            "groups_per_user",
            "password_hashing",
            "socket_events",
            "history",
            "sockets_per_user",
        ],
    ),
    (
        CONNECTIONS_REFUSED,
        "cap",
        &["total", "per_address", "accept_error"],
    ),
    (
        MESSAGES_BY_GROUP_SIZE,
        "group_size",
        &["1-10", "11-100", "101-1000", "1001+"],
    ),
    (MESSAGE_CHANGES, "kind", &["edit", "delete"]),
    (
        GROUP_COMMANDS,
        "command",
        &[
            "join",
            "withdraw_request",
            "approve",
            "reject",
            "remove",
            "leave",
            "ban",
            "unban",
            "transfer_ownership",
            "delete",
        ],
    ),
    (
        SOCKET_DISCONNECTS,
        "reason",
        &[
            "transport_close",
            "polling_error",
            "parse_error",
            "transport_error",
            "heartbeat_timeout",
            "client_disconnect",
            "server_disconnect",
            "server_closing",
        ],
    ),
    (
        SOCKET_EVENTS_IN,
        "event",
        &[
            "message:send",
            "message:edit",
            "message:delete",
            "group:sync",
            "typing",
        ],
    ),
    (
        SOCKET_EVENTS_OUT,
        "event",
        &["message:new", "typing", "ack"],
    ),
    (
        SOCKET_DROPPED,
        "event",
        &["message:new", "typing", "fanout_publish", "adapter_inbound"],
    ),
    (BROKER_RECONNECTS, "role", &["publisher", "consumer"]),
    (AUDIT_DROPPED, "reason", &["full", "closed", "store_error"]),
    (RECORDS_PURGED, "kind", &["refresh_token", "cooldown"]),
    (FANOUT_FRAMES_IN, "channel", &["group", "members"]),
];

/// Registers every metric this process can record, at zero, so dashboards show 0 rather than
/// "No data" and `rate()`/`absent()` work from the first scrape. Series labelled by request
/// (`conclave_http_*`: route, method, status) appear with the first request, a probe included.
/// `dependencies` and `partitions` name the engine's own label values.
pub fn export_from_start(partitions: u32, dependencies: &[&'static str]) {
    for name in [
        AUTH_TOKEN_REUSE,
        MESSAGES_ACCEPTED,
        MESSAGES_PERSISTED,
        MESSAGES_DUPLICATE,
        MESSAGES_SENDER_GONE,
        PIPELINE_ERRORS,
        STORE_TX_RETRIES,
        PIPELINE_HANDOFFS,
        MESSAGES_DELIVERED,
        SOCKET_CONNECTS,
        SOCKET_AUTH_FAILURES,
        SOCKET_EXPIRED,
        MESSAGES_DEAD_LETTERED,
        ADAPTER_RECONNECTS,
        AUDIT_WRITTEN,
        READ_MARKERS_MOVED,
    ] {
        metrics::counter!(name).increment(0);
    }
    for (name, key, values) in KNOWN_COUNTER_LABELS {
        for v in *values {
            if *name == GROUP_COMMANDS {
                metrics::counter!(*name, *key => *v, "result" => "ok").increment(0);
            } else {
                metrics::counter!(*name, *key => *v).increment(0);
            }
        }
    }
    for name in [
        PERSIST_LATENCY,
        PIPELINE_BATCH,
        DELIVERY_LATENCY,
        STORE_BATCH_LATENCY,
    ] {
        // A registered histogram is rendered (empty) without a sample.
        let _ = metrics::histogram!(name);
    }
    for name in [
        SOCKETS_CONNECTED,
        HTTP_CONNECTIONS,
        DEAD_LETTER_DEPTH,
        FANOUT_GROUP_CHANNELS,
        LEADER,
        PIPELINE_STEPPED_BACK,
        CLUSTER_PROCESSES,
    ] {
        metrics::gauge!(name).increment(0.0);
    }
    for p in 0..partitions {
        for name in [PIPELINE_QUEUE_DEPTH, PIPELINE_UNACKED] {
            metrics::gauge!(name, "partition" => p.to_string()).increment(0.0);
        }
    }
    for d in dependencies {
        // 0 until its first answer: a process still waiting for it does not count it as up.
        metrics::gauge!(DEPENDENCY_UP, "dependency" => *d).increment(0.0);
    }
}

/// Records count and latency of every request under its route template.
pub async fn track_http(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    tracing::Span::current().record("route", route.as_str());
    let method = req.method().as_str().to_owned();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_DURATION, &labels).record(start.elapsed().as_secs_f64());
    res
}
