"""Values of the `route` label matched in queries and alerts must be route templates the server
registers (the `path = "..."` of src/http/routes/*.rs under /api/v1, and the ops routes)."""

import glob
import os
import re

OPS_ROUTES = {"/healthz", "/readyz", "/metrics"}


def server_routes(root):
    api_paths = set()
    for path in glob.glob(os.path.join(root, "src/http/routes/*.rs")):
        with open(path) as f:
            api_paths |= set(re.findall(r'path = "([^"]+)"', f.read()))
    return {p if p in OPS_ROUTES else "/api/v1" + p for p in api_paths}


def check_route_labels(root, exprs, errors):
    """exprs: (where, PromQL expression) pairs. Appends to errors each route value (a regex
    matcher's alternatives one by one) that is not a route template."""
    routes = server_routes(root)
    if "/api/v1/auth/register" not in routes:
        errors.append("could not read the route templates from src/http/routes (nest prefix changed?)")
    for where, e in exprs:
        for op, val in re.findall(r'\broute\s*(=~|!~|=|!=)\s*"([^"]*)"', e):
            for v in val.split("|") if "~" in op else [val]:
                if v not in routes:
                    errors.append(f"{where}: route {v!r} is not a route template of the server")
