// What the PKCS#11 tests share: a SoftHSM2 token initialised in a temp dir (softhsm2-util), pkcs11-tool reading the
// token, the provider installed by `make pkcs11-deps` (as tests/tools.sh does), and the checks that no file holds a
// CA's private key and that a refusal is one line and changes nothing.
import { spawnSync } from "node:child_process";
import { createPublicKey, X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { runInThisContext } from "node:vm";
import { join } from "node:path";
import { haveTool, ROOT, snapshot, tempDir } from "./helpers";

export const MODULE = "/usr/lib/softhsm/libsofthsm2.so";
/** Whether the judges are installed (under CI=true a missing one fails the file: haveTool). */
export const haveHsm = (): boolean => haveTool("softhsm2-util") && haveTool("pkcs11-tool") && haveTool("openssl");

// a PIN that would be noticed if it leaked into a file or an output
export const PIN = "pin-7Hq2-tls-setup";
const SO_PIN = "so-4451-tls-setup";

export interface Hsm {
  dir: string;
  /** SOFTHSM2_CONF (our temp token directory) and PKCS11_PIN, for every child */
  env: { SOFTHSM2_CONF: string; PKCS11_PIN: string };
  /** pkcs11-tool on the token, logged in */
  tool: (args: string[]) => { status: number | null; stdout: string; stderr: string };
  /** the labels of the token's private keys, sorted */
  privateKeyLabels: () => string[];
}

const haveFlock = (): boolean => spawnSync("sh", ["-c", "command -v flock"]).status === 0;

/** A temp dir for a token; init() installs the provider and initialises the token "etcd-ca" there (call in beforeAll). */
export function hsm(): Hsm & { init: () => void } {
  const dir = tempDir("tls-setup-hsm-");
  const env = { SOFTHSM2_CONF: join(dir, "softhsm2.conf"), PKCS11_PIN: PIN };
  const tool = (args: string[]) => spawnSync("pkcs11-tool", ["--module", MODULE, "--token-label", "etcd-ca", "--login", "--pin", PIN, ...args], { encoding: "utf8", env: { ...process.env, ...env } });
  const privateKeyLabels = () => {
    const r = tool(["--list-objects", "--type", "privkey"]);
    if (r.status !== 0) throw new Error(`pkcs11-tool --list-objects failed: ${r.stderr}`);
    return [...r.stdout.matchAll(/^\s*label:\s+(.*)$/gm)].map((m) => m[1].trim()).sort();
  };
  const init = () => {
    // one install at a time: the pkcs11-*.test.ts files start together in jest's workers, and two `npm ci` in pkcs11/
    // at once would remove each other's files (flock, util-linux; without it, plain make)
    const makeDeps = ["make", "--no-print-directory", "-C", ROOT, "pkcs11-deps"];
    const lock = join(tmpdir(), "tls-setup-pkcs11-deps.lock");
    // npm may reach the registry here: with the NODE_EXTRA_CA_CERTS the other children go without (tests/global-setup.js)
    const extra = process.env.TLS_SETUP_TEST_EXTRA_CA_CERTS;
    const depsEnv = extra === undefined ? process.env : { ...process.env, NODE_EXTRA_CA_CERTS: extra };
    const deps = haveFlock() ? spawnSync("flock", [lock, ...makeDeps], { encoding: "utf8", env: depsEnv }) : spawnSync(makeDeps[0], makeDeps.slice(1), { encoding: "utf8", env: depsEnv });
    if (deps.status !== 0) throw new Error(`make pkcs11-deps failed:\n${deps.stderr}`);
    mkdirSync(join(dir, "tokens"));
    writeFileSync(env.SOFTHSM2_CONF, `directories.tokendir = ${join(dir, "tokens")}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    // SOFTHSM2_CONF given explicitly to every child (jest's process.env does not reach children spawned without env)
    const r = spawnSync("softhsm2-util", ["--init-token", "--free", "--label", "etcd-ca", "--pin", PIN, "--so-pin", SO_PIN], { encoding: "utf8", env: { ...process.env, SOFTHSM2_CONF: env.SOFTHSM2_CONF } });
    if (r.status !== 0) throw new Error(`softhsm2-util --init-token failed: ${r.stderr}`);
    // the token is in our temp dir, not in the system's token directory
    if (readdirSync(join(dir, "tokens")).length !== 1) throw new Error("softhsm2-util did not make the token in the temp dir");
  };
  return { dir, env, tool, privateKeyLabels, init };
}

export const allFiles = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? allFiles(join(d, n)) : [join(d, n)]));

/** The SPKI (hex) of every PEM private key block in any file under dir. */
export function privateKeysIn(dir: string): { file: string; spki: string }[] {
  const out: { file: string; spki: string }[] = [];
  for (const f of allFiles(dir)) {
    const text = readFileSync(f, "latin1");
    for (const m of text.matchAll(/-----BEGIN ([A-Z ]*PRIVATE KEY)-----[\s\S]*?-----END \1-----/g)) {
      out.push({ file: f, spki: createPublicKey(m[0]).export({ type: "spki", format: "der" }).toString("hex") });
    }
  }
  return out;
}

/** The SPKI (hex) of a certificate file's first certificate. */
export const spkiOf = (certFile: string): string => new X509Certificate(readFileSync(certFile)).publicKey.export({ type: "spki", format: "der" }).toString("hex");

/** One line on stderr (make's own "***" lines aside), non-zero, the PIN nowhere, nothing in the folder changed. */
export function expectRefused(r: { status: number | null; stderr: string }, dir: string, before: Record<string, string>, pattern: RegExp): void {
  expect(r.status).not.toBe(0);
  const lines = r.stderr.split("\n").filter((l) => l !== "" && !l.startsWith("make: ***") && !/^make\[\d+\]/.test(l));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toContain(PIN);
  expect(snapshot(dir)).toEqual(before);
}

/**
 * The names of a tree's revoked certificates (certs/ca-revoked.json, written by make revoke): a revoked certificate is
 * never re-issued by itself (README "Revoked stays revoked"), so after a rotation it is left under the old CA and a
 * check of "every leaf under the current CA" leaves it out, on purpose and by name.
 */
export function revokedNames(certsDir: string): Set<string> {
  const f = join(certsDir, "ca-revoked.json");
  if (!existsSync(f)) return new Set();
  const index = JSON.parse(readFileSync(f, "utf8")) as { cas: Record<string, { revoked: { name: string }[] }> };
  return new Set(Object.values(index.cas).flatMap((c) => c.revoked.map((r) => r.name)));
}

/**
 * For a file whose token work runs in the jest worker (makeInProcess): SoftHSM reads SOFTHSM2_CONF from the process's
 * real environment (jest's process.env is a copy the native module never sees) once, at C_Initialize, and stays
 * initialised for the worker's life, across test files. So before the file's first in-process run the real
 * environment names this file's token and any earlier initialisation is ended (C_Finalize); after the file, the
 * module is finalised again and the environment restored. One token per file: every in-process case of the file
 * uses this one (distinct object labels per test).
 */
export function tokenInProcess(h: Hsm): void {
  const realEnv = (runInThisContext("process") as NodeJS.Process).env;
  const saved = realEnv.SOFTHSM2_CONF;
  const finalize = () => {
    const { PKCS11 } = createRequire(join(ROOT, "pkcs11", "package.json"))("pkcs11js") as { PKCS11: new () => { load(p: string): void; C_Finalize(): void } };
    const p = new PKCS11();
    p.load(MODULE);
    try {
      p.C_Finalize();
    } catch (e) {
      if (!/CKR_CRYPTOKI_NOT_INITIALIZED/.test(String(e))) throw e;
    }
  };
  beforeAll(() => {
    finalize();
    realEnv.SOFTHSM2_CONF = h.env.SOFTHSM2_CONF;
  });
  afterAll(() => {
    finalize();
    if (saved === undefined) delete realEnv.SOFTHSM2_CONF;
    else realEnv.SOFTHSM2_CONF = saved;
  });
}
