// Bundles each entry script into one file in dist/ (fewer modules to load = faster start).
import { build } from "esbuild";
import { readdirSync } from "node:fs";

const entries = readdirSync("scripts").filter((f) => f.endsWith(".ts")).map((f) => `scripts/${f}`);
await build({
  entryPoints: entries,
  outdir: "dist",
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  sourcemap: false,
  logLevel: "warning",
  // yargs reads its locale files relative to its own directory; the WebCrypto fallback loads only on demand.
  external: ["yargs", "chokidar", "@peculiar/webcrypto", "@peculiar/x509", "reflect-metadata"],
});
