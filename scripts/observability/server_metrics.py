"""The metric series the server exports, read from its source (src/): every
metrics::counter!/gauge!/histogram! call, with names given as literals or as constants of
src/ops/metrics.rs, plus the process_* series the metrics-process crate writes into the same
registry. Also the standard series from outside the app that dashboards may use.
"""

import glob
import os
import re

# Written by the metrics-process crate into the same registry (src/ops/metrics.rs); the live
# check proves they are really exported.
PROCESS = {
    "process_cpu_seconds_total": "counter",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
    "process_virtual_memory_bytes": "gauge",
    "process_virtual_memory_max_bytes": "gauge",
    "process_resident_memory_bytes": "gauge",
    "process_start_time_seconds": "gauge",
    "process_threads": "gauge",
}

# Standard series from outside the app: cAdvisor, kube-state-metrics, Prometheus itself.
EXTERNAL = {
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "container_cpu_cfs_throttled_periods_total",
    "container_cpu_cfs_periods_total",
    "kube_pod_container_resource_limits",
    "kube_pod_container_resource_requests",
    "kube_pod_container_status_restarts_total",
    "kube_deployment_status_replicas_available",
    "kube_horizontalpodautoscaler_info",
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_status_desired_replicas",
    "kube_horizontalpodautoscaler_spec_min_replicas",
    "kube_horizontalpodautoscaler_spec_max_replicas",
    "kube_horizontalpodautoscaler_status_target_metric",
    "kube_horizontalpodautoscaler_spec_target_metric",
    "up",
    "ALERTS",
}

MACRO = re.compile(r'metrics::(counter|gauge|histogram)!\(\s*(?:"([a-z_:][a-z0-9_:]*)"|(?:\w+::)*([A-Z][A-Z0-9_]*))')


def read(path):
    with open(path) as f:
        return f.read()


def recorded_metrics(root, errors):
    """Returns (consts, kinds): the name constants of src/ops/metrics.rs (constant -> name) and
    every metric the server records (name -> counter, gauge or histogram). Appends to errors a
    constant that metrics.rs lacks and a name recorded as two kinds."""
    consts = dict(
        re.findall(r'pub const (\w+): &str = "([a-z_:][a-z0-9_:]*)";', read(os.path.join(root, "src/ops/metrics.rs")))
    )
    kinds = {}
    for path in glob.glob(os.path.join(root, "src/**/*.rs"), recursive=True):
        for kind, literal, const in MACRO.findall(read(path)):
            name = literal or consts.get(const)
            if name is None:
                errors.append(f"{path}: metric constant {const} not found in src/ops/metrics.rs")
                continue
            if kinds.setdefault(name, kind) != kind:
                errors.append(f"{name} recorded both as {kinds[name]} and {kind}")
    for name, kind in PROCESS.items():
        kinds.setdefault(name, kind)
    return consts, kinds


def exported_series(kinds):
    """Series name -> metric name: a histogram is exported only as _bucket, _sum and _count."""
    app_series = {}
    for name, kind in kinds.items():
        if kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                app_series[name + suffix] = name
        else:
            app_series[name] = name
    return app_series
