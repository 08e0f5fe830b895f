// MEMBER_CERTS=split and etcd-cluster.json, in-process: the planner's rows for switching between the member layouts
// (what is re-made, what becomes an orphan and why, what prune removes), the profiles a split member is signed with,
// the EKU rules, and etcd-cluster.json's validation. The judges of what is on disk are node:crypto's
// X509Certificate and the files' bytes (OpenSSL judges the split halves in tests/etcd-split.test.ts); Go's own
// x509 VerifyHostname (tests/go/hostcheck) judges our copy of it.

import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { haveTool, tempTree } from "./helpers";
import { actions, copyTree, reason } from "./plan-helpers";
import { editJson, writeJson } from "./lifecycle-fixtures";
import { build } from "../scripts/lib/tree/build";
import { makePlan, Plan } from "../scripts/lib/tree/plan";
import { prune } from "../scripts/lib/tree/prune";
import { discoverTargets, TreeOptions } from "../scripts/lib/tree/targets";
import { verifyTree } from "../scripts/lib/lifecycle/verify";
import { renewTree } from "../scripts/lib/lifecycle/renew";
import { expiryReport } from "../scripts/lib/lifecycle/expiry";
import { parseClusterSettings, verifyHostname } from "../scripts/lib/config/etcd-cluster";
import { parseIp } from "../scripts/lib/config/hosts";
import { parseCertPem, subjectAltNames } from "../scripts/lib/x509/certinfo";
import { parseMemberCerts } from "../scripts/lib/cli/tree-args";
import { isUserError } from "../scripts/lib/common/errors";

type T = ReturnType<typeof tempTree>;
const MEMBERS = ["etcd1", "etcd2", "etcd3"];
const CLIENTS = MEMBERS.map((m) => `${m}-client`);
const opts = (t: T, memberCerts?: "combined" | "split"): TreeOptions => ({ configDir: t.config, certsDir: t.certs, members: MEMBERS, proxies: ["proxy1"], ...(memberCerts ? { memberCerts } : {}) });

let combined: T;
let split: T;
beforeAll(async () => {
  combined = tempTree();
  await build(opts(combined), { fsync: false });
  split = copy(combined);
  await build(opts(split, "split"), { fsync: false });
}, 60_000);

const copy = (from: T): T => copyTree(from);

const roles = (p: Plan) => Object.fromEntries(p.items.map((i) => [i.target.name, i.target.role]));
const cert = (t: T, n: string) => new X509Certificate(readFileSync(join(t.certs, `${n}.pem`)));
const pem = (t: T, n: string) => readFileSync(join(t.certs, `${n}.pem`), "utf8");
const key = (t: T, n: string) => readFileSync(join(t.certs, `${n}-key.pem`), "utf8");
/** EKUs as node:crypto reads them (OIDs) */
const ekus = (t: T, n: string) => [...(cert(t, n).keyUsage ?? [])].sort();
const SERVER = "1.3.6.1.5.5.7.3.1";
const CLIENT = "1.3.6.1.5.5.7.3.2";

