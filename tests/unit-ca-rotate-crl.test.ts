// A certificate revoked before or during a phased CA rotation stays on the CRL after ca-rotate-finish (etcd/revoke.ts
// retiredCaIds): members not yet restarted in the second rolling restart still trust the old CA, and etcd compares the
// CRL's serials only. Root mode (the make lines run in process as the Makefile's recipes run them, inspect through
// make) and intermediate mode (through make, as the README tells it; a second revoke, prune and crl in process): revoke
// a user before ca-rotate-start and another during the rotation (before the re-issue), remove their configs (make
// prune), rotate; then the CRL (certs/crl.pem and certs/crl.der), signed by the new signing CA, lists both old serials,
// and keeps them through a later make revoke; once the old CA has ended they leave it; an unreadable archived old CA
// stops make crl with one line and changes nothing. Judges: openssl (crl -text of the PEM and the DER, crl -CAfile for
// the signature, verify -crl_check of a new leaf) and make verify. (openssl verify -crl_check cannot judge an OLD
// certificate against this CRL: it wants the CRL signed by the certificate's own issuer key, which signs no more; etcd,
// which compares serials only, is the judge of that refusal in tests/etcd-ca-rotate-live.test.ts.)
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describeWith, FIXTURES, runMake, sh, snapshot, tempTree } from "./helpers";
import type { Run } from "./helpers";
import { makeInProcess } from "./in-process";
import { revoke } from "../scripts/lib/etcd/revoke";
import { defaultDeps } from "../scripts/lib/x509/issue";
import { parseCertPem } from "../scripts/lib/x509/certinfo";
import { TreeOptions } from "../scripts/lib/tree/targets";

type Tree = ReturnType<typeof tempTree>;
const trees: Tree[] = [];
afterAll(() => trees.forEach((t) => rmSync(t.dir, { recursive: true, force: true })));
const opts = (t: Tree): TreeOptions => ({ configDir: t.config, certsDir: t.certs, members: ["etcd1", "etcd2", "etcd3"], proxies: ["proxy1"] });

const serialOf = (file: string) => sh("openssl", ["x509", "-noout", "-serial", "-in", file]).trim().replace("serial=", "").toUpperCase();
/** The serials openssl reads in the CRL, PEM and DER. */
const listed = (t: Tree) => {
  const serials = (text: string) => [...text.matchAll(/Serial Number: ([0-9A-F]+)/g)].map((m) => m[1]).sort();
  return {
    pem: serials(sh("openssl", ["crl", "-in", join(t.certs, "crl.pem"), "-noout", "-text"])),
    der: serials(sh("openssl", ["crl", "-inform", "DER", "-in", join(t.certs, "crl.der"), "-noout", "-text"])),
  };
};
/** openssl's verdict on the CRL's signature with CAFILE ("verify OK" / "verify failure"). */
const crlSignedBy = (t: Tree, caFile: string) => {
  const r = spawnSync("openssl", ["crl", "-in", join(t.certs, "crl.pem"), "-noout", "-CAfile", caFile], { encoding: "utf8" });
  return /verify OK/.test(`${r.stdout}${r.stderr}`) && !/verify fail/i.test(`${r.stdout}${r.stderr}`);
};

/** A make line run one of two ways: through make itself, or in process as the Makefile's recipe runs it. */
type Maker = (t: Tree, args: string[]) => Promise<Run>;
const viaMake: Maker = async (t, args) => runMake(args, t);
/** The make lines of the root-mode test, in process, as the Makefile's recipes run them (makeInProcess); the
 * intermediate-mode test runs them through make itself. */
const inProcess: Maker = (t, args) => makeInProcess(args, t);

async function ok(t: Tree, args: string[], make: Maker = viaMake) {
  const r = await make(t, args);
  expect([args.join(" "), r.status, r.stderr]).toEqual([args.join(" "), 0, expect.not.stringMatching(/error|tls-setup \w+:/i)]);
  return r;
}

/** make revoke NAME=name, its certificate kept aside, then its config removed and its files pruned (README). */
async function revokeAndRemove(t: Tree, name: string, make: Maker = viaMake): Promise<{ file: string; serial: string }> {
  await ok(t, ["revoke", `NAME=${name}`], make);
  const file = join(t.dir, `revoked-${name}.pem`);
  cpSync(join(t.certs, `${name}.pem`), file);
  unlinkSync(join(t.config, `req-${name}.json`));
  await ok(t, ["prune"], make);
  return { file, serial: serialOf(file) };
}

/** The rotation as the README tells it, with one user revoked before ca-rotate-start and one during it. */
async function rotateWithRevocations(t: Tree) {
  await ok(t, []);
  const before = await revokeAndRemove(t, "calico-node");
  await ok(t, ["ca-rotate-start"]);
  // the second revoke and prune in process (the first ran through make)
  const during = await revokeAndRemove(t, "calicoctl", inProcess);
  await ok(t, ["ca-rotate-reissue"]);
  await ok(t, ["ca-rotate-finish"]);
  expect(runMake(["ca-rotate-status"], t).stdout).toMatch(/step: none/);
  return { before, during };
}

