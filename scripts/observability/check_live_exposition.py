"""The metric names the dashboards and rules use (check_names.py's output) against a live
server's /metrics after the workload: each present with the type the source says, and every label
its selectors match on present on the live series. Series a standalone run cannot produce are
listed, checked against the source only.

Usage: check_live_exposition.py METRICS_TXT USED_NAMES USED_LABELS
"""

import re
import sys

# Every metric is exported from start (at zero), so a standalone run shows even the cluster-only
# and fault-path series; nothing is exempt any more.
NOT_IN_STANDALONE: set[str] = set()
RACE: set[str] = set()
# Labels added by the scrape, or histogram buckets.
TARGET_LABELS = {"namespace", "pod", "job", "instance", "le"}


def main():
    with open(sys.argv[1]) as f:
        text = f.read()
    with open(sys.argv[2]) as f:
        used = dict(line.split() for line in f if line.strip())
    with open(sys.argv[3]) as f:
        used_labels = f.readlines()
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)", text, re.M))
    series = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M))
    errors, skipped = [], []
    for name, kind in sorted(used.items()):
        if kind == "external":
            continue
        base = re.sub(r"_(bucket|sum|count)$", "", name) if kind == "histogram" else name
        if name in series:
            if types.get(base) not in (kind, None):
                errors.append(f"{name}: live type {types.get(base)}, source says {kind}")
        elif name in NOT_IN_STANDALONE:
            skipped.append(name)
        elif name in RACE:
            skipped.append(name + " (needs a race of retries; not produced this run)")
        else:
            errors.append(f"{name}: used by a dashboard or alert but absent from the live /metrics")
    # Label names in the selectors of the Conclave series used must exist on the live series.
    labels_live = {}
    for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", text, re.M):
        labels_live.setdefault(m.group(1), set()).update(re.findall(r'(\w+)="', m.group(2)))
    for line in used_labels:
        name, lbls = line.split(" ", 1)
        if name not in series:
            continue
        for label in lbls.split():
            if label not in TARGET_LABELS and label not in labels_live.get(name, set()):
                errors.append(
                    f"{name}: queries use label {label!r}, the live series have {sorted(labels_live.get(name, set()))}"
                )
    live_app = {n for n in series if n.startswith("conclave_")}
    print(
        f"live: {len(live_app)} conclave series names; used and seen: "
        f"{sum(1 for n, k in used.items() if k != 'external' and n in series)}"
    )
    if skipped:
        print(
            "not produced by a standalone run (cluster-only or fault paths), checked against the source only:\n  "
            + "\n  ".join(skipped)
        )
    if errors:
        print("\n".join("FAIL: " + e for e in errors), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
