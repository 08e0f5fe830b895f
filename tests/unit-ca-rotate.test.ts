// The phased CA rotation's state, read from the files (tree/signing-ca.ts rotationState), in-process: every step and
// what make, verify and the CRL do during it; misuse (a step out of order, a missing old CA key, a bundle edited by
// hand) is one line and changes nothing; SIGKILL in the middle of each step leaves a tree whose status is right and
// whose step, run again, completes it with every certificate matching its key. openssl is the judge of the chains.
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describeWith, DIST, runMake, sh, snapshot, tempTree, publicKeyOfPrivate, opensslVerifiesEach } from "./helpers";
import { etcdOn, expectStepRefused, lifecycleOn, makeInProcess, tlsOn } from "./in-process";
import { rotationState } from "../scripts/lib/tree/signing-ca";
import { TreeOptions } from "../scripts/lib/tree/targets";
import { parseCertPem } from "../scripts/lib/x509/certinfo";
import { TEMP_PREFIX } from "../scripts/lib/tree/output";

const opts = (t: { config: string; certs: string }): TreeOptions => ({ configDir: t.config, certsDir: t.certs, members: ["etcd1", "etcd2", "etcd3"], proxies: ["proxy1"] });
const args = (t: { config: string; certs: string }) => ["--config-dir", t.config, "--certs-dir", t.certs];
const trees: { dir: string }[] = [];
afterAll(() => trees.forEach((t) => rmSync(t.dir, { recursive: true, force: true })));

function newTree(users = 0) {
  const t = tempTree({ examples: ["calicoctl"] });
  trees.push(t);
  for (let i = 1; i <= users; i++) writeFileSync(join(t.config, `req-u${i}.json`), JSON.stringify({ CN: `u${i}`, key: { algo: "ecdsa", size: 256 } }));
  return t;
}

/** newTree() as the first make leaves it: made once in the file, each test gets a copy (its own build then makes nothing). */
let template: ReturnType<typeof newTree> | undefined;
async function madeTree() {
  if (!template) {
    template = newTree();
    expect((await tlsOn(template, "build")).status).toBe(0);
  }
  const t = newTree();
  cpSync(template.dir, t.dir, { recursive: true });
  return t;
}

/** openssl's verdict on leaves against a CA file (the CA file is the trust anchor), asked once per identical files. */
const verifiesEach = (caFile: string, leaves: string[]) => opensslVerifiesEach(["-CAfile", caFile], leaves);
const verifies = (caFile: string, leaf: string) => verifiesEach(caFile, [leaf])[0];
/** expect every leaf to get `want` from openssl against each CA file, leaf by leaf: [name, verdict per CA]. */
function expectVerdicts(names: string[], file: (n: string) => string, cas: string[], want: boolean[]) {
  const got = cas.map((ca) => verifiesEach(ca, names.map(file)));
  names.forEach((n, i) => expect([n, ...got.map((g) => g[i])]).toEqual([n, ...want]));
}

const LEAVES = ["etcd1", "etcd2", "etcd3", "proxy1", "calicoctl", "root"];

/** Every NAME.pem in certs/ (rotation files included) has NAME-key.pem beside it holding the same public key. */
async function checkPairs(certs: string): Promise<number> {
  let n = 0;
  for (const f of readdirSync(certs)) {
    if (!f.endsWith(".pem") || f.endsWith("-key.pem") || f.startsWith(TEMP_PREFIX) || f === "ca-prev.pem" || f === "crl.pem") continue;
    const name = f.slice(0, -4);
    const cert = parseCertPem(readFileSync(join(certs, f), "utf8"), f);
    expect([name, publicKeyOfPrivate(readFileSync(join(certs, `${name}-key.pem`), "utf8")).equals(cert.spki)]).toEqual([name, true]);
    n++;
  }
  return n;
}

