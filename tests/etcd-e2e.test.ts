// End to end against a real etcd 3.4: a 3-member cluster with client and peer certificate authentication built
// from `make`'s certificates, RBAC from the example user configs (make rbac-apply), the gRPC proxy with the proxy
// certificate, and revocation through --client-crl-file. One cluster serves every test of this file (in order).
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describeWith, mode, runMake, sh, tempTree } from "./helpers";
import { etcdOn, tlsOn } from "./in-process";
import { etcdctl, freePorts, Member, memberArgs, Proc, Processes, waitFor, withLogs } from "./etcd-cluster";
import { CallResult, callAny, ClientFiles, getEquals, pbBytes, put, rangeOf, stringsOf, userFiles, waitHealthy, withoutHeader } from "./etcd-grpc";
import { prefixRangeEnd } from "../scripts/lib/etcd/rbac-script";

const EXAMPLES = ["calico-node", "calico-cni", "calico-kube-controllers", "calicoctl", "calicoctl-readonly", "kube-apiserver"];
const ODD_PREFIXES = [`/it's "odd" $(x) \`y\` \\ *;/`, "-dash/"];

let tree: ReturnType<typeof tempTree>;
let certs = "";
let procs = new Processes("/nonexistent");
const members: Member[] = [];
let proxy: Proc | undefined;
let proxyUrl = "";
const allEndpoints = () => members.map((m) => m.client).join(",");

/** Appends the processes' last log lines to a failure. */
/** A step whose failure carries the processes' last log lines. */
const step = (fn: () => unknown | Promise<unknown>) => withLogs(() => procs, fn);

const refused = (r: { status: number | null; stderr: string }) => r.status !== 0 && /permission denied|user name not found/.test(r.stderr);
/**
 * The users' own requests go through the in-process gRPC client (tests/etcd-grpc.ts: KV.Put and KV.Range as etcdctl
 * sends them, on a new TLS connection with the user's files): the judge of what a user may do is etcd's RBAC, and an
 * etcdctl per request cost ~50 ms of CPU (about 140 of them in this file). etcdctl itself stays where the operator's
 * tool is what is shown (health, member list, the proxy, rbac-apply's script, grants by hand, compaction, revocation).
 */
const as = (user: string): ClientFiles => userFiles(certs, user, join(certs, "ca.pem"));
/** A gRPC request refused by etcd's auth: the status etcdctl prints as "permission denied" or "user name not found". */
const refusedRpc = (r: CallResult) => !r.ok && /permission denied|user name not found/.test(r.error);
const shown = (r: CallResult) => ({ ok: r.ok, error: r.error });

interface UserAccess {
  user: string;
  readwrite: string[];
  read: string[];
}

function accessOf(user: string): UserAccess {
  const j = JSON.parse(readFileSync(join(tree.config, `req-${user}.json`), "utf8"));
  return { user, readwrite: j.etcd.readwrite ?? [], read: j.etcd.read ?? [] };
}

/**
 * What etcd holds of users, roles and grants, as root asks it (Auth.UserList, UserGet, RoleList, RoleGet: what
 * `etcdctl user get` / `role get -w json` print), each reply without its response header: for "nothing changed".
 */
async function rbacState(): Promise<string> {
  const root = async (method: string, message: Buffer) => {
    const r = await callAny([members[0].client], as("root"), method, message);
    expect([method, r.ok, r.error]).toEqual([method, true, ""]);
    return r.body!;
  };
  const users = stringsOf(await root("Auth/UserList", Buffer.alloc(0)), 2);
  const roles = stringsOf(await root("Auth/RoleList", Buffer.alloc(0)), 2);
  expect(users).toContain("root");
  const state: { users: string[][]; roles: string[][] } = { users: [], roles: [] };
  for (const u of users) state.users.push([u, withoutHeader(await root("Auth/UserGet", pbBytes(1, u)))]);
  for (const r of roles) state.roles.push([r, withoutHeader(await root("Auth/RoleGet", pbBytes(1, r)))]);
  return JSON.stringify(state);
}

