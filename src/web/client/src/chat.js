// The open group: live messages, history paging backwards, typing, the composer, and the members
// panel (for the owner: join requests, remove, ban, unban, ownership transfer, delete).
import * as api from "./api.js";
import { $, busy, fill, h, when } from "./dom.js";
import { renderMine } from "./groups.js";
import { renderManage } from "./manage.js";
import { formError, markFields, showError, showInfo } from "./notify.js";
import { randomId, state } from "./state.js";

const TYPING_SHOWN_MS = 3000;
const TYPING_SENT_EVERY_MS = 1500;

/** The open chat, or null. */
let chat = null;
let onClosed = () => {};

export const openChatId = () => chat?.group.id;

/** Opens `group` in `pane`; `closed()` is called when the chat goes away. */
export async function openChat(pane, group, closed) {
  onClosed = closed;
  chat = {
    group,
    byId: new Map(), // message id -> li
    seqs: [], // seqs shown, ascending
    lastSeq: 0,
    older: null, // before_seq for the next older page, or null
    names: new Map(), // user id -> username
    typers: new Map(), // user id -> timer
    typingSent: 0,
    pending: new Map(), // client_msg_id -> li
  };
  const g = group;
  fill(
    pane,
    h(
      "div",
      { class: "chat-head" },
      h("button", { type: "button", class: "back", onclick: () => closeChat() }, "Back to groups"),
      h("h2", { id: "chat-title", tabindex: "-1" }, g.name),
      h("p", { id: "chat-meta", class: "meta" }),
      h(
        "button",
        {
          type: "button",
          id: "manage-toggle",
          "aria-expanded": "false",
          "aria-controls": "manage",
          onclick: toggleManage,
        },
        g.role === "owner" ? "Manage group" : "Members",
      ),
    ),
    h("section", {
      id: "manage",
      class: "manage",
      hidden: true,
      "aria-label": "Members and settings",
    }),
    h(
      "button",
      { type: "button", id: "older", class: "older", hidden: true, onclick: loadOlder },
      "Load older messages",
    ),
    h("ol", {
      id: "messages",
      class: "messages",
      role: "log",
      "aria-label": `Messages in ${g.name}`,
    }),
    h("p", { id: "typing", class: "typing", "aria-live": "polite" }),
    h(
      "form",
      { id: "composer", class: "composer", novalidate: true, onsubmit: onSend },
      h("label", { for: "compose" }, "Message"),
      h("textarea", {
        id: "compose",
        name: "content",
        rows: 2,
        maxlength: 4096,
        "aria-describedby": "compose-hint",
        onkeydown: onComposeKey,
        oninput: onComposeInput,
      }),
      h("p", { class: "field-error", "data-error-for": "content" }),
      h("p", { id: "compose-hint", class: "hint" }, "Enter sends, Shift+Enter adds a line."),
      h("button", { type: "submit" }, "Send"),
    ),
  );
  renderMeta();
  $("#compose").focus();
  const mine = chat;
  try {
    await Promise.all([loadNames(), loadLatest(), refreshRole()]);
  } catch (e) {
    if (chat === mine) handleAccessError(e);
  }
}

/** Closes the chat view (back button, removal, leaving). */
export function closeChat() {
  if (!chat) return;
  for (const t of chat.typers.values()) clearTimeout(t);
  chat = null;
  onClosed();
}

function renderMeta() {
  if (!chat) return;
  const g = state.groups.get(chat.group.id) || chat.group;
  chat.group = g;
  const n = g.member_count;
  fill(
    $("#chat-meta"),
    `${g.visibility} · ${n} member${n === 1 ? "" : "s"}${g.role === "owner" ? " · you own it" : ""}`,
  );
  $("#manage-toggle").textContent = g.role === "owner" ? "Manage group" : "Members";
}

async function loadNames() {
  const c = chat;
  const { items } = await api.members(c.group.id);
  if (chat !== c) return; // another chat was opened meanwhile
  for (const m of items) chat.names.set(m.user_id, m.username);
  chat.members = items;
  // Names may arrive after the messages: fill them in.
  for (const li of chat.byId.values()) {
    const who = li.querySelector(".who");
    who.textContent = nameOf(li.dataset.sender);
  }
}

const nameOf = (id) => (id === state.me.id ? "You" : chat?.names.get(id) || `user ${id.slice(-6)}`);

async function loadLatest() {
  const c = chat;
  const page = await api.history(c.group.id);
  if (chat !== c) return;
  add(page.items);
  chat.older = page.next_cursor && page.items.length ? page.items[0].seq : null;
  $("#older").hidden = chat.older === null;
  scrollToEnd();
}

