#!/usr/bin/env python3
"""Generates the Conclave Grafana dashboards in grafana/dashboards/*.json.

The JSON files are committed; this script is their source. Edit here, run
`python3 grafana/generate_dashboards.py`, commit both. scripts/check-observability fails when the
committed JSON differs from what this script writes.

Conventions (checked by scripts/check-observability):
  - classic dashboard JSON (schemaVersion 39+), validated against @grafana/schema's Dashboard type
    and, per panel, against the panel plugin's Options / FieldConfig types;
  - every query uses the `${datasource}` template variable and the `namespace` and `pod`
    variables;
  - every panel has a description saying which question it answers;
  - every metric name is one the server exports (src/ops/metrics.rs) or a standard Kubernetes one
    (cAdvisor container_*, kube-state-metrics kube_*, `up`, `ALERTS`).
"""

import json
import os
import sys

from dashlib import (
    CONTAINER,
    CORES,
    HPA_OF_DEPLOYMENT,
    MSG_RATE,
    NOT_OPS,
    RI,
    SEL,
    Layout,
    dashboard,
    quantiles,
    row,
    stat,
    state_timeline,
    table,
    targets,
    timeseries,
)


def realtime():
    L = Layout()
    p = []
    p.append(row(L, "Golden signals"))
    p.append(stat(L, "Request rate",
                  "How many HTTP requests per second are the selected pods serving right now?",
                  targets((f"sum(rate(conclave_http_requests_total{{{SEL}}}[{RI}]))", "req/s")),
                  unit="reqps"))
    p.append(stat(L, "5xx error ratio",
                  "Which share of HTTP requests (probes and /metrics excluded) fails with a "
                  "server error (5xx)? The ConclaveHighErrorRate alert fires above 5%.",
                  targets((f'sum(rate(conclave_http_requests_total{{{SEL}, {NOT_OPS}, '
                           f'status=~"5.."}}[{RI}])) / sum(rate(conclave_http_requests_total'
                           f"{{{SEL}, {NOT_OPS}}}[{RI}]))", "5xx")),
                  unit="percentunit", steps=((0.01, "orange"), (0.05, "red")), decimals=2))
    p.append(stat(L, "Live sockets",
                  "How many Socket.IO connections are open on the selected pods?",
                  targets((f"sum(conclave_socket_connections{{{SEL}}})", "sockets"))))
    p.append(stat(L, "Messages accepted",
                  "How many messages per second do senders get accepted (durably queued or "
                  "stored)?",
                  targets((f"sum(rate(conclave_messages_accepted_total{{{SEL}}}[{RI}]))",
                           "accepted")), unit=MSG_RATE))

    p.append(row(L, "HTTP"))
    p.append(timeseries(L, "Request rate by route and status",
                        "Which routes get the traffic, and with which status codes?",
                        targets((f"sum by (route, status) (rate(conclave_http_requests_total"
                                 f"{{{SEL}}}[{RI}]))", "{{route}} {{status}}")),
                        unit="reqps"))
    p.append(timeseries(L, "Error ratio by route (5xx and 4xx)",
                        "Which routes fail, and is it the server (5xx) or the clients (4xx: "
                        "validation, auth, rate limits)?",
                        targets(
                            (f'sum by (route) (rate(conclave_http_requests_total{{{SEL}, '
                             f'status=~"5.."}}[{RI}])) / sum by (route) (rate('
                             f"conclave_http_requests_total{{{SEL}}}[{RI}]))", "5xx {{route}}"),
                            (f'sum by (route) (rate(conclave_http_requests_total{{{SEL}, '
                             f'status=~"4.."}}[{RI}])) / sum by (route) (rate('
                             f"conclave_http_requests_total{{{SEL}}}[{RI}]))", "4xx {{route}}")),
                        unit="percentunit", steps=((0.05, "red"),)))
    p.append(timeseries(L, "Latency p50 / p95 / p99 by route",
                        "How long do HTTP requests take per route, for the typical (p50) and the "
                        "slowest (p95, p99) requests? ConclaveHighLatencyP99 fires when p99 over "
                        "all routes stays above 1 s.",
                        quantiles("conclave_http_request_duration_seconds", ["route"],
                                  "{{route}}"),
                        unit="s", w=24, h=9, steps=((1, "red"),)))

    p.append(row(L, "Realtime (Socket.IO)"))
    p.append(timeseries(L, "Live sockets by pod",
                        "How are the open sockets spread over the pods? A pod with none may be "
                        "unready; one with many more may need rebalancing.",
                        targets((f"sum by (pod) (conclave_socket_connections{{{SEL}}})",
                                 "{{pod}}"))))
    p.append(timeseries(L, "Socket events in / out by event",
                        "Which Socket.IO events do clients send and which does the server push, "
                        "per second?",
                        targets((f"sum by (event) (rate(conclave_socket_events_in_total{{{SEL}}}"
                                 f"[{RI}]))", "in {{event}}"),
                                (f"sum by (event) (rate(conclave_socket_events_out_total{{{SEL}}}"
                                 f"[{RI}]))", "out {{event}}")),
                        unit="ops"))
    p.append(timeseries(L, "Dropped socket packets by event",
                        "Are events to sockets, or from the Redis adapter, being dropped because "
                        "buffers are full? Clients then resync with group:sync; "
                        "ConclaveSocketDrops fires when this persists.",
                        targets((f"sum by (event) (rate(conclave_socket_dropped_total{{{SEL}}}"
                                 f"[{RI}]))", "{{event}}")),
                        unit="ops", steps=((0.01, "red"),)))
    p.append(timeseries(L, "Broker and adapter reconnects",
                        "Did the RabbitMQ publisher/consumer or the Redis adapter lose its "
                        "connection and reconnect (cluster mode)?",
                        targets((f"sum by (role) (increase(conclave_broker_reconnects_total"
                                 f"{{{SEL}}}[{RI}]))", "broker {{role}}"),
                                (f"sum(increase(conclave_adapter_reconnects_total{{{SEL}}}"
                                 f"[{RI}]))", "redis adapter")),
                        steps=((1, "red"),)))

    p.append(row(L, "Message pipeline"))
    p.append(timeseries(L, "Message throughput",
                        "Do messages flow through the pipeline: how many per second are "
                        "accepted from senders, persisted to the store, delivered to sockets, "
                        "and recognised as duplicate retries? Accepted above persisted for long "
                        "means a backlog.",
                        targets((f"sum(rate(conclave_messages_accepted_total{{{SEL}}}[{RI}]))",
                                 "accepted"),
                                (f"sum(rate(conclave_messages_persisted_total{{{SEL}}}[{RI}]))",
                                 "persisted"),
                                (f"sum(rate(conclave_messages_delivered_total{{{SEL}}}[{RI}]))",
                                 "delivered"),
                                (f"sum(rate(conclave_messages_duplicate_total{{{SEL}}}[{RI}]))",
                                 "duplicate")),
                        unit=MSG_RATE, w=24))
    p.append(timeseries(L, "Persist latency (submit to stored)",
                        "How long does a message wait between its submission and its write in "
                        "the store (the pipeline lag)? ConclavePersistLatencyHigh fires when p99 "
                        "stays above 2 s.",
                        quantiles("conclave_message_persist_latency_seconds", [], ""),
                        unit="s", steps=((2, "red"),)))
    p.append(timeseries(L, "Partition queues: waiting and unacknowledged",
                        "How many messages wait in each partition's queue for its writer, and "
                        "how many has a writer taken but not yet stored and acknowledged? A "
                        "queue that keeps growing means its writer is behind (see Persist "
                        "latency).",
                        targets((f"max by (partition) (conclave_pipeline_queue_depth{{{SEL}}})",
                                 "waiting p{{partition}}"),
                                (f"sum by (partition) (conclave_pipeline_unacked_messages{{{SEL}}})",
                                 "unacked p{{partition}}"))))
    p.append(timeseries(L, "Store writes by pod",
                        "Do the pods share the partitions' store work (cluster mode)? Each "
                        "partition has one writer at a time; pods agree on an owner per "
                        "partition. One pod persisting everything for long means the partition "
                        "registry (Redis) or a consumer is unhealthy.",
                        targets((f"sum by (pod) (rate(conclave_messages_persisted_total{{{SEL}}}"
                                 f"[{RI}]))", "persisted {{pod}}")),
                        unit=MSG_RATE))
    p.append(timeseries(L, "Partition hand-offs",
                        "How often does a writer hand a partition it does not own to its owner "
                        "(cluster mode)? A few after a rollout or scaling are normal; hand-offs "
                        "that never stop mean the partition registry (Redis) is unhealthy.",
                        targets((f"sum by (pod) (increase(conclave_pipeline_partition_handoffs_total"
                                 f"{{{SEL}}}[{RI}]))", "{{pod}}"))))
    p.append(timeseries(L, "Delivery latency (sent to broadcast)",
                        "How long after sending is a message broadcast to the group's sockets? "
                        "ConclaveDeliveryLatencyHigh fires when p99 stays above 2 s.",
                        quantiles("conclave_message_delivery_latency_seconds", [], ""),
                        unit="s", steps=((2, "red"),)))
    p.append(timeseries(L, "Pipeline errors and dead letters",
                        "Are store batches failing, are messages being dead-lettered, and how "
                        "many wait in the dead-letter queue? Anything above zero needs a look "
                        "(ConclavePipelineErrors, ConclaveDeadLetters). Transaction retries are "
                        "MongoDB write conflicts and transient errors, run again: a steady stream "
                        "slows the pipeline.",
                        targets((f"sum(increase(conclave_pipeline_errors_total{{{SEL}}}[{RI}]))",
                                 "failed store batches"),
                                (f"sum(increase(conclave_messages_dead_lettered_total{{{SEL}}}"
                                 f"[{RI}]))", "dead-lettered"),
                                (f"max(conclave_pipeline_dead_letter_messages{{{SEL}}})",
                                 "dead-letter queue depth"),
                                (f"sum(increase(conclave_store_tx_retries_total{{{SEL}}}[{RI}]))",
                                 "transaction retries")),
                        steps=((1, "red"),)))
    p.append(timeseries(L, "Store batch size",
                        "How many messages does a store write batch carry (cluster consumer)? "
                        "Batches near the maximum mean the writer is behind and catching up.",
                        targets((f"histogram_quantile(0.5, sum by (le) (rate("
                                 f"conclave_pipeline_batch_size_bucket{{{SEL}}}[{RI}])))", "p50"),
                                (f"histogram_quantile(0.99, sum by (le) (rate("
                                 f"conclave_pipeline_batch_size_bucket{{{SEL}}}[{RI}])))", "p99"))))
    p.append(timeseries(L, "Store batch duration",
                        "How long does one store write batch take (cluster consumer)? Growing "
                        "duration with growing batches means the store is the bottleneck.",
                        quantiles("conclave_store_batch_duration_seconds", [], "",
                                  qs=(0.5, 0.99)),
                        unit="s"))

    p.append(row(L, "Per pod"))
    p.append(timeseries(L, "Request rate by pod",
                        "Does every pod get its share of HTTP requests (probes and /metrics "
                        "excluded)? A pod with none is unready or not behind the Service.",
                        targets((f"sum by (pod) (rate(conclave_http_requests_total{{{SEL}, "
                                 f"{NOT_OPS}}}[{RI}]))", "{{pod}}")),
                        unit="reqps", w=8))
    p.append(timeseries(L, "5xx error ratio by pod",
                        "Is one pod failing while the others are fine (a bad node, a lost "
                        "connection to a dependency), or are all failing together?",
                        targets((f'sum by (pod) (rate(conclave_http_requests_total{{{SEL}, '
                                 f'{NOT_OPS}, status=~"5.."}}[{RI}])) / sum by (pod) (rate('
                                 f"conclave_http_requests_total{{{SEL}, {NOT_OPS}}}[{RI}]))",
                                 "{{pod}}")),
                        unit="percentunit", w=8, steps=((0.05, "red"),)))
    p.append(timeseries(L, "Latency p99 by pod",
                        "Is one pod slower than the others (CPU throttling, a noisy neighbour, "
                        "too many sockets), or are all slow together (a shared dependency)?",
                        targets((f"histogram_quantile(0.99, sum by (pod, le) (rate("
                                 f"conclave_http_request_duration_seconds_bucket{{{SEL}, "
                                 f"{NOT_OPS}}}[{RI}])))", "{{pod}}")),
                        unit="s", w=8, steps=((1, "red"),)))
    p.append(state_timeline(L, "Dependencies by pod",
                            "Can each pod reach MongoDB, RabbitMQ and Redis (its background "
                            "probe, conclave_dependency_up)? Pods stay ready while one is down; "
                            "requests that need it answer 503 unavailable. All pods red: the "
                            "dependency itself; one pod red: its network path. "
                            "ConclaveDependencyDown fires after 2 minutes.",
                            targets((f"1 - max by (pod, dependency) (conclave_dependency_up"
                                     f"{{{SEL}}})", "{{dependency}} {{pod}}")),
                            h=6, texts=("up", "down")))
    return dashboard(
        "conclave-realtime", "Conclave / Realtime",
        "Is Conclave serving well right now? HTTP rate, errors and latency by route, live "
        "sockets, the message pipeline (accepted, persisted, delivered, lag, errors, dead "
        "letters) and each pod's dependencies. Metrics come from the server's /metrics (src/ops/metrics.rs).", p,
        refresh="10s", time_from="now-1h")


