// Renewal on a timer: make renew's RENEW_HOOK and exit codes, and the units shipped in contrib/ — the systemd
// service and timer judged by systemd-analyze verify, the Kubernetes CronJob by the yaml package in strict mode and
// kubectl (offline), and each unit's command run against a temp tree. The units' commands and RENEW_HOOK through make
// (as written, from the command line and from the environment) stay spawned; the other renewals and every setup `make`
// run in process (lifecycle.js renew and tls.js build with the Makefile's tree options).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { describeWith, ROOT, sh, snapshot, tempTree, withTools } from "./helpers";
import { lifecycle, made, make, shortTree, Tree } from "./lifecycle-fixtures";

const serial = (f: string) => sh("openssl", ["x509", "-in", f, "-noout", "-serial"]).trim();

/** A hook that records its environment's TLS_SETUP_* variables (one line per run) in FILE. */
const recorder = (file: string, exit = 0) => `printf '%s|%s|%s\\n' "$TLS_SETUP_RENEWED" "$TLS_SETUP_RENEWED_FILES" "$TLS_SETUP_CERTS_DIR" >> '${file}'; exit ${exit}`;
const errorLines = (stderr: string) => stderr.split("\n").filter((l) => l && !l.startsWith("make: ") && !l.startsWith("warning: "));

