"""Metric and label names in PromQL expressions (dashboard queries, alert and recording rules),
found with regular expressions: enough for the expressions this project writes, which promtool
parses separately."""

import re

KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
    "unless", "bool", "offset", "inf", "nan", "atan2", "start", "end",
}  # fmt: skip


def labels_in(expr):
    """Metric name -> label names its selectors match on, in expr."""
    out = {}
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\{([^}]*)\}", e):
        out.setdefault(m.group(1), set()).update(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", m.group(2)))
    return out


def names_in(expr):
    """The metric names expr reads."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    e = re.sub(r"\{[^}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # ranges, subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)  # grafana variables
    out = set()
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word in KEYWORDS:
            continue
        out.add(word)
    return out


assert names_in('sum by (route, le) (rate(a_b_bucket{x="y"}[5m])) / on(pod) group_left(z) c or vector(0)') == {
    "a_b_bucket",
    "c",
}


def grafana_subst(expr):
    """expr with Grafana's variables replaced by values, so that promtool can parse it."""
    e = expr.replace("$__rate_interval", "1m").replace("$__range", "1h").replace("$__interval", "1m")
    return re.sub(r"\$\{?\w+\}?", "x", e)


class QueryUses:
    """Collects, over every expression given to use(): the metric names read (with where), the
    label names each selects on, and the Grafana expressions (variables substituted) for promtool.
    An expression with no metric name is an error."""

    def __init__(self, errors):
        self.errors = errors
        self.used = {}  # name -> places
        self.labels = {}  # name -> label names
        self.grafana_exprs = []  # (where, expr with Grafana variables substituted)

    def use(self, expr, where):
        lv = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", expr, re.S)
        if lv:
            expr = lv.group(1)
        if "$" in expr:
            self.grafana_exprs.append((where, grafana_subst(expr)))
        for name, labels in labels_in(expr).items():
            self.labels.setdefault(name, set()).update(labels)
        ns = names_in(expr)
        if not ns:
            self.errors.append(f"{where}: no metric name found in {expr!r}")
        for n in ns:
            self.used.setdefault(n, []).append(where)
