// The official socket.io-client, unmodified, against a real Conclave server, over both
// transports: websocket only, and HTTP long-polling only.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";

import { api, startServer } from "./server.js";

const WAIT = 10_000;

let server;
let http;

before(async () => {
  server = await startServer();
  http = api(server.base);
});

after(async () => {
  await server?.stop();
});

/** Resolves with the next `event` on `socket` that satisfies `pred`. */
function next(socket, event, pred = () => true, ms = WAIT) {
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => {
      socket.off(event, on);
      fail(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    function on(data) {
      if (!pred(data)) return;
      clearTimeout(timer);
      socket.off(event, on);
      ok(data);
    }
    socket.on(event, on);
  });
}

/** Waits until `cond()` holds (checked every 10 ms). */
async function until(cond, what, ms = WAIT) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Every `message:new` (and `group:removed`) a socket receives, in order. */
function record(socket) {
  const seen = [];
  socket.on("message:new", (m) => seen.push(m));
  socket.on("group:removed", (e) => seen.push({ removed: e }));
  return seen;
}

for (const transport of ["websocket", "polling"]) {
  describe(`socket.io-client over ${transport}`, () => {
    const sockets = [];

    function connect(token) {
      const socket = io(server.base, {
        transports: [transport],
        upgrade: false,
        reconnection: false,
        forceNew: true,
        timeout: WAIT,
        auth: token === undefined ? undefined : { token },
      });
      sockets.push(socket);
      return socket;
    }

    async function connected(token) {
      const socket = connect(token);
      await new Promise((ok, fail) => {
        socket.once("connect", ok);
        socket.once("connect_error", fail);
      });
      assert.equal(socket.io.engine.transport.name, transport);
      return socket;
    }

    after(() => {
      for (const s of sockets) s.disconnect();
    });

    test("a missing or forged token gets connect_error unauthorized", async () => {
      const alice = await http.user();
      const [, payload] = alice.token.split(".");
      const forged = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString("base64url")}.${payload}.`;
      for (const token of [undefined, "garbage", forged, `${alice.token}x`]) {
        const socket = connect(token);
        const err = await next(socket, "connect_error");
        assert.equal(err.message, "unauthorized", `token ${token}`);
        assert.equal(socket.connected, false);
      }
    });

    test("connect, send with ack, delivery to members, group:sync", async () => {
      const alice = await http.user();
      const bob = await http.user();
      const g = await http.group(alice, "private");
      await http.addMember(g, alice, bob);
      const a = await connected(alice.token);
      const b = await connected(bob.token);

      const gotA = next(a, "message:new");
      const gotB = next(b, "message:new");
      const ack = await a.timeout(WAIT).emitWithAck("message:send", {
        group_id: g,
        content: `hello over ${transport}`,
        client_msg_id: "c-1",
      });
      assert.equal(ack.ok, true, JSON.stringify(ack));
      assert.equal(typeof ack.id, "string");
      const [stored] = await http.messages(g, alice);
      assert.deepEqual(await gotA, stored);
      assert.deepEqual(await gotB, stored);
      assert.equal(stored.id, ack.id);

      const bad = await a.timeout(WAIT).emitWithAck("message:send", { group_id: g, content: "" });
      assert.equal(bad.ok, false);
      assert.equal(bad.error.code, "validation_failed");

      // Bob goes away, misses two messages, comes back and catches up.
      b.disconnect();
      for (const text of ["missed 1", "missed 2"]) {
        const r = await a.timeout(WAIT).emitWithAck("message:send", { group_id: g, content: text });
        assert.equal(r.ok, true);
      }
      const b2 = await connected(bob.token);
      const sync = await b2.timeout(WAIT).emitWithAck("group:sync", { group_id: g, after_seq: stored.seq });
      assert.equal(sync.ok, true, JSON.stringify(sync));
      assert.deepEqual(sync.items, await http.messages(g, bob, `&after_seq=${stored.seq}`));
      assert.deepEqual(
        sync.items.map((m) => m.content),
        ["missed 1", "missed 2"],
      );
    });

    test("a ban sends group:removed and no further message of that group", async () => {
      const alice = await http.user();
      const bob = await http.user();
      const g = await http.group(alice, "private");
      const other = await http.group(alice, "open");
      await http.addMember(g, alice, bob);
      await http.addMember(other, alice, bob);
      const a = await connected(alice.token);
      const b = await connected(bob.token);
      const seen = record(b);
      const seenByAlice = record(a);

      const removed = next(b, "group:removed");
      const ban = await http.call("POST", `/groups/${g}/bans`, alice.token, { user_id: bob.id });
      assert.equal(ban.status, 201);
      assert.deepEqual(await removed, { group_id: g, reason: "banned" });

      const ids = [];
      for (let i = 0; i < 20; i++) {
        const r = await a.timeout(WAIT).emitWithAck("message:send", { group_id: g, content: `after ${i}` });
        assert.equal(r.ok, true);
        ids.push(r.id);
      }
      const last = ids[ids.length - 1];
      await until(() => seenByAlice.some((m) => m.id === last), "alice receives her messages");
      // A fence in a group bob is still in: it arrives after anything sent before it.
      const fence = next(b, "message:new", (m) => m.group_id === other);
      const f = await a.timeout(WAIT).emitWithAck("message:send", { group_id: other, content: "fence" });
      assert.equal(f.ok, true);
      await fence;
      const leaked = seen.filter((m) => m.group_id === g);
      assert.deepEqual(leaked, [], "messages of the group after the ban");

      const refused = await b.timeout(WAIT).emitWithAck("message:send", { group_id: g, content: "hi" });
      assert.equal(refused.ok, false);
    });
  });
}
