// make secrets: Kubernetes Secret manifests parsed with a real YAML parser (strict: duplicate keys are errors) and
// their data decoded back to the files. make secrets' recipe runs in process (lifecycle.js secrets with the Makefile's
// tree options); make itself is spawned for NAME from the environment and for NAME/SECRET_NAME/SECRET_NAMESPACE.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { spawnSync } from "node:child_process";
import { mode, runMake, sh, snapshot, withOptionalTool } from "./helpers";
import { certPath, keyPath, lifecycle, made, make, shortTree, Tree } from "./lifecycle-fixtures";

/** Parses a manifest strictly: exactly one YAML document, no errors or warnings. */
function parseManifest(file: string): Record<string, any> {
  const docs = parseAllDocuments(readFileSync(file, "utf8"), { strict: true, uniqueKeys: true });
  expect(Array.isArray(docs)).toBe(true);
  const list = docs as ReturnType<typeof parseAllDocuments> & unknown[];
  expect(list).toHaveLength(1);
  expect(list[0].errors).toEqual([]);
  expect(list[0].warnings).toEqual([]);
  return list[0].toJS();
}

function expectSecretOf(t: Tree, user: string, m: Record<string, any>, name: string, namespace: string): void {
  expect(Object.keys(m).sort()).toEqual(["apiVersion", "data", "kind", "metadata", "type"]);
  expect(m.apiVersion).toBe("v1");
  expect(m.kind).toBe("Secret");
  expect(m.type).toBe("Opaque");
  expect(m.metadata).toEqual({
    name,
    namespace,
    labels: { "app.kubernetes.io/managed-by": "tls-setup", "app.kubernetes.io/component": "etcd-client", "tls-setup/etcd-user": user },
  });
  expect(Object.keys(m.data).sort()).toEqual(["etcd-ca", "etcd-cert", "etcd-key"]);
  // base64 as Kubernetes decodes it (standard alphabet, padded), equal to the files byte for byte
  for (const v of Object.values(m.data)) expect(v).toMatch(/^[A-Za-z0-9+/]+={0,2}$/);
  expect(Buffer.from(m.data["etcd-ca"], "base64").equals(readFileSync(certPath(t, "ca")))).toBe(true);
  expect(Buffer.from(m.data["etcd-cert"], "base64").equals(readFileSync(certPath(t, user)))).toBe(true);
  expect(Buffer.from(m.data["etcd-key"], "base64").equals(readFileSync(keyPath(t, user)))).toBe(true);
}

