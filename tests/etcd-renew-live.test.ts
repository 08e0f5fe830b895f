// Renewal under live traffic (issue 12): a real 3-member etcd 3.4 cluster with client and peer certificate auth,
// reading the CRL as certs/crl.der, serves a steady stream of put/get requests through all three members while
// `make renew` re-issues every leaf (members, proxy, users). No request may fail, and each member must serve its
// new certificate (the served serial changes to the renewed file's) without a restart.
import { spawn } from "node:child_process";
import { request } from "node:https";
import { connect } from "node:tls";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { describeWith, sh, tempTree } from "./helpers";
import { etcdOn, tlsOn } from "./in-process";
import { etcdctl, Member, memberArgs, Processes, sleep, threeMembers } from "./etcd-cluster";
import { waitHealthy } from "./etcd-grpc";

const LEAVES = ["etcd1", "etcd2", "etcd3", "proxy1", "root", "calicoctl"];

let tree: ReturnType<typeof tempTree>;
let procs = new Processes("/nonexistent");
const members: Member[] = [];
const c = (f: string) => join(tree.certs, f);
const norm = (hex: string) => hex.toLowerCase().replace(/^(00)+/, "");
const fileSerial = (name: string) => norm(sh("openssl", ["x509", "-in", c(`${name}.pem`), "-noout", "-serial"]).trim().replace(/^serial=/, ""));

/** The serial of the certificate a member serves to a client (a fresh TLS handshake with root's certificate). */
function servedSerial(m: Member): Promise<string> {
  const url = new URL(m.client);
  return new Promise((resolve, reject) => {
    const s = connect({ host: url.hostname, port: Number(url.port), ca: readFileSync(c("ca.pem")), cert: readFileSync(c("root.pem")), key: readFileSync(c("root-key.pem")), servername: "localhost" }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      s.end();
      resolve(norm(serial));
    });
    s.setTimeout(5000, () => s.destroy(new Error("timeout")));
    s.once("error", reject);
  });
}

/**
 * One request to etcd's JSON gateway (/v3/kv/...), on a new TLS connection each time (so every request is a
 * handshake against whatever certificate the member serves then), as the user whose files it re-reads each time.
 */
