// Bundles the page into dist/: src/main.ts with the SDK (clients/js/dist, built first by
// `make web`) into one ES module, plus index.html and style.css. Everything comes from the
// lockfiles; the page loads nothing from elsewhere. index.html is written last, so a dist/ with
// an index.html is a complete build (`rtm up` checks for it).
import { build } from "esbuild";
import { copyFileSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const sdk = join(here, "..", "js", "dist", "index.js");
if (!existsSync(sdk)) {
  console.error("clients/js/dist is missing: build the SDK first (cd clients/js && npm ci && npm run build)");
  process.exit(1);
}
const out = join(here, "dist");
rmSync(out, { recursive: true, force: true });
mkdirSync(out);
await build({
  entryPoints: [join(here, "src", "main.ts")],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: true,
  alias: { "@rtm/client": sdk },
  external: ["ws"], // the SDK's Node-only WebSocket, never loaded in a browser
  outfile: join(out, "app.js"),
  logLevel: "warning",
});
copyFileSync(join(here, "src", "style.css"), join(out, "style.css"));
copyFileSync(join(here, "src", "index.html"), join(out, "index.html"));
console.log("built clients/web/dist");
