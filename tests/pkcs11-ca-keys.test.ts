// Every signing CA key in a PKCS#11 token (README "CA keys in an HSM (PKCS#11)"): the intermediate's key (CA_KEY in
// intermediate mode), the root's too (ROOT_KEY), the phased CA rotation with the CA key in the token (NEXT_CA_KEY),
// and the phased root rotation in intermediate mode with both CA keys in the token (NEXT_CA_KEY for the new root,
// CA_KEY for the new intermediate at the re-issue). Judged by real tools: a SoftHSM2 token initialised in a temp dir, pkcs11-tool reading the token,
// openssl verifying every leaf (-x509_strict, through the intermediate) and the CRLs.
import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { FIXTURES, runMake, snapshot, tempTree } from "./helpers";
import { expectRefused, haveHsm as haveJudges, hsm, MODULE, tokenInProcess, PIN, privateKeysIn, revokedNames, spkiOf } from "./pkcs11-helpers";
import { makeInProcess } from "./in-process";

const haveHsm = haveJudges();
const it_ = haveHsm ? it : it.skip;
const token = hsm();
const outputs: string[] = [];
const uri = (object: string) => `pkcs11:token=etcd-ca;object=${object}`;

type Tree = ReturnType<typeof tempTree>;
const intermediateTree = (): Tree => {
  const t = tempTree({ examples: ["calicoctl"] });
  copyFileSync(join(FIXTURES, "examples", "intermediate-csr.json"), join(t.config, "intermediate-csr.json"));
  return t;
};

/** What make runs for TARGETS, in this process (pkcs11-helpers' makeInProcess): the file's one token, its module initialised once. */
async function make(t: Tree, targets: string[], extra: string[] = [], env: Record<string, string> = token.env) {
  const r = await makeInProcess(targets, t, extra, env);
  outputs.push(r.stdout, r.stderr);
  return r;
}

/**
 * make itself, in a process of its own: for make's own wiring (the etcd crl after rotate-intermediate, ca-rotate-reissue
 * and ca-rotate-finish), and for what a long-lived process would hide (this file's process keeps the token
 * logged in once opened): a wrong PIN, and that a run with nothing stale needs no PIN at all.
 */
function makeSpawned(t: Tree, targets: string[], extra: string[] = [], env: NodeJS.ProcessEnv = token.env) {
  const r = runMake(targets, t, extra, { env });
  outputs.push(r.stdout, r.stderr);
  return r;
}

/** The leaves' certificate files, the revoked ones left out (never re-issued by a rotation: left to the old CA). */
const leavesOf = (t: Tree) => {
  const revoked = revokedNames(t.certs);
  return readdirSync(t.certs).filter((f) => f.endsWith(".pem") && !f.endsWith("-key.pem") && !["ca.pem", "crl.pem", "intermediate.pem", "ca-prev.pem", "ca-next.pem"].includes(f) && !revoked.has(f.slice(0, -4)));
};
const serialOf = (file: string) => new X509Certificate(readFileSync(file)).serialNumber.toLowerCase();
const record = (t: Tree, name: string) => JSON.parse(readFileSync(join(t.certs, ".tls-setup", name), "utf8"));
const openssl = (args: string[]) => spawnSync("openssl", args, { encoding: "utf8" });

/** openssl verify -x509_strict of every leaf: through the intermediate when there is one. */
function expectLeavesVerify(t: Tree, ca = join(t.certs, "ca.pem")) {
  const im = join(t.certs, "intermediate.pem");
  const chain = existsSync(im) ? ["-untrusted", im] : [];
  const leaves = leavesOf(t);
  expect(leaves.length).toBeGreaterThanOrEqual(4);
  // one openssl verify for all of them: a line per certificate, each "FILE: OK"
  const r = openssl(["verify", "-x509_strict", "-CAfile", ca, ...chain, ...leaves.map((l) => join(t.certs, l))]);
  expect(`${r.stdout.trim()}\n${r.stderr.trim()}`.trim().split("\n")).toEqual(leaves.map((l) => `${join(t.certs, l)}: OK`));
}

/** No PEM anywhere under certs/ holds the private key of any of these CA certificates. */
function expectNoCaKeyIn(t: Tree, caSpkis: string[]) {
  const keys = privateKeysIn(t.certs);
  expect(keys.length).toBeGreaterThanOrEqual(leavesOf(t).length);
  expect(caSpkis.length).toBeGreaterThan(0);
  expect(keys.filter((k) => caSpkis.includes(k.spki))).toEqual([]);
}

