#!/usr/bin/env python3
"""System calls per stored message on the standalone engine, for two server binaries side by side.

Each binary runs under `strace -f -c` while many senders post messages at once over REST, into
several groups (so several partitions have batches at the same time). The table gives, per stored
message, the `fsync`/`fdatasync` (durability), `fcntl` (SQLite's POSIX locks), `pwrite64` and
`getrandom` calls of the whole process.

    loadtest/store-syscalls.py BASELINE_BIN CANDIDATE_BIN [--messages 4000] [--senders 32]
        [--groups 16]

Counts, not times: they hold on a busy machine. Needs strace and the Python `requests` package
(scripts/deps puts it in the project's venv).
"""

import argparse
import concurrent.futures
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import requests

CALLS = ("fsync", "fdatasync", "fcntl", "pwrite64", "getrandom")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(binary, messages, senders, groups):
    data = tempfile.mkdtemp(prefix="conclave-syscalls-")
    port = free_port()
    trace = os.path.join(data, "strace.txt")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "CONCLAVE_HTTP_ADDR": f"127.0.0.1:{port}",
        "CONCLAVE_DATA_DIR": data,
        "CONCLAVE_ARGON2_MEMORY_KIB": "64",
        "CONCLAVE_ARGON2_ITERATIONS": "1",
        "CONCLAVE_REGISTER_MAX_PER_ADDRESS": "100000",
        "CONCLAVE_LOGIN_MAX_PER_ADDRESS": "100000",
        "CONCLAVE_MESSAGES_PER_USER": "1000000",
        "CONCLAVE_GROUP_ACTIONS_PER_USER": "100000",
        "CONCLAVE_MAX_CONNECTIONS_PER_ADDRESS": "100000",
        "RUST_LOG": "warn",
    }
    log = open(os.path.join(data, "server.log"), "wb")
    proc = subprocess.Popen(
        ["strace", "-f", "-c", "-e", "trace=" + ",".join(CALLS), "-o", trace, binary],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        for _ in range(300):
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit(f"{binary}: not ready")
        http = requests.Session()

        def user(i):
            name = f"sys{i}_{port}"
            body = {"username": name, "password": f"a passphrase for {name}"}
            assert http.post(f"{base}/auth/register", json=body, timeout=10).status_code == 201
            r = http.post(f"{base}/auth/login", json=body, timeout=10)
            return r.json()["access_token"]

        tokens = [user(i) for i in range(senders)]
        gids = []
        for g in range(groups):
            owner = tokens[g % senders]
            r = http.post(
                f"{base}/groups",
                json={"name": f"g{g}", "visibility": "open"},
                headers={"authorization": f"Bearer {owner}"},
                timeout=10,
            )
            gids.append(r.json()["id"])
        for t in tokens:
            for g in gids:
                http.post(f"{base}/groups/{g}/join", json={}, headers={"authorization": f"Bearer {t}"}, timeout=10)

        per_sender = messages // senders

        def send(i):
            s = requests.Session()
            ok = 0
            for n in range(per_sender):
                g = gids[(i + n) % len(gids)]
                r = s.post(
                    f"{base}/groups/{g}/messages",
                    json={"content": f"message {n} from sender {i}"},
                    headers={"authorization": f"Bearer {tokens[i]}"},
                    timeout=30,
                )
                ok += r.status_code == 202
            return ok

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(senders) as pool:
            stored = sum(pool.map(send, range(senders)))
        elapsed = time.monotonic() - started
    finally:
        # The server, not strace: strace writes its summary once the traced process has ended.
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        for pid in children:
            os.kill(int(pid), signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    counts = {c: 0 for c in CALLS}
    with open(trace) as f:
        for line in f:
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
            if m and m.group(2) in counts:
                counts[m.group(2)] = int(m.group(1))
    shutil.rmtree(data, ignore_errors=True)
    return stored, elapsed, counts


def main():
    p = argparse.ArgumentParser()
    p.add_argument("baseline")
    p.add_argument("candidate")
    p.add_argument("--messages", type=int, default=4000)
    p.add_argument("--senders", type=int, default=32)
    p.add_argument("--groups", type=int, default=16)
    a = p.parse_args()
    rows = []
    for label, binary in (("baseline", a.baseline), ("candidate", a.candidate)):
        stored, elapsed, counts = run(binary, a.messages, a.senders, a.groups)
        rows.append((label, stored, elapsed, counts))
    print(f"{a.messages} messages from {a.senders} senders into {a.groups} groups, over REST (whole process)")
    head = ["binary", "stored", "msg/s"] + [f"{c}/msg" for c in CALLS]
    print(" | ".join(head))
    for label, stored, elapsed, counts in rows:
        per = [f"{counts[c] / max(stored, 1):.3f}" for c in CALLS]
        print(" | ".join([label, str(stored), f"{stored / elapsed:.0f}"] + per))


if __name__ == "__main__":
    main()
