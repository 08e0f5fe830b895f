// make renew on real 10-day certificates: what expires is re-issued from its config, the key kept (or replaced with
// NEW_KEY=1), the CA and every other file untouched byte for byte; openssl judges the new certificates. make renew's
// recipe runs in process (lifecycle.js renew with the Makefile's tree options; WARN_DAYS, NAME, NEW_KEY=1 become
// --warn-days, --name, --new-key); make renew itself is spawned in core-habits.test.ts and lifecycle-timer.test.ts.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sh, snapshot, withTools } from "./helpers";
import { build, certPath, certPubkey, keyPath, keyPubkey, lifecycle, made, opensslNotAfter, shortTree } from "./lifecycle-fixtures";

/** The snapshot without the given certificates' files and stamps. */
function without(snap: Record<string, string>, names: string[]): Record<string, string> {
  const drop = new Set(names.flatMap((n) => [`${n}.pem`, `${n}-key.pem`, `${n}.csr`, `.tls-setup/${n}.json`]));
  return Object.fromEntries(Object.entries(snap).filter(([k]) => !drop.has(k)));
}

const serial = (f: string) => sh("openssl", ["x509", "-in", f, "-noout", "-serial"]).trim();

describe("make renew", () => {
  withTools("openssl")("renews what ends within WARN_DAYS, keeps keys, leaves the CA and the rest byte for byte", async () => {
    const t = await made(shortTree(["calico-node"]));
    const before = snapshot(t.certs);
    const old = { root: serial(certPath(t, "root")), node: serial(certPath(t, "calico-node")) };

    const none = await lifecycle(t, "renew", ["--warn-days", "5"]);
    expect(none.status).toBe(0);
    expect(none.stdout).toMatch(/renew: nothing ends within 5 days; nothing renewed/);
    expect(snapshot(t.certs)).toEqual(before);

    const r = await lifecycle(t, "renew");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/made .*\/root\.pem \(user, key kept\): renewal asked for/);
    expect(r.stdout).toMatch(/made .*\/calico-node\.pem \(user, key kept\): renewal asked for/);
    expect(r.stdout).toMatch(/renew: the CA is unchanged; etcd re-reads its certificate files for each new connection, so etcd needs no restart/);
    // still ten days: the profile is that short, and renew says so
    expect(r.stderr).toMatch(/warning: renewed, but still ending within 30 days .*: .*\/calico-node\.pem \(.*\/root\.pem \(/);
    const after = snapshot(t.certs);
    expect(without(after, ["root", "calico-node"])).toEqual(without(before, ["root", "calico-node"]));
    for (const [n, s] of [["root", old.root], ["calico-node", old.node]]) {
      expect(after[`${n}-key.pem`]).toBe(before[`${n}-key.pem`]);
      expect(serial(certPath(t, n))).not.toBe(s);
      expect(certPubkey(certPath(t, n))).toBe(keyPubkey(keyPath(t, n)));
      expect(sh("openssl", ["verify", "-CAfile", certPath(t, "ca"), certPath(t, n)])).toMatch(/: OK/);
      expect(opensslNotAfter(certPath(t, n)).getTime()).toBeGreaterThan(Date.now() + 9 * 86_400_000);
    }
    // the stamps follow: make has nothing to do, verify passes
    const again = await build(t);
    expect(again.stdout).toMatch(/made 0, unchanged 7/);
    expect((await lifecycle(t, "verify")).status).toBe(0);
  });

  withTools("openssl")("NAME renews one certificate whatever its expiry; NEW_KEY=1 gives it a new key", async () => {
    const t = await made(shortTree());
    const before = snapshot(t.certs);
    const r = await lifecycle(t, "renew", ["--name", "etcd1", "--new-key"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/renewed .*etcd1\.pem: ends .* \(was .*\), new key/);
    const after = snapshot(t.certs);
    expect(without(after, ["etcd1"])).toEqual(without(before, ["etcd1"]));
    expect(after["etcd1-key.pem"]).not.toBe(before["etcd1-key.pem"]);
    expect(after["etcd1-key.pem"].endsWith(" 600")).toBe(true);
    expect(certPubkey(certPath(t, "etcd1"))).toBe(keyPubkey(keyPath(t, "etcd1")));
    const text = sh("openssl", ["x509", "-in", certPath(t, "etcd1"), "-noout", "-ext", "subjectAltName,extendedKeyUsage"]);
    expect(text).toMatch(/DNS:localhost, IP Address:127\.0\.0\.1/);
    expect(text).toMatch(/TLS Web Server Authentication, TLS Web Client Authentication/);
  });

  withTools("openssl")("renew re-issues from the current config (openssl reads the new SAN)", async () => {
    const t = await made(shortTree());
    const cfg = join(t.config, "req-csr.json");
    const v = JSON.parse(readFileSync(cfg, "utf8"));
    v.hosts.push("10.0.0.7");
    writeFileSync(cfg, JSON.stringify(v));
    const r = await lifecycle(t, "renew", ["--name", "etcd2"]);
    expect(r.status).toBe(0);
    expect(sh("openssl", ["x509", "-in", certPath(t, "etcd2"), "-noout", "-ext", "subjectAltName"])).toMatch(/IP Address:10\.0\.0\.7/);
  });

  test("NAME=ca, an unknown NAME or a missing CA: one-line errors, nothing changes", async () => {
    const t = await made(shortTree());
    const before = snapshot(t.certs);
    const ca = await lifecycle(t, "renew", ["--name", "ca"]);
    expect(ca.status).not.toBe(0);
    expect(ca.stderr).toMatch(/^tls-setup: NAME: "ca" is the CA; "make renew" re-issues leaves only; a new CA is "make rotate"/m);
    expect(ca.stderr).not.toMatch(/\n\s+at |Options:/); // one line, no stack, no usage dump
    const unknown = await lifecycle(t, "renew", ["--name", "etcd9"]);
    expect(unknown.stderr).toMatch(/NAME: "etcd9" is not a certificate of this tree; known: etcd1, etcd2, etcd3, proxy1, root/);
    expect(unknown.status).not.toBe(0);
    expect(snapshot(t.certs)).toEqual(before);
    const empty = shortTree();
    const r = await lifecycle(empty, "renew");
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/ca-csr\.json: the CA has to be made first .*"make renew" never makes a CA: run "make"/);
    expect(snapshot(empty.certs)).toEqual({});
  });
});
