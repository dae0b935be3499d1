// A small Socket.IO v5 / Engine.IO v4 client for k6, over the websocket transport only.
//
// Wire format (one Engine.IO packet per websocket frame, text only):
//   server `0{"sid",..,"pingInterval",..}` open  -> client `40{auth}` CONNECT to namespace `/`
//   server `40{"sid":..}` connected, or `44{"message":..}` connect_error
//   server `2` ping -> client `3` pong;  `1` / `41` close / namespace disconnect
//   `42["event",data]` event, `42<id>["event",data]` event wanting an ack, `43<id>[data]` ack
//
// Usage:
//   const s = new SioClient(BASE_URL, { token }, {
//     onConnect: (ms) => ..., onError: (why) => ..., onClose: (byServer) => ... });
//   s.on('message:new', (m) => ...);
//   s.emit('message:send', {group_id, content}, (ack) => ...);
//   s.close();
import { WebSocket } from 'k6/experimental/websockets';

/** `http(s)://host[:port]` (or `ws(s)://`) to the Socket.IO websocket endpoint. */
export function socketUrl(base) {
  const b = base.replace(/\/+$/, '').replace(/^http/, 'ws');
  return `${b}/socket.io/?EIO=4&transport=websocket`;
}

export class SioClient {
  /**
   * Opens the websocket and connects to namespace `/` with `auth`.
   * callbacks: onConnect(ms since open began), onError(reason string) when the connection
   * failed before the namespace CONNECT ack, onClose(byServer) once a connected socket closes.
   */
  constructor(base, auth, callbacks = {}) {
    this.cb = callbacks;
    this.handlers = {};
    this.acks = {};
    this.nextAck = 0;
    this.connected = false;
    this.closed = false;
    this.started = Date.now();
    this.ws = new WebSocket(socketUrl(base));
    this.ws.onmessage = (e) => this._frame(String(e.data));
    this.ws.onerror = (e) => this._fail(`transport: ${e && e.error ? e.error : 'error'}`);
    this.ws.onclose = () => {
      if (!this.closed && !this.connected) this._fail('closed before connect');
      this._closed(true);
    };
    this.auth = auth;
  }

  /** Registers a handler for a server event (one per name). */
  on(event, fn) {
    this.handlers[event] = fn;
  }

  /** Emits an event; with `ackFn` the server's acknowledgement is passed to it. */
  emit(event, data, ackFn) {
    if (!this.connected) return false;
    let id = '';
    if (ackFn) {
      id = String(this.nextAck++);
      this.acks[id] = ackFn;
    }
    this.ws.send(`42${id}${JSON.stringify([event, data])}`);
    return true;
  }

  /** Number of acks still awaited. */
  pendingAcks() {
    return Object.keys(this.acks).length;
  }

  /** Disconnects from the namespace and closes the websocket. */
  close() {
    if (this.closed) return;
    try {
      if (this.connected) this.ws.send('41');
      this.ws.close();
    } catch (_) {
      // already gone
    }
    this._closed(false);
  }

  _closed(byServer) {
    const wasConnected = this.connected;
    this.closed = true;
    this.connected = false;
    if (wasConnected && this.cb.onClose) this.cb.onClose(byServer);
  }

  // A failure before the namespace CONNECT ack.
  _fail(why) {
    if (this.connected || this.closed) return;
    this.closed = true;
    if (this.cb.onError) this.cb.onError(why);
    try {
      this.ws.close();
    } catch (_) {
      // already gone
    }
  }

  _frame(f) {
    switch (f[0]) {
      case '0': // Engine.IO open: connect to the namespace with auth
        this.ws.send(`40${JSON.stringify(this.auth || {})}`);
        return;
      case '2': // ping
        this.ws.send('3');
        return;
      case '1': // Engine.IO close
        this._fail('engine.io close');
        this._closed(true);
        return;
      case '4':
        this._packet(f.substring(1));
        return;
      default:
      // `6` noop and others: nothing to do over websocket
    }
  }

  _packet(p) {
    const type = p[0];
    let i = 1;
    // An optional namespace `/nsp,` (we only use `/`, the default, which is omitted).
    if (p[i] === '/') {
      const comma = p.indexOf(',', i);
      i = comma < 0 ? p.length : comma + 1;
    }
    let id = '';
    while (i < p.length && p[i] >= '0' && p[i] <= '9') id += p[i++];
    const body = p.substring(i);
    switch (type) {
      case '0': // CONNECT ok
        this.connected = true;
        if (this.cb.onConnect) this.cb.onConnect(Date.now() - this.started);
        return;
      case '4': {
        // CONNECT_ERROR
        let msg = body;
        try {
          msg = JSON.parse(body).message;
        } catch (_) {
          // keep the raw text
        }
        this._fail(`connect_error: ${msg}`);
        return;
      }
      case '1': // namespace DISCONNECT by the server
        this._closed(true);
        this.ws.close();
        return;
      case '2': {
        // EVENT
        const arr = JSON.parse(body);
        const h = this.handlers[arr[0]];
        if (h) {
          const res = h(arr[1], arr.slice(2));
          // The server wants an ack: answer with the handler's return value.
          if (id !== '') this.ws.send(`43${id}${JSON.stringify(res === undefined ? [] : [res])}`);
        }
        return;
      }
      case '3': {
        // ACK
        const fn = this.acks[id];
        if (fn) {
          delete this.acks[id];
          const arr = JSON.parse(body);
          fn(arr[0]);
        }
        return;
      }
      default:
      // binary packets (5, 6) are not used by Conclave
    }
  }
}
