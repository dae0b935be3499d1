// Connect storm: ramp to SOCKETS authenticated Socket.IO connections, hold them, ramp down.
// Measures the time from opening the websocket to the namespace CONNECT ack, and errors.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e SOCKETS=500 -e RAMP=30s -e HOLD=30s connect-storm.js
import { Counter, Rate, Trend } from 'k6/metrics';
import exec from 'k6/execution';
import { sleep } from 'k6';
import { setTimeout } from 'k6/timers';
import { BASE_URL, makeUsers, parseDuration } from './conclave.js';
import { SioClient } from './socketio.js';

const SOCKETS = Number(__ENV.SOCKETS || 100);
// One user may hold many sockets; fewer users keeps setup (and login limits) light.
const USERS = Math.min(SOCKETS, Number(__ENV.USERS || 50));
const RAMP = __ENV.RAMP || '30s';
const HOLD = __ENV.HOLD || '30s';
const END_MS = parseDuration(RAMP) + parseDuration(HOLD);

const connectMs = new Trend('sio_connect_ms', true);
const connectErrors = new Rate('sio_connect_errors');
const dropped = new Counter('sio_dropped_while_held');

export const options = {
  setupTimeout: __ENV.SETUP_TIMEOUT || '10m',
  scenarios: {
    storm: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [
        { duration: RAMP, target: SOCKETS },
        { duration: HOLD, target: SOCKETS },
        { duration: '1s', target: 0 },
      ],
      gracefulRampDown: '5s',
      gracefulStop: '5s',
    },
  },
  thresholds: {
    sio_connect_errors: [`rate<=${__ENV.MAX_ERROR_RATE || 0.01}`],
    sio_connect_ms: [`p(95)<${__ENV.P95_MS || 1000}`],
    sio_dropped_while_held: [`count<=${__ENV.MAX_DROPPED || 0}`],
  },
};

export function setup() {
  return { users: makeUsers(0, USERS) };
}

// Each VU opens one socket and holds it until the end of the hold stage; a socket closed by
// the server meanwhile counts as dropped.
export default function (data) {
  const holdMs = exec.scenario.startTime + END_MS - Date.now();
  if (holdMs < 1000) {
    sleep(2); // ramping down: do not reconnect
    return;
  }
  const user = data.users[(__VU - 1) % data.users.length];
  const s = new SioClient(BASE_URL, { token: user.access_token }, {
    onConnect: (ms) => {
      connectMs.add(ms);
      connectErrors.add(false);
      setTimeout(() => s.close(), exec.scenario.startTime + END_MS - Date.now());
    },
    onError: (why) => {
      connectErrors.add(true);
      console.warn(`connect failed: ${why}`);
    },
    onClose: (byServer) => {
      if (byServer) dropped.add(1);
    },
  });
}