describe("the layouts' targets and roles", () => {
  test("combined (the default): one member certificate each, role member; split: etcdN (member-server) and etcdN-client (member-client)", () => {
    expect(roles(makePlan(opts(combined)))).toEqual({ ca: "ca", etcd1: "member", etcd2: "member", etcd3: "member", proxy1: "proxy", root: "user" });
    expect(roles(makePlan(opts(split, "split")))).toEqual({
      ca: "ca",
      etcd1: "member-server", "etcd1-client": "member-client",
      etcd2: "member-server", "etcd2-client": "member-client",
      etcd3: "member-server", "etcd3-client": "member-client",
      proxy1: "proxy", root: "user",
    });
  });

  test("a split build: etcdN has serverAuth only, etcdN-client clientAuth only, both with the member's CN and every host of req-csr.json; own keys", () => {
    for (const m of MEMBERS) {
      const [s, c] = [cert(split, m), cert(split, `${m}-client`)];
      expect(ekus(split, m)).toEqual([SERVER]);
      expect(ekus(split, `${m}-client`)).toEqual([CLIENT]);
      expect(c.subject).toBe(s.subject);
      expect(c.subjectAltName).toBe(s.subjectAltName);
      expect(s.subjectAltName).toBe("DNS:localhost, IP Address:127.0.0.1");
      expect(key(split, m)).not.toBe(key(split, `${m}-client`));
      expect(s.checkIssued(cert(split, "ca")) && c.checkIssued(cert(split, "ca"))).toBe(true);
    }
    // the rest of the tree is what the combined build made
    for (const n of ["ca", "proxy1", "root"]) expect(pem(split, n)).toBe(pem(combined, n));
    for (const m of MEMBERS) expect(ekus(combined, m)).toEqual([SERVER, CLIENT]);
  });

  test("a split tree plans nothing more, in split; the client certificate's name clashes with a user or proxy of that name", () => {
    expect(Object.values(actions(makePlan(opts(split, "split")))).every((a) => a === "keep")).toBe(true);
    const t = copy(split);
    cpSync(join(t.config, "req-root.json"), join(t.config, "req-etcd2-client.json"));
    expect(makePlan(opts(t, "split")).problems.map((p) => p.message)).toEqual([expect.stringMatching(/^user name "etcd2-client" clashes with a built-in certificate/)]);
    expect(makePlan(opts(t)).problems).toEqual([]);
    expect(discoverTargets({ ...opts(t, "split"), proxies: ["etcd1-client"] }).problems.map((p) => `${p.file}: ${p.message}`)).toContain('PROXIES: "etcd1-client" is already used by another certificate; choose another name');
  });
});

describe("switching layouts re-makes exactly what must change", () => {
  test("combined -> split: etcdN re-issued as server-only (key kept), etcdN-client new; nothing else", async () => {
    const t = copy(combined);
    const p = makePlan(opts(t, "split"));
    expect(p.problems).toEqual([]);
    expect(actions(p)).toEqual({ ca: "keep", etcd1: "make", "etcd1-client": "make", etcd2: "make", "etcd2-client": "make", etcd3: "make", "etcd3-client": "make", proxy1: "keep", root: "keep" });
    expect(reason(p, "etcd1")).toBe("MEMBER_CERTS=split: re-issued with server auth only (its client side is now a separate certificate)");
    expect(reason(p, "etcd1-client")).toBe("new");
    const keys = MEMBERS.map((m) => key(t, m));
    const r = await build(opts(t, "split"), { fsync: false });
    expect(r.made.sort()).toEqual([...MEMBERS, ...CLIENTS].sort());
    expect(MEMBERS.map((m) => key(t, m))).toEqual(keys);
    for (const m of MEMBERS) expect([ekus(t, m), ekus(t, `${m}-client`)]).toEqual([[SERVER], [CLIENT]]);
  });

  test("split -> combined: etcdN re-issued with both (key kept); etcdN-client left in place as an orphan with the reason; prune removes exactly its files", async () => {
    const t = copy(split);
    const p = makePlan(opts(t));
    expect(actions(p)).toEqual({ ca: "keep", etcd1: "make", etcd2: "make", etcd3: "make", proxy1: "keep", root: "keep" });
    expect(reason(p, "etcd2")).toBe('MEMBER_CERTS=combined (the default: neither MEMBER_CERTS nor "member_certs" in etcd-cluster.json says split): re-issued with server and client auth');
    expect(reason(makePlan(opts(t, "combined")), "etcd2")).toBe("MEMBER_CERTS=combined: re-issued with server and client auth");
    expect(p.orphans).toEqual(MEMBERS.map((m) => ({ name: `${m}-client`, why: `the client certificate of ${m} in the split layout, unused with MEMBER_CERTS=combined (${m}.pem has server and client auth)` })));
    const keys = MEMBERS.map((m) => key(t, m));
    const clientPems = CLIENTS.map((c) => pem(t, c));
    const r = await build(opts(t), { fsync: false });
    expect(r.made.sort()).toEqual(MEMBERS);
    expect(r.orphans.map((o) => o.name)).toEqual(CLIENTS);
    expect(MEMBERS.map((m) => key(t, m))).toEqual(keys);
    for (const m of MEMBERS) expect(ekus(t, m)).toEqual([SERVER, CLIENT]);
    expect(CLIENTS.map((c) => pem(t, c))).toEqual(clientPems);
    const pruned = await prune(opts(t));
    expect(pruned.map((x) => x.orphan.name)).toEqual(CLIENTS);
    for (const c of CLIENTS) for (const f of [`${c}.pem`, `${c}-key.pem`, `${c}.csr`, `.tls-setup/${c}.json`]) expect(existsSync(join(t.certs, f))).toBe(false);
    for (const n of ["ca", ...MEMBERS, "proxy1", "root"]) expect(existsSync(join(t.certs, `${n}.pem`))).toBe(true);
    expect(makePlan(opts(t)).orphans).toEqual([]);
  });

  test("a member dropped from ETCD_MEMBERS in split: both its certificates are orphans, 'no longer a member'", () => {
    const p = makePlan({ ...opts(split, "split"), members: ["etcd1", "etcd2"] });
    expect(p.orphans).toEqual([{ name: "etcd3", why: "no longer a member (not in ETCD_MEMBERS)" }, { name: "etcd3-client", why: "no longer a member (not in ETCD_MEMBERS)" }]);
  });

  test('"member_certs" in etcd-cluster.json records the layout (MEMBER_CERTS still wins)', () => {
    const t = copy(split);
    writeJson(join(t.config, "etcd-cluster.json"), { member_certs: "split" });
    expect(Object.values(actions(makePlan(opts(t)))).every((a) => a === "keep")).toBe(true);
    expect(actions(makePlan(opts(t, "combined"))).etcd1).toBe("make");
  });
});

