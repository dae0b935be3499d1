"""Conventions, alerts, runbook and metric names, offline (scripts/check-observability):

- dashboard conventions (dashboard_conventions.py) and alert rules against their unit tests and
  the runbook (alert_rules.py);
- every metric name used in a dashboard query, variable or rule is one the server records
  (server_metrics.py; histograms only as _bucket/_sum/_count) or a known external one;
- route label values are route templates of the server (route_labels.py).

Usage: check_names.py ROOT USED_OUT
Writes, for the steps after it: USED_OUT ("name kind" per used series, kind external for the
external ones), USED_OUT.rules.yml (the Grafana queries as recording rules, for promtool's
parser) and used-labels.txt beside USED_OUT ("name label..." per metric). Exits 1 on any error.
"""

import os
import sys

import yaml

from alert_rules import check_alerts
from dashboard_conventions import check_dashboards
from promql import QueryUses
from route_labels import check_route_labels
from server_metrics import EXTERNAL, exported_series, recorded_metrics


def unexported(used, kinds, app_series):
    """Errors for the used names the server does not export."""
    errors = []
    for name, places in sorted(used.items()):
        if name in EXTERNAL:
            continue
        if name not in app_series:
            hint = ""
            if name in kinds:
                hint = f" ({name} is a histogram: use _bucket, _sum or _count)"
            errors.append(
                f"metric {name} is not exported by the server{hint}; used in: {places[0]}"
                + (f" and {len(places) - 1} more" if len(places) > 1 else "")
            )
    return errors


def write_outputs(used_out, uses, kinds, app_series):
    # Dashboard queries through promtool's PromQL parser, as recording rules of a scratch file.
    with open(used_out + ".rules.yml", "w") as f:
        rules = [
            {"record": "conclave_dashboard_query_check", "expr": e, "labels": {"where": w}}
            for w, e in uses.grafana_exprs
        ]
        yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, f)

    with open(os.path.join(os.path.dirname(used_out), "used-labels.txt"), "w") as f:
        for name in sorted(uses.labels):
            f.write(f"{name} {' '.join(sorted(uses.labels[name]))}\n")

    with open(used_out, "w") as f:
        for name in sorted(uses.used):
            kind = "external" if name in EXTERNAL else kinds.get(app_series.get(name), "?")
            f.write(f"{name} {kind}\n")


def main():
    root, used_out = sys.argv[1], sys.argv[2]
    errors = []

    consts, kinds = recorded_metrics(root, errors)
    unused = sorted(set(consts.values()) - set(kinds))
    if unused:
        print("note: defined in metrics.rs but never recorded:", ", ".join(unused))
    app_series = exported_series(kinds)

    uses = QueryUses(errors)
    check_dashboards(root, uses, errors)
    rules, alerts = check_alerts(root, uses, errors)
    alert_exprs = [(f"alert {r['alert']}", r["expr"]) for g in rules["groups"] for r in g["rules"] if "alert" in r]
    check_route_labels(root, uses.grafana_exprs + alert_exprs, errors)
    errors += unexported(uses.used, kinds, app_series)

    write_outputs(used_out, uses, kinds, app_series)

    if errors:
        print("\n".join("FAIL: " + e for e in errors), file=sys.stderr)
        sys.exit(1)
    used = uses.used
    print(f"{len(alerts)} alerts: each annotated, runbook anchor present, tested firing and not firing")
    app = sorted(n for n in used if n not in EXTERNAL)
    ext = sorted(n for n in used if n in EXTERNAL)
    print(f"{len(app)} app series used, all exported: {' '.join(app)}")
    print(f"{len(ext)} external series used: {' '.join(ext)}")


if __name__ == "__main__":
    main()
