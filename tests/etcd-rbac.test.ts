// The "etcd" block of user configs (parser, planner, make) and the rbac script's text (quoting judged by sh).
// The script's effect on a real etcd is tested in etcd-e2e.test.ts.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { mode, runMake, snapshot, tempTree } from "./helpers";
import { etcdOn, tlsOn } from "./in-process";
import { parseEtcdAccess, parseUserAccess, usersProblems, EtcdUser } from "../scripts/lib/config/etcd-access";
import { permissionJson, prefixRangeEnd, rbacScript, shellQuote } from "../scripts/lib/etcd/rbac-script";
import { formatProblem } from "../scripts/lib/common/errors";

const F = "config/req-x.json";
const messages = (v: unknown, cn = "x") => parseUserAccess(v, cn, F).problems.map(formatProblem);

describe("parseEtcdAccess", () => {
  test("a full block, keys matched case-insensitively, duplicates dropped", () => {
    const r = parseEtcdAccess({ ReadWrite: ["/calico/ipam/v2/", "/calico/ipam/v2/"], read: ["/calico/"], roles: ["root"] }, F);
    expect(r).toEqual({ value: { readwrite: ["/calico/ipam/v2/"], read: ["/calico/"], roles: ["root"] }, problems: [] });
  });

  test("an empty block is a user with no grants", () => {
    expect(parseEtcdAccess({}, F).value).toEqual({ readwrite: [], read: [], roles: [] });
  });

  test.each([
    ["not an object", ["/calico/"], 'config/req-x.json: etcd: ["/calico/"] is an array; an object like {"readwrite": ["/prefix/"], "read": [], "roles": []} is expected'],
    ["unknown key", { write: ["/a/"] }, 'config/req-x.json: etcd.write: is not a known field; accepted: "readwrite", "read", "roles"'],
    ["empty prefix", { read: [""] }, "config/req-x.json: etcd.read[0]: is empty; a key prefix"],
    ["prefix not a string", { readwrite: ["/a/", 5] }, "config/req-x.json: etcd.readwrite[1]: 5 is a number; key prefixes are strings"],
    ["list not a list", { readwrite: "/a/" }, 'config/req-x.json: etcd.readwrite: "/a/" is a string; a list of key prefixes is expected'],
    ["NUL in a prefix", { read: ["/a\u0000/"] }, "contains a NUL character"],
    ["bad role name", { roles: ["a b"] }, 'config/req-x.json: etcd.roles[0]: "a b" is not a usable etcd user or role name'],
    ["a prefix in both lists", { readwrite: ["/a/"], read: ["/b/", "/a/"] }, 'config/req-x.json: etcd.read[1]: "/a/" is also in "readwrite"'],
  ])("%s", (_name, block, expected) => {
    const m = messages(block);
    expect(m).toHaveLength(1);
    expect(m[0]).toContain(expected);
  });

  test("every problem of a block is reported at once", () => {
    expect(messages({ readwrite: [""], read: [1], other: true })).toHaveLength(3);
  });

  test("the CN must be usable as an etcd user name; root needs no grants", () => {
    expect(messages({}, "a b")[0]).toMatch(/^config\/req-x\.json: CN: "a b" is not a usable etcd user or role name/);
    expect(messages({ readwrite: ["/a/"], roles: ["root"] }, "root")[0]).toContain('the root user has every permission through the role "root"');
    expect(messages({ roles: ["root"] }, "root")).toEqual([]);
  });
});

describe("usersProblems", () => {
  const u = (name: string, file: string): EtcdUser => ({ name, file, access: { readwrite: [], read: [], roles: [] } });
  test("two configs with one CN, and a missing root user", () => {
    const p = usersProblems([u("a", "c/req-a.json"), u("a", "c/req-b.json")], "c").map(formatProblem);
    expect(p).toEqual([
      'c/req-b.json: CN: "a" is also the CN of c/req-a.json; one etcd user needs one config',
      expect.stringContaining('c: no req-<user>.json has the CN "root"'),
    ]);
    expect(usersProblems([u("root", "c/req-root.json")], "c")).toEqual([]);
  });
});

