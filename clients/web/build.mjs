// Bundles the page into dist/: src/main.ts with the SDK (clients/js/dist, built first by
// `make web`) into one ES module, plus index.html and style.css. Everything comes from the
// lockfiles; the page loads nothing from elsewhere. index.html is written last, so a dist/ with
// an index.html is a complete build (`rtm up` checks for it). With --test: the unit tests
// (test/*.test.ts) into build-test/, for node's test runner.
import { build } from "esbuild";
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const sdk = join(here, "..", "js", "dist", "index.js");
if (!existsSync(sdk)) {
  console.error("clients/js/dist is missing: build the SDK first (cd clients/js && npm ci && npm run build)");
  process.exit(1);
}
const common = {
  bundle: true,
  format: "esm",
  target: "es2022",
  alias: { "@rtm/client": sdk },
  external: ["ws"], // the SDK's Node-only WebSocket, never loaded in a browser
  logLevel: "warning",
};

if (process.argv.includes("--test")) {
  const out = join(here, "build-test");
  rmSync(out, { recursive: true, force: true });
  const tests = readdirSync(join(here, "test")).filter((name) => name.endsWith(".test.ts"));
  await build({
    ...common,
    platform: "node",
    entryPoints: tests.map((name) => join(here, "test", name)),
    outdir: out,
    outExtension: { ".js": ".mjs" },
  });
} else {
  const out = join(here, "dist");
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out);
  await build({
    ...common,
    entryPoints: [join(here, "src", "main.ts")],
    minify: true,
    sourcemap: true,
    outfile: join(out, "app.js"),
  });
  copyFileSync(join(here, "src", "style.css"), join(out, "style.css"));
  copyFileSync(join(here, "src", "index.html"), join(out, "index.html"));
  console.log("built clients/web/dist");
}
