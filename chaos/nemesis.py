"""The nemesis: a schedule of faults drawn from the seed (so a seed names one schedule), run on
their own threads so they overlap. Each fault is recorded in the history when it starts and
when it is undone. Two faults never hold the same thing at once (a process, one proxy, a
shared service); otherwise anything goes, in any order."""

import random
import subprocess
import threading
import time

from cluster import AMQP_HEARTBEAT

# (action, weight); the shared-service restarts only with --service-restarts.
ACTIONS = [
    ("kill", 3),
    ("pause", 3),
    ("mongo_down", 2),
    ("mongo_hold", 2),
    ("redis_down", 2),
    ("redis_hold", 2),
    ("amqp_down", 2),
    ("amqp_hold", 1),
    ("slow", 1),
    ("reset", 2),
]
SERVICE_ACTIONS = [("rabbit_restart", 2), ("redis_restart", 2)]


def schedule(seed, duration, nodes, service_restarts):
    """[(start, action, target, hold seconds)], a pure function of its arguments."""
    rng = random.Random(seed)
    actions = ACTIONS + (SERVICE_ACTIONS if service_restarts else [])
    names = [a for a, _ in actions]
    weights = [w for _, w in actions]
    plan, t = [], 3.0
    while t < duration - 8:
        a = rng.choices(names, weights)[0]
        node = rng.randrange(nodes)
        if a == "pause":
            # Shorter than the broker's patience (two missed heartbeats), or well beyond it.
            hold = (
                rng.uniform(1, AMQP_HEARTBEAT)
                if rng.random() < 0.5
                else rng.uniform(3 * AMQP_HEARTBEAT, 4 * AMQP_HEARTBEAT)
            )
        elif a == "reset":
            hold = 0.0
        elif a in ("rabbit_restart", "redis_restart"):
            hold = rng.uniform(2, 6)
        else:
            hold = rng.uniform(1, 12)
        target = {"rabbit_restart": "rabbitmq", "redis_restart": "redis"}.get(a, f"node{node}")
        if a == "reset":
            target = f"{rng.choice(['mongo', 'redis', 'amqp'])}{node}"
        plan.append((round(t, 2), a, target, round(hold, 2)))
        t += rng.uniform(0.5, 6)
    return plan


def resource(action, target):
    """What a fault holds while it lasts."""
    if action in ("kill", "pause"):
        return target
    if action.endswith(("_down", "_hold")):
        return action.split("_")[0] + target[len("node") :]
    if action == "slow":
        return "mongo" + target[len("node") :]
    if action == "reset":
        return target
    return "service"  # both shared services: one restart at a time


def run_cmd(args):
    subprocess.run(args, capture_output=True, timeout=120, check=False)


def restart_redis():
    # The machine's own start command, as tests/cluster/faults.rs does.
    run_cmd(["redis-cli", "shutdown", "nosave"])
    time.sleep(0.5)
    run_cmd(
        ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", ""]
        + ["--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"]
    )


class Nemesis:
    def __init__(self, cluster, history, plan):
        self.cluster = cluster
        self.history = history
        self.plan = plan
        self.busy = set()
        self.lock = threading.Lock()
        self.threads = []
        self.rabbit_stopped = False
        self.redis_stopped = False

    def _fault(self, action, target, hold, stop):
        c = self.cluster
        i = int(target[-1]) if target[-1].isdigit() else None
        node = c.nodes[i] if i is not None else None
        self.history.add({"type": "nemesis", "phase": "start", "action": action, "target": target, "hold": hold})
        if action == "kill":
            c.kill9(i)
        elif action == "pause":
            c.pause(i, True)
        elif action.endswith("_down"):
            node.proxies[action.split("_")[0]].down()
        elif action.endswith("_hold"):
            node.proxies[action.split("_")[0]].hold()
        elif action == "slow":
            node.proxies["mongo"].delay(0.05 + 0.25 * (hold % 1))
        elif action == "reset":
            node.proxies[target.rstrip("0123456789")].reset()
        elif action == "rabbit_restart":
            self.rabbit_stopped = True
            run_cmd(["rabbitmqctl", "stop_app"])
        elif action == "redis_restart":
            self.redis_stopped = True
            run_cmd(["redis-cli", "shutdown", "nosave"])
        stop.wait(hold)
        self._undo(action, target, i)
        self.history.add({"type": "nemesis", "phase": "end", "action": action, "target": target})

    def _undo(self, action, target, i):
        c = self.cluster
        if action == "kill":
            c.spawn(i)
        elif action == "pause":
            c.pause(i, False)
        elif action in ("slow",) or action.endswith(("_down", "_hold")):
            c.nodes[i].proxies["mongo" if action == "slow" else action.split("_")[0]].up()
        elif action == "rabbit_restart":
            run_cmd(["rabbitmqctl", "start_app"])
            self.rabbit_stopped = False
        elif action == "redis_restart":
            restart_redis()
            self.redis_stopped = False

    def run(self, stop):
        t0 = time.time()  # the plan counts from the start of the workload
        for start, action, target, hold in self.plan:
            if stop.wait(max(0.0, t0 + start - time.time())):
                break
            res = resource(action, target)
            with self.lock:
                if res in self.busy:
                    continue
                self.busy.add(res)

            def go(action=action, target=target, hold=hold, res=res):
                try:
                    self._fault(action, target, hold, stop)
                finally:
                    with self.lock:
                        self.busy.discard(res)

            th = threading.Thread(target=go, daemon=True)
            th.start()
            self.threads.append(th)
        stop.wait()
        for th in self.threads:
            th.join(timeout=180)
