// Bundles each entry script into one file in dist/ (fewer modules to load = faster start): scripts/NAME.ts becomes
// dist/NAME.bundle.js, started by dist/NAME.js (scripts/start.cjs: through a V8 code cache in dist/.cache/).
//   node build.mjs                  the development build: dist/, the lazily loaded packages resolved from node_modules
//   (release.mjs calls bundle() with selfContained: true: those packages go to dist/vendor/, nothing needs node_modules)
import { build } from "esbuild";
import { chmodSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

// Packages loaded only on demand: chokidar in the watcher, @peculiar/x509 (after reflect-metadata) when verify reads
// a CRL, @peculiar/webcrypto with TLS_SETUP_CRYPTO=peculiar. Kept out of the entry bundles so that no start parses
// them; value: their file in dist/vendor/ in a self-contained build.
export const LAZY = {
  chokidar: "chokidar.js",
  "@peculiar/webcrypto": "peculiar-webcrypto.js",
  "@peculiar/x509": "peculiar-x509.js",
  "reflect-metadata": "reflect-metadata.js",
};

// The PKCS#11 provider (node-webcrypto-p11 over graphene-pk11 and the native addon pkcs11js) is not listed here: it
// is installed on demand into pkcs11/node_modules (make pkcs11-deps) and required at run time from there through
// createRequire (scripts/lib/x509/pkcs11.ts), so esbuild never sees its names and no build, release included,
// bundles it or needs it.

const common = {
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  sourcemap: false,
  logLevel: "warning",
  // Smaller files parse faster at every start; identifiers are kept so a bug's stack trace stays readable.
  minifyWhitespace: true,
  minifySyntax: true,
  // yargs' ESM entry imports cliui's ESM build, whose stand-in for wrap-ansi cuts lines at the width in the middle of
  // words ("CSR.j" / "son" in --help); its CommonJS build wraps at word boundaries with the real wrap-ansi.
  alias: { cliui: "./node_modules/cliui/build/index.cjs" },
};

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

// A self-contained build keeps each lazy package out of the entry bundles as a one-line stand-in
// (`module.exports = require("./vendor/x.js")`), which esbuild wraps like any bundled CommonJS module: loaded on first
// use, `await import()` included (so the dynamic import becomes a require, and no ES module loader is involved).
const vendorPlugin = {
  name: "vendor",
  setup(b) {
    const names = new RegExp(`^(${Object.keys(LAZY).map(escape).join("|")})$`);
    b.onResolve({ filter: names }, (args) => ({ path: args.path, namespace: "vendor" }));
    b.onLoad({ filter: /.*/, namespace: "vendor" }, (args) => ({ contents: `module.exports = require(${JSON.stringify(`./vendor/${LAZY[args.path]}`)});`, loader: "js" }));
    b.onResolve({ filter: /^\.\/vendor\//, namespace: "vendor" }, (args) => ({ path: args.path, external: true }));
  },
};

/**
 * Bundles scripts/*.ts (but those in `skip`) into `outdir`. selfContained: the lazy packages are bundled into
 * outdir/vendor/ (one file each, with their dependencies) instead of being required from node_modules.
 * Returns esbuild's metafile inputs of every bundle (what went in, for the licence notices).
 */
export async function bundle({ outdir = "dist", selfContained = false, skip = [] } = {}) {
  const entries = readdirSync("scripts").filter((f) => f.endsWith(".ts") && !skip.includes(f)).map((f) => `scripts/${f}`);
  // yargs is bundled too (resolving its ~15 modules cost more start time than anything else); bundled, it finds no
  // locale files and speaks English, its default.
  const main = await build({
    ...common,
    entryPoints: entries,
    outdir,
    entryNames: "[name].bundle",
    metafile: selfContained,
    ...(selfContained ? { plugins: [vendorPlugin] } : { external: Object.keys(LAZY) }),
  });
  // each entry's starter (dist/NAME.js), and no code cache of an earlier build
  const start = readFileSync("scripts/start.cjs", "utf8");
  for (const e of entries) {
    const name = e.replace(/^scripts\//, "").replace(/\.ts$/, "");
    const file = `${outdir}/${name}.js`;
    writeFileSync(file, `#!/usr/bin/env node\n${start.replaceAll("__BUNDLE__", `${name}.bundle.js`)}`);
    chmodSync(file, 0o755);
  }
  rmSync(`${outdir}/.cache`, { recursive: true, force: true });
  if (!selfContained) return [];
  const inputs = [Object.keys(main.metafile.inputs)];
  for (const [pkg, file] of Object.entries(LAZY)) {
    const r = await build({
      ...common,
      stdin: { contents: `module.exports = require(${JSON.stringify(pkg)});`, resolveDir: ".", loader: "js" },
      outfile: `${outdir}/vendor/${file}`,
      metafile: true,
    });
    inputs.push(Object.keys(r.metafile.inputs));
  }
  return inputs.flat();
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) await bundle();