describeWith("openssl")("CA rotation, step by step", () => {
  test("every step: the state from the files, make makes nothing unexpected, new users signed by the right CA", async () => {
    const t = await madeTree();
    expect((await tlsOn(t, "build")).status).toBe(0);
    const c = (f: string) => join(t.certs, f);
    const oldCa = readFileSync(c("ca.pem"), "utf8");
    expect(rotationState(opts(t)).step).toBe("none");

    const start = await tlsOn(t, "ca-rotate", "start");
    expect([start.status, start.stderr]).toEqual([0, ""]);
    expect(start.stdout).toMatch(/etcdctl --endpoints=https:\/\/HOST:2379 --cacert \S+ca\.pem --cert \S+root\.pem --key \S+root-key\.pem endpoint health/);
    let s = rotationState(opts(t));
    expect([s.step, s.trust.length, s.leaves.filter((l) => l.by === "old").length]).toEqual(["started", 2, LEAVES.length]);
    expect(readFileSync(c("ca-prev.pem"), "utf8")).toBe(oldCa);
    // the bundle trusts both: an old leaf verifies against it, and so will a new one
    expectVerdicts(LEAVES, (n) => c(`${n}.pem`), [c("ca.pem")], [true]);
    // start re-issues nothing; a plain build makes nothing; a new user is signed by the OLD CA
    const before = snapshot(t.certs);
    expect((await tlsOn(t, "build")).stdout).toMatch(/made 0,/);
    expect(snapshot(t.certs)).toEqual(before);
    cpSync(join(t.config, "req-calicoctl.json"), join(t.config, "req-early.json"));
    writeFileSync(join(t.config, "req-early.json"), readFileSync(join(t.config, "req-early.json"), "utf8").replace('"calicoctl"', '"early"'));
    expect((await tlsOn(t, "build")).stdout).toMatch(/made 1,/);
    expect([verifies(c("ca-prev.pem"), c("early.pem")), verifies(c("ca-next.pem"), c("early.pem"))]).toEqual([true, false]);
    expect((await tlsOn(t, "plan")).stdout).toMatch(/ok +ca +CA rotation in progress/);

    const reissue = await tlsOn(t, "ca-rotate", "reissue");
    expect([reissue.status, reissue.stderr]).toEqual([0, ""]);
    expect(reissue.stdout).toMatch(/7 certificate\(s\) re-issued/);
    s = rotationState(opts(t));
    expect(s.step).toBe("reissued");
    expectVerdicts([...LEAVES, "early"], (n) => c(`${n}.pem`), [c("ca-next.pem"), c("ca-prev.pem")], [true, false]);
    // keys kept
    expect(existsSync(c("calicoctl-key.pem"))).toBe(true);
    expect((await tlsOn(t, "build")).stdout).toMatch(/made 0,/);
    writeFileSync(join(t.config, "req-late.json"), readFileSync(join(t.config, "req-early.json"), "utf8").replace('"early"', '"late"'));
    expect((await tlsOn(t, "build")).stdout).toMatch(/made 1,/);
    expect(verifies(c("ca-next.pem"), c("late.pem"))).toBe(true);

    const newCa = readFileSync(c("ca-next.pem"), "utf8");
    const finish = await tlsOn(t, "ca-rotate", "finish");
    expect([finish.status, finish.stderr]).toEqual([0, ""]);
    expect(rotationState(opts(t)).step).toBe("none");
    expect(readFileSync(c("ca.pem"), "utf8")).toBe(newCa);
    for (const f of ["ca-next.pem", "ca-next-key.pem", "ca-next.csr", "ca-prev.pem"]) expect([f, existsSync(c(f))]).toEqual([f, false]);
    const [arch] = readdirSync(c("archive"));
    expect(arch).toMatch(/^ca-\d{4}-\d{2}-\d{2}-[0-9a-f]+$/);
    expect(readFileSync(join(c("archive"), arch, "ca.pem"), "utf8")).toBe(oldCa);
    expect(sh("openssl", ["x509", "-noout", "-pubkey", "-in", join(c("archive"), arch, "ca.pem")])).toBe(sh("openssl", ["pkey", "-pubout", "-in", join(c("archive"), arch, "ca-key.pem")]));
    expectVerdicts([...LEAVES, "early", "late"], (n) => c(`${n}.pem`), [c("ca.pem")], [true]);
    const after = snapshot(t.certs);
    expect((await tlsOn(t, "build")).stdout).toMatch(/made 0,/);
    expect(snapshot(t.certs)).toEqual(after);
    await checkPairs(t.certs);
  });

  test("misuse: a step out of order, a missing old CA key, a bundle edited by hand: one line, nothing changed", async () => {
    const t = await madeTree();
    expect((await tlsOn(t, "build")).status).toBe(0);
    const c = (f: string) => join(t.certs, f);
    const refused = (step: string, re: RegExp) => expectStepRefused(t, step, re);
    await refused("reissue", /at step "none"; the next step is make ca-rotate-start/);
    await refused("finish", /at step "none"; the next step is make ca-rotate-start/);
    // the old CA key missing
    const key = readFileSync(c("ca-key.pem"));
    unlinkSync(c("ca-key.pem"));
    await refused("start", /ca-key\.pem: the old CA's key is missing/);
    writeFileSync(c("ca-key.pem"), key, { mode: 0o600 });
    expect((await tlsOn(t, "ca-rotate", "start")).status).toBe(0);
    await refused("start", /at step "started"; the next step is make ca-rotate-reissue/);
    // the all-at-once make rotate is refused while a phased rotation is in progress
    const before = snapshot(t.certs);
    const rot = await tlsOn(t, "build", "--rotate");
    expect([rot.status, rot.stderr]).toEqual([1, expect.stringMatching(/make rotate: a phased CA rotation is in progress \(make ca-rotate-status\); finish it/)]);
    expect(snapshot(t.certs)).toEqual(before);
    await refused("finish", /at step "started"; the next step is make ca-rotate-reissue/);
    // the bundle edited by hand: the CAs swapped, or a third certificate added
    const bundle = readFileSync(c("ca.pem"), "utf8");
    writeFileSync(c("ca.pem"), readFileSync(c("ca-next.pem"), "utf8") + readFileSync(c("ca-prev.pem"), "utf8"));
    await refused("reissue", /ca\.pem: holds 2 certificate\(s\), not the rotation's bundle .*restore it: cat \S+ca-prev\.pem \S+ca-next\.pem > \S+ca\.pem/);
    await refused("finish", /not the rotation's bundle/);
    const st = await tlsOn(t, "ca-rotate", "status");
    expect(st.stdout).toMatch(/not the rotation's bundle/);
    const mk = await tlsOn(t, "build");
    expect([mk.status, /not the rotation's bundle/.test(mk.stderr)]).toEqual([1, true]);
    writeFileSync(c("ca.pem"), bundle + readFileSync(c("etcd1.pem"), "utf8"));
    await refused("reissue", /holds 3 certificate\(s\)/);
    writeFileSync(c("ca.pem"), bundle);
    // the new CA's key missing at reissue
    const nk = readFileSync(c("ca-next-key.pem"));
    unlinkSync(c("ca-next-key.pem"));
    await refused("reissue", /ca-next-key\.pem: the new CA's key is missing/);
    writeFileSync(c("ca-next-key.pem"), nk, { mode: 0o600 });
    expect((await tlsOn(t, "ca-rotate", "reissue")).status).toBe(0);
    await refused("start", /at step "reissued"; the next step is make ca-rotate-finish/);
    // reissue again at "reissued": nothing left to re-issue
    const again = await tlsOn(t, "ca-rotate", "reissue");
    expect([again.status, again.stdout]).toEqual([0, expect.stringMatching(/0 certificate\(s\) re-issued/)]);
  });

  test("SIGKILL in the middle of each step: status is right, the step run again completes it, every cert matches its key", async () => {
    const t = newTree(40);
    expect((await tlsOn(t, "build")).status).toBe(0);
    const run = (step: string) => {
      const child = spawn(process.execPath, [join(DIST, "tls.js"), "ca-rotate", step, ...args(t)], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (out += d));
      return { child, exited: new Promise<number | null>((r) => child.on("exit", (code) => r(code))), output: () => out };
    };
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const seen: string[] = [];
    const expected: Record<string, string[]> = { start: ["none", "starting", "started"], reissue: ["started", "reissuing", "reissued"], finish: ["reissued", "finishing", "none"] };
    const done: Record<string, string> = { start: "started", reissue: "reissued", finish: "none" };
    let kills = 0;
    for (const step of ["start", "reissue", "finish"]) {
      // node starts in ~100 ms; the kills walk through the step until one finds it done
      for (const delay of step === "reissue" ? [150, 300, 450, 600, 800, 1000, 1300, 1700] : [100, 150, 200, 250, 300, 400, 500, 700]) {
        const r = run(step);
        await sleep(delay);
        if (r.child.exitCode === null) {
          r.child.kill("SIGKILL");
          kills++;
        }
        await r.exited;
        const s = rotationState(opts(t));
        seen.push(`${step}@${delay}: ${s.step}`);
        expect([step, delay, s.problem]).toEqual([step, delay, undefined]);
        expect([step, delay, expected[step].includes(s.step)]).toEqual([step, delay, true]);
        const status = await tlsOn(t, "ca-rotate", "status");
        expect(status.stdout).toContain(`step: ${s.step}`);
        await checkPairs(t.certs);
        if (s.step === done[step]) break;
      }
      // the step run again completes it
      if (rotationState(opts(t)).step !== done[step]) {
        const again = await tlsOn(t, "ca-rotate", step);
        expect([step, again.status, again.stderr]).toEqual([step, 0, ""]);
      }
      expect([step, rotationState(opts(t)).step]).toEqual([step, done[step]]);
      await checkPairs(t.certs);
    }
    console.log(`CA rotation under SIGKILL: ${kills} kills; states seen: ${seen.join(", ")}`);
    expect(kills).toBeGreaterThan(0);
    expectVerdicts(readdirSync(t.certs).filter((f) => f.endsWith(".pem") && !f.endsWith("-key.pem") && f !== "ca.pem"), (f) => join(t.certs, f), [join(t.certs, "ca.pem")], [true]);
    expect((await tlsOn(t, "build")).stdout).toMatch(/made 0,/);
  }, 120_000);

  test("ca-rotate-finish replaces certs/ca.pem in place: the trust file exists at every moment of the step", async () => {
    const t = await madeTree();
    expect((await tlsOn(t, "ca-rotate", "start")).status).toBe(0);
    expect((await tlsOn(t, "ca-rotate", "reissue")).status).toBe(0);
    // the step runs in this process; between its file operations (each one awaited) the event loop looks at ca.pem
    const caPem = join(t.certs, "ca.pem");
    let looks = 0;
    let missing = 0;
    let done = false;
    const look = () => {
      if (done) return;
      looks++;
      if (!existsSync(caPem)) missing++;
      setImmediate(look);
    };
    look();
    const r = await tlsOn(t, "ca-rotate", "finish");
    done = true;
    expect({ status: r.status, missing }).toEqual({ status: 0, missing: 0 });
    expect(looks).toBeGreaterThan(10);
    expect(readFileSync(caPem, "utf8").match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
  });

  test("the narrow windows a kill rarely hits: start and finish interrupted between their renames resume", async () => {
    const t = await madeTree();
    expect((await tlsOn(t, "build")).status).toBe(0);
    const c = (f: string) => join(t.certs, f);
    // start killed after ca-next.pem's rename, before the bundle's: "starting"; run again, it completes
    expect((await tlsOn(t, "ca-rotate", "start")).status).toBe(0);
    writeFileSync(c("ca.pem"), readFileSync(c("ca-prev.pem")));
    expect(rotationState(opts(t)).step).toBe("starting");
    expect((await tlsOn(t, "ca-rotate", "status")).stdout).toMatch(/next: make ca-rotate-start \(it was interrupted/);
    expect((await tlsOn(t, "build")).stdout).toMatch(/made 0,/);
    expect((await tlsOn(t, "ca-rotate", "reissue")).stderr).toMatch(/at step "starting"; the next step is make ca-rotate-start/);
    expect((await tlsOn(t, "ca-rotate", "start")).status).toBe(0);
    expect(rotationState(opts(t)).step).toBe("started");
    expect((await tlsOn(t, "ca-rotate", "reissue")).status).toBe(0);
    // finish killed after the new CA became ca.pem / ca-key.pem, before the rotation files were removed: "finishing"
    const keep = Object.fromEntries(["ca-next.pem", "ca-next-key.pem", "ca-next.csr", "ca-prev.pem"].map((f) => [f, readFileSync(c(f))]));
    expect((await tlsOn(t, "ca-rotate", "finish")).status).toBe(0);
    for (const [f, data] of Object.entries(keep)) writeFileSync(c(f), data, { mode: 0o600 });
    expect(rotationState(opts(t)).step).toBe("finishing");
    expect((await tlsOn(t, "build")).stdout).toMatch(/made 0,/);
    // ... killed between the new key's rename and ca.pem's (ca.pem is replaced in place, never removed first): the
    // bundle, which holds the new CA, beside the new CA's key; the step read as "reissued", and finish run again
    const newKey = readFileSync(c("ca-key.pem"));
    writeFileSync(c("ca.pem"), Buffer.concat([keep["ca-prev.pem"], keep["ca-next.pem"]]));
    expect(readFileSync(c("ca-key.pem"))).toEqual(newKey);
    expect(rotationState(opts(t)).step).toBe("reissued");
    const rerun = await tlsOn(t, "ca-rotate", "finish");
    expect([rerun.status, rerun.stderr]).toEqual([0, ""]);
    expect(readFileSync(c("ca.pem"))).toEqual(keep["ca-next.pem"]);
    for (const [f, data] of Object.entries(keep)) writeFileSync(c(f), data, { mode: 0o600 });
    // ... and with ca.pem gone (removed by hand; finish itself never removes it): "finishing", run again
    unlinkSync(c("ca.pem"));
    expect(rotationState(opts(t)).step).toBe("finishing");
    const again = await tlsOn(t, "ca-rotate", "finish");
    expect([again.status, again.stderr]).toEqual([0, ""]);
    expect(rotationState(opts(t)).step).toBe("none");
    expect(readFileSync(c("ca.pem"))).toEqual(keep["ca-next.pem"]);
    expect(readdirSync(c("archive"))).toHaveLength(1);
    expectVerdicts(LEAVES, (n) => c(`${n}.pem`), [c("ca.pem")], [true]);
    await checkPairs(t.certs);
    expect((await tlsOn(t, "build")).stdout).toMatch(/made 0,/);
  });

  test("during a rotation: verify, secrets, revoke and the CRL of both CAs, check-expiration's CA warning", async () => {
    const t = await madeTree();
    const c = (f: string) => join(t.certs, f);
    expect((await tlsOn(t, "build")).status).toBe(0);
    // CA_WARN_DAYS through make (the Makefile's variable → --ca-warn-days); the rest of this test runs the same
    // commands in process, as the Makefile's recipes pass them (reissue and finish re-sign an existing CRL)
    const ce = runMake(["check-expiration", "CA_WARN_DAYS=36500"], t);
    expect(ce.status).toBe(0);
    expect(ce.stderr).toMatch(/warning: \S+ca\.pem: the CA ends on .* \(within CA_WARN_DAYS=36500\); rotate it without an outage: make ca-rotate-start/);
    expect((await lifecycleOn(t, "check-expiration")).stderr).not.toMatch(/CA_WARN_DAYS/);
    expect((await tlsOn(t, "ca-rotate", "start")).status).toBe(0);
    let v = await lifecycleOn(t, "verify");
    expect([v.status, v.stdout]).toEqual([0, expect.stringMatching(/verify: ok/)]);
    // the Secret's etcd-ca carries the bundle
    expect((await lifecycleOn(t, "secrets", "--name", "calicoctl")).status).toBe(0);
    const ca64 = /etcd-ca: "?([A-Za-z0-9+/=]+)/.exec(readFileSync(c("k8s/calicoctl.yaml"), "utf8"))![1];
    expect(Buffer.from(ca64, "base64").toString()).toBe(readFileSync(c("ca.pem"), "utf8"));
    // revoked while the old CA signs, then re-issued: the new CA's CRL still lists the old serial (etcd: serials only)
    const oldSerial = sh("openssl", ["x509", "-noout", "-serial", "-in", c("proxy1.pem")]).trim().replace("serial=", "").toUpperCase();
    const saved = { cert: readFileSync(c("etcd1.pem")), key: readFileSync(c("etcd1-key.pem")) };
    expect((await etcdOn(t, "revoke", "proxy1")).status).toBe(0);
    const re = await makeInProcess(["ca-rotate-reissue"], t);
    expect([re.status, re.stderr]).toEqual([0, ""]);
    // openssl's verdict on the CRL's signature, read from its output ("verify OK" / "verify failure")
    const crlCheck = (caFile: string) => {
      const r = spawnSync("openssl", ["crl", "-in", c("crl.pem"), "-noout", "-CAfile", caFile], { encoding: "utf8" });
      return /verify OK/.test(`${r.stdout}${r.stderr}`) && !/verify fail/i.test(`${r.stdout}${r.stderr}`);
    };
    expect([crlCheck(c("ca-next.pem")), crlCheck(c("ca-prev.pem"))]).toEqual([true, false]);
    expect((await etcdOn(t, "revoke", "calicoctl")).status).toBe(0);
    const newSerial = sh("openssl", ["x509", "-noout", "-serial", "-in", c("calicoctl.pem")]).trim().replace("serial=", "").toUpperCase();
    const listed = sh("openssl", ["crl", "-in", c("crl.pem"), "-noout", "-text"]);
    expect([listed.includes(oldSerial), listed.includes(newSerial)]).toEqual([true, true]);
    v = await lifecycleOn(t, "verify");
    expect(v.stdout).toMatch(/verify: ok/);
    // while re-issuing, a leaf still signed by the old CA of the bundle is a warning, not a problem
    const newPair = { cert: readFileSync(c("etcd1.pem")), key: readFileSync(c("etcd1-key.pem")) };
    writeFileSync(c("etcd1.pem"), saved.cert);
    writeFileSync(c("etcd1-key.pem"), saved.key, { mode: 0o600 });
    expect(rotationState(opts(t)).step).toBe("reissuing");
    v = await lifecycleOn(t, "verify");
    expect([v.status, v.stdout, v.stderr]).toEqual([0, expect.stringMatching(/verify: ok/), expect.stringMatching(/warning: \S+etcd1\.pem: is signed by the other CA of the rotation's bundle/)]);
    writeFileSync(c("etcd1.pem"), newPair.cert);
    writeFileSync(c("etcd1-key.pem"), newPair.key, { mode: 0o600 });
    expect((await makeInProcess(["ca-rotate-finish"], t)).status).toBe(0);
    expect(crlCheck(c("ca.pem"))).toBe(true);
    // a leaf of the old CA put back: its CA is not in the trust file
    writeFileSync(c("etcd1.pem"), saved.cert);
    writeFileSync(c("etcd1-key.pem"), saved.key, { mode: 0o600 });
    v = await lifecycleOn(t, "verify");
    expect(v.status).not.toBe(0);
    expect(v.stdout).toMatch(/etcd1\.pem: is not signed by the CA in \S+ca\.pem/);
  }, 60_000);
});