async function loadOlder(ev) {
  const list = $("#messages");
  const c = chat;
  await busy(ev.currentTarget, async () => {
    list.setAttribute("aria-busy", "true");
    const height = list.scrollHeight;
    try {
      const page = await api.history(c.group.id, c.older);
      if (chat !== c) return;
      add(page.items);
      chat.older = page.next_cursor && page.items.length ? page.items[0].seq : null;
      // Keep the messages the reader was looking at where they were.
      list.scrollTop += list.scrollHeight - height;
    } catch (e) {
      showError(e);
    } finally {
      list.removeAttribute("aria-busy");
    }
  });
  if (chat !== c) return;
  $("#older").hidden = chat.older === null;
  if (chat.older === null) list.firstElementChild?.focus();
}

/** Shows an edit or deletion on its message, if shown. Messages in history already carry
 * their current state, so only live changes need this. */
function apply(change) {
  chat.lastSeq = Math.max(chat.lastSeq, change.seq);
  const li = chat.byId.get(change.target_id);
  if (!li) return;
  const text = li.querySelector(".text");
  if (change.kind === "delete") {
    li.classList.add("deleted");
    text.textContent = "message deleted";
  } else if (!li.classList.contains("deleted")) {
    li.classList.add("edited");
    text.textContent = change.content;
  }
}

/** Inserts messages in seq order, once each (delivery is at least once); applies edits and
 * deletions to theirs. */
function add(messages) {
  const list = $("#messages");
  for (const m of messages) {
    if (m.kind === "edit" || m.kind === "delete") {
      apply(m);
      continue;
    }
    if (chat.byId.has(m.id)) continue;
    const li = h(
      "li",
      {
        class: m.sender_id === state.me.id ? "msg mine" : "msg",
        tabindex: "-1",
        dataset: { id: m.id, seq: m.seq, sender: m.sender_id },
      },
      h(
        "div",
        { class: "msg-head" },
        h("span", { class: "who" }, nameOf(m.sender_id)),
        h("time", { datetime: m.sent_at }, when(m.sent_at)),
      ),
      h("p", { class: "text" }, m.content ?? "message deleted"),
    );
    if (m.deleted_at) li.classList.add("deleted");
    else if (m.edited_at) li.classList.add("edited");
    chat.byId.set(m.id, li);
    const pending = m.client_msg_id && chat.pending.get(m.client_msg_id);
    if (pending && m.sender_id === state.me.id) {
      chat.pending.delete(m.client_msg_id);
      pending.remove();
    }
    // Usually the newest: append. Otherwise before the first message with a greater seq.
    let i = chat.seqs.length;
    while (i > 0 && chat.seqs[i - 1] > m.seq) i--;
    const next = i < chat.seqs.length ? list.querySelector(`[data-seq="${chat.seqs[i]}"]`) : null;
    chat.seqs.splice(i, 0, m.seq);
    if (next) list.insertBefore(li, next);
    else list.insertBefore(li, list.querySelector(".pending"));
    chat.lastSeq = Math.max(chat.lastSeq, m.seq);
  }
}

function nearEnd() {
  const l = $("#messages");
  return l.scrollHeight - l.scrollTop - l.clientHeight < 80;
}

function scrollToEnd() {
  const l = $("#messages");
  l.scrollTop = l.scrollHeight;
}

/** A live entry. Messages (not edits or deletions) of other groups count as unread. */
export function onMessage(m) {
  if (chat?.group.id === m.group_id) {
    const stick = nearEnd() || m.sender_id === state.me.id;
    add([m]);
    if (m.kind === "text") clearTyping(m.sender_id);
    if (stick) scrollToEnd();
    return false;
  }
  return m.kind === "text";
}

/** After a reconnect: whatever the open chat missed while the socket was away. */
export async function catchUp() {
  if (!chat) return;
  const mine = chat;
  try {
    const missed = await state.rt.sync(chat.group.id, chat.lastSeq);
    if (chat !== mine) return;
    const stick = nearEnd();
    add(missed);
    if (stick) scrollToEnd();
    if (missed.length) {
      showInfo(
        `${missed.length} message${missed.length === 1 ? "" : "s"} received while you were offline.`,
      );
    }
  } catch (e) {
    if (chat === mine) handleAccessError(e);
  }
}

// --- sending and typing ----------------------------------------------------------------------

function onComposeKey(ev) {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    ev.currentTarget.form.requestSubmit();
  }
}

