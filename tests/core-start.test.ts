// dist/NAME.js, the starter (scripts/start.cjs written by build.mjs): it runs dist/NAME.bundle.js exactly as
// `node dist/NAME.bundle.js` does (output, exit status, files), through a V8 code cache in dist/.cache/ that is
// written once per bundle content and command and then reused; a cache V8 refuses is replaced, a cache file others
// could have written (or another user's) is never used, a directory others may write is never written to, and a cache
// that cannot be written leaves the run as it was. Each case runs a copy of dist/ca.* and dist/bare.* in its own
// temp dir (the shared dist/.cache/ of the other tests is left alone).
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DIST, FIXTURES, tempDir } from "./helpers";
import { parseCertPem } from "../scripts/lib/x509/certinfo";

const SCRIPTS = ["ca", "bare"];

/** A dist/ of its own: the starters and bundles of ca and bare, no cache yet. */
function ownDist(): string {
  const d = join(tempDir("tls-setup-start-"), "dist");
  mkdirSync(d);
  for (const s of SCRIPTS) for (const f of [`${s}.js`, `${s}.bundle.js`]) copyFileSync(join(DIST, f), join(d, f));
  return d;
}

const run = (dist: string, file: string, args: string[], input?: string) => {
  const r = spawnSync(process.execPath, [join(dist, file), ...args], { input, encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};
const cacheDir = (dist: string) => join(dist, ".cache");
const caches = (dist: string) => (existsSync(cacheDir(dist)) ? readdirSync(cacheDir(dist)).sort() : []);
/** The cache file of a bundle and command ("_" for an argument that is not a word), and its identity (inode, time, mode, owner). */
const cacheOf = (dist: string, bundle: string, command: string) => {
  const f = caches(dist).find((n) => n.startsWith(`${bundle}.bundle.js.`) && n.endsWith(`.${command}.v8`));
  return f === undefined ? undefined : join(cacheDir(dist), f);
};
const identity = (f: string) => {
  const st = statSync(f);
  return { ino: st.ino, mtimeMs: st.mtimeMs, mode: (st.mode & 0o777).toString(8), uid: st.uid, bytes: readFileSync(f).toString("base64") };
};

test("the starter prints and exits as the bundle itself does, with and without its cache", () => {
  const d = ownDist();
  const cases: [string, string[]][] = [
    ["ca", ["--help"]],
    ["ca", []], // a user error: one line, exit 1
    ["bare", ["--bogus"]],
  ];
  for (const [s, args] of cases) {
    const direct = run(d, `${s}.bundle.js`, args);
    const first = run(d, `${s}.js`, args); // writes the cache
    const second = run(d, `${s}.js`, args); // reads it
    expect({ s, args, first }).toEqual({ s, args, first: direct });
    expect({ s, args, second }).toEqual({ s, args, second: direct });
  }
  expect(caches(d).every((f) => /^(ca|bare)\.bundle\.js\.[0-9a-f]{32}\.[a-z_][a-z0-9-]*\.v8$/.test(f))).toBe(true);
});

test("a CA made through the starters, cached, is a CA: ca | bare writes a certificate and key that belong together", () => {
  const d = ownDist();
  for (let i = 0; i < 2; i++) {
    const ca = run(d, "ca.js", [join(FIXTURES, "ca-csr.json")]);
    expect(ca.status).toBe(0);
    const prefix = join(d, "..", `ca${i}`);
    expect(run(d, "bare.js", [prefix], ca.stdout)).toMatchObject({ status: 0, stderr: "" });
    expect(parseCertPem(readFileSync(`${prefix}.pem`, "utf8"), `${prefix}.pem`).isCa).toBe(true);
  }
  // one cache per script and command, made by the first run; the second run read it and wrote nothing
  expect(cacheOf(d, "ca", "_")).toBeDefined();
  expect(statSync(cacheDir(d)).mode & 0o777).toBe(0o700);
  expect(statSync(cacheOf(d, "ca", "_")!).mode & 0o777).toBe(0o600);
});

test("a cache is written once and then reused; a new bundle content gets a cache of its own", () => {
  const d = ownDist();
  run(d, "ca.js", ["--help"]);
  const f = cacheOf(d, "ca", "_")!;
  const before = identity(f);
  run(d, "ca.js", ["--help"]);
  run(d, "ca.js", ["--version"]);
  expect(identity(f)).toEqual(before);
  // an edited bundle (a rebuild) never runs with the old bytecode: its cache has another name
  writeFileSync(join(d, "ca.bundle.js"), `${readFileSync(join(d, "ca.bundle.js"), "utf8")}\n// edited\n`);
  expect(run(d, "ca.js", ["--help"]).status).toBe(0);
  expect(caches(d).filter((n) => n.startsWith("ca.bundle.js.") && n.endsWith("._.v8"))).toHaveLength(2);
});

test("a cache V8 refuses (garbage) is replaced, and the run is unaffected", () => {
  const d = ownDist();
  const want = run(d, "ca.bundle.js", ["--help"]);
  run(d, "ca.js", ["--help"]);
  const f = cacheOf(d, "ca", "_")!;
  writeFileSync(f, Buffer.alloc(4096, 7), { mode: 0o600 });
  expect(run(d, "ca.js", ["--help"])).toEqual(want);
  expect(readFileSync(f).equals(Buffer.alloc(4096, 7))).toBe(false);
  expect(run(d, "ca.js", ["--help"])).toEqual(want);
});

test("a cache file group or others could write, or another user's, is never read: it is replaced by the user's own", () => {
  const d = ownDist();
  run(d, "ca.js", ["--help"]);
  const f = cacheOf(d, "ca", "_")!;
  // a valid cache: read, it would be used and left as it is; ignored, it is written anew (0600, by this user)
  chmodSync(f, 0o666);
  run(d, "ca.js", ["--help"]);
  expect(identity(f).mode).toBe("600");
  if (process.getuid?.() === 0) {
    chownSync(f, 65534, 65534);
    run(d, "ca.js", ["--help"]);
    expect(identity(f).uid).toBe(0);
  }
});

test("a cache directory others may write is never written to; a cache that cannot be written leaves the run as it was", () => {
  const d = ownDist();
  const want = run(d, "ca.bundle.js", ["--help"]);
  mkdirSync(cacheDir(d));
  chmodSync(cacheDir(d), 0o777);
  expect(run(d, "ca.js", ["--help"])).toEqual(want);
  expect(caches(d)).toEqual([]);
  // dist/.cache a file: no directory can be made there
  const e = ownDist();
  writeFileSync(cacheDir(e), "not a directory");
  expect(run(e, "ca.js", ["--help"])).toEqual(want);
  expect(readFileSync(cacheDir(e), "utf8")).toBe("not a directory");
});