describe("profiles for the split layout", () => {
  test('without "member-server"/"member-client" profiles: the member profile limited to one EKU (key usages kept); a ca-config.json edit re-makes both halves', () => {
    const p = makePlan(opts(split, "split"));
    const prof = (n: string) => p.items.find((i) => i.target.name === n)!.profile!;
    expect(prof("etcd1").usages).toEqual(["signing", "key encipherment", "server auth"]);
    expect(prof("etcd1-client").usages).toEqual(["signing", "key encipherment", "client auth"]);
    const t = copy(split);
    editJson(join(t.config, "ca-config.json"), (j) => ((j.signing as { default: { expiry: string } }).default.expiry = "4380h"));
    const a = actions(makePlan(opts(t, "split")));
    for (const n of [...MEMBERS, ...CLIENTS, "proxy1"]) expect(a[n]).toBe("make");
  });

  test('named profiles "member-server" / "member-client" are used when present; one carrying the other EKU is refused with the file and field', async () => {
    const t = copy(split);
    editJson(join(t.config, "ca-config.json"), (j) => {
      const s = j.signing as { profiles: Record<string, unknown> };
      s.profiles["member-server"] = { usages: ["digital signature", "server auth"], expiry: "2000h" };
      s.profiles["member-client"] = { usages: ["digital signature", "client auth"], expiry: "1000h" };
    });
    const p = makePlan(opts(t, "split"));
    expect(p.problems).toEqual([]);
    expect(p.items.find((i) => i.target.name === "etcd1")!.profile!.name).toBe("member-server");
    await build(opts(t, "split"), { fsync: false });
    const days = (n: string) => Math.round((new Date(cert(t, n).validTo).getTime() - new Date(cert(t, n).validFrom).getTime()) / 3_600_000);
    expect([days("etcd1"), days("etcd1-client")]).toEqual([2000, 1000]);
    expect([ekus(t, "etcd1"), ekus(t, "etcd1-client")]).toEqual([[SERVER], [CLIENT]]);
    editJson(join(t.config, "ca-config.json"), (j) => ((j.signing as { profiles: Record<string, { usages: string[] }> }).profiles["member-server"].usages = ["signing", "server auth", "client auth"]));
    expect(makePlan(opts(t, "split")).problems.map((x) => `${x.path}: ${x.message}`)).toEqual([
      'signing.profiles.member-server.usages: has "client auth"; member-server certificates (MEMBER_CERTS=split) must not carry "client auth": the split layout keeps server and client auth on separate certificates',
    ]);
  });
});

