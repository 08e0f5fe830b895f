// Intermediate mode (issue 11, first half) in-process: the planner's intermediate decisions row by row, the root kept
// offline, the one-line refusal when the root key is needed and absent (nothing changed), replacing the intermediate,
// adopting a root + intermediate made by openssl, and the day-2 commands over a chain (verify, revoke, secrets,
// check-expiration, renew). Judges: openssl (verify -x509_strict with -untrusted, -crl_check, x509), node:crypto's
// X509Certificate (signatures, keys), and the files' bytes.

import { X509Certificate } from "node:crypto";
import { cpSync, existsSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { haveTool, opensslVerifiesEach, opensslVerifiesWithOwnChain, runScript, sh, snapshot, tempTree, FIXTURES, certPemBlocks } from "./helpers";
import { actions, copyTree, expectActions, expectRow, make, PlanRow, reason } from "./plan-helpers";
import { editJson } from "./lifecycle-fixtures";
import { build } from "../scripts/lib/tree/build";
import { makePlan } from "../scripts/lib/tree/plan";
import { TreeOptions } from "../scripts/lib/tree/targets";
import { findSigningCa } from "../scripts/lib/tree/signing-ca";
import { verifyTree } from "../scripts/lib/lifecycle/verify";
import { revoke } from "../scripts/lib/etcd/revoke";
import { writeSecrets } from "../scripts/lib/lifecycle/secrets";
import { expiryReport } from "../scripts/lib/lifecycle/expiry";
import { renewTree } from "../scripts/lib/lifecycle/renew";
import { isUserError } from "../scripts/lib/common/errors";

const haveOpenssl = haveTool("openssl");
const itOpenssl = haveOpenssl ? test : test.skip;

const LEAVES = ["etcd1", "etcd2", "etcd3", "proxy1", "root", "calico-cni"];
type Tree = ReturnType<typeof tempTree>;

const opts = (t: { config: string; certs: string }): TreeOptions => ({ configDir: t.config, certsDir: t.certs, members: ["etcd1", "etcd2", "etcd3"], proxies: ["proxy1"] });

/** A tree in intermediate mode (the shipped example intermediate-csr.json). */
function intermediateTree(): Tree {
  const t = tempTree({ examples: ["calico-cni"] });
  cpSync(join(FIXTURES, "examples", "intermediate-csr.json"), join(t.config, "intermediate-csr.json"));
  return t;
}

let base: Tree;
beforeAll(async () => {
  base = intermediateTree();
  await build(opts(base), { fsync: false });
}, 60_000);

const copy = (): Tree => copyTree(base);

const pem = (t: Tree, name: string) => readFileSync(join(t.certs, `${name}.pem`), "utf8");
const x509 = (text: string) => new X509Certificate(text);
/** The certificates of a PEM text (each as PEM). */
const offline = (t: Tree) => renameSync(join(t.certs, "ca-key.pem"), join(t.dir, "ca-key.offline"));
const ROOT_KEY_ABSENT = (t: Tree, forWhat: string) =>
  `${t.certs}/ca-key.pem: the root CA's key is absent (kept offline?); ${forWhat} needs it: put the root key back at ${t.certs}/ca-key.pem for this run, then move it offline again`;

describe("the planner's intermediate decisions, row by row", () => {
  const rows: PlanRow[] = [
    { row: "nothing", change: () => {}, remake: {} },
    {
      row: "an edited intermediate-csr.json: the intermediate and every leaf, never the root",
      change: (t) => editJson(join(t.config, "intermediate-csr.json"), (j) => (j.CN = "another intermediate")),
      remake: make("intermediate", ...LEAVES),
      why: [["intermediate", /intermediate-csr\.json changed$/], ["etcd1", /^the intermediate CA is new$/]],
    },
    {
      row: "an intermediate profile added to ca-config.json (another expiry)",
      change: (t) => editJson(join(t.config, "ca-config.json"), (j) => ((j.signing as { profiles: Record<string, unknown> }).profiles.intermediate = { usages: ["cert sign", "crl sign"], expiry: "17520h", ca_constraint: { is_ca: true, max_path_len: 0, max_path_len_zero: true } })),
      remake: make("intermediate", ...LEAVES),
      why: [["intermediate", /^its profile \(ca-config\.json\) changed$/]],
    },
    { row: "an edited leaf profile: the leaves, not the intermediate", change: (t) => editJson(join(t.config, "ca-config.json"), (j) => ((j.signing as { default: { expiry: string } }).default.expiry = "4380h")), remake: make(...LEAVES) },
    { row: "an edited ca-csr.json: everything", change: (t) => editJson(join(t.config, "ca-csr.json"), (j) => (j.CN = "another root")), remake: make("ca", "intermediate", ...LEAVES), why: [["intermediate", /^the root CA is new$/]] },
    {
      row: "the intermediate's certificate missing: re-signed with its key, then every leaf",
      change: (t) => unlinkSync(join(t.certs, "intermediate.pem")),
      remake: make("intermediate", ...LEAVES),
      why: [["intermediate", /intermediate\.pem is missing \(re-signed with the existing key\)$/]],
    },
    { row: "no intermediate at all", change: (t) => ["intermediate.pem", "intermediate-key.pem", "intermediate.csr"].forEach((f) => unlinkSync(join(t.certs, f))), remake: make("intermediate", ...LEAVES) },
    { row: "a missing intermediate.csr is harmless", change: (t) => unlinkSync(join(t.certs, "intermediate.csr")), remake: {} },
    { row: "make rotate-intermediate", change: () => {}, remake: make("intermediate", ...LEAVES), plan: { rotateIntermediate: true }, why: [["intermediate", /rotate-intermediate/]] },
    { row: "the root key moved offline: nothing", change: offline, remake: {}, why: [["ca", /^up to date \(its key is offline\)$/]] },
    { row: "the root key offline, a leaf missing: that leaf", change: (t) => (offline(t), unlinkSync(join(t.certs, "root.pem"))), remake: make("root") },
    { row: "the root key offline, an edited leaf profile: the leaves", change: (t) => (offline(t), editJson(join(t.config, "ca-config.json"), (j) => ((j.signing as { default: { expiry: string } }).default.expiry = "4380h"))), remake: make(...LEAVES) },
    {
      row: "a leaf file without the intermediate after it (changed outside): re-made",
      change: (t) => writeFileSync(join(t.certs, "etcd2.pem"), certPemBlocks(pem(t, "etcd2"))[0]),
      remake: make("etcd2"),
      why: [["etcd2", /etcd2\.pem was changed outside tls-setup; not adopted: its file does not carry .*\/intermediate\.pem after the certificate \(etcd sends the chain from the certificate file\)$/]],
    },
  ];
  test.each(rows)("$row", (r) => expectRow(copy(), opts, r));

  test("the root key offline and the intermediate to be made: one line naming where the key is expected", () => {
    const t = copy();
    offline(t);
    editJson(join(t.config, "intermediate-csr.json"), (j) => (j.CN = "another intermediate"));
    const p = makePlan(opts(t));
    expect(p.problems.map((x) => `${x.file}: ${x.message}`)).toEqual([ROOT_KEY_ABSENT(t, `making the intermediate CA (${t.config}/intermediate-csr.json changed)`)]);
    // and so for make rotate-intermediate
    expect(makePlan(opts(t), { rotateIntermediate: true }).problems).toHaveLength(1);
  });

  test("the root key offline and ca-csr.json edited: a problem (a new root needs the key), never a new root", () => {
    const t = copy();
    offline(t);
    editJson(join(t.config, "ca-csr.json"), (j) => (j.CN = "another root"));
    const p = makePlan(opts(t));
    expect(p.problems.map((x) => `${x.file}: ${x.message}`)).toEqual([ROOT_KEY_ABSENT(t, `re-making the root CA (${t.config}/ca-csr.json changed)`)]);
    expect(actions(p).ca).toBe("keep");
  });

  test("the intermediate's key lost: a problem naming the fix, never a silent new intermediate", () => {
    const t = copy();
    unlinkSync(join(t.certs, "intermediate-key.pem"));
    expect(makePlan(opts(t)).problems.map((x) => `${x.file}: ${x.message}`)).toEqual([
      `${t.certs}/intermediate-key.pem: is missing but ${t.certs}/intermediate.pem exists; restore the key, or run "make rotate-intermediate" for a new intermediate (every leaf is re-issued; the trust file stays)`,
    ]);
  });

  test("turning intermediate mode on re-issues every leaf from the new intermediate; turning it off orphans it", async () => {
    const t = tempTree();
    await build(opts(t), { fsync: false });
    const rootPem = pem(t, "ca");
    cpSync(join(FIXTURES, "examples", "intermediate-csr.json"), join(t.config, "intermediate-csr.json"));
    expectActions(makePlan(opts(t)), make("intermediate", "etcd1", "etcd2", "etcd3", "proxy1", "root"));
    await build(opts(t), { fsync: false });
    expect(pem(t, "ca")).toBe(rootPem);
    expect(certPemBlocks(pem(t, "etcd1"))[1]).toBe(pem(t, "intermediate"));
    unlinkSync(join(t.config, "intermediate-csr.json"));
    const p = makePlan(opts(t));
    expect(p.orphans).toEqual([{ name: "intermediate", why: "its config (intermediate-csr.json) is gone" }]);
    expectActions(p, make("etcd1", "etcd2", "etcd3", "proxy1", "root"));
    expect(reason(p, "etcd1")).toBe("the CA changed");
  });

  test("a profile that would make a useless intermediate is refused, naming the field", () => {
    const t = copy();
    editJson(join(t.config, "ca-config.json"), (j) => ((j.signing as { profiles: Record<string, unknown> }).profiles.intermediate = { usages: ["cert sign", "crl sign", "server auth"], expiry: "8760h", ca_constraint: { is_ca: true } }));
    expect(makePlan(opts(t)).problems.map((x) => `${x.file}: ${x.path}: ${x.message}`)).toEqual([
      `${t.config}/ca-config.json: signing.profiles.intermediate.usages: has extended key usages without "client auth"; Go refuses leaves below an intermediate whose EKU lacks theirs (give both "server auth" and "client auth", or no extended key usage)`,
    ]);
    editJson(join(t.config, "ca-config.json"), (j) => ((j.signing as { profiles: Record<string, unknown> }).profiles.intermediate = { usages: ["crl sign"], expiry: "8760h" }));
    expect(makePlan(opts(t)).problems.map((x) => x.path)).toEqual(["signing.profiles.intermediate.ca_constraint", "signing.profiles.intermediate.usages"]);
  });
});

describe("building in intermediate mode", () => {
  test("the signing CA is the intermediate; its chain is itself; the trust file is the root", () => {
    const s = findSigningCa(opts(base));
    expect(s).toEqual({
      name: "intermediate",
      cert: `${base.certs}/intermediate.pem`,
      key: { kind: "file", path: `${base.certs}/intermediate-key.pem` },
      chain: [`${base.certs}/intermediate.pem`],
      trust: `${base.certs}/ca.pem`,
      parent: { name: "ca", cert: `${base.certs}/ca.pem`, key: { kind: "file", path: `${base.certs}/ca-key.pem` } },
    });
  });

  test("the root holds one certificate; each leaf file is the leaf then the intermediate; signatures by node:crypto", () => {
    const root = x509(pem(base, "ca"));
    const im = x509(pem(base, "intermediate"));
    expect(certPemBlocks(pem(base, "ca"))).toHaveLength(1);
    expect(certPemBlocks(pem(base, "intermediate"))).toHaveLength(1);
    expect(im.verify(root.publicKey)).toBe(true);
    expect(im.ca).toBe(true);
    for (const n of LEAVES) {
      const b = certPemBlocks(pem(base, n));
      expect([n, b.length, b[1]]).toEqual([n, 2, pem(base, "intermediate")]);
      expect(x509(b[0]).verify(im.publicKey)).toBe(true);
      expect(x509(b[0]).verify(root.publicKey)).toBe(false);
    }
  });

  itOpenssl("openssl verify -x509_strict: every leaf with -untrusted intermediate.pem, and with the leaf file alone as chain", () => {
    const files = LEAVES.map((n) => join(base.certs, `${n}.pem`));
    const strict = ["-x509_strict", "-CAfile", join(base.certs, "ca.pem")];
    const withIm = opensslVerifiesEach([...strict, "-untrusted", join(base.certs, "intermediate.pem")], files);
    const withOwn = opensslVerifiesWithOwnChain(strict, files);
    expect(files.map((f, i) => [f, withIm[i], withOwn[i]])).toEqual(files.map((f) => [f, true, true]));
    // the root alone does not verify a leaf: the chain is needed
    const r = (() => {
      try {
        return sh("openssl", ["verify", "-x509_strict", "-CAfile", join(base.certs, "ca.pem"), join(base.certs, "intermediate.csr")]);
      } catch (e) {
        return String((e as { stderr?: string }).stderr);
      }
    })();
    expect(r).not.toMatch(/: OK$/m);
    const text = sh("openssl", ["x509", "-in", join(base.certs, "intermediate.pem"), "-noout", "-text"]);
    expect(text).toMatch(/X509v3 Key Usage: critical\n\s+Certificate Sign, CRL Sign\n/);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\n\s+CA:TRUE, pathlen:0\n/);
    expect(text).not.toMatch(/Extended Key Usage/);
  });

  test("the intermediate's expiry: 3 years by default, cut to the root's end", () => {
    const im = x509(pem(base, "intermediate"));
    const days = (new Date(im.validTo).getTime() - new Date(im.validFrom).getTime()) / 86_400_000;
    expect(days).toBe(26280 / 24);
  });

  test("the root key offline: make re-makes a leaf from the intermediate and writes no root key; make again makes nothing", async () => {
    const t = copy();
    offline(t);
    unlinkSync(join(t.certs, "calico-cni.pem"));
    const r = await build(opts(t), { fsync: false });
    expect(r.made).toEqual(["calico-cni"]);
    expect(existsSync(join(t.certs, "ca-key.pem"))).toBe(false);
    expect(x509(certPemBlocks(pem(t, "calico-cni"))[0]).verify(x509(pem(t, "intermediate")).publicKey)).toBe(true);
    expect((await build(opts(t), { fsync: false })).made).toEqual([]);
  });

  test("the root key needed and absent: build refuses with the one line, and nothing on disk changes", async () => {
    const t = copy();
    offline(t);
    editJson(join(t.config, "intermediate-csr.json"), (j) => (j.CN = "another intermediate"));
    const before = snapshot(t.certs);
    const e = await build(opts(t), { fsync: false }).catch((x) => x);
    expect(isUserError(e)).toBe(true);
    expect(e.message).toBe(ROOT_KEY_ABSENT(t, `making the intermediate CA (${t.config}/intermediate-csr.json changed)`));
    expect(snapshot(t.certs)).toEqual(before);
  });

  test("replacing the intermediate: a new key and certificate from the root, every leaf re-issued with its key, the root untouched", async () => {
    const t = copy();
    const before = Object.fromEntries(["ca", "intermediate", ...LEAVES].map((n) => [n, { pem: pem(t, n), key: readFileSync(join(t.certs, `${n}-key.pem`), "utf8") }]));
    const r = await build(opts(t), { fsync: false, rotateIntermediate: true });
    expect(r.made.sort()).toEqual(["intermediate", ...LEAVES].sort());
    expect(pem(t, "ca")).toBe(before.ca.pem);
    expect(readFileSync(join(t.certs, "ca-key.pem"), "utf8")).toBe(before.ca.key);
    expect(readFileSync(join(t.certs, "intermediate-key.pem"), "utf8")).not.toBe(before.intermediate.key);
    const im = x509(pem(t, "intermediate"));
    expect(im.verify(x509(pem(t, "ca")).publicKey)).toBe(true);
    for (const n of LEAVES) {
      expect(readFileSync(join(t.certs, `${n}-key.pem`), "utf8")).toBe(before[n].key);
      expect(pem(t, n)).not.toBe(before[n].pem);
      expect(certPemBlocks(pem(t, n))[1]).toBe(pem(t, "intermediate"));
      expect(x509(certPemBlocks(pem(t, n))[0]).verify(im.publicKey)).toBe(true);
    }
    expect((await build(opts(t), { fsync: false })).made).toEqual([]);
  });
});

