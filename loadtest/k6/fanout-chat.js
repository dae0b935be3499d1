// Group fan-out chat: GROUPS groups of MEMBERS sockets each; SENDERS members per group send
// `message:send` at RATE messages/s each for DURATION. Every member measures send->deliver
// latency from the timestamp in the content, and counts lost and duplicated deliveries by the
// group's gapless `seq`: a missing seq is lost (the tail is checked with `group:sync` after
// GRACE), a seq seen twice is a duplicate.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e GROUPS=10 -e MEMBERS=20 -e SENDERS=2 -e RATE=2 -e DURATION=60s fanout-chat.js
// Default server limits: CONCLAVE_SOCKET_EVENTS_PER_SEC=20 per socket and
// CONCLAVE_MESSAGES_PER_USER=50 per 10 s, so RATE above 5 needs lifted limits; and
// CONCLAVE_MESSAGES_PER_GROUP=200 per 10 s, so SENDERS * RATE above 20 does too.
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';
import { setInterval, clearInterval, setTimeout } from 'k6/timers';
import { BASE_URL, RUN, makeGroups, parseDuration } from './conclave.js';
import { SioClient } from './socketio.js';

const GROUPS = Number(__ENV.GROUPS || 5);
const MEMBERS = Number(__ENV.MEMBERS || 10);
const SENDERS = Math.min(MEMBERS, Number(__ENV.SENDERS || 1));
const RATE = Number(__ENV.RATE || 2);
const DURATION_S = parseDuration(__ENV.DURATION || '30s') / 1000;
// Every member connects before anyone sends (raise it for thousands of sockets), and the
// last deliveries are waited for.
const WARMUP_S = parseDuration(__ENV.WARMUP || '3s') / 1000;
const GRACE_S = parseDuration(__ENV.GRACE || '3s') / 1000;
const SOCKETS = GROUPS * MEMBERS;

const deliverMs = new Trend('sio_deliver_ms', true);
const ackMs = new Trend('sio_ack_ms', true);
const sent = new Counter('sio_msgs_sent');
const delivered = new Counter('sio_msgs_delivered');
const lost = new Counter('sio_msgs_lost');
const dup = new Counter('sio_msgs_duplicated');
const sendErrors = new Rate('sio_send_errors');
const connectErrors = new Rate('sio_connect_errors');

export const options = {
  setupTimeout: __ENV.SETUP_TIMEOUT || '10m',
  scenarios: {
    chat: {
      executor: 'per-vu-iterations',
      vus: SOCKETS,
      iterations: 1,
      maxDuration: `${WARMUP_S + DURATION_S + GRACE_S + 30}s`,
    },
  },
  thresholds: {
    sio_connect_errors: ['rate==0'],
    sio_send_errors: [`rate<=${__ENV.MAX_SEND_ERROR_RATE || 0}`],
    sio_msgs_lost: [`count<=${__ENV.MAX_LOST || 0}`],
    sio_msgs_duplicated: [`count<=${__ENV.MAX_DUP || 0}`],
    sio_msgs_delivered: ['count>0'],
    sio_deliver_ms: [`p(99)<${__ENV.P99_MS || 500}`],
  },
};

export function setup() {
  const { users, groups } = makeGroups(GROUPS, MEMBERS);
  return { users, groups, run: RUN };
}

export default function (data) {
  const k = exec.vu.idInTest - 1;
  const user = data.users[k];
  const g = Math.floor(k / MEMBERS);
  const groupId = data.groups[g];
  const isSender = k % MEMBERS < SENDERS;
  const seen = {};
  let maxSeq = 0;
  let n = 0;
  const start = Date.now();
  const at = (s) => Math.max(0, start + s * 1000 - Date.now());

  const s = new SioClient(BASE_URL, { token: user.access_token }, {
    onConnect: () => {
      connectErrors.add(false);
      if (isSender) setTimeout(sendLoop, at(WARMUP_S));
      setTimeout(finish, at(WARMUP_S + DURATION_S + GRACE_S));
    },
    onError: (why) => {
      connectErrors.add(true);
      console.warn(`vu ${k}: ${why}`);
    },
  });

  s.on('message:new', (m) => {
    if (m.group_id !== groupId) return;
    let body;
    try {
      body = JSON.parse(m.content);
    } catch (_) {
      return; // not ours
    }
    if (body.run !== data.run) return;
    if (seen[m.seq]) {
      dup.add(1);
      return;
    }
    seen[m.seq] = true;
    if (m.seq > maxSeq) maxSeq = m.seq;
    delivered.add(1);
    deliverMs.add(Date.now() - body.t);
  });

  function sendLoop() {
    const timer = setInterval(() => {
      if (Date.now() - start >= (WARMUP_S + DURATION_S) * 1000 || !s.connected) {
        clearInterval(timer);
        return;
      }
      const t = Date.now();
      const content = JSON.stringify({ run: data.run, t, from: k, n: n++ });
      s.emit('message:send', { group_id: groupId, content, client_msg_id: `${data.run}-${k}-${n}` }, (ack) => {
        ackMs.add(Date.now() - t);
        const ok = !!(ack && ack.ok);
        sendErrors.add(!ok);
        if (ok) sent.add(1);
        else console.warn(`vu ${k}: send refused ${JSON.stringify(ack)}`);
      });
    }, 1000 / RATE);
  }

  // Missing seqs below the highest seen are lost; what the group holds beyond it (group:sync)
  // was never delivered to this member either.
  function finish() {
    if (!s.connected) return;
    s.emit('group:sync', { group_id: groupId, after_seq: maxSeq, limit: 100 }, (ack) => {
      let tail = 0;
      if (ack && ack.ok) {
        tail = ack.items.filter((m) => {
          try {
            return JSON.parse(m.content).run === data.run;
          } catch (_) {
            return false;
          }
        }).length;
      }
      let gaps = 0;
      for (let q = 1; q <= maxSeq; q++) if (!seen[q]) gaps++;
      if (gaps + tail > 0) console.warn(`vu ${k}: lost ${gaps} in the middle, ${tail} at the end`);
      lost.add(gaps + tail);
      s.close();
    });
  }
}
