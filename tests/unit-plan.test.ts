// The planner in-process: every row of the README's "What makes a certificate stale" table, adoption of
// certificates made outside tls-setup (and the refusals), repairs, orphans and prune. No node or make is spawned:
// a tree is built once with the library, copied per case, changed, and planned (and built where the result on disk
// is the point). The judges of what is on disk are node:crypto's X509Certificate (signature, key match) and the
// files' bytes.

import { X509Certificate, createPrivateKey, createPublicKey } from "node:crypto";
import { appendFileSync, cpSync, existsSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempTree } from "./helpers";
import { actions, copyTree, expectActions, expectRow, make, PlanRow, reason } from "./plan-helpers";
import { editJson } from "./lifecycle-fixtures";
import { build } from "../scripts/lib/tree/build";
import { Action, decideLeaf, findOrphans, makePlan } from "../scripts/lib/tree/plan";
import { prune } from "../scripts/lib/tree/prune";
import { acquireLock } from "../scripts/lib/tree/lock";
import { TreeOptions } from "../scripts/lib/tree/targets";
import { Stamp } from "../scripts/lib/tree/state";
import { loadIssuer } from "../scripts/lib/x509/ca-load";
import { issueLeaf } from "../scripts/lib/x509/issue";
import { importKeyPair } from "../scripts/lib/x509/keys";
import { parseCertPem } from "../scripts/lib/x509/certinfo";
import { parseRequest } from "../scripts/lib/config/request";
import { parseCaConfig, selectProfile } from "../scripts/lib/config/profile";
import { commitWrites, planBundle } from "../scripts/lib/tree/output";

const LEAVES = ["etcd1", "etcd2", "etcd3", "proxy1", "root", "calico-cni"];
const ALL = ["ca", ...LEAVES];

let base: ReturnType<typeof tempTree>;
beforeAll(async () => {
  base = tempTree({ examples: ["calico-cni"] });
  await build(opts(base), { fsync: false });
}, 60_000);

const opts = (t: { config: string; certs: string }, members = ["etcd1", "etcd2", "etcd3"], proxies = ["proxy1"]): TreeOptions => ({ configDir: t.config, certsDir: t.certs, members, proxies });

/** A fresh copy of the built base tree. */
const copy = () => copyTree(base);

const bytes = (t: { certs: string }, name: string) => readFileSync(join(t.certs, `${name}.pem`), "utf8") + readFileSync(join(t.certs, `${name}-key.pem`), "utf8");

/** A certificate made outside tls-setup, as `req | bare` (the pasted rule) would: its own key unless one is given. */
async function outside(t: { config: string; certs: string }, name: string, o: { config?: string; edit?: (j: Record<string, unknown>) => void; usages?: string[]; caDir?: string; keyOf?: string } = {}) {
  const req = JSON.parse(readFileSync(join(t.config, o.config ?? (name.startsWith("etcd") ? "req-csr.json" : `req-${name}.json`)), "utf8"));
  o.edit?.(req);
  const r = parseRequest(req, "req.json", {}).value!;
  const signing = JSON.parse(readFileSync(join(t.config, "ca-config.json"), "utf8"));
  if (o.usages) signing.signing.default.usages = o.usages;
  const profile = selectProfile(parseCaConfig(signing, "ca-config.json").value!, undefined, "ca-config.json").value!;
  const caDir = o.caDir ?? t.certs;
  const { issuer } = await loadIssuer(join(caDir, "ca.pem"), join(caDir, "ca-key.pem"), new Date());
  const key = o.keyOf ? await importKeyPair(readFileSync(join(t.certs, `${o.keyOf}-key.pem`), "utf8"), "k") : undefined;
  const issued = await issueLeaf(r, profile, issuer, undefined, key);
  await commitWrites(planBundle(join(t.certs, name), { cert: issued.certPem, key: issued.keyPem, csr: issued.csrPem }), { fsync: false });
}

/** node:crypto's judgement: signed by the tree's CA, and the key belongs to the certificate. */
function judge(t: { certs: string }, name: string): { signed: boolean; keyMatches: boolean } {
  const ca = new X509Certificate(readFileSync(join(t.certs, "ca.pem")));
  const cert = new X509Certificate(readFileSync(join(t.certs, `${name}.pem`)));
  const key = createPrivateKey(readFileSync(join(t.certs, `${name}-key.pem`)));
  return { signed: cert.verify(ca.publicKey), keyMatches: cert.checkPrivateKey(key) };
}
const spki = (t: { certs: string }, name: string) => createPublicKey(createPrivateKey(readFileSync(join(t.certs, `${name}-key.pem`)))).export({ type: "spki", format: "der" }).toString("hex");

