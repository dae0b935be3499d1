// Reference peer: the Node.js Socket.IO stack Conclave replaces, relaying the same events.
// - connect with `auth: {groups: ["<group id>", ...]}`: the socket joins those rooms (no auth
//   check: `token` is ignored);
// - `message:send` {group_id, content, client_msg_id?} -> ack {ok:true, id}, and every socket in
//   the room (the sender too) gets `message:new` {id, group_id, seq, sender_id, content, sent_at,
//   client_msg_id}, like Conclave; seq is counted per room in this process only;
// - rooms are shared between processes through @socket.io/redis-adapter.
// Env: PORT (3000), HOST (127.0.0.1), REDIS_URL (redis://127.0.0.1:6379), KEY_PREFIX
// (channel prefix, conclave-bench-node), REDIS=0 to run without the adapter.
'use strict';
const { createServer } = require('node:http');
const { randomUUID } = require('node:crypto');
const { Server } = require('socket.io');

const port = Number(process.env.PORT || 3000);
const host = process.env.HOST || '127.0.0.1';

async function main() {
  const http = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(200).end('ok');
      return;
    }
    res.writeHead(404).end();
  });
  const io = new Server(http, { serveClient: false });
  if (process.env.REDIS !== '0') {
    const { createAdapter } = require('@socket.io/redis-adapter');
    const { createClient } = require('redis');
    const pub = createClient({ url: process.env.REDIS_URL || 'redis://127.0.0.1:6379' });
    const sub = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect()]);
    io.adapter(createAdapter(pub, sub, { key: process.env.KEY_PREFIX || 'conclave-bench-node' }));
  }
  const seqs = new Map();
  io.on('connection', (socket) => {
    const auth = socket.handshake.auth || {};
    const groups = Array.isArray(auth.groups) ? auth.groups.map(String) : [];
    if (groups.length) socket.join(groups);
    const userId = String(auth.user_id || socket.id);
    socket.on('message:send', (p, ack) => {
      if (!p || typeof p.group_id !== 'string' || typeof p.content !== 'string') {
        if (typeof ack === 'function') ack({ ok: false, error: { code: 'validation_failed', message: 'bad payload' } });
        return;
      }
      const id = randomUUID();
      const seq = (seqs.get(p.group_id) || 0) + 1;
      seqs.set(p.group_id, seq);
      io.to(p.group_id).emit('message:new', {
        id,
        group_id: p.group_id,
        seq,
        sender_id: userId,
        content: p.content,
        sent_at: new Date().toISOString(),
        client_msg_id: p.client_msg_id,
      });
      if (typeof ack === 'function') ack({ ok: true, id });
    });
  });
  http.listen(port, host, () => console.log(`node-socketio listening on ${host}:${port}`));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
