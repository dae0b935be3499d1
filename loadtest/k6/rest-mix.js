// REST mix: a pool of users does what clients do over HTTP, at RATE iterations/s for DURATION:
// read their profile and groups, browse and join open groups, post messages and page through
// history. A second, slow scenario registers and logs in new users at SIGNUP_RATE/s (login is
// limited per address: CONCLAVE_LOGIN_MAX_PER_ADDRESS, default 100 per 5 min).
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e USERS=20 -e RATE=20 -e DURATION=60s rest-mix.js
import http from 'k6/http';
import exec from 'k6/execution';
import { check } from 'k6';
import { Trend } from 'k6/metrics';
import { API, RUN, authHeaders, makeUsers, makeGroup, login } from './conclave.js';

const USERS = Number(__ENV.USERS || 20);
const GROUPS = Number(__ENV.GROUPS || 4);
const RATE = Number(__ENV.RATE || 10);
const SIGNUP_RATE = Number(__ENV.SIGNUP_RATE || 0.2);
const DURATION = __ENV.DURATION || '30s';

const pageMs = new Trend('history_page_ms', true);

export const options = {
  setupTimeout: __ENV.SETUP_TIMEOUT || '10m',
  scenarios: {
    mix: {
      executor: 'constant-arrival-rate',
      exec: 'mix',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: Math.max(2, Math.ceil(RATE / 5)),
      maxVUs: Math.max(10, RATE * 2),
    },
    signup: {
      executor: 'constant-arrival-rate',
      exec: 'signup',
      rate: Math.max(1, Math.round(SIGNUP_RATE * 60)),
      timeUnit: '1m',
      duration: DURATION,
      preAllocatedVUs: 1,
      maxVUs: 4,
    },
  },
  thresholds: {
    http_req_failed: [`rate<=${__ENV.MAX_ERROR_RATE || 0.01}`],
    'http_req_duration{kind:read}': [`p(95)<${__ENV.READ_P95_MS || 300}`],
    'http_req_duration{kind:write}': [`p(95)<${__ENV.WRITE_P95_MS || 500}`],
    checks: ['rate>0.99'],
    dropped_iterations: [`count<=${__ENV.MAX_DROPPED || Math.ceil(RATE)}`],
  },
};

// Statuses a client expects in this mix (joining twice, a full group) are not failures.
const joinOk = http.expectedStatuses(200, 409);

export function setup() {
  const users = makeUsers(0, USERS);
  const groups = [];
  for (let g = 0; g < GROUPS; g++) {
    const owner = users[g % users.length];
    // Start with every user a member, so posting and history work from the first iteration.
    groups.push(makeGroup(owner, users, `lt-${RUN}-mix${g}`));
  }
  return { users, groups };
}

const read = (token) => ({ ...authHeaders(token), tags: { kind: 'read' } });
const write = (token) => ({ ...authHeaders(token), tags: { kind: 'write' } });

export function mix(data) {
  const i = exec.scenario.iterationInTest;
  const user = data.users[i % data.users.length];
  const t = user.access_token;
  const group = data.groups[i % data.groups.length];
  const r = Math.random();
  if (r < 0.15) {
    check(http.get(`${API}/users/me`, read(t)), { 'me 200': (x) => x.status === 200 });
  } else if (r < 0.3) {
    const x = http.get(`${API}/groups/mine?limit=50`, read(t));
    check(x, { 'mine 200': (y) => y.status === 200 && y.json('items').length > 0 });
  } else if (r < 0.4) {
    const x = http.get(`${API}/groups?query=lt-${RUN}&visibility=open&limit=20`, read(t));
    check(x, { 'search 200': (y) => y.status === 200 });
  } else if (r < 0.45) {
    const x = http.post(`${API}/groups/${group}/join`, null, { ...write(t), responseCallback: joinOk });
    check(x, { 'join 200/409': (y) => y.status === 200 || y.status === 409 });
  } else if (r < 0.5) {
    const x = http.post(`${API}/groups`, JSON.stringify({ name: `lt-${RUN}-u${i}`, visibility: i % 2 ? 'open' : 'private' }), write(t));
    check(x, { 'create 201': (y) => y.status === 201 });
    if (x.status === 201) http.del(`${API}/groups/${x.json('id')}`, null, write(t));
  } else if (r < 0.75) {
    const body = JSON.stringify({ content: `mix ${i} ${Date.now()}`, client_msg_id: `${RUN}-m${i}` });
    const x = http.post(`${API}/groups/${group}/messages`, body, write(t));
    check(x, { 'post 202': (y) => y.status === 202 });
  } else {
    // First page, then up to three more by after_seq.
    let after = '';
    for (let p = 0; p < 4; p++) {
      const x = http.get(`${API}/groups/${group}/messages?limit=20${after}`, read(t));
      pageMs.add(x.timings.duration);
      if (!check(x, { 'history 200': (y) => y.status === 200 })) break;
      const items = x.json('items');
      if (items.length < 20) break;
      after = `&after_seq=${items[items.length - 1].seq}`;
    }
  }
}

export function signup() {
  const name = `lt-${RUN}-s${exec.scenario.iterationInTest}`;
  const x = http.post(`${API}/auth/register`, JSON.stringify({ username: name, password: 'load-test-password' }), {
    headers: { 'content-type': 'application/json' },
    tags: { kind: 'write' },
  });
  if (check(x, { 'register 201': (y) => y.status === 201 })) login(name);
}
