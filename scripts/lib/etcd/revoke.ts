// Revocation without a full PKI: `make revoke NAME=x` records certs/x.pem's serial in an index beside the CA
// (certs/ca-revoked.json) and re-writes certs/crl.pem and certs/crl.der, a CRL signed by the CA. The index is keyed by the CA (its
// subject and public key), so the serials stay revoked while that CA lives, across re-issued certificates, and a
// new CA (make rotate) starts an empty list. etcd reads the CRL with --client-crl-file / --peer-crl-file: the same
// CRL is written as certs/crl.pem (PEM) and certs/crl.der (DER, the only form etcd 3.6 reads).

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../common/errors";
import { commonName, parseCertPem } from "../x509/certinfo";
import { loadIssuer, readText } from "../x509/ca-load";
import { resolveCaKey } from "../tree/ca-key";
import { buildCrlDer, crlPem } from "../x509/crl";
import { caPaths, certPaths, CA_NAME, commitWrites } from "../tree/output";
import { acquireLock } from "../tree/lock";
import { sha256 } from "../tree/state";
import { discoverTargets, nameProblem, TreeOptions } from "../tree/targets";
import { defaultDeps, IssueDeps } from "../x509/issue";

/** How long a CRL is valid: consumers that check nextUpdate (not etcd) want a fresh one before then. */
export const CRL_VALIDITY_MS = 7 * 24 * 3_600_000;
export const INDEX_VERSION = 1;

export interface RevokedRecord {
  serial: string;
  name: string;
  /** the certificate's CN when it was revoked */
  cn: string;
  revokedAt: string;
}

export interface CaRevocations {
  /** the CA's subject CN, for people reading the file */
  ca: string;
  crlNumber: number;
  revoked: RevokedRecord[];
}

export interface RevocationIndex {
  version: number;
  /** keyed by caKeyId */
  cas: Record<string, CaRevocations>;
}

/** The index, and the CRL twice: PEM (etcd 3.4/3.5 read either) and DER (etcd 3.6's x509.ParseRevocationList reads DER only). */
export const revocationFiles = (certsDir: string) => ({ index: join(certsDir, "ca-revoked.json"), crl: join(certsDir, "crl.pem"), crlDer: join(certsDir, "crl.der") });

/** A CA's identity for the index: SHA-256 of its subject and public key (a CA re-signed with the same key keeps its list). */
export const caKeyId = (subjectDer: Buffer, spki: Buffer): string => sha256(Buffer.concat([subjectDer, spki]));

export function readIndex(file: string): RevocationIndex {
  if (!existsSync(file)) return { version: INDEX_VERSION, cas: {} };
  let v: RevocationIndex;
  try {
    v = JSON.parse(readFileSync(file, "utf8")) as RevocationIndex;
  } catch (e) {
    throw new UserError(`${file}: is not valid JSON (${e instanceof Error ? e.message : e}); it is the revocation index: restore it from a backup`);
  }
  if (v?.version !== INDEX_VERSION || typeof v.cas !== "object" || v.cas === null) throw new UserError(`${file}: is not a tls-setup revocation index (version ${INDEX_VERSION})`);
  return v;
}

export interface RevokeResult {
  /** undefined when only the CRL was refreshed */
  revoked?: { name: string; serial: string; already: boolean };
  crlFile: string;
  /** the same CRL in DER */
  crlDerFile: string;
  count: number;
  nextUpdate: Date;
}

/** The certificate file NAME stands for, or a one-line error saying why there is none. */
function certFileFor(o: TreeOptions, name: string): string {
  const why = nameProblem(name);
  if (why) throw new UserError(`NAME: ${why}`);
  if (name === CA_NAME) throw new UserError(`NAME: "ca" is the CA itself; a CA is not revoked by its own CRL (make a new one with "make rotate")`);
  const file = certPaths(o.certsDir, name).cert;
  if (existsSync(file)) return file;
  const known = discoverTargets(o).targets.map((t) => t.name).filter((n) => n !== CA_NAME);
  if (known.includes(name)) throw new UserError(`${file}: does not exist; there is no certificate of ${JSON.stringify(name)} to revoke`);
  throw new UserError(`NAME: ${JSON.stringify(name)} is not a certificate of this tree; known: ${known.join(", ")}`);
}

export async function revoke(o: TreeOptions, name: string | undefined, opts: { deps?: IssueDeps } = {}): Promise<RevokeResult> {
  const deps = opts.deps ?? defaultDeps();
  const [now, crypto] = [deps.now(), deps.crypto];
  const { cert: caCert } = caPaths(o.certsDir);
  // the CA key: certs/ca-key.pem, or a key in a PKCS#11 token (the CRL is then signed through the token)
  const caKey = resolveCaKey(o);
  const certFile = name === undefined ? undefined : certFileFor(o, name);
  if (!existsSync(caCert)) throw new UserError(`${caCert}: does not exist; make the CA first (make)`);
  const lock = await acquireLock(o.certsDir, { onWait: (pid) => process.stderr.write(`revoke: waiting for another tls-setup run (pid ${pid})\n`) });
  try {
    const { issuer, facts: ca } = await loadIssuer(caCert, caKey.ref, now, crypto, caKey.where);
    if (ca.keyUsageBits && !ca.keyUsageBits.includes(6)) throw new UserError(`${caCert}: its key usage does not allow signing CRLs (no cRLSign)`);
    const files = revocationFiles(o.certsDir);
    const index = readIndex(files.index);
    const id = caKeyId(ca.subjectDer, ca.spki);
    const mine: CaRevocations = index.cas[id] ?? { ca: commonName(ca.subjectDer), crlNumber: 0, revoked: [] };
    let revoked: RevokeResult["revoked"];
    if (certFile !== undefined && name !== undefined) {
      const cert = parseCertPem(readText(certFile, "a certificate (PEM)"), certFile);
      const akid = cert.extensions.get("2.5.29.35");
      const sameKey = !ca.ski || !akid || akid.value.includes(ca.ski);
      if (!cert.issuerDer.equals(ca.subjectDer) || !sameKey) throw new UserError(`${certFile}: was not issued by ${caCert}; a CRL only revokes its own CA's certificates`);
      const already = mine.revoked.some((r) => r.serial === cert.serialHex);
      if (!already) mine.revoked.push({ serial: cert.serialHex, name, cn: commonName(cert.subjectDer), revokedAt: now.toISOString() });
      revoked = { name, serial: cert.serialHex, already };
    }
    mine.crlNumber += 1;
    index.cas[id] = mine;
    const nextUpdate = new Date(Math.min(now.getTime() + CRL_VALIDITY_MS, ca.notAfter.getTime()));
    const der = await buildCrlDer(
      issuer,
      { thisUpdate: now, nextUpdate, number: mine.crlNumber, entries: mine.revoked.map((r) => ({ serialHex: r.serial, revokedAt: new Date(r.revokedAt) })) },
      crypto,
    );
    // the index first: a crash in between leaves a CRL that the next `make revoke` brings up to date
    await commitWrites([{ path: files.index, data: JSON.stringify(index, null, 2) + "\n", mode: 0o644 }]);
    // both forms in one commit: each file is replaced atomically, and a failure writes neither
    await commitWrites([
      { path: files.crlDer, data: der, mode: 0o644 },
      { path: files.crl, data: crlPem(der), mode: 0o644 },
    ]);
    return { revoked, crlFile: files.crl, crlDerFile: files.crlDer, count: mine.revoked.length, nextUpdate };
  } finally {
    lock.release();
  }
}
