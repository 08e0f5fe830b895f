// An intermediate tree run by a real 3-member etcd 3.4 cluster (issue 11): client and peer certificate auth, every
// --trusted-ca-file the root alone (certs/ca.pem), every member and client certificate file the leaf followed by the
// intermediate, CN RBAC from `make rbac-apply`, and the root key moved offline after `make`. Users are allowed and
// refused as their configs say. Then, while the cluster serves traffic (a gRPC client, a new TLS connection per request,
// re-reading its files each time), the root key is brought back and `make rotate-intermediate` replaces the
// intermediate and re-issues every leaf: no request fails, no member restarts, and the members serve the new chain
// (openssl s_client shows the new intermediate after the leaf). Last, on the same cluster, the ROOT is replaced by the
// phased rotation with both root keys offline where the design allows (make ca-rotate-start, the printed rolling
// restart, ca-rotate-reissue: a new intermediate under the new root, no restart; ca-rotate-finish, the second rolling
// restart) under calicoctl traffic through all members: no request fails for a TLS reason, >= 99% are served, and at
// the end calicoctl's certificate under the old root is refused while the new one is served.
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { FIXTURES, haveTool, runMake, tempTree } from "./helpers";
import { tlsOn } from "./in-process";
import { etcdctl, makeAsync, Member, memberArgs, newTraffic, Processes, rollingRestart, sleep, threeMembers, trafficWorker, withLogs } from "./etcd-cluster";
import { getEquals, put, userFiles, waitHealthy } from "./etcd-grpc";

const haveEtcd = haveTool("etcd") && haveTool("etcdctl") && haveTool("openssl");
const USERS = ["calicoctl", "calicoctl-readonly"];

let tree: ReturnType<typeof tempTree>;
let procs = new Processes("/nonexistent");
const members: Member[] = [];
const c = (f: string) => join(tree.certs, f);
const endpoints = () => members.map((m) => m.client).join(",");
const refused = (r: { status: number | null; stderr: string }) => r.status !== 0 && /permission denied/.test(r.stderr);
const certsOf = (text: string): string[] => text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)?.map((b) => b.trim() + "\n") ?? [];

/** A step whose failure carries the processes' last log lines. */
const step = (fn: () => unknown | Promise<unknown>) => withLogs(() => procs, fn);

/** The chain a member serves, as openssl s_client shows it (-showcerts), verified against the root alone. */
function servedChain(m: Member): { certs: string[]; verify: string } {
  const url = new URL(m.client);
  // s_client's exit status reflects the connection's end (etcd closes it at once), not the verification: read its output
  const r = spawnSync("openssl", ["s_client", "-connect", url.host, "-servername", "localhost", "-showcerts", "-CAfile", c("ca.pem"), "-cert", c("root.pem"), "-key", c("root-key.pem")], { input: "", encoding: "utf8", timeout: 20_000 });
  const out = `${r.stdout}${r.stderr}`;
  return { certs: certsOf(out), verify: /Verify return code: (.*)/.exec(out)?.[1] ?? `(none: ${out.slice(-400)})` };
}

interface Traffic {
  requests: number;
  failures: string[];
}

/**
 * put then get (compared) in a loop through one member as USER, until stopped: a new TLS connection per request with
 * the user's files re-read each time (tests/etcd-grpc.ts), a short pause between rounds.
 */
async function worker(m: Member, user: string, prefix: string, t: Traffic, stopped: () => boolean): Promise<void> {
  for (let i = 0; !stopped(); i++) {
    const key = `${prefix}live-${m.name}-${user}-${i % 20}`;
    const files = userFiles(tree.certs, user, c("ca.pem"));
    t.requests++;
    const w = await put([m.client], files, key, `v${i}`);
    if (!w.ok) t.failures.push(`${m.name} ${user} put: ${w.error}`);
    t.requests++;
    const r = await getEquals([m.client], files, key, `v${i}`);
    if (!r.ok) t.failures.push(`${m.name} ${user} get: ${r.error}`);
    await sleep(200);
  }
}