describe("the rbac script's text", () => {
  test("shellQuote survives sh for any text", () => {
    for (const s of [`it's "odd" $(x) \`y\` \\ *;`, "-dash", "", "new\nline", "'''", "ünï €"]) {
      const r = spawnSync("sh", ["-c", `printf '%s' ${shellQuote(s)}`], { encoding: "utf8" });
      expect(r.stdout).toBe(s);
    }
  });

  test("prefix range ends as etcdctl computes them", () => {
    expect(prefixRangeEnd(Buffer.from("/calico/")).toString()).toBe("/calico0");
    expect(prefixRangeEnd(Buffer.from([0x61, 0xff]))).toEqual(Buffer.from([0x62]));
    expect(prefixRangeEnd(Buffer.from([0xff, 0xff]))).toEqual(Buffer.from([0]));
    // the JSON etcdctl 3.4.23 printed for `role get -w json` after `grant-permission --prefix=true r1 read /calico/`
    expect(permissionJson("read", "/calico/")).toBe('{"key":"L2NhbGljby8=","range_end":"L2NhbGljbzA="}');
    expect(permissionJson("readwrite", "-we ird")).toBe('{"permType":2,"key":"LXdlIGlyZA==","range_end":"LXdlIGlyZQ=="}');
  });

  test("is valid sh, makes root first and enables auth last", () => {
    const users: EtcdUser[] = [
      { name: "zeta", file: "c/req-zeta.json", access: { readwrite: [`/it's "odd" $(x)/`], read: ["/r/"], roles: ["shared"] } },
      { name: "root", file: "c/req-root.json", access: { readwrite: [], read: [], roles: ["root"] } },
    ];
    const text = rbacScript(users, { source: "c/req-*.json" });
    expect(spawnSync("sh", ["-n"], { input: text }).status).toBe(0);
    const at = (s: string) => {
      const i = text.indexOf(`\n${s}\n`);
      expect({ s, i }).not.toEqual({ s, i: -1 });
      return i;
    };
    // root first (after the checks), then roles, then users, auth last
    expect(at("add_user root")).toBeLessThan(at("grant_role root root"));
    expect(at("grant_role root root")).toBeLessThan(at("add_role 'zeta'"));
    expect(at("add_role 'zeta'")).toBeLessThan(at("add_user 'zeta'"));
    expect(at("grant_role 'zeta' 'shared'")).toBeLessThan(at("etcdctl auth enable >/dev/null"));
    expect(at(`has_line "$roles" 'shared' || fail 'role shared (asked for by c/req-zeta.json) does not exist; create it (etcdctl role add shared) and re-run'`)).toBeLessThan(at("add_user root"));
    expect(text.trimEnd().split("\n").slice(-2)[0]).toBe("etcdctl auth enable >/dev/null");
    expect(text).toContain(`grant 'zeta' readwrite '/it'\\''s "odd" $(x)/' `);
  });
});

