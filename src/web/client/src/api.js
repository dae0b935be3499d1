// The REST API of docs/api.md and the session: the access token lives in memory only, the refresh
// token in sessionStorage (this tab, until it closes). The access token is refreshed shortly
// before it expires, and once more when a call is answered 401.
import { ApiError, networkError } from "./errors.js";

const BASE = "/api/v1";
const STORE_KEY = "conclave.refresh";

let access = null; // { token, expiresAt (ms) }
let refreshToken = sessionStorage.getItem(STORE_KEY);
let refreshing = null;
let timer = null;
let onEnded = () => {};

/** Called when the session ends on its own (refresh refused): the UI shows the login form. */
export function onSessionEnded(fn) {
  onEnded = fn;
}

export const hasSession = () => Boolean(refreshToken);

async function call(method, path, { body, token, query } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let url = BASE + path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== "") q.set(k, v);
    if ([...q].length) url += `?${q}`;
  }
  let res;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
    });
  } catch {
    throw networkError();
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const problem = data && typeof data === "object" ? data : { status: res.status };
    if (!problem.code) problem.code = res.status >= 500 ? "unavailable" : "internal_error";
    // rate_limited carries the wait in both the body and the Retry-After header.
    if (problem.retry_after === undefined && res.headers.get("retry-after")) {
      problem.retry_after = Number(res.headers.get("retry-after"));
    }
    throw new ApiError(problem);
  }
  return data;
}

function keep(pair) {
  const ttl = pair.expires_in * 1000;
  access = { token: pair.access_token, expiresAt: Date.now() + ttl, ttl };
  refreshToken = pair.refresh_token;
  sessionStorage.setItem(STORE_KEY, refreshToken);
  clearTimeout(timer);
  // Renew a minute before expiry (a quarter of the lifetime when that is shorter).
  const lead = Math.min(60, pair.expires_in / 4);
  timer = setTimeout(() => refresh().catch(() => {}), (pair.expires_in - lead) * 1000);
}

function forget() {
  access = null;
  refreshToken = null;
  sessionStorage.removeItem(STORE_KEY);
  clearTimeout(timer);
}

/** A new token pair; one at a time, since the refresh token is spent on use. */
export function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      if (!refreshToken) throw new ApiError({ code: "unauthenticated", status: 401 });
      try {
        keep(await call("POST", "/auth/refresh", { body: { refresh_token: refreshToken } }));
      } catch (e) {
        if (e.status === 401) {
          forget();
          onEnded(e);
        }
        throw e;
      }
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** A valid access token, refreshed first when about to expire (10 s, or a quarter of its life). */
export async function accessToken() {
  if (!access || access.expiresAt - Date.now() < Math.min(10_000, access.ttl / 4)) await refresh();
  return access.token;
}

/** An authenticated call, retried once after a refresh when answered 401. */
async function authed(method, path, opts = {}) {
  try {
    return await call(method, path, { ...opts, token: await accessToken() });
  } catch (e) {
    if (e.code !== "unauthenticated") throw e;
    await refresh();
    return call(method, path, { ...opts, token: access.token });
  }
}

export async function register(username, password) {
  return call("POST", "/auth/register", { body: { username, password } });
}

export async function login(username, password) {
  keep(await call("POST", "/auth/login", { body: { username, password } }));
}

export async function logout() {
  const token = refreshToken;
  forget();
  if (token) await call("POST", "/auth/logout", { body: { refresh_token: token } }).catch(() => {});
}

const g = (id) => `/groups/${encodeURIComponent(id)}`;
const u = (id) => encodeURIComponent(id);

export const me = () => authed("GET", "/users/me");
export const myGroups = () => authed("GET", "/groups/mine", { query: { limit: 100 } });
export const searchGroups = (query, visibility, cursor) =>
  authed("GET", "/groups", { query: { query, visibility, cursor, limit: 20 } });
export const createGroup = (body) => authed("POST", "/groups", { body });
export const getGroup = (id) => authed("GET", g(id));
export const deleteGroup = (id) => authed("DELETE", g(id));
export const join = (id) => authed("POST", `${g(id)}/join`, { body: {} });
export const withdraw = (id) => authed("DELETE", `${g(id)}/join-request`);
export const leave = (id) => authed("POST", `${g(id)}/leave`, { body: {} });
export const joinRequests = (id) =>
  authed("GET", `${g(id)}/join-requests`, { query: { limit: 100 } });
export const approve = (id, user) =>
  authed("POST", `${g(id)}/join-requests/${u(user)}/approve`, { body: {} });
export const reject = (id, user) =>
  authed("POST", `${g(id)}/join-requests/${u(user)}/reject`, { body: {} });
export const members = (id, cursor) =>
  authed("GET", `${g(id)}/members`, { query: { limit: 100, cursor } });
export const removeMember = (id, user) => authed("DELETE", `${g(id)}/members/${u(user)}`);
export const ban = (id, user) => authed("POST", `${g(id)}/bans`, { body: { user_id: user } });
export const bans = (id) => authed("GET", `${g(id)}/bans`, { query: { limit: 100 } });
export const unban = (id, user) => authed("DELETE", `${g(id)}/bans/${u(user)}`);
export const setRole = (id, user, role) =>
  authed("PUT", `${g(id)}/members/${u(user)}/role`, { body: { role } });
export const transfer = (id, user) =>
  authed("POST", `${g(id)}/transfer-ownership`, { body: { new_owner_id: user } });
/** The newest messages (before `beforeSeq` when given), ascending by seq. */
export const history = (id, beforeSeq) =>
  authed("GET", `${g(id)}/messages`, { query: { before_seq: beforeSeq, limit: 50 } });
export const sendMessage = (id, content, clientMsgId) =>
  authed("POST", `${g(id)}/messages`, { body: { content, client_msg_id: clientMsgId } });
