"""The official python-socketio client, unmodified, against a real Conclave server, over both
transports: websocket only, and HTTP long-polling only."""

import base64
import concurrent.futures
import json
import queue

import pytest
import socketio
from conftest import Api

WAIT = 10


class Conn:
    """A python-socketio client that records what it receives."""

    def __init__(self, server, transport, token):
        self.sio = socketio.Client(reconnection=False)
        self.events = queue.Queue()
        self.kept = []  # received but not yet asked for, in order
        for name in ("message:new", "group:removed", "group:member_joined", "group:member_left", "typing"):
            self.sio.on(name, lambda data, name=name: self.events.put((name, data)))
        auth = None if token is None else {"token": token}
        self.sio.connect(server, auth=auth, transports=[transport], wait_timeout=WAIT)
        assert self.sio.transport() == transport

    def call(self, event, data):
        return self.sio.call(event, data, timeout=WAIT)

    def next(self, name, pred=lambda _: True):
        """The next `name` event that satisfies `pred`; others are kept for `received`."""
        for i, (got, data) in enumerate(self.kept):
            if got == name and pred(data):
                return self.kept.pop(i)[1]
        while True:
            try:
                got, data = self.events.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"no {name} within {WAIT} s") from None
            if got == name and pred(data):
                return data
            self.kept.append((got, data))

    def received(self):
        """Everything received and not yet asked for, in order."""
        out, self.kept = self.kept, []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def close(self):
        self.sio.disconnect()


@pytest.fixture(params=["websocket", "polling"])
def connect(request, server):
    opened = []

    def make(token):
        c = Conn(server, request.param, token)
        opened.append(c)
        return c

    make.transport = request.param
    yield make
    for c in opened:
        c.close()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_bad_tokens_get_connect_error_unauthorized(server, api, transport):
    alice = api.user()
    payload = alice["token"].split(".")[1]
    none_header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=").decode()
    for token in (None, "garbage", f"{none_header}.{payload}.", alice["token"] + "x"):
        sio = socketio.Client(reconnection=False)
        errors = []
        # errors bound now: the handler belongs to this iteration's client only.
        sio.on("connect_error", lambda data=None, errors=errors: errors.append(data))
        with pytest.raises(socketio.exceptions.ConnectionError):
            sio.connect(
                server, auth=None if token is None else {"token": token}, transports=[transport], wait_timeout=WAIT
            )
        assert errors == [{"message": "unauthorized"}], (token, errors)
        assert not sio.connected
        sio.disconnect()


def test_send_ack_delivery_and_sync(api, connect):
    alice, bob = api.user(), api.user()
    g = api.group(alice, "private")
    api.add_member(g, alice, bob)
    a, b = connect(alice["token"]), connect(bob["token"])

    ack = a.call("message:send", {"group_id": g, "content": f"hello over {connect.transport}", "client_msg_id": "c-1"})
    assert ack["ok"] is True, ack
    [stored] = api.messages(g, alice)
    assert stored["id"] == ack["id"]
    assert a.next("message:new") == stored
    assert b.next("message:new") == stored

    bad = a.call("message:send", {"group_id": g, "content": "x" * 4097})
    assert bad["ok"] is False and bad["error"]["code"] == "validation_failed", bad

    b.close()
    for text in ("missed 1", "missed 2"):
        assert a.call("message:send", {"group_id": g, "content": text})["ok"] is True
    b2 = connect(bob["token"])
    sync = b2.call("group:sync", {"group_id": g, "after_seq": stored["seq"]})
    assert sync["ok"] is True, sync
    assert sync["items"] == api.messages(g, bob, f"&after_seq={stored['seq']}")
    assert [m["content"] for m in sync["items"]] == ["missed 1", "missed 2"]


def test_ban_sends_group_removed_and_no_further_messages(api, connect):
    alice, bob = api.user(), api.user()
    g = api.group(alice, "private")
    other = api.group(alice, "open")
    api.add_member(g, alice, bob)
    api.add_member(other, alice, bob)
    a, b = connect(alice["token"]), connect(bob["token"])

    s, body = api.call("POST", f"/groups/{g}/bans", alice["token"], {"user_id": bob["id"]})
    assert s == 201, body
    assert b.next("group:removed") == {"group_id": g, "reason": "banned"}

    ids = []
    for i in range(20):
        r = a.call("message:send", {"group_id": g, "content": f"after {i}"})
        assert r["ok"] is True, r
        ids.append(r["id"])
    a.next("message:new", lambda m: m["id"] == ids[-1])
    # A fence in a group bob is still in: it arrives after anything sent before it.
    assert a.call("message:send", {"group_id": other, "content": "fence"})["ok"] is True
    b.next("message:new", lambda m: m["group_id"] == other)
    leaked = [d for (n, d) in b.received() if n == "message:new" and d["group_id"] == g]
    assert leaked == []

    refused = b.call("message:send", {"group_id": g, "content": "hi"})
    assert refused["ok"] is False


def test_a_burst_reaches_a_long_polling_client_whole(server, api):
    """python-engineio refuses a polling response of more than 16 packets ("Too many packets in
    payload") and disconnects. 50 messages sent faster than the client polls must all arrive, over
    as many responses as it takes, with the client still connected."""
    alice, bob = api.user(), api.user()
    g = api.group(alice, "private")
    api.add_member(g, alice, bob)
    b = Conn(server, "polling", bob["token"])

    def send(i):
        s, body = Api(server).call("POST", f"/groups/{g}/messages", alice["token"], {"content": f"burst {i}"})
        assert s == 202, body

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(50)))
    got = sorted(b.next("message:new")["content"] for _ in range(50))
    assert got == sorted(f"burst {i}" for i in range(50))
    assert b.sio.connected
    b.close()
