// An intermediate tree run by a real 3-member etcd 3.4 cluster (issue 11): client and peer certificate auth, every
// --trusted-ca-file the root alone (certs/ca.pem), every member and client certificate file the leaf followed by the
// intermediate, CN RBAC from `make rbac-apply`, and the root key moved offline after `make`. Users are allowed and
// refused as their configs say. Then, while the cluster serves traffic (etcdctl, a new TLS connection per request,
// re-reading its files each time), the root key is brought back and `make rotate-intermediate` replaces the
// intermediate and re-issues every leaf: no request fails, no member restarts, and the members serve the new chain
// (openssl s_client shows the new intermediate after the leaf).
import { execFile, spawnSync } from "node:child_process";
import { cpSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { FIXTURES, haveTool, runMake, tempTree } from "./helpers";
import { etcdctl, freePorts, Member, memberArgs, Processes, sleep } from "./etcd-cluster";
import { waitHealthy } from "./etcd-grpc";

const haveEtcd = haveTool("etcd") && haveTool("etcdctl") && haveTool("openssl");
const USERS = ["calicoctl", "calicoctl-readonly"];

let tree: ReturnType<typeof tempTree>;
let procs = new Processes("/nonexistent");
const members: Member[] = [];
const c = (f: string) => join(tree.certs, f);
const endpoints = () => members.map((m) => m.client).join(",");
const refused = (r: { status: number | null; stderr: string }) => r.status !== 0 && /permission denied/.test(r.stderr);
const certsOf = (text: string): string[] => text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)?.map((b) => b.trim() + "\n") ?? [];

async function step(fn: () => unknown | Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof Error) e.message += `\n\nprocess logs:\n${procs.logs()}`;
    throw e;
  }
}

/** The chain a member serves, as openssl s_client shows it (-showcerts), verified against the root alone. */
function servedChain(m: Member): { certs: string[]; verify: string } {
  const url = new URL(m.client);
  // s_client's exit status reflects the connection's end (etcd closes it at once), not the verification: read its output
  const r = spawnSync("openssl", ["s_client", "-connect", url.host, "-servername", "localhost", "-showcerts", "-CAfile", c("ca.pem"), "-cert", c("root.pem"), "-key", c("root-key.pem")], { input: "", encoding: "utf8", timeout: 20_000 });
  const out = `${r.stdout}${r.stderr}`;
  return { certs: certsOf(out), verify: /Verify return code: (.*)/.exec(out)?.[1] ?? `(none: ${out.slice(-400)})` };
}

/** etcdctl as USER, asynchronously (so several clients run at once), bounded. */
function etcdctlAsync(user: string, endpoint: string, args: string[]): Promise<{ ok: boolean; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("ETCDCTL")) env[k] = v;
  Object.assign(env, { ETCDCTL_API: "3", ETCDCTL_ENDPOINTS: endpoint, ETCDCTL_CACERT: c("ca.pem"), ETCDCTL_CERT: c(`${user}.pem`), ETCDCTL_KEY: c(`${user}-key.pem`), ETCDCTL_DIAL_TIMEOUT: "5s", ETCDCTL_COMMAND_TIMEOUT: "8s" });
  return new Promise((resolve) => execFile("etcdctl", args, { env, timeout: 20_000 }, (err, _out, stderr) => resolve({ ok: !err, stderr: String(stderr) })));
}

interface Traffic {
  requests: number;
  failures: string[];
}

/** put then get in a loop through one member as USER, until stopped. */
async function worker(m: Member, user: string, prefix: string, t: Traffic, stopped: () => boolean): Promise<void> {
  for (let i = 0; !stopped(); i++) {
    const key = `${prefix}live-${m.name}-${user}-${i % 20}`;
    t.requests++;
    const put = await etcdctlAsync(user, m.client, ["put", key, `v${i}`]);
    if (!put.ok) t.failures.push(`${m.name} ${user} put: ${put.stderr.trim()}`);
    t.requests++;
    const get = await etcdctlAsync(user, m.client, ["get", key, "--print-value-only"]);
    if (!get.ok) t.failures.push(`${m.name} ${user} get: ${get.stderr.trim()}`);
  }
}

const d = haveEtcd ? describe : describe.skip;

