// Revocation without a full PKI: `make revoke NAME=x` records certs/x.pem's serial in an index beside the CA
// (certs/ca-revoked.json) and re-writes certs/crl.pem and certs/crl.der, a CRL signed by the signing CA (the root, or
// in intermediate mode the intermediate that issued the leaves). The index is keyed by the CA (its subject and public
// key), so the serials stay revoked while that CA lives, across re-issued certificates; a new root (make rotate)
// starts an empty list, a new intermediate of the same root keeps listing its predecessors' revocations, and the new
// CA of a phased rotation (make ca-rotate-*) keeps listing the old CA's until the old CA ends (retiredCaIds).
// etcd reads the CRL with --client-crl-file / --peer-crl-file: the same CRL is written as certs/crl.pem (PEM) and
// certs/crl.der (DER, the only form etcd 3.6 reads).

import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../common/errors";
import { CertFacts, commonName, parseCertDer, parseCertPem } from "../x509/certinfo";
import { signedBy } from "../x509/chain";
import { readText } from "../x509/ca-load";
import { certBlocks, findSigningCa, inRotation, loadSigningCa, readOneCert, rotationPaths, rotationState } from "../tree/signing-ca";
import { buildCrlDer, crlPem } from "../x509/crl";
import { certPaths, CA_NAME, commitWrites } from "../tree/output";
import { acquireLock } from "../tree/lock";
import { sha256 } from "../tree/state";
import { CaRevocations, readRevocationIndex, RevocationIndex, revocationIndexFile } from "../tree/revoked";
import { discoverTargets, INTERMEDIATE_NAME, isCaRole, nameProblem, TreeOptions } from "../tree/targets";
import { defaultDeps, IssueDeps } from "../x509/issue";

/** How long a CRL is valid: consumers that check nextUpdate (not etcd) want a fresh one before then. */
export const CRL_VALIDITY_MS = 7 * 24 * 3_600_000;
/** The index, and the CRL twice: PEM (etcd 3.4/3.5 read either) and DER (etcd 3.6's x509.ParseRevocationList reads DER only). */
export const revocationFiles = (certsDir: string) => ({ index: revocationIndexFile(certsDir), crl: join(certsDir, "crl.pem"), crlDer: join(certsDir, "crl.der") });

/** A CA's identity for the index: SHA-256 of its subject and public key (a CA re-signed with the same key keeps its list). */
export const caKeyId = (subjectDer: Buffer, spki: Buffer): string => sha256(Buffer.concat([subjectDer, spki]));

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
  if (name === INTERMEDIATE_NAME && findSigningCa(o).parent) throw new UserError(`NAME: "intermediate" is the intermediate CA that signs the CRL; replace it with "make rotate-intermediate" (the root key is needed; every leaf is re-issued)`);
  const file = certPaths(o.certsDir, name).cert;
  if (existsSync(file)) return file;
  const known = discoverTargets(o).value.targets.filter((t) => !isCaRole(t.role)).map((t) => t.name);
  if (known.includes(name)) throw new UserError(`${file}: does not exist; there is no certificate of ${JSON.stringify(name)} to revoke`);
  throw new UserError(`NAME: ${JSON.stringify(name)} is not a certificate of this tree; known: ${known.join(", ")}`);
}

/** The certificate after the leaf in a leaf's file (the intermediate it carries), when there is one. */
function carriedIntermediate(file: string): CertFacts | undefined {
  const der = certBlocks(readText(file, "a certificate (PEM)"))[1];
  try {
    return der ? parseCertDer(der) : undefined;
  } catch {
    return undefined;
  }
}

const rootKeyId = (file: string): string => {
  const r = readOneCert(file, "the root CA certificate");
  return caKeyId(r.subjectDer, r.spki);
};