describeWith("openssl")("a certificate revoked before or during a phased CA rotation stays revoked after ca-rotate-finish", () => {
  test("root mode: the new CA's CRL lists the old CA's revocations until the old CA ends", async () => {
    const t = tempTree({ examples: ["calico-node", "calicoctl", "kube-apiserver"] });
    trees.push(t);
    // the old CA ends within a year; the new one (ca-csr.json changed before the rotation) in five
    const csr = join(t.config, "ca-csr.json");
    const csrText = readFileSync(csr, "utf8");
    writeFileSync(csr, csrText.replace('"43800h"', '"8760h"'));
    await ok(t, [], inProcess);
    const oldCa = parseCertPem(readFileSync(join(t.certs, "ca.pem"), "utf8"), "ca.pem");
    const before = await revokeAndRemove(t, "calico-node", inProcess);
    writeFileSync(csr, csrText);
    await ok(t, ["ca-rotate-start"], inProcess);
    const during = await revokeAndRemove(t, "calicoctl", inProcess);
    await ok(t, ["ca-rotate-reissue"], inProcess);
    await ok(t, ["ca-rotate-finish"], inProcess);
    const c = (f: string) => join(t.certs, f);
    const archived = readdirSync(c("archive")).filter((d) => d.startsWith("ca-"));
    expect(archived).toHaveLength(1);
    const oldCaFile = join(c("archive"), archived[0], "ca.pem");
    expect(serialOf(oldCaFile)).toBe(oldCa.serialHex.toUpperCase());
    // the CRL: signed by the new CA (ca.pem alone now), not the old; both old serials, PEM and DER alike
    expect([crlSignedBy(t, c("ca.pem")), crlSignedBy(t, oldCaFile)]).toEqual([true, false]);
    expect(listed(t)).toEqual({ pem: [before.serial, during.serial].sort(), der: [before.serial, during.serial].sort() });
    // a later revocation (of a certificate of the new CA) keeps them; make verify is content
    const apiserver = serialOf(c("kube-apiserver.pem"));
    await ok(t, ["revoke", "NAME=kube-apiserver"], inProcess);
    const three = [before.serial, during.serial, apiserver].sort();
    expect(listed(t)).toEqual({ pem: three, der: three });
    expect(crlSignedBy(t, c("ca.pem"))).toBe(true);
    expect((await ok(t, ["verify"], inProcess)).stdout).toMatch(/verify: ok: .*\(and the CRL\)/);
    // inspect NAME= through make itself (the rest of this test runs in process; the next test runs every line through make)
    expect((await ok(t, ["inspect", "NAME=kube-apiserver"])).stdout).toContain("kube-apiserver");
    // once the old CA has ended no member accepts its certificates: a CRL made after that lists the new CA's only
    const later = new Date(oldCa.notAfter.getTime() + 86_400_000);
    const r = await revoke(opts(t), undefined, { deps: { ...defaultDeps(), now: () => later } });
    expect(r.count).toBe(1);
    expect(listed(t)).toEqual({ pem: [apiserver], der: [apiserver] });
    expect(crlSignedBy(t, c("ca.pem"))).toBe(true);
  }, 90_000);

  test("intermediate mode: the new intermediate's CRL lists the serials revoked under the old root's intermediate", async () => {
    const t = tempTree({ examples: ["calico-node", "calicoctl", "kube-apiserver"] });
    trees.push(t);
    cpSync(join(FIXTURES, "examples", "intermediate-csr.json"), join(t.config, "intermediate-csr.json"));
    const { before, during } = await rotateWithRevocations(t);
    const c = (f: string) => join(t.certs, f);
    const oldIm = readdirSync(c("archive")).filter((d) => d.startsWith("intermediate-"));
    expect(oldIm).toHaveLength(1);
    const oldImFile = join(c("archive"), oldIm[0], "intermediate.pem");
    expect([crlSignedBy(t, c("intermediate.pem")), crlSignedBy(t, oldImFile)]).toEqual([true, false]);
    expect(listed(t)).toEqual({ pem: [before.serial, during.serial].sort(), der: [before.serial, during.serial].sort() });
    const apiserver = serialOf(c("kube-apiserver.pem"));
    await ok(t, ["revoke", "NAME=kube-apiserver"], inProcess);
    const three = [before.serial, during.serial, apiserver].sort();
    expect(listed(t)).toEqual({ pem: three, der: three });
    expect((await ok(t, ["verify"])).stdout).toMatch(/verify: ok: .*\(and the CRL\)/);
    // the new leaf revoked: openssl -crl_check with the new chain says so
    const check = spawnSync("openssl", ["verify", "-crl_check", "-CAfile", c("ca.pem"), "-untrusted", c("intermediate.pem"), "-CRLfile", c("crl.pem"), c("kube-apiserver.pem")], { encoding: "utf8" });
    expect([check.status, `${check.stdout}${check.stderr}`]).toEqual([2, expect.stringMatching(/certificate revoked/)]);
    // the archived old root unreadable: make crl stops with one line naming it, and changes nothing
    const archivedRoot = join(c("archive"), readdirSync(c("archive")).find((d) => d.startsWith("ca-"))!, "ca.pem");
    const good = readFileSync(archivedRoot);
    writeFileSync(archivedRoot, "not a certificate\n");
    const files = snapshot(t.certs);
    const bad = runMake(["crl"], t);
    expect([bad.status === 0, bad.stderr.split("\n").filter((l) => l.startsWith("tls-setup"))]).toEqual([false, [expect.stringContaining(`${archivedRoot}: holds 0 certificates; expected exactly one`)]]);
    expect(snapshot(t.certs)).toEqual(files);
    writeFileSync(archivedRoot, good);
    await ok(t, ["crl"], inProcess);
    expect(listed(t)).toEqual({ pem: three, der: three });
  }, 90_000);
});
