// Which variable names which CA's key, and which record holds it (tree/ca-key.ts), without a token: CA_KEY is the
// signing CA's key (the root's in root mode, the intermediate's in intermediate mode), ROOT_KEY the root's in
// intermediate mode, NEXT_CA_KEY the new CA's of a phased rotation; the old ca-key.ref stays the root's record.
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FIXTURES, tempTree } from "./helpers";
import { keyRecordFile, nextObjectUri, resolveCaKey, resolveIntermediateKey, resolveNextCaKey } from "../scripts/lib/tree/ca-key";
import { findSigningCa } from "../scripts/lib/tree/signing-ca";
import { TreeOptions } from "../scripts/lib/tree/targets";
import { parsePkcs11Uri } from "../scripts/lib/x509/pkcs11";

const MOD = "/usr/lib/softhsm/libsofthsm2.so";
const opts = (t: { config: string; certs: string }, extra: Partial<TreeOptions> = {}): TreeOptions => ({ configDir: t.config, certsDir: t.certs, members: ["etcd1"], proxies: [], pkcs11Module: MOD, ...extra });
const intermediateOn = (t: { config: string }) => copyFileSync(join(FIXTURES, "examples", "intermediate-csr.json"), join(t.config, "intermediate-csr.json"));
const writeRecord = (certs: string, file: string, uri: string) => {
  mkdirSync(join(certs, ".tls-setup"), { recursive: true });
  writeFileSync(join(certs, ".tls-setup", file), JSON.stringify({ uri, module: MOD }));
};

describe("root mode", () => {
  const t = tempTree();
  it("CA_KEY names the one CA's key; without it, the key file", () => {
    expect(resolveCaKey(opts(t)).ref).toBe(join(t.certs, "ca-key.pem"));
    const k = resolveCaKey(opts(t, { caKey: "pkcs11:token=etcd-ca;object=ca" }));
    expect([k.variable, k.ref]).toEqual(["CA_KEY", `pkcs11:token=etcd-ca;object=ca?module-path=${MOD}`]);
    expect(findSigningCa(opts(t, { caKey: "pkcs11:token=etcd-ca;object=ca" })).key).toEqual({ kind: "pkcs11", uri: k.ref, where: "CA_KEY" });
  });
  it("ROOT_KEY is refused unless it says what CA_KEY says", () => {
    expect(() => resolveCaKey(opts(t, { rootKey: "pkcs11:token=etcd-ca;object=r" }))).toThrow(/^ROOT_KEY: names the root's key in intermediate mode only; this tree has one CA .*use CA_KEY='pkcs11:token=etcd-ca;object=r'$/);
    expect(resolveCaKey(opts(t, { caKey: "pkcs11:token=etcd-ca;object=r", rootKey: "pkcs11:object=r;token=etcd-ca" })).variable).toBe("CA_KEY");
  });
  it("NEXT_CA_KEY, else ca-next-key.ref, else certs/ca-next-key.pem", () => {
    expect(resolveNextCaKey(opts(t)).ref).toBe(join(t.certs, "ca-next-key.pem"));
    expect(() => resolveNextCaKey(opts(t, { nextCaKey: "certs/x.pem" }))).toThrow(/^NEXT_CA_KEY: "certs\/x.pem" is not a PKCS#11 URI/);
    writeRecord(t.certs, "ca-next-key.ref", "pkcs11:token=etcd-ca;object=ca-2");
    const k = resolveNextCaKey(opts(t, { pkcs11Module: undefined }));
    expect([k.where, k.token?.recorded, k.token?.modulePath]).toEqual([keyRecordFile(t.certs, "ca-next"), true, MOD]);
  });
});

describe("intermediate mode", () => {
  const t = tempTree();
  intermediateOn(t);
  it("CA_KEY names the intermediate's key, ROOT_KEY the root's; without them, the key files", () => {
    expect(resolveIntermediateKey(opts(t)).ref).toBe(join(t.certs, "intermediate-key.pem"));
    expect(resolveCaKey(opts(t, { caKey: "pkcs11:token=etcd-ca;object=im" })).ref).toBe(join(t.certs, "ca-key.pem"));
    const s = findSigningCa(opts(t, { caKey: "pkcs11:token=etcd-ca;object=im", rootKey: "pkcs11:token=etcd-ca;object=root" }));
    expect(s.key).toEqual({ kind: "pkcs11", uri: `pkcs11:token=etcd-ca;object=im?module-path=${MOD}`, where: "CA_KEY" });
    expect(s.parent?.key).toEqual({ kind: "pkcs11", uri: `pkcs11:token=etcd-ca;object=root?module-path=${MOD}`, where: "ROOT_KEY" });
  });
  it("the records: ca-key.ref stays the root's, intermediate-key.ref is the intermediate's; the module of one serves the other", () => {
    writeRecord(t.certs, "ca-key.ref", "pkcs11:token=etcd-ca;object=root");
    const s = findSigningCa(opts(t, { pkcs11Module: undefined }));
    expect(s.key).toEqual({ kind: "file", path: join(t.certs, "intermediate-key.pem") });
    expect(s.parent?.key).toMatchObject({ kind: "pkcs11", where: keyRecordFile(t.certs, "ca") });
    // a new CA_KEY needs no PKCS11_MODULE when another record names the module
    expect(resolveIntermediateKey(opts(t, { caKey: "pkcs11:token=etcd-ca;object=im", pkcs11Module: undefined })).token?.modulePath).toBe(MOD);
    writeRecord(t.certs, "intermediate-key.ref", "pkcs11:token=etcd-ca;object=im");
    expect(findSigningCa(opts(t, { pkcs11Module: undefined })).key).toMatchObject({ kind: "pkcs11", where: keyRecordFile(t.certs, "intermediate") });
  });
  it("the root's token key is refused as the intermediate's", () => {
    expect(() => resolveIntermediateKey(opts(t, { caKey: "pkcs11:token=etcd-ca;object=root" }))).toThrow(/^CA_KEY: pkcs11:token=etcd-ca;object=root: is the root CA's key \(.*ca-key\.ref\); in intermediate mode CA_KEY names the intermediate's own key: .*CA_KEY='pkcs11:token=etcd-ca;object=intermediate'.*ROOT_KEY$/);
  });
});

it("the object a refusal suggests: ca -> ca-2, ca-2 -> ca-3, the id dropped", () => {
  expect(nextObjectUri(parsePkcs11Uri("pkcs11:token=etcd-ca;object=ca", "X"))).toBe("pkcs11:token=etcd-ca;object=ca-2");
  expect(nextObjectUri(parsePkcs11Uri("pkcs11:token=etcd-ca;object=ca-2;id=%01?module-path=/x.so", "X"))).toBe("pkcs11:token=etcd-ca;object=ca-3");
});
