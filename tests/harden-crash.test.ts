// Crash safety: a 150-user tree is built while SIGKILL hits the build at random moments (plain, --new-key and
// --rotate runs, so new keys replace old ones). After every kill each certificate on disk parses and matches its
// key; afterwards `make` completes, leaves no temp files and every certificate verifies with openssl.
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DIST, runMake, sh, tempTree, withTools, publicKeyOfPrivate } from "./helpers";
import { runInProcess } from "./in-process";
import { parseCertPem } from "../scripts/lib/x509/certinfo";
import { TEMP_PREFIX } from "../scripts/lib/tree/output";

const USERS = 150; // plus the CA, three members, a proxy and the shipped req-root.json
const KILLS = 12;
const tree = tempTree();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterAll(() => rmSync(tree.dir, { recursive: true, force: true }));

/** Every NAME.pem in certs/ has NAME-key.pem beside it, and they hold the same public key. */
async function checkPairs(): Promise<number> {
  let n = 0;
  for (const f of existsSync(tree.certs) ? readdirSync(tree.certs) : []) {
    if (!f.endsWith(".pem") || f.endsWith("-key.pem") || f.startsWith(TEMP_PREFIX)) continue;
    const name = f.slice(0, -4);
    const certFile = join(tree.certs, f);
    const keyFile = join(tree.certs, `${name}-key.pem`);
    const facts = parseCertPem(readFileSync(certFile, "utf8"), certFile);
    expect({ name, keyExists: existsSync(keyFile) }).toEqual({ name, keyExists: true });
    expect({ name, match: publicKeyOfPrivate(readFileSync(keyFile, "utf8")).equals(facts.spki) }).toEqual({ name, match: true });
    n++;
  }
  return n;
}

const temps = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((f) => f.startsWith(TEMP_PREFIX)) : []);

test(`SIGKILL at random moments (${KILLS}+ kills) never leaves a cert beside a key it does not belong to`, async () => {
  for (let i = 1; i <= USERS; i++) writeFileSync(join(tree.config, `req-u${i}.json`), JSON.stringify({ CN: `u${i}`, key: { algo: "ecdsa", size: 256 } }));

  const flags = [[], ["--new-key"], ["--rotate"]];
  const log: string[] = [];
  let kills = 0;
  let pairsChecked = 0;
  // Every round has a whole tree of work: --rotate re-makes everything; before the others, a real edit of
  // ca-config.json makes every leaf stale (keys kept, or new with --new-key).
  let expiry = 8760;
  const editProfiles = () => {
    expiry = expiry === 8760 ? 8759 : 8760;
    const f = join(tree.config, "ca-config.json");
    const cfg = JSON.parse(readFileSync(f, "utf8"));
    for (const p of [cfg.signing.default, ...Object.values(cfg.signing.profiles ?? {})] as { expiry: string }[]) p.expiry = `${expiry}h`;
    writeFileSync(f, JSON.stringify(cfg));
  };
  const run = (extra: string[]) => {
    const child = spawn(process.execPath, [join(DIST, "tls.js"), "build", "--config-dir", tree.config, "--certs-dir", tree.certs, ...extra], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    return { child, exited, output: () => out };
  };
  // how long a whole-tree build takes here, so the kills land anywhere inside one
  let t = Date.now();
  const first = run([]);
  expect(await first.exited).toBe(0);
  let fullMs = Date.now() - t;
  for (let round = 0; kills < KILLS && round < 40; round++) {
    const extra = flags[round % flags.length];
    if (!extra.includes("--rotate")) editProfiles();
    const delay = 20 + Math.floor(Math.random() * 0.9 * fullMs);
    t = Date.now();
    const { child, exited, output } = run(extra);
    await sleep(delay);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      kills++;
    }
    const code = await exited;
    const out = output();
    const made = (out.match(/^made /gm) ?? []).length;
    if (code === 0 && made > USERS) fullMs = Date.now() - t;
    log.push(`round ${round} ${extra.join(" ") || "build"}: ${code === null ? "killed" : `exit ${code}`} after ${delay} ms, ${made} certificates made, ${temps(tree.certs).length} temp files left`);
    if (code !== null) expect({ out, code }).toEqual({ out, code: 0 });
    pairsChecked += await checkPairs();
  }
  console.log(`${kills} kills survived; ${pairsChecked} cert/key pairs checked after kills\n${log.join("\n")}`);
  expect(kills).toBeGreaterThanOrEqual(KILLS);

  const r = runMake(["all"], tree);
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
  expect(temps(tree.certs)).toEqual([]);
  expect(temps(join(tree.certs, ".tls-setup"))).toEqual([]);
  expect(existsSync(join(tree.certs, ".tls-setup", "lock"))).toBe(false);
  expect(await checkPairs()).toBe(USERS + 6);
  // a second make (its command, in process) has nothing left to do
  const again = await runInProcess("tls", ["build", "--config-dir", tree.config, "--certs-dir", tree.certs]);
  expect(again.stdout).toMatch(/made 0,/);
});

withTools("openssl")("after the kills and the make that completes, openssl verifies every leaf against the CA", () => {
  const leaves = readdirSync(tree.certs).filter((f) => f.endsWith(".pem") && !f.endsWith("-key.pem") && f !== "ca.pem");
  expect(leaves).toHaveLength(USERS + 5);
  const v = sh("openssl", ["verify", "-x509_strict", "-CAfile", join(tree.certs, "ca.pem"), ...leaves.map((f) => join(tree.certs, f))]);
  expect(v.trim().split("\n").filter((l) => / OK$/.test(l))).toHaveLength(leaves.length);
});
