"""Building blocks of the Conclave Grafana dashboards (grafana/generate_dashboards.py): the grid
layout, panel constructors, the template variables and the dashboard envelope. Kept apart so the
generator holds only the dashboards themselves."""

SCHEMA_VERSION = 39
DS = {"type": "prometheus", "uid": "${datasource}"}
# Selector of the Conclave series chosen by the template variables.
SEL = 'namespace="$namespace", pod=~"$pod"'
# The Conclave container in the pod (the chart's default name), for the cAdvisor and
# kube-state-metrics series.
CONTAINER = 'namespace="$namespace", pod=~"$pod", container="conclave"'
RI = "$__rate_interval"
# Probes and scrapes, left out where the alert rules leave them out.
NOT_OPS = 'route!~"/healthz|/readyz|/metrics"'
# Units Grafana has no name for: custom suffixes, one unit per panel (per axis).
MSG_RATE = "suffix: msg/s"
CORES = "suffix: cores"
# A Deployment's pods are named <deployment>-<replicaset hash>-<suffix>: the `deployment`
# variable reads the Deployment (the release's name, whatever it is) from the Conclave pods.
POD_OF_DEPLOYMENT = "[a-z0-9]+-[a-z0-9]+"
# kube-state-metrics series of the HorizontalPodAutoscaler that scales the chosen Deployment
# (joined through kube_horizontalpodautoscaler_info, so any HPA name works).
HPA_OF_DEPLOYMENT = (
    "on (namespace, horizontalpodautoscaler) group_left () "
    'kube_horizontalpodautoscaler_info{namespace="$namespace", '
    'scaletargetref_kind="Deployment", scaletargetref_name="$deployment"}'
)


class Layout:
    """Places panels left to right on Grafana's 24-column grid."""

    def __init__(self):
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def pos(self, w, h):
        if self.x + w > 24:
            self.newline()
        p = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return p

    def newline(self):
        self.y += self.row_h
        self.x = 0
        self.row_h = 0

    def id(self):
        i = self.next_id
        self.next_id += 1
        return i


def target(expr, legend="__auto", ref="A", instant=False, fmt=None):
    t = {"datasource": DS, "editorMode": "code", "expr": expr, "legendFormat": legend, "refId": ref}
    if instant:
        t["instant"] = True
        t["range"] = False
    if fmt:
        t["format"] = fmt
    return t


def targets(*pairs, **kw):
    """pairs of (expr, legend); refIds A, B, C..."""
    return [target(e, legend, chr(ord("A") + i), **kw) for i, (e, legend) in enumerate(pairs)]


def thresholds(*steps, base="green"):
    s = [{"color": base, "value": None}]
    for value, color in steps:
        s.append({"color": color, "value": value})
    return {"mode": "absolute", "steps": s}


def timeseries(L, title, description, tgts, unit="short", w=12, h=8, stack=False, min0=True, steps=()):
    custom = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 10,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
    }
    defaults = {"unit": unit, "custom": custom, "thresholds": thresholds(*steps)}
    if min0:
        defaults["min"] = 0
    return {
        "id": L.id(),
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": L.pos(w, h),
        "targets": tgts,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"calcs": ["mean", "max"], "displayMode": "table", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(L, title, description, tgts, unit="short", w=6, h=4, steps=(), decimals=None, graph=True, base="green"):
    defaults = {"unit": unit, "thresholds": thresholds(*steps, base=base), "color": {"mode": "thresholds"}}
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "id": L.id(),
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": L.pos(w, h),
        "targets": tgts,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "colorMode": "value",
            "graphMode": "area" if graph else "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "percentChangeColorMode": "standard",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showPercentChange": False,
            "textMode": "auto",
            "wideLayout": True,
        },
    }


