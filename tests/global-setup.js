// Jest's globalSetup: the tests spawn dist/*.js, so a bare `npx jest` first brings dist/ up to date with the
// sources (node build.mjs, ~0.2 s), the way `make test` does, and touches dist/.built as the Makefile does after a
// build (else every test that runs make would rebuild inside the run). When every bundle and dist/.built are newer
// than every source it does nothing (a stat of ~70 files).
const { spawnSync } = require("node:child_process");
const { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, statfsSync, statSync, utimesSync } = require("node:fs");
const { join } = require("node:path");

const ROOT = join(__dirname, "..");

/** Newest modification time of the files that go into dist/. */
function newestSource() {
  let newest = 0;
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".ts")) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(join(ROOT, "scripts"));
  for (const f of ["scripts/start.cjs", "build.mjs", "tsconfig.json", "package-lock.json"]) newest = Math.max(newest, statSync(join(ROOT, f)).mtimeMs);
  return newest;
}

/** Oldest of dist/.built and the bundles in dist/ (one per scripts/*.ts); 0 when one is missing. */
function oldestBuilt() {
  let oldest = Infinity;
  const outs = readdirSync(join(ROOT, "scripts")).filter((f) => f.endsWith(".ts")).map((f) => f.replace(/\.ts$/, ".js"));
  for (const f of [".built", ...outs]) {
    const out = join(ROOT, "dist", f);
    if (!existsSync(out)) return 0;
    oldest = Math.min(oldest, statSync(out).mtimeMs);
  }
  return oldest;
}

/**
 * The tests' children start without NODE_EXTRA_CA_CERTS. Node reads and parses that file at every start, before any
 * script runs: with Debian's bundle of 144 certificates (as on this machine) that is ~37 ms of CPU per Node process
 * (60 ms instead of 22 for `node -e 0`), and the suite starts ~280 of them. Nothing under test uses Node's default
 * trust store (the scripts make no TLS connection; the tests' etcd clients name their CA). The workers inherit this
 * process's environment; the value is kept in TLS_SETUP_TEST_EXTRA_CA_CERTS for the one child that may reach the npm
 * registry (`make pkcs11-deps`, tests/pkcs11-helpers.ts).
 */
function childrenWithoutExtraCaCerts() {
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (extra === undefined) return;
  process.env.TLS_SETUP_TEST_EXTRA_CA_CERTS = extra;
  delete process.env.NODE_EXTRA_CA_CERTS;
}

/**
 * The tests' temp directories (every tree, token and etcd data directory) go to a directory of their own in /dev/shm
 * when it is a tmpfs with room (4 GiB free; each etcd member preallocates a 64 MB WAL there) and TMPDIR is not set:
 * the suite creates, renames, fsyncs and removes many small files, and on this machine's ext4 that cost ~2 s more of
 * kernel CPU per run (measured, two runs each: 16-17 s of system time instead of 18-22). What the product does is the
 * same on either: the fsync calls are made, a tmpfs completes them at once. tests/global-teardown.js removes the
 * directory.
 */
function tempDirsInMemory() {
  if (process.env.TMPDIR) return;
  try {
    const st = statfsSync("/dev/shm");
    if (st.type !== TMPFS_MAGIC || st.bavail * st.bsize < 4 * 2 ** 30) return;
    // tests run scripts written into their temp dirs: not on a mount that forbids it
    const mount = readFileSync("/proc/mounts", "utf8").split("\n").find((l) => l.split(" ")[1] === "/dev/shm");
    if (!mount || mount.split(" ")[3].split(",").includes("noexec")) return;
    process.env.TMPDIR = mkdtempSync(join("/dev/shm", "tls-setup-tests-"));
    process.env.TLS_SETUP_TEST_TMPDIR = process.env.TMPDIR;
  } catch {
    // no /dev/shm (not Linux), or not writable: os.tmpdir() as it is
  }
}
const TMPFS_MAGIC = 0x01021994;

module.exports = async function globalSetup() {
  childrenWithoutExtraCaCerts();
  tempDirsInMemory();
  if (oldestBuilt() > newestSource()) return;
  const started = Date.now();
  const r = spawnSync(process.execPath, ["build.mjs"], { cwd: ROOT, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`node build.mjs failed (exit ${r.status}); the tests would run stale or missing bundles:\n${r.stdout}${r.stderr}`);
  const built = join(ROOT, "dist", ".built");
  closeSync(openSync(built, "a"));
  const now = new Date();
  utimesSync(built, now, now);
  process.stderr.write(`\njest global setup: dist/ was older than the sources; rebuilt with node build.mjs in ${Date.now() - started} ms\n`);
};
