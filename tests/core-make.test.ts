// Integration: `make` on temp trees. What it builds, and what re-running it after each kind of change re-makes.
import { existsSync, readFileSync, rmSync, unlinkSync, writeFileSync, appendFileSync, cpSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FIXTURES, mode, runMake, sh, snapshot, tempTree, ROOT } from "./helpers";
import { view } from "./x509";
import { made } from "./in-process";

type Tree = ReturnType<typeof tempTree>;
const LEAVES = ["etcd1", "etcd2", "etcd3", "proxy1", "root"];

function make(tree: Tree, targets: string[] = [], extra: string[] = []) {
  const r = runMake(targets, tree, extra);
  if (r.status !== 0) throw new Error(`make ${targets.join(" ")} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** Names whose cert, key or csr differ between two snapshots (stamps excluded). */
function changed(before: Record<string, string>, after: Record<string, string>): string[] {
  const names = new Set<string>();
  for (const f of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (f.startsWith(".tls-setup")) continue;
    if (before[f] !== after[f]) names.add(f.replace(/(-key)?\.(pem|csr)$/, ""));
  }
  return [...names].sort();
}

function verifyAll(tree: Tree, names: string[]) {
  const out = sh("openssl", ["verify", "-x509_strict", "-CAfile", join(tree.certs, "ca.pem"), ...names.map((n) => join(tree.certs, `${n}.pem`))]);
  expect(out.trim().split("\n")).toEqual(names.map((n) => `${join(tree.certs, n)}.pem: OK`));
}

function keyMatches(tree: Tree, name: string): boolean {
  const c = sh("openssl", ["x509", "-in", join(tree.certs, `${name}.pem`), "-noout", "-pubkey"]);
  const k = sh("openssl", ["pkey", "-in", join(tree.certs, `${name}-key.pem`), "-pubout"]);
  return c === k;
}

const editJson = (file: string, f: (j: Record<string, unknown>) => void) => {
  const j = JSON.parse(readFileSync(file, "utf8"));
  f(j);
  writeFileSync(file, JSON.stringify(j, null, 2));
};

describe("the tree make builds", () => {
  let tree: Tree;
  beforeAll(async () => {
    tree = tempTree({ examples: ["calico-node", "kube-apiserver"] });
    await made(tree);
  });
  afterAll(() => rmSync(tree.dir, { recursive: true, force: true }));

  test("cfssl's layout: NAME.pem, NAME-key.pem (0600), NAME.csr for the CA, members, proxy and users", () => {
    for (const n of ["ca", ...LEAVES, "calico-node", "kube-apiserver"]) {
      expect(existsSync(join(tree.certs, `${n}.pem`))).toBe(true);
      expect(existsSync(join(tree.certs, `${n}.csr`))).toBe(true);
      expect(mode(join(tree.certs, `${n}-key.pem`))).toBe(0o600);
      expect(readFileSync(join(tree.certs, `${n}-key.pem`), "utf8")).toMatch(/^-----BEGIN EC PRIVATE KEY-----/);
      expect(keyMatches(tree, n)).toBe(true);
    }
  });

  test("every certificate passes openssl verify -x509_strict against the CA", () => {
    verifyAll(tree, [...LEAVES, "calico-node", "kube-apiserver"]);
  });

  test("the CA: ECDSA P-384, CA:TRUE, 5 years", () => {
    const ca = view(join(tree.certs, "ca.pem"));
    expect(ca.basicConstraints).toMatchObject({ ca: true, critical: true });
    expect(ca.cert.publicKey.algorithm).toMatchObject({ name: "ECDSA", namedCurve: "P-384" });
    expect(Math.round((ca.notAfter.getTime() - ca.notBefore.getTime()) / 3600e3)).toBe(43800);
  });

  test("members carry server auth and client auth and req-csr.json's hosts", () => {
    for (const n of ["etcd1", "etcd2", "etcd3"]) {
      const v = view(join(tree.certs, `${n}.pem`));
      expect(v.extKeyUsages).toEqual(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
      expect(v.san?.names).toEqual([{ type: "dns", value: "localhost" }, { type: "ip", value: "127.0.0.1" }]);
      expect(v.subject).toContain("CN=etcd");
    }
  });

  test("the proxy has req-csr.json's hosts and an empty CN", () => {
    const v = view(join(tree.certs, "proxy1.pem"));
    expect(v.subject).not.toContain("CN=");
    expect(v.san?.names.map((n) => n.value)).toEqual(["localhost", "127.0.0.1"]);
  });

  test("users: CN is the etcd user name, client auth only (the user profile)", () => {
    for (const n of ["root", "calico-node", "kube-apiserver"]) {
      const v = view(join(tree.certs, `${n}.pem`));
      expect(v.subject).toContain(`CN=${n}`);
      expect(v.extKeyUsages).toEqual(["1.3.6.1.5.5.7.3.2"]);
    }
  });

  test("no leaf outlives the CA", () => {
    const ca = view(join(tree.certs, "ca.pem"));
    for (const n of LEAVES) expect(view(join(tree.certs, `${n}.pem`)).notAfter.getTime()).toBeLessThanOrEqual(ca.notAfter.getTime());
  });
});

describe("incremental make", () => {
  // `make` builds the tree once; every test starts from a byte-for-byte copy of that tree (modes included), put back
  // at the same path, since the stamps name their config files by absolute path: what each test's make sees is what
  // a fresh make leaves, without a whole build per test.
  const tree: Tree = tempTree({ examples: ["calico-cni"] });
  const pristine = mkdtempSync(join(tmpdir(), "tls-setup-test-pristine-"));
  let base: Record<string, string>;
  beforeAll(async () => {
    await made(tree);
    cpSync(tree.dir, pristine, { recursive: true });
  });
  beforeEach(() => {
    rmSync(tree.dir, { recursive: true, force: true });
    cpSync(pristine, tree.dir, { recursive: true });
    base = snapshot(tree.certs);
    expect(base).toEqual(snapshot(join(pristine, "certs")));
  });
  afterAll(() => {
    rmSync(tree.dir, { recursive: true, force: true });
    rmSync(pristine, { recursive: true, force: true });
  });

  test("no config change: nothing is made, and make -n shows no certificate work", () => {
    const r = make(tree);
    expect(r.stdout).toContain("tls-setup: made 0, unchanged 7");
    expect(changed(base, snapshot(tree.certs))).toEqual([]);
    const n = make(tree, ["-n"]);
    expect(n.stdout).not.toContain("tls.js build");
  });

  test("touch config/* changes nothing: content decides, not mtimes", () => {
    sh("sh", ["-c", `touch ${tree.config}/*`]);
    expect(make(tree, ["-n"]).stdout).not.toContain("tls.js build");
    make(tree);
    expect(changed(base, snapshot(tree.certs))).toEqual([]);
  });

  test("a fresh checkout of the same configs (new files, new mtimes) changes nothing", () => {
    const fresh = join(tree.dir, "config-fresh");
    cpSync(tree.config, fresh, { recursive: true });
    const r = runMake([], { config: fresh, certs: tree.certs });
    expect(r.stdout).toContain("made 0");
    expect(changed(base, snapshot(tree.certs))).toEqual([]);
  });

  test("reformatting a config (whitespace, key order) changes nothing", () => {
    const f = join(tree.config, "req-csr.json");
    const j = JSON.parse(readFileSync(f, "utf8"));
    writeFileSync(f, JSON.stringify({ names: j.names, key: j.key, hosts: j.hosts, CN: j.CN }));
    make(tree);
    expect(changed(base, snapshot(tree.certs))).toEqual([]);
  });

  test("a new req-<user>.json makes only that user's files", () => {
    cpSync(join(FIXTURES, "examples/req-calicoctl.json"), join(tree.config, "req-calicoctl.json"));
    expect(make(tree, ["-n"]).stdout).toContain("tls.js build");
    const r = make(tree);
    expect(r.stdout).toMatch(/made .*calicoctl\.pem \(user\): new/);
    expect(changed(base, snapshot(tree.certs))).toEqual(["calicoctl"]);
  });

  test("an edited req-<user>.json re-makes only that user, keeping its key", () => {
    editJson(join(tree.config, "req-calico-cni.json"), (j) => (j.hosts = ["cni.example"]));
    const r = make(tree);
    expect(r.stdout).toContain("req-calico-cni.json changed");
    const after = snapshot(tree.certs);
    expect(changed(base, after)).toEqual(["calico-cni"]);
    expect(after["calico-cni-key.pem"]).toBe(base["calico-cni-key.pem"]);
    expect(view(join(tree.certs, "calico-cni.pem")).san?.names).toEqual([{ type: "dns", value: "cni.example" }]);
  });

  test("a changed key size re-makes that user with a new key", () => {
    editJson(join(tree.config, "req-calico-cni.json"), (j) => (j.key = { algo: "ecdsa", size: 256 }));
    make(tree);
    expect(changed(base, snapshot(tree.certs))).toEqual(["calico-cni"]);
    expect(view(join(tree.certs, "calico-cni.pem")).cert.publicKey.algorithm).toMatchObject({ namedCurve: "P-256" });
    expect(keyMatches(tree, "calico-cni")).toBe(true);
  });

  test("an edited req-csr.json re-makes members and proxies only", () => {
    editJson(join(tree.config, "req-csr.json"), (j) => (j.hosts = ["localhost", "127.0.0.1", "10.0.0.1", "etcd.example"]));
    make(tree);
    expect(changed(base, snapshot(tree.certs))).toEqual(["etcd1", "etcd2", "etcd3", "proxy1"]);
    expect(view(join(tree.certs, "etcd2.pem")).san?.names.map((n) => n.value)).toEqual(["localhost", "etcd.example", "127.0.0.1", "10.0.0.1"]);
    verifyAll(tree, ["etcd1", "etcd2", "etcd3", "proxy1"]);
  });

  test("an edited ca-config.json re-makes every leaf, not the CA", () => {
    editJson(join(tree.config, "ca-config.json"), (j) => ((j.signing as { default: { expiry: string } }).default.expiry = "4380h"));
    const r = make(tree);
    expect(r.stdout).toContain("ca-config.json changed");
    expect(changed(base, snapshot(tree.certs))).toEqual(["calico-cni", "etcd1", "etcd2", "etcd3", "proxy1", "root"]);
    expect(Math.round((view(join(tree.certs, "etcd1.pem")).cert.notAfter.getTime() - view(join(tree.certs, "etcd1.pem")).cert.notBefore.getTime()) / 3600e3)).toBe(4380);
  });

  test("an edited ca-csr.json makes a new CA, then every leaf", () => {
    editJson(join(tree.config, "ca-csr.json"), (j) => (j.CN = "another CA"));
    make(tree);
    expect(changed(base, snapshot(tree.certs))).toEqual(["ca", "calico-cni", "etcd1", "etcd2", "etcd3", "proxy1", "root"]);
    expect(view(join(tree.certs, "ca.pem")).subject).toContain("CN=another CA");
    verifyAll(tree, [...LEAVES, "calico-cni"]);
  });

  test("with the CA gone, make makes a new CA, then every leaf", () => {
    for (const f of ["ca.pem", "ca-key.pem", "ca.csr"]) unlinkSync(join(tree.certs, f));
    make(tree);
    const after = snapshot(tree.certs);
    expect(changed(base, after)).toEqual(["ca", "calico-cni", "etcd1", "etcd2", "etcd3", "proxy1", "root"]);
    verifyAll(tree, [...LEAVES, "calico-cni"]);
  });

  test("a lost CA key is an error, not a new CA", () => {
    unlinkSync(join(tree.certs, "ca-key.pem"));
    const before = snapshot(tree.certs);
    const r = runMake([], tree);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`${tree.certs}/ca-key.pem: is missing but ${tree.certs}/ca.pem exists; restore the key, or run "make rotate"`);
    expect(snapshot(tree.certs)).toEqual(before);
  });

  test("an output missing or changed outside the tool is re-made (and only it)", () => {
    unlinkSync(join(tree.certs, "etcd2.csr"));
    appendFileSync(join(tree.certs, "root.pem"), "\n");
    const r = make(tree);
    expect(r.stdout).toContain("etcd2.csr is missing");
    expect(r.stdout).toContain("root.pem was changed outside tls-setup");
    expect(changed(base, snapshot(tree.certs))).toEqual(["etcd2", "root"]);
  });

  test("a swapped key is repaired with a new key: the pair matches again, no two certs share a key", () => {
    cpSync(join(tree.certs, "etcd1-key.pem"), join(tree.certs, "etcd2-key.pem"));
    expect(keyMatches(tree, "etcd2")).toBe(false);
    make(tree);
    expect(keyMatches(tree, "etcd2")).toBe(true);
    const after = snapshot(tree.certs);
    expect(after["etcd2-key.pem"]).not.toBe(after["etcd1-key.pem"]);
    expect(changed(base, after)).toEqual(["etcd2"]);
    verifyAll(tree, ["etcd2"]);
  });

  test("a removed req-<user>.json leaves the files alone and reports them orphaned", () => {
    unlinkSync(join(tree.config, "req-calico-cni.json"));
    const r = make(tree);
    expect(r.stderr).toContain(`orphaned: ${tree.certs}/calico-cni.pem and its key`);
    expect(changed(base, snapshot(tree.certs))).toEqual([]);
  });

  test("make certs/NAME.pem makes that one certificate", () => {
    for (const f of ["etcd3.pem", "calico-cni.pem"]) unlinkSync(join(tree.certs, f));
    make(tree, [`${tree.certs}/etcd3.pem`]);
    expect(existsSync(join(tree.certs, "etcd3.pem"))).toBe(true);
    expect(existsSync(join(tree.certs, "calico-cni.pem"))).toBe(false);
    expect(make(tree, ["-n", `${tree.certs}/etcd3-key.pem`]).stdout).not.toContain("tls.js build");
  });

  test("make rotate re-makes everything with new keys, the CA included", () => {
    const r = make(tree, ["rotate"]);
    expect(r.stdout).toContain("making a NEW CA");
    const after = snapshot(tree.certs);
    for (const n of ["ca", ...LEAVES, "calico-cni"]) {
      expect(after[`${n}.pem`]).not.toBe(base[`${n}.pem`]);
      expect(after[`${n}-key.pem`]).not.toBe(base[`${n}-key.pem`]);
    }
    verifyAll(tree, [...LEAVES, "calico-cni"]);
  });

  test("make ca makes only the CA; make req the rest", () => {
    rmSync(tree.certs, { recursive: true });
    make(tree, ["ca"]);
    expect(Object.keys(snapshot(tree.certs)).filter((f) => !f.startsWith(".")).sort()).toEqual(["ca-key.pem", "ca.csr", "ca.pem"]);
    make(tree, ["req"]);
    verifyAll(tree, [...LEAVES, "calico-cni"]);
  });

  test("an existing CA without stamps (e.g. from hack/tls-setup) is adopted, not replaced", () => {
    rmSync(join(tree.certs, ".tls-setup"), { recursive: true });
    const r = make(tree);
    expect(r.stdout).toContain("adopting the existing CA");
    const after = snapshot(tree.certs);
    expect(after["ca.pem"]).toBe(base["ca.pem"]);
    expect(after["ca-key.pem"]).toBe(base["ca-key.pem"]);
    verifyAll(tree, [...LEAVES, "calico-cni"]);
  });
});

describe("make -j and other directories", () => {
  test("make -j4 from nothing builds a consistent tree", () => {
    const tree = tempTree({ examples: ["calico-node", "calico-cni", "calicoctl"] });
    const r = runMake(["-j4", "all", "ca", "req", `${tree.certs}/calico-node.pem`], tree);
    expect(r.status).toBe(0);
    verifyAll(tree, [...LEAVES, "calico-node", "calico-cni", "calicoctl"]);
    for (const n of [...LEAVES, "calico-node"]) expect(keyMatches(tree, n)).toBe(true);
    expect(runMake([], tree).stdout).toContain("made 0");
    rmSync(tree.dir, { recursive: true, force: true });
  });

  test("ETCD_MEMBERS and PROXIES name the member and proxy certificates", () => {
    const tree = tempTree();
    make(tree, [], ["ETCD_MEMBERS=m1 m2", "PROXIES=p1 p2"]);
    for (const n of ["m1", "m2", "p1", "p2"]) expect(existsSync(join(tree.certs, `${n}.pem`))).toBe(true);
    expect(existsSync(join(tree.certs, "etcd1.pem"))).toBe(false);
    rmSync(tree.dir, { recursive: true, force: true });
  });
});

describe("orphans and make prune", () => {
  test("members and proxies dropped from ETCD_MEMBERS / PROXIES are orphans that say so; make prune removes exactly them", async () => {
    const tree = tempTree({ examples: ["calico-cni"] });
    // the setup, as make ETCD_MEMBERS=... PROXIES=... runs it (--members, --proxies); the subject is the plain make after
    await made(tree, "--members", "etcd1 etcd2 etcd3 etcd4 etcd5", "--proxies", "proxy1 proxy2");
    unlinkSync(join(tree.config, "req-calico-cni.json"));
    const r = make(tree);
    expect(r.stderr.split("\n").filter((l) => l.startsWith("orphaned:"))).toEqual([
      `orphaned: ${tree.certs}/calico-cni.pem and its key: its config (req-calico-cni.json) is gone; left in place ("make prune" removes them)`,
      `orphaned: ${tree.certs}/etcd4.pem and its key: no longer a member (not in ETCD_MEMBERS); left in place ("make prune" removes them)`,
      `orphaned: ${tree.certs}/etcd5.pem and its key: no longer a member (not in ETCD_MEMBERS); left in place ("make prune" removes them)`,
      `orphaned: ${tree.certs}/proxy2.pem and its key: no longer a proxy (not in PROXIES); left in place ("make prune" removes them)`,
    ]);
    expect(r.stderr).not.toContain("req-etcd5.json");
    const before = snapshot(tree.certs);
    const p = make(tree, ["prune"]);
    expect(p.stdout).toContain(`orphaned: ${tree.certs}/etcd5-key.pem, ${tree.certs}/etcd5.csr, ${tree.certs}/etcd5.pem, ${tree.certs}/.tls-setup/etcd5.json: no longer a member (not in ETCD_MEMBERS)`);
    expect(p.stdout).toContain("prune: removed 4 orphaned certificates (calico-cni, etcd4, etcd5, proxy2)");
    const after = snapshot(tree.certs);
    const gone = Object.keys(before).filter((f) => !(f in after));
    expect(gone.sort()).toEqual(["calico-cni", "etcd4", "etcd5", "proxy2"].flatMap((n) => [`${n}-key.pem`, `${n}.csr`, `${n}.pem`, `.tls-setup/${n}.json`]).sort());
    for (const f of Object.keys(after)) expect(after[f]).toBe(before[f]);
    const again = make(tree, ["prune"]);
    expect(again.status).toBe(0);
    expect(again.stdout).toContain(`prune: nothing to prune in ${tree.certs}`);
    expect(make(tree).stderr).not.toContain("orphaned");
    rmSync(tree.dir, { recursive: true, force: true });
  });
});
