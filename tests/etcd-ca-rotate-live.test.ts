// The phased CA rotation on a live cluster (issue 10): a real 3-member etcd 3.4 cluster on 127.0.0.1 with client and
// peer certificate auth and CN-based RBAC from `make rbac-apply` serves a calicoctl client (calicoctl's certificate,
// all three endpoints, a new TLS connection per request: tests/etcd-grpc.ts) writing and reading continuously, while the test carries out what the steps
// print: ca-rotate-start, a rolling restart (each member restarted, then the printed `etcdctl endpoint health` run
// until it passes), ca-rotate-reissue (no restart), ca-rotate-finish, the second rolling restart. No request may fail
// for a TLS or trust reason, at least 99% must succeed; at the end only the new CA is trusted, a client certificate
// of the old CA is refused, every member is healthy and the data written before the rotation is still there.
// Revocation through the rotation: the members read --client-crl-file certs/crl.der (on every handshake); a user
// (calico-node) revoked before ca-rotate-start, its config removed, is refused by every member before the rotation
// and still after ca-rotate-finish, before the second rolling restart, while the members still trust the old CA (the
// finish's CRL, signed by the new CA, keeps the old CA's revocations). The judge of each refusal is the member: its
// log line "rejected connection ... certificate serial S revoked" for that connection (etcd 3.4 checks the CRL after
// the TLS handshake and closes the connection without an alert, so the client sees only "no grpc-status"), and the
// same member serves calicoctl's current certificate.
import { cpSync, mkdirSync, readFileSync, rmSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { haveTool, runMake, sh, tempTree } from "./helpers";
import { etcdOn, tlsOn } from "./in-process";
import { newTraffic, etcdctl, makeAsync as makeIn, Member, memberArgs, Processes, rollingRestart as restartAll, sleep, threeMembers, Traffic, trafficWorker, withLogs } from "./etcd-cluster";
import { getEquals, grpcCall, userFiles, waitHealthy } from "./etcd-grpc";

let tree: ReturnType<typeof tempTree>;
let procs = new Processes("/nonexistent");
const members: Member[] = [];
const c = (f: string) => join(tree.certs, f);
const endpoints = (first = 0) => [...members.slice(first), ...members.slice(0, first)].map((m) => m.client).join(",");
const certCount = (file: string) => (readFileSync(file, "utf8").match(/BEGIN CERTIFICATE/g) ?? []).length;
const makeAsync = (args: string[]) => makeIn(tree, args);
/** calicoctl: put then get in a loop through all three endpoints (this worker's first one first). */
const worker = (first: number, t: Traffic, stopped: () => boolean) => trafficWorker({ certs: tree.certs, user: "calicoctl", endpoints: endpoints(first), key: (i) => `/calico/ipam/v2/rot-${first}-${i % 20}` }, t, stopped);
/** A member's arguments: the tree's certificates, and the CRL as etcd 3.6 reads it too (DER), read on every handshake. */
const argsOf = (m: Member) => memberArgs(m, members, tree.certs, join(tree.dir, "data"), ["--client-crl-file", c("crl.der")]);
const rollingRestart = (printed: string) => restartAll(printed, members, procs, argsOf);

/** How many connections member M has refused for the certificate serial SERIAL (lower-case hex, as etcd logs it). */
const revokedRefusals = (m: Member, serial: string) => (readFileSync(m.proc!.logFile, "utf8").match(new RegExp(`rejected connection .*certificate serial ${serial} revoked`, "g")) ?? []).length;
/** KV.Range of KEY (protobuf field 1, bytes; KEY shorter than 128 bytes). */
const rangeOf = (key: string) => Buffer.concat([Buffer.from([0x0a, key.length]), Buffer.from(key)]);

/**
 * One request to member M with the certificate in DIR/USER.pem, on a new connection: [name, ok, error, whether M
 * logged a refusal of SERIAL for it]. Not retried (a refused connection looks like a dropped one to a gRPC client).
 */
async function tryRevoked(m: Member, dir: string, user: string, serial: string): Promise<[string, boolean, string, boolean]> {
  const before = revokedRefusals(m, serial);
  const r = await grpcCall(m.client, userFiles(dir, user, c("ca.pem")), "Range", rangeOf("/calico/ipam/v2/before"));
  for (let i = 0; i < 20 && revokedRefusals(m, serial) === before; i++) await sleep(100);
  return [m.name, r.ok, r.error, revokedRefusals(m, serial) > before];
}

/** A step whose failure carries the processes' last log lines. */
const step = (fn: () => unknown | Promise<unknown>) => withLogs(() => procs, fn);

const d = haveTool("etcd") && haveTool("etcdctl") && haveTool("openssl") ? describe : describe.skip;

d("make ca-rotate-* on a live etcd 3.4 cluster with RBAC, under calicoctl traffic", () => {
  beforeAll(async () => {
    await step(async () => {
      tree = tempTree({ examples: ["calicoctl", "calico-node"] });
      procs = new Processes(join(tree.dir, "logs"));
      // make and make crl: their commands in process (the setup; the rotation steps under traffic run as make)
      expect((await tlsOn(tree, "build")).status).toBe(0);
      expect((await etcdOn(tree, "crl")).status).toBe(0);
      members.push(...(await threeMembers()));
      for (const m of members) m.proc = procs.start(m.name, "etcd", argsOf(m));
      await waitHealthy(tree.certs, members.map((m) => m.client));
      const rbac = runMake(["rbac-apply", `ENDPOINTS=${endpoints()}`], tree);
      expect([rbac.status, rbac.stderr]).toEqual([0, expect.any(String)]);
    });
  }, 120_000);

  afterAll(async () => {
    await procs.stopAll();
    if (tree) rmSync(tree.dir, { recursive: true, force: true });
  }, 60_000);

  test("start, rolling restart, reissue, finish, rolling restart: no TLS failure, >= 99% served", () =>
    step(async () => {
      // auth is on: calicoctl may write its prefix only
      expect(etcdctl(tree.certs, "calicoctl", endpoints(), ["put", "/calico/ipam/v2/before", "kept"]).status).toBe(0);
      const denied = etcdctl(tree.certs, "calicoctl", endpoints(), ["put", "/registry/x", "1"]);
      expect([denied.status === 0, /permission denied/.test(denied.stderr)]).toEqual([false, true]);
      // calicoctl's certificate from the old CA, kept aside to try at the end
      const oldDir = join(tree.dir, "old-client");
      mkdirSync(oldDir);
      for (const f of ["calicoctl.pem", "calicoctl-key.pem"]) cpSync(c(f), join(oldDir, f));
      // calico-node revoked before the rotation (its files kept aside), its config removed as the README says
      const revokedDir = join(tree.dir, "revoked");
      mkdirSync(revokedDir);
      for (const f of ["calico-node.pem", "calico-node-key.pem"]) cpSync(c(f), join(revokedDir, f));
      const revokedSerial = sh("openssl", ["x509", "-noout", "-serial", "-in", c("calico-node.pem")]).trim().replace("serial=", "").toLowerCase().replace(/^(00)+/, "");
      // make revoke NAME=calico-node and make prune: their commands, in process (before the traffic starts)
      expect((await etcdOn(tree, "revoke", "calico-node")).status).toBe(0);
      unlinkSync(join(tree.config, "req-calico-node.json"));
      expect((await tlsOn(tree, "prune")).status).toBe(0);
      for (const m of members) expect(await tryRevoked(m, revokedDir, "calico-node", revokedSerial)).toEqual([m.name, false, "no grpc-status in the reply", true]);

      const t: Traffic = newTraffic();
      let stop = false;
      const started = Date.now();
      const workers = [0, 1, 2].map((first) => worker(first, t, () => stop));
      await sleep(1000);

      const start = await makeAsync(["ca-rotate-start"]);
      expect([start.status, start.stderr]).toEqual([0, ""]);
      expect(certCount(c("ca.pem"))).toBe(2);
      const first = await rollingRestart(start.stdout);

      const reissue = await makeAsync(["ca-rotate-reissue"]);
      expect([reissue.status, reissue.stderr]).toEqual([0, ""]);
      expect(reissue.stdout).toMatch(/Must restart: .*calicoctl/);
      // a moment of traffic on the re-issued certificates before the finish (they serve it through the second
      // rolling restart too)
      await sleep(500);

      const finish = await makeAsync(["ca-rotate-finish"]);
      expect([finish.status, finish.stderr]).toEqual([0, ""]);
      expect(certCount(c("ca.pem"))).toBe(1);
      // before the second rolling restart every member still trusts the old CA: the new CA's CRL must still list
      // calico-node's old serial, and each member refuses it while serving calicoctl's current certificate
      for (const m of members) {
        expect(await tryRevoked(m, revokedDir, "calico-node", revokedSerial)).toEqual([m.name, false, "no grpc-status in the reply", true]);
        const served = await getEquals([m.client], userFiles(tree.certs, "calicoctl", c("ca.pem")), "/calico/ipam/v2/before", "kept");
        expect([m.name, served.ok, served.error]).toEqual([m.name, true, ""]);
      }
      const second = await rollingRestart(finish.stdout);
      await sleep(1000);
      stop = true;
      await Promise.all(workers);
      const seconds = (Date.now() - started) / 1000;
      console.log(
        `CA rotation under traffic: ${t.requests} requests (gRPC as calicoctl, put+get, a new TLS connection each, 3 endpoints) in ${seconds.toFixed(1)} s over 6 member restarts; ${t.ok} ok, ${t.tls.length} failed for a TLS reason, ${t.files.length} for a client file unreadable, ${t.other.length} failed otherwise (restarts)${t.other.length ? `: ${t.other.slice(0, 4).join("; ")}` : ""}\nhealth gates run: ${[...first, ...second].length}`,
      );
      expect(t.tls).toEqual([]);
      expect(t.files).toEqual([]);
      expect(t.requests).toBeGreaterThan(30);
      expect(t.ok / t.requests).toBeGreaterThanOrEqual(0.99);

      const status = await tlsOn(tree, "ca-rotate", "status");
      expect(status.stdout).toMatch(/step: none/);
      // the old CA's client certificate is refused by every member; the new one is served; data kept
      for (const m of members) {
        const old = await getEquals([m.client], userFiles(oldDir, "calicoctl", c("ca.pem")), "/calico/ipam/v2/before", "kept");
        expect([m.name, old.ok, old.tls]).toEqual([m.name, false, true]);
      }
      expect(Processes.tail(members[0].proc!, 400) + Processes.tail(members[1].proc!, 400) + Processes.tail(members[2].proc!, 400)).toMatch(/unknown certificate authority|bad certificate|certificate signed by unknown authority/);
      const kept = etcdctl(tree.certs, "calicoctl", endpoints(), ["get", "/calico/ipam/v2/before", "--print-value-only"]);
      expect(kept.stdout.trim()).toBe("kept");
      const health = etcdctl(tree.certs, "root", endpoints(), ["endpoint", "health"]);
      expect((health.stdout + health.stderr).match(/is healthy/g)).toHaveLength(3);
      // a plain make afterwards makes nothing (make's command, in process)
      expect((await tlsOn(tree, "build")).stdout).toMatch(/made 0,/);
    }), 150_000);
});