def activity():
    L = Layout()
    p = []
    p.append(row(L, "Accounts and logins"))
    p.append(timeseries(L, "Logins by result",
                        "How many logins succeed and fail per second? A jump in failures is "
                        "mistyped passwords after an incident, or credential stuffing.",
                        targets((f"sum by (result) (rate(conclave_auth_logins_total{{{SEL}}}"
                                 f"[{RI}]))", "{{result}}")),
                        unit="ops"))
    p.append(stat(L, "Login failure ratio",
                  "Which share of login attempts fails over the selected range?",
                  targets((f'sum(increase(conclave_auth_logins_total{{{SEL}, result="failure"}}'
                           f"[$__range])) / sum(increase(conclave_auth_logins_total{{{SEL}}}"
                           f"[$__range]))", "failures")),
                  unit="percentunit", steps=((0.2, "orange"), (0.5, "red")), decimals=1,
                  graph=False))
    p.append(stat(L, "Refresh-token reuse",
                  "How often was a spent refresh token presented again in the selected range "
                  "(each one revokes the token family: a stolen token, or a buggy client)?",
                  targets((f"sum(increase(conclave_auth_refresh_token_reuse_total{{{SEL}}}"
                           f"[$__range]))", "reuses")),
                  steps=((1, "orange"),), decimals=0, graph=False))
    p.append(timeseries(L, "Registrations",
                        "How many accounts are created per second (successful POST "
                        "/api/v1/auth/register)?",
                        targets((f'sum(rate(conclave_http_requests_total{{{SEL}, '
                                 f'route="/api/v1/auth/register", status=~"2.."}}[{RI}]))',
                                 "registrations")),
                        unit="ops"))
    p.append(timeseries(L, "Rate-limit hits by limit",
                        "Which rate limits refuse requests (login, message_send, socket_events)? "
                        "A steady stream from one limit is a noisy client or an attack; a jump "
                        "everywhere may mean limits too tight.",
                        targets((f"sum by (limit) (rate(conclave_rate_limited_total{{{SEL}}}"
                                 f"[{RI}]))", "{{limit}}")),
                        unit="ops"))

    p.append(row(L, "Groups"))
    p.append(timeseries(L, "Group commands by command",
                        "What are members doing with groups: joins, leaves, approvals, removals, "
                        "bans, transfers, deletions per second (all results)?",
                        targets((f"sum by (command) (rate(conclave_group_commands_total{{{SEL}}}"
                                 f"[{RI}]))", "{{command}}")),
                        unit="ops", stack=True))
    p.append(timeseries(L, "Refused group commands by command and result",
                        "Which group commands are refused, and why (forbidden, banned, "
                        "cooldown, group full...)? A spike of one refusal can point at a client "
                        "bug.",
                        targets((f'sum by (command, result) (rate(conclave_group_commands_total'
                                 f'{{{SEL}, result!="ok"}}[{RI}]))', "{{command}} {{result}}")),
                        unit="ops"))
    p.append(timeseries(L, "Joins and bans",
                        "How many joins (direct or approved requests), removals, bans and unbans "
                        "succeed per second?",
                        targets((f'sum by (command) (rate(conclave_group_commands_total{{{SEL}, '
                                 f'command=~"join|approve|remove|ban|unban", result="ok"}}'
                                 f"[{RI}]))", "{{command}}")),
                        unit="ops"))
    p.append(timeseries(L, "Messages by group size",
                        "Where does the conversation happen: how many messages per second are "
                        "sent in small (1-10 members), medium, large and very large groups?",
                        targets((f"sum by (group_size) (rate("
                                 f"conclave_messages_sent_by_group_size_total{{{SEL}}}[{RI}]))",
                                 "{{group_size}} members")),
                        unit=MSG_RATE))
    p.append(timeseries(L, "Online now (connected sockets)",
                        "How many clients are connected right now (active users online; a user "
                        "with two tabs counts twice)?",
                        targets((f"sum(conclave_socket_connections{{{SEL}}})", "connected")),
                        unit="short"))
    p.append(timeseries(L, "Audit trail: events written and dropped",
                        "Are security events (logins, bans, approvals, transfers...) reaching "
                        "the audit trail? Any drop means a full buffer or a failing store; "
                        "ConclaveAuditEventsDropped fires on it.",
                        targets((f"sum(rate(conclave_audit_events_written_total{{{SEL}}}[{RI}]))",
                                 "written"),
                                (f"sum by (reason) (rate(conclave_audit_events_dropped_total"
                                 f"{{{SEL}}}[{RI}]))", "dropped {{reason}}")),
                        unit="ops"))

    p.append(row(L, "Sockets"))
    p.append(timeseries(L, "Socket connects and disconnects by reason",
                        "How many sockets connect and disconnect per second, and why do they "
                        "disconnect (transport close, heartbeat timeout, server closing...)? "
                        "Mass server_closing is a rollout; heartbeat timeouts are bad networks.",
                        targets((f"sum(rate(conclave_socket_connects_total{{{SEL}}}[{RI}]))",
                                 "connects"),
                                (f"sum by (reason) (rate(conclave_socket_disconnects_total"
                                 f"{{{SEL}}}[{RI}]))", "disconnect {{reason}}")),
                        unit="ops"))
    p.append(timeseries(L, "Socket auth failures and token expiries",
                        "How many socket handshakes are refused for a missing or invalid token, "
                        "and how many sockets are closed because their access token expired?",
                        targets((f"sum(rate(conclave_socket_auth_failures_total{{{SEL}}}[{RI}]))",
                                 "auth failures"),
                                (f"sum(rate(conclave_socket_token_expired_total{{{SEL}}}[{RI}]))",
                                 "token expired")),
                        unit="ops"))
    return dashboard(
        "conclave-activity", "Conclave / Activity",
        "What are users doing? Logins, registrations, rate-limit hits, group commands (joins, "
        "bans, refusals) and socket connects/disconnects by reason. Metrics come from the "
        "server's /metrics (src/ops/metrics.rs).", p)