describe("verify, renew and check-expiration know the split layout", () => {
  test("verify passes a split tree; flags a missing client certificate and a server certificate that still has clientAuth (right after switching)", async () => {
    expect((await verifyTree(opts(split, "split"))).problems).toEqual([]);
    expect((await verifyTree(opts(split, "split"))).checked).toEqual(expect.arrayContaining(CLIENTS));
    const t = copy(combined);
    const r = await verifyTree(opts(t, "split"));
    for (const m of MEMBERS) {
      expect(r.problems).toContain(`${t.certs}/${m}.pem: allows the extended key usage clientAuth, but MEMBER_CERTS=split keeps a member-server certificate to serverAuth only; run "make" to re-issue it`);
      expect(r.problems).toContain(`${t.certs}/${m}-client.pem: does not exist; run "make"`);
    }
  });

  test("renew NAME=etcd2-client re-issues that one only (key kept); check-expiration lists the client certificates with their role", async () => {
    const t = copy(split);
    const before = Object.fromEntries(["ca", ...MEMBERS, ...CLIENTS, "proxy1", "root"].map((n) => [n, pem(t, n)]));
    const k = key(t, "etcd2-client");
    const r = await renewTree(opts(t, "split"), { warnDays: 30, name: "etcd2-client" });
    expect(r.renewed.map((x) => x.name)).toEqual(["etcd2-client"]);
    expect(key(t, "etcd2-client")).toBe(k);
    for (const [n, b] of Object.entries(before)) expect(pem(t, n) === b).toBe(n !== "etcd2-client");
    expect(ekus(t, "etcd2-client")).toEqual([CLIENT]);
    const rows = expiryReport(t.certs, new Date(), 30).certificates.map((c) => [c.name, c.role]);
    expect(rows).toEqual(expect.arrayContaining([["etcd1", "member-server"], ["etcd1-client", "member-client"]]));
  });
});

describe("etcd-cluster.json and MEMBER_CERTS are validated", () => {
  const parse = (j: Record<string, unknown>) => parseClusterSettings(j, "config/etcd-cluster.json");
  test("accepted forms; a list warns that etcd 3.4 and 3.5 < 3.5.15 take one value", () => {
    const r = parse({ member_certs: "split", peer_cert_allowed_cn: "etcd", client_cert_allowed_hostname: ["a.example", "10.0.0.1"] });
    expect(r.value).toEqual({ memberCerts: "split", peerAllowedCn: ["etcd"], peerAllowedHostname: [], clientAllowedHostname: ["a.example", "10.0.0.1"] });
    expect(r.warnings).toEqual([
      "config/etcd-cluster.json: client_cert_allowed_hostname: 2 values; etcd 3.4 and 3.5 before 3.5.15 take one --client-cert-allowed-hostname (a second flag replaces the first); lists need etcd >= 3.5.15 or 3.6",
    ]);
    expect(parse({ peer_cert_allowed_cn: ["etcd"] }).warnings).toEqual([]);
  });

  test("the shipped example config/examples/etcd-cluster.json parses, and its CN is the one req-csr.json gives members", () => {
    const root = join(__dirname, "..");
    const r = parse(JSON.parse(readFileSync(join(root, "config", "examples", "etcd-cluster.json"), "utf8")));
    expect(r.problems).toEqual([]);
    expect(r.value!.peerAllowedCn).toEqual([JSON.parse(readFileSync(join(root, "config", "req-csr.json"), "utf8")).CN]);
  });

  test.each([
    [{ member_certs: "both" }, 'member_certs: "both" is not a member certificate layout; accepted: "combined", "split"'],
    [{ peer_cert_allowed_cn: 3 }, "peer_cert_allowed_cn: 3 is a number; expected the value given to etcd's --peer-cert-allowed-cn: a string, or a list of strings (etcd >= 3.5.15)"],
    [{ peer_cert_allowed_cn: ["etcd", ""] }, `peer_cert_allowed_cn: ["etcd",""] is not a list of non-empty strings; expected the value given to etcd's --peer-cert-allowed-cn: a string, or a list of strings (etcd >= 3.5.15)`],
    [{ peer_cert_allowed_hostname: "a.example,b.example" }, `peer_cert_allowed_hostname: "a.example,b.example" is not a host name or IP address (as etcd's --peer-cert-allowed-hostname takes one)`],
    [{ peer_cert_allowed_cn: "etcd", peer_cert_allowed_hostname: "a.example" }, 'peer_cert_allowed_hostname: is given together with peer_cert_allowed_cn; etcd refuses to start with both ("AllowedCN and AllowedHostname are mutually exclusive"): keep one'],
  ])("%j", (j, msg) => {
    const r = parse(j);
    expect(r.value).toBeUndefined();
    expect(r.problems.map((p) => `${p.path}: ${p.message}`)).toEqual([msg]);
  });

  test("a bad etcd-cluster.json stops the plan with one line naming the file and field; a bad MEMBER_CERTS is a one-line user error", () => {
    const t = copy(combined);
    writeFileSync(join(t.config, "etcd-cluster.json"), '{"member_certs": "both"}');
    expect(makePlan(opts(t)).problems.map((p) => `${p.file}: ${p.path}: ${p.message}`)).toEqual([`${t.config}/etcd-cluster.json: member_certs: "both" is not a member certificate layout; accepted: "combined", "split"`]);
    let err: unknown;
    try {
      parseMemberCerts("splitted");
    } catch (e) {
      err = e;
    }
    expect(isUserError(err) && err.message).toBe('MEMBER_CERTS: "splitted" is not a member certificate layout; accepted: "combined", "split"');
    expect(parseMemberCerts("")).toBeUndefined();
  });
});