describe('the README\'s "What makes a certificate stale" table, row by row', () => {
  const rows: PlanRow[] = [
    { row: "nothing", change: () => {}, remake: {} },
    {
      row: "nothing but formatting (whitespace, key order) and timestamps",
      change: (t) => {
        const f = join(t.config, "req-csr.json");
        const j = JSON.parse(readFileSync(f, "utf8"));
        writeFileSync(f, JSON.stringify(Object.fromEntries(Object.entries(j).reverse()), null, 8));
      },
      remake: {},
    },
    { row: "a new req-<user>.json", change: (t) => cpSync(join(t.config, "req-root.json"), join(t.config, "req-alice.json")), remake: make("alice"), why: [["alice", /^new$/]] },
    { row: "an edited req-<user>.json", change: (t) => editJson(join(t.config, "req-root.json"), (j) => ((j.names as Record<string, string>[])[0].O = "x")), remake: make("root"), why: [["root", /req-root\.json changed$/]] },
    {
      row: "an edited req-csr.json",
      change: (t) => editJson(join(t.config, "req-csr.json"), (j) => (j.hosts as string[]).push("10.0.0.9")),
      remake: make("etcd1", "etcd2", "etcd3", "proxy1"),
      why: [["etcd1", /req-csr\.json changed$/]],
    },
    { row: "an edited ca-config.json", change: (t) => editJson(join(t.config, "ca-config.json"), (j) => ((j.signing as { default: { expiry: string } }).default.expiry = "4380h")), remake: make(...LEAVES), why: [["etcd1", /^ca-config\.json changed$/]] },
    { row: "an edited ca-csr.json", change: (t) => editJson(join(t.config, "ca-csr.json"), (j) => (j.CN = "another CA")), remake: make(...ALL), why: [["ca", /ca-csr\.json changed$/], ["etcd1", /^the CA is new$/]] },
    { row: "no CA at all", change: (t) => ["ca.pem", "ca-key.pem", "ca.csr"].forEach((f) => unlinkSync(join(t.certs, f))), remake: make(...ALL), why: [["ca", /ca\.pem does not exist$/]] },
    { row: "an output missing (a CSR)", change: (t) => unlinkSync(join(t.certs, "etcd2.csr")), remake: make("etcd2"), why: [["etcd2", /etcd2\.csr is missing$/]] },
    { row: "an output missing (a certificate)", change: (t) => unlinkSync(join(t.certs, "etcd3.pem")), remake: make("etcd3"), why: [["etcd3", /etcd3\.pem is missing$/]] },
    { row: "an output changed outside tls-setup (the same certificate, its file edited)", change: (t) => appendFileSync(join(t.certs, "root.pem"), "\n"), remake: make("root"), why: [["root", /root\.pem was changed outside tls-setup$/]] },
    { row: "an output changed outside tls-setup (a key swapped in)", change: (t) => cpSync(join(t.certs, "etcd1-key.pem"), join(t.certs, "etcd2-key.pem")), remake: make("etcd2"), why: [["etcd2", /etcd2-key\.pem was changed outside tls-setup$/]] },
    { row: "a req-<user>.json removed", change: (t) => unlinkSync(join(t.config, "req-calico-cni.json")), remake: {} },
    {
      row: "any of the above for a certificate revoked with make revoke (here: an edited ca-config.json)",
      change: (t) => {
        // the revocation index as make revoke writes it, naming calico-cni's current serial
        const serial = parseCertPem(readFileSync(join(t.certs, "calico-cni.pem"), "utf8"), "calico-cni.pem").serialHex;
        writeFileSync(join(t.certs, "ca-revoked.json"), JSON.stringify({ version: 1, cas: { x: { ca: "CA", crlNumber: 1, revoked: [{ serial, name: "calico-cni", cn: "calico-cni", revokedAt: "2026-11-01T00:00:00.000Z" }] } } }));
        editJson(join(t.config, "ca-config.json"), (j) => ((j.signing as { default: { expiry: string } }).default.expiry = "4380h"));
      },
      remake: make(...LEAVES.filter((n) => n !== "calico-cni")),
      why: [["calico-cni", /^revoked on 2026-11-01 \(serial [0-9a-f]+\): never re-issued by itself; a new certificate: make renew NAME=calico-cni NEW_KEY=1/]],
    },
  ];
  test.each(rows)("$row", (r) => expectRow(copy(), opts, r));

  test("a revoked certificate stays revoked when its stamp holds the serial with a leading zero byte (stamps written before serials had one form)", () => {
    const t = copy();
    const serial = parseCertPem(readFileSync(join(t.certs, "calico-cni.pem"), "utf8"), "calico-cni.pem").serialHex;
    const stampFile = join(t.certs, ".tls-setup", "calico-cni.json");
    const stamp = JSON.parse(readFileSync(stampFile, "utf8"));
    expect(stamp.serial).toBe(serial);
    writeFileSync(stampFile, JSON.stringify({ ...stamp, serial: `00${serial}` }));
    writeFileSync(join(t.certs, "ca-revoked.json"), JSON.stringify({ version: 1, cas: { x: { ca: "CA", crlNumber: 1, revoked: [{ serial, name: "calico-cni", cn: "calico-cni", revokedAt: "2026-11-01T00:00:00.000Z" }] } } }));
    editJson(join(t.config, "ca-config.json"), (j) => ((j.signing as { default: { expiry: string } }).default.expiry = "4380h"));
    const p = makePlan(opts(t));
    expect(actions(p)["calico-cni"]).toBe("keep");
    expect(reason(p, "calico-cni")).toMatch(/^revoked on 2026-11-01/);
  });

  test("a removed req-<user>.json is an orphan (its files stay); a built tree plans nothing afterwards", async () => {
    const t = copy();
    unlinkSync(join(t.config, "req-calico-cni.json"));
    const p = makePlan(opts(t));
    expect(p.orphans).toEqual([{ name: "calico-cni", why: "its config (req-calico-cni.json) is gone" }]);
    const r = await build(opts(t), { fsync: false });
    expect(r.made).toEqual([]);
    expect(existsSync(join(t.certs, "calico-cni.pem"))).toBe(true);
  });
});