def resources():
    L = Layout()
    p = []
    cpu = f"sum by (pod) (rate(container_cpu_usage_seconds_total{{{CONTAINER}}}[{RI}]))"
    cpu_lim = (f'sum by (pod) (kube_pod_container_resource_limits{{{CONTAINER}, resource="cpu", '
               f'unit="core"}})')
    cpu_req = (f'sum by (pod) (kube_pod_container_resource_requests{{{CONTAINER}, '
               f'resource="cpu", unit="core"}})')
    mem = f"sum by (pod) (container_memory_working_set_bytes{{{CONTAINER}}})"
    mem_lim = (f'sum by (pod) (kube_pod_container_resource_limits{{{CONTAINER}, '
               f'resource="memory", unit="byte"}})')
    mem_req = (f'sum by (pod) (kube_pod_container_resource_requests{{{CONTAINER}, '
               f'resource="memory", unit="byte"}})')
    p.append(row(L, "CPU"))
    p.append(timeseries(L, "CPU usage against requests and limits",
                        "How many cores does each Conclave container use, compared with its "
                        "request and limit? Usage at the limit means throttling.",
                        targets((cpu, "used {{pod}}"), (cpu_req, "request {{pod}}"),
                                (cpu_lim, "limit {{pod}}")),
                        unit=CORES))
    p.append(timeseries(L, "CPU used, % of limit",
                        "How close is each container to its CPU limit?",
                        targets((f"{cpu} / {cpu_lim}", "{{pod}}")),
                        unit="percentunit", steps=((0.8, "orange"), (0.95, "red"))))
    p.append(timeseries(L, "CPU throttling",
                        "Which share of CFS periods was the container throttled in? Throttling "
                        "adds latency even when average CPU looks fine.",
                        targets((f"sum by (pod) (rate(container_cpu_cfs_throttled_periods_total"
                                 f"{{{CONTAINER}}}[{RI}])) / sum by (pod) (rate("
                                 f"container_cpu_cfs_periods_total{{{CONTAINER}}}[{RI}]))",
                                 "{{pod}}")),
                        unit="percentunit", steps=((0.25, "red"),), w=24))
    p.append(row(L, "Memory"))
    p.append(timeseries(L, "Memory working set against requests and limits",
                        "How much memory does each Conclave container hold (working set, what "
                        "the OOM killer looks at), compared with its request and limit?",
                        targets((mem, "working set {{pod}}"), (mem_req, "request {{pod}}"),
                                (mem_lim, "limit {{pod}}")),
                        unit="bytes"))
    p.append(timeseries(L, "Memory used, % of limit",
                        "How close is each container to being OOM-killed? "
                        "ConclaveMemoryNearLimit fires above 90% for 10 minutes.",
                        targets((f"{mem} / {mem_lim}", "{{pod}}")),
                        unit="percentunit", steps=((0.8, "orange"), (0.9, "red"))))
    p.append(timeseries(L, "Memory per live socket",
                        "How much memory does a pod hold per open socket? Idle sockets cost "
                        "about 25-30 KiB each; much more suggests a leak or large buffers.",
                        targets((f"{mem} / (sum by (pod) (conclave_socket_connections{{{SEL}}}) > 0)",
                                 "{{pod}}")),
                        unit="bytes", w=24))
    p.append(row(L, "Process (from the server's /metrics)"))
    p.append(timeseries(L, "Process CPU against the limit",
                        "How many cores does the Conclave process itself burn "
                        "(process_cpu_seconds_total), compared with the container's CPU limit? "
                        "Unlike cAdvisor this works outside Kubernetes too.",
                        targets((f"sum by (pod) (rate(process_cpu_seconds_total{{{SEL}}}[{RI}]))",
                                 "process {{pod}}"), (cpu_lim, "limit {{pod}}")),
                        unit=CORES))
    p.append(timeseries(L, "Resident memory against the limit",
                        "How much memory does the process hold resident "
                        "(process_resident_memory_bytes), compared with the container's memory "
                        "limit?",
                        targets((f"sum by (pod) (process_resident_memory_bytes{{{SEL}}})",
                                 "resident {{pod}}"), (mem_lim, "limit {{pod}}")),
                        unit="bytes"))
    p.append(timeseries(L, "Open file descriptors, % of the limit",
                        "How close is each process to its open-files limit? Every socket is a "
                        "file descriptor; at 100% new connections fail. "
                        "ConclaveFileDescriptorsNearLimit fires above 80%.",
                        targets((f"sum by (pod) (process_open_fds{{{SEL}}}) / sum by (pod) "
                                 f"(process_max_fds{{{SEL}}})", "{{pod}}")),
                        unit="percentunit", steps=((0.8, "orange"), (0.9, "red"))))
    p.append(timeseries(L, "Threads and tokio tasks",
                        "How many OS threads and live tokio tasks does each process run, and "
                        "do tasks wait in the runtime's global queue (CPU saturation)?",
                        targets((f"sum by (pod) (process_threads{{{SEL}}})", "threads {{pod}}"),
                                (f"sum by (pod) (conclave_tokio_workers{{{SEL}}})",
                                 "workers {{pod}}"),
                                (f"sum by (pod) (conclave_tokio_alive_tasks{{{SEL}}})",
                                 "tasks {{pod}}"),
                                (f"sum by (pod) (conclave_tokio_global_queue_depth{{{SEL}}})",
                                 "queued {{pod}}"))))
    p.append(row(L, "Pods"))
    p.append(timeseries(L, "Container restarts",
                        "How often did the Conclave containers restart (crash, OOM kill, failed "
                        "liveness probe)? ConclavePodRestarting fires on more than 2 in 15 "
                        "minutes.",
                        targets((f"sum by (pod) (increase(kube_pod_container_status_restarts_total"
                                 f"{{{CONTAINER}}}[{RI}]))", "{{pod}}")),
                        steps=((1, "red"),)))
    p.append(timeseries(L, "Available replicas and scraped pods",
                        "How many Conclave pods are available to serve, and how many can "
                        "Prometheus scrape? Zero fires ConclaveNoPodsReady.",
                        targets(('sum(kube_deployment_status_replicas_available{namespace='
                                 '"$namespace", deployment="$deployment"})', "available replicas"),
                                ('count(max by (pod) (up{namespace="$namespace", pod=~"$pod"}) '
                                 '== 1) or vector(0)', "scraped pods up"))))
    p.append(row(L, "Autoscaling and leadership"))
    hpa = lambda m: f'max({m}{{namespace="$namespace"}} * {HPA_OF_DEPLOYMENT})'  # noqa: E731
    p.append(timeseries(L, "HPA replicas: current, desired, min, max",
                        "How many replicas does the HorizontalPodAutoscaler run and want, "
                        "within its bounds? Desired stuck at max means the HPA cannot scale "
                        "further: raise maxReplicas or the per-pod capacity. (kube-state-metrics; "
                        "empty without autoscaling.enabled.)",
                        targets((hpa("kube_horizontalpodautoscaler_status_current_replicas"),
                                 "current"),
                                (hpa("kube_horizontalpodautoscaler_status_desired_replicas"),
                                 "desired"),
                                (hpa("kube_horizontalpodautoscaler_spec_min_replicas"), "min"),
                                (hpa("kube_horizontalpodautoscaler_spec_max_replicas"), "max"))))
    hpa_by = lambda m: (f"max by (metric_name, metric_target_type) ({m}"  # noqa: E731
                        f'{{namespace="$namespace"}} * {HPA_OF_DEPLOYMENT})')
    p.append(timeseries(L, "HPA metrics against their targets",
                        "How close is each metric the HPA watches (CPU and memory utilization, "
                        "live sockets per pod) to its target? 100% is the target: above it the "
                        "HPA adds pods, well below it removes them (slowly).",
                        targets((f"{hpa_by('kube_horizontalpodautoscaler_status_target_metric')}"
                                 f" / {hpa_by('kube_horizontalpodautoscaler_spec_target_metric')}",
                                 "{{metric_name}} ({{metric_target_type}})")),
                        unit="percentunit", steps=((1, "orange"),)))
    p.append(stat(L, "Leaders now",
                  "How many processes hold the leader Lease right now? It should be exactly "
                  "1: with 0 the one-per-cluster jobs (indexes, retention) do not run "
                  "(ConclaveNoLeader).",
                  targets((f"sum(conclave_leader{{{SEL}}})", "leaders")),
                  steps=((1, "green"), (2, "orange")), base="red", decimals=0, graph=False,
                  w=6, h=8))
    p.append(timeseries(L, "Leader by pod",
                        "Which pod held the leader Lease, and when did leadership move (a "
                        "rollout, a dead leader replaced after its Lease expired)?",
                        targets((f"max by (pod) (conclave_leader{{{SEL}}})", "{{pod}}")),
                        w=18, stack=True))
    return dashboard(
        "conclave-resources", "Conclave / Resources",
        "Are the Conclave pods within their CPU, memory and file descriptors? Container CPU "
        "and memory come from cAdvisor (container_cpu_usage_seconds_total, "
        "container_memory_working_set_bytes, container_cpu_cfs_*); the process's own CPU, "
        "resident memory, file descriptors and threads from the server's /metrics "
        "(process_*, exported by metrics-process, and conclave_tokio_*); limits, requests, "
        "restarts and replicas from kube-state-metrics (kube_pod_container_resource_limits, "
        "kube_pod_container_resource_requests, kube_pod_container_status_restarts_total, "
        "kube_deployment_status_replicas_available). Both must be scraped by the same "
        "Prometheus, with namespace and pod labels; the container is assumed to be named "
        "`conclave`.", p)


