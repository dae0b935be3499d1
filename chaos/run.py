"""A chaos run: real cluster processes, a workload, a nemesis from the seed, then every fault
healed, the final state read back, and the checker's verdict. See docs/chaos.md."""

import argparse
import json
import os
import sys
import tempfile
import threading
import time

import checker
from cluster import Cluster
from nemesis import Nemesis, restart_redis, run_cmd, schedule
from workload import Api, History, Sock, User, final_sync

USERS = 12
COOLDOWN = 4  # seconds; short, so the run sees requests both refused and allowed after it


class World:
    def __init__(self, cluster, history, tag):
        self.cluster = cluster
        self.history = history
        self.tag = tag
        self.groups = []


def setup(world, seed):
    users = [User(f"u{i}", world, seed * 1000 + i) for i in range(USERS)]
    for u in users:
        u.register()
    api = Api(world.cluster, users[0].rng)
    specs = [("open", {}), ("open", {"max_members": 6}), ("private", {})]
    for k, (vis, extra) in enumerate(specs):
        owner = users[k]
        g = api.must("POST", "/groups", owner.token, {"name": f"chaos {k}", "visibility": vis, **extra}, want=(201,))
        world.groups.append(g["id"])
        owner.groups.add(g["id"])
    # Everyone starts in the open groups (the small one fills up); the private group grows by
    # requests and approvals during the run.
    for u in users[3:]:
        for g in world.groups[:2]:
            u.join(g)
    return users


def read_final(world, users):
    by_id = {u.id: u for u in users}
    api = Api(world.cluster, users[0].rng)
    groups = {}
    for g in world.groups:
        s, grp = api.call("GET", f"/groups/{g}", users[0].token)
        if s == 404:
            continue  # its sole owner left: the group is gone
        if s != 200:
            raise RuntimeError(f"GET /groups/{g}: {s} {grp}")
        owner = by_id[grp["owner_id"]]
        members = api.must("GET", f"/groups/{g}/members?limit=100", owner.token)["items"]
        bans = api.must("GET", f"/groups/{g}/bans?limit=100", owner.token)["items"]
        messages, after = [], 0
        while True:
            page = api.must("GET", f"/groups/{g}/messages?after_seq={after}&limit=100", owner.token)["items"]
            if not page:
                break
            messages += [{k: m.get(k) for k in ("id", "seq", "sender_id", "client_msg_id")} for m in page]
            after = page[-1]["seq"]
        groups[g] = {
            "visibility": grp["visibility"],
            "max_members": grp["max_members"],
            "owner_id": grp["owner_id"],
            "members": [{"user_id": m["user_id"], "role": m["role"]} for m in members],
            "bans": [b["user_id"] for b in bans],
            "messages": messages,
        }
    return groups


def drain(world, users, patience=150):
    """Waits until every acked message is stored (or excused) and the store has stopped growing
    for a few seconds, or `patience` runs out: a partition whose consumer died with the broker
    connection comes back only once the dead connection is noticed."""
    deadline, last, stable_since = time.time() + patience, None, time.time()
    while time.time() < deadline:
        try:
            groups = read_final(world, users)
        except (RuntimeError, KeyError):
            time.sleep(1)
            continue
        lost = [b for b in checker.check(world.history.events, {"groups": groups}) if b["kind"] == "lost"]
        n = sum(len(g["messages"]) for g in groups.values())
        if n != last:
            last, stable_since = n, time.time()
        if not lost and time.time() - stable_since > 5:
            return
        time.sleep(1)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--duration", type=float, required=True, help="seconds of workload under faults")
    p.add_argument("--processes", type=int, default=3)
    p.add_argument("--binary")
    p.add_argument("--mongo-uri")
    p.add_argument("--plan", action="store_true", help="print the seed's fault schedule and exit")
    p.add_argument("--out", help="directory for history, final state and process logs")
    p.add_argument(
        "--service-restarts",
        action="store_true",
        help="also restart the machine's shared RabbitMQ (stop_app/start_app) and Redis",
    )
    a = p.parse_args()
    plan = schedule(a.seed, a.duration, a.processes, a.service_restarts)
    if a.plan:
        for start, action, target, hold in plan:
            print(f"{start:8.2f}s  {action:15} {target:9} {hold:6.2f}s")
        return
    out = a.out or tempfile.mkdtemp(prefix=f"chaos-{a.seed}-")
    os.makedirs(out, exist_ok=True)
    tag = f"chaos{a.seed}x{os.getpid()}"
    print(f"chaos: seed {a.seed}, {a.duration:.0f} s, {a.processes} processes, {len(plan)} faults planned; {out}")
    history = History(os.path.join(out, "history.jsonl"))
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(history.t0))  # to match process logs
    history.add({"type": "config", "seed": a.seed, "cooldown": COOLDOWN, "processes": a.processes, "started": started})
    cluster = Cluster(a.binary, out, a.processes, a.mongo_uri, tag, COOLDOWN)
    world = World(cluster, history, tag)
    stop = threading.Event()
    nemesis = Nemesis(cluster, history, plan)
    try:
        cluster.start()
        users = setup(world, a.seed)
        socks = [Sock(u, world, a.seed * 1000 + 500 + i) for i, u in enumerate(users)]
        threads = [threading.Thread(target=x.run, args=(stop,), daemon=True) for x in socks + users]
        nem = threading.Thread(target=nemesis.run, args=(stop,), daemon=True)
        for t in threads:
            t.start()
        nem.start()
        time.sleep(a.duration)
        stop.set()
        nem.join(timeout=240)
        for t in threads:
            t.join(timeout=60)
        # Heal everything, then let the pipeline drain: the store must stop growing.
        nemesis_cleanup(nemesis)
        cluster.heal()
        cluster.wait_all_ready(120)
        history.add({"type": "healed"})
        drain(world, users)
        groups = read_final(world, users)
        members = {m["user_id"] for g in groups.values() for m in g["members"]}
        syncs = {}
        for u in users:
            if u.id in members:
                mine = [g for g, st in groups.items() if u.id in {m["user_id"] for m in st["members"]}]
                syncs[u.id] = final_sync(world, u, mine)
        final = {"groups": groups, "final_sync": syncs}
    finally:
        stop.set()
        nemesis_cleanup(nemesis)  # a shared service is never left stopped, whatever failed
        history.close()
        cluster.stop()
    with open(os.path.join(out, "final.json"), "w") as f:
        json.dump(final, f)
    ok = checker.report(checker.load_history(os.path.join(out, "history.jsonl")), final, sys.stdout)
    print(f"chaos: history and final state in {out}")
    sys.exit(0 if ok else 1)


def nemesis_cleanup(nemesis):
    if nemesis.rabbit_stopped:
        run_cmd(["rabbitmqctl", "start_app"])
        nemesis.rabbit_stopped = False
    if nemesis.redis_stopped:
        restart_redis()
        nemesis.redis_stopped = False


if __name__ == "__main__":
    main()