describe("the CA: adoption and repair", () => {
  test("a CA without a stamp (hack/tls-setup's, your own PKI) is adopted, and so are the leaves it signed", async () => {
    const t = copy();
    rmSync(join(t.certs, ".tls-setup"), { recursive: true });
    const p = makePlan(opts(t));
    expectActions(p, Object.fromEntries(ALL.map((n) => [n, "adopt" as Action])));
    const before = Object.fromEntries(ALL.map((n) => [n, bytes(t, n)]));
    const r = await build(opts(t), { fsync: false });
    expect(r.made).toEqual([]);
    expect(r.adopted.sort()).toEqual([...ALL].sort());
    for (const n of ALL) expect(bytes(t, n)).toBe(before[n]);
    expectActions(makePlan(opts(t)), {});
  });

  test("a lost CA key is a problem, never a new CA", () => {
    const t = copy();
    unlinkSync(join(t.certs, "ca-key.pem"));
    const p = makePlan(opts(t));
    expect(p.problems.map((x) => x.message)).toEqual([`is missing but ${t.certs}/ca.pem exists; restore the key, or run "make rotate" to make a new CA (every certificate is then re-issued)`]);
    expect(actions(p).ca).toBe("keep");
  });

  test("a lost CA certificate is re-signed with the existing key; then every leaf", () => {
    const t = copy();
    unlinkSync(join(t.certs, "ca.pem"));
    const p = makePlan(opts(t));
    expectActions(p, make(...ALL));
    expect(reason(p, "ca")).toMatch(/ca\.pem is missing \(re-signed with the existing key\)$/);
  });

  test("a CA certificate file changed outside tls-setup is adopted (build checks it first); the leaves follow its fingerprint", () => {
    const t = copy();
    writeFileSync(join(t.certs, "ca.pem"), readFileSync(join(t.certs, "ca.pem"), "utf8") + "\n");
    const p = makePlan(opts(t));
    expect(actions(p).ca).toBe("adopt");
    expect(reason(p, "ca")).toMatch(/ca\.pem was changed outside tls-setup; adopting the CA found there$/);
    // the CA's fingerprint (file hash) changed, so every leaf is re-made against it
    expectActions(p, { ca: "adopt", ...make(...LEAVES) });
  });

  test("make rotate: everything; renewal: the names asked for, whatever their state; an unknown name is a problem", () => {
    const t = copy();
    expectActions(makePlan(opts(t), { rotate: true }), make(...ALL));
    const renew = makePlan(opts(t), { only: ["root"], force: true });
    expect(actions(renew)).toEqual({ ca: "keep", root: "make" });
    expect(makePlan(opts(t), { only: ["nobody"] }).problems.map((x) => x.message)).toEqual([`"nobody" is not a certificate of this tree; known: ${ALL.slice(0, 5).join(", ")}, calico-cni, root`]);
  });
});

