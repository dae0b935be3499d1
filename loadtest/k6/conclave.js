// REST helpers for the k6 scenarios: users, tokens and groups through the public API.
// Rate limits are respected: a 429 is retried after its Retry-After (bounded), so a setup
// against a server with default limits is slow rather than broken.
import http from 'k6/http';
import { sleep } from 'k6';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const API = `${BASE_URL}/api/v1`;
// A run id keeps names unique across runs against the same server.
export const RUN = __ENV.RUN_ID || `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
const PASSWORD = 'load-test-password';
const MAX_WAIT_S = Number(__ENV.RATE_LIMIT_MAX_WAIT || 330);

/** `300ms`, `30s`, `5m`, `2h` (or a plain number of seconds) in milliseconds. */
export function parseDuration(s) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(s));
  if (!m) throw new Error(`bad duration ${s}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2] || 's'];
}

const JSON_HDR = { 'content-type': 'application/json' };
export function authHeaders(token) {
  return { headers: { ...JSON_HDR, authorization: `Bearer ${token}` } };
}

/** A request that waits out 429s (Retry-After) up to RATE_LIMIT_MAX_WAIT seconds in total. */
function withRetry(fn, what) {
  let waited = 0;
  for (;;) {
    const r = fn();
    if (r.status !== 429) return r;
    const after = Number(r.headers['Retry-After'] || 1);
    if (waited + after > MAX_WAIT_S) {
      throw new Error(`${what}: still rate limited after ${waited}s (raise the server's limits)`);
    }
    sleep(after);
    waited += after;
  }
}

function must(r, ok, what) {
  if (!ok.includes(r.status)) {
    throw new Error(`${what}: HTTP ${r.status} ${String(r.body).substring(0, 200)}`);
  }
  return r.status === 204 ? null : r.json();
}

/** Registers users `lt-<run>-<i>` for i in [from, to) and logs them in, in parallel batches. */
export function makeUsers(from, to, batch = 20) {
  const users = [];
  for (let i = from; i < to; i += batch) {
    const names = [];
    for (let j = i; j < Math.min(to, i + batch); j++) names.push(`lt-${RUN}-${j}`);
    const reg = http.batch(
      names.map((u) => ['POST', `${API}/auth/register`, JSON.stringify({ username: u, password: PASSWORD }), { headers: JSON_HDR }]),
    );
    reg.forEach((r, k) => must(r, [201, 409], `register ${names[k]}`));
    for (const u of names) users.push({ username: u, ...login(u) });
  }
  return users;
}

/** `{id, access_token, refresh_token, expires_in}` of a fresh login. */
export function login(username) {
  const r = withRetry(
    () => http.post(`${API}/auth/login`, JSON.stringify({ username, password: PASSWORD }), { headers: JSON_HDR }),
    `login ${username}`,
  );
  const t = must(r, [200], `login ${username}`);
  const me = must(http.get(`${API}/users/me`, authHeaders(t.access_token)), [200], 'users/me');
  return { id: me.id, access_token: t.access_token, refresh_token: t.refresh_token, expires_in: t.expires_in, at: Date.now() };
}

/** Spends the refresh token for a new pair (mutates `user`). */
export function refresh(user) {
  const r = http.post(`${API}/auth/refresh`, JSON.stringify({ refresh_token: user.refresh_token }), { headers: JSON_HDR });
  const t = must(r, [200], `refresh ${user.username}`);
  user.access_token = t.access_token;
  user.refresh_token = t.refresh_token;
  user.expires_in = t.expires_in;
  user.at = Date.now();
  return user;
}

/** An open group owned by `owner`, joined by every user of `members` (owner excluded). */
export function makeGroup(owner, members, name) {
  const g = must(
    http.post(`${API}/groups`, JSON.stringify({ name, visibility: 'open', max_members: Math.max(2, members.length + 1) }), authHeaders(owner.access_token)),
    [201],
    'create group',
  );
  const joins = members
    .filter((m) => m.id !== owner.id)
    .map((m) => ['POST', `${API}/groups/${g.id}/join`, null, authHeaders(m.access_token)]);
  for (let i = 0; i < joins.length; i += 20) {
    http.batch(joins.slice(i, i + 20)).forEach((r) => must(r, [200, 409], 'join group'));
  }
  return g.id;
}

/**
 * `groups` groups of `size` members each: returns `{users, groups}` where user k belongs to
 * group floor(k / size) and `groups[g]` is its id.
 */
export function makeGroups(groups, size) {
  const users = makeUsers(0, groups * size);
  const ids = [];
  for (let g = 0; g < groups; g++) {
    const members = users.slice(g * size, (g + 1) * size);
    ids.push(makeGroup(members[0], members, `lt-${RUN}-g${g}`));
  }
  return { users, groups: ids };
}