d("an intermediate tree run by a real etcd 3.4 cluster; the intermediate replaced live", () => {
  beforeAll(async () => {
    await step(async () => {
      tree = tempTree({ examples: USERS });
      cpSync(join(FIXTURES, "examples", "intermediate-csr.json"), join(tree.config, "intermediate-csr.json"));
      procs = new Processes(join(tree.dir, "logs"));
      const made = runMake([], tree);
      expect(made.status).toBe(0);
      expect(made.stdout).toContain(`made ${c("intermediate.pem")} (intermediate CA, signed by ${c("ca.pem")})`);
      // the operator moves the root key offline: everything below runs with the root's certificate alone
      renameSync(c("ca-key.pem"), join(tree.dir, "ca-key.offline"));
      const ports = await freePorts(6);
      for (let i = 0; i < 3; i++) members.push({ name: `etcd${i + 1}`, client: `https://127.0.0.1:${ports[2 * i]}`, peer: `https://127.0.0.1:${ports[2 * i + 1]}` });
      for (const m of members) m.proc = procs.start(m.name, "etcd", memberArgs(m, members, tree.certs, join(tree.dir, "data")));
      await waitHealthy(tree.certs, members.map((m) => m.client));
      const rbac = runMake(["rbac-apply", `ENDPOINTS=${endpoints()}`], tree);
      expect(rbac.status).toBe(0);
    });
  }, 120_000);

  afterAll(async () => {
    await procs.stopAll();
    if (tree) rmSync(tree.dir, { recursive: true, force: true });
  }, 60_000);

  test("the files: the trust file is the root alone; member and user files carry the intermediate; members serve leaf + intermediate", () =>
    step(() => {
      const im = readFileSync(c("intermediate.pem"), "utf8");
      expect(certsOf(readFileSync(c("ca.pem"), "utf8"))).toHaveLength(1);
      for (const n of ["etcd1", "etcd2", "etcd3", "root", ...USERS]) expect([n, certsOf(readFileSync(c(`${n}.pem`), "utf8"))[1]]).toEqual([n, im]);
      for (const m of members) {
        const s = servedChain(m);
        expect([m.name, s.verify, s.certs.length, s.certs[1]]).toEqual([m.name, "0 (ok)", 2, im]);
      }
    }));

  test("users are allowed and refused as their configs say (CN = etcd user, certificate with a chain)", () =>
    step(() => {
      const ep = members[1].client;
      const ipam = "/calico/ipam/v2/x";
      expect(etcdctl(tree.certs, "calicoctl", ep, ["put", ipam, "1"]).status).toBe(0);
      expect(etcdctl(tree.certs, "calicoctl-readonly", ep, ["get", ipam, "--print-value-only"]).stdout.trim()).toBe("1");
      expect(refused(etcdctl(tree.certs, "calicoctl-readonly", ep, ["put", ipam, "2"]))).toBe(true);
      expect(refused(etcdctl(tree.certs, "calicoctl", ep, ["put", "/registry/x", "1"]))).toBe(true);
      expect(refused(etcdctl(tree.certs, "calicoctl-readonly", ep, ["get", "/registry/x"]))).toBe(true);
      expect(etcdctl(tree.certs, "root", ep, ["get", ipam, "--print-value-only"]).stdout.trim()).toBe("1");
    }));

  test("make rotate-intermediate under traffic: no failed request, no restart, the members serve the new chain", () =>
    step(async () => {
      const pids = members.map((m) => m.proc!.child.pid);
      const oldIm = readFileSync(c("intermediate.pem"), "utf8");
      const oldRoot = readFileSync(c("ca.pem"), "utf8");
      const oldKeys = Object.fromEntries(["etcd1", "root", "calicoctl"].map((n) => [n, readFileSync(c(`${n}-key.pem`), "utf8")]));
      const traffic: Traffic = { requests: 0, failures: [] };
      let stop = false;
      const started = Date.now();
      const workers = members.flatMap((m) => [worker(m, "root", "/live/", traffic, () => stop), worker(m, "calicoctl", "/calico/ipam/v2/", traffic, () => stop)]);
      await sleep(3000);
      const atRotate = traffic.requests;
      // the root key comes back for this one step, then goes offline again
      renameSync(join(tree.dir, "ca-key.offline"), c("ca-key.pem"));
      const t0 = Date.now();
      const rot = runMake(["rotate-intermediate"], tree);
      const rotMs = Date.now() - t0;
      renameSync(c("ca-key.pem"), join(tree.dir, "ca-key.offline"));
      await sleep(4000);
      stop = true;
      await Promise.all(workers);
      const during = traffic.requests - atRotate;
      console.log(`rotate-intermediate under traffic: ${traffic.requests} etcdctl requests (a new TLS connection each) through 3 members in ${((Date.now() - started) / 1000).toFixed(1)} s; make rotate-intermediate took ${rotMs} ms; ${during} requests from its start on; ${traffic.failures.length} failed${traffic.failures.length ? `: ${traffic.failures.slice(0, 5).join("; ")}` : ""}`);

      expect(rot.status).toBe(0);
      expect(rot.stdout).toContain(`made ${c("intermediate.pem")} (intermediate CA, signed by ${c("ca.pem")}): a new intermediate CA was asked for (make rotate-intermediate)`);
      expect(traffic.failures).toEqual([]);
      expect(during).toBeGreaterThan(0);
      expect(traffic.requests).toBeGreaterThan(20);

      const newIm = readFileSync(c("intermediate.pem"), "utf8");
      expect(newIm).not.toBe(oldIm);
      expect(readFileSync(c("ca.pem"), "utf8")).toBe(oldRoot);
      for (const [n, k] of Object.entries(oldKeys)) expect([n, readFileSync(c(`${n}-key.pem`), "utf8")]).toEqual([n, k]);
      for (const m of members) {
        const s = servedChain(m);
        expect([m.name, s.verify, s.certs[1]]).toEqual([m.name, "0 (ok)", newIm]);
        expect(s.certs[0]).toBe(certsOf(readFileSync(c(`${m.name}.pem`), "utf8"))[0]);
      }
      // the same member processes, still running; the users' grants unchanged
      expect(members.map((m) => m.proc!.child.pid)).toEqual(pids);
      for (const m of members) expect(m.proc!.child.exitCode).toBeNull();
      const health = etcdctl(tree.certs, "root", endpoints(), ["endpoint", "health"]);
      expect((health.stdout + health.stderr).match(/is healthy/g)).toHaveLength(3);
      expect(refused(etcdctl(tree.certs, "calicoctl-readonly", members[0].client, ["put", "/calico/ipam/v2/x", "3"]))).toBe(true);
      expect(etcdctl(tree.certs, "calicoctl-readonly", members[2].client, ["get", "/calico/ipam/v2/x", "--print-value-only"]).stdout.trim()).toBe("1");
      // and with the root key offline again, make has nothing to do
      expect(runMake([], tree).stdout).toMatch(/tls-setup: made 0, unchanged 9, orphaned 0/);
    }), 120_000);
});
