"""A short workload against a standalone server, touching every metric it can produce without
faults: registrations and logins (one failed), a refresh token replayed, groups, a 4xx, a
Socket.IO v5 session over Engine.IO v4 long-polling (plus one with a bad token), messages
(including a repeated and a raced client_msg_id), the message rate limit, bans and the audit log.

Usage: live_workload.py BASE_URL
"""

import json
import sys
import threading
import time
import urllib.error
import urllib.request

BASE = ""  # the server's URL, from the command line


def call(method, path, body=None, token=None, raw=None, ctype="application/json", timeout=10):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", ctype)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, TimeoutError, OSError) as e:  # a long-poll with nothing queued
        return 0, str(e)


def j(s):
    try:
        return json.loads(s)
    except ValueError:
        return {}


def token_of(body):
    d = j(body)
    return d.get("access_token") or d.get("accessToken") or (d.get("tokens") or {}).get("access_token")


# Socket.IO v5 over Engine.IO v4 long-polling.
def eio(method, sid=None, raw=None):
    q = "/socket.io/?EIO=4&transport=polling" + (f"&sid={sid}" if sid else "")
    return call(method, q, raw=raw, ctype="text/plain;charset=UTF-8", timeout=3)


def open_session():
    for _ in range(5):
        st, hs = eio("GET")
        if st == 200 and "{" in hs:
            return json.loads(hs[hs.index("{") :])["sid"]
        time.sleep(0.2)
    return None


def await_connect_ack(sid):
    # Events sent before the namespace CONNECT is acknowledged are dropped by the server, so
    # wait for the ack ("40{...}"); a long-poll may bring a ping ("2") first: answer it.
    for _ in range(10):
        st, body = eio("GET", sid)
        if st == 200 and "40{" in body:
            return True
        if st == 200 and "2" in body.split("\x1e"):
            eio("POST", sid, b"3")
    return False


def main():
    global BASE
    BASE = sys.argv[1]
    users = {}
    for u in ("alice_obs", "bob_obs"):
        creds = {"username": u, "password": "correct horse battery staple"}
        st, b = call("POST", "/api/v1/auth/register", creds)
        assert st in (200, 201), (st, b)
        st, b = call("POST", "/api/v1/auth/login", creds)
        assert st == 200, (st, b)
        users[u] = token_of(b)
        assert users[u], b
        refresh = j(b).get("refresh_token")
    # A refresh token rotated once and then replayed: reuse detected, the family revoked.
    st, b = call("POST", "/api/v1/auth/refresh", {"refresh_token": refresh})
    assert st == 200, (st, b)
    st, b = call("POST", "/api/v1/auth/refresh", {"refresh_token": refresh})
    assert st == 401, (st, b)
    call("POST", "/api/v1/auth/login", {"username": "alice_obs", "password": "wrong password here"})
    a, b_ = users["alice_obs"], users["bob_obs"]
    st, body = call("POST", "/api/v1/groups", {"name": "observability", "visibility": "open"}, a)
    assert st in (200, 201), (st, body)
    gid = j(body).get("id")
    call("POST", f"/api/v1/groups/{gid}/join", None, b_)
    call("GET", f"/api/v1/groups/{gid}/members", None, a)
    call("GET", "/api/v1/groups/nope/members", None, a)  # a 4xx

    # A Socket.IO session as bob.
    sid = open_session()
    assert sid, "no Engine.IO session"
    eio("POST", sid, ("40" + json.dumps({"token": b_})).encode())
    assert await_connect_ack(sid), "no CONNECT ack"
    eio("POST", sid, ('42["typing",' + json.dumps({"group_id": gid}) + "]").encode())
    # A socket with a bad token: an auth failure.
    sid2 = open_session()
    if sid2:
        eio("POST", sid2, b'40{"token":"not-a-token"}')
        eio("GET", sid2)

    for i in range(5):
        st, body = call("POST", f"/api/v1/groups/{gid}/messages", {"client_msg_id": f"obs-{i}", "content": "hello"}, a)
    # the same client_msg_id again: answered from the store before the pipeline
    call("POST", f"/api/v1/groups/{gid}/messages", {"client_msg_id": "obs-0", "content": "hello"}, a)

    # concurrent retries of one client_msg_id race past that check: the pipeline counts a duplicate
    def send_dup(k):
        call("POST", f"/api/v1/groups/{gid}/messages", {"client_msg_id": f"race-{k}", "content": "hi"}, a)

    threads = [threading.Thread(target=send_dup, args=(k,)) for k in range(4) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    call("GET", f"/api/v1/groups/{gid}/messages", None, b_)
    # hit the message rate limit
    for i in range(60):
        st, _ = call("POST", f"/api/v1/groups/{gid}/messages", {"client_msg_id": f"burst-{i}", "content": "x"}, a)
        if st == 429:
            break
    call("POST", f"/api/v1/groups/{gid}/bans", {"user_id": "00000000-0000-0000-0000-000000000000"}, a)
    st, me = call("GET", "/api/v1/users/me", None, b_)
    st, b = call("POST", f"/api/v1/groups/{gid}/bans", {"user_id": j(me).get("id")}, a)
    assert st == 201, (st, b)
    st, b = call("GET", f"/api/v1/groups/{gid}/audit", None, a)  # flushes the audit buffer
    assert st == 200 and j(b).get("items"), (st, b)
    time.sleep(0.5)
    if sid:
        eio("GET", sid)  # collect pushed events
        eio("POST", sid, b"41")  # client disconnect
        eio("POST", sid, b"1")
    time.sleep(0.5)
    print("workload done")


if __name__ == "__main__":
    main()
