// What a user's habits run into: NAME exported in the environment (renew, inspect; revoke and secrets are in their
// own suites), and the exit codes CI scripts test (README "Exit codes"), of the scripts and of make.
import { rmSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { runMake, runScript, snapshot } from "./helpers";
import { shortTree, Tree } from "./lifecycle-fixtures";

let t: Tree;
beforeAll(() => {
  t = shortTree(["calicoctl"]); // users get 10-day certificates
  const r = runMake([], t);
  if (r.status !== 0) throw new Error(r.stderr);
});
afterAll(() => rmSync(t.dir, { recursive: true, force: true }));

const tree = () => ["--config-dir", t.config, "--certs-dir", t.certs];
const lines = (s: string, prefix: string) => s.split("\n").filter((l) => l.startsWith(prefix));

describe("NAME in the environment", () => {
  test("make renew refuses it with one line saying how to pass it, and renews nothing", () => {
    const before = snapshot(t.certs);
    const r = runMake(["renew"], t, ["WARN_DAYS=30"], { env: { NAME: "calicoctl" } });
    expect(r.status).toBe(2);
    expect(lines(r.stderr, "renew:")).toEqual(["renew: NAME came from the environment (NAME=calicoctl); pass it on make's command line: make renew NAME=calicoctl; NAME= renews by expiry"]);
    expect(snapshot(t.certs)).toEqual(before);
  });

  test("make renew NAME= on the command line overrides the environment's NAME (renew by expiry)", () => {
    const r = runMake(["renew", "NAME=", "WARN_DAYS=5"], t, [], { env: { NAME: "some-host" } });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("renew: nothing ends within 5 days");
  });

  test("make inspect (it only reads) uses it, and says where it came from", () => {
    const r = runMake(["inspect"], t, [], { env: { NAME: "calicoctl" } });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("inspect: NAME=calicoctl from the environment");
    expect(r.stdout).toMatch(/calicoctl/);
    // a host name exported as NAME (WSL) is not a certificate: the error says which NAME was used
    const host = runMake(["inspect"], t, [], { env: { NAME: "my-laptop" } });
    expect(host.status).toBe(2);
    expect(host.stderr).toContain("inspect: NAME=my-laptop from the environment");
    expect(host.stderr).toContain("NAME=my-laptop is not a certificate in");
  });
});

describe("exit codes (README \"Exit codes\")", () => {
  // [what, script args, make args, script's code, make's code]
  const cases: [string, string[], string[], number, number][] = [
    ["check-expiration, nothing ending within WARN_DAYS", ["check-expiration", "--warn-days", "5"], ["check-expiration", "WARN_DAYS=5"], 0, 0],
    ["check-expiration, a certificate ending within WARN_DAYS", ["check-expiration", "--warn-days", "30"], ["check-expiration", "WARN_DAYS=30"], 1, 2],
    ["check-expiration, a bad WARN_DAYS (a user error)", ["check-expiration", "--warn-days", "soon"], ["check-expiration", "WARN_DAYS=soon"], 1, 2],
    ["verify, all good", ["verify"], ["verify"], 0, 0],
  ];
  test.each(cases)("%s", (_what, args, makeArgs, script, make) => {
    expect(runScript("lifecycle", [...args, ...tree()]).status).toBe(script);
    expect(runMake([makeArgs[0]], t, makeArgs.slice(1)).status).toBe(make);
  });

  test("verify with a problem: the script exits 1, make exits 2; after the repair both exit 0", () => {
    const key = join(t.certs, "calicoctl-key.pem");
    chmodSync(key, 0o644);
    const s = runScript("lifecycle", ["verify", ...tree()]);
    expect(s.status).toBe(1);
    expect(s.stdout).toContain("readable by others");
    expect(runMake(["verify"], t).status).toBe(2);
    chmodSync(key, 0o600);
    expect(runScript("lifecycle", ["verify", ...tree()]).status).toBe(0);
    expect(runMake(["verify"], t).status).toBe(0);
  });

  test("a bad config: the script exits 1, make exits 2", () => {
    const bad = join(t.config, "req-broken.json");
    writeFileSync(bad, "{");
    try {
      expect(runScript("tls", ["build", ...tree()]).status).toBe(1);
      expect(runMake([], t).status).toBe(2);
    } finally {
      rmSync(bad);
    }
  });

  test("an unknown option or command is a user error (1), --help is not (0)", () => {
    for (const s of ["lifecycle", "etcd", "tls"]) {
      expect(runScript(s, ["no-such-command"]).status).toBe(1);
      expect(runScript(s, ["--help"]).status).toBe(0);
    }
  });
});
