// Every error code of the API (docs/api.md) as a sentence a user understands. The server answers
// REST calls with application/problem+json and Socket.IO acks with {ok:false, error}; both
// become an ApiError with the same fields.

export class ApiError extends Error {
  constructor({ code, detail, message, status, errors, retry_after }) {
    super(detail || message || code);
    this.code = code || "internal_error";
    this.status = status;
    this.errors = errors || [];
    this.retryAfter = retry_after;
  }
}

/** The fetch failed before any answer (server down, offline). */
export const networkError = () => new ApiError({ code: "network", message: "network error" });

/** "2 days", "47 h 59 min", "4 min 10 s", "12 s". */
export function formatDuration(seconds) {
  let s = Math.max(1, Math.ceil(Number(seconds) || 0));
  const d = Math.floor(s / 86400);
  const hrs = Math.floor((s % 86400) / 3600);
  const min = Math.floor((s % 3600) / 60);
  s %= 60;
  if (d >= 2 && hrs === 0) return `${d} days`;
  if (d >= 1) return `${d * 24 + hrs} h${min ? ` ${min} min` : ""}`;
  if (hrs) return `${hrs} h${min ? ` ${min} min` : ""}`;
  if (min) return `${min} min${s ? ` ${s} s` : ""}`;
  return `${s} s`;
}

const wait = (e) => (e.retryAfter ? ` Try again in ${formatDuration(e.retryAfter)}.` : "");

const MESSAGES = {
  validation_failed: (e) =>
    e.errors.length
      ? `Please check: ${e.errors.map((f) => `${f.field} ${f.message}`).join("; ")}.`
      : `Please check your input: ${e.message}.`,
  weak_password: (e) =>
    `Choose another password: this one ${e.errors[0]?.message || "is too easy to guess"}.`,
  malformed_request: () => "The server could not read that request. Reload the page and try again.",
  unauthenticated: () => "Your session has ended. Please log in again.",
  invalid_credentials: () => "Wrong username or password.",
  forbidden: () => "You are not allowed to do that in this group.",
  banned: () => "You are banned from this group.",
  cooldown_active: (e) =>
    `You left or were removed from this private group recently. You can ask to join again in ${formatDuration(e.retryAfter)}.`,
  not_found: () => "Not found: it no longer exists, or you no longer have access to it.",
  method_not_allowed: () => "The server does not support that action.",
  username_taken: () => "That username is taken. Choose another one.",
  already_member: () => "You are already a member of this group.",
  request_pending: () => "Your request to join is already waiting for the owner's approval.",
  owner_must_transfer: () =>
    "You own this group: transfer ownership to another member before leaving, or delete the group.",
  group_full: () => "This group is full.",
  too_many_groups: () =>
    "You are in as many groups as an account may join: leave one before joining or creating another.",
  payload_too_large: () => "That is too large to send.",
  request_timeout: () => "Sending that took too long. Check your connection and try again.",
  rate_limited: (e) => `Too many requests.${wait(e) || " Wait a moment and try again."}`,
  unavailable: (e) => `The service is temporarily unavailable.${wait(e) || " Try again shortly."}`,
  internal_error: () => "Something went wrong on the server (it has been logged). Try again.",
  network: () => "Cannot reach the server. Check your connection; retrying may help.",
  timeout: () => "The server did not answer in time. Try again.",
  too_many_sockets: () =>
    "This account has too many live connections (other tabs or devices). Close one, then reload.",
};

/** The sentence to show for an error (ApiError or anything thrown). */
export function describe(err) {
  if (err instanceof ApiError) {
    const f = MESSAGES[err.code];
    return f ? f(err) : `Error: ${err.message} (${err.code}).`;
  }
  return `Unexpected error: ${err?.message || err}`;
}