function kv(m: Member, path: string, body: object, user: string): Promise<Record<string, unknown>> {
  const url = new URL(m.client);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: Number(url.port), path, method: "POST", agent: false, ca: readFileSync(c("ca.pem")), cert: readFileSync(c(`${user}.pem`)), key: readFileSync(c(`${user}-key.pem`)), timeout: 5000, headers: { "content-type": "application/json" } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (text += d));
        res.on("end", () => (res.statusCode === 200 ? resolve(JSON.parse(text)) : reject(new Error(`${m.name} ${path}: HTTP ${res.statusCode} ${text}`))));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${m.name} ${path}: timeout`)));
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

const b64 = (s: string) => Buffer.from(s).toString("base64");

interface Traffic {
  requests: number;
  failures: string[];
}

/** put then get (and compare) in a loop through one member, until stop() or the limits. */
async function worker(m: Member, user: string, t: Traffic, stopped: () => boolean, maxRequests: number): Promise<void> {
  for (let i = 0; !stopped() && t.requests < maxRequests; i++) {
    const key = `/live/${m.name}/${i % 50}`;
    const value = `${m.name}-${i}`;
    try {
      t.requests++;
      await kv(m, "/v3/kv/put", { key: b64(key), value: b64(value) }, user);
      t.requests++;
      const got = (await kv(m, "/v3/kv/range", { key: b64(key) }, user)) as { kvs?: { value: string }[] };
      const read = got.kvs?.[0] ? Buffer.from(got.kvs[0].value, "base64").toString() : "(none)";
      if (read !== value) t.failures.push(`${m.name}: read ${read} after writing ${value}`);
    } catch (e) {
      t.failures.push(e instanceof Error ? e.message : String(e));
    }
  }
}

function makeAsync(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const p = spawn("make", ["--no-print-directory", "-C", join(__dirname, ".."), ...args, `CONFIG_DIR=${tree.config}`, `CERTS_DIR=${tree.certs}`]);
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("close", (status) => resolve({ status, stdout, stderr, ms: Date.now() - started }));
  });
}

const d = describeWith("etcd", "etcdctl", "openssl");

d("make renew of every leaf while a real etcd 3.4 cluster serves traffic", () => {
  beforeAll(async () => {
    tree = tempTree({ examples: ["calicoctl"] });
    procs = new Processes(join(tree.dir, "logs"));
    // make and make crl: their commands in process (the setup; make renew, the subject, runs as make below)
    expect((await tlsOn(tree, "build")).status).toBe(0);
    expect((await etcdOn(tree, "crl")).status).toBe(0);
    members.push(...(await threeMembers()));
    // every member reads the DER CRL (the file etcd 3.6 needs; 3.4 reads it with x509.ParseCRL)
    for (const m of members) m.proc = procs.start(m.name, "etcd", memberArgs(m, members, tree.certs, join(tree.dir, "data"), ["--client-crl-file", c("crl.der"), "--peer-crl-file", c("crl.der")]));
    await waitHealthy(tree.certs, members.map((m) => m.client));
  }, 120_000);

  afterAll(async () => {
    await procs.stopAll();
    if (tree) rmSync(tree.dir, { recursive: true, force: true });
  }, 60_000);

  test("no request fails, and each member serves its renewed certificate without a restart", async () => {
    try {
      const pids = members.map((m) => m.proc!.child.pid);
      const before = Object.fromEntries(LEAVES.map((n) => [n, fileSerial(n)]));
      for (const m of members) expect(await servedSerial(m)).toBe(before[m.name]);

      const traffic: Traffic = { requests: 0, failures: [] };
      let stop = false;
      const started = Date.now();
      // two clients per member: root and calicoctl, each re-reading its (renewed) files for every request
      const workers = members.flatMap((m) => ["root", "calicoctl"].map((u) => worker(m, u, traffic, () => stop, 20_000)));
      // a moment of traffic before (the clients unhammered by a renewal), and a second after: every request from make
      // renew's start on counts (the during-count below); the clients send without a pause (~90 requests a second,
      // each a TLS handshake on both sides), so every second of traffic before and after costs CPU for no more proof
      await sleep(500);
      const atRenew = traffic.requests;
      // every leaf: WARN_DAYS=36500 selects everything that ends within 100 years; twice, for a longer window
      const renew = await makeAsync(["renew", "WARN_DAYS=36500"]);
      const second = await makeAsync(["renew", "WARN_DAYS=36500"]);
      const duringRenew = traffic.requests - atRenew;
      await sleep(1000);
      stop = true;
      await Promise.all(workers);
      const seconds = (Date.now() - started) / 1000;
      console.log(`renewal under traffic: ${traffic.requests} requests (put+get over a new TLS connection each) through 3 members in ${seconds.toFixed(1)} s, ${duringRenew} of them while make renew ran (twice: ${renew.ms} + ${second.ms} ms); ${traffic.failures.length} failed${traffic.failures.length ? `: ${traffic.failures.slice(0, 5).join("; ")}` : ""}`);

      for (const r of [renew, second]) {
        expect(r.stderr.split("\n").filter((l) => l && !l.startsWith("warning: "))).toEqual([]);
        expect(r.status).toBe(0);
        for (const n of LEAVES) expect(r.stdout).toContain(`renewed ${c(`${n}.pem`)}`);
      }
      expect(traffic.failures).toEqual([]);
      expect(duringRenew).toBeGreaterThan(0);
      expect(traffic.requests).toBeGreaterThan(50);

      const after = Object.fromEntries(LEAVES.map((n) => [n, fileSerial(n)]));
      for (const n of LEAVES) expect([n, after[n]]).not.toEqual([n, before[n]]);
      for (const m of members) {
        const served = await servedSerial(m);
        expect([m.name, served]).toEqual([m.name, after[m.name]]);
      }
      // no member restarted: the same processes, still running, and the cluster healthy
      expect(members.map((m) => m.proc!.child.pid)).toEqual(pids);
      for (const m of members) expect(m.proc!.child.exitCode).toBeNull();
      const health = etcdctl(tree.certs, "root", members.map((m) => m.client).join(","), ["endpoint", "health"]);
      expect((health.stdout + health.stderr).match(/is healthy/g)).toHaveLength(3);
    } catch (e) {
      if (e instanceof Error) e.message += `\n\nprocess logs:\n${procs.logs()}`;
      throw e;
    }
  }, 90_000);

  test("the members read crl.der: a revoked user is refused, the others served", async () => {
    // make revoke NAME=calicoctl's command, in process (make revoke's wiring is tested spawned in etcd-revoke)
    expect((await etcdOn(tree, "revoke", "calicoctl")).status).toBe(0);
    for (const m of members) {
      await expect(kv(m, "/v3/kv/range", { key: b64("/live/x") }, "calicoctl")).rejects.toThrow();
      await expect(kv(m, "/v3/kv/range", { key: b64("/live/x") }, "root")).resolves.toBeDefined();
    }
    expect(Processes.tail(members[0].proc!, 400)).toMatch(/revoked/);
  });
});
