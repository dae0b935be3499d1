"""Every metric the server records (read from src/, as server_metrics.py does) is present on a
fresh server's /metrics, before any workload: counters and gauges by name, histograms by their
_count series. Registration at zero on start-up (src/ops/metrics.rs, export_from_start) is what
makes dashboards show 0 instead of "No data" and lets rate() and absent() work from the start.
The conclave_http_* series are labelled by request; the readiness polls that precede the scrape
make them exist.

Usage: check_fresh_exposition.py ROOT METRICS_TXT
"""

import re
import sys

from server_metrics import recorded_metrics


def main():
    root, path = sys.argv[1], sys.argv[2]
    errors = []
    _, kinds = recorded_metrics(root, errors)
    with open(path) as f:
        text = f.read()
    series = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M))
    for name, kind in sorted(kinds.items()):
        wanted = name + "_count" if kind == "histogram" else name
        if wanted not in series:
            errors.append(f"{wanted}: not on a fresh server's /metrics (register it at start in src/ops/metrics.rs)")
    if errors:
        print("\n".join("FAIL: " + e for e in errors), file=sys.stderr)
        sys.exit(1)
    print(f"fresh server: all {len(kinds)} metrics the source records are exported before any workload")


if __name__ == "__main__":
    main()
