// make release: one tarball tls-setup-VERSION.tar.gz for a host with only Node >= 20 and make (no node_modules, no
// registry): the Makefile, the configs, README, docs/ and licences, and self-contained bundles in dist/ (the packages the
// development build leaves in node_modules go to dist/vendor/). dist/.release marks the tree as a release, so its
// Makefile neither installs nor builds. See README "Offline CA host".
//   node release.mjs [--out-dir DIR] [--config-dir DIR]
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { bundle } from "./build.mjs";

/** A refusal: one line on stderr, exit 1, the staging directory removed. */
class Refusal extends Error {}
function fail(msg) {
  throw new Refusal(msg);
}

async function main() {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(name);
    if (i < 0) return dflt;
    if (i + 1 >= args.length || args[i + 1] === "") fail(`${name} needs a value`);
    return args[i + 1];
  };
  const outDir = opt("--out-dir", ".");
  const configDir = opt("--config-dir", "config");

  const version = JSON.parse(readFileSync("package.json", "utf8")).version;
  const name = `tls-setup-${version}`;
  if (!existsSync(outDir) || !statSync(outDir).isDirectory()) fail(`${outDir}: the output directory (RELEASE_DIR) does not exist`);
  for (const f of ["ca-config.json", "ca-csr.json", "req-csr.json"]) {
    if (!existsSync(join(configDir, f))) fail(`${join(configDir, f)}: does not exist; a release carries the configs of CONFIG_DIR (${configDir})`);
  }

  const stage = mkdtempSync(join(tmpdir(), "tls-setup-release-"));
  try {
    const root = join(stage, name);
    mkdirSync(join(root, "config", "examples"), { recursive: true });

    // the bundles (bench.js needs the checkout's bench/ and cfssl: not part of a release)
    const inputs = await bundle({ outdir: join(root, "dist"), selfContained: true, skip: ["bench.ts"] });
    writeFileSync(join(root, "dist", ".built"), "");
    writeFileSync(join(root, "dist", ".release"), `${name}\n`);

    for (const f of ["Makefile", "README.md"]) copyFileSync(f, join(root, f));
    // the reference the README links to (docs/*.md)
    mkdirSync(join(root, "docs"));
    for (const f of readdirSync("docs")) if (f.endsWith(".md")) copyFileSync(join("docs", f), join(root, "docs", f));
    // the PKCS#11 provider is a native addon: it cannot be bundled, only pinned; `make pkcs11-deps` installs it there
    mkdirSync(join(root, "pkcs11"));
    for (const f of ["package.json", "package-lock.json"]) copyFileSync(join("pkcs11", f), join(root, "pkcs11", f));
    for (const f of readdirSync(".")) if (/^(LICENSE|LICENCE|NOTICE|COPYING)(\.\w+)?$/i.test(f)) copyFileSync(f, join(root, f));

    // the configs: the *.json of CONFIG_DIR and of its examples/ (nothing else: a certs dir inside it stays out)
    const jsonIn = (d) => (existsSync(d) ? readdirSync(d).filter((f) => f.endsWith(".json") && statSync(join(d, f)).isFile()) : []);
    for (const f of jsonIn(configDir)) copyFileSync(join(configDir, f), join(root, "config", f));
    for (const f of jsonIn(join(configDir, "examples"))) copyFileSync(join(configDir, "examples", f), join(root, "config", "examples", f));

    // the licences of every package bundled into dist/ (yargs in the entry bundles, the lazy packages in dist/vendor/)
    const pkgs = new Map();
    for (const input of inputs) {
      const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
      if (m && !pkgs.has(m[1])) pkgs.set(m[1], JSON.parse(readFileSync(join(m[1], "package.json"), "utf8")));
    }
    const notices = [...pkgs.entries()]
      .sort(([, a], [, b]) => a.name.localeCompare(b.name))
      .map(([dir, p]) => {
        const lic = readdirSync(dir).find((f) => /^(LICEN[CS]E|COPYING)/i.test(f));
        return `${p.name} ${p.version} (${p.license ?? "see its package"})\n\n${lic ? readFileSync(join(dir, lic), "utf8").trim() : "(no licence file in the package)"}\n`;
      });
    writeFileSync(join(root, "dist", "THIRD-PARTY-LICENSES.txt"), `Packages bundled into dist/ by make release.\n\n${notices.join(`\n${"-".repeat(78)}\n\n`)}`);

    // Nothing secret may travel: a PEM private key in any file stops the release.
    const walk = (d) => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]));
    const files = walk(root);
    for (const f of files) {
      if (/-----BEGIN [A-Z ]*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]{40}/.test(readFileSync(f, "latin1"))) fail(`${relative(root, f)}: holds a private key; nothing was written`);
    }

    // tar writes a temp name, renamed when complete: no half-written tarball under the real name
    const out = join(outDir, `${name}.tar.gz`);
    const tmp = join(outDir, `.${name}.tar.gz.${process.pid}`);
    const gnu = /GNU tar/.test(spawnSync("tar", ["--version"], { encoding: "utf8" }).stdout ?? "");
    const r = spawnSync("tar", [...(gnu ? ["--owner=0", "--group=0", "--numeric-owner", "--sort=name"] : []), "-czf", tmp, "-C", stage, name], { stdio: ["ignore", "inherit", "inherit"] });
    if (r.status !== 0) {
      rmSync(tmp, { force: true });
      fail(`tar failed (${r.error ? r.error.message : `exit ${r.status}`}); nothing was written`);
    }
    renameSync(tmp, out);
    console.log(`release: wrote ${out} (${files.length} files, ${Math.round(statSync(out).size / 1024)} KiB); unpack it on the CA host and run make (README "Offline CA host")`);
    console.log(`release: a CA key in a PKCS#11 token (CA_KEY=pkcs11:...) also needs "make pkcs11-deps" on the CA host (a native addon: g++, make, python3 and the npm registry, or pkcs11/node_modules copied from a like machine)`);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

await main().catch((e) => {
  process.stderr.write(e instanceof Refusal ? `release: ${e.message}\n` : `release: internal error: ${e.stack}\n`);
  process.exitCode = 1;
});
