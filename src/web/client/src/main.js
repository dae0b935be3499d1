// Conclave's web client: log in, then groups on the side and the open chat beside them (one
// column on a narrow screen). REST for everything but live traffic, Socket.IO for that.
import * as api from "./api.js";
import {
  catchUp,
  closeChat,
  onMembersChanged,
  onMessage,
  onRequestsChanged,
  onTyping,
  openChat,
  openChatId,
} from "./chat.js";
import { $, busy, fill, h } from "./dom.js";
import {
  initialSearch,
  loadMine,
  memberships,
  renderMine,
  renderResults,
  renderSidebar,
} from "./groups.js";
import { clearNotices, formError, markFields, showAlert, showError, showInfo } from "./notify.js";
import { connect } from "./realtime.js";
import { state } from "./state.js";

const main = $("#main");

function showLogin() {
  state.rt?.close();
  state.rt = null;
  state.me = null;
  state.groups.clear();
  state.pending.clear();
  $("#who").hidden = true;
  setConnection("", "");
  const form = h(
    "form",
    { id: "auth-form", class: "stack", novalidate: true, onsubmit: onAuth },
    h("label", { for: "username" }, "Username"),
    h("input", {
      id: "username",
      name: "username",
      autocomplete: "username",
      autocapitalize: "none",
      spellcheck: "false",
      required: true,
      maxlength: 32,
      "aria-describedby": "username-hint",
    }),
    h("p", { id: "username-hint", class: "hint" }, "3 to 32 letters, digits, “_”, “.” or “-”."),
    h("p", { class: "field-error", "data-error-for": "username" }),
    h("label", { for: "password" }, "Password"),
    h("input", {
      id: "password",
      name: "password",
      type: "password",
      autocomplete: "current-password",
      required: true,
      maxlength: 128,
      "aria-describedby": "password-hint",
    }),
    h("p", { id: "password-hint", class: "hint" }, "At least 8 characters."),
    h("p", { class: "field-error", "data-error-for": "password" }),
    h(
      "div",
      { class: "row" },
      h("button", { type: "submit", value: "login" }, "Log in"),
      h("button", { type: "submit", value: "register", class: "secondary" }, "Create account"),
    ),
  );
  fill(
    main,
    h(
      "section",
      { class: "auth", "aria-labelledby": "auth-h" },
      h("h2", { id: "auth-h" }, "Log in or create an account"),
      h("p", {}, "Secure group chat: open and private groups, messages encrypted at rest."),
      form,
    ),
  );
  $("#username").focus();
}

async function onAuth(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  const register = ev.submitter?.value === "register";
  const username = form.elements.username.value.trim();
  const password = form.elements.password.value;
  await busy(ev.submitter, async () => {
    try {
      if (register) await api.register(username, password);
      await api.login(username, password);
    } catch (e) {
      formError(form, e);
      (form.querySelector("[aria-invalid]") || form.elements.username).focus();
      return;
    }
    markFields(form);
    clearNotices();
    if (register) showInfo(`Welcome, ${username}! Your account is ready.`);
    await start();
  });
}

async function start() {
  try {
    state.me = await api.me();
  } catch (e) {
    showError(e);
    return showLogin();
  }
  fill($("#me"), state.me.username);
  $("#who").hidden = false;
  const pane = h("section", { id: "chat", class: "chat", "aria-label": "Chat" }, placeholder());
  fill(
    main,
    h(
      "div",
      { id: "app", class: "app" },
      renderSidebar((g) => open(pane, g)),
      pane,
    ),
  );
  state.rt = connect({
    status: setConnection,
    connected: (again) => {
      if (!again) return;
      // Back after a disconnect: membership may have changed and messages may be missed.
      memberships();
      catchUp();
    },
    message: (m) => {
      if (onMessage(m)) {
        const g = state.groups.get(m.group_id);
        if (g) g.unread = (g.unread || 0) + 1;
        renderMine(openChatId());
      }
    },
    typing: onTyping,
    joined: (e) => memberChange(e, true),
    left: (e) => memberChange(e, false),
    removed: onRemoved,
    requests: (e) => onRequestsChanged(e.group_id),
    failed: (e) => {
      showError(e);
      setConnection("offline", "");
    },
  });
  await Promise.all([loadMine().catch(showError), initialSearch()]);
  $("#mine-h").focus();
}

function placeholder() {
  return h("p", { class: "placeholder" }, "Choose a group to chat in, or create one.");
}

function open(pane, group) {
  const g = state.groups.get(group.id) || group;
  g.unread = 0;
  renderMine(g.id);
  $("#app").classList.add("chat-open");
  openChat(pane, g, () => {
    fill(pane, placeholder());
    $("#app")?.classList.remove("chat-open");
    renderMine("");
    $("#mine-h")?.focus();
  });
}

async function memberChange(e, joined) {
  if (e.user_id === state.me.id) {
    // News only when approved: a group this tab created or joined is known already.
    const known = state.groups.has(e.group_id);
    await loadMine().catch(showError);
    const g = state.groups.get(e.group_id);
    if (joined && g && !known) showInfo(`You are now a member of “${g.name}”.`);
    return;
  }
  const g = state.groups.get(e.group_id);
  if (g) g.member_count = Math.max(0, g.member_count + (joined ? 1 : -1));
  await onMembersChanged(e.group_id);
}

function onRemoved(e) {
  // Gone already: this tab left or deleted it.
  if (!state.groups.has(e.group_id)) return;
  const g = state.groups.get(e.group_id);
  const name = g ? `“${g.name}”` : "a group";
  state.groups.delete(e.group_id);
  if (openChatId() === e.group_id) closeChat();
  renderMine(openChatId());
  renderResults();
  const why = {
    banned: `You were banned from ${name}.`,
    removed: `You were removed from ${name}.`,
    deleted: `${name[0].toUpperCase()}${name.slice(1)} was deleted by its owner.`,
  };
  showAlert(why[e.reason] || `You no longer have access to ${name}.`);
}

function setConnection(online, transport) {
  const el = $("#conn");
  el.dataset.state = online;
  el.dataset.transport = transport || "";
  fill(el, online === "online" ? "Connected" : online === "offline" ? "Reconnecting…" : "");
}

async function logout(ev) {
  await busy(ev.currentTarget, async () => {
    closeChat();
    state.rt?.close();
    await api.logout();
    clearNotices();
    showLogin();
    showInfo("You are logged out.");
  });
}

api.onSessionEnded((e) => {
  showLogin();
  showError(e);
});
$("#logout").addEventListener("click", logout);

if (api.hasSession()) {
  api.refresh().then(start, (e) => {
    showLogin();
    if (e.code !== "unauthenticated") showError(e);
  });
} else {
  showLogin();
}
