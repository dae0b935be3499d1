"""The checker must catch what it is for: a recorded history that is valid passes, and the same
history with a planted lost message, duplicate, gap or post-ban delivery fails with that kind."""

import copy
import io

import checker


class H:
    """A small history builder: ops get numbers and times in order."""

    def __init__(self):
        self.events = [{"type": "config", "t": 0.0, "cooldown": 4}]
        self.t = 0.0
        self.n = 0

    def op(self, f, actor, group, outcome="ok", **kw):
        self.n += 1
        self.t += 0.1
        inv = {"type": "invoke", "t": self.t, "op": self.n, "f": f, "actor": actor, "group": group}
        inv.update({k: v for k, v in kw.items() if k in ("target", "cmid")})
        self.t += 0.1
        end = {"type": outcome, "t": self.t, "op": self.n, "f": f, "actor": actor, "group": group}
        end.update({k: v for k, v in kw.items() if k not in ("target", "cmid")})
        self.events += [inv, end]
        return self.n

    def recv(self, conn, user, group, mid, seq):
        self.t += 0.1
        self.events.append(
            {"type": "recv", "t": self.t, "conn": conn, "user": user, "group": group, "id": mid, "seq": seq}
        )


def recorded():
    """alice owns g; bob and carol send; carol is banned at the end. Everything holds."""
    h = H()
    h.op("join", "bob", "g", status="member")
    h.op("join", "carol", "g", status="member")
    msgs = []
    for i, who in enumerate(["bob", "carol", "bob", "bob"]):
        mid = f"m{i}"
        h.op("send", who, "g", cmid=f"{who}-{i}", id=mid)
        msgs.append({"id": mid, "seq": i + 1, "sender_id": who, "client_msg_id": f"{who}-{i}"})
        for u in ("alice", "bob", "carol"):
            h.recv(f"{u}#1", u, "g", mid, i + 1)
    # A timeout whose retry was accepted: stored once.
    h.op("send", "bob", "g", outcome="info", cmid="bob-9", error="timeout")
    h.op("send", "bob", "g", cmid="bob-9", id="m9")
    msgs.append({"id": "m9", "seq": 5, "sender_id": "bob", "client_msg_id": "bob-9"})
    h.recv("bob#1", "bob", "g", "m9", 5)
    # carol sends, is banned before it is stored: discarded by design, not lost.
    h.op("send", "carol", "g", cmid="carol-7", id="m7")
    h.op("ban", "alice", "g", target="carol", status=201)
    h.op("send", "bob", "g", cmid="bob-10", id="m10")
    msgs.append({"id": "m10", "seq": 6, "sender_id": "bob", "client_msg_id": "bob-10"})
    h.recv("bob#1", "bob", "g", "m10", 6)
    ids = [m["id"] for m in msgs]
    final = {
        "groups": {
            "g": {
                "visibility": "open",
                "max_members": 10,
                "owner_id": "alice",
                "members": [{"user_id": "alice", "role": "owner"}, {"user_id": "bob", "role": "member"}],
                "bans": ["carol"],
                "messages": msgs,
            }
        },
        "final_sync": {"alice": {"g": ids}, "bob": {"g": ids}},
    }
    return h, final


def kinds(h, final):
    return {b["kind"] for b in checker.check(h.events, final)}


def test_the_recorded_history_is_valid():
    h, final = recorded()
    assert checker.check(h.events, final) == []
    out = io.StringIO()
    assert checker.report(h.events, final, out)
    assert out.getvalue().startswith("chaos verdict: VALID")


def test_a_lost_message_is_caught():
    h, final = recorded()
    g = final["groups"]["g"]
    # m10 (bob's, acked, the last) is missing from the store and so from everyone's sync.
    g["messages"] = [m for m in g["messages"] if m["id"] != "m10"]
    ids = [m["id"] for m in g["messages"]]
    final["final_sync"] = {"alice": {"g": ids}, "bob": {"g": ids}}
    h.events = [e for e in h.events if not (e.get("type") == "recv" and e["id"] == "m10")]
    assert kinds(h, final) == {"lost"}
    out = io.StringIO()
    assert not checker.report(h.events, final, out)
    assert "INVALID" in out.getvalue() and "bob-10" in out.getvalue()


