#!/usr/bin/env python3
"""Time of the append transaction's shapes on a MongoDB-wire server, by number of groups in a batch.

    python3 loadtest/bench/store-round-trips.py mongodb://127.0.0.1:27555/

It replays what `store/mongo` sends for one batch of new messages (one per group), idle, without
Conclave: "per group" is the shape before the sixth pass (an `_id` look-up, one `findAndModify`
per group, the insert, the commit); "per count" is the sixth pass's (the look-up, one `$inc`
`update_many` per distinct count of new messages, one read of the groups' `last_seq`, the insert,
the commit); "insert first" is the shape now: the same without the look-up, which only an attempt
after a duplicate-key abort makes. Needs pymongo (SecantusDB's Python server installs it).
Writes only to the database `conclave_round_trips`, which it drops.
"""

import statistics
import sys
import time
import uuid

import pymongo
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

client = pymongo.MongoClient(sys.argv[1] if len(sys.argv) > 1 else "mongodb://127.0.0.1:27017/")
db = client["conclave_round_trips"]
groups, messages = db.groups, db.messages
GROUPS = [str(uuid.uuid4()) for _ in range(20)]
groups.insert_many([{"_id": g, "last_seq": 0} for g in GROUPS])
messages.create_index([("group_id", 1), ("seq", 1)], unique=True)


def batch(i, k):
    ids = [str(uuid.uuid4()) for _ in range(k)]
    return ids, [GROUPS[(i + j) % len(GROUPS)] for j in range(k)]


def find_and_inc(s, g):
    return groups.find_one_and_update(
        {"_id": g},
        {"$inc": {"last_seq": 1}},
        projection={"last_seq": 1},
        return_document=pymongo.ReturnDocument.AFTER,
        session=s,
    )["last_seq"]


def per_group(s, ids, gs):
    list(messages.find({"_id": {"$in": ids}}, session=s))
    return [find_and_inc(s, g) for g in gs]


def per_count(s, ids, gs):
    list(messages.find({"_id": {"$in": ids}}, session=s))
    return insert_first(s, ids, gs)


def insert_first(s, ids, gs):
    if len(gs) == 1:
        return [find_and_inc(s, gs[0])]
    groups.update_many({"_id": {"$in": gs}}, {"$inc": {"last_seq": 1}}, session=s)
    last = {d["_id"]: d["last_seq"] for d in groups.find({"_id": {"$in": gs}}, {"last_seq": 1}, session=s)}
    return [last[g] for g in gs]


def one(shape, i, k):
    ids, gs = batch(i, k)
    t = time.perf_counter()
    with client.start_session() as s:
        with s.start_transaction(read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority")):
            seqs = shape(s, ids, gs)
            docs = [{"_id": m, "group_id": g, "seq": q, "envelope": b"x" * 200} for m, g, q in zip(ids, gs, seqs)]
            messages.insert_many(docs, session=s)
    return (time.perf_counter() - t) * 1e3


def summary(times):
    times = sorted(times)
    return f"p50 {times[len(times) // 2]:5.2f} ms, mean {statistics.mean(times):5.2f} ms"


try:
    print("groups in the batch | per group (fifth pass)     | per count (sixth pass)     | insert first (now)")
    for k in (1, 2, 3, 5, 10, 20):
        # In turn, so that every shape sees the same server and collection sizes.
        times = {shape: [] for shape in (per_group, per_count, insert_first)}
        for i in range(100):
            for shape, t in times.items():
                t.append(one(shape, i, k))
        print(f"{k:>19} | " + " | ".join(summary(t) for t in times.values()))
finally:
    client.drop_database("conclave_round_trips")
