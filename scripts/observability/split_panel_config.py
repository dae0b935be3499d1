"""Splits each dashboard panel's plugin options and custom field config into one JSON file each,
grouped by panel type, so ajv can validate them against that panel plugin's schemas.

Usage: split_panel_config.py DASHBOARD_DIR OUT_DIR PANEL_TYPE...
Writes OUT_DIR/<type>/<dashboard>-<panel id>.options.json and .custom.json; fails on a panel type
not among PANEL_TYPE (no schema for it). Row panels have no plugin options and are skipped.
"""

import glob
import json
import os
import sys


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f)


def main():
    src, out, known = sys.argv[1], sys.argv[2], set(sys.argv[3:])
    for path in sorted(glob.glob(os.path.join(src, "*.json"))):
        with open(path) as f:
            d = json.load(f)
        for p in d.get("panels", []):
            t = p["type"]
            if t == "row":
                continue
            if t not in known:
                sys.exit(f"FAIL: {os.path.basename(path)} panel {p['id']}: panel type {t} has no schema here")
            base = os.path.join(out, t)
            os.makedirs(base, exist_ok=True)
            stem = f"{os.path.basename(path)[:-5]}-{p['id']}"
            write_json(os.path.join(base, stem + ".options.json"), p.get("options", {}))
            custom = p.get("fieldConfig", {}).get("defaults", {}).get("custom")
            if custom is not None:
                write_json(os.path.join(base, stem + ".custom.json"), custom)


if __name__ == "__main__":
    main()
