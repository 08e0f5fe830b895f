// A revoked certificate is never re-issued by itself: a new serial from the same CA would give the revoked user
// working access again (the CRL lists the old serial only). An edited profile that makes every leaf stale, `make
// renew` of what ends soon, `make rotate`, the watcher's planner: all keep it as it is and say why; only an explicit
// `make renew NAME=<user>` gives it a new certificate. Judged by openssl (-crl_check against the tree's CRL).
// The targets' recipes run in process (tls.js, lifecycle.js, etcd.js mains with the Makefile's tree options), but for
// one spawned `make revoke`, `make -s plan` and `make rotate`, which keep those targets' wiring under test here.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runMake, sh, tempTree, withTools } from "./helpers";
import { runInProcess } from "./in-process";
import { build, lifecycle, made, treeArgs } from "./lifecycle-fixtures";
import { decideLeaf } from "../scripts/lib/tree/plan";
import { Target } from "../scripts/lib/tree/targets";
import { parseRequest } from "../scripts/lib/config/request";
import { Stamp } from "../scripts/lib/tree/state";

type Tree = ReturnType<typeof tempTree>;
const cert = (t: Tree, n: string) => join(t.certs, `${n}.pem`);
const serial = (f: string) => sh("openssl", ["x509", "-in", f, "-noout", "-serial"]).trim().replace("serial=", "");
/** openssl's verdict on a leaf against the tree's CA and CRL: "OK", or its error. */
function crlCheck(t: Tree, n: string): string {
  const r = spawnSync("openssl", ["verify", "-crl_check", "-CAfile", cert(t, "ca"), "-CRLfile", join(t.certs, "crl.pem"), cert(t, n)], { encoding: "utf8" });
  return r.status === 0 ? "OK" : /certificate revoked/.test(r.stdout + r.stderr) ? "revoked" : (r.stdout + r.stderr).trim();
}
/** `make revoke NAME=name` in process: the recipe's `etcd.js revoke $(TREE) NAME`. */
const revoke = (t: Tree, name: string) => runInProcess("etcd", ["revoke", ...treeArgs(t), name]);

function editExpiry(t: Tree, hours: string): void {
  const f = join(t.config, "ca-config.json");
  const cfg = JSON.parse(readFileSync(f, "utf8"));
  for (const p of [cfg.signing.default, ...Object.values(cfg.signing.profiles ?? {})] as { expiry: string }[]) p.expiry = hours;
  writeFileSync(f, JSON.stringify(cfg));
}

describe("decideLeaf: a revoked leaf", () => {
  const t: Target = { name: "calicoctl", role: "user", configFile: "config/req-calicoctl.json" };
  const request = parseRequest({ CN: "calicoctl" }, "req-calicoctl.json").value!;
  const stamp = { version: 1, name: "calicoctl", role: "user", config: t.configFile, inputs: { request: "r", profile: "p", ca: "old" }, files: { cert: "c", key: "k", csr: "s" }, serial: "0abc", notAfter: "", issuedAt: "" } as Stamp;
  const revoked = { serial: "0abc", name: "calicoctl", revokedAt: "2026-11-01T00:00:00.000Z" };
  const leaf = { target: t, request, inputs: { request: "r", profile: "p", ca: "new" }, stamp, files: stamp.files, certExists: true, revoked };
  const ctx = { certsDir: "certs", caFingerprint: "new", certKeys: new Map(), now: new Date() };

  test.each([
    ["its CA changed", {}, "keep"],
    ["make rotate", { rotate: true }, "keep"],
    ["renewal asked for by name", { renew: true }, "make"],
  ])("%s: %s", (_what, c, action) => {
    const d = decideLeaf(leaf, { ...ctx, ...c });
    expect(d.action).toBe(action);
    if (action === "keep") expect(d.reason).toBe("revoked on 2026-11-01 (serial 0abc): never re-issued by itself; a new certificate: make renew NAME=calicoctl NEW_KEY=1; to retire it: remove config/req-calicoctl.json, then make prune");
  });

  test("its files gone: made again (the operator removed them)", () => {
    expect(decideLeaf({ ...leaf, certExists: false }, ctx).action).toBe("make");
  });
});