describe("make secrets", () => {
  let t: Tree;
  beforeAll(async () => {
    t = shortTree(["calico-node", "calicoctl"]);
    // a user with etcd's root role: its key is as powerful as root's
    writeFileSync(join(t.config, "req-admin.json"), JSON.stringify({ CN: "admin", etcd: { roles: ["root"] } }));
    await made(t);
  });

  test("one Secret per user in certs/k8s/<user>.yaml, mode 0600, decoding to the files; etcd's root user and role left out, and said so", async () => {
    const r = await lifecycle(t, "secrets");
    expect(r.status).toBe(0);
    const dir = join(t.certs, "k8s");
    expect(readdirSync(dir).sort()).toEqual(["calico-node.yaml", "calicoctl.yaml"]);
    expect(mode(dir)).toBe(0o700);
    for (const user of ["calico-node", "calicoctl"]) {
      const file = join(dir, `${user}.yaml`);
      expect(mode(file)).toBe(0o600);
      expectSecretOf(t, user, parseManifest(file), `etcd-${user}`, "kube-system");
    }
    expect(r.stdout).toContain(`secrets: left out admin ("etcd": {"roles": ["root"]}: the etcd root role; its key can do anything in etcd); write it only if you mean to: make secrets NAME=admin`);
    expect(r.stdout).toContain(`secrets: left out root (CN root: the etcd root user; its key can do anything in etcd); write it only if you mean to: make secrets NAME=root`);
    expect(r.stdout).toContain(`secrets: apply with "kubectl apply -f ${dir}/"`);
    // a second run rewrites nothing
    const before = snapshot(dir);
    expect((await lifecycle(t, "secrets")).stdout).toMatch(/unchanged .*calicoctl\.yaml/);
    expect(snapshot(dir)).toEqual(before);
  });

  test("NAME=root writes root's Secret and says what it holds; then the whole-directory advice is withdrawn", async () => {
    const dir = join(t.certs, "k8s");
    const r = await lifecycle(t, "secrets", ["--name", "root"]);
    expect(r.status).toBe(0);
    expectSecretOf(t, "root", parseManifest(join(dir, "root.yaml")), "etcd-root", "kube-system");
    expect(r.stdout).toContain(`secrets: apply with "kubectl apply -f ${join(dir, "root.yaml")}"; it holds etcd's root key (CN root: the etcd root user) (mode 0600)`);
    const all = await lifecycle(t, "secrets");
    expect(all.status).toBe(0);
    expect(all.stdout).not.toContain("secrets: apply with");
    expect(all.stdout).toContain(`${join(dir, "root.yaml")} (etcd's root key) is also in ${dir}/, so "kubectl apply -f ${dir}/" would upload it`);
  });

  test("NAME only in the environment: refused with one line saying how to pass it; nothing written", () => {
    const before = snapshot(t.certs);
    const r = runMake(["secrets"], t, [], { env: { NAME: "calico-node" } });
    expect(r.status).toBe(2);
    expect(r.stderr.split("\n").filter((l) => l.startsWith("secrets:"))).toEqual(["secrets: NAME came from the environment (NAME=calico-node); pass it on make's command line: make secrets NAME=calico-node; NAME= writes every user but root"]);
    expect(snapshot(t.certs)).toEqual(before);
  });

  test("NAME, SECRET_NAME and SECRET_NAMESPACE: Calico's calico-etcd-secrets for calico-node", () => {
    // spawned: make's wiring of NAME, SECRET_NAME and SECRET_NAMESPACE
    const r = make(t, ["secrets"], ["NAME=calico-node", "SECRET_NAME=calico-etcd-secrets", "SECRET_NAMESPACE=calico-system"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/calico-node\.yaml: Secret calico-etcd-secrets \(user calico-node/);
    expectSecretOf(t, "calico-node", parseManifest(join(t.certs, "k8s", "calico-node.yaml")), "calico-etcd-secrets", "calico-system");
  });

  test("after a renewal the Secret carries the new certificate", async () => {
    expect((await lifecycle(t, "renew", ["--name", "root", "--new-key"])).status).toBe(0);
    expect((await lifecycle(t, "secrets", ["--name", "root"])).stdout).toMatch(/wrote .*root\.yaml/);
    expectSecretOf(t, "root", parseManifest(join(t.certs, "k8s", "root.yaml")), "etcd-root", "kube-system");
  });

  // kubectl is not one of the project's tools (tests/tools.sh); where it is installed it is an extra judge, offline:
  // `kubectl label --local` decodes the file as a v1 Secret, and `kubectl create secret generic --dry-run=client`
  // encodes the same files the way kubectl would.
  withOptionalTool("kubectl")("kubectl reads the manifest and encodes the files the same way", () => {
    const file = join(t.certs, "k8s", "calicoctl.yaml");
    const read = JSON.parse(sh("kubectl", ["label", "--local", "-f", file, "checked=yes", "-o", "json"]));
    const ours = parseManifest(file);
    expect(read).toEqual({ ...ours, metadata: { ...ours.metadata, labels: { ...ours.metadata.labels, checked: "yes" } } });
    const ref = JSON.parse(
      sh("kubectl", ["create", "secret", "generic", "etcd-calicoctl", "-n", "kube-system", `--from-file=etcd-ca=${certPath(t, "ca")}`, `--from-file=etcd-cert=${certPath(t, "calicoctl")}`, `--from-file=etcd-key=${keyPath(t, "calicoctl")}`, "--dry-run=client", "-o", "json"]),
    );
    expect(ours.data).toEqual(ref.data);
    expect([ours.kind, ours.apiVersion, ours.metadata.name, ours.metadata.namespace]).toEqual([ref.kind, ref.apiVersion, ref.metadata.name, ref.metadata.namespace]);
  });

  test("bad names, an unknown user, SECRET_NAME for several users: one-line errors, nothing written", async () => {
    const before = snapshot(t.certs);
    const cases: [string[], RegExp][] = [
      [["--secret-name", "calico-etcd-secrets"], /SECRET_NAME: "calico-etcd-secrets" can name one Secret only, but there are 2 users \(calico-node, calicoctl\); select one with NAME=<user>/],
      [["--namespace", "Kube_System"], /SECRET_NAMESPACE: "Kube_System" is not a Kubernetes namespace name/],
      [["--name", "root", "--secret-name", "Etcd Root"], /SECRET_NAME: "Etcd Root" is not a valid Secret name/],
      [["--name", "etcd1"], /NAME: "etcd1" is not an etcd user of .*; known: admin, calico-node, calicoctl, root/],
    ];
    for (const [vars, msg] of cases) {
      const r = await lifecycle(t, "secrets", vars);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.split("\n").filter((l) => l.startsWith("tls-setup:"))).toHaveLength(1);
    }
    expect(snapshot(t.certs)).toEqual(before);
  });
});