const d = haveEtcd ? describe : describe.skip;

d("an intermediate tree run by a real etcd 3.4 cluster; the intermediate replaced live", () => {
  beforeAll(async () => {
    await step(async () => {
      tree = tempTree({ examples: USERS });
      cpSync(join(FIXTURES, "examples", "intermediate-csr.json"), join(tree.config, "intermediate-csr.json"));
      procs = new Processes(join(tree.dir, "logs"));
      // make's command, in process (the setup; the steps under traffic below run as make)
      const made = await tlsOn(tree, "build");
      expect(made.status).toBe(0);
      expect(made.stdout).toContain(`made ${c("intermediate.pem")} (intermediate CA, signed by ${c("ca.pem")})`);
      // the operator moves the root key offline: everything below runs with the root's certificate alone
      renameSync(c("ca-key.pem"), join(tree.dir, "ca-key.offline"));
      members.push(...(await threeMembers()));
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
      // traffic a moment before, and a second after (every request from make's start on is counted below)
      await sleep(500);
      const atRotate = traffic.requests;
      // the root key comes back for this one step, then goes offline again; make runs beside the clients
      renameSync(join(tree.dir, "ca-key.offline"), c("ca-key.pem"));
      const t0 = Date.now();
      const rot = await makeAsync(tree, ["rotate-intermediate"]);
      const rotMs = Date.now() - t0;
      renameSync(c("ca-key.pem"), join(tree.dir, "ca-key.offline"));
      await sleep(1000);
      stop = true;
      await Promise.all(workers);
      const during = traffic.requests - atRotate;
      console.log(`rotate-intermediate under traffic: ${traffic.requests} gRPC requests (a new TLS connection each) through 3 members in ${((Date.now() - started) / 1000).toFixed(1)} s; make rotate-intermediate took ${rotMs} ms; ${during} requests from its start on; ${traffic.failures.length} failed${traffic.failures.length ? `: ${traffic.failures.slice(0, 5).join("; ")}` : ""}`);

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
      // and with the root key offline again, make has nothing to do (make's command, in process)
      expect((await tlsOn(tree, "build")).stdout).toMatch(/tls-setup: made 0, unchanged 9, orphaned 0/);
    }), 120_000);
  test("the root replaced by the phased rotation under traffic, root keys offline: no TLS failure, >= 99% served, the old root's client refused", () =>
    step(async () => {
      const endpointsFrom = (first: number) => [...members.slice(first), ...members.slice(0, first)].map((m) => m.client).join(",");
      const restart = (printed: string) => rollingRestart(printed, members, procs, (m) => memberArgs(m, members, tree.certs, join(tree.dir, "data")));
      const certCount = (f: string) => certsOf(readFileSync(f, "utf8")).length;
      expect(existsSync(c("ca-key.pem"))).toBe(false); // the old root's key is offline, and stays so
      expect(etcdctl(tree.certs, "calicoctl", endpoints(), ["put", "/calico/ipam/v2/before-root", "kept"]).status).toBe(0);
      // calicoctl's certificate under the old root (leaf + intermediate), kept aside to try at the end
      const oldDir = join(tree.dir, "old-root-client");
      mkdirSync(oldDir);
      for (const f of ["calicoctl.pem", "calicoctl-key.pem"]) cpSync(c(f), join(oldDir, f));
      const oldIm = readFileSync(c("intermediate.pem"), "utf8");

      const t = newTraffic();
      let stop = false;
      const started = Date.now();
      // modest traffic: three calicoctl clients, all endpoints each (a different one first), a short pause per round
      const workers = [0, 1, 2].map((first) => trafficWorker({ certs: tree.certs, user: "calicoctl", endpoints: endpointsFrom(first), key: (i) => `/calico/ipam/v2/root-${first}-${i % 20}` }, t, () => stop));
      await sleep(1000);

      const start = await makeAsync(tree, ["ca-rotate-start"]);
      expect([start.status, start.stderr]).toEqual([0, ""]);
      expect(certCount(c("ca.pem"))).toBe(2);
      const first = await restart(start.stdout);

      // reissue (the new root's key is here for this step): a new intermediate; no restart, members serve the new chain
      const pids = members.map((m) => m.proc!.child.pid);
      const reissue = await makeAsync(tree, ["ca-rotate-reissue"]);
      expect([reissue.status, reissue.stderr]).toEqual([0, ""]);
      expect(reissue.stdout).toMatch(/made the new intermediate CA \S+intermediate\.pem .*signed by the new root/);
      const newIm = readFileSync(c("intermediate.pem"), "utf8");
      expect(newIm).not.toBe(oldIm);
      // a moment of traffic on the re-issued certificates before the finish (they serve it through the second
      // rolling restart too)
      await sleep(500);
      for (const m of members) {
        const s = servedChain(m);
        expect([m.name, s.verify, s.certs[1]]).toEqual([m.name, "0 (ok)", newIm]);
      }
      expect(members.map((m) => m.proc!.child.pid)).toEqual(pids);
      // the new root's key goes offline before the finish, which needs neither root key
      renameSync(c("ca-next-key.pem"), join(tree.dir, "ca-next-key.offline"));
      const finish = await makeAsync(tree, ["ca-rotate-finish"]);
      expect([finish.status, finish.stderr]).toEqual([0, ""]);
      expect(certCount(c("ca.pem"))).toBe(1);
      const second = await restart(finish.stdout);
      await sleep(1000);
      stop = true;
      await Promise.all(workers);
      console.log(
        `root rotation (intermediate mode) under traffic: ${t.requests} requests (gRPC as calicoctl, put+get, a new TLS connection each, 3 endpoints, 300 ms pause per round) in ${((Date.now() - started) / 1000).toFixed(1)} s over ${first.length + second.length} member restarts; ${t.ok} ok, ${t.tls.length} failed for a TLS reason, ${t.files.length} for a client file unreadable, ${t.other.length} failed otherwise${t.other.length ? `: ${t.other.slice(0, 4).join("; ")}` : ""}`,
      );
      expect(t.tls).toEqual([]);
      expect(t.files).toEqual([]);
      expect(t.requests).toBeGreaterThan(30);
      expect(t.ok / t.requests).toBeGreaterThanOrEqual(0.99);

      expect((await tlsOn(tree, "ca-rotate", "status")).stdout).toMatch(/step: none/);
      expect(existsSync(c("ca-key.pem"))).toBe(false);
      for (const m of members) {
        const s = servedChain(m);
        expect([m.name, s.verify, s.certs[1]]).toEqual([m.name, "0 (ok)", newIm]);
      }
      // calicoctl under the old root is refused by every member (a TLS refusal); under the new root it is served
      const olds = await Promise.all(members.map((m) => getEquals([m.client], userFiles(oldDir, "calicoctl", c("ca.pem")), "/calico/ipam/v2/before-root", "kept")));
      expect(olds.map((r, i) => [members[i].name, r.ok, r.tls])).toEqual(members.map((m) => [m.name, false, true]));
      expect(members.map((m) => Processes.tail(m.proc!, 400)).join("\n")).toMatch(/unknown certificate authority|bad certificate|certificate signed by unknown authority/);
      expect(etcdctl(tree.certs, "calicoctl", endpoints(), ["get", "/calico/ipam/v2/before-root", "--print-value-only"]).stdout.trim()).toBe("kept");
      expect(refused(etcdctl(tree.certs, "calicoctl-readonly", members[0].client, ["put", "/calico/ipam/v2/x", "4"]))).toBe(true);
      const health = etcdctl(tree.certs, "root", endpoints(), ["endpoint", "health"]);
      expect((health.stdout + health.stderr).match(/is healthy/g)).toHaveLength(3);
      // no root key in certs/: make has nothing to do (make's command, in process)
      expect((await tlsOn(tree, "build")).stdout).toMatch(/tls-setup: made 0, unchanged 9, orphaned 0/);
    }), 180_000);
});