// Go's crypto/x509 judges our copy of VerifyHostname (the allowed-hostname checks of verify).
const haveGo = haveTool("go");
(haveGo ? describe : describe.skip)("verifyHostname agrees with Go's x509.Certificate.VerifyHostname", () => {
  const goDir = mkdtempSync(join(tmpdir(), "tls-setup-go-"));
  afterAll(() => rmSync(goDir, { recursive: true, force: true }));

  test("for a certificate with wildcard, mixed-case, IPv4 and IPv6 SANs, over tricky candidates", async () => {
    const bin = join(goDir, "hostcheck");
    const env = { ...process.env, GOCACHE: join(goDir, "cache"), GOPATH: join(goDir, "gopath"), GOPROXY: "off", GOFLAGS: "", GO111MODULE: "" };
    const b = spawnSync("go", ["build", "-o", bin, join(__dirname, "go", "hostcheck", "main.go")], { env, encoding: "utf8" });
    if (b.status !== 0) throw new Error(`go build of tests/go/hostcheck failed: ${b.stderr}`);
    const t = copy(combined);
    writeJson(join(t.config, "req-svc.json"), { CN: "svc", hosts: ["*.etcd.example", "Etcd1.Example.com", "10.0.0.1", "::1", "2001:db8::7", "localhost"], key: { algo: "ecdsa", size: 256 } });
    await build(opts(t), { fsync: false });
    const candidates = [
      "a.etcd.example", "A.ETCD.EXAMPLE", "b.a.etcd.example", "etcd.example", "*.etcd.example", "etcd1.example.com", "ETCD1.EXAMPLE.COM.", "etcd1.example.com..",
      "under_score.example", "a_b.etcd.example", "localhost", "localhost.", "LocalHost", "10.0.0.1", "10.0.0.2", "::ffff:10.0.0.1", "[::1]", "::1", "0:0:0:0:0:0:0:1", "2001:DB8::7", "[2001:db8:0::7]",
      "127.0.0.1", "svc", "-bad.etcd.example", "a..etcd.example",
    ];
    const go = JSON.parse(spawnSync(bin, [join(t.certs, "svc.pem"), ...candidates], { encoding: "utf8" }).stdout) as Record<string, boolean>;
    const facts = parseCertPem(readFileSync(join(t.certs, "svc.pem"), "utf8"), "svc.pem");
    const sans = subjectAltNames(facts);
    const ours = Object.fromEntries(candidates.map((h) => [h, verifyHostname({ dns: sans.filter((s) => s.startsWith("DNS:")).map((s) => s.slice(4)), ips: sans.filter((s) => s.startsWith("IP:")).map((s) => parseIp(s.slice(3))!) }, h)]));
    expect(ours).toEqual(go);
    // and the table is not trivial: both answers occur
    expect(new Set(Object.values(go))).toEqual(new Set([true, false]));
  }, 120_000);
});