/** The CRL verifies with openssl against the CA certificate given. */
const expectCrlVerifies = (t: Tree, caFile: string) => expect(openssl(["crl", "-in", join(t.certs, "crl.pem"), "-CAfile", caFile, "-verify", "-noout"]).stderr.trim()).toBe("verify OK");

beforeAll(() => {
  if (haveHsm) token.init();
}, 300_000);
if (haveHsm) tokenInProcess(token);

describe("intermediate mode: the intermediate's key in the token (CA_KEY), the root's key a file kept offline", () => {
  const t = intermediateTree();
  const c = (f: string) => join(t.certs, f);
  const offline = join(t.dir, "offline");
  const rootOffline = () => renameSync(c("ca-key.pem"), join(offline, "ca-key.pem"));
  const rootBack = () => renameSync(join(offline, "ca-key.pem"), c("ca-key.pem"));
  const spkis = () => [spkiOf(c("ca.pem")), spkiOf(c("intermediate.pem"))];

  it_("make CA_KEY=pkcs11:... makes the intermediate's key inside the token, writes no intermediate key file, records it", async () => {
    const r = await make(t, [], [`CA_KEY=${uri("im")}`, `PKCS11_MODULE=${MODULE}`]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/made \S+intermediate\.pem \(intermediate CA, key made in token pkcs11:token=etcd-ca;object=im, signed by/);
    expect(existsSync(c("intermediate-key.pem"))).toBe(false);
    expect(record(t, "intermediate-key.ref")).toEqual({ uri: uri("im"), module: MODULE });
    expect(existsSync(c(".tls-setup/ca-key.ref"))).toBe(false);
    // the token's key: sensitive, never extractable
    const list = token.tool(["--list-objects", "--type", "privkey"]).stdout;
    expect(list).toMatch(/label:\s+im\n[\s\S]*?Access:\s+sensitive, always sensitive, never extractable/);
    mkdirSync(offline);
    rootOffline();
    expectNoCaKeyIn(t, spkis());
    expectLeavesVerify(t);
  });

  it_("later runs find the key through the record (root key offline): nothing stale needs no PIN; renew and revoke sign through the token", async () => {
    const idle = makeSpawned(t, [], [], { SOFTHSM2_CONF: token.env.SOFTHSM2_CONF, PKCS11_PIN: "" });
    expect(idle.status).toBe(0);
    expect(idle.stdout).toMatch(/made 0, unchanged 8/);
    const before = serialOf(c("etcd1.pem"));
    expect((await make(t, ["renew"], ["WARN_DAYS=36500"])).status).toBe(0);
    expect(serialOf(c("etcd1.pem"))).not.toBe(before);
    expectLeavesVerify(t);
    const revoked = serialOf(c("calicoctl.pem"));
    expect((await make(t, ["revoke", "NAME=calicoctl"])).status).toBe(0);
    expectCrlVerifies(t, c("intermediate.pem"));
    // openssl finds the revoked leaf through the chain and the intermediate's CRL
    const v = openssl(["verify", "-crl_check", "-CAfile", c("ca.pem"), "-untrusted", c("intermediate.pem"), "-CRLfile", c("crl.pem"), c("calicoctl.pem")]);
    expect(`${v.stdout}${v.stderr}`).toMatch(/certificate revoked/);
    expect(openssl(["crl", "-in", c("crl.pem"), "-noout", "-text"]).stdout.toLowerCase().replace(/:/g, "")).toContain(revoked.replace(/^(00)+/, ""));
    const verify = await make(t, ["verify"]);
    expect(verify.stdout).toMatch(/0 problems/);
    expectNoCaKeyIn(t, spkis());
  });

  it_("an existing intermediate whose key is in the token is adopted (stamps and records lost): made 0, the record written again", async () => {
    rmSync(c(".tls-setup"), { recursive: true });
    const plan = await make(t, ["plan"], [`CA_KEY=${uri("im")}`, `PKCS11_MODULE=${MODULE}`]);
    expect(plan.stdout).toMatch(/adopt intermediate +adopting the existing intermediate CA/);
    const r = await make(t, [], [`CA_KEY=${uri("im")}`, `PKCS11_MODULE=${MODULE}`]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/made 0, unchanged 8/);
    expect(record(t, "intermediate-key.ref")).toEqual({ uri: uri("im"), module: MODULE });
    expect((await make(t, [])).stdout).toMatch(/made 0, unchanged 8/);
  });

  it_("make rotate-intermediate needs a new object name (one line, nothing changed), then makes the new key in the token", async () => {
    rootBack();
    const before = snapshot(t.certs);
    const labels = token.privateKeyLabels();
    expectRefused(await make(t, ["rotate-intermediate"]), t.certs, before, /intermediate-key\.ref: pkcs11:token=etcd-ca;object=im: the token already holds a private key by that name, and make rotate-intermediate makes a new key for the intermediate CA; name a new object: make rotate-intermediate CA_KEY='pkcs11:token=etcd-ca;object=im-2'/);
    expect(token.privateKeyLabels()).toEqual(labels);
    const oldIm = spkiOf(c("intermediate.pem"));
    // spawned: make's recipe runs etcd crl after the build (the CRL check below)
    const r = makeSpawned(t, ["rotate-intermediate"], [`CA_KEY=${uri("im-2")}`]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/key made in token pkcs11:token=etcd-ca;object=im-2/);
    expect(record(t, "intermediate-key.ref").uri).toBe(uri("im-2"));
    expect(spkiOf(c("intermediate.pem"))).not.toBe(oldIm);
    rootOffline();
    expectLeavesVerify(t);
    // the CRL re-signed by the new intermediate (make rotate-intermediate runs make crl)
    expectCrlVerifies(t, c("intermediate.pem"));
    expectNoCaKeyIn(t, [...spkis(), oldIm]);
  });

  it_("refusals, one line each, nothing changed: wrong PIN, missing object, a key of the wrong type, module missing", async () => {
    const renew = (extra: string[]) => make(t, ["renew", "NAME=etcd1"], extra);
    expectRefused(makeSpawned(t, ["renew", "NAME=etcd1"], [], { ...token.env, PKCS11_PIN: "not-the-pin" }), t.certs, snapshot(t.certs), /PKCS11_PIN: token "etcd-ca": the PIN is wrong/);
    expectRefused(await renew([`CA_KEY=${uri("nothing")}`]), t.certs, snapshot(t.certs), /CA_KEY: pkcs11:token=etcd-ca;object=nothing: token "etcd-ca" holds no private key by that name/);
    expect(token.tool(["--keypairgen", "--key-type", "EC:secp256k1", "--label", "k1"]).status).toBe(0);
    expectRefused(await renew([`CA_KEY=${uri("k1")}`]), t.certs, snapshot(t.certs), /CA_KEY: pkcs11:token=etcd-ca;object=k1: is an EC key on a curve we do not sign with/);
    expectRefused(await renew([`PKCS11_MODULE=${join(token.dir, "none.so")}`]), t.certs, snapshot(t.certs), /PKCS11_MODULE: .*none\.so: does not exist/);
  });
});

describe("intermediate mode: the root's key in the token too (ROOT_KEY)", () => {
  const t = intermediateTree();
  const c = (f: string) => join(t.certs, f);

  it_("both CA keys made in the token; built, renewed, revoked; no CA private key in certs/; every leaf and the CRL verify", async () => {
    const r = await make(t, [], [`CA_KEY=${uri("im-b")}`, `ROOT_KEY=${uri("root-b")}`, `PKCS11_MODULE=${MODULE}`]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/made \S+ca\.pem \(CA, key made in token pkcs11:token=etcd-ca;object=root-b\)/);
    expect(r.stdout).toMatch(/intermediate CA, key made in token pkcs11:token=etcd-ca;object=im-b/);
    expect(record(t, "ca-key.ref")).toEqual({ uri: uri("root-b"), module: MODULE });
    expect(record(t, "intermediate-key.ref")).toEqual({ uri: uri("im-b"), module: MODULE });
    expect(readdirSync(t.certs).filter((f) => f === "ca-key.pem" || f === "intermediate-key.pem")).toEqual([]);
    expectLeavesVerify(t);
    // the root signed the intermediate through the token: openssl checks the intermediate against the root
    expect(openssl(["verify", "-x509_strict", "-CAfile", c("ca.pem"), c("intermediate.pem")]).stdout.trim()).toBe(`${c("intermediate.pem")}: OK`);
    const before = serialOf(c("etcd1.pem"));
    expect((await make(t, ["renew", "NAME=etcd1"])).status).toBe(0);
    expect(serialOf(c("etcd1.pem"))).not.toBe(before);
    expect((await make(t, ["revoke", "NAME=root"])).status).toBe(0);
    expectCrlVerifies(t, c("intermediate.pem"));
    expectLeavesVerify(t);
    expectNoCaKeyIn(t, [spkiOf(c("ca.pem")), spkiOf(c("intermediate.pem"))]);
    expect(makeSpawned(t, [], [], { SOFTHSM2_CONF: token.env.SOFTHSM2_CONF, PKCS11_PIN: "" }).stdout).toMatch(/made 0, unchanged 8/);
  });

  it_("CA_KEY naming the root's key in intermediate mode is refused in one line (each CA has its own key)", async () => {
    expectRefused(await make(t, [], [`CA_KEY=${uri("root-b")}`]), t.certs, snapshot(t.certs), /CA_KEY: pkcs11:token=etcd-ca;object=root-b: is the root CA's key .*ca-key\.ref\); in intermediate mode CA_KEY names the intermediate's own key.*ROOT_KEY/);
  });
});

describe("the phased CA rotation with the CA key in the token (NEXT_CA_KEY)", () => {
  const t = tempTree({ examples: ["calicoctl"] });
  const c = (f: string) => join(t.certs, f);
  let oldSpki = "";

  it_("before start: no NEXT_CA_KEY, an existing object, the current key, ROOT_KEY in root mode: one line each, nothing changed", async () => {
    expect((await make(t, [], [`CA_KEY=${uri("rot")}`, `PKCS11_MODULE=${MODULE}`])).status).toBe(0);
    oldSpki = spkiOf(c("ca.pem"));
    expect((await make(t, ["revoke", "NAME=calicoctl"])).status).toBe(0);
    const labels = token.privateKeyLabels();
    const before = snapshot(t.certs);
    expectRefused(await make(t, ["ca-rotate-start"]), t.certs, before, /^tls-setup: ca-rotate-start: the CA key is in a PKCS#11 token \(pkcs11:token=etcd-ca;object=rot\); .*make ca-rotate-start NEXT_CA_KEY='pkcs11:token=etcd-ca;object=rot-2'$/);
    expectRefused(await make(t, ["ca-rotate-start"], [`NEXT_CA_KEY=${uri("rot")}`]), t.certs, before, /NEXT_CA_KEY: pkcs11:token=etcd-ca;object=rot: is the current CA's key; the new CA needs a new key/);
    expect(token.tool(["--keypairgen", "--key-type", "EC:prime256v1", "--label", "taken"]).status).toBe(0);
    const withTaken = token.privateKeyLabels();
    expectRefused(await make(t, ["ca-rotate-start"], [`NEXT_CA_KEY=${uri("taken")}`]), t.certs, before, /NEXT_CA_KEY: pkcs11:token=etcd-ca;object=taken: the token already holds a private key by that name, and make ca-rotate-start makes a new key for the new CA; name a new object/);
    expect(token.privateKeyLabels()).toEqual(withTaken);
    expect(withTaken).toEqual([...labels, "taken"].sort());
    expectRefused(await make(t, ["renew"], [`ROOT_KEY=${uri("other")}`]), t.certs, before, /^tls-setup: ROOT_KEY: names the root's key in intermediate mode only; .*use CA_KEY=/);
    // the token's own errors, before the new key is made: the token's keys unchanged too
    expectRefused(makeSpawned(t, ["ca-rotate-start"], [`NEXT_CA_KEY=${uri("rot-2")}`], { ...token.env, PKCS11_PIN: "not-the-pin" }), t.certs, before, /PKCS11_PIN: token "etcd-ca": the PIN is wrong/);
    expectRefused(await make(t, ["ca-rotate-start"], [`NEXT_CA_KEY=${uri("rot-2")}`, `PKCS11_MODULE=${join(token.dir, "none.so")}`]), t.certs, before, /PKCS11_MODULE: .*none\.so: does not exist/);
    expect(token.privateKeyLabels()).toEqual(withTaken);
  });

  it_("start makes the new CA's key in the token (not on disk) and records it; reissue signs every leaf through it", async () => {
    const start = await make(t, ["ca-rotate-start"], [`NEXT_CA_KEY=${uri("rot-2")}`]);
    expect(start.status).toBe(0);
    expect(start.stdout).toMatch(/with a new key in token pkcs11:token=etcd-ca;object=rot-2 \(recorded in \S+ca-next-key\.ref/);
    expect(existsSync(c("ca-next-key.pem"))).toBe(false);
    expect(record(t, "ca-next-key.ref")).toEqual({ uri: uri("rot-2"), module: MODULE });
    expect(token.tool(["--list-objects", "--type", "privkey"]).stdout).toMatch(/label:\s+rot-2\n[\s\S]*?Access:\s+sensitive, always sensitive, never extractable/);
    expectNoCaKeyIn(t, [oldSpki, spkiOf(c("ca-next.pem"))]);
    expect((await make(t, ["ca-rotate-status"])).stdout).toContain(`keys: the old CA's ${uri("rot")}; the new CA's ${uri("rot-2")}`);
    // until the re-issue the old CA still signs, through its token key
    expect((await make(t, ["renew", "NAME=etcd1"])).status).toBe(0);
    expect(openssl(["verify", "-x509_strict", "-CAfile", c("ca-prev.pem"), c("etcd1.pem")]).stdout.trim()).toBe(`${c("etcd1.pem")}: OK`);
    // spawned: make's recipe runs etcd crl after the re-issue (the CRL under the new CA, below)
    const reissue = makeSpawned(t, ["ca-rotate-reissue"]);
    expect(reissue.status).toBe(0);
    // every leaf signed by the new CA (its own file as the only trust anchor), the bundle trusts them too
    expectLeavesVerify(t, c("ca-next.pem"));
    expectLeavesVerify(t);
    expectCrlVerifies(t, c("ca-next.pem"));
  });

  it_("finish: the record names the new key, the old key stays in the token (said), every leaf verifies, a plain make makes 0", async () => {
    const newSpki = spkiOf(c("ca-next.pem"));
    // spawned: make's recipe runs etcd crl after the finish
    const r = makeSpawned(t, ["ca-rotate-finish"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/the old CA's key stays in the token as pkcs11:token=etcd-ca;object=rot .*delete it with pkcs11-tool/);
    expect(r.stdout).toMatch(/its key is pkcs11:token=etcd-ca;object=rot-2 in the token \(recorded in \S+ca-key\.ref\)/);
    expect(record(t, "ca-key.ref")).toEqual({ uri: uri("rot-2"), module: MODULE });
    expect(readdirSync(join(t.certs, ".tls-setup")).filter((f) => f.endsWith(".ref"))).toEqual(["ca-key.ref"]);
    const archive = join(t.certs, "archive", readdirSync(join(t.certs, "archive"))[0]);
    expect(readdirSync(archive).sort()).toEqual(["ca-key.ref", "ca.csr", "ca.pem"]);
    expect(JSON.parse(readFileSync(join(archive, "ca-key.ref"), "utf8")).uri).toBe(uri("rot"));
    expect(spkiOf(c("ca.pem"))).toBe(newSpki);
    expect(readdirSync(t.certs).filter((f) => f.startsWith("ca-") && f !== "ca-revoked.json")).toEqual([]);
    expectLeavesVerify(t);
    expectCrlVerifies(t, c("ca.pem"));
    expectNoCaKeyIn(t, [oldSpki, newSpki]);
    expect(makeSpawned(t, [], [], { SOFTHSM2_CONF: token.env.SOFTHSM2_CONF, PKCS11_PIN: "" }).stdout).toMatch(/made 0, unchanged 7/);
    // later runs sign through the new key: a revocation's CRL verifies against the new CA
    expect((await make(t, ["revoke", "NAME=root"])).status).toBe(0);
    expectCrlVerifies(t, c("ca.pem"));
  });
});

describe("the phased root rotation in intermediate mode, root and intermediate keys in the token", () => {
  const t = intermediateTree();
  const c = (f: string) => join(t.certs, f);
  const spkis: string[] = [];
  const addSpkis = (...files: string[]) => spkis.push(...files.map((f) => spkiOf(c(f))).filter((s) => !spkis.includes(s)));
  const refs = () => readdirSync(join(t.certs, ".tls-setup")).filter((f) => f.endsWith(".ref")).sort();
  const archived = (prefix: string) => join(t.certs, "archive", readdirSync(join(t.certs, "archive")).find((d) => d.startsWith(prefix))!);
  const idle = () => expect(makeSpawned(t, [], [], { SOFTHSM2_CONF: token.env.SOFTHSM2_CONF, PKCS11_PIN: "" }).stdout).toMatch(/made 0, unchanged 8/);
  /** every leaf (-x509_strict, through intermediate.pem), the CRL (by the intermediate), no CA key in certs/, make makes 0 */
  const checkStep = (trust = c("ca.pem")) => {
    expectLeavesVerify(t, trust);
    expectCrlVerifies(t, c("intermediate.pem"));
    expectNoCaKeyIn(t, spkis);
    idle();
  };

  it_("start: a missing NEXT_CA_KEY, the current root's object: refused (one line, certs/ and token unchanged); then the new root's key is made in the token", async () => {
    expect((await make(t, [], [`CA_KEY=${uri("im-r")}`, `ROOT_KEY=${uri("root-r")}`, `PKCS11_MODULE=${MODULE}`])).status).toBe(0);
    expect((await make(t, ["revoke", "NAME=calicoctl"])).status).toBe(0);
    addSpkis("ca.pem", "intermediate.pem");
    checkStep();
    const before = snapshot(t.certs);
    const labels = token.privateKeyLabels();
    expectRefused(await make(t, ["ca-rotate-start"]), t.certs, before, /^tls-setup: ca-rotate-start: the root CA's key is in a PKCS#11 token \(pkcs11:token=etcd-ca;object=root-r, \S+ca-key\.ref\); .*make ca-rotate-start NEXT_CA_KEY='pkcs11:token=etcd-ca;object=root-r-2'$/);
    expectRefused(await make(t, ["ca-rotate-start"], [`NEXT_CA_KEY=${uri("root-r")}`]), t.certs, before, /^tls-setup: NEXT_CA_KEY: pkcs11:token=etcd-ca;object=root-r: is the current root CA's key; the new root needs a new key/);
    expect(token.privateKeyLabels()).toEqual(labels);

    const start = await make(t, ["ca-rotate-start"], [`NEXT_CA_KEY=${uri("root-r2")}`]);
    expect([start.status, start.stderr]).toEqual([0, ""]);
    expect(start.stdout).toMatch(/made the new root CA \S+ca-next\.pem .* with a new key in token pkcs11:token=etcd-ca;object=root-r2 \(recorded in \S+ca-next-key\.ref/);
    expect(start.stdout).toMatch(/Then: make ca-rotate-reissue \(it needs the new root's key pkcs11:token=etcd-ca;object=root-r2, and a new object .*CA_KEY='pkcs11:token=etcd-ca;object=im-r-2'\)/);
    expect(token.privateKeyLabels()).toEqual([...labels, "root-r2"].sort());
    expect(existsSync(c("ca-next-key.pem"))).toBe(false);
    expect(record(t, "ca-next-key.ref")).toEqual({ uri: uri("root-r2"), module: MODULE });
    addSpkis("ca-next.pem");
    // the new root's certificate is signed by its token key (self-signed, strict)
    expect(openssl(["verify", "-x509_strict", "-CAfile", c("ca-next.pem"), c("ca-next.pem")]).stdout.trim()).toBe(`${c("ca-next.pem")}: OK`);
    checkStep();
    const status = (await make(t, ["ca-rotate-status"])).stdout;
    expect(status).toContain(`keys: the old root's ${uri("root-r")}; the new root's ${uri("root-r2")}; the intermediate's (under the old root) ${uri("im-r")}`);
  });

  it_("reissue: the new intermediate needs a new object (missing, current, new root's, taken: one line each, nothing changed); then made in the token, signed by the new root through its token key", async () => {
    const before = snapshot(t.certs);
    expect(token.tool(["--keypairgen", "--key-type", "EC:prime256v1", "--label", "im-taken"]).status).toBe(0);
    const labels = token.privateKeyLabels();
    expectRefused(await make(t, ["ca-rotate-reissue"]), t.certs, before, /^tls-setup: ca-rotate-reissue: the intermediate CA's key is in a PKCS#11 token \(pkcs11:token=etcd-ca;object=im-r, \S+intermediate-key\.ref\); .*make ca-rotate-reissue CA_KEY='pkcs11:token=etcd-ca;object=im-r-2'$/);
    expectRefused(await make(t, ["ca-rotate-reissue"], [`CA_KEY=${uri("im-r")}`]), t.certs, before, /^tls-setup: CA_KEY: pkcs11:token=etcd-ca;object=im-r: is the current intermediate CA's key; the new intermediate needs a new key/);
    expectRefused(await make(t, ["ca-rotate-reissue"], [`CA_KEY=${uri("root-r2")}`]), t.certs, before, /^tls-setup: CA_KEY: pkcs11:token=etcd-ca;object=root-r2: is the new root CA's key/);
    expectRefused(await make(t, ["ca-rotate-reissue"], [`CA_KEY=${uri("im-taken")}`]), t.certs, before, /^tls-setup: CA_KEY: pkcs11:token=etcd-ca;object=im-taken: the token already holds a private key by that name, and make ca-rotate-reissue makes a new key for the intermediate CA/);
    expect(token.privateKeyLabels()).toEqual(labels);

    const oldIm = readFileSync(c("intermediate.pem"), "utf8");
    const reissue = await make(t, ["ca-rotate-reissue"], [`CA_KEY=${uri("im-r2")}`]);
    expect([reissue.status, reissue.stderr]).toEqual([0, ""]);
    expect(reissue.stdout).toMatch(/made the new intermediate CA \S+intermediate\.pem \(new key in token pkcs11:token=etcd-ca;object=im-r2, recorded in \S+intermediate-key\.ref\), signed by the new root/);
    expect(reissue.stdout).toMatch(/its key stays in the token as pkcs11:token=etcd-ca;object=im-r:/);
    expect(token.privateKeyLabels()).toEqual([...labels, "im-r2"].sort());
    expect(record(t, "intermediate-key.ref")).toEqual({ uri: uri("im-r2"), module: MODULE });
    expect(refs()).toEqual(["ca-key.ref", "ca-next-key.ref", "intermediate-key.ref"]);
    // the old intermediate archived with its record (its key cannot leave the token)
    const imArchive = archived("intermediate-");
    expect(readdirSync(imArchive).sort()).toEqual(["intermediate-key.ref", "intermediate.csr", "intermediate.pem"]);
    expect(readFileSync(join(imArchive, "intermediate.pem"), "utf8")).toBe(oldIm);
    expect(JSON.parse(readFileSync(join(imArchive, "intermediate-key.ref"), "utf8")).uri).toBe(uri("im-r"));
    addSpkis("intermediate.pem");
    expect(existsSync(c("intermediate-key.pem"))).toBe(false);
    // the new intermediate under the new root alone; every leaf under it too, and under the bundle
    expect(openssl(["verify", "-x509_strict", "-CAfile", c("ca-next.pem"), c("intermediate.pem")]).stdout.trim()).toBe(`${c("intermediate.pem")}: OK`);
    expectLeavesVerify(t, c("ca-next.pem"));
    checkStep();
    expect((await make(t, ["ca-rotate-status"])).stdout).toContain(`keys: the old root's ${uri("root-r")}; the new root's ${uri("root-r2")}; the new intermediate's ${uri("im-r2")}`);
  });

  it_("finish: the new root's record becomes ca-key.ref, the old root's is archived (its key stays in the token, said); no CA key file anywhere", async () => {
    const newRoot = readFileSync(c("ca-next.pem"), "utf8");
    const labels = token.privateKeyLabels();
    const r = await make(t, ["ca-rotate-finish"]);
    expect([r.status, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toMatch(/the old root's key stays in the token as pkcs11:token=etcd-ca;object=root-r .*delete it with pkcs11-tool/);
    expect(r.stdout).toMatch(/now holds the new root .*; its key is pkcs11:token=etcd-ca;object=root-r2 in the token \(recorded in \S+ca-key\.ref\)/);
    expect(readFileSync(c("ca.pem"), "utf8")).toBe(newRoot);
    expect(record(t, "ca-key.ref")).toEqual({ uri: uri("root-r2"), module: MODULE });
    expect(refs()).toEqual(["ca-key.ref", "intermediate-key.ref"]);
    const caArchive = archived("ca-");
    expect(readdirSync(caArchive).sort()).toEqual(["ca-key.ref", "ca.csr", "ca.pem"]);
    expect(JSON.parse(readFileSync(join(caArchive, "ca-key.ref"), "utf8")).uri).toBe(uri("root-r"));
    expect(readdirSync(t.certs).filter((f) => /^ca-(next|prev)|-key\.pem$/.test(f) && !leavesOf(t).some((l) => f === l.replace(/\.pem$/, "-key.pem")) && !revokedNames(t.certs).has(f.replace(/-key\.pem$/, "")))).toEqual([]);
    expect(token.privateKeyLabels()).toEqual(labels);
    checkStep();
    // later runs sign through the token keys: a new intermediate from the new root (ROOT_KEY from its record)
    expect((await make(t, ["rotate-intermediate"], [`CA_KEY=${uri("im-r3")}`])).status).toBe(0);
    expect(openssl(["verify", "-x509_strict", "-CAfile", c("ca.pem"), c("intermediate.pem")]).stdout.trim()).toBe(`${c("intermediate.pem")}: OK`);
    addSpkis("intermediate.pem");
    checkStep();
  });
});

describe("from a key file into the token", () => {
  it_("make rotate-intermediate CA_KEY=pkcs11:... moves the intermediate into the token: its old key file leaves certs/", async () => {
    const t = intermediateTree();
    const c = (f: string) => join(t.certs, f);
    expect((await make(t, [])).status).toBe(0);
    const oldIm = spkiOf(c("intermediate.pem"));
    expect(privateKeysIn(t.certs).map((k) => k.spki)).toContain(oldIm);
    const r = await make(t, ["rotate-intermediate"], [`CA_KEY=${uri("im-from-file")}`, `PKCS11_MODULE=${MODULE}`]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/removed \S+intermediate-key\.pem: the intermediate CA's key is in the token now/);
    expect(existsSync(c("intermediate-key.pem"))).toBe(false);
    expect(record(t, "intermediate-key.ref")).toEqual({ uri: uri("im-from-file"), module: MODULE });
    renameSync(c("ca-key.pem"), join(t.dir, "ca-key.pem"));
    expectLeavesVerify(t);
    expectNoCaKeyIn(t, [spkiOf(c("ca.pem")), spkiOf(c("intermediate.pem")), oldIm]);
  });


  it_("start NEXT_CA_KEY=... with certs/ca-key.pem: after finish the CA key is the token's, certs/ca-key.pem is archived and gone", async () => {
    const t = tempTree();
    const c = (f: string) => join(t.certs, f);
    expect((await make(t, [])).status).toBe(0);
    const oldSpki = spkiOf(c("ca.pem"));
    expect((await make(t, ["ca-rotate-start"], [`NEXT_CA_KEY=${uri("from-file")}`, `PKCS11_MODULE=${MODULE}`])).status).toBe(0);
    expect((await make(t, ["ca-rotate-reissue"])).status).toBe(0);
    const r = await make(t, ["ca-rotate-finish"]);
    expect(r.status).toBe(0);
    expect(existsSync(c("ca-key.pem"))).toBe(false);
    expect(record(t, "ca-key.ref")).toEqual({ uri: uri("from-file"), module: MODULE });
    const archive = join(t.certs, "archive", readdirSync(join(t.certs, "archive"))[0]);
    expect(privateKeysIn(archive).map((k) => k.spki)).toEqual([oldSpki]);
    expectLeavesVerify(t);
    const newSpki = spkiOf(c("ca.pem"));
    expect(privateKeysIn(t.certs).filter((k) => k.spki === newSpki)).toEqual([]);
    expect(makeSpawned(t, [], [], { SOFTHSM2_CONF: token.env.SOFTHSM2_CONF, PKCS11_PIN: "" }).stdout).toMatch(/made 0, unchanged 6/);
  });

  it_("intermediate mode, key files: start NEXT_CA_KEY=... and reissue CA_KEY=... move both the root and the intermediate into the token", async () => {
    const t = intermediateTree();
    const c = (f: string) => join(t.certs, f);
    expect((await make(t, [])).status).toBe(0);
    const oldRoot = spkiOf(c("ca.pem"));
    const oldIm = spkiOf(c("intermediate.pem"));
    expect((await make(t, ["ca-rotate-start"], [`NEXT_CA_KEY=${uri("root-from-file")}`, `PKCS11_MODULE=${MODULE}`])).status).toBe(0);
    const reissue = await make(t, ["ca-rotate-reissue"], [`CA_KEY=${uri("im-from-file-2")}`]);
    expect([reissue.status, reissue.stderr]).toEqual([0, ""]);
    expect(reissue.stdout).toMatch(/removed \S+intermediate-key\.pem: the intermediate CA's key is in the token now/);
    expect(record(t, "intermediate-key.ref")).toEqual({ uri: uri("im-from-file-2"), module: MODULE });
    expect((await make(t, ["ca-rotate-finish"])).status).toBe(0);
    expect(record(t, "ca-key.ref")).toEqual({ uri: uri("root-from-file"), module: MODULE });
    // the old CAs' key files are archived (never deleted), and no other CA key file is left in certs/
    const archive = join(t.certs, "archive");
    expect(privateKeysIn(archive).map((k) => k.spki).sort()).toEqual([oldRoot, oldIm].sort());
    expect(readdirSync(t.certs).filter((f) => f === "ca-key.pem" || f === "intermediate-key.pem")).toEqual([]);
    expectLeavesVerify(t);
    expectNoCaKeyIn(t, [spkiOf(c("ca.pem")), spkiOf(c("intermediate.pem"))]);
    expect(makeSpawned(t, [], [], { SOFTHSM2_CONF: token.env.SOFTHSM2_CONF, PKCS11_PIN: "" }).stdout).toMatch(/made 0, unchanged 8/);
  });
});

it_("no output of any run showed the PIN", () => {
  expect(outputs.length).toBeGreaterThan(0);
  expect(outputs.join("\n")).not.toContain(PIN);
});
