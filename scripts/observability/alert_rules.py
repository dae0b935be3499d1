"""The alert rules of prometheus/conclave-rules.yml against their unit tests
(conclave-rules.test.yml) and the runbook (docs/observability.md): every alert named Conclave*,
with summary, description, a severity, a runbook_url whose anchor exists in the runbook, and a
unit test where it fires and one where it does not."""

import os
import re

import yaml

SEVERITIES = ("critical", "warning", "info")


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def slug(h):
    """GitHub's anchor for a heading."""
    h = re.sub(r"[^\w\- ]", "", h.strip().lower())
    return h.replace(" ", "-")


def runbook_anchors(doc):
    anchors = {slug(h) for h in re.findall(r"^#+\s+(.*)$", doc, re.M)}
    anchors |= set(re.findall(r'<a (?:name|id)="([^"]+)"', doc))
    return anchors


def tested_alerts(tests):
    """(alerts some test expects firing, alerts some test expects quiet)."""
    fires, quiet = set(), set()
    for t in tests["tests"]:
        for a in t.get("alert_rule_test", []):
            (fires if a.get("exp_alerts") else quiet).add(a["alertname"])
    return fires, quiet


def check_alerts(root, uses, errors):
    """Appends violations to errors, gives every rule's expression to uses (a
    promql.QueryUses) and returns (rules, alert names)."""
    rules = load_yaml(os.path.join(root, "prometheus/conclave-rules.yml"))
    tests = load_yaml(os.path.join(root, "prometheus/conclave-rules.test.yml"))
    with open(os.path.join(root, "docs/observability.md")) as f:
        anchors = runbook_anchors(f.read())
    fires, quiet = tested_alerts(tests)
    alerts = []
    for g in rules["groups"]:
        for r in g["rules"]:
            if "alert" not in r:
                uses.use(r["expr"], f"recording rule {r.get('record')}")
                continue
            name = r["alert"]
            alerts.append(name)
            where = f"alert {name}"
            if not name.startswith("Conclave"):
                errors.append(f"{where}: name must start with Conclave (the alerts dashboard selects Conclave.*)")
            ann = r.get("annotations", {})
            for k in ("summary", "description", "runbook_url"):
                if not ann.get(k):
                    errors.append(f"{where}: no {k} annotation")
            if r.get("labels", {}).get("severity") not in SEVERITIES:
                errors.append(f"{where}: severity label must be critical, warning or info")
            m = re.fullmatch(r"https://\S+/docs/observability\.md#([\w-]+)", ann.get("runbook_url", ""))
            if not m:
                errors.append(f"{where}: runbook_url must be absolute: https://<base>/docs/observability.md#<anchor>")
            elif m.group(1) not in anchors:
                errors.append(f"{where}: anchor #{m.group(1)} not found in docs/observability.md")
            if name not in fires:
                errors.append(f"{where}: no unit test where it fires")
            if name not in quiet:
                errors.append(f"{where}: no unit test where it does not fire")
            uses.use(r["expr"], where)
    for name in (fires | quiet) - set(alerts):
        errors.append(f"unit tests name an alert that does not exist: {name}")
    return rules, alerts