describe("make with a revoked user", () => {
  withTools("openssl")("an edited profile and make renew keep it; make renew NAME gives it a new certificate", async () => {
    const t = await made(tempTree({ examples: ["calicoctl", "calico-node"] }));
    // spawned: make revoke itself (NAME from make's command line to etcd.js revoke)
    expect(runMake(["revoke", "NAME=calicoctl"], t).status).toBe(0);
    const revokedPem = readFileSync(cert(t, "calicoctl"));
    expect(crlCheck(t, "calicoctl")).toBe("revoked");

    // every leaf stale (an edited profile): all re-made but the revoked one, which the plan explains
    editExpiry(t, "8000h");
    // spawned: make plan itself
    const plan = runMake(["-s", "plan"], t);
    expect(plan.stdout).toMatch(/ok +calicoctl +revoked on \d{4}-\d\d-\d\d \(serial [0-9a-f]+\): never re-issued by itself/);
    const remade = await build(t);
    expect([remade.status, remade.stderr]).toEqual([0, ""]);
    expect(remade.stdout).toMatch(/made .*calico-node\.pem/);
    expect(remade.stdout).not.toMatch(/made .*calicoctl\.pem/);
    expect(readFileSync(cert(t, "calicoctl"))).toEqual(revokedPem);
    expect([crlCheck(t, "calicoctl"), crlCheck(t, "calico-node")]).toEqual(["revoked", "OK"]);
    // make verify: the revoked one said, not a failure
    const v = await lifecycle(t, "verify");
    expect(v.status).toBe(0);
    expect(v.stdout + v.stderr).toMatch(/calicoctl\.pem: is revoked \(serial [0-9a-f]+, make revoke\); not verified/);

    // check-expiration: the revoked one is REVOKED, not a failure (it is never renewed by itself); the metrics leave
    // it out (an alert on its end would ask for nothing)
    const revokedSerial = serial(cert(t, "calicoctl")).toLowerCase().replace(/^(00)+/, "");
    const ce = await lifecycle(t, "check-expiration", ["--warn-days", "36500", "--format", "json"]);
    expect(ce.status).toBe(1); // the script's status (make says 2) when something ends within WARN_DAYS
    const report = JSON.parse(ce.stdout) as { certificates: { name: string; status: string }[]; failing: string[] };
    expect(report.certificates.find((e) => e.name === "calicoctl")?.status).toBe("revoked");
    expect(report.failing).not.toContain("calicoctl");
    expect(report.failing).toContain("calico-node");
    expect(ce.stderr).not.toMatch(/calicoctl\.pem/);
    const prom = await lifecycle(t, "check-expiration", ["--format", "prometheus"]);
    expect(prom.stdout).toMatch(/name="calico-node"/);
    expect(prom.stdout).not.toMatch(/name="calicoctl"/);
    expect(prom.stdout.toLowerCase()).not.toContain(revokedSerial);

    // make secrets: no Secret for the revoked user (etcd would refuse its certificate); named, one line
    const secrets = await lifecycle(t, "secrets");
    expect(secrets.status).toBe(0);
    expect(secrets.stdout).toMatch(/secrets: left out calicoctl: its certificate \S+calicoctl\.pem is revoked \(make revoke\); a new one first: make renew NAME=calicoctl NEW_KEY=1/);
    expect(secrets.stdout).toMatch(/wrote \S+calico-node\.yaml/);
    expect(existsSync(join(t.certs, "k8s", "calicoctl.yaml"))).toBe(false);
    const named = await lifecycle(t, "secrets", ["--name", "calicoctl"]);
    expect([named.status, named.stderr.trim().split("\n").filter((l) => !l.startsWith("make:"))]).toEqual([1, [expect.stringMatching(/NAME: "calicoctl": its certificate \S+ is revoked/)]]);

    // make renew of everything ending within 100 years: not the revoked one, and it says so
    const renew = await lifecycle(t, "renew", ["--warn-days", "36500"]);
    expect(renew.status).toBe(0);
    expect(renew.stderr).toMatch(/calicoctl\.pem: is revoked; not renewed \(make renew NAME=calicoctl NEW_KEY=1 gives it a new certificate\)/);
    expect(readFileSync(cert(t, "calicoctl"))).toEqual(revokedPem);

    // named: a new certificate (new key), not on the CRL
    const renewed = await lifecycle(t, "renew", ["--name", "calicoctl", "--new-key"]);
    expect(renewed.status).toBe(0);
    expect(serial(cert(t, "calicoctl"))).not.toBe(sh("openssl", ["x509", "-noout", "-serial"], { input: revokedPem.toString() }).trim().replace("serial=", ""));
    expect(crlCheck(t, "calicoctl")).toBe("OK");
    expect((await lifecycle(t, "secrets", ["--name", "calicoctl"])).status).toBe(0);
  });

  withTools("openssl")("make rotate (a new CA at once) leaves the revoked certificate to the old CA: it stops working", async () => {
    const t = await made(tempTree({ examples: ["calicoctl"] }));
    expect((await revoke(t, "calicoctl")).status).toBe(0);
    const revokedPem = readFileSync(cert(t, "calicoctl"));
    // spawned: make rotate itself
    const r = runMake(["rotate"], t);
    expect(r.status).toBe(0);
    // (its one warning: the CRL is the old CA's until make crl)
    expect(r.stderr.split("\n").filter((l) => l && !/^warning: .*crl\.pem: was signed by the previous CA/.test(l))).toEqual([]);
    expect(readFileSync(cert(t, "calicoctl"))).toEqual(revokedPem);
    const v = spawnSync("openssl", ["verify", "-CAfile", cert(t, "ca"), cert(t, "calicoctl")], { encoding: "utf8" });
    expect(v.status).not.toBe(0);
    expect(sh("openssl", ["verify", "-CAfile", cert(t, "ca"), cert(t, "root")])).toMatch(/: OK/);
    // and a plain make keeps it so
    expect((await build(t)).stdout).toMatch(/made 0,/);
  });
});
