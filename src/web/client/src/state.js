// What the tab knows: who is logged in, their groups, the realtime connection and the open chat.
export const state = {
  /** { id, username } */
  me: null,
  /** group id -> group (GET /groups/mine: with `role`) plus `unread` */
  groups: new Map(),
  /** group ids this tab sent a join request for (the API has no "my requests" listing) */
  pending: new Set(),
  /** the realtime connection (realtime.js) */
  rt: null,
};

/** 16 random bytes as hex: an idempotency key for a message (works outside secure contexts). */
export function randomId() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
