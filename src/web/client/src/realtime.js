// The Socket.IO side (README "Real time"): one socket per tab, authenticated with the current
// access token on every (re)connect. After any reconnect the app asks `group:sync` from the last
// seq it has, so nothing sent while the socket was away is missed.
import { io } from "socket.io-client";
import { accessToken, refresh } from "./api.js";
import { ApiError } from "./errors.js";

const ACK_TIMEOUT = 10_000;

/**
 * Connects and reports through `on`: status(state, detail), connected(isReconnect), message(m),
 * typing(e), joined(e), left(e), removed(e), requests(e) (a join request arrived or was
 * withdrawn: owners and moderators only), failed(err).
 */
export function connect(on) {
  const socket = io({
    // Called on every connection attempt, so a reconnect uses a fresh token.
    auth: (cb) =>
      accessToken().then(
        (token) => cb({ token }),
        () => cb({}),
      ),
  });
  let everConnected = false;
  let unauthorizedInARow = 0;

  const status = () => on.status(socket.connected ? "online" : "offline", transport());
  const transport = () => socket.io.engine?.transport?.name;

  socket.on("connect", () => {
    unauthorizedInARow = 0;
    status();
    socket.io.engine.once("upgrade", status);
    on.connected(everConnected);
    everConnected = true;
  });
  socket.on("disconnect", (reason) => {
    status();
    // The server closed it (token expired and swept): reconnect, with a refreshed token.
    if (reason === "io server disconnect") socket.connect();
  });
  socket.on("connect_error", async (err) => {
    status();
    if (socket.active) return; // a transport error: socket.io retries by itself
    if (err.message === "unauthorized" && unauthorizedInARow++ < 2) {
      try {
        await refresh();
        socket.connect();
      } catch (e) {
        on.failed(e);
      }
    } else if (err.message === "unavailable") {
      setTimeout(() => socket.connect(), 2000);
    } else {
      const known = { unauthorized: "unauthenticated", too_many_sockets: "too_many_sockets" };
      const code = known[err.message] || "unavailable";
      on.failed(new ApiError({ code, message: err.message }));
    }
  });
  socket.on("message:new", on.message);
  socket.on("typing", on.typing);
  socket.on("group:member_joined", on.joined);
  socket.on("group:member_left", on.left);
  socket.on("group:removed", on.removed);
  socket.on("group:join_requested", on.requests);
  socket.on("group:join_request_withdrawn", on.requests);

  async function ask(event, payload) {
    let ack;
    try {
      ack = await socket.timeout(ACK_TIMEOUT).emitWithAck(event, payload);
    } catch {
      throw new ApiError({ code: "timeout" });
    }
    if (!ack.ok) throw new ApiError(ack.error);
    return ack;
  }

  return {
    get connected() {
      return socket.connected;
    },
    /** Sends over the socket; the message itself comes back as `message:new`. */
    send: (groupId, content, clientMsgId) =>
      ask("message:send", { group_id: groupId, content, client_msg_id: clientMsgId }),
    /** Every message after `afterSeq`, in pages of 100. */
    async sync(groupId, afterSeq) {
      const all = [];
      for (;;) {
        const { items } = await ask("group:sync", {
          group_id: groupId,
          after_seq: afterSeq,
          limit: 100,
        });
        all.push(...items);
        if (items.length < 100) return all;
        afterSeq = items[items.length - 1].seq;
      }
    },
    typing: (groupId) => socket.emit("typing", { group_id: groupId }),
    close: () => socket.disconnect(),
  };
}
