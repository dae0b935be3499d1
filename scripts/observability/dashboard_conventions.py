"""The conventions every dashboard of grafana/dashboards keeps: schemaVersion >= 39; uid, title
and description; `datasource` (a Prometheus data source variable), `namespace` and `pod`
variables; every query on ${datasource}, filtered by $namespace (and Conclave series by $pod);
every panel described by the question it answers; unique panel ids and refIds."""

import glob
import json
import os
import re

DS = {"type": "prometheus", "uid": "${datasource}"}


def check_dashboards(root, uses, errors):
    """Appends convention violations to errors and gives every query and query variable to
    uses (a promql.QueryUses)."""
    for path in sorted(glob.glob(os.path.join(root, "grafana/dashboards/*.json"))):
        fn = os.path.basename(path)
        with open(path) as f:
            d = json.load(f)
        if d.get("schemaVersion", 0) < 39:
            errors.append(f"{fn}: schemaVersion {d.get('schemaVersion')} < 39")
        for k in ("uid", "title", "description"):
            if not d.get(k):
                errors.append(f"{fn}: no {k}")
        check_variables(fn, d, uses, errors)
        check_panels(fn, d, uses, errors)


def check_variables(fn, d, uses, errors):
    vars_ = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    for v in ("datasource", "namespace", "deployment", "pod"):
        if v not in vars_:
            errors.append(f"{fn}: no template variable {v}")
    if vars_.get("datasource", {}).get("type") != "datasource" or vars_["datasource"].get("query") != "prometheus":
        errors.append(f"{fn}: the datasource variable must be of type datasource, query prometheus")
    for name, v in vars_.items():
        if v["type"] == "query":
            if v.get("datasource", {}).get("uid") != "${datasource}":
                errors.append(f"{fn}: variable {name} not on ${{datasource}}")
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            uses.use(q, f"{fn} variable {name}")


def check_panels(fn, d, uses, errors):
    ids = set()
    for p in d.get("panels", []):
        where = f"{fn} panel {p.get('id')} {p.get('title')!r}"
        if p["id"] in ids:
            errors.append(f"{where}: duplicate id")
        ids.add(p["id"])
        if p["type"] == "row":
            continue
        if len(p.get("description", "")) < 20 or "?" not in p.get("description", ""):
            errors.append(f"{where}: description must say which question the panel answers")
        if p.get("datasource") != DS:
            errors.append(f"{where}: panel datasource is not ${{datasource}}")
        if not p.get("targets"):
            errors.append(f"{where}: no query")
        refs = set()
        for t in p.get("targets", []):
            if t.get("datasource") != DS:
                errors.append(f"{where} {t.get('refId')}: query datasource is not ${{datasource}}")
            if t.get("refId") in refs:
                errors.append(f"{where}: duplicate refId {t.get('refId')}")
            refs.add(t.get("refId"))
            expr = t.get("expr", "")
            # Any release name must work: a job or Deployment is chosen by a variable, never named.
            for lbl, val in re.findall(
                r'\b(job|deployment|horizontalpodautoscaler|scaletargetref_name)\s*=~?\s*"([^"]*)"', expr
            ):
                if not val.startswith("$"):
                    errors.append(f"{where} {t['refId']}: hard-coded {lbl}={val!r} (use a template variable)")
            if "$namespace" not in expr:
                errors.append(f"{where} {t['refId']}: query not filtered by $namespace: {expr}")
            if re.search(r"conclave_\w+\{", expr) and "$pod" not in expr:
                errors.append(f"{where} {t['refId']}: Conclave query not filtered by $pod: {expr}")
            uses.use(expr, f"{where} {t['refId']}")