describe("make renew RENEW_HOOK", () => {
  let t: Tree;
  let log = "";
  beforeAll(async () => {
    t = await made(shortTree(["calico-node"]));
    log = join(t.dir, "hook.log");
  });

  test("nothing to renew: exit 0, the hook is not run", async () => {
    const r = await lifecycle(t, "renew", ["--warn-days", "5", "--hook", recorder(log)]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("nothing renewed");
    expect(r.stdout).toContain("RENEW_HOOK not run");
    expect(existsSync(log)).toBe(false);
  });

  withTools("openssl")("something renewed: the hook runs once, after the files are in place, with the names in its environment", () => {
    const before = { root: serial(join(t.certs, "root.pem")) };
    // the hook sees the renewed certificate already in place
    const seen = join(t.dir, "seen-serial");
    // spawned: RENEW_HOOK on make's command line, taken as written ($VARs reach the hook's shell)
    const r = make(t, ["renew"], [`RENEW_HOOK=openssl x509 -in "$TLS_SETUP_CERTS_DIR/root.pem" -noout -serial > '${seen}'; ${recorder(log)}`]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("renew: running RENEW_HOOK for calico-node root");
    expect(readFileSync(log, "utf8")).toBe(`calico-node root|${join(t.certs, "calico-node.pem")} ${join(t.certs, "root.pem")}|${t.certs}\n`);
    const now = serial(join(t.certs, "root.pem"));
    expect(now).not.toBe(before.root);
    expect(readFileSync(seen, "utf8").trim()).toBe(now);
  });

  withTools("openssl")("a failing hook: exit non-zero with one line naming its exit code; the renewal stays", async () => {
    const before = serial(join(t.certs, "etcd1.pem"));
    const r = await lifecycle(t, "renew", ["--name", "etcd1", "--hook", recorder(log, 3)]);
    expect(r.status).not.toBe(0);
    const lines = errorLines(r.stderr);
    expect(lines).toEqual(["renew: RENEW_HOOK failed with exit code 3; the certificates of etcd1 are renewed (the hook is not run again until something is renewed)"]);
    expect(serial(join(t.certs, "etcd1.pem"))).not.toBe(before);
    expect(readFileSync(log, "utf8").trim().split("\n").pop()).toBe(`etcd1|${join(t.certs, "etcd1.pem")}|${t.certs}`);
  });

  test("RENEW_HOOK from the environment (as a systemd Environment= line gives it) works too", () => {
    const env = { ...process.env, RENEW_HOOK: recorder(log) };
    const r = spawnSync("make", ["--no-print-directory", "-s", "-C", ROOT, "renew", `CONFIG_DIR=${t.config}`, `CERTS_DIR=${t.certs}`, "NAME=proxy1"], { env, encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(readFileSync(log, "utf8").trim().split("\n").pop()).toBe(`proxy1|${join(t.certs, "proxy1.pem")}|${t.certs}`);
  });

  test("a failed renewal: one line, non-zero, nothing changed, the hook not run", async () => {
    const u = await made(shortTree());
    const ulog = join(u.dir, "hook.log");
    renameSync(join(u.certs, "ca-key.pem"), join(u.dir, "ca-key.pem"));
    const before = snapshot(u.certs);
    const r = await lifecycle(u, "renew", ["--warn-days", "36500", "--hook", recorder(ulog)]);
    expect(r.status).not.toBe(0);
    expect(errorLines(r.stderr)).toHaveLength(1);
    expect(errorLines(r.stderr)[0]).toMatch(/ca-key\.pem|CA/);
    expect(snapshot(u.certs)).toEqual(before);
    expect(existsSync(ulog)).toBe(false);
  });
});

/** The lines KEY=VALUE of a unit file's section. */
function unitSection(text: string, section: string): [string, string][] {
  const out: [string, string][] = [];
  let current = "";
  for (const line of text.split("\n")) {
    const s = /^\[(.+)\]$/.exec(line);
    if (s) current = s[1];
    else if (current === section && /^[A-Za-z]+=/.test(line)) out.push([line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]);
  }
  return out;
}

const UNITS = join(ROOT, "contrib", "systemd");

describeWith("systemd-analyze")("contrib/systemd", () => {
  function verify(dir: string, files: string[]): { status: number | null; out: string } {
    const r = spawnSync("systemd-analyze", ["verify", ...files.map((f) => join(dir, f))], { encoding: "utf8", env: { ...process.env, SYSTEMD_LOG_COLOR: "0" } });
    return { status: r.status, out: (r.stdout + r.stderr).trim() };
  }

  test("systemd-analyze verify accepts the service and the timer without a word (as shipped, and pointed at this checkout)", () => {
    expect(verify(UNITS, ["tls-setup-renew.timer", "tls-setup-renew.service"])).toEqual({ status: 0, out: "" });
    const dir = mkdtempSync(join(ROOT, "..", ".tls-setup-units-"));
    try {
      for (const f of ["tls-setup-renew.timer", "tls-setup-renew.service"]) writeFileSync(join(dir, f), readFileSync(join(UNITS, f), "utf8").replaceAll("/opt/tls-setup", ROOT));
      expect(verify(dir, ["tls-setup-renew.timer", "tls-setup-renew.service"])).toEqual({ status: 0, out: "" });
      // verify is a real judge: a misspelt key and an ExecStart that does not exist are reported
      writeFileSync(join(dir, "tls-setup-renew.service"), readFileSync(join(UNITS, "tls-setup-renew.service"), "utf8").replace("ExecStart=/usr/bin/make", "ExecStrat=/usr/bin/make\nExecStart=/nonexistent/make"));
      const bad = verify(dir, ["tls-setup-renew.service"]);
      expect(bad.out).toContain("Unknown key 'ExecStrat'");
      expect(bad.status).not.toBe(0);
    } finally {
      spawnSync("rm", ["-rf", dir]);
    }
  });

  test("the timer starts the service daily; the service is a oneshot running make renew, which works as written", async () => {
    const timer = readFileSync(join(UNITS, "tls-setup-renew.timer"), "utf8");
    expect(unitSection(timer, "Timer")).toEqual(expect.arrayContaining([["OnCalendar", "daily"], ["Persistent", "true"]]));
    expect(unitSection(timer, "Install")).toEqual([["WantedBy", "timers.target"]]);
    const service = readFileSync(join(UNITS, "tls-setup-renew.service"), "utf8");
    const s = unitSection(service, "Service");
    expect(s).toEqual(expect.arrayContaining([["Type", "oneshot"]]));
    const exec = s.filter(([k]) => k === "ExecStart").map(([, v]) => v);
    expect(exec).toEqual(["/usr/bin/make -s -C /opt/tls-setup renew"]);
    // run that command line, pointed at this checkout and a temp tree (the Makefile takes CONFIG_DIR/CERTS_DIR from
    // the environment), with the unit's Environment= lines
    const t = await made(shortTree());
    const env: NodeJS.ProcessEnv = { ...process.env, CONFIG_DIR: t.config, CERTS_DIR: t.certs };
    for (const [k, v] of s) if (k === "Environment") Object.assign(env, Object.fromEntries([v.replace(/^"|"$/g, "").split(/=(.*)/s).slice(0, 2)]));
    expect(env.WARN_DAYS).toBe("30");
    const argv = exec[0].replaceAll("/opt/tls-setup", ROOT).split(" ");
    const r = spawnSync(argv[0], argv.slice(1), { env, encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/renewed .*\/root\.pem/);
    const again = spawnSync(argv[0], [...argv.slice(1), "WARN_DAYS=5"], { env, encoding: "utf8" });
    expect(again.status).toBe(0);
    expect(again.stdout).toContain("nothing renewed");
  });
});

describe("contrib/kubernetes", () => {
  const file = join(ROOT, "contrib", "kubernetes", "tls-setup-renew-cronjob.yaml");
  const text = readFileSync(file, "utf8");

  interface Container {
    image: string;
    workingDir: string;
    command: string[];
    env: { name: string; value: string }[];
  }

  function cronJob(): { kind: string; apiVersion: string; spec: { schedule: string; concurrencyPolicy: string; jobTemplate: { spec: { template: { spec: { restartPolicy: string; containers: Container[] } } } } } } {
    const docs = parseAllDocuments(text, { strict: true, uniqueKeys: true, prettyErrors: true });
    if (!Array.isArray(docs)) throw new Error("not a YAML stream");
    expect(docs).toHaveLength(1);
    expect(docs[0].errors.map(String)).toEqual([]);
    expect(docs[0].warnings.map(String)).toEqual([]);
    return docs[0].toJS();
  }

  test("strict YAML: one CronJob (batch/v1), not run twice at once, its Job not restarted in place", () => {
    const j = cronJob();
    expect([j.apiVersion, j.kind]).toEqual(["batch/v1", "CronJob"]);
    expect(j.spec.schedule.split(" ")).toHaveLength(5);
    expect(j.spec.concurrencyPolicy).toBe("Forbid");
    expect(j.spec.jobTemplate.spec.template.spec.restartPolicy).toBe("Never");
    // the strict parser is a real judge: a duplicated key is an error
    const dup = parseAllDocuments(text.replace("  concurrencyPolicy: Forbid\n", "  concurrencyPolicy: Forbid\n  concurrencyPolicy: Allow\n"), { strict: true, uniqueKeys: true });
    expect(Array.isArray(dup) && dup[0].errors.length).toBeGreaterThan(0);
  });

  withTools("kubectl")("kubectl reads it offline (--local) as the same object", () => {
    const r = spawnSync("kubectl", ["label", "--local", "-f", file, "-o", "json", "checked=yes"], { encoding: "utf8", env: { ...process.env, KUBECONFIG: "/dev/null" } });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const k = JSON.parse(r.stdout);
    delete k.metadata.labels.checked;
    expect(k).toEqual(cronJob());
  });

  test("its container's command, run in a copy of the tree's layout, renews (exit 0) and is quiet when nothing is due", async () => {
    const c = cronJob().spec.jobTemplate.spec.template.spec.containers[0];
    expect(c.image).toMatch(/^node:20/);
    expect(c.command.slice(0, 3)).toEqual(["node", "dist/lifecycle.js", "renew"]);
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const e of c.env) env[e.name] = e.value;
    expect(env.RENEW_HOOK).toBe("");
    // workingDir's layout: the checkout's dist/ and node_modules/, and a tree's config/ and certs/
    const run = (t: Tree, extra: NodeJS.ProcessEnv) => {
      const work = mkdtempSync(join(t.dir, "opt-"));
      for (const d of ["dist", "node_modules"]) symlinkSync(join(ROOT, d), join(work, d));
      symlinkSync(t.config, join(work, "config"));
      symlinkSync(t.certs, join(work, "certs"));
      return spawnSync(process.execPath, c.command.slice(1), { cwd: work, env: { ...env, ...extra }, encoding: "utf8" });
    };
    // 10-day user certificates: root is due
    const t = await made(shortTree());
    const log = join(t.dir, "hook.log");
    const r = run(t, { RENEW_HOOK: recorder(log) });
    expect(r.stderr.split("\n").filter((l) => l && !l.startsWith("warning: "))).toEqual([]);
    expect(r.status).toBe(0);
    expect(readFileSync(log, "utf8")).toBe(`root|certs/root.pem|certs\n`);
    // the shipped profiles (a year): nothing is due, the hook does not run
    const u = await made(tempTree());
    const quiet = run(u, { RENEW_HOOK: recorder(log) });
    expect(quiet.status).toBe(0);
    expect(quiet.stdout).toContain("nothing renewed");
    expect(readFileSync(log, "utf8")).toBe(`root|certs/root.pem|certs\n`);
  });
});
