// The web client end to end, in headless Chromium against the real server: two people meet in
// a private group, chat live both ways, survive a lost connection, page through history, and one
// bans the other. Plus a narrow screen and a keyboard-only login.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { api, launch, newPage, shot, startServer, username } from "./browser.js";

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const PASSWORD = "a long enough password";

/** Registers `name` through the form and waits for the logged-in view. */
async function register(page, name) {
  await page.goto("/");
  await page.getByLabel("Username").fill(name);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.locator("#me", { hasText: name }).waitFor();
  await page.locator("#conn[data-state=online]").waitFor();
}

const messages = (page) => page.locator("#messages li:not(.pending)");
const message = (page, text) => page.locator("#messages li:not(.pending)", { hasText: text });

describe("two people in a private group", () => {
  let a;
  let b;
  const alice = username("alice");
  const bob = username("bob");
  const group = `Book club ${process.pid}`;

  // Bob's websockets pass through playwright, so the test can cut them: offline emulation
  // (setOffline) stops HTTP but leaves open websockets alone.
  const bobSockets = [];

  before(async () => {
    a = await newPage(browser, server.base);
    b = await newPage(browser, server.base);
    await b.routeWebSocket(/\/socket\.io\//, (ws) => {
      bobSockets.push(ws);
      ws.connectToServer();
    });
  });

  after(async () => {
    for (const p of [a, b]) {
      assert.deepEqual(p?.problems ?? [], [], "no page errors, no CSP violations");
      await p?.context().close();
    }
  });

  test("both register; the page talks to the server over a websocket", async () => {
    await register(a, alice);
    await register(b, bob);
    // The CSP (connect-src 'self') lets the Socket.IO upgrade through.
    await a.locator("#conn[data-transport=websocket]").waitFor();
    await shot(b, "01-registered");
  });

  test("alice creates a private group", async () => {
    await a.getByLabel("Name", { exact: true }).fill(group);
    await a.getByLabel("Private: you approve requests").check();
    await a.getByRole("button", { name: "Create group" }).click();
    await a.locator("#chat-title", { hasText: group }).waitFor();
    assert.match(await a.locator("#chat-meta").innerText(), /private · 1 member · you own it/);
    await a
      .locator("#mine")
      .getByRole("button", { name: new RegExp(group) })
      .waitFor();
    await a.getByRole("button", { name: "Manage group" }).click();
    await a.getByText("No pending requests.").waitFor();
  });

  test("bob finds it and asks to join", async () => {
    await b.getByLabel("Name contains").fill(group);
    await b.getByRole("button", { name: "Search" }).click();
    const hit = b.locator("#results li", { hasText: group });
    await hit.getByRole("button", { name: "Request to join" }).click();
    await b.locator("#info", { hasText: "Request sent" }).waitFor();
    await hit.getByRole("button", { name: "Withdraw request" }).waitFor();
    // Asking twice is answered with a clear message.
    await b.reload();
    await b.getByLabel("Name contains").fill(group);
    await b.getByRole("button", { name: "Search" }).click();
    await b
      .locator("#results li", { hasText: group })
      .getByRole("button", { name: "Request to join" })
      .click();
    await b.locator("#alert", { hasText: "already waiting for the owner's approval" }).waitFor();
  });

  test("alice approves; bob is told at once and opens the chat", async () => {
    // Alice has had the panel open all along: the request shows up live (group:join_requested).
    await a.locator("#requests li", { hasText: bob }).waitFor();
    assert.equal(await a.getByRole("button", { name: "Refresh" }).count(), 0);
    await shot(a, "02-join-request");
    await a.getByRole("button", { name: `Approve ${bob}` }).click();
    await a.locator("#members li", { hasText: bob }).waitFor();
    await b.locator("#info", { hasText: `You are now a member of “${group}”` }).waitFor();
    await b
      .locator("#mine")
      .getByRole("button", { name: new RegExp(group) })
      .click();
    await b.locator("#chat-title", { hasText: group }).waitFor();
    await a.getByRole("button", { name: "Manage group" }).click(); // close the panel
  });

  test("they chat both ways, live, with a typing indicator", async () => {
    await a.getByLabel("Message", { exact: true }).pressSequentially("Hello Bob");
    await b.locator("#typing", { hasText: `${alice} is typing…` }).waitFor();
    await a.getByLabel("Message", { exact: true }).press("Enter");
    await message(b, "Hello Bob").waitFor();
    assert.equal(await message(b, "Hello Bob").locator(".who").innerText(), alice);
    assert.equal(await message(a, "Hello Bob").locator(".who").innerText(), "You");

    await b.getByLabel("Message", { exact: true }).fill("Hi Alice!\nGood to be here.");
    await b.getByRole("button", { name: "Send" }).click();
    await message(a, "Good to be here.").waitFor();
    assert.equal(await message(a, "Hi Alice!").locator(".who").innerText(), bob);
    await a.getByLabel("Message", { exact: true }).fill("Welcome, the first book is Dune.");
    await a.getByLabel("Message", { exact: true }).press("Enter");
    await message(b, "the first book is Dune").waitFor();
    await a.getByLabel("Message", { exact: true }).fill("I am reading it now");
    await shot(a, "03-chat-alice");
    await shot(b, "04-chat-bob");
    await a.getByLabel("Message", { exact: true }).fill("");
  });

  test("bob's connection drops; on reconnect he gets what he missed (group:sync)", async () => {
    await b.context().setOffline(true); // no HTTP: neither REST nor long-polling
    for (const ws of bobSockets.splice(0)) await ws.close();
    await b.locator("#conn[data-state=offline]").waitFor();
    await a.getByLabel("Message", { exact: true }).fill("Sent while Bob was offline");
    await a.getByLabel("Message", { exact: true }).press("Enter");
    await message(a, "Sent while Bob was offline").waitFor();
    await b.context().setOffline(false);
    await message(b, "Sent while Bob was offline").waitFor();
    await b.locator("#info", { hasText: "1 message received while you were offline" }).waitFor();
    await b.locator("#conn[data-state=online]").waitFor();
  });

  test("history pages backwards, and the session survives a reload", async () => {
    const http = api(server.base);
    const login = await http.call("POST", "/auth/login", null, {
      username: alice,
      password: PASSWORD,
    });
    const gid = (await http.call("GET", "/groups/mine", login.body.access_token)).body.items[0].id;
    for (let i = 1; i <= 60; i++) {
      const r = await http.call("POST", `/groups/${gid}/messages`, login.body.access_token, {
        content: `filler ${i}`,
      });
      assert.equal(r.status, 202);
    }
    await b.reload();
    await b
      .locator("#mine")
      .getByRole("button", { name: new RegExp(group) })
      .click();
    await message(b, "filler 60").waitFor();
    assert.equal(await messages(b).count(), 50, "the newest 50 first");
    assert.equal(await message(b, "Hello Bob").count(), 0);
    await b.getByRole("button", { name: "Load older messages" }).click();
    await message(b, "Hello Bob").waitFor();
    assert.equal(await messages(b).count(), 64);
    assert.equal(await b.getByRole("button", { name: "Load older messages" }).isHidden(), true);
    const seqs = await messages(b).evaluateAll((lis) => lis.map((li) => Number(li.dataset.seq)));
    assert.deepEqual(
      seqs,
      Array.from({ length: 64 }, (_, i) => i + 1),
      "in order, none missing",
    );
  });

  test("alice bans bob: the chat leaves his screen and he cannot come back", async () => {
    await a.getByRole("button", { name: "Manage group" }).click();
    await a.getByRole("button", { name: `Ban ${bob}`, exact: true }).click();
    await a.locator("#bans li", { hasText: bob }).waitFor();
    await b.locator("#alert", { hasText: `You were banned from “${group}”` }).waitFor();
    await b.locator("#chat-title").waitFor({ state: "detached" });
    assert.equal(await b.locator("#messages").count(), 0);
    assert.equal(await b.locator("#mine", { hasText: group }).count(), 0);
    await shot(b, "05-banned");

    const hit = b.locator("#results li", { hasText: group });
    await b.getByLabel("Name contains").fill(group);
    await b.getByRole("button", { name: "Search" }).click();
    await hit.getByRole("button", { name: "Request to join" }).click();
    await b.locator("#alert", { hasText: "You are banned from this group." }).waitFor();

    // Unbanned, he is still held back by the rejoin cooldown, and told for how long.
    await a.getByRole("button", { name: `Unban ${bob}` }).click();
    await a.locator("#info", { hasText: `${bob} was unbanned` }).waitFor();
    await hit.getByRole("button", { name: "Request to join" }).click();
    await b
      .locator("#alert", { hasText: /can ask to join again in (2 days|47 h 59 min)/ })
      .waitFor();
    await shot(b, "06-cooldown");
  });
});