def test_a_duplicate_is_caught():
    h, final = recorded()
    g = final["groups"]["g"]
    dup = dict(g["messages"][1], id="m1-again", seq=len(g["messages"]) + 1)
    g["messages"].append(dup)
    ids = [m["id"] for m in g["messages"]]
    final["final_sync"] = {"alice": {"g": ids}, "bob": {"g": ids}}
    assert kinds(h, final) == {"duplicate"}


def test_a_gap_is_caught():
    h, final = recorded()
    final["groups"]["g"]["messages"][-1]["seq"] = 8
    assert "seq_gap" in kinds(h, final)


def test_a_delivery_after_a_ban_is_caught():
    h, final = recorded()
    # carol, banned (201) before m10 was sent, still gets it on her socket.
    h.recv("carol#1", "carol", "g", "m10", 6)
    assert kinds(h, final) == {"delivered_after_removal"}


def test_a_delivery_before_the_ban_was_acknowledged_is_allowed():
    h, final = recorded()
    # Sent before the ban was acknowledged: it may be in flight to carol's socket.
    events = copy.deepcopy(h.events)
    i = next(i for i, e in enumerate(events) if e.get("type") == "invoke" and e["f"] == "ban")
    events.insert(
        i, {"type": "recv", "t": events[i]["t"], "conn": "carol#1", "user": "carol", "group": "g", "id": "m9", "seq": 5}
    )
    assert checker.check(events, final) == []


def test_seq_backwards_on_one_connection_is_caught():
    h, final = recorded()
    h.recv("alice#1", "alice", "g", "m0", 1)
    assert kinds(h, final) == {"seq_backwards"}


def test_a_member_whose_sync_differs_is_caught():
    h, final = recorded()
    final["final_sync"]["bob"]["g"] = final["final_sync"]["bob"]["g"][:-1]
    assert kinds(h, final) == {"sync_differs"}


def test_two_owners_a_banned_member_and_too_many_members_are_caught():
    h, final = recorded()
    g = final["groups"]["g"]
    g["members"].append({"user_id": "carol", "role": "owner"})
    g["max_members"] = 2
    final["final_sync"]["carol"] = {"g": [m["id"] for m in g["messages"]]}
    assert kinds(h, final) == {"owners", "banned_member", "too_many_members"}


def test_a_cooldown_broken_is_caught():
    h, final = recorded()
    final["groups"]["g"]["visibility"] = "private"
    h.op("leave", "bob", "g", status=204)
    h.op("join", "bob", "g", status="pending")
    assert kinds(h, final) == {"cooldown"}


def test_an_unknown_send_stored_twice_is_caught():
    h, final = recorded()
    h.op("send", "bob", "g", outcome="info", cmid="bob-20", error="timeout")
    g = final["groups"]["g"]
    for mid in ("x1", "x2"):
        g["messages"].append({"id": mid, "seq": len(g["messages"]) + 1, "sender_id": "bob", "client_msg_id": "bob-20"})
    ids = [m["id"] for m in g["messages"]]
    final["final_sync"] = {"alice": {"g": ids}, "bob": {"g": ids}}
    assert kinds(h, final) == {"duplicate"}


def test_a_delivery_after_a_leave_is_caught():
    h, final = recorded()
    h.op("leave", "bob", "g", status=204)
    h.op("send", "alice", "g", cmid="alice-1", id="m11")
    g = final["groups"]["g"]
    g["messages"].append({"id": "m11", "seq": 7, "sender_id": "alice", "client_msg_id": "alice-1"})
    g["members"] = [m for m in g["members"] if m["user_id"] != "bob"]
    final["final_sync"] = {"alice": {"g": [m["id"] for m in g["messages"]]}}
    h.recv("bob#1", "bob", "g", "m11", 7)
    assert kinds(h, final) == {"delivered_after_leave"}
    out = io.StringIO()
    assert not checker.report(h.events, final, out)
    assert "delivered_after_leave" in out.getvalue()


def test_a_message_stored_after_its_sender_was_banned_is_caught():
    h, final = recorded()
    h.op("send", "carol", "g", cmid="carol-8", id="m8")
    g = final["groups"]["g"]
    g["messages"].append({"id": "m8", "seq": 7, "sender_id": "carol", "client_msg_id": "carol-8"})
    final["final_sync"] = {u: {"g": [m["id"] for m in g["messages"]]} for u in ("alice", "bob")}
    assert kinds(h, final) == {"stored_after_removal"}