describe("certificates made outside tls-setup (Calico's pasted rule): adopted when they satisfy their config", () => {
  test("the pasted rule's certificate (default profile, a new key) is adopted: stamped, not re-issued, then left alone", async () => {
    const t = copy();
    await outside(t, "calico-cni");
    const pasted = bytes(t, "calico-cni");
    const p = makePlan(opts(t));
    expectActions(p, { "calico-cni": "adopt" });
    expect(reason(p, "calico-cni")).toBe(`${t.certs}/calico-cni.pem was made outside tls-setup and satisfies ${t.config}/req-calico-cni.json: adopted`);
    const r = await build(opts(t), { fsync: false });
    expect([r.made, r.adopted]).toEqual([[], ["calico-cni"]]);
    expect(bytes(t, "calico-cni")).toBe(pasted);
    expect(judge(t, "calico-cni")).toEqual({ signed: true, keyMatches: true });
    expectActions(makePlan(opts(t)), {});
    expect((await build(opts(t), { fsync: false })).made).toEqual([]);
  });

  test("a member certificate made outside (the hosts of req-csr.json, both EKUs) is adopted too", () => {
    const t = copy();
    return outside(t, "etcd2").then(() => expectActions(makePlan(opts(t)), { etcd2: "adopt" }));
  });

  const refusals: { what: string; name: string; make: (t: ReturnType<typeof tempTree>) => Promise<void>; why: RegExp }[] = [
    {
      what: "signed by another CA",
      name: "root",
      make: async (t) => {
        const other = tempTree();
        await build(opts(other), { fsync: false, caOnly: true });
        await outside(t, "root", { caDir: other.certs });
      },
      why: /root\.pem was changed outside tls-setup; not adopted: it is not signed by the CA$/,
    },
    { what: "another subject", name: "root", make: (t) => outside(t, "root", { edit: (j) => (j.CN = "admin") }), why: /not adopted: its subject is not the one .*req-root\.json asks for$/ },
    { what: "other SANs", name: "etcd1", make: (t) => outside(t, "etcd1", { edit: (j) => (j.hosts = ["localhost"]) }), why: /not adopted: its SANs \(DNS:localhost\) are not the hosts of .*req-csr\.json \(DNS:localhost, IP:127\.0\.0\.1\)$/ },
    { what: "SANs where the config has none", name: "root", make: (t) => outside(t, "root", { edit: (j) => (j.hosts = ["10.1.1.1"]) }), why: /not adopted: its SANs \(IP:10\.1\.1\.1\) are not the hosts of .*req-root\.json \(none\)$/ },
    { what: "a member without serverAuth", name: "etcd3", make: (t) => outside(t, "etcd3", { usages: ["signing", "key encipherment", "client auth"] }), why: /not adopted: it lacks the extended key usage serverAuth, needed by a member certificate$/ },
    { what: "a key of another size", name: "root", make: (t) => outside(t, "root", { edit: (j) => (j.key = { algo: "ecdsa", size: 256 }) }), why: /not adopted: its key is ecdsa 256, .*req-root\.json asks for ecdsa 384$/ },
    { what: "a key copied from another certificate", name: "etcd2", make: (t) => outside(t, "etcd2", { keyOf: "etcd1" }), why: /not adopted: its key is the key of .*etcd1\.pem \(copied from another certificate\?\)$/ },
    {
      what: "another member's certificate and key copied over",
      name: "etcd2",
      make: async (t) => ["etcd1.pem", "etcd1-key.pem", "etcd1.csr"].forEach((f) => cpSync(join(t.certs, f), join(t.certs, f.replace("etcd1", "etcd2")))),
      why: /etcd2\.pem was changed outside tls-setup; not adopted: its key is the key of .*etcd1\.pem/,
    },
    {
      what: "a certificate whose key file is another one",
      name: "root",
      make: async (t) => {
        await outside(t, "root");
        cpSync(join(base.certs, "root-key.pem"), join(t.certs, "root-key.pem"));
      },
      why: /not adopted: .*root-key\.pem does not belong to .*root\.pem$/,
    },
    {
      what: "a certificate without its CSR",
      name: "root",
      make: async (t) => {
        await outside(t, "root");
        unlinkSync(join(t.certs, "root.csr"));
      },
      why: /root\.csr is missing$/,
    },
  ];
  test.each(refusals)("refused and re-issued (signed by the CA, key matching, a key of its own): $what", async ({ name, make: change, why }) => {
    const t = copy();
    await change(t);
    const p = makePlan(opts(t));
    expectActions(p, { [name]: "make" });
    expect(reason(p, name)).toMatch(why);
    const found = bytes(t, name);
    const r = await build(opts(t), { fsync: false });
    expect(r.made).toEqual([name]);
    expect(bytes(t, name)).not.toBe(found);
    expect(judge(t, name)).toEqual({ signed: true, keyMatches: true });
    const others = ALL.filter((n) => n !== name).map((n) => spki(t, n));
    expect(others).not.toContain(spki(t, name));
    expectActions(makePlan(opts(t)), {});
  });

  test("without a stamp: adopted when it satisfies its config, else made with the reason", async () => {
    const t = copy();
    await outside(t, "root", { edit: (j) => (j.CN = "admin") });
    unlinkSync(join(t.certs, ".tls-setup", "root.json"));
    unlinkSync(join(t.certs, ".tls-setup", "calico-cni.json"));
    const p = makePlan(opts(t));
    expectActions(p, { root: "make", "calico-cni": "adopt" });
    expect(reason(p, "root")).toMatch(/^not made by tls-setup yet, and not adopted: its subject is not the one/);
  });
});

