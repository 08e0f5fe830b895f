// make release: the tarball, unpacked where there is no node_modules (here or in any parent), with the npm registry
// unreachable, an empty npm cache and no npm on PATH, runs make and every runtime target; openssl judges the results.
import { spawn, spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { FIXTURES, ROOT, describeWith, sha256File, sh } from "./helpers";

const version = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version as string;
const NAME = `tls-setup-${version}`;
const PEM_PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]{40}/;

const work = mkdtempSync(join(tmpdir(), "tls-setup-release-test-"));
afterAll(() => {
  if (process.env.KEEP_TEST_TREES !== "1") rmSync(work, { recursive: true, force: true });
});

const out = join(work, "out"); // RELEASE_DIR
const host = join(work, "host"); // the "offline CA host": the tarball unpacked here
const rel = join(host, NAME);
const bin = join(work, "bin"); // PATH: node, make and a few shell tools; no npm
const npmCache = join(work, "npm-cache");

/** The offline environment: nothing inherited (no NODE_PATH, no npm settings), the registry a closed port. */
const offlineEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
  PATH: bin,
  HOME: work,
  LANG: "C",
  npm_config_registry: "http://127.0.0.1:9/",
  npm_config_cache: npmCache,
  npm_config_offline: "false",
  ...extra,
});

function make(args: string[], extra: Record<string, string> = {}) {
  const r = spawnSync("make", ["--no-print-directory", ...args], { cwd: rel, env: offlineEnv(extra), encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, all: `${r.stdout}\n${r.stderr}` };
}

function walk(d: string): string[] {
  return readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]));
}

const certs = (f: string) => join(rel, "certs", f);
/** openssl's verdict on a certificate against the release's CA. */
const opensslVerify = (cert: string, extra: string[] = []) =>
  spawnSync("openssl", ["verify", "-CAfile", certs("ca.pem"), ...extra, cert], { encoding: "utf8" });
const pubkeyOfCert = (f: string) => sh("openssl", ["x509", "-in", f, "-noout", "-pubkey"]);
const pubkeyOfKey = (f: string) => sh("openssl", ["pkey", "-in", f, "-pubout"]);

const run = describeWith("openssl", "tar");