/**
 * The CAs that ca-rotate-finish retired (certs/archive/ca-DATE-SERIAL/ca.pem), by caKeyId, while they are valid at
 * NOW. Until its restart in the second rolling restart a member still trusts the old CA (etcd reads its trust file
 * at start only), so the new CA's CRL keeps listing the serials revoked under it (intermediate mode: under the old
 * root's intermediates); once the old CA has ended no member accepts its certificates and its serials leave the CRL.
 * (make rotate archives nothing: the CA it replaces leaves the CRL, every member restarting at once; a CA retired
 * earlier by a phased rotation stays on it until it ends: its serials are 159 random bits, keeping them is harmless.)
 */
function retiredCaIds(certsDir: string, now: Date): string[] {
  const base = rotationPaths(certsDir).archive;
  if (!existsSync(base)) return [];
  return readdirSync(base)
    .filter((n) => /^ca-\d{4}-\d{2}-\d{2}-[0-9A-Fa-f]+$/.test(n) && existsSync(join(base, n, "ca.pem")))
    .map((n) => readOneCert(join(base, n, "ca.pem"), "the old CA archived by ca-rotate-finish, whose revoked serials the CRL lists until it ends: restore it from a backup"))
    .filter((ca) => ca.notAfter.getTime() > now.getTime())
    .map((ca) => caKeyId(ca.subjectDer, ca.spki));
}

/**
 * The serials the CRL lists: the signing CA's own revocations and, for an intermediate, those of every earlier
 * intermediate of the same root. Their certificates still chain to the trusted root until they end, and etcd compares
 * serial numbers only, so replacing the intermediate must not un-revoke them (serials are 159 random bits: no clash).
 * Also those of the CAs a phased rotation retired (retiredCaIds), and of the intermediates under them.
 */
function crlEntries(index: RevocationIndex, id: string, rootIds: string[], retired: string[]): { serialHex: string; revokedAt: Date }[] {
  const own = index.cas[id].revoked;
  const under = [...rootIds, ...retired];
  const earlier = Object.entries(index.cas)
    .filter(([k, v]) => k !== id && (retired.includes(k) || (v.root !== undefined && under.includes(v.root))))
    .flatMap(([, v]) => v.revoked);
  const seen = new Set<string>();
  return [...own, ...earlier]
    .filter((r) => !seen.has(r.serial) && seen.add(r.serial))
    .map((r) => ({ serialHex: r.serial, revokedAt: new Date(r.revokedAt) }));
}

