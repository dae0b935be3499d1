// Soak: SOCKETS members in groups of MEMBERS stay connected for DURATION (e.g. 4h), each
// sending one message every INTERVAL seconds. The server closes sockets whose access token
// expired (CONCLAVE_ACCESS_TOKEN_TTL, 15 min by default), so like a real client each VU
// reconnects at 80% of the token's lifetime with a refreshed token. Every message a sender emits must come back to it
// (message:new is delivered to the sender too) within ECHO_TIMEOUT seconds, else it is lost.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e SOCKETS=50 -e DURATION=4h soak.js
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';
import { setInterval, clearInterval, setTimeout } from 'k6/timers';
import { BASE_URL, RUN, makeGroups, parseDuration, refresh } from './conclave.js';
import { SioClient } from './socketio.js';

const MEMBERS = Number(__ENV.MEMBERS || 5);
const SOCKETS = Math.max(MEMBERS, Number(__ENV.SOCKETS || 20));
const GROUPS = Math.ceil(SOCKETS / MEMBERS);
const DURATION = __ENV.DURATION || '10m';
const INTERVAL_S = parseDuration(__ENV.INTERVAL || '10s') / 1000;
const ECHO_TIMEOUT_S = parseDuration(__ENV.ECHO_TIMEOUT || '10s') / 1000;

const deliverMs = new Trend('sio_deliver_ms', true);
const connectErrors = new Rate('sio_connect_errors');
const sendErrors = new Rate('sio_send_errors');
const lost = new Counter('sio_msgs_lost');
const reconnects = new Counter('sio_reconnects');

export const options = {
  setupTimeout: __ENV.SETUP_TIMEOUT || '10m',
  scenarios: {
    soak: {
      executor: 'constant-vus',
      vus: GROUPS * MEMBERS,
      duration: DURATION,
      gracefulStop: `${ECHO_TIMEOUT_S + 5}s`,
    },
  },
  thresholds: {
    sio_connect_errors: [`rate<=${__ENV.MAX_CONNECT_ERROR_RATE || 0.01}`],
    sio_send_errors: [`rate<=${__ENV.MAX_SEND_ERROR_RATE || 0}`],
    sio_msgs_lost: [`count<=${__ENV.MAX_LOST || 0}`],
    sio_deliver_ms: [`p(99)<${__ENV.P99_MS || 500}`],
  },
};

export function setup() {
  const { users, groups } = makeGroups(GROUPS, MEMBERS);
  return { users, groups, run: RUN };
}

// VU state survives iterations: the token pair is refreshed in place.
let me = null;
let n = 0;

// One iteration is one connection: it lasts until the token is due for refresh (or the server
// closes it, or the test ends); the next iteration refreshes the token and reconnects.
export default function (data) {
  const k = exec.vu.idInTest - 1;
  if (me === null) me = Object.assign({}, data.users[k]);
  else reconnects.add(1);
  const dueMs = () => me.at + me.expires_in * 800 - Date.now();
  if (dueMs() < 5000) refresh(me);
  const groupId = data.groups[Math.floor(k / MEMBERS)];
  // Own messages seen back; message:new may arrive before the ack.
  const echoed = {};
  let timer = null;

  const s = new SioClient(BASE_URL, { token: me.access_token }, {
    onConnect: () => {
      connectErrors.add(false);
      setTimeout(() => s.close(), dueMs());
      // Spread senders over the interval.
      setTimeout(() => {
        if (!s.connected) return;
        send();
        timer = setInterval(send, INTERVAL_S * 1000);
      }, Math.random() * INTERVAL_S * 1000);
    },
    onError: (why) => {
      connectErrors.add(true);
      console.warn(`vu ${k}: ${why}`);
    },
    onClose: () => {
      if (timer !== null) clearInterval(timer);
      // What was still awaited when the connection closed is settled by the echo timers.
    },
  });

  s.on('message:new', (m) => {
    let body;
    try {
      body = JSON.parse(m.content);
    } catch (_) {
      return;
    }
    if (body.run !== data.run) return;
    deliverMs.add(Date.now() - body.t);
    if (body.from === k) echoed[body.n] = true;
  });

  function send() {
    if (!s.connected) return;
    const id = n++;
    const content = JSON.stringify({ run: data.run, t: Date.now(), from: k, n: id });
    s.emit('message:send', { group_id: groupId, content, client_msg_id: `${data.run}-${k}-${id}` }, (ack) => {
      const ok = !!(ack && ack.ok);
      sendErrors.add(!ok);
      if (!ok) return;
      setTimeout(() => {
        // A message acked just before the socket closed comes back only via group:sync after
        // reconnecting: count only messages whose socket stayed open for the whole timeout.
        if (!echoed[id] && s.connected) {
          lost.add(1);
          console.warn(`vu ${k}: message ${id} not delivered back within ${ECHO_TIMEOUT_S}s`);
        }
        delete echoed[id];
      }, ECHO_TIMEOUT_S * 1000);
    });
  }
}