run("make release, used offline", () => {
  let listing: string[] = [];

  beforeAll(() => {
    mkdirSync(out);
    mkdirSync(host);
    mkdirSync(bin);
    mkdirSync(npmCache);
    // the tests' own configs go into the release, never the live config/
    const r = spawnSync("make", ["--no-print-directory", "-C", ROOT, "release", `RELEASE_DIR=${out}`, `CONFIG_DIR=${FIXTURES}`], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`make release failed:\n${r.stdout}\n${r.stderr}`);
    listing = sh("tar", ["-tzf", join(out, `${NAME}.tar.gz`)]).split("\n").filter(Boolean);
    sh("tar", ["-xzf", join(out, `${NAME}.tar.gz`), "-C", host]);
    for (const tool of ["make", "sh", "rm", "cat"]) {
      const p = spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim();
      symlinkSync(p, join(bin, tool));
    }
    symlinkSync(process.execPath, join(bin, "node"));
  });

  test("make release wrote exactly one tarball into RELEASE_DIR, and nothing into the checkout", () => {
    expect(readdirSync(out)).toEqual([`${NAME}.tar.gz`]);
    expect(readdirSync(ROOT).filter((f) => f.endsWith(".tar.gz"))).toEqual([]);
  });

  test("the tarball holds the runtime and nothing secret: no private keys, no certs/, no node_modules, no sources", () => {
    expect(listing.every((f) => f.startsWith(`${NAME}/`))).toBe(true);
    const files = listing.map((f) => f.slice(NAME.length + 1)).filter((f) => f && !f.endsWith("/"));
    for (const f of ["Makefile", "README.md", "docs/architecture.md", "config/ca-config.json", "config/ca-csr.json", "config/req-csr.json", "dist/.built", "dist/.release", "dist/tls.js", "dist/lifecycle.js", "dist/etcd.js", "dist/watch.js", "dist/cfssl.js", "dist/bare.js", "dist/vendor/chokidar.js", "dist/vendor/peculiar-x509.js"]) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => f.startsWith("config/examples/")).sort()).toEqual(readdirSync(join(FIXTURES, "examples")).map((f) => `config/examples/${f}`).sort());
    expect(files.filter((f) => /(^|\/)(node_modules|certs|scripts|tests)\//.test(f) || /\.(pem|csr|ts)$/.test(f) || f === "package.json")).toEqual([]);
    const withKeys = walk(rel).filter((f) => PEM_PRIVATE_KEY.test(readFileSync(f, "latin1")));
    expect(withKeys).toEqual([]);
  });

  test("the offline host: no node_modules up the tree, no npm on PATH", () => {
    for (let d = rel; ; d = dirname(d)) {
      expect([d, existsSync(join(d, "node_modules"))]).toEqual([d, false]);
      if (dirname(d) === d) break;
    }
    expect(spawnSync("sh", ["-c", "command -v npm npx"], { env: offlineEnv(), encoding: "utf8" }).stdout).toBe("");
  });

  test("make, then every runtime target, work offline", async () => {
    // make: the CA and every member, proxy and user certificate, which openssl verifies
    let r = make([]);
    expect(r.status).toBe(0);
    expect(r.all).toMatch(/made 6, unchanged 0/);
    for (const n of ["etcd1", "etcd2", "etcd3", "proxy1", "root"]) expect(opensslVerify(certs(`${n}.pem`)).status).toBe(0);
    expect(make([]).all).toMatch(/made 0, unchanged 6/);

    // one certificate by its file, and plan
    cpSync(join(rel, "config", "examples", "req-calicoctl.json"), join(rel, "config", "req-calicoctl.json"));
    expect(make(["plan"]).all).toMatch(/calicoctl/);
    expect(make([`certs/calicoctl.pem`]).status).toBe(0);
    expect(opensslVerify(certs("calicoctl.pem")).status).toBe(0);

    // the cfssl-shaped pipe, pasted into a rule as Calico's guide does
    writeFileSync(join(work, "pasted.mk"), "pasted:\n\t$(CFSSL) gencert -ca certs/ca.pem -ca-key certs/ca-key.pem -config config/ca-config.json -profile user config/req-calicoctl.json | $(JSON) -bare certs/pasted\n");
    r = make(["-f", "Makefile", "-f", join(work, "pasted.mk"), "pasted"]);
    expect(r.status).toBe(0);
    expect(opensslVerify(certs("pasted.pem")).status).toBe(0);
    expect(pubkeyOfCert(certs("pasted.pem"))).toBe(pubkeyOfKey(certs("pasted-key.pem")));

    // revoke: a CRL signed by the CA that openssl uses to reject the revoked certificate
    r = make(["revoke", "NAME=calicoctl"]);
    expect(r.status).toBe(0);
    expect(spawnSync("openssl", ["crl", "-in", certs("crl.pem"), "-CAfile", certs("ca.pem"), "-noout"], { encoding: "utf8" }).status).toBe(0);
    const crlCheck = ["-crl_check", "-CRLfile", certs("crl.pem")];
    expect(opensslVerify(certs("calicoctl.pem"), crlCheck).stdout + opensslVerify(certs("calicoctl.pem"), crlCheck).stderr).toMatch(/revoked/);
    expect(opensslVerify(certs("etcd1.pem"), crlCheck).status).toBe(0);

    // verify reads the CRL back (the bundled @peculiar/x509)
    r = make(["verify"]);
    expect(r.status).toBe(0);
    expect(r.all).toMatch(/and the CRL/);

    // renew with a new key through @peculiar/webcrypto (bundled, loaded only with TLS_SETUP_CRYPTO=peculiar)
    const oldKey = sha256File(certs("etcd1-key.pem"));
    const oldSerial = new X509Certificate(readFileSync(certs("etcd1.pem"))).serialNumber;
    r = make(["renew", "NAME=etcd1", "NEW_KEY=1"], { TLS_SETUP_CRYPTO: "peculiar" });
    expect(r.status).toBe(0);
    expect(sha256File(certs("etcd1-key.pem"))).not.toBe(oldKey);
    expect(new X509Certificate(readFileSync(certs("etcd1.pem"))).serialNumber).not.toBe(oldSerial);
    expect(opensslVerify(certs("etcd1.pem")).status).toBe(0);
    expect(pubkeyOfCert(certs("etcd1.pem"))).toBe(pubkeyOfKey(certs("etcd1-key.pem")));

    // rbac, secrets, check-expiration, inspect
    expect(make(["rbac"]).status).toBe(0);
    expect(readFileSync(certs("etcd-rbac.sh"), "utf8")).toMatch(/auth enable/);
    // (calicoctl is revoked above: no Secret with its certificate; root's, named, is written)
    expect(make(["secrets", "NAME=calicoctl"]).status).toBe(2);
    expect(make(["secrets", "NAME=root"]).status).toBe(0);
    const secret = readFileSync(certs("k8s/root.yaml"), "utf8");
    expect(Buffer.from(/etcd-cert: (\S+)/.exec(secret)![1], "base64").toString()).toBe(readFileSync(certs("root.pem"), "utf8"));
    r = make(["-s", "check-expiration", "FORMAT=json"]);
    expect(r.status).toBe(0);
    const names = (JSON.parse(r.stdout).certificates as { name: string }[]).map((c) => c.name);
    expect(names).toEqual(expect.arrayContaining(["ca", "etcd1", "etcd2", "etcd3", "proxy1", "root", "calicoctl"]));
    r = make(["-s", "inspect", "NAME=etcd2", "FORMAT=json"]);
    expect(r.status).toBe(0);
    const inspected = JSON.parse(r.stdout);
    expect(inspected.name).toBe("etcd2");
    expect(`CN=${inspected.subject.common_name}`).toBe(new X509Certificate(readFileSync(certs("etcd2.pem"))).subject.split("\n").find((l) => l.startsWith("CN=")));

    // watch (the bundled chokidar): a new user config is made, Ctrl-C stops it
    const w = spawn("make", ["--no-print-directory", "watch"], { cwd: rel, env: offlineEnv({ CI: "true" }), detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let seen = "";
    w.stdout.on("data", (c: Buffer) => (seen += c.toString()));
    w.stderr.on("data", (c: Buffer) => (seen += c.toString()));
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((res) => w.on("exit", (code, sig) => res([code, sig])));
    const until = async (what: string, cond: () => boolean) => {
      const end = Date.now() + 20_000;
      while (!cond()) {
        if (Date.now() > end) {
          process.kill(-w.pid!, "SIGKILL");
          throw new Error(`timed out waiting for ${what}; watch said:\n${seen}`);
        }
        await new Promise((res) => setTimeout(res, 25));
      }
    };
    await until("watching", () => seen.includes("watching"));
    writeFileSync(join(rel, "config", "req-bob.json"), JSON.stringify({ CN: "bob", key: { algo: "ecdsa", size: 256 }, names: [{ O: "autogenerated" }] }));
    await until("certs/bob.pem", () => /made certs\/bob\.pem/.test(seen) && /watch: made 1/.test(seen));
    process.kill(-w.pid!, "SIGINT"); // Ctrl-C: the terminal signals the whole process group
    await exited;
    expect(seen).toMatch(/SIGINT: stopping/);
    expect(opensslVerify(certs("bob.pem")).status).toBe(0);
    expect(new X509Certificate(readFileSync(certs("bob.pem"))).subject).toMatch(/CN=bob/);
  });

  test("test, bench, deps and release say in one line that they need the source checkout; npm never runs", () => {
    for (const t of ["test", "bench", "deps", "release"]) {
      const r = make([t]);
      expect(r.status).not.toBe(0);
      expect(r.stderr.split("\n")[0]).toBe(`make ${t}: needs the source checkout; ${NAME} is a release holding only what make and the runtime targets need`);
    }
    expect(existsSync(join(rel, "node_modules"))).toBe(false);
    expect(readdirSync(npmCache)).toEqual([]);
  });

  test("distclean in a release removes certs/ but keeps dist/ (it cannot be rebuilt there); make works again", () => {
    expect(make(["distclean"]).status).toBe(0);
    expect(existsSync(join(rel, "certs"))).toBe(false);
    expect(existsSync(join(rel, "dist", "tls.js"))).toBe(true);
    const r = make([]);
    expect(r.status).toBe(0);
    expect(opensslVerify(certs("etcd1.pem")).status).toBe(0);
  });

  test("rotate in a release: a new CA, every leaf re-issued under it", () => {
    const oldCa = new X509Certificate(readFileSync(certs("ca.pem"))).fingerprint256;
    expect(make(["rotate"]).status).toBe(0);
    expect(new X509Certificate(readFileSync(certs("ca.pem"))).fingerprint256).not.toBe(oldCa);
    for (const n of ["etcd1", "proxy1", "root"]) expect(opensslVerify(certs(`${n}.pem`)).status).toBe(0);
  });
});

test("make release refuses a RELEASE_DIR that does not exist, in one line, writing nothing", () => {
  const missing = join(work, "no-such-dir");
  const r = spawnSync("make", ["--no-print-directory", "-C", ROOT, "release", `RELEASE_DIR=${missing}`, `CONFIG_DIR=${FIXTURES}`], { encoding: "utf8" });
  expect(r.status).not.toBe(0);
  expect(r.stderr.split("\n")[0]).toBe(`release: ${missing}: the output directory (RELEASE_DIR) does not exist`);
  expect(existsSync(missing)).toBe(false);
});

test("make release refuses a config that holds a private key, in one line, writing nothing", () => {
  const config = join(work, "config-with-key");
  cpSync(FIXTURES, config, { recursive: true });
  const key = sh("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
  writeFileSync(join(config, "req-pasted.json"), key);
  const dir = mkdtempSync(join(work, "out-"));
  const r = spawnSync("make", ["--no-print-directory", "-C", ROOT, "release", `RELEASE_DIR=${dir}`, `CONFIG_DIR=${config}`], { encoding: "utf8" });
  expect(r.status).not.toBe(0);
  expect(r.stderr.split("\n")[0]).toBe("release: config/req-pasted.json: holds a private key; nothing was written");
  expect(readdirSync(dir)).toEqual([]);
});