const d = describeWith("etcd", "etcdctl");

d("a real etcd 3.4 cluster with the tree's certificates", () => {
  beforeAll(async () => {
    await step(async () => {
      tree = tempTree({ examples: EXAMPLES });
      certs = tree.certs;
      procs = new Processes(join(tree.dir, "logs"));
      writeFileSync(join(tree.config, "req-nobody.json"), JSON.stringify({ CN: "nobody", etcd: {} }));
      writeFileSync(join(tree.config, "req-stranger.json"), JSON.stringify({ CN: "stranger" }));
      writeFileSync(join(tree.config, "req-odd.json"), JSON.stringify({ CN: "odd", etcd: { readwrite: ODD_PREFIXES } }));
      // what `make` and `make crl` run, in process (make's own wiring is tested in core-make and etcd-revoke)
      const made = await tlsOn(tree, "build");
      expect(made.stderr).not.toMatch(/error/i);
      expect(made.status).toBe(0);
      // an empty CRL first: etcd3 reads it from the start and re-reads it on every handshake
      const crl = await etcdOn(tree, "crl");
      expect(crl.status).toBe(0);
      const ports = await freePorts(7);
      for (let i = 0; i < 3; i++) members.push({ name: `etcd${i + 1}`, client: `https://127.0.0.1:${ports[2 * i]}`, peer: `https://127.0.0.1:${ports[2 * i + 1]}` });
      proxyUrl = `127.0.0.1:${ports[6]}`;
      for (const m of members) {
        const extra = m.name === "etcd3" ? ["--client-crl-file", join(certs, "crl.pem")] : [];
        m.proc = procs.start(m.name, "etcd", memberArgs(m, members, certs, join(tree.dir, "data"), extra));
      }
      await waitHealthy(certs, members.map((m) => m.client));
    });
  }, 120_000);

  afterAll(async () => {
    await procs.stopAll();
    if (tree) rmSync(tree.dir, { recursive: true, force: true });
  }, 60_000);

  test("three members are healthy and started", () =>
    step(() => {
      const health = etcdctl(certs, "root", allEndpoints(), ["endpoint", "health"]);
      expect(health.status).toBe(0);
      // etcdctl 3.4 prints the health lines on stderr
      expect((health.stdout + health.stderr).match(/is healthy/g)).toHaveLength(3);
      const list = JSON.parse(etcdctl(certs, "root", members[1].client, ["member", "list", "-w", "json"]).stdout) as { members: { name: string; clientURLs?: string[] }[] };
      expect(list.members.map((m) => m.name).sort()).toEqual(["etcd1", "etcd2", "etcd3"]);
      for (const m of list.members) expect(m.clientURLs?.length).toBe(1);
    }));

  test("the gRPC proxy serves a client through the proxy certificate (empty CN)", () =>
    step(async () => {
      const c = (f: string) => join(certs, f);
      proxy = procs.start("grpc-proxy", "etcd", [
        "grpc-proxy", "start", "--endpoints", members.map((m) => m.client.replace("https://", "")).join(","),
        "--cert", c("proxy1.pem"), "--key", c("proxy1-key.pem"), "--cacert", c("ca.pem"),
        "--cert-file", c("proxy1.pem"), "--key-file", c("proxy1-key.pem"), "--trusted-ca-file", c("ca.pem"),
        "--listen-addr", proxyUrl, "--advertise-client-url", proxyUrl, "--data-dir", join(tree.dir, "data", "proxy"),
      ]);
      const via = `https://${proxyUrl}`;
      await waitFor("the proxy to serve", () => etcdctl(certs, "calico-node", via, ["put", "/proxy/check", "through-the-proxy"]), (r) => r.status === 0);
      // the value went through the proxy into the cluster
      const direct = etcdctl(certs, "root", members[2].client, ["get", "--print-value-only", "/proxy/check"]);
      expect(direct.stdout.trim()).toBe("through-the-proxy");
      expect(Processes.tail(proxy, 1000)).toMatch(/cert = \S*proxy1\.pem/);
    }));

  test("make rbac-apply provisions users and roles, then enables auth", () =>
    step(() => {
      const r = runMake(["rbac-apply", `ENDPOINTS=${allEndpoints()}`], tree);
      expect(r.stderr).not.toMatch(/warning: role|Error/);
      expect(r.status).toBe(0);
      expect(mode(join(certs, "etcd-rbac.sh"))).toBe(0o755);
      for (const u of [...EXAMPLES, "root", "nobody", "odd"]) expect(r.stdout).toContain(`added user ${u} `);
      expect(r.stdout).not.toContain("added user stranger");
      expect(r.stdout).toMatch(/etcd-rbac: \d+ change\(s\); auth is enabled/);
      const users = etcdctl(certs, "root", members[0].client, ["user", "list"]).stdout.split("\n").filter(Boolean);
      expect(users.sort()).toEqual(["calico-cni", "calico-kube-controllers", "calico-node", "calicoctl", "calicoctl-readonly", "kube-apiserver", "nobody", "odd", "root"]);
      // auth is on: the user with no roles may not read what anyone could read before
      expect(refused(etcdctl(certs, "nobody", members[0].client, ["get", "/proxy/check"]))).toBe(true);
    }));

  const written: string[] = [];
  test.each([...EXAMPLES, "odd"])("%s can do what its prefixes allow and is refused elsewhere", (user) =>
    step(async () => {
      const a = user === "odd" ? { user, readwrite: ODD_PREFIXES, read: [] } : accessOf(user);
      const ep = [members[(EXAMPLES.indexOf(user) + 1) % 3].client];
      const files = as(user);
      for (const p of a.readwrite) {
        const key = `${p}e2e/${user}`;
        expect({ key, ...shown(await put(ep, files, key, `v-${user}`)) }).toEqual({ key, ok: true, error: "" });
        expect({ key, ...shown(await getEquals(ep, files, key, `v-${user}`)) }).toEqual({ key, ok: true, error: "" });
        written.push(key);
      }
      for (const p of a.read) {
        const key = `${p}e2e-read/${user}`;
        expect({ key, ...shown(await rangeOf(ep, files, key)) }).toEqual({ key, ok: true, error: "" });
        const w = await put(ep, files, key, "x");
        // a write is allowed only where a readwrite prefix covers the key
        if (a.readwrite.some((rw) => key.startsWith(rw))) expect({ key, ...shown(w) }).toEqual({ key, ok: true, error: "" });
        else expect({ key, refused: refusedRpc(w), ...shown(w) }).toMatchObject({ refused: true });
      }
      const elsewhere: [string, () => Promise<CallResult>][] = [
        ["get /elsewhere/x", () => rangeOf(ep, files, "/elsewhere/x")],
        ["put /elsewhere/x 1", () => put(ep, files, "/elsewhere/x", "1")],
        ["get /registry-like", () => rangeOf(ep, files, "/registry-like")],
      ];
      for (const [what, call] of elsewhere) {
        const r = await call();
        expect({ what, refused: refusedRpc(r), ...shown(r) }).toMatchObject({ what, refused: true });
      }
    }));

  test("kube-apiserver compacts with its /registry/ grant alone (etcd 3.4 needs no root role for that)", () =>
    step(() => {
      const ep = members[0].client;
      const put = etcdctl(certs, "kube-apiserver", ep, ["put", "-w", "json", "/registry/compact-check", "1"]);
      const rev = (JSON.parse(put.stdout) as { header: { revision: number } }).header.revision;
      const r = etcdctl(certs, "kube-apiserver", ep, ["compact", String(rev)]);
      expect(r).toMatchObject({ status: 0, stdout: `compacted revision ${rev}\n` });
    }));

  test("a user without permissions, or not in etcd at all, is refused", () =>
    step(async () => {
      for (const user of ["nobody", "stranger"]) {
        const get = await rangeOf([members[1].client], as(user), "/calico/ipam/v2/x");
        expect({ user, refused: refusedRpc(get), ...shown(get) }).toMatchObject({ user, refused: true });
        const w = await put([members[1].client], as(user), "/calico/ipam/v2/x", "1");
        expect({ user, refused: refusedRpc(w), ...shown(w) }).toMatchObject({ user, refused: true });
      }
    }));

  test("root reads back everything the users wrote", () =>
    step(async () => {
      expect(written.length).toBeGreaterThan(15);
      for (const prefix of ["/calico/", "/registry/", ...ODD_PREFIXES]) {
        // etcdctl get --prefix --keys-only -- PREFIX, as root
        const r = await rangeOf([members[2].client], as("root"), prefix, { rangeEnd: prefixRangeEnd(Buffer.from(prefix)), keysOnly: true });
        expect({ prefix, ...shown(r) }).toEqual({ prefix, ok: true, error: "" });
        const keys = r.kvs.map((kv) => kv.key);
        for (const k of written.filter((w) => w.startsWith(prefix))) expect(keys).toContain(k);
      }
    }));

  test("the rbac script re-runs cleanly and changes nothing; it warns about grants no config asks for", () =>
    step(async () => {
      const before = await rbacState();
      const again = runMake(["rbac-apply", `ENDPOINTS=${members[1].client}`], tree);
      expect(again.status).toBe(0);
      expect(again.stdout).toContain("etcd-rbac: nothing to change; auth is enabled");
      expect(again.stdout).not.toMatch(/etcd-rbac: (added|granted)/);
      expect(await rbacState()).toBe(before);
      // a grant added by hand is reported, not removed
      expect(etcdctl(certs, "root", members[0].client, ["role", "grant-permission", "--prefix=true", "calicoctl-readonly", "read", "/extra/"]).status).toBe(0);
      const warned = runMake(["rbac-apply", `ENDPOINTS=${members[0].client}`], tree);
      expect(warned.status).toBe(0);
      expect(warned.stderr).toContain("warning: role calicoctl-readonly has grants no config asks for");
      expect(etcdctl(certs, "root", members[0].client, ["role", "revoke-permission", "calicoctl-readonly", "/extra/", "/extra0"]).status).toBe(0);
      expect(await rbacState()).toBe(before);
    }));

  test("CN authentication does not pass through the gRPC proxy once auth is on", () =>
    step(() => {
      const r = etcdctl(certs, "root", `https://${proxyUrl}`, ["get", "/proxy/check"]);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/permission denied/);
    }));

  test("after make revoke, the member with --client-crl-file refuses the revoked user and serves the others", () =>
    step(async () => {
      // make revoke NAME=calicoctl's command, in process (make revoke's wiring is tested spawned in etcd-revoke)
      const r = await etcdOn(tree, "revoke", "calicoctl");
      expect(r.status).toBe(0);
      const etcd3 = members[2].client;
      const denied = etcdctl(certs, "calicoctl", etcd3, ["get", "/calico/ipam/v2/x"], 30_000);
      expect(denied.status).not.toBe(0);
      expect(denied.stderr).toMatch(/bad certificate|certificate revoked|deadline exceeded|connection/i);
      expect(etcdctl(certs, "calico-node", etcd3, ["get", "/calico/ipam/v2/x"]).status).toBe(0);
      expect(etcdctl(certs, "root", etcd3, ["get", "/calico/ipam/v2/x"]).status).toBe(0);
      // the members without the CRL still serve it: the refusal is the CRL's doing
      expect(etcdctl(certs, "calicoctl", members[0].client, ["get", "/calico/ipam/v2/x"]).status).toBe(0);
      const serial = sh("openssl", ["x509", "-in", join(certs, "calicoctl.pem"), "-noout", "-serial"]).trim().replace(/^serial=/, "").toLowerCase();
      expect(Processes.tail(members[2].proc!, 1000)).toContain(`certificate serial ${serial} revoked`);
    }));
});