export async function revoke(o: TreeOptions, name: string | undefined, opts: { deps?: IssueDeps } = {}): Promise<RevokeResult> {
  const deps = opts.deps ?? defaultDeps();
  const [now, crypto] = [deps.now(), deps.crypto];
  // the CRL is signed by the CA that signs the leaves: the root, or the intermediate
  const signer = findSigningCa(o);
  const caCert = signer.cert;
  const certFile = name === undefined ? undefined : certFileFor(o, name);
  if (!existsSync(caCert)) throw new UserError(`${caCert}: does not exist; make the CA first (make)`);
  const lock = await acquireLock(o.certsDir, { onWait: (pid) => process.stderr.write(`revoke: waiting for another tls-setup run (pid ${pid})\n`) });
  try {
    const { issuer, facts: ca } = await loadSigningCa(signer, { now: () => now, crypto });
    if (ca.keyUsageBits && !ca.keyUsageBits.includes(6)) throw new UserError(`${caCert}: its key usage does not allow signing CRLs (no cRLSign)`);
    const files = revocationFiles(o.certsDir);
    const read = readRevocationIndex(o.certsDir);
    if (!read.value) throw UserError.fromProblems(read.problems);
    const index = read.value;
    const id = caKeyId(ca.subjectDer, ca.spki);
    const rootId = signer.parent ? rootKeyId(signer.parent.cert) : undefined;
    const mine: CaRevocations = index.cas[id] ?? { ca: commonName(ca.subjectDer), crlNumber: 0, revoked: [], root: rootId };
    // a phased CA rotation (README "Rotating the CA"): etcd takes one --client-crl-file and compares serials only, so
    // the one CRL, signed by the signing CA, lists the revoked serials of both CAs of the rotation (intermediate mode:
    // of the intermediates of both roots, the old intermediate's leaves being trusted until the second restart)
    const rs = inRotation(o) ? rotationState(o, false) : undefined;
    const rotationRoots = signer.parent && rs ? [rs.prev, rs.next].flatMap((r) => (r ? [r] : [])) : [];
    const rootIds = [...(rootId ? [rootId] : []), ...rotationRoots.map((r) => caKeyId(r.subjectDer, r.spki))];
    const other = !signer.parent && rs?.prev && rs.next ? [rs.prev, rs.next].find((x) => !x.der.equals(ca.der)) : undefined;
    const otherId = other ? caKeyId(other.subjectDer, other.spki) : undefined;
    let revoked: RevokeResult["revoked"];
    if (certFile !== undefined && name !== undefined) {
      const cert = parseCertPem(readText(certFile, "a certificate (PEM)"), certFile);
      const akid = cert.extensions.get("2.5.29.35");
      const issuedBy = (x: { subjectDer: Buffer; ski?: Buffer }) => cert.issuerDer.equals(x.subjectDer) && (!x.ski || !akid || akid.value.includes(x.ski));
      let list = mine.revoked;
      // intermediate mode during a root rotation: a leaf still under the old root, issued by the intermediate its file carries
      const carried = signer.parent && rotationRoots.length ? carriedIntermediate(certFile) : undefined;
      const carriedRoot = carried && rotationRoots.find((r) => signedBy(carried, r));
      if (!issuedBy(ca) && carried && carriedRoot && issuedBy(carried)) {
        const cid = caKeyId(carried.subjectDer, carried.spki);
        index.cas[cid] ??= { ca: commonName(carried.subjectDer), crlNumber: 0, revoked: [], root: caKeyId(carriedRoot.subjectDer, carriedRoot.spki) };
        list = index.cas[cid].revoked;
      } else if (!issuedBy(ca)) {
        if (!other || !otherId || !issuedBy(other)) throw new UserError(`${certFile}: was not issued by ${caCert}; a CRL only revokes its own CA's certificates`);
        index.cas[otherId] ??= { ca: commonName(other.subjectDer), crlNumber: 0, revoked: [] };
        list = index.cas[otherId].revoked;
      }
      const already = list.some((r) => r.serial === cert.serialHex);
      if (!already) list.push({ serial: cert.serialHex, name, cn: commonName(cert.subjectDer), revokedAt: now.toISOString() });
      revoked = { name, serial: cert.serialHex, already };
    }
    mine.crlNumber += 1;
    index.cas[id] = mine;
    const nextUpdate = new Date(Math.min(now.getTime() + CRL_VALIDITY_MS, ca.notAfter.getTime()));
    const seen = new Set<string>();
    const entries = [...crlEntries(index, id, rootIds, retiredCaIds(o.certsDir, now)), ...(otherId && index.cas[otherId] ? index.cas[otherId].revoked.map((r) => ({ serialHex: r.serial, revokedAt: new Date(r.revokedAt) })) : [])].filter((e) => !seen.has(e.serialHex) && seen.add(e.serialHex));
    const der = await buildCrlDer(
      issuer,
      { thisUpdate: now, nextUpdate, number: mine.crlNumber, entries },
      crypto,
    );
    // the index first: a crash in between leaves a CRL that the next `make revoke` brings up to date
    await commitWrites([{ path: files.index, data: JSON.stringify(index, null, 2) + "\n", mode: 0o644 }]);
    // both forms in one commit: each file is replaced atomically, and a failure writes neither
    await commitWrites([
      { path: files.crlDer, data: der, mode: 0o644 },
      { path: files.crl, data: crlPem(der), mode: 0o644 },
    ]);
    return { revoked, crlFile: files.crl, crlDerFile: files.crlDer, count: entries.length, nextUpdate };
  } finally {
    lock.release();
  }
}
