"""The workload: users who send (with `client_msg_id`, retrying like a real client), join, leave,
ask, approve, ban, unban, remove and transfer ownership through random processes, and who stay
connected over Socket.IO, reconnecting (to any process) and catching up with `group:sync`.
Every operation and every live `message:new` goes into the history."""

import itertools
import json
import queue
import random
import threading
import time

import requests
import socketio

TIMEOUT = 5  # a client's patience for one request or ack: beyond it the outcome is unknown
DEFINITE = (400, 401, 403, 404, 409, 413, 422)  # refusals that mean "nothing was done"


class History:
    """Thread-safe, append-only, written to a JSONL file as it grows."""

    def __init__(self, path):
        self.t0 = time.time()
        self.lock = threading.Lock()
        self.events = []
        self.file = open(path, "w")
        self.ops = itertools.count(1)

    def now(self):
        return round(time.time() - self.t0, 4)

    def add(self, ev):
        with self.lock:
            ev["t"] = self.now()
            self.events.append(ev)
            self.file.write(json.dumps(ev) + "\n")
        return ev

    def invoke(self, f, actor, group, **kw):
        n = next(self.ops)
        self.add({"type": "invoke", "op": n, "f": f, "actor": actor, "group": group, **kw})
        return n

    def end(self, n, outcome, f, actor, group, **kw):
        self.add({"type": outcome, "op": n, "f": f, "actor": actor, "group": group, **kw})

    def close(self):
        with self.lock:
            self.file.close()


