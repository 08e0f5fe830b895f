// make revoke: the index beside the CA and certs/crl.pem, judged by openssl (signature, entries, revocation check).
// That etcd refuses a revoked certificate is tested in etcd-e2e.test.ts.
import "reflect-metadata";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { X509Crl } from "@peculiar/x509";
import { runMake, sh, snapshot, tempTree } from "./helpers";
import { etcdOn, tlsOn } from "./in-process";
import { parseCertPem } from "../scripts/lib/x509/certinfo";
import { revoke } from "../scripts/lib/etcd/revoke";
import { defaultDeps } from "../scripts/lib/x509/issue";
import { DEFAULT_MEMBERS, DEFAULT_PROXIES } from "../scripts/lib/tree/targets";

const t = tempTree({ examples: ["calicoctl", "calico-node"] });
const c = (f: string) => join(t.certs, f);
const serialOf = (name: string) => sh("openssl", ["x509", "-in", c(`${name}.pem`), "-noout", "-serial"]).trim().replace(/^serial=/, "").toLowerCase();
const crl = () => new X509Crl(readFileSync(c("crl.pem"), "utf8"));
const crlSerials = () => (crl().entries ?? []).map((e) => e.serialNumber.toLowerCase().replace(/^00(?=[89a-f])/, ""));
const index = () => JSON.parse(readFileSync(c("ca-revoked.json"), "utf8"));

/** openssl's verdict on a certificate against the CA and the CRL. */
function verify(name: string): { status: number | null; out: string } {
  const r = spawnSync("openssl", ["verify", "-crl_check", "-CAfile", c("ca.pem"), "-CRLfile", c("crl.pem"), c(`${name}.pem`)], { encoding: "utf8" });
  return { status: r.status, out: r.stdout + r.stderr };
}

/** openssl checks the CRL's signature against certs/ca.pem. */
function crlVerifies(): string {
  const r = spawnSync("openssl", ["crl", "-in", c("crl.pem"), "-CAfile", c("ca.pem"), "-noout", "-verify"], { encoding: "utf8" });
  return `${r.status} ${(r.stdout + r.stderr).trim()}`;
}

// make's, make crl's and make revoke's commands mostly run in process (tests/in-process.ts); spawned make stays for
// the first make revoke NAME= (its wiring and output) and the NAME refusals, which are make's own
beforeAll(async () => {
  expect((await tlsOn(t, "build")).status).toBe(0);
});
afterAll(() => rmSync(t.dir, { recursive: true, force: true }));

test("make crl writes an empty CRL signed by the CA, valid for 7 days", async () => {
  const r = await etcdOn(t, "crl");
  expect(r.status).toBe(0);
  expect(crlVerifies()).toBe("0 verify OK");
  const text = sh("openssl", ["crl", "-in", c("crl.pem"), "-noout", "-text"]);
  expect(text).toContain("No Revoked Certificates");
  expect(text).toMatch(/CRL Number: \s*1\b/);
  const x = crl();
  expect(x.nextUpdate!.getTime() - x.thisUpdate.getTime()).toBe(7 * 24 * 3600_000);
  expect(Math.abs(x.thisUpdate.getTime() - Date.now())).toBeLessThan(10 * 60_000);
  expect(readFileSync(c("crl.pem"), "utf8")).toMatch(/^-----BEGIN X509 CRL-----\n/);
});