// make's and make rbac's commands (tls-setup build, etcd rbac) run in process here (tests/in-process.ts), except the
// first `make rbac` of the last test and `make plan`, which stay spawned for make's own wiring and output
describe("make and make rbac with etcd blocks", () => {
  test("make reports a bad etcd block with its file and path, and writes nothing", async () => {
    const t = tempTree();
    writeFileSync(join(t.config, "req-bad.json"), JSON.stringify({ CN: "bad", etcd: { readwrite: [""], write: [] } }));
    const r = await tlsOn(t, "build");
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`${t.config}/req-bad.json: etcd.readwrite[0]: is empty; a key prefix`);
    expect(r.stderr).toContain(`${t.config}/req-bad.json: etcd.write: is not a known field; accepted: "readwrite", "read", "roles"`);
    expect(existsSync(join(t.certs, "ca.pem"))).toBe(false);
    rmSync(t.dir, { recursive: true, force: true });
  });

  test("a CN that differs from the file's user name is a warning; make rbac uses the CN", async () => {
    const t = tempTree();
    writeFileSync(join(t.config, "req-web.json"), JSON.stringify({ CN: "web-frontend", etcd: { read: ["/web/"] } }));
    const r = await tlsOn(t, "build");
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`warning: ${t.config}/req-web.json: CN: "web-frontend" differs from the user name "web"`);
    expect((await etcdOn(t, "rbac")).status).toBe(0);
    expect(readFileSync(join(t.certs, "etcd-rbac.sh"), "utf8")).toContain("add_user 'web-frontend'");
    rmSync(t.dir, { recursive: true, force: true });
  });

  test("editing an etcd block re-makes no certificate", async () => {
    const t = tempTree({ examples: ["calicoctl"] });
    expect((await tlsOn(t, "build")).status).toBe(0);
    const before = snapshot(t.certs);
    const f = join(t.config, "req-calicoctl.json");
    const j = JSON.parse(readFileSync(f, "utf8"));
    j.etcd.read = ["/more/"];
    writeFileSync(f, JSON.stringify(j));
    const plan = runMake(["plan"], t);
    expect(plan.status).toBe(0);
    expect(plan.stdout).toMatch(/ok +calicoctl +up to date/);
    expect(plan.stdout).not.toMatch(/^make /m);
    expect((await tlsOn(t, "build")).status).toBe(0);
    expect(snapshot(t.certs)).toEqual(before);
    rmSync(t.dir, { recursive: true, force: true });
  });

  test("make rbac reads only the user configs: a broken member or signing config does not matter, a broken user config does", async () => {
    const t = tempTree({ examples: ["calico-cni"] });
    writeFileSync(join(t.config, "ca-config.json"), "{ broken");
    writeFileSync(join(t.config, "req-csr.json"), JSON.stringify({ hosts: ["x y"] }));
    expect((await etcdOn(t, "rbac")).status).toBe(0);
    writeFileSync(join(t.config, "req-calico-cni.json"), JSON.stringify({ CN: "calico-cni", etcd: { read: [""] } }));
    const bad = await etcdOn(t, "rbac");
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain(`${t.config}/req-calico-cni.json: etcd.read[0]`);
    rmSync(t.dir, { recursive: true, force: true });
  });

  test("make rbac writes an executable script once, names users left out, and needs a root user", async () => {
    const t = tempTree({ examples: ["calico-node"] });
    writeFileSync(join(t.config, "req-plain.json"), JSON.stringify({ CN: "plain" }));
    const first = runMake(["rbac"], t);
    expect(first.status).toBe(0);
    const file = join(t.certs, "etcd-rbac.sh");
    expect(mode(file)).toBe(0o755);
    expect(first.stderr).toContain(`rbac: ${t.config}/req-plain.json has no "etcd" block: its user is not created in etcd`);
    const again = await etcdOn(t, "rbac");
    const before = snapshot(t.certs);
    expect(again.stdout).toContain(`rbac: unchanged ${file}`);
    expect(snapshot(t.certs)).toEqual(before);
    // the CA key is not needed (it may be kept offline): make stops without it, make rbac does not
    expect((await tlsOn(t, "build")).status).toBe(0);
    rmSync(join(t.certs, "ca-key.pem"));
    expect((await tlsOn(t, "build")).status).not.toBe(0);
    rmSync(file);
    const noKey = await etcdOn(t, "rbac");
    expect(noKey.status).toBe(0);
    expect(snapshot(t.certs)["etcd-rbac.sh"]).toBe(before["etcd-rbac.sh"]);
    rmSync(join(t.config, "req-root.json"));
    const unchanged = snapshot(t.certs);
    const noRoot = await etcdOn(t, "rbac");
    expect(noRoot.status).not.toBe(0);
    expect(noRoot.stderr).toContain(`${t.config}: no req-<user>.json has the CN "root"`);
    expect(snapshot(t.certs)).toEqual(unchanged);
    rmSync(t.dir, { recursive: true, force: true });
  });
});
