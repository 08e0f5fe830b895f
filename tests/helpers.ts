// Shared test helpers: temp trees with the shipped configs, running the built scripts, and reading results.
import { execFileSync, spawnSync, SpawnSyncReturns } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, statSync, existsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createHash, createPublicKey } from "node:crypto";

export const ROOT = resolve(__dirname, "..");
export const DIST = join(ROOT, "dist");
/** The tests' own configs (a copy of the shipped ones): users edit config/ and still run `make test`. */
export const FIXTURES = join(ROOT, "tests", "fixtures", "config");

// Under `make test` jest runs inside make, whose MAKELEVEL and MAKEFLAGS every spawned make would inherit: it would
// print "make[1]: ***" instead of "make: ***" (which tests filter out of stderr) and take make test's flags. The
// tests run make as a user does from a shell.
for (const k of ["MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES"]) delete process.env[k];

/**
 * A new temp directory (os.tmpdir()/PREFIX + random), removed after the test file by tests/environment.js (or kept
 * with KEEP_TEST_TREES=1 for a look after a failure).
 */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const g = globalThis as { __tlsSetupTempDirs?: string[] };
  (g.__tlsSetupTempDirs ??= []).push(dir);
  return dir;
}

/** A temp directory holding a copy of the fixture configs (without examples) and an empty certs/ location. */
export function tempTree(opts: { examples?: string[] } = {}): { dir: string; config: string; certs: string } {
  const dir = tempDir("tls-setup-test-");
  const config = join(dir, "config");
  cpSync(FIXTURES, config, { recursive: true, filter: (src) => !src.includes("examples") });
  for (const e of opts.examples ?? []) cpSync(join(FIXTURES, "examples", `req-${e}.json`), join(config, `req-${e}.json`));
  return { dir, config, certs: join(dir, "certs") };
}

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

const asRun = (r: SpawnSyncReturns<string>): Run => ({ status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" });

/** Runs a built script (ca, req, bare, tls, cfssl, ...) with node. */
export function runScript(script: string, args: string[], opts: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv } = {}): Run {
  return asRun(spawnSync(process.execPath, [join(DIST, `${script}.js`), ...args], { cwd: opts.cwd ?? ROOT, input: opts.input, encoding: "utf8", env: { ...process.env, ...opts.env } }));
}

/**
 * Runs make in the project root against a temp tree. NAME is dropped from the inherited environment (some machines,
 * WSL among them, export it as the host name, which the Makefile refuses); opts.env adds variables.
 */
export function runMake(targets: string[], tree: { config: string; certs: string }, extra: string[] = [], opts: { env?: NodeJS.ProcessEnv } = {}): Run {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NAME;
  return asRun(spawnSync("make", ["--no-print-directory", "-C", ROOT, ...targets, `CONFIG_DIR=${tree.config}`, `CERTS_DIR=${tree.certs}`, ...extra], { encoding: "utf8", env: { ...env, ...opts.env } }));
}

export function sh(cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}): string {
  return execFileSync(cmd, args, { cwd: opts.cwd, input: opts.input, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] });
}

export const sha256File = (f: string): string => createHash("sha256").update(readFileSync(f)).digest("hex");

/** Content hash and mode of every file in a directory (recursively): for "nothing changed" assertions. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(dir)) return out;
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else out[p.slice(dir.length + 1)] = `${sha256File(p)} ${(st.mode & 0o777).toString(8)}`;
    }
  };
  walk(dir);
  return out;
}

export const mode = (f: string): number => statSync(f).mode & 0o777;

const toolCache = new Map<string, boolean>();

/** Whether a command is on PATH. Under CI=true a missing tool is a failure, never a skip. */
export function haveTool(name: string): boolean {
  let found = toolCache.get(name);
  if (found === undefined) {
    found = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).status === 0;
    toolCache.set(name, found);
  }
  if (!found && process.env.CI === "true") throw new Error(`${name} is not installed (tests/tools.sh installs it); under CI a missing tool fails the run`);
  return found;
}

/** Whether every one of these commands is on PATH (each checked, so under CI=true any missing one fails). */
export const haveTools = (tools: string[]): boolean => tools.map(haveTool).every(Boolean);

