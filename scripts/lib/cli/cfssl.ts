// The cfssl contract: `gencert -initca`, `gencert -ca -ca-key -config -profile` and `cfssljson -bare`, as library
// functions. Their JSON is cfssl's: {"cert","csr","key"} on one line.

import { show, UserError } from "../common/errors";
import { parseJsonObject, typeName } from "../config/gojson";
import { loadCaConfig, loadRequest } from "../config/config-files";
import { BUILTIN_CONFIG, selectProfile } from "../config/profile";
import { defaultDeps, IssueDeps, Issued, issueCa, issueLeaf } from "../x509/issue";
import { KeyRef, loadCa } from "../tree/signing-ca";
import { isPkcs11Uri } from "../x509/pkcs11";
import { Bundle, bundlePaths, commitWrites, planBundle } from "../tree/output";
import { existsSync, readFileSync } from "node:fs";
import { parseCertPem } from "../x509/certinfo";
import { publicKeyOfPem } from "../x509/keys";
import { formatDuration } from "../config/duration";

export function cfsslJson(i: Issued): string {
  return JSON.stringify({ cert: i.certPem, csr: i.csrPem, key: i.keyPem }) + "\n";
}

export type Log = (line: string) => void;

export async function initCa(csrFile: string, log: Log, deps: IssueDeps = defaultDeps()): Promise<Issued> {
  const req = loadRequest(csrFile, { allowCa: true });
  log("[INFO] generating a new CA key and certificate from CSR");
  log(`[INFO] generate received request`);
  const issued = await issueCa(req, deps);
  log(`[INFO] signed certificate with serial number ${BigInt("0x" + issued.serialHex).toString()}`);
  return issued;
}

export interface GencertOptions {
  ca?: string;
  caKey?: string;
  config?: string;
  profile?: string;
  csrFile: string;
}

export async function gencert(o: GencertOptions, log: Log, deps: IssueDeps = defaultDeps()): Promise<Issued> {
  if (!o.ca) throw new UserError("-ca: is required; give the CA certificate, e.g. -ca certs/ca.pem (cfssl exits 0 here; we do not)");
  if (!o.caKey) throw new UserError("-ca-key: is required; give the CA private key, e.g. -ca-key certs/ca-key.pem");
  const cfg = o.config ? loadCaConfig(o.config) : BUILTIN_CONFIG;
  const prof = selectProfile(cfg, o.profile, o.config ?? "(built-in config)");
  if (!prof.value) throw UserError.fromProblems(prof.problems);
  const req = loadRequest(o.csrFile);
  // the one CA loader; -ca-key may name a key in a PKCS#11 token (pkcs11:token=...;object=...; module: PKCS11_MODULE,
  // PIN: PKCS11_PIN)
  const key: KeyRef = isPkcs11Uri(o.caKey) ? { kind: "pkcs11", uri: o.caKey, where: "-ca-key" } : { kind: "file", path: o.caKey };
  const { issuer } = await loadCa({ name: "ca", cert: o.ca, key }, deps);
  log("[INFO] generate received request");
  log(`[INFO] received CSR`);
  if (req.hosts.length === 0) log(`[WARNING] ${o.csrFile} has no "hosts": the certificate has no subject alternative names and is not usable as a server certificate`);
  const issued = await issueLeaf(req, prof.value, issuer, deps);
  if (issued.clampedFrom)
    log(`[WARNING] the profile's expiry (${formatDuration(issued.clampedFrom.getTime() - issued.notBefore.getTime())}) outlives the CA: the certificate ends with the CA on ${issued.notAfter.toISOString()}`);
  log(`[INFO] signed certificate with serial number ${BigInt("0x" + issued.serialHex).toString()}`);
  return issued;
}

/** cfssljson -bare: validates the JSON bundle (and that key and cert belong together), then writes it atomically. */
export async function bare(prefix: string, input: string, source: string): Promise<string[]> {
  if (input.trim() === "") throw new UserError(`${source}: is empty; expected cfssl's JSON {"cert","csr","key"} (did the command before the pipe fail?)`);
  const j = parseJsonObject(input, source);
  if (!j.value) throw UserError.fromProblems(j.problems);
  const b: Bundle = {};
  for (const k of ["cert", "key", "csr"] as const) {
    const v = j.value[k];
    if (v === undefined || v === null || v === "") continue;
    if (typeof v !== "string") throw new UserError(`${source}: ${k}: ${show(v)} is ${typeName(v)}; expected a PEM string`);
    b[k] = v;
  }
  if (!b.cert && !b.key && !b.csr) throw new UserError(`${source}: has none of "cert", "key", "csr"; expected cfssl's JSON output`);
  if (b.cert) {
    const facts = parseCertPem(b.cert, `${source}: cert`);
    if (b.key) {
      const key = publicKeyOfPem(b.key, `${source}: key`);
      if (!key.spki.equals(facts.spki)) throw new UserError(`${source}: key: does not belong to the certificate in "cert"; nothing was written`);
    } else if (existsSync(bundlePaths(prefix).key)) {
      // a certificate alone lands beside the key already there: it must be that key's certificate
      const keyFile = bundlePaths(prefix).key;
      const key = publicKeyOfPem(readFileSync(keyFile, "utf8"), keyFile);
      if (!key.spki.equals(facts.spki)) throw new UserError(`${source}: cert: does not belong to the key already in ${keyFile}; nothing was written (give the key too, or remove the old one)`);
    }
  } else if (b.key) {
    publicKeyOfPem(b.key, `${source}: key`);
  }
  if (b.csr && !/-----BEGIN (NEW )?CERTIFICATE REQUEST-----/.test(b.csr)) throw new UserError(`${source}: csr: is not a PEM "CERTIFICATE REQUEST"`);
  const writes = planBundle(prefix, b);
  await commitWrites(writes);
  return writes.map((w) => w.path);
}
