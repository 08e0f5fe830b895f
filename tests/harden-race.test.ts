// Races: runs on one tree are serialised by the lock in certs/.tls-setup/lock. Two makes at once end consistent
// (each certificate made exactly once, all verify, no temps); a second run says it is waiting; a lock left by a
// killed run is taken over by exactly one of several runs started together.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DIST, ROOT, sh, tempTree, withTools } from "./helpers";
import { acquireLock } from "../scripts/lib/tree/lock";
import { parseCertPem } from "../scripts/lib/x509/certinfo";
import { importKeyPair } from "../scripts/lib/x509/keys";
import { TEMP_PREFIX } from "../scripts/lib/tree/output";
import { isUserError } from "../scripts/lib/common/errors";

const USERS = 30;
const TOTAL = USERS + 6; // the CA, three members, a proxy, the shipped req-root.json
const trees: string[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
afterAll(() => trees.forEach((d) => rmSync(d, { recursive: true, force: true })));

function userTree() {
  const t = tempTree();
  trees.push(t.dir);
  for (let i = 1; i <= USERS; i++) writeFileSync(join(t.config, `req-u${i}.json`), JSON.stringify({ CN: `u${i}`, key: { algo: "ecdsa", size: 256 } }));
  return t;
}

interface Done {
  code: number | null;
  out: string;
  err: string;
}

function start(cmd: string, args: string[]): { pid: number; done: Promise<Done>; out: () => string } {
  const c = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  c.stdout.on("data", (d) => (out += d));
  c.stderr.on("data", (d) => (err += d));
  return { pid: c.pid!, done: new Promise((r) => c.on("exit", (code) => r({ code, out, err }))), out: () => out };
}
const make = (t: { config: string; certs: string }) => start("make", ["--no-print-directory", "-C", ROOT, "all", `CONFIG_DIR=${t.config}`, `CERTS_DIR=${t.certs}`]);
const build = (t: { config: string; certs: string }) => start(process.execPath, [join(DIST, "tls.js"), "build", "--config-dir", t.config, "--certs-dir", t.certs]);
const madeCount = (out: string) => Number(/tls-setup: made (\d+),/.exec(out)?.[1] ?? NaN);

/** Trees the race tests left and consistent() found whole: openssl verifies their leaves (the last test). */
const raced: { certs: string; leaves: string[] }[] = [];

/** The tree is whole: every cert has its own key, no temp files, no lock (openssl verifies every leaf: below). */
async function consistent(certs: string): Promise<void> {
  const files = readdirSync(certs);
  expect(files.filter((f) => f.startsWith(TEMP_PREFIX))).toEqual([]);
  expect(readdirSync(join(certs, ".tls-setup")).filter((f) => f.startsWith(TEMP_PREFIX) || f.startsWith("lock"))).toEqual([]);
  const certFiles = files.filter((f) => f.endsWith(".pem") && !f.endsWith("-key.pem"));
  expect(certFiles).toHaveLength(TOTAL);
  const serials = new Set<string>();
  for (const f of certFiles) {
    const facts = parseCertPem(readFileSync(join(certs, f), "utf8"), f);
    const key = await importKeyPair(readFileSync(join(certs, f.replace(/\.pem$/, "-key.pem")), "utf8"), f);
    expect({ f, match: key.spki.equals(facts.spki) }).toEqual({ f, match: true });
    serials.add(facts.serialHex);
  }
  expect(serials.size).toBe(TOTAL);
  raced.push({ certs, leaves: certFiles.filter((f) => f !== "ca.pem").map((f) => join(certs, f)) });
}

test("two makes at once: each certificate is made once, the tree is consistent", async () => {
  const t = userTree();
  const a = make(t);
  const b = make(t);
  const [ra, rb] = await Promise.all([a.done, b.done]);
  expect([ra.code, rb.code]).toEqual([0, 0]);
  expect([ra.err, rb.err]).toEqual(["", ""]);
  // the lock serialised them: the certificates were made once in all, not once per run
  expect(madeCount(ra.out) + madeCount(rb.out)).toBe(TOTAL);
  // whether the later run found the lock held depends on how the two starts fall on a loaded machine (one may finish
  // before the other starts): the next test holds the lock first and shows the waiting message deterministically
  await consistent(t.certs);
});

test("a run started while another holds the lock waits with a message naming the holder, then does the work", async () => {
  const t = userTree();
  // the holder is this test process, taking the lock as a run does: the run below meets it for certain (two real
  // runs only sometimes overlap on a loaded machine; the test above covers them)
  const held = await acquireLock(t.certs);
  const b = build(t);
  const waiting = `waiting for another tls-setup run (pid ${process.pid}) on ${t.certs}...`;
  for (let i = 0; i < 3000 && !b.out().includes(waiting); i++) await sleep(10);
  expect(b.out()).toContain(waiting);
  // it waits: nothing made while the lock is held
  await sleep(300);
  expect(existsSync(join(t.certs, "ca.pem"))).toBe(false);
  held.release();
  const rb = await b.done;
  expect([rb.code, rb.err]).toEqual([0, ""]);
  expect(madeCount(rb.out)).toBe(TOTAL);
  await consistent(t.certs);
});

test("a lock left by a killed run is taken over by exactly one of four runs started together", async () => {
  const t = userTree();
  // a pid that has exited: a shell's (a Node start costs ~50 ms of CPU for the same)
  const dead = spawnSync("sh", ["-c", "printf %s $$"], { encoding: "utf8" });
  const deadPid = Number(dead.stdout);
  mkdirSync(join(t.certs, ".tls-setup", "lock"), { recursive: true });
  writeFileSync(join(t.certs, ".tls-setup", "lock", "pid"), String(deadPid));
  const runs = await Promise.all([build(t), build(t), build(t), build(t)].map((r) => r.done));
  expect(runs.map((r) => [r.code, r.err])).toEqual(runs.map(() => [0, ""]));
  expect(runs.map((r) => madeCount(r.out)).reduce((x, y) => x + y, 0)).toBe(TOTAL);
  await consistent(t.certs);
});

describe("the lock itself (acquireLock)", () => {
  const dir = () => {
    const t = tempTree();
    trees.push(t.dir);
    mkdirSync(t.certs, { recursive: true });
    return t.certs;
  };

  test("twenty concurrent holders never overlap", async () => {
    const certs = dir();
    let inside = 0;
    let overlaps = 0;
    let entered = 0;
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        const l = await acquireLock(certs);
        inside++;
        if (inside > 1) overlaps++;
        entered++;
        await sleep(Math.random() * 5);
        inside--;
        l.release();
      }),
    );
    expect({ entered, overlaps }).toEqual({ entered: 20, overlaps: 0 });
    expect(readdirSync(join(certs, ".tls-setup"))).toEqual([]);
  });

  test("an empty or garbled lock (a run killed while making it) is taken over", async () => {
    const certs = dir();
    const lock = join(certs, ".tls-setup", "lock");
    mkdirSync(lock, { recursive: true });
    (await acquireLock(certs)).release();
    mkdirSync(lock, { recursive: true });
    writeFileSync(join(lock, "pid"), "garbage");
    const l = await acquireLock(certs);
    expect(Number(readFileSync(join(lock, "pid"), "utf8"))).toBe(process.pid);
    l.release();
    expect(existsSync(lock)).toBe(false);
  });

  test("a live holder is waited for, with one message, and a timeout is a clear error", async () => {
    const certs = dir();
    const lock = join(certs, ".tls-setup", "lock");
    mkdirSync(lock, { recursive: true });
    writeFileSync(join(lock, "pid"), String(process.ppid)); // our parent: alive for as long as we run
    const waits: number[] = [];
    const e = await acquireLock(certs, { timeoutMs: 300, onWait: (pid) => waits.push(pid) }).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(waits).toEqual([process.ppid]);
    expect(isUserError(e)).toBe(true);
    expect((e as Error).message).toBe(`${lock}: another tls-setup run (pid ${process.ppid}) holds the lock; gave up waiting`);
    expect(readFileSync(join(lock, "pid"), "utf8")).toBe(String(process.ppid));
  });
});

withTools("openssl")("openssl verifies every leaf of the three trees the races above left", () => {
  expect(raced).toHaveLength(3);
  for (const { certs, leaves } of raced) {
    const v = sh("openssl", ["verify", "-x509_strict", "-CAfile", join(certs, "ca.pem"), ...leaves]);
    expect(v.trim().split("\n").filter((l) => / OK$/.test(l))).toHaveLength(leaves.length);
  }
});