describe("decideLeaf on its own (no files)", () => {
  const t = { name: "bob", role: "user" as const, configFile: "config/req-bob.json" };
  const request = parseRequest({ CN: "bob", key: { algo: "ecdsa", size: 384 } }, "req-bob.json", { requireCn: true }).value!;
  const inputs = { request: "r", profile: "p", ca: "c" };
  const stamp: Stamp = { version: 1, name: "bob", role: "user", config: t.configFile, inputs, files: { cert: "1", key: "2", csr: "3" }, serial: "01", notAfter: "", issuedAt: "" };
  const ctx = { certsDir: "certs", caFingerprint: "c", certKeys: new Map(), now: new Date() };
  const decide = (over: Partial<Parameters<typeof decideLeaf>[0]>, c: Partial<typeof ctx & { rotate: boolean; renew: boolean }> = {}) =>
    decideLeaf({ target: t, request, inputs, stamp, files: stamp.files, certExists: true, ...over }, { ...ctx, ...c });
  test.each([
    ["up to date", {}, {}, "keep", "up to date"],
    ["config changed", { inputs: { ...inputs, request: "r2" } }, {}, "make", "config/req-bob.json changed"],
    ["profile changed", { inputs: { ...inputs, profile: "p2" } }, {}, "make", "ca-config.json changed"],
    ["CA changed", { inputs: { ...inputs, ca: "c2" } }, {}, "make", "the CA changed"],
    ["CA new", {}, { caFingerprint: undefined }, "make", "the CA is new"],
    ["rotate", {}, { rotate: true }, "make", "make rotate"],
    ["renew", {}, { renew: true }, "make", "renewal asked for"],
    ["no stamp, no files", { stamp: undefined, certExists: false, files: {} }, {}, "make", "new"],
    ["key missing", { files: { ...stamp.files, key: undefined } }, {}, "make", "certs/bob-key.pem is missing"],
    ["no stamp, a certificate without its key", { stamp: undefined }, {}, "make", "not made by tls-setup yet, and not adopted: certs/bob-key.pem is missing"],
  ] as const)("%s", (_, over, c, action, why) => {
    expect(decide(over as never, c as never)).toEqual({ action, reason: why });
  });
});

