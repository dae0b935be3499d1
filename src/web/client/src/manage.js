// The members panel of a group: everyone sees the members; the owner and moderators also join
// requests (approve, reject; they arrive live, see chat.js onRequestsChanged), bans (unban) and
// remove and ban for plain members; the owner alone makes moderators and owners, and deletes.
import * as api from "./api.js";
import { busy, fill, h, when } from "./dom.js";
import { showError, showInfo } from "./notify.js";
import { state } from "./state.js";

/**
 * Fills `panel` for the group `ctx.current()`. `ctx`: current() the open group or null,
 * accessLost(err), gone(group) after leaving or deleting it, changed(group) after any other
 * action, names(members) to learn usernames.
 */
export async function renderManage(panel, ctx) {
  const g = ctx.current();
  if (!g) return;
  const owner = g.role === "owner";
  const manager = owner || g.role === "moderator";
  const [members, requests, banned] = await Promise.all([
    api.members(g.id),
    manager ? api.joinRequests(g.id) : null,
    manager ? api.bans(g.id) : null,
  ]).catch((e) => {
    ctx.accessLost(e);
    return [];
  });
  if (!members || ctx.current()?.id !== g.id) return;
  ctx.names(members.items);
  const sections = [];
  if (manager) {
    sections.push(
      h(
        "section",
        { "aria-labelledby": "requests-h" },
        h("h3", { id: "requests-h", tabindex: "-1" }, `Join requests (${requests.items.length})`),
        requests.items.length
          ? h(
              "ul",
              { class: "people", id: "requests" },
              requests.items.map((r) =>
                h(
                  "li",
                  {},
                  h("span", { class: "name" }, r.username),
                  h("span", { class: "meta" }, `asked ${when(r.requested_at)}`),
                  button(
                    ctx,
                    g,
                    `Approve ${r.username}`,
                    "Approve",
                    () => api.approve(g.id, r.user_id),
                    `${r.username} is now a member.`,
                  ),
                  button(
                    ctx,
                    g,
                    `Reject ${r.username}`,
                    "Reject",
                    () => api.reject(g.id, r.user_id),
                    `Request of ${r.username} rejected.`,
                  ),
                ),
              ),
            )
          : h("p", { class: "empty" }, "No pending requests."),
      ),
    );
  }
  sections.push(
    h(
      "section",
      { "aria-labelledby": "members-h" },
      h(
        "h3",
        { id: "members-h", tabindex: "-1" },
        `Members (${members.items.length}${members.next_cursor ? "+" : ""})`,
      ),
      h(
        "ul",
        { class: "people", id: "members" },
        members.items.map((m) =>
          h(
            "li",
            {},
            h(
              "span",
              { class: "name" },
              m.user_id === state.me.id ? `${m.username} (you)` : m.username,
            ),
            h("span", { class: "meta" }, m.role),
            owner && m.user_id !== state.me.id
              ? button(
                  ctx,
                  g,
                  m.role === "moderator"
                    ? `Make ${m.username} a plain member`
                    : `Make ${m.username} a moderator`,
                  m.role === "moderator" ? "Unmake moderator" : "Make moderator",
                  () => api.setRole(g.id, m.user_id, m.role === "moderator" ? "member" : "moderator"),
                  `${m.username} is now a ${m.role === "moderator" ? "member" : "moderator"}.`,
                )
              : null,
            owner && m.user_id !== state.me.id
              ? button(
                  ctx,
                  g,
                  `Make ${m.username} the owner`,
                  "Make owner",
                  () => api.transfer(g.id, m.user_id),
                  `${m.username} now owns the group.`,
                  `Make ${m.username} the owner? You stay a member.`,
                )
              : null,
            manager && m.user_id !== state.me.id && (owner || m.role === "member")
              ? [
                  button(
                    ctx,
                    g,
                    `Remove ${m.username}`,
                    "Remove",
                    () => api.removeMember(g.id, m.user_id),
                    `${m.username} was removed.`,
                    `Remove ${m.username} from the group?`,
                  ),
                  button(
                    ctx,
                    g,
                    `Ban ${m.username}`,
                    "Ban",
                    () => api.ban(g.id, m.user_id),
                    `${m.username} was banned.`,
                    `Ban ${m.username}? They cannot rejoin until unbanned.`,
                  ),
                ]
              : null,
          ),
        ),
      ),
    ),
  );
  if (manager) {
    sections.push(
      h(
        "section",
        { "aria-labelledby": "bans-h" },
        h("h3", { id: "bans-h" }, `Banned (${banned.items.length})`),
        banned.items.length
          ? h(
              "ul",
              { class: "people", id: "bans" },
              banned.items.map((b) =>
                h(
                  "li",
                  {},
                  h("span", { class: "name" }, b.username),
                  h("span", { class: "meta" }, `since ${when(b.banned_at)}`),
                  button(
                    ctx,
                    g,
                    `Unban ${b.username}`,
                    "Unban",
                    () => api.unban(g.id, b.user_id),
                    `${b.username} was unbanned.`,
                  ),
                ),
              ),
            )
          : h("p", { class: "empty" }, "Nobody is banned."),
      ),
    );
  }
  sections.push(
    h(
      "div",
      { class: "row" },
      button(
        ctx,
        g,
        "Leave this group",
        "Leave group",
        () => api.leave(g.id),
        `You left “${g.name}”.`,
        `Leave “${g.name}”?`,
        true,
      ),
      owner
        ? button(
            ctx,
            g,
            "Delete this group",
            "Delete group",
            () => api.deleteGroup(g.id),
            `“${g.name}” was deleted.`,
            `Delete “${g.name}” and all its messages for everyone?`,
            true,
          )
        : null,
    ),
  );
  fill(panel, sections);
}

/** An action button: optional confirmation, then the call, a notice and a fresh view. */
function button(ctx, g, label, text, call, done, confirmText, closes = false) {
  return h(
    "button",
    {
      type: "button",
      "aria-label": label,
      class: closes ? "danger" : undefined,
      onclick: (ev) => {
        if (confirmText && !window.confirm(confirmText)) return;
        busy(ev.currentTarget, async () => {
          try {
            await call();
          } catch (e) {
            showError(e);
            return;
          }
          showInfo(done);
          await (closes ? ctx.gone(g) : ctx.changed(g));
        });
      },
    },
    text,
  );
}