function onComposeInput() {
  const now = Date.now();
  if (state.rt?.connected && now - chat.typingSent > TYPING_SENT_EVERY_MS) {
    chat.typingSent = now;
    state.rt.typing(chat.group.id);
  }
}

async function onSend(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  const box = form.elements.content;
  const content = box.value;
  if (!content.trim()) {
    box.focus();
    return;
  }
  const groupId = chat.group.id;
  const cmid = randomId();
  const li = h(
    "li",
    { class: "msg mine pending" },
    h(
      "div",
      { class: "msg-head" },
      h("span", { class: "who" }, "You"),
      h("span", { class: "state" }, "sending…"),
    ),
    h("p", { class: "text" }, content),
  );
  chat.pending.set(cmid, li);
  $("#messages").append(li);
  scrollToEnd();
  box.value = "";
  markFields(form);
  try {
    await deliver(groupId, content, cmid);
  } catch (e) {
    if (chat?.group.id !== groupId) return showError(e);
    chat.pending.delete(cmid);
    li.remove();
    // Give the text back so nothing typed is lost.
    if (!box.value) box.value = content;
    formError(form, e);
    handleAccessError(e, true);
  }
}

/**
 * Over the socket when connected, else over HTTP with the same idempotency key: also when the
 * ack is late, or the socket's token expired before the server swept the socket.
 */
async function deliver(groupId, content, cmid) {
  if (state.rt?.connected) {
    try {
      return await state.rt.send(groupId, content, cmid);
    } catch (e) {
      if (e.code !== "timeout" && e.code !== "unauthenticated") throw e;
    }
  }
  return api.sendMessage(groupId, content, cmid);
}

export function onTyping(e) {
  if (chat?.group.id !== e.group_id || e.user_id === state.me.id) return;
  clearTimeout(chat.typers.get(e.user_id));
  chat.typers.set(
    e.user_id,
    setTimeout(() => clearTyping(e.user_id), TYPING_SHOWN_MS),
  );
  renderTyping();
}

function clearTyping(user) {
  if (!chat?.typers.has(user)) return;
  clearTimeout(chat.typers.get(user));
  chat.typers.delete(user);
  renderTyping();
}

function renderTyping() {
  const names = [...chat.typers.keys()].map(nameOf);
  fill(
    $("#typing"),
    names.length === 0
      ? ""
      : names.length === 1
        ? `${names[0]} is typing…`
        : `${names.slice(0, -1).join(", ")} and ${names.at(-1)} are typing…`,
  );
}

// --- membership changes --------------------------------------------------------------------

/** Someone joined or left the open group: names, counts and the panel follow. */
export async function onMembersChanged(groupId) {
  if (chat?.group.id !== groupId) return;
  renderMeta();
  await loadNames().catch(() => {});
  if (!$("#manage").hidden) await showManage();
}

/** A join request arrived or was withdrawn (owners and moderators are told live). */
export async function onRequestsChanged(groupId) {
  if (chat?.group.id === groupId && !$("#manage").hidden) await showManage();
}

/** A refused read or send because access is gone (banned, removed, deleted): close the chat. */
function handleAccessError(e, alreadyShown = false) {
  if (!alreadyShown) showError(e);
  if (["banned", "not_found", "forbidden"].includes(e.code)) closeChat();
}

// --- the members panel -----------------------------------------------------------------------

async function toggleManage(ev) {
  const btn = ev.currentTarget;
  const panel = $("#manage");
  const open = panel.hidden;
  panel.hidden = !open;
  btn.setAttribute("aria-expanded", String(open));
  if (open) {
    await showManage();
    panel.querySelector("h3")?.focus();
  }
}

/** The group as the server has it now (role, member count): ownership may have changed. */
async function refreshRole() {
  const { items } = await api.myGroups();
  const fresh = items.find((x) => x.id === chat?.group.id);
  if (fresh) {
    state.groups.set(fresh.id, { ...fresh, unread: 0 });
    renderMeta();
    renderMine();
  }
}

const manageCtx = {
  current: () => chat?.group,
  accessLost: (e) => handleAccessError(e),
  names: (members) => members.forEach((m) => chat?.names.set(m.user_id, m.username)),
  gone(g) {
    state.groups.delete(g.id);
    if (chat?.group.id === g.id) closeChat();
    renderMine();
  },
  async changed(g) {
    if (chat?.group.id !== g.id) return;
    await refreshRole();
    await showManage();
    $("#manage h3")?.focus();
  },
};

const showManage = () => renderManage($("#manage"), manageCtx);