test("narrow screen (360 px): one column, no sideways scrolling", async () => {
  const page = await newPage(browser, server.base, { width: 360, height: 740 });
  try {
    const name = username("nina");
    await register(page, name);
    const noOverflow = () => page.evaluate(() => document.documentElement.scrollWidth <= 360);
    assert.equal(await noOverflow(), true, "login view fits");
    await page
      .getByLabel("Name", { exact: true })
      .fill("A group with a rather long name for a phone");
    await page.getByRole("button", { name: "Create group" }).click();
    await page.locator("#chat-title").waitFor();
    assert.equal(await page.locator(".side").isHidden(), true, "the chat replaces the list");
    await page.getByLabel("Message", { exact: true }).fill("Typed on a phone");
    await page.getByLabel("Message", { exact: true }).press("Enter");
    await message(page, "Typed on a phone").waitFor();
    assert.equal(await noOverflow(), true, "chat fits");
    await shot(page, "07-narrow-chat");
    await page.getByRole("button", { name: "Back to groups" }).click();
    await page.locator("#mine-h").waitFor();
    assert.equal(await page.locator("#chat").isHidden(), true);
    assert.equal(await noOverflow(), true, "group list fits");
    await shot(page, "08-narrow-groups");
    assert.deepEqual(page.problems, []);
  } finally {
    await page.context().close();
  }
});

