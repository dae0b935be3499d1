// Starts a Conclave server binary (built beforehand; nothing is built here) on a free loopback
// port with a temporary data directory and cheap password hashing, and stops it.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

export function binaryPath() {
  if (process.env.CONCLAVE_BIN) return resolve(process.env.CONCLAVE_BIN);
  const target = process.env.CARGO_TARGET_DIR || "target";
  return join(isAbsolute(target) ? target : join(repo, target), "debug", "conclave");
}

function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function startServer(extraEnv = {}) {
  const bin = binaryPath();
  if (!existsSync(bin)) {
    throw new Error(`no server binary at ${bin}: build it (cargo build) or set CONCLAVE_BIN`);
  }
  const dataDir = mkdtempSync(join(tmpdir(), "conclave-js-"));
  const port = await freePort();
  let log = "";
  const child = spawn(bin, ["serve"], {
    env: {
      ...process.env,
      CONCLAVE_HTTP_ADDR: `127.0.0.1:${port}`,
      CONCLAVE_DATA_DIR: dataDir,
      CONCLAVE_ARGON2_MEMORY_KIB: "64",
      CONCLAVE_ARGON2_ITERATIONS: "1",
      CONCLAVE_LOGIN_MAX_PER_ADDRESS: "100000",
      CONCLAVE_REGISTER_MAX_PER_ADDRESS: "100000",
      CONCLAVE_MESSAGES_PER_USER: "100000",
      CONCLAVE_MESSAGES_PER_GROUP: "100000",
      CONCLAVE_GROUP_ACTIONS_PER_USER: "100000",
      CONCLAVE_HISTORY_PER_USER: "100000",
      CONCLAVE_MAX_SOCKETS_PER_USER: "10000",
      CONCLAVE_SHUTDOWN_GRACE: "1s",
      RUST_LOG: process.env.RUST_LOG || "warn",
      ...extraEnv,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const keep = (d) => {
    log = (log + d.toString()).slice(-8000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  let exited = null;
  child.on("exit", (code, signal) => {
    exited = { code, signal };
  });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`server exited early (${JSON.stringify(exited)}):\n${log}`);
    try {
      const res = await fetch(`${base}/readyz`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`server not ready in 30 s:\n${log}`);
    }
    await sleep(50);
  }
  return {
    base,
    log: () => log,
    async stop() {
      if (!exited) {
        const gone = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
        await gone;
        clearTimeout(timer);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A tiny JSON client for the REST API. */
export function api(base) {
  async function call(method, path, token, body) {
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(`${base}/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }
  let n = 0;
  const tag = `${process.pid % 10000}${Date.now() % 100000}`;
  return {
    call,
    async user() {
      const username = `js${tag}_${n++}`;
      const password = `pw-${username}-secret`;
      const reg = await call("POST", "/auth/register", null, { username, password });
      if (reg.status !== 201) throw new Error(`register: ${JSON.stringify(reg)}`);
      const login = await call("POST", "/auth/login", null, { username, password });
      if (login.status !== 200) throw new Error(`login: ${JSON.stringify(login)}`);
      return { id: reg.body.id, username, token: login.body.access_token };
    },
    async group(owner, visibility) {
      const r = await call("POST", "/groups", owner.token, { name: `g ${n++}`, visibility });
      if (r.status !== 201) throw new Error(`group: ${JSON.stringify(r)}`);
      return r.body.id;
    },
    async addMember(group, owner, user) {
      const j = await call("POST", `/groups/${group}/join`, user.token, {});
      if (j.status === 202) {
        const a = await call("POST", `/groups/${group}/join-requests/${user.id}/approve`, owner.token, {});
        if (a.status !== 200) throw new Error(`approve: ${JSON.stringify(a)}`);
      } else if (j.status !== 200) {
        throw new Error(`join: ${JSON.stringify(j)}`);
      }
    },
    async messages(group, user, query = "") {
      const r = await call("GET", `/groups/${group}/messages?limit=100${query}`, user.token);
      if (r.status !== 200) throw new Error(`messages: ${JSON.stringify(r)}`);
      return r.body.items;
    },
  };
}
