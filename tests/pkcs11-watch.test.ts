// The watcher (make watch) signs through a CA key held in a PKCS#11 token: a user config added while it runs gets its
// certificate from the token's key, with no CA private key file anywhere. Root mode (CA_KEY: the CA's key) and
// intermediate mode (CA_KEY: the intermediate's key; the root's key moved out of certs/). Judged by a SoftHSM2 token
// in a temp dir and openssl verifying the new certificate (-x509_strict, through the intermediate).
import { ChildProcess, spawn } from "node:child_process";
import { copyFileSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DIST, FIXTURES, sh, tempTree } from "./helpers";
import { haveHsm, hsm, MODULE, PIN, privateKeysIn, tokenInProcess } from "./pkcs11-helpers";
import { makeInProcess } from "./in-process";

const it_ = haveHsm() ? it : it.skip;
const token = hsm();
const trees: ReturnType<typeof tempTree>[] = [];
const procs: ChildProcess[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(() => {
  if (haveHsm()) token.init();
}, 300_000);
if (haveHsm()) tokenInProcess(token);

afterAll(() => {
  for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
  for (const t of trees) rmSync(t.dir, { recursive: true, force: true });
  rmSync(token.dir, { recursive: true, force: true });
});

/** make watch's script on a tree (the key reference recorded by the first make: no CA_KEY given), its output kept. */
function watch(t: { config: string; certs: string }): { out: string[]; proc: ChildProcess } {
  const proc = spawn(process.execPath, [join(DIST, "watch.js"), "--config-dir", t.config, "--certs-dir", t.certs], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...token.env, CI: "true" } });
  procs.push(proc);
  const out: string[] = [];
  proc.stdout!.on("data", (d) => out.push(String(d)));
  proc.stderr!.on("data", (d) => out.push(String(d)));
  return { out, proc };
}

async function addUserAndWait(t: { config: string; certs: string }, w: { out: string[] }, user: string): Promise<void> {
  // the watcher is up once it has printed its first line (its initial pass); then the new config arrives
  for (const end = Date.now() + 20_000; !w.out.join("").includes("\n") && Date.now() < end; ) await sleep(50);
  writeFileSync(join(t.config, `req-${user}.json`), JSON.stringify({ CN: user, key: { algo: "ecdsa", size: 256 } }));
  const cert = join(t.certs, `${user}.pem`);
  for (const end = Date.now() + 30_000; !existsSync(cert) && Date.now() < end; ) await sleep(50);
  if (!existsSync(cert)) throw new Error(`the watcher made no ${cert}:\n${w.out.join("")}`);
}

it_("root mode: the watcher signs a new user's certificate with the CA key in the token", async () => {
  const t = tempTree();
  trees.push(t);
  // the setup build, as make CA_KEY=... runs it, in this process (the watcher, the subject, is a process of its own)
  const made = await makeInProcess([], t, [`CA_KEY=pkcs11:token=etcd-ca;object=watch-ca`, `PKCS11_MODULE=${MODULE}`], token.env);
  expect([made.status, made.stderr]).toEqual([0, ""]);
  const w = watch(t);
  await addUserAndWait(t, w, "alice");
  const v = sh("openssl", ["verify", "-x509_strict", "-CAfile", join(t.certs, "ca.pem"), join(t.certs, "alice.pem")]);
  expect(v.trim()).toBe(`${join(t.certs, "alice.pem")}: OK`);
  // no CA private key on disk: the only private keys in certs/ are the leaves' own
  const leafKeys = privateKeysIn(t.certs).map((k) => k.file.replace(`${t.certs}/`, "")).sort();
  expect(leafKeys).toEqual(["alice-key.pem", "etcd1-key.pem", "etcd2-key.pem", "etcd3-key.pem", "proxy1-key.pem", "root-key.pem"]);
  expect(w.out.join("")).not.toContain(PIN);
  expect(token.privateKeyLabels()).toContain("watch-ca");
}, 120_000);

it_("intermediate mode: the watcher signs through the intermediate's token key, the root key offline", async () => {
  const t = tempTree();
  trees.push(t);
  copyFileSync(join(FIXTURES, "examples", "intermediate-csr.json"), join(t.config, "intermediate-csr.json"));
  // the setup build, as make CA_KEY=... runs it, in this process (the watcher, the subject, is a process of its own)
  const made = await makeInProcess([], t, [`CA_KEY=pkcs11:token=etcd-ca;object=watch-im`, `PKCS11_MODULE=${MODULE}`], token.env);
  expect([made.status, made.stderr]).toEqual([0, ""]);
  renameSync(join(t.certs, "ca-key.pem"), join(t.dir, "ca-key.offline"));
  expect(existsSync(join(t.certs, "intermediate-key.pem"))).toBe(false);
  const w = watch(t);
  await addUserAndWait(t, w, "bob");
  const file = join(t.certs, "bob.pem");
  const v = sh("openssl", ["verify", "-x509_strict", "-CAfile", join(t.certs, "ca.pem"), "-untrusted", join(t.certs, "intermediate.pem"), file]);
  expect(v.trim()).toBe(`${file}: OK`);
  // the new leaf's file carries the intermediate after it
  expect(readFileSync(file, "utf8").split("BEGIN CERTIFICATE").length - 1).toBe(2);
  const keys = privateKeysIn(t.certs).map((k) => k.file.replace(`${t.certs}/`, "")).sort();
  expect(keys).toEqual(["bob-key.pem", "etcd1-key.pem", "etcd2-key.pem", "etcd3-key.pem", "proxy1-key.pem", "root-key.pem"]);
  expect(w.out.join("")).not.toContain(PIN);
  expect(token.privateKeyLabels()).toContain("watch-im");
}, 120_000);