test("keyboard only: log in, with a wrong password first", async () => {
  const http = api(server.base);
  const name = username("kim");
  assert.equal(
    (await http.call("POST", "/auth/register", null, { username: name, password: PASSWORD }))
      .status,
    201,
  );
  const page = await newPage(browser, server.base);
  try {
    await page.goto("/");
    await page.locator("#username").waitFor();
    const focused = () => page.evaluate(() => document.activeElement?.id);
    assert.equal(await focused(), "username", "the form takes focus");
    await page.keyboard.type(name);
    await page.keyboard.press("Tab");
    assert.equal(await focused(), "password");
    await page.keyboard.type("not the password");
    await page.keyboard.press("Enter");
    await page.locator("#alert", { hasText: "Wrong username or password." }).waitFor();
    assert.equal(await focused(), "username", "focus goes back to the form");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Control+A");
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press("Enter");
    await page.locator("#me", { hasText: name }).waitFor();
    await page.waitForFunction(() => document.activeElement?.id === "mine-h");
    // From the group list heading, Tab walks into the search form.
    await page.keyboard.press("Tab");
    assert.equal(await focused(), "search-query");
    assert.deepEqual(page.problems, []);
  } finally {
    await page.context().close();
  }
});

test("short-lived tokens: refreshed before expiry, the socket reconnects, the chat goes on", async () => {
  // Its own server, whose access tokens live 8 s: the page must renew them (and its socket,
  // which the server disconnects once the token it connected with has expired).
  const short = await startServer({ CONCLAVE_ACCESS_TOKEN_TTL: "8s" });
  const page = await newPage(browser, short.base);
  try {
    let refreshed = 0;
    let sockets = 0;
    page.on("response", (r) => {
      if (r.url().endsWith("/api/v1/auth/refresh") && r.status() === 200) refreshed++;
    });
    page.on("websocket", () => sockets++);
    const name = username("tess");
    await register(page, name);
    await page.getByLabel("Name", { exact: true }).fill("Night shift");
    await page.getByRole("button", { name: "Create group" }).click();
    await page.locator("#chat-title", { hasText: "Night shift" }).waitFor();

    const deadline = Date.now() + 45_000;
    while (refreshed < 2 || sockets < 2) {
      assert.ok(Date.now() < deadline, `refreshes ${refreshed}, websockets ${sockets}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await page.locator("#conn[data-state=online]").waitFor();

    // Still logged in, sending and receiving live.
    await page.getByLabel("Message", { exact: true }).fill("still here");
    await page.getByLabel("Message", { exact: true }).press("Enter");
    await message(page, "still here").waitFor();
    const http = api(short.base);
    const login = await http.call("POST", "/auth/login", null, {
      username: name,
      password: PASSWORD,
    });
    const gid = (await http.call("GET", "/groups/mine", login.body.access_token)).body.items[0].id;
    await http.call("POST", `/groups/${gid}/messages`, login.body.access_token, {
      content: "from elsewhere",
    });
    await message(page, "from elsewhere").waitFor();
    assert.equal(await page.locator("#alert").innerText(), "", "no error shown");
    assert.deepEqual(page.problems, []);
  } finally {
    await page.context().close();
    await short.stop();
  }
});

test("open group: join at once; ownership moves, then the old owner may leave", async () => {
  const owner = await newPage(browser, server.base);
  const other = await newPage(browser, server.base);
  try {
    const olga = username("olga");
    const carl = username("carl");
    const group = `Open house ${process.pid}`;
    await register(owner, olga);
    await register(other, carl);
    await owner.getByLabel("Name", { exact: true }).fill(group);
    await owner.getByRole("button", { name: "Create group" }).click();
    await owner.locator("#chat-title", { hasText: group }).waitFor();

    await other.getByLabel("Name contains").fill(group);
    await other.getByRole("button", { name: "Search" }).click();
    await other
      .locator("#results li", { hasText: group })
      .getByRole("button", { name: "Join" })
      .click();
    await other.locator("#chat-title", { hasText: group }).waitFor();
    await owner.locator("#chat-meta", { hasText: "2 members" }).waitFor();

    // The owner cannot just leave while others remain.
    await owner.getByRole("button", { name: "Manage group" }).click();
    await owner.getByRole("button", { name: "Leave this group" }).click();
    await owner.locator("#alert", { hasText: "transfer ownership to another member" }).waitFor();

    await owner.getByRole("button", { name: `Make ${carl} the owner` }).click();
    await owner.locator("#info", { hasText: `${carl} now owns the group` }).waitFor();
    await owner.locator("#chat-meta", { hasText: /^open · 2 members$/ }).waitFor();
    await owner.getByRole("button", { name: "Members" }).waitFor();
    // Carl sees it the next time he opens the group.
    await other
      .locator("#mine")
      .getByRole("button", { name: new RegExp(group) })
      .click();
    await other.locator("#chat-meta", { hasText: "you own it" }).waitFor();

    await owner.getByRole("button", { name: "Leave this group" }).click();
    await owner.locator("#info", { hasText: `You left “${group}”` }).waitFor();
    await owner.locator("#chat-title").waitFor({ state: "detached" });
    await other.locator("#chat-meta", { hasText: "1 member" }).waitFor();
    assert.deepEqual([...owner.problems, ...other.problems], []);
  } finally {
    await owner.context().close();
    await other.context().close();
  }
});
