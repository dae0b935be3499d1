"""A real Prometheus scraping two standalone servers: K messages split unevenly over both, then
sum(conclave_messages_accepted_total) queried from Prometheus must reach K, with both targets
contributing.

Usage: check_prometheus_scrape.py NODE1_URL NODE2_URL PROMETHEUS_URL
"""

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

K1, K2 = 17, 13
K = K1 + K2


def call(base, method, path, body=None, token=None):
    req = urllib.request.Request(
        base + path, method=method, data=json.dumps(body).encode() if body is not None else None
    )
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def query(prom, q):
    url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=5) as r:
        res = json.load(r)["data"]["result"]
    return float(res[0]["value"][1]) if res else None


def main():
    n1, n2, prom = sys.argv[1:4]

    # Both targets up before the workload, so every increment is scraped from a known zero.
    deadline = time.time() + 30
    while query(prom, 'count(up{job="conclave"} == 1)') != 2:
        if time.time() > deadline:
            sys.exit("FAIL: Prometheus does not see both conclave targets up")
        time.sleep(0.5)

    for base, k in ((n1, K1), (n2, K2)):
        creds = {"username": "prom_check", "password": "correct horse battery staple"}
        st, _ = call(base, "POST", "/api/v1/auth/register", creds)
        assert st == 201, st
        st, tok = call(base, "POST", "/api/v1/auth/login", creds)
        assert st == 200, (st, tok)
        token = tok["access_token"]
        st, g = call(base, "POST", "/api/v1/groups", {"name": "scrape", "visibility": "open"}, token)
        assert st == 201, (st, g)
        for i in range(k):
            st, b = call(
                base,
                "POST",
                f"/api/v1/groups/{g['id']}/messages",
                {"content": f"m{i}", "client_msg_id": f"scrape-{i}"},
                token,
            )
            assert st == 202, (st, b)

    q = 'sum(conclave_messages_accepted_total{job="conclave"})'
    deadline = time.time() + 30
    got = None
    while time.time() < deadline:
        got = query(prom, q)
        if got == K:
            break
        time.sleep(0.5)
    per = query(prom, 'count(conclave_messages_accepted_total{job="conclave"} > 0)')
    print(f"prometheus: {q} = {got} (expected {K}; {per} targets contributed)")
    if got != K or per != 2:
        sys.exit(f"FAIL: Prometheus reports {got} accepted messages from {per} targets, expected {K} from 2")


if __name__ == "__main__":
    main()
