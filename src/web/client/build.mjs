// Builds the client into an output directory (default ../dist): index.html, assets/app.js (the
// ES modules and socket.io-client in one minified bundle) and assets/app.css. Same input, same
// bytes: no timestamps, no content hashes in names, no source maps.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] || join(here, "..", "dist"));

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "assets"), { recursive: true });
copyFileSync(join(here, "index.html"), join(out, "index.html"));
const common = {
  bundle: true,
  minify: true,
  legalComments: "eof",
  logLevel: "warning",
  absWorkingDir: here,
};
await build({
  ...common,
  entryPoints: ["src/main.js"],
  outfile: join(out, "assets", "app.js"),
  format: "esm",
  target: ["es2022"],
  platform: "browser",
});
await build({
  ...common,
  entryPoints: ["style.css"],
  outfile: join(out, "assets", "app.css"),
});