/**
 * `test` when every judge is installed, else `test.skip`: a test that needs openssl, cfssl, etcd... shows as skipped
 * in jest's summary when one is missing, never as passed. Under CI=true a missing judge throws here, which fails the
 * file (tests/tools.sh installs them all). Use it for the whole test: a test that judges partly with a tool and
 * partly without is split in two, so the part that needs no tool always runs.
 */
export const withTools = (...tools: string[]): jest.It => (haveTools(tools) ? test : test.skip);

/**
 * For an extra judge that tests/tools.sh does not install (kubectl): `test` where it is on PATH, `test.skip` elsewhere,
 * CI included.
 */
export const withOptionalTool = (name: string): jest.It => (spawnSync("sh", ["-c", `command -v ${name}`]).status === 0 ? test : test.skip);

/** `describe` or `describe.skip`, as `withTools`: a block whose tests all need these judges. */
export const describeWith = (...tools: string[]): jest.Describe => (haveTools(tools) ? describe : describe.skip);

/** openssl x509 -text of a cert file. */
export const opensslText = (f: string): string => sh("openssl", ["x509", "-in", f, "-noout", "-text"]);

const spkiOfKeyText = new Map<string, Buffer>();
/**
 * The public key (SubjectPublicKeyInfo DER) of a private key PEM, derived by OpenSSL (node:crypto) from the private
 * key itself; remembered by the key's text, so a crash test that checks the same unchanged key after every round
 * decodes it once. Throws when the text is not a usable private key.
 */
export function publicKeyOfPrivate(pem: string): Buffer {
  let spki = spkiOfKeyText.get(pem);
  if (!spki) spkiOfKeyText.set(pem, (spki = createPublicKey(pem).export({ type: "spki", format: "der" })));
  return spki;
}

const verifyVerdicts = new Map<string, boolean>();
const contentKey = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");
/**
 * `openssl verify OPTIONS` for many certificate files in one run (openssl judges each file on its own and prints
 * "FILE: OK" for each that verifies): whether each one verifies. The files OPTIONS name (-CAfile, -untrusted) count by
 * their bytes: a verdict is remembered by the options, those bytes and the certificate's, so the same question on
 * identical files is put to openssl once per test file, however often a test looks.
 */
export function opensslVerifiesEach(options: string[], certs: string[]): boolean[] {
  const question = (cert: string) => [...options.map((o) => (o.startsWith("-") ? o : contentKey(o))), contentKey(cert)].join(" ");
  const ask = [...new Set(certs.filter((f) => !verifyVerdicts.has(question(f))))];
  if (ask.length > 0) {
    const r = spawnSync("openssl", ["verify", ...options, ...ask], { encoding: "utf8" });
    const ok = new Set(r.stdout.split("\n").filter((l) => l.endsWith(": OK")).map((l) => l.slice(0, -": OK".length)));
    for (const f of ask) verifyVerdicts.set(question(f), ok.has(f));
  }
  return certs.map((f) => verifyVerdicts.get(question(f))!);
}

/** The certificate PEM blocks of a text, each with its line end (a block without one is not counted). */
export const certPemBlocks = (text: string): string[] => text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n/g) ?? [];

let chainDir: string | undefined;
/**
 * opensslVerifiesEach with `-untrusted` the chain each certificate file carries after its own certificate (what a
 * peer gets from etcd; `openssl verify OPTIONS -untrusted F F`, the leaf itself among the untrusted changing nothing):
 * files that carry the same chain are judged in one run, that chain in a file of its own; a file carrying no chain is
 * its own -untrusted.
 */
export function opensslVerifiesWithOwnChain(options: string[], certs: string[]): boolean[] {
  const groups = new Map<string, number[]>();
  certs.forEach((cert, i) => {
    const chain = certPemBlocks(readFileSync(cert, "utf8")).slice(1).join("");
    const key = chain === "" ? `self ${cert}` : chain;
    groups.set(key, [...(groups.get(key) ?? []), i]);
  });
  const out: boolean[] = [];
  for (const [key, members] of groups) {
    let untrusted = certs[members[0]];
    if (!key.startsWith("self ")) {
      chainDir ??= tempDir("tls-setup-chains-");
      untrusted = join(chainDir, `${createHash("sha256").update(key).digest("hex")}.pem`);
      writeFileSync(untrusted, key);
    }
    const verdicts = opensslVerifiesEach([...options, "-untrusted", untrusted], members.map((i) => certs[i]));
    members.forEach((i, j) => (out[i] = verdicts[j]));
  }
  return out;
}
