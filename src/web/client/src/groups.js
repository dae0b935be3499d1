// The side panel: the user's groups, search (join or request), and a form to create a group.
import * as api from "./api.js";
import { $, busy, fill, h } from "./dom.js";
import { formError, markFields, showError, showInfo } from "./notify.js";
import { state } from "./state.js";

let openGroup = () => {};
let results = { items: [], next: null, query: "", visibility: "" };

/** The side panel; `onOpen(group)` opens a chat. */
export function renderSidebar(onOpen) {
  openGroup = onOpen;
  return h(
    "nav",
    { class: "side", "aria-label": "Groups" },
    h(
      "section",
      { "aria-labelledby": "mine-h" },
      h("h2", { id: "mine-h", tabindex: "-1" }, "Your groups"),
      h("ul", { id: "mine", class: "group-list" }),
    ),
    h(
      "section",
      { "aria-labelledby": "find-h" },
      h("h2", { id: "find-h" }, "Find groups"),
      h(
        "form",
        { id: "search-form", role: "search", class: "stack", onsubmit: onSearch },
        h("label", { for: "search-query" }, "Name contains"),
        h("input", { id: "search-query", name: "query", type: "search", maxlength: 100 }),
        h("label", { for: "search-visibility" }, "Visibility"),
        h(
          "select",
          { id: "search-visibility", name: "visibility" },
          h("option", { value: "" }, "Open and private"),
          h("option", { value: "open" }, "Open"),
          h("option", { value: "private" }, "Private"),
        ),
        h("button", { type: "submit" }, "Search"),
      ),
      h("ul", { id: "results", class: "group-list", "aria-label": "Search results" }),
      h(
        "button",
        { id: "more-results", type: "button", hidden: true, onclick: onMore },
        "More results",
      ),
    ),
    h(
      "section",
      { "aria-labelledby": "new-h" },
      h("h2", { id: "new-h" }, "Create a group"),
      h(
        "form",
        { id: "create-form", class: "stack", novalidate: true, onsubmit: onCreate },
        h("label", { for: "new-name" }, "Name"),
        h("input", { id: "new-name", name: "name", required: true, maxlength: 100 }),
        h("p", { class: "field-error", "data-error-for": "name" }),
        h("label", { for: "new-description" }, "Description (optional)"),
        h("textarea", { id: "new-description", name: "description", rows: 2, maxlength: 1000 }),
        h("p", { class: "field-error", "data-error-for": "description" }),
        h(
          "fieldset",
          {},
          h("legend", {}, "Who can join"),
          h(
            "label",
            { class: "choice" },
            h("input", { type: "radio", name: "visibility", value: "open", checked: true }),
            " Open: anyone can join",
          ),
          h(
            "label",
            { class: "choice" },
            h("input", { type: "radio", name: "visibility", value: "private" }),
            " Private: you approve requests",
          ),
        ),
        h("button", { type: "submit" }, "Create group"),
      ),
    ),
  );
}

/** Reloads the user's groups from the server. */
export async function loadMine() {
  const { items } = await api.myGroups();
  const old = state.groups;
  state.groups = new Map(items.map((g) => [g.id, { ...g, unread: old.get(g.id)?.unread || 0 }]));
  for (const id of state.groups.keys()) state.pending.delete(id);
  renderMine();
  renderResults();
}

export function renderMine(currentId = $("#mine")?.dataset.current) {
  const list = $("#mine");
  if (!list) return;
  list.dataset.current = currentId || "";
  const groups = [...state.groups.values()].sort((a, b) => a.name.localeCompare(b.name));
  if (!groups.length) {
    fill(list, h("li", { class: "empty" }, "No groups yet: find one below or create one."));
    return;
  }
  fill(
    list,
    groups.map((g) =>
      h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: "group-link",
            "aria-current": g.id === currentId ? "true" : undefined,
            onclick: () => openGroup(g),
          },
          h("span", { class: "name" }, g.name),
          h("span", { class: "meta" }, `${g.visibility}${g.role === "owner" ? " · owner" : ""}`),
          g.unread
            ? h("span", { class: "badge" }, `${g.unread}`, h("span", { class: "sr" }, " unread"))
            : null,
        ),
      ),
    ),
  );
}