def table(L, title, description, tgts, w=24, h=8):
    return {
        "id": L.id(),
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": L.pos(w, h),
        "targets": tgts,
        "fieldConfig": {
            "defaults": {"custom": {"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False}},
            "overrides": [],
        },
        "options": {"frameIndex": 0, "showHeader": True, "cellHeight": "sm"},
        "transformations": [
            {"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True, "__name__": True}}}
        ],
    }


def state_timeline(L, title, description, tgts, w=24, h=8, texts=("ok", "firing")):
    """Series valued 0 (good, green) or 1 (bad, red), shown as `texts`."""
    return {
        "id": L.id(),
        "type": "state-timeline",
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": L.pos(w, h),
        "targets": tgts,
        "fieldConfig": {
            "defaults": {
                "custom": {"fillOpacity": 80, "lineWidth": 0},
                "color": {"mode": "thresholds"},
                "thresholds": thresholds((1, "red")),
                "mappings": [
                    {
                        "type": "value",
                        "options": {"0": {"text": texts[0], "color": "green"}, "1": {"text": texts[1], "color": "red"}},
                    }
                ],
            },
            "overrides": [],
        },
        "options": {
            "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": False},
            "tooltip": {"mode": "single", "sort": "none"},
            "rowHeight": 0.9,
            "showValue": "never",
            "mergeValues": True,
        },
    }


def row(L, title):
    L.newline()
    r = {
        "id": L.id(),
        "type": "row",
        "title": title,
        "collapsed": False,
        "panels": [],
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": L.y},
    }
    L.y += 1
    return r


def quantiles(metric, by, legend_by, sel=SEL, qs=(0.5, 0.95, 0.99)):
    """histogram_quantile targets for a _bucket metric, one per quantile."""
    by_clause = ", ".join(by + ["le"])
    out = []
    for q in qs:
        label = f"p{int(q * 100)}"
        legend = f"{label} {legend_by}".strip()
        out.append((f"histogram_quantile({q}, sum by ({by_clause}) (rate({metric}_bucket{{{sel}}}[{RI}])))", legend))
    return targets(*out)


def templating(pod_source):
    """datasource, namespace, deployment and pod variables. pod_source: the series whose `pod`
    label lists the Conclave pods. Nothing names the release: the deployment is read from the pod
    names, and "All" pods means every listed pod of that deployment (no catch-all regex, which
    would also match other pods of the namespace in `up` or cAdvisor series)."""
    return {
        "list": [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "hide": 0,
                "refresh": 1,
                "regex": "",
                "includeAll": False,
                "multi": False,
                "skipUrlSync": False,
                "options": [],
            },
            {
                "name": "namespace",
                "label": "Namespace",
                "type": "query",
                "datasource": DS,
                "query": {"query": "label_values(conclave_http_requests_total, namespace)", "refId": "namespace"},
                "refresh": 2,
                "sort": 1,
                "hide": 0,
                "includeAll": False,
                "multi": False,
                "regex": "",
                "skipUrlSync": False,
                "options": [],
            },
            {
                "name": "deployment",
                "label": "Deployment",
                "type": "query",
                "datasource": DS,
                "query": {"query": f'label_values({pod_source}{{namespace="$namespace"}}, pod)', "refId": "deployment"},
                "refresh": 2,
                "sort": 1,
                "hide": 0,
                "includeAll": False,
                "multi": False,
                "regex": f"/^(.+)-{POD_OF_DEPLOYMENT}$/",
                "skipUrlSync": False,
                "options": [],
            },
            {
                "name": "pod",
                "label": "Pod",
                "type": "query",
                "datasource": DS,
                "query": {
                    "query": f'label_values({pod_source}{{namespace="$namespace", '
                    f'pod=~"$deployment-{POD_OF_DEPLOYMENT}"}}, pod)',
                    "refId": "pod",
                },
                "refresh": 2,
                "sort": 1,
                "hide": 0,
                "includeAll": True,
                "multi": True,
                "current": {"text": ["All"], "value": ["$__all"]},
                "regex": "",
                "skipUrlSync": False,
                "options": [],
            },
        ]
    }


def dashboard(
    uid, title, description, panels, pod_source="conclave_http_requests_total", refresh="30s", time_from="now-3h"
):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["conclave"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": refresh,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                    "target": {"limit": 100, "matchAny": False, "tags": [], "type": "dashboard"},
                }
            ]
        },
        "links": [
            {
                "title": "Conclave dashboards",
                "type": "dashboards",
                "tags": ["conclave"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "icon": "external link",
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            }
        ],
        "templating": templating(pod_source),
        "panels": panels,
    }
