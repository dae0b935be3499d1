// Debian's Chromium driven by playwright-core (no browser download), the real server binary
// (tests/clients/js/server.js starts it from CONCLAVE_BIN on a random port with a fresh data
// directory), and screenshots kept as artefacts.
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export { api, startServer } from "../clients/js/server.js";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const artifacts = resolve(
  process.env.CONCLAVE_ARTIFACTS || join(repo, "target", "browser-artifacts"),
);
mkdirSync(artifacts, { recursive: true });

/** Launches headless Chromium; playwright gives it a fresh, temporary user-data-dir. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

/**
 * A page in a context of its own (its own storage: another user), recording what must never
 * happen: uncaught errors and Content-Security-Policy violations.
 */
export async function newPage(browser, base, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ baseURL: base, viewport });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && /Content.Security.Policy|Refused to/i.test(m.text())) {
      problems.push(`console: ${m.text()}`);
    }
  });
  // Destructive actions ask for confirmation: say yes.
  page.on("dialog", (d) => d.accept());
  page.problems = problems;
  return page;
}

export async function shot(page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`) });
}

let n = 0;
/** A username unique to this run. */
export const username = (who) => `${who}${process.pid % 1000}x${n++}`;