test("openssl's CRL check is a real judge: a tampered CRL fails it", () => {
  const good = readFileSync(c("crl.pem"), "utf8");
  const der = Buffer.from(good.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
  der[der.length - 5] ^= 0x01; // inside the signature
  writeFileSync(c("crl.pem"), `-----BEGIN X509 CRL-----\n${der.toString("base64")}\n-----END X509 CRL-----\n`);
  expect(crlVerifies()).not.toContain("verify OK");
  writeFileSync(c("crl.pem"), good);
  expect(crlVerifies()).toBe("0 verify OK");
});

test("make revoke NAME= revokes that certificate only; twice is harmless", async () => {
  const serial = serialOf("calicoctl");
  const r = runMake(["revoke", "NAME=calicoctl"], t);
  expect(r.status).toBe(0);
  expect(r.stdout).toContain(`revoke: calicoctl: serial ${serial} revoked`);
  expect(crlVerifies()).toBe("0 verify OK");
  expect(crlSerials()).toEqual([serial]);
  expect(verify("calicoctl")).toMatchObject({ status: 2, out: expect.stringContaining("certificate revoked") });
  expect(verify("calico-node")).toMatchObject({ status: 0, out: expect.stringContaining("OK") });
  const again = await etcdOn(t, "revoke", "calicoctl");
  expect(again.status).toBe(0);
  expect(again.stdout).toContain("was already revoked");
  expect(crlSerials()).toEqual([serial]);
  const cas = Object.values(index().cas) as { revoked: unknown[]; crlNumber: number }[];
  expect(cas).toHaveLength(1);
  expect(cas[0].revoked).toHaveLength(1);
  expect(cas[0].crlNumber).toBe(3);
});

test("an unknown NAME is a one-line error and changes nothing", async () => {
  const before = snapshot(t.certs);
  for (const [name, msg] of [
    ["nosuch", 'NAME: "nosuch" is not a certificate of this tree; known: etcd1, etcd2, etcd3, proxy1, calico-node, calicoctl, root'],
    ["ca", 'NAME: "ca" is the CA itself'],
    ["../ca", 'NAME: "../ca" is not a safe name'],
  ]) {
    // "../ca" through make (its quoting of NAME on the command line), the others in process
    const r = name === "../ca" ? runMake(["revoke", `NAME=${name}`], t) : await etcdOn(t, "revoke", name);
    expect(r.status).not.toBe(0);
    const lines = r.stderr.split("\n").filter((l) => l.startsWith("tls-setup etcd:"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(msg);
  }
  expect(snapshot(t.certs)).toEqual(before);
});

test("make revoke without NAME, or with NAME only in the environment, is a one-line error that changes nothing", () => {
  const before = snapshot(t.certs);
  const none = runMake(["revoke"], t);
  expect(none.status).toBe(2); // make's code for a failed recipe
  expect(none.stderr.split("\n").filter((l) => l.startsWith("revoke:"))).toEqual(["revoke: give the certificate to revoke: make revoke NAME=calicoctl (make crl only refreshes the CRL)"]);
  const env = runMake(["revoke"], t, [], { env: { NAME: "calicoctl" } });
  expect(env.status).toBe(2);
  expect(env.stderr.split("\n").filter((l) => l.startsWith("revoke:"))).toEqual(["revoke: NAME came from the environment (NAME=calicoctl); pass it on make's command line: make revoke NAME=calicoctl"]);
  // a quote in the environment's NAME reaches no shell unquoted
  const odd = runMake(["revoke"], t, [], { env: { NAME: "x'; touch pwned; '" } });
  expect(odd.status).toBe(2);
  expect(odd.stderr).toContain("(NAME=x'; touch pwned; ')");
  // the script alone refuses too
  const script = spawnSync(process.execPath, [join(__dirname, "..", "dist", "etcd.js"), "revoke", "--config-dir", t.config, "--certs-dir", t.certs], { encoding: "utf8" });
  expect(script.status).toBe(1);
  expect(script.stderr.trim()).toBe(`tls-setup etcd: NAME: is missing; give the certificate to revoke: make revoke NAME=calicoctl (a name in ${t.certs}); make crl only refreshes the CRL`);
  expect(existsSync(join(__dirname, "..", "pwned"))).toBe(false);
  expect(snapshot(t.certs)).toEqual(before);
});

test("a re-issued certificate has a new serial; the old one stays revoked", async () => {
  const old = serialOf("calicoctl");
  unlinkSync(c("calicoctl.pem"));
  expect((await tlsOn(t, "build")).status).toBe(0);
  const renewed = serialOf("calicoctl");
  expect(renewed).not.toBe(old);
  expect((await etcdOn(t, "crl")).status).toBe(0);
  expect(crlSerials()).toEqual([old]);
  expect(verify("calicoctl").status).toBe(0);
  expect((await etcdOn(t, "revoke", "calicoctl")).status).toBe(0);
  expect(crlSerials().sort()).toEqual([old, renewed].sort());
});

test("the CRL never outlives the CA", async () => {
  const ca = parseCertPem(readFileSync(c("ca.pem"), "utf8"), "ca.pem");
  const now = new Date(ca.notAfter.getTime() - 24 * 3600_000);
  const r = await revoke({ configDir: t.config, certsDir: t.certs, members: DEFAULT_MEMBERS, proxies: DEFAULT_PROXIES }, undefined, { deps: { ...defaultDeps(), now: () => now } });
  expect(r.nextUpdate).toEqual(ca.notAfter);
  expect(crl().nextUpdate).toEqual(ca.notAfter);
});

test("a new CA (make rotate) starts a new, empty CRL; the old CA's list is kept in the index", async () => {
  // make rotate's and make crl's commands
  expect((await tlsOn(t, "build", "--rotate")).status).toBe(0);
  expect((await etcdOn(t, "crl")).status).toBe(0);
  expect(crlVerifies()).toBe("0 verify OK");
  expect(crlSerials()).toEqual([]);
  const cas = Object.values(index().cas) as { revoked: unknown[]; crlNumber: number }[];
  expect(cas.map((x) => x.revoked.length).sort()).toEqual([0, 2]);
});