class Api:
    def __init__(self, cluster, rng):
        self.cluster = cluster
        self.rng = rng
        self.http = requests.Session()
        self.last_node = None  # the process the last request went to, for the history

    def base(self):
        node = self.rng.choice(self.cluster.nodes)
        self.last_node = node.i
        return node.base

    def call(self, method, path, token=None, body=None, base=None):
        """(status, body); status None when the request itself failed or timed out."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            r = self.http.request(
                method, f"{base or self.base()}/api/v1{path}", json=body, headers=headers, timeout=TIMEOUT
            )
        except requests.RequestException as e:
            return None, {"error": type(e).__name__}
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, {}

    def must(self, method, path, token=None, body=None, want=(200, 201)):
        """Setup calls: retried until they succeed (setup runs before any fault)."""
        for _ in range(60):
            s, b = self.call(method, path, token, body)
            if s in want:
                return b
            time.sleep(0.5)
        raise RuntimeError(f"{method} {path}: {s} {b}")


def outcome_of(statuses, ok):
    """One op's outcome over its attempts: ok if one succeeded, fail if every attempt was a definite
    refusal, unknown otherwise (a timeout or a 5xx may have done it)."""
    if any(s in ok for s in statuses):
        return "ok"
    if statuses and all(s in DEFINITE for s in statuses):
        return "fail"
    return "info"


class User:
    def __init__(self, name, world, seed):
        self.name = name
        self.world = world
        self.rng = random.Random(seed)
        self.api = Api(world.cluster, self.rng)
        self.id = None
        self.token = None
        self.groups = set()  # what this client believes it is a member of
        self.sent = 0
        self.sock = None

    def register(self):
        creds = {"username": f"{self.world.tag}_{self.name}", "password": "chaos-password"}
        self.id = self.api.must("POST", "/auth/register", body=creds)["id"]
        self.token = self.api.must("POST", "/auth/login", body=creds, want=(200,))["access_token"]

    # --- operations ---------------------------------------------------------------------------

    def op(self, f, group, method, path, ok, body=None, attempts=1, target=None):
        h = self.world.history
        extra = {"target": target} if target else {}
        n = h.invoke(f, self.id, group, **extra)
        statuses, last = [], {}
        for a in range(attempts):
            s, last = self.api.call(method, path, self.token, body)
            statuses.append(s)
            if s in ok or s in DEFINITE:
                break
            time.sleep(min(2.0, 0.2 * (a + 1)) + self.rng.random() * 0.2)
        out = outcome_of(statuses, ok)
        detail = {"status": statuses[-1], "node": self.api.last_node}
        if isinstance(last, dict) and last.get("code"):
            detail["code"] = last["code"]
        if f == "join" and out == "ok":
            detail["status"] = last.get("status")  # member, or pending for a private group
        h.end(n, out, f, self.id, group, **extra, **detail)
        return out, last

    def send(self, g):
        self.sent += 1
        cmid = f"{self.name}-{self.sent}"
        h = self.world.history
        n = h.invoke("send", self.id, g, cmid=cmid)
        body = {"content": f"{self.name} says {self.sent}", "client_msg_id": cmid}
        statuses, mid, via = [], None, None
        for a in range(8):
            sock = self.sock
            if sock is not None and self.rng.random() < 0.4:
                s, mid = sock.send(g, body)
                via = sock.conn
            else:
                s, b = self.api.call("POST", f"/groups/{g}/messages", self.token, body)
                mid = b.get("id") if s == 202 else None
                via = self.api.last_node
            statuses.append(s)
            if s == 202 or s in DEFINITE:
                break
            time.sleep(min(2.0, 0.2 * (a + 1)) + self.rng.random() * 0.3)
        out = outcome_of(statuses, (202,))
        extra = {"id": mid} if out == "ok" else {"status": statuses[-1]}
        extra["via"] = via  # the process (or socket connection) of the last attempt
        h.end(n, out, "send", self.id, g, cmid=cmid, **extra)
        if statuses[-1] in (403, 404):
            self.groups.discard(g)

    def join(self, g):
        out, b = self.op("join", g, "POST", f"/groups/{g}/join", (200, 202))
        if out == "ok" and b.get("status") == "member":
            self.groups.add(g)

    def leave(self, g):
        # A client does not offer its owner "leave" (it would be refused while others remain, and
        # would delete the group when they are alone, ending the run's use of it).
        s, grp = self.api.call("GET", f"/groups/{g}", self.token)
        if s != 200 or grp.get("owner_id") == self.id:
            return
        out, _ = self.op("leave", g, "POST", f"/groups/{g}/leave", (204,))
        if out == "ok":
            self.groups.discard(g)

    def moderate(self, g):
        """As the owner: approve a request, ban, unban, remove or hand the group on."""
        s, grp = self.api.call("GET", f"/groups/{g}", self.token)
        if s != 200 or grp.get("owner_id") != self.id:
            return
        s, page = self.api.call("GET", f"/groups/{g}/members?limit=100", self.token)
        others = [m["user_id"] for m in page.get("items", [])] if s == 200 else []
        others = [u for u in others if u != self.id]
        r = self.rng.random()
        if r < 0.5:
            s, reqs = self.api.call("GET", f"/groups/{g}/join-requests?limit=100", self.token)
            if s == 200 and reqs.get("items"):
                u = self.rng.choice(reqs["items"])["user_id"]
                self.op("approve", g, "POST", f"/groups/{g}/join-requests/{u}/approve", (200,), target=u)
        elif r < 0.62 and others:
            u = self.rng.choice(others)
            self.op("ban", g, "POST", f"/groups/{g}/bans", (201,), body={"user_id": u}, attempts=4, target=u)
        elif r < 0.78:
            s, bans = self.api.call("GET", f"/groups/{g}/bans?limit=100", self.token)
            if s == 200 and bans.get("items"):
                u = self.rng.choice(bans["items"])["user_id"]
                self.op("unban", g, "DELETE", f"/groups/{g}/bans/{u}", (204,), target=u)
        elif r < 0.9 and others:
            u = self.rng.choice(others)
            self.op("remove", g, "DELETE", f"/groups/{g}/members/{u}", (204,), attempts=4, target=u)
        elif others:
            u = self.rng.choice(others)
            self.op(
                "transfer", g, "POST", f"/groups/{g}/transfer-ownership", (200,), body={"new_owner_id": u}, target=u
            )

    def refresh(self):
        s, page = self.api.call("GET", "/groups/mine?limit=100", self.token)
        if s == 200:
            self.groups = {x["id"] for x in page.get("items", [])} & set(self.world.groups)

    def run(self, stop):
        steps = 0
        while not stop.is_set():
            steps += 1
            if steps % 15 == 0:
                self.refresh()
            r = self.rng.random()
            all_groups = self.world.groups
            mine = sorted(self.groups)
            if r < 0.6 and mine:
                self.send(self.rng.choice(mine))
            elif r < 0.7:
                self.join(self.rng.choice(all_groups))
            elif r < 0.76 and mine:
                self.leave(self.rng.choice(mine))
            elif mine:
                self.moderate(self.rng.choice(mine))
            stop.wait(0.1 + self.rng.random() * 0.4)


def in_order_client():
    """A python-socketio client that hands events to us in the order they arrived: by default
    python-engineio runs each incoming message's handler on a thread of its own, so two
    `message:new` a moment apart can reach the handler swapped (seen as seq going backwards)."""
    sio = socketio.Client(reconnection=False)
    trigger = sio.eio._trigger_event

    def in_order(event, *args, **kwargs):
        if event == "message":
            kwargs["run_async"] = False
        return trigger(event, *args, **kwargs)

    sio.eio._trigger_event = in_order
    return sio


class Sock:
    """One user's Socket.IO presence: connects to a random process, records every live
    `message:new` with its connection, syncs after every (re)connect and on a gap."""

    def __init__(self, user, world, seed):
        self.user = user
        self.world = world
        self.rng = random.Random(seed)
        self.sio = None
        self.conn = None
        self.high = {}  # group -> highest seq seen, across connections
        self.todo = queue.Queue()
        self.conns = itertools.count(1)

    def send(self, g, body):
        sio = self.sio
        if sio is None:
            return None, None
        try:
            ack = sio.call("message:send", {"group_id": g, **body}, timeout=TIMEOUT)
        except Exception:  # timeouts and disconnects alike: the outcome is unknown
            return None, None
        if ack and ack.get("ok"):
            return 202, ack.get("id")
        code = (ack or {}).get("error", {}).get("code")
        return {"not_found": 404, "forbidden": 403, "banned": 403, "validation_failed": 422}.get(code, 503), None

    def _on_message(self, conn, m):
        g = m.get("group_id")
        self.world.history.add(
            {"type": "recv", "conn": conn, "user": self.user.id, "group": g, "id": m.get("id"), "seq": m.get("seq")}
        )
        if m.get("seq", 0) > self.high.get(g, 0) + 1:
            self.todo.put(("sync", g))
        self.high[g] = max(self.high.get(g, 0), m.get("seq", 0))

    def _on_removed(self, conn, d):
        h = self.world.history
        h.add(
            {"type": "removed", "conn": conn, "user": self.user.id, "group": d.get("group_id"), "why": d.get("reason")}
        )

    def _connect(self):
        node = self.rng.choice(self.world.cluster.nodes)
        conn = f"{self.user.name}#{next(self.conns)}@{node.i}"
        sio = in_order_client()
        sio.on("message:new", lambda m: self._on_message(conn, m))
        sio.on("disconnect", lambda *a: self.todo.put(("gone", conn)))
        sio.on(
            "group:removed",
            lambda d: self.world.history.add(
                {
                    "type": "removed",
                    "conn": conn,
                    "user": self.user.id,
                    "group": d.get("group_id"),
                    "reason": d.get("reason"),
                }
            ),
        )
        try:
            sio.connect(node.base, auth={"token": self.user.token}, transports=["websocket"], wait_timeout=TIMEOUT)
        except Exception:
            return False
        self.sio, self.conn = sio, conn
        self.user.sock = self
        self.world.history.add({"type": "connect", "conn": conn, "user": self.user.id})
        for g in self.world.groups:
            self.todo.put(("sync", g))
        return True

    def sync(self, g):
        after = self.high.get(g, 0)
        for _ in range(100):
            try:
                ack = self.sio.call("group:sync", {"group_id": g, "after_seq": after, "limit": 100}, timeout=TIMEOUT)
            except Exception:
                return
            if not ack or not ack.get("ok"):
                return
            items = ack.get("items", [])
            if not items:
                return
            after = items[-1]["seq"]
            self.high[g] = max(self.high.get(g, 0), after)

    def run(self, stop):
        while not stop.is_set():
            if self.sio is None and not self._connect():
                stop.wait(0.5)
                continue
            try:
                what, arg = self.todo.get(timeout=0.5)
            except queue.Empty:
                continue
            if what == "gone" and arg == self.conn:
                self.user.sock = None
                self.world.history.add({"type": "disconnect", "conn": self.conn, "user": self.user.id})
                try:
                    self.sio.disconnect()
                except Exception:
                    pass
                self.sio = self.conn = None
            elif what == "sync" and self.sio is not None:
                self.sync(arg)
        if self.sio is not None:
            self.user.sock = None
            try:
                self.sio.disconnect()
            except Exception:
                pass


def final_sync(world, user, groups):
    """A fresh connection's full `group:sync` of each group, from the start: the ids in order."""
    out = {}
    for node in world.cluster.nodes:
        sio = socketio.Client(reconnection=False)
        try:
            sio.connect(node.base, auth={"token": user.token}, transports=["websocket"], wait_timeout=TIMEOUT)
        except Exception:
            continue
        try:
            for g in groups:
                ids, after = [], 0
                while True:
                    ack = sio.call("group:sync", {"group_id": g, "after_seq": after, "limit": 100}, timeout=30)
                    items = ack.get("items", []) if ack and ack.get("ok") else []
                    if not items:
                        break
                    ids += [m["id"] for m in items]
                    after = items[-1]["seq"]
                out[g] = ids
            return out
        except Exception:
            continue
        finally:
            sio.disconnect()
    return out