def alerts():
    L = Layout()
    p = []
    al = 'alertname=~"Conclave.*", namespace=~"$namespace|", pod=~"$pod|"'
    p.append(row(L, "Now"))
    p.append(stat(L, "Firing alerts",
                  "How many Conclave alerts are firing right now?",
                  targets((f'count(ALERTS{{{al}, alertstate="firing"}}) or vector(0)', "firing"),
                          instant=True),
                  steps=((1, "red"),), w=8, graph=False))
    p.append(stat(L, "Critical alerts firing",
                  "How many of the firing alerts are critical (page someone)?",
                  targets((f'count(ALERTS{{{al}, alertstate="firing", severity="critical"}}) '
                           "or vector(0)", "critical"), instant=True),
                  steps=((1, "red"),), w=8, graph=False))
    p.append(stat(L, "Pending alerts",
                  "How many Conclave alerts have their condition true but have not yet lasted "
                  "long enough to fire?",
                  targets((f'count(ALERTS{{{al}, alertstate="pending"}}) or vector(0)',
                           "pending"), instant=True),
                  steps=((1, "orange"),), w=8, graph=False))
    p.append(table(L, "Active alerts",
                   "Which Conclave alerts are pending or firing now, where, and how severe? "
                   "Each alert's runbook is in docs/observability.md under its name.",
                   targets((f"ALERTS{{{al}}}", ""), instant=True, fmt="table")))
    p.append(row(L, "History"))
    p.append(state_timeline(L, "Alert timeline",
                            "When was each Conclave alert firing over the selected range?",
                            targets((f'max by (alertname) (ALERTS{{{al}, alertstate="firing"}})',
                                     "{{alertname}}"))))
    p.append(timeseries(L, "Firing alerts by severity",
                        "How many Conclave alerts fired at once over time, by severity?",
                        targets((f'count by (severity) (ALERTS{{{al}, alertstate="firing"}})',
                                 "{{severity}}")),
                        w=24, stack=True))
    return dashboard(
        "conclave-alerts", "Conclave / Alerts",
        "Which Conclave alerts (prometheus/conclave-rules.yml) are pending or firing, and when "
        "did they fire? Built on Prometheus' ALERTS series; runbooks in docs/observability.md. "
        "The namespace filter keeps alerts without a namespace label (ConclaveNoPodsReady when "
        "no target is scraped).", p, pod_source="conclave_http_requests_total")


DASHBOARDS = {
    "conclave-realtime.json": realtime,
    "conclave-activity.json": activity,
    "conclave-resources.json": resources,
    "conclave-alerts.json": alerts,
}


def render(fn):
    return json.dumps(fn(), indent=2, ensure_ascii=False) + "\n"


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboards")
    if len(sys.argv) > 1:
        out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, fn in DASHBOARDS.items():
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write(render(fn))
    print(f"wrote {len(DASHBOARDS)} dashboards to {out}")


if __name__ == "__main__":
    main()