/** The user is now a member (joined, approved): refresh the list. */
export const memberships = () => loadMine().catch(showError);

async function search(query, visibility, cursor) {
  const page = await api.searchGroups(query, visibility, cursor);
  results = {
    items: cursor ? [...results.items, ...page.items] : page.items,
    next: page.next_cursor,
    query,
    visibility,
  };
  renderResults();
}

/** First page of all groups, shown after login. */
export const initialSearch = () => search("", "").catch(showError);

function onSearch(ev) {
  ev.preventDefault();
  const f = ev.target;
  busy(f.querySelector("button"), () =>
    search(f.elements.query.value.trim(), f.elements.visibility.value).then(() => {
      const n = results.items.length;
      showInfo(n ? `${n} group${n === 1 ? "" : "s"} found.` : "No group matches.");
    }),
  ).catch(showError);
}

function onMore(ev) {
  busy(ev.target, () => search(results.query, results.visibility, results.next)).catch(showError);
}

export function renderResults() {
  const list = $("#results");
  if (!list) return;
  $("#more-results").hidden = !results.next;
  if (!results.items.length) {
    fill(list, h("li", { class: "empty" }, "No groups to show."));
    return;
  }
  fill(list, results.items.map(resultItem));
}

function resultItem(g) {
  const mine = state.groups.get(g.id);
  const label = `${g.visibility} · ${g.member_count} member${g.member_count === 1 ? "" : "s"}`;
  let action;
  if (mine) {
    action = h("button", { type: "button", onclick: () => openGroup(mine) }, "Open");
  } else if (state.pending.has(g.id)) {
    action = h(
      "button",
      { type: "button", onclick: (ev) => act(ev, () => withdraw(g)) },
      "Withdraw request",
    );
  } else {
    action = h(
      "button",
      { type: "button", onclick: (ev) => act(ev, () => join(g)) },
      g.visibility === "private" ? "Request to join" : "Join",
    );
  }
  return h(
    "li",
    { class: "result", dataset: { groupId: g.id } },
    h("span", { class: "name" }, g.name),
    h("span", { class: "meta" }, label),
    g.description ? h("span", { class: "desc" }, g.description) : null,
    action,
  );
}

const act = (ev, fn) => busy(ev.currentTarget, fn).catch(showError);

async function join(g) {
  try {
    const r = await api.join(g.id);
    if (r.status === "pending") {
      state.pending.add(g.id);
      showInfo(`Request sent: the owner of “${g.name}” will approve or reject it.`);
      renderResults();
      return;
    }
  } catch (e) {
    if (e.code === "request_pending") state.pending.add(g.id);
    if (e.code !== "already_member") {
      renderResults();
      throw e;
    }
  }
  await loadMine();
  showInfo(`You joined “${g.name}”.`);
  const mine = state.groups.get(g.id);
  if (mine) openGroup(mine);
}

async function withdraw(g) {
  await api.withdraw(g.id).catch((e) => {
    if (e.code !== "not_found") throw e;
  });
  state.pending.delete(g.id);
  renderResults();
  showInfo(`Request to join “${g.name}” withdrawn.`);
}

function onCreate(ev) {
  ev.preventDefault();
  const f = ev.target;
  const body = {
    name: f.elements.namedItem("name").value.trim(),
    visibility: f.elements.visibility.value,
    description: f.elements.description.value.trim() || undefined,
  };
  busy(f.querySelector("button[type=submit]"), async () => {
    try {
      const g = await api.createGroup(body);
      markFields(f);
      f.reset();
      await loadMine();
      showInfo(`Group “${g.name}” created.`);
      openGroup(state.groups.get(g.id) || { ...g, role: "owner" });
    } catch (e) {
      formError(f, e);
    }
  });
}
