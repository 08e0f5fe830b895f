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
  // Smaller files parse faster at every start; identifiers are kept so a bug's stack trace stays readable.
  minifyWhitespace: true,
  minifySyntax: true,
  // yargs is bundled too (resolving its ~15 modules cost more start time than anything else); bundled, it finds no
  // locale files and speaks English, its default. chokidar loads only in the watcher; the WebCrypto fallback on demand.
  external: ["chokidar", "@peculiar/webcrypto", "@peculiar/x509", "reflect-metadata"],
  // yargs' ESM entry imports cliui's ESM build, whose stand-in for wrap-ansi cuts lines at the width in the middle of
  // words ("CSR.j" / "son" in --help); its CommonJS build wraps at word boundaries with the real wrap-ansi.
  alias: { cliui: "./node_modules/cliui/build/index.cjs" },
});