describe("orphans and prune", () => {
  const st = (name: string, role: Stamp["role"], config: string): Stamp => ({ version: 1, name, role, config, inputs: { request: "" }, files: { cert: "", key: "", csr: "" }, serial: "", notAfter: "", issuedAt: "" });
  test("findOrphans says what happened: no longer a member, no longer a proxy, a user's config gone", () => {
    const stamps = new Map([st("etcd5", "member", "config/req-csr.json"), st("proxy2", "proxy", "config/req-csr.json"), st("alice", "user", "config/req-alice.json"), st("etcd1", "member", "config/req-csr.json"), st("gone", "user", "config/req-gone.json")].map((s) => [s.name, s]));
    expect(findOrphans(new Set(["ca", "etcd1"]), stamps, new Set(["etcd5", "proxy2", "alice", "etcd1"]))).toEqual([
      { name: "alice", why: "its config (req-alice.json) is gone" },
      { name: "etcd5", why: "no longer a member (not in ETCD_MEMBERS)" },
      { name: "proxy2", why: "no longer a proxy (not in PROXIES)" },
    ]);
  });

  test("dropping members and proxies makes orphans that say so (never 'req-etcd3.json is gone')", () => {
    const t = copy();
    const p = makePlan(opts(t, ["etcd1", "etcd2"], []));
    expect(p.orphans).toEqual([
      { name: "etcd3", why: "no longer a member (not in ETCD_MEMBERS)" },
      { name: "proxy1", why: "no longer a proxy (not in PROXIES)" },
    ]);
  });

  test("prune removes exactly the orphans' files (key, CSR, certificate, stamp) and nothing else; a second prune finds nothing", async () => {
    const t = copy();
    unlinkSync(join(t.config, "req-calico-cni.json"));
    const o = opts(t, ["etcd1", "etcd2"]);
    const before = new Set([...readdirSync(t.certs), ...readdirSync(join(t.certs, ".tls-setup")).map((f) => `.tls-setup/${f}`)]);
    const lines: string[] = [];
    const pruned = await prune(o, { log: (l) => lines.push(l) });
    expect(pruned.map((x) => x.orphan)).toEqual([
      { name: "calico-cni", why: "its config (req-calico-cni.json) is gone" },
      { name: "etcd3", why: "no longer a member (not in ETCD_MEMBERS)" },
    ]);
    const gone = ["etcd3", "calico-cni"].flatMap((n) => [`${n}.pem`, `${n}-key.pem`, `${n}.csr`, `.tls-setup/${n}.json`]);
    const after = new Set([...readdirSync(t.certs), ...readdirSync(join(t.certs, ".tls-setup")).map((f) => `.tls-setup/${f}`)]);
    expect([...before].filter((f) => !after.has(f)).sort()).toEqual(gone.sort());
    expect([...after].filter((f) => !before.has(f))).toEqual([]);
    expect(lines).toEqual([
      `orphaned: ${t.certs}/calico-cni-key.pem, ${t.certs}/calico-cni.csr, ${t.certs}/calico-cni.pem, ${t.certs}/.tls-setup/calico-cni.json: its config (req-calico-cni.json) is gone`,
      `orphaned: ${t.certs}/etcd3-key.pem, ${t.certs}/etcd3.csr, ${t.certs}/etcd3.pem, ${t.certs}/.tls-setup/etcd3.json: no longer a member (not in ETCD_MEMBERS)`,
    ]);
    expect(await prune(o)).toEqual([]);
    expect(makePlan(o).orphans).toEqual([]);
    expect((await build(o, { fsync: false })).made).toEqual([]);
  });

  test("prune waits for the run lock, like build", async () => {
    const t = copy();
    const o = opts(t, ["etcd1", "etcd2"]);
    const lock = await acquireLock(t.certs);
    const waits: string[] = [];
    let done = false;
    const running = prune(o, { log: (l) => waits.push(l) }).then((r) => ((done = true), r));
    await new Promise((r) => setTimeout(r, 400));
    expect(done).toBe(false);
    expect(existsSync(join(t.certs, "etcd3.pem"))).toBe(true);
    expect(waits[0]).toBe(`waiting for another tls-setup run (pid ${process.pid}) on ${t.certs}...`);
    lock.release();
    expect((await running).map((x) => x.orphan.name)).toEqual(["etcd3"]);
    expect(existsSync(join(t.certs, "etcd3.pem"))).toBe(false);
  });

  test("prune refuses when target names are invalid (an orphan could be a misnamed target); nothing is removed", async () => {
    const t = copy();
    const o = opts(t, ["etcd1", "-bad"]);
    await expect(prune(o)).rejects.toThrow(/ETCD_MEMBERS: "-bad" is not a safe name/);
    expect(existsSync(join(t.certs, "etcd2.pem"))).toBe(true);
  });
});