describe("adopting a root and an intermediate made by openssl", () => {
  /** A root and an intermediate made by openssl in DIR (the intermediate with the extensions given). */
  function opensslCas(dir: string, imExt: string, signer = "root") {
    const o = (args: string[]) => sh("openssl", args, { cwd: dir });
    for (const n of ["root", "other"]) {
      o(["ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", `${n}-key.pem`]);
      o(["req", "-x509", "-new", "-key", `${n}-key.pem`, "-subj", `/O=openssl/CN=${n} CA`, "-days", "3650", "-sha384", "-out", `${n}.pem`, "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    }
    o(["ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", "im-key.pem"]);
    o(["req", "-new", "-key", "im-key.pem", "-subj", "/O=openssl/CN=openssl intermediate", "-out", "im.csr"]);
    writeFileSync(join(dir, "im.ext"), imExt);
    o(["x509", "-req", "-in", "im.csr", "-CA", `${signer}.pem`, "-CAkey", `${signer}-key.pem`, "-CAcreateserial", "-days", "1000", "-sha384", "-extfile", "im.ext", "-out", "im.pem"]);
  }
  function place(t: Tree, dir: string) {
    rmSync(t.certs, { recursive: true, force: true });
    cpSync(dir, t.certs, { recursive: true, filter: (s) => !/\.(ext|srl)$/.test(s) && !s.includes("other") });
    renameSync(join(t.certs, "root.pem"), join(t.certs, "ca.pem"));
    renameSync(join(t.certs, "root-key.pem"), join(t.certs, "ca-key.pem"));
    renameSync(join(t.certs, "im.pem"), join(t.certs, "intermediate.pem"));
    renameSync(join(t.certs, "im-key.pem"), join(t.certs, "intermediate-key.pem"));
    renameSync(join(t.certs, "im.csr"), join(t.certs, "intermediate.csr"));
  }
  const GOOD = "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n";

  itOpenssl("adopted after the chain is checked, the root key offline; the leaves are made by the openssl intermediate", async () => {
    const t = intermediateTree();
    const dir = join(t.dir, "openssl");
    sh("mkdir", ["-p", dir]);
    opensslCas(dir, GOOD);
    place(t, dir);
    offline(t);
    const cas = { ca: pem(t, "ca"), intermediate: pem(t, "intermediate") };
    const p = makePlan(opts(t));
    expect([actions(p).ca, actions(p).intermediate]).toEqual(["adopt", "adopt"]);
    const r = await build(opts(t), { fsync: false });
    expect(r.adopted.sort()).toEqual(["ca", "intermediate"]);
    expect(pem(t, "ca")).toBe(cas.ca);
    expect(pem(t, "intermediate")).toBe(cas.intermediate);
    const files = LEAVES.filter((x) => x !== "calico-cni").map((n) => join(t.certs, `${n}.pem`));
    const ok = opensslVerifiesWithOwnChain(["-x509_strict", "-CAfile", join(t.certs, "ca.pem")], files);
    expect(files.map((f, i) => [f, ok[i]])).toEqual(files.map((f) => [f, true]));
    expect((await build(opts(t), { fsync: false })).made).toEqual([]);
    expect((await verifyTree(opts(t))).problems).toEqual([]);
  });

  const refusals: [string, string, string, RegExp][] = [
    ["signed by another root", GOOD, "other", /intermediate\.pem: is not signed by the root CA in .*ca\.pem \(its issuer name or signature does not match\); not adopted as the intermediate CA$/],
    ["not a CA", "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n", "root", /intermediate\.pem: is not a CA certificate/],
    ["an EKU without clientAuth", GOOD + "extendedKeyUsage=serverAuth\n", "root", /intermediate\.pem: its extended key usage lacks clientAuth; Go refuses the leaves below it/],
  ];
  if (haveOpenssl)
    test.each(refusals)("refused when %s: one line per problem, nothing written", async (_what, ext, signer, why) => {
      const t = intermediateTree();
      const dir = join(t.dir, "openssl");
      sh("mkdir", ["-p", dir]);
      opensslCas(dir, ext, signer);
      place(t, dir);
      const before = snapshot(t.certs);
      const e = await build(opts(t), { fsync: false }).catch((x) => x);
      expect(isUserError(e)).toBe(true);
      expect(e.message.split("\n")[0]).toMatch(why);
      // the root's stamp may be written (it is adopted first); no certificate or key changes
      const after = snapshot(t.certs);
      for (const [f, h] of Object.entries(before)) expect([f, after[f]]).toEqual([f, h]);
      expect(Object.keys(after).filter((f) => !f.startsWith(".tls-setup/") && !before[f])).toEqual([]);
    });
});

describe("day 2 over a chain", () => {
  test("verify: a clean intermediate tree passes; a leaf without its chain and an intermediate in the trust file fail", async () => {
    const t = copy();
    expect(await verifyTree(opts(t))).toMatchObject({ problems: [] });
    writeFileSync(join(t.certs, "etcd1.pem"), certPemBlocks(pem(t, "etcd1"))[0]);
    writeFileSync(join(t.certs, "ca.pem"), pem(t, "ca") + pem(t, "intermediate"));
    const r = await verifyTree(opts(t));
    expect(r.problems).toEqual([
      `${t.certs}/ca.pem: certificate 2 ("CN=tls-setup etcd intermediate CA,OU=etcd cluster,O=autogenerated,L=the internet") is not a self-signed root; the trust file must hold roots only (an intermediate there becomes a trust anchor)`,
      `${t.certs}/etcd1.pem: does not carry ${t.certs}/intermediate.pem after the certificate; etcd sends the chain from --cert-file, so clients cannot verify it; run "make" to re-issue it`,
    ]);
  });

  test("verify with the root key offline: no problem", async () => {
    const t = copy();
    offline(t);
    expect((await verifyTree(opts(t))).problems).toEqual([]);
  });

  itOpenssl("revoke: the CRL is signed by the intermediate (openssl -crl_check); replacing the intermediate keeps the old serial revoked", async () => {
    const t = copy();
    offline(t);
    const cnPem = join(t.certs, "calico-cni.pem");
    const oldSerial = x509(pem(t, "calico-cni")).serialNumber.toLowerCase().replace(/^0+/, "");
    await revoke(opts(t), "calico-cni");
    expect(sh("openssl", ["crl", "-in", join(t.certs, "crl.pem"), "-noout", "-issuer", "-nameopt", "RFC2253"]).trim()).toBe("issuer=CN=tls-setup etcd intermediate CA,OU=etcd cluster,O=autogenerated,L=the internet");
    const check = (f: string) => {
      try {
        return sh("openssl", ["verify", "-x509_strict", "-crl_check", "-CAfile", join(t.certs, "ca.pem"), "-untrusted", join(t.certs, "intermediate.pem"), "-CRLfile", join(t.certs, "crl.pem"), f]);
      } catch (e) {
        return String((e as { stdout?: string }).stdout) + String((e as { stderr?: string }).stderr);
      }
    };
    expect(check(cnPem)).toMatch(/certificate revoked/);
    expect(check(join(t.certs, "root.pem"))).toBe(`${join(t.certs, "root.pem")}: OK\n`);
    expect((await verifyTree(opts(t))).problems).toEqual([]);
    // a new intermediate (root key back for this run), a fresh CRL from it: still lists the old serial
    renameSync(join(t.dir, "ca-key.offline"), join(t.certs, "ca-key.pem"));
    const r = await build(opts(t), { fsync: false, rotateIntermediate: true });
    expect(r.warnings).toEqual([`${t.certs}/crl.pem: was signed by the previous intermediate CA; run "make crl" to re-sign it with ${t.certs}/intermediate.pem (etcd compares serials only, openssl -crl_check needs the new issuer)`]);
    await revoke(opts(t), undefined);
    const listed = sh("openssl", ["crl", "-in", join(t.certs, "crl.pem"), "-noout", "-text"]).toLowerCase().replace(/:/g, "");
    expect(listed).toContain(oldSerial);
    expect(check(join(t.certs, "root.pem"))).toBe(`${join(t.certs, "root.pem")}: OK\n`);
  });

  test("secrets: etcd-ca is the root only, etcd-cert the leaf followed by the intermediate", async () => {
    const t = copy();
    offline(t);
    const { written } = await writeSecrets(opts(t), { user: "calico-cni" });
    const yaml = readFileSync(written[0].file, "utf8");
    const data = (k: string) => Buffer.from(JSON.parse(new RegExp(`^  ${k}: (".*")$`, "m").exec(yaml)![1]), "base64").toString("utf8");
    expect(data("etcd-ca")).toBe(pem(t, "ca"));
    expect(certPemBlocks(data("etcd-cert"))).toEqual([certPemBlocks(pem(t, "calico-cni"))[0], pem(t, "intermediate")]);
  });

  test("check-expiration: the intermediate with its role, after the root; leaves chain to it", () => {
    const r = expiryReport(base.certs, new Date(), 30);
    expect(r.certificates.slice(0, 2).map((e) => [e.name, e.role, e.ca])).toEqual([
      ["ca", "ca", "self-signed"],
      ["intermediate", "intermediate", "ca"],
    ]);
    for (const e of r.certificates.slice(2)) expect([e.name, e.ca]).toEqual([e.name, "intermediate"]);
  });

  test("renew with the root key offline: the leaf re-issued by the intermediate, carrying it; NAME=intermediate refused", async () => {
    const t = copy();
    offline(t);
    const before = pem(t, "etcd2");
    const r = await renewTree(opts(t), { warnDays: 30, name: "etcd2" });
    expect(r.renewed.map((x) => x.name)).toEqual(["etcd2"]);
    expect(pem(t, "etcd2")).not.toBe(before);
    expect(certPemBlocks(pem(t, "etcd2"))[1]).toBe(pem(t, "intermediate"));
    await expect(renewTree(opts(t), { warnDays: 30, name: "intermediate" })).rejects.toThrow(/^NAME: "intermediate" is the intermediate CA; "make renew" re-issues leaves only; a new intermediate is "make rotate-intermediate"/);
  });
});

describe("a root that may not sign an intermediate", () => {
  test("ca.pathlenzero in ca-csr.json: refused before anything is made, naming the field", async () => {
    const t = intermediateTree();
    editJson(join(t.config, "ca-csr.json"), (j) => (j.ca = { expiry: "43800h", pathlen: 0, pathlenzero: true }));
    const e = await build(opts(t), { fsync: false }).catch((x) => x);
    expect(isUserError(e)).toBe(true);
    expect(e.message).toBe(`${t.config}/ca-csr.json: ca.pathlenzero: gives the root a path length of 0, so it may not sign the intermediate CA of intermediate-csr.json; remove it`);
    expect(existsSync(join(t.certs, "ca.pem"))).toBe(false);
  });
});

describe("inspect over a chain", () => {
  test("a leaf shows its path up to the root and the intermediate its file carries", () => {
    const r = runScript("lifecycle", ["inspect", "--config-dir", base.config, "--certs-dir", base.certs, "--name", "etcd1", "--format", "json"]);
    expect(r.status).toBe(0);
    const d = JSON.parse(r.stdout);
    expect([d.chains_to, d.chain, d.chain_in_file]).toEqual(["intermediate", ["intermediate", "ca"], ["CN=tls-setup etcd intermediate CA,OU=etcd cluster,O=autogenerated,L=the internet"]]);
    const text = runScript("lifecycle", ["inspect", "--config-dir", base.config, "--certs-dir", base.certs, "--name", "intermediate"]).stdout;
    expect(text).toMatch(/^role: +intermediate, chains to ca$/m);
  });
});
