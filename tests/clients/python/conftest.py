"""Starts a Conclave server binary (built beforehand; nothing is built here) on a free loopback
port with a temporary data directory and cheap password hashing, for the whole session."""

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[3]


def binary_path() -> Path:
    if os.environ.get("CONCLAVE_BIN"):
        return Path(os.environ["CONCLAVE_BIN"]).resolve()
    target = Path(os.environ.get("CARGO_TARGET_DIR", "target"))
    if not target.is_absolute():
        target = REPO / target
    return target / "debug" / "conclave"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server():
    binary = binary_path()
    if not binary.exists():
        pytest.fail(f"no server binary at {binary}: build it (cargo build) or set CONCLAVE_BIN")
    data_dir = tempfile.mkdtemp(prefix="conclave-py-")
    port = free_port()
    log = open(Path(data_dir) / "server.log", "w+b")
    env = {
        **os.environ,
        "CONCLAVE_HTTP_ADDR": f"127.0.0.1:{port}",
        "CONCLAVE_DATA_DIR": data_dir,
        "CONCLAVE_ARGON2_MEMORY_KIB": "64",
        "CONCLAVE_ARGON2_ITERATIONS": "1",
        "CONCLAVE_LOGIN_MAX_PER_ADDRESS": "100000",
        "CONCLAVE_REGISTER_MAX_PER_ADDRESS": "100000",
        "CONCLAVE_MESSAGES_PER_USER": "100000",
        "CONCLAVE_MESSAGES_PER_GROUP": "100000",
        "CONCLAVE_GROUP_ACTIONS_PER_USER": "100000",
        "CONCLAVE_HISTORY_PER_USER": "100000",
        "CONCLAVE_MAX_SOCKETS_PER_USER": "10000",
        "CONCLAVE_SHUTDOWN_GRACE": "1s",
        "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
    }
    proc = subprocess.Popen([str(binary), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def server_log() -> str:
        log.flush()
        log.seek(0)
        return log.read().decode(errors="replace")[-8000:]

    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited early ({proc.returncode}):\n{server_log()}")
        try:
            if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server not ready in 30 s:\n{server_log()}")
        time.sleep(0.05)
    try:
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


class Api:
    """A tiny JSON client for the REST API."""

    _n = itertools.count()

    def __init__(self, base: str):
        self.base = base
        self.http = requests.Session()

    def call(self, method, path, token=None, body=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = self.http.request(method, f"{self.base}/api/v1{path}", json=body, headers=headers, timeout=10)
        return r.status_code, (r.json() if r.content else None)

    def user(self) -> dict:
        name = f"py{os.getpid() % 10000}_{int(time.time()) % 100000}_{next(self._n)}"
        password = f"pw-{name}-secret"
        s, reg = self.call("POST", "/auth/register", body={"username": name, "password": password})
        assert s == 201, reg
        s, tok = self.call("POST", "/auth/login", body={"username": name, "password": password})
        assert s == 200, tok
        return {"id": reg["id"], "username": name, "token": tok["access_token"]}

    def group(self, owner, visibility) -> str:
        s, g = self.call("POST", "/groups", owner["token"], {"name": f"g {next(self._n)}", "visibility": visibility})
        assert s == 201, g
        return g["id"]

    def add_member(self, group, owner, user):
        s, b = self.call("POST", f"/groups/{group}/join", user["token"], {})
        if s == 202:
            s, b = self.call("POST", f"/groups/{group}/join-requests/{user['id']}/approve", owner["token"], {})
        assert s == 200, b

    def messages(self, group, user, query=""):
        s, page = self.call("GET", f"/groups/{group}/messages?limit=100{query}", user["token"])
        assert s == 200, page
        return page["items"]


@pytest.fixture(scope="session")
def api(server):
    return Api(server)
