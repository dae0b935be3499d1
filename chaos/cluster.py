"""Real `conclave` processes in cluster mode, each reaching MongoDB, Redis and RabbitMQ through
its own TCP fault proxy, so the nemesis can cut one process off one dependency without touching
the machine's shared servers (the approach of tests/common/cluster.rs and tests/common/proxy.rs).
"""

import os
import signal
import socket
import struct
import subprocess
import threading
import time
from urllib.parse import urlsplit

import requests

JWT_SECRET = "chaos-test-secret-chaos-test-secret-chaos"
KEYS = "k1:000102030405060708090a0b0c0d0e0f"
PARTITIONS = 4
# The broker notices a silent client after about two missed heartbeats: SIGSTOP pauses are drawn
# both shorter and longer than that.
AMQP_HEARTBEAT = 5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rst(sock):
    """Closes with a TCP reset rather than a FIN: a connection reset, as a crash or a firewall."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class Proxy:
    """A TCP proxy on a loopback port in front of `target` (host, port).

    - `down()`: refuses new connections and resets the open ones (the server is gone);
    - `hold()`: accepts, but passes no byte either way until `up()` (a blackholed network: the
      client sees silence, not an error);
    - `reset()`: resets every open connection once, mid-whatever it was doing;
    - `delay(s)`: holds each chunk `s` seconds before passing it on;
    - `up()`: back to normal, on the same port.
    """

    def __init__(self, name, target):
        self.name = name
        self.target = target
        self.port = free_port()
        self.lock = threading.Lock()
        self.listener = None
        self.conns = set()
        self.held = False
        self.lag = 0.0
        self.closed = False
        self.up()

    def addr(self):
        return f"127.0.0.1:{self.port}"

    def up(self):
        with self.lock:
            self.held = False
            self.lag = 0.0
            if self.listener is not None:
                return
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            deadline = time.time() + 10
            while True:
                try:
                    s.bind(("127.0.0.1", self.port))
                    break
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.05)
            s.listen(256)
            self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def down(self):
        with self.lock:
            if self.listener is not None:
                try:
                    self.listener.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self.listener.close()
                self.listener = None
        self.reset()

    def hold(self):
        with self.lock:
            self.held = True

    def delay(self, seconds):
        with self.lock:
            self.lag = seconds

    def reset(self):
        with self.lock:
            conns, self.conns = self.conns, set()
        for pair in conns:
            for s in pair:
                _rst(s)

    def close(self):
        self.closed = True
        self.down()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _rst(client)
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.settimeout(0.2)
            pair = (client, server)
            with self.lock:
                self.conns.add(pair)
            threading.Thread(target=self._pump, args=(pair, client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(pair, server, client), daemon=True).start()

    def _pump(self, pair, src, dst):
        while True:
            with self.lock:
                alive = pair in self.conns
                held, lag = self.held, self.lag
            if not alive:
                return
            if held:
                time.sleep(0.05)
                continue
            try:
                data = src.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                data = b""
            if not data:
                self._drop(pair)
                return
            if lag:
                time.sleep(lag)
            try:
                dst.sendall(data)
            except OSError:
                self._drop(pair)
                return

    def _drop(self, pair):
        with self.lock:
            if pair not in self.conns:
                return
            self.conns.discard(pair)
        for s in pair:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def host_port(url, default):
    u = urlsplit(url)
    return (u.hostname or "127.0.0.1", u.port or default)


class Node:
    def __init__(self, i, port, proxies):
        self.i = i
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.proxies = proxies  # {"mongo": Proxy, "redis": Proxy, "amqp": Proxy}
        self.proc = None
        self.paused = False


class Cluster:
    def __init__(self, binary, run_dir, n, mongo_uri, tag, cooldown):
        self.binary = binary
        self.run_dir = run_dir
        self.mongo_uri = mongo_uri
        self.db = f"conclave_{tag}"
        self.prefix = f"{tag}."
        self.cooldown = cooldown
        self.lock = threading.Lock()
        mongo = host_port(mongo_uri, 27017)
        self.nodes = []
        for i in range(n):
            proxies = {
                "mongo": Proxy(f"mongo{i}", mongo),
                "redis": Proxy(f"redis{i}", ("127.0.0.1", 6379)),
                "amqp": Proxy(f"amqp{i}", ("127.0.0.1", 5672)),
            }
            self.nodes.append(Node(i, free_port(), proxies))

    def env(self, node):
        p = node.proxies
        mongo = urlsplit(self.mongo_uri)._replace(netloc=p["mongo"].addr()).geturl()
        return {
            "PATH": os.environ.get("PATH", ""),
            "CONCLAVE_ENGINE": "cluster",
            "CONCLAVE_HTTP_ADDR": f"127.0.0.1:{node.port}",
            "CONCLAVE_MONGODB_URI": mongo,
            "CONCLAVE_MONGODB_DB": self.db,
            "CONCLAVE_CLUSTER_PREFIX": self.prefix,
            "CONCLAVE_AMQP_URL": f"amqp://guest:guest@{p['amqp'].addr()}/%2f?heartbeat={AMQP_HEARTBEAT}",
            "CONCLAVE_REDIS_URL": f"redis://{p['redis'].addr()}",
            "CONCLAVE_JWT_SECRET": JWT_SECRET,
            "CONCLAVE_ENCRYPTION_KEYS": KEYS,
            "CONCLAVE_DATA_DIR": self.run_dir,
            "CONCLAVE_PARTITIONS": str(PARTITIONS),
            "CONCLAVE_ARGON2_MEMORY_KIB": "64",
            "CONCLAVE_ARGON2_ITERATIONS": "1",
            "CONCLAVE_LOGIN_MAX_PER_ADDRESS": "100000",
            "CONCLAVE_LOGIN_MAX_PER_ACCOUNT": "100000",
            "CONCLAVE_REGISTER_MAX_PER_ADDRESS": "100000",
            "CONCLAVE_MESSAGES_PER_USER": "100000",
            "CONCLAVE_GROUP_ACTIONS_PER_USER": "100000",
            "CONCLAVE_HISTORY_PER_USER": "100000",
            "CONCLAVE_MAX_SOCKETS_PER_USER": "10000",
            "CONCLAVE_SOCKET_EVENTS_PER_SEC": "10000",
            "CONCLAVE_REJOIN_COOLDOWN": f"{self.cooldown}s",
            "CONCLAVE_ACCESS_TOKEN_TTL": "24h",
            "CONCLAVE_SHUTDOWN_GRACE": "2s",
            "RUST_LOG": "warn,conclave=info",
        }

    def spawn(self, i):
        node = self.nodes[i]
        log = open(os.path.join(self.run_dir, f"node{i}.log"), "ab")
        node.proc = subprocess.Popen(
            [self.binary, "serve"], env=self.env(node), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        node.paused = False
        log.close()

    def start(self):
        for i in range(len(self.nodes)):
            self.spawn(i)
        self.wait_all_ready(90)

    def ready(self, i):
        try:
            r = requests.get(f"{self.nodes[i].base}/readyz", timeout=2)
            return r.status_code == 200 and r.json().get("status") == "ready"
        except (requests.RequestException, ValueError):
            return False

    def wait_all_ready(self, patience):
        deadline = time.time() + patience
        for i in range(len(self.nodes)):
            while not self.ready(i):
                if time.time() > deadline:
                    raise RuntimeError(f"node {i} not ready in {patience} s; see {self.run_dir}/node{i}.log")
                time.sleep(0.3)

    def kill9(self, i):
        node = self.nodes[i]
        if node.proc is not None:
            node.proc.kill()
            node.proc.wait()
            node.proc = None

    def pause(self, i, on):
        node = self.nodes[i]
        if node.proc is not None:
            os.kill(node.proc.pid, signal.SIGSTOP if on else signal.SIGCONT)
            node.paused = on

    def heal(self):
        """Every fault undone: proxies up, paused processes continued, dead ones restarted."""
        for i, node in enumerate(self.nodes):
            for p in node.proxies.values():
                p.up()
            if node.paused:
                self.pause(i, False)
            if node.proc is None or node.proc.poll() is not None:
                self.spawn(i)

    def stop(self):
        for i, node in enumerate(self.nodes):
            if node.paused:
                self.pause(i, False)
            self.kill9(i)
            for p in node.proxies.values():
                p.close()
        # This run's queues; best effort (the broker may be the one thing that is down).
        names = [f"{self.prefix}conclave.messages.p{p}" for p in range(PARTITIONS)]
        for q in names + [f"{self.prefix}conclave.messages.dead"]:
            subprocess.run(["rabbitmqctl", "-q", "delete_queue", q], capture_output=True, timeout=30, check=False)
        # rabbitmqctl has no delete_exchange (rabbitmqadmin needs the management plugin).
        for e in ("conclave.messages", "conclave.messages.dlx"):
            name = f'rabbit_misc:r(<<"/">>, exchange, <<"{self.prefix}{e}">>)'
            expr = f'rabbit_exchange:delete({name}, false, <<"chaos">>).'
            subprocess.run(["rabbitmqctl", "-q", "eval", expr], capture_output=True, timeout=30, check=False)
