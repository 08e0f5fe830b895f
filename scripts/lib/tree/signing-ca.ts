// The one notion of "the signing CA": which CA signs the leaves (and the CRL), where its certificate and key are,
// which certificates follow each leaf in the leaf's .pem, and which file members, proxies and clients trust.
//
//   root mode (the default):    the root certs/ca.pem signs; no chain; trust certs/ca.pem
//   intermediate mode (opt-in:  certs/intermediate.pem, signed by the root, signs; each leaf's .pem carries the
//   config/intermediate-csr.json) leaf then certs/intermediate.pem; trust certs/ca.pem (the root only)
//
// Everything that signs (build, renew through build, the CRL) or asks "which CA issued the leaves / what is trusted"
// (the planner, verify, check-expiration, secrets, renew) goes through findSigningCa, and every CA key is loaded by
// loadCa, the single place a key reference becomes a signer (a PKCS#11 key plugs in there).

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../common/errors";
import { CertFacts, parseCertDer } from "../x509/certinfo";
import { ekuOpensslName, missingRoleEkus } from "../config/profile";
import { children, content, readNode, TAG } from "../x509/der";
import { caCertFaults, signedBy } from "../x509/chain";
import { loadIssuer, readText } from "../x509/ca-load";
import { Issuer } from "../x509/issue";
import { CryptoProvider } from "../x509/keys";
import { parsePemBlocks, toPem } from "../x509/pem";
import { caPaths, certPaths } from "./output";
import { readRevoked } from "./revoked";
import { CaKey, resolveCaKey, resolveIntermediateKey, resolveNextCaKey } from "./ca-key";
import { discoverTargets, INTERMEDIATE_NAME, intermediateMode, isCaRole, TreeOptions } from "./targets";

/**
 * Where a CA's private key is: a PEM file, or an object in a PKCS#11 token named by an RFC 7512 URI (with its module
 * path; `where` says where the URI came from, CA_KEY or the record, for messages).
 */
export type KeyRef = { kind: "file"; path: string } | { kind: "pkcs11"; uri: string; where: string };

/** A CA of the tree: its name (the stamp and file name), its certificate file and its key. */
export interface CaRef {
  name: string;
  /** its own certificate file (exactly one certificate) */
  cert: string;
  key: KeyRef;
}

export interface SigningCa extends CaRef {
  /** certificate files whose certificates follow each leaf in the leaf's .pem: [certs/intermediate.pem] or [] */
  chain: string[];
  /** the trust file members, proxies and clients read (--trusted-ca-file, etcd-ca): certs/ca.pem, the root only (during a phased rotation: the bundle old + new) */
  trust: string;
  /** the CA that signs this one (the root, for the intermediate); undefined for a root */
  parent?: CaRef;
}

export { intermediateMode };

const fileKey = (path: string): KeyRef => ({ kind: "file", path });

/** A CA's key (tree/ca-key.ts) as the reference loadCa takes: its key file, or its token key. */
export const keyRefOf = (ck: CaKey): KeyRef => (ck.token ? { kind: "pkcs11", uri: ck.ref, where: ck.where } : fileKey(ck.ref));

/**
 * The root CA: certs/ca.pem and its key: certs/ca-key.pem, or the key in a PKCS#11 token (CA_KEY in root mode,
 * ROOT_KEY in intermediate mode, or the record). During a phased CA rotation (rotationState) certs/ca.pem is the
 * trust bundle, so the root that signs is the old CA's own copy certs/ca-prev.pem (its key as above) until the
 * re-issue begins, then the new CA certs/ca-next.pem (key certs/ca-next-key.pem, or the token key NEXT_CA_KEY named).
 * In intermediate mode this is the root that signs (and checks) the intermediate.
 */
export function rootCa(o: TreeOptions, ck?: CaKey): CaRef {
  const p = caPaths(o.certsDir);
  const rot = rotationSigner(o, ck);
  if (rot) return { name: "ca", cert: rot.cert, key: rot.key };
  return { name: "ca", cert: p.cert, key: keyRefOf(ck ?? resolveCaKey(o)) };
}

// ---- the phased CA rotation (make ca-rotate-start / -reissue / -finish / -status), read from the files alone ----
//
//   none       no certs/ca-next.pem: no rotation (stray ca-next-key.pem / ca-next.csr of an interrupted start are
//              overwritten by the next start)
//   starting   ca-next.pem exists but ca.pem is still the old CA alone: start was interrupted; run it again
//   started    ca.pem = ca-prev.pem + ca-next.pem (the bundle); every leaf still signed by the old CA
//   reissuing  the bundle; some leaves signed by the new CA: reissue was interrupted; run it again
//   reissued   the bundle; every leaf signed by the new CA
//   finishing  ca.pem no longer the bundle but ca-next.pem still there: finish was interrupted; run it again
//
// In intermediate mode the two CAs are roots and the intermediate signs throughout: until the re-issue begins the old
// intermediate (signed by the old root ca-prev.pem) signs; the re-issue makes a new intermediate signed by the new
// root ca-next.pem, which then signs. A leaf counts as "new" when its chain leads to ca-next.pem: the intermediate
// carried after it in its file issued it and was signed by ca-next.pem ("old": signed by ca-prev.pem). The
// intermediate itself counts too: once certs/intermediate.pem is signed by the new root the re-issue has begun.

export type RotationStep = "none" | "starting" | "started" | "reissuing" | "reissued" | "finishing";

export const ROTATION_NEXT = "ca-next";

/** The rotation's files: the old CA's own certificate, the new CA's bundle, the archive folder. */
export function rotationPaths(certsDir: string) {
  return { prev: join(certsDir, "ca-prev.pem"), next: certPaths(certsDir, ROTATION_NEXT), trust: caPaths(certsDir), archive: join(certsDir, "archive") };
}

/** Which root a certificate leads to during a rotation. */
export type RootBy = "old" | "new" | "other" | "missing";

export interface RotationLeaf {
  name: string;
  file: string;
  /** "revoked": a leaf still under the old CA whose certificate is revoked (make revoke): never re-issued by itself,
   * so the rotation does not wait for it; it dies with the old CA's trust at ca-rotate-finish */
  by: RootBy | "revoked";
}

export interface RotationState {
  step: RotationStep;
  /** intermediate mode: which root signed certs/intermediate.pem ("new": the re-issue has begun) */
  intermediate?: RootBy;
  /** the old CA (ca-prev.pem) and the new one (ca-next.pem), when present */
  prev?: CertFacts;
  next?: CertFacts;
  /** the certificates of the trust file ca.pem */
  trust: CertFacts[];
  leaves: RotationLeaf[];
  /** the files do not form any step (a bundle edited by hand, ca-prev.pem missing): one line */
  problem?: string;
}

const readCerts = (file: string): CertFacts[] => {
  try {
    return certBlocks(readFileSync(file, "utf8")).map((d) => parseCertDer(d));
  } catch {
    return [];
  }
};

/** Which step of a CA rotation the tree is in, from its files (which CAs ca.pem holds, which CA signed each leaf). */
export function rotationState(o: TreeOptions, withLeaves = true): RotationState {
  const rp = rotationPaths(o.certsDir);
  if (!existsSync(rp.next.cert)) return { step: "none", trust: [], leaves: [] };
  const next = readCerts(rp.next.cert)[0];
  const prev = existsSync(rp.prev) ? readCerts(rp.prev)[0] : undefined;
  const trust = readCerts(rp.trust.cert);
  const base = { prev, next, trust, leaves: [] as RotationLeaf[] };
  if (!next) return { ...base, step: "none", problem: `${rp.next.cert}: holds no readable certificate; restore it from a backup or remove ${rp.next.cert} to start the rotation again` };
  const isNext = (c: CertFacts) => c.der.equals(next.der);
  const isPrev = (c: CertFacts) => !!prev && c.der.equals(prev.der);
  if (trust.length === 1 && isPrev(trust[0])) return { ...base, step: "starting" };
  if (trust.length <= 1 && (trust.length === 0 || isNext(trust[0]))) return { ...base, step: "finishing" };
  if (!prev) return { ...base, step: "started", problem: `${rp.prev}: is missing; it holds the old CA's own certificate during a CA rotation; restore it (the first certificate of ${rp.trust.cert})` };
  if (trust.length !== 2 || !isPrev(trust[0]) || !isNext(trust[1]))
    return { ...base, step: "started", problem: `${rp.trust.cert}: holds ${trust.length} certificate(s), not the rotation's bundle (${rp.prev} then ${rp.next.cert}); edited by hand? restore it: cat ${rp.prev} ${rp.next.cert} > ${rp.trust.cert}` };
  // which root a certificate leads to: signed by it, or (intermediate mode) by the intermediate carried after it
  const byRoot = (c: CertFacts | undefined): RootBy => (!c ? "missing" : signedBy(c, next) ? "new" : signedBy(c, prev) ? "old" : "other");
  const im = intermediateMode(o);
  const imFile = certPaths(o.certsDir, INTERMEDIATE_NAME).cert;
  const intermediate = im ? byRoot(existsSync(imFile) ? readCerts(imFile)[0] : undefined) : undefined;
  const leaves: RotationLeaf[] = [];
  if (withLeaves) {
    const revoked = readRevoked(o.certsDir).value ?? new Map();
    for (const t of discoverTargets(o).value.targets) {
      if (isCaRole(t.role)) continue;
      const file = certPaths(o.certsDir, t.name).cert;
      const [c, carried] = existsSync(file) ? readCerts(file) : [];
      const by: RootBy = !im ? byRoot(c) : !c ? "missing" : carried && signedBy(c, carried) ? byRoot(carried) : "other";
      leaves.push({ name: t.name, file, by: by !== "new" && c && revoked.has(c.serialHex) ? "revoked" : by });
    }
  }
  const byNew = leaves.filter((l) => l.by === "new").length + (intermediate === "new" ? 1 : 0);
  const allNew = leaves.every((l) => l.by === "new" || l.by === "missing" || l.by === "revoked") && (!im || intermediate === "new");
  const step: RotationStep = byNew === 0 ? "started" : allNew ? "reissued" : "reissuing";
  return { ...base, intermediate, leaves, step };
}

/**
 * The CA that signs during a rotation (undefined outside one): the old CA until the re-issue begins (its key: the
 * root's, `ck`), then the new (its key: ca-next-key.pem, or the token key recorded by ca-rotate-start).
 */
function rotationSigner(o: TreeOptions, ck?: CaKey): { cert: string; key: KeyRef } | undefined {
  const rp = rotationPaths(o.certsDir);
  if (!existsSync(rp.next.cert)) return undefined;
  const s = o.rotationSigner === "new" ? undefined : rotationState(o);
  if (s && (s.step === "none" || s.step === "starting" || s.problem)) return undefined;
  if (s && s.step === "started") return { cert: rp.prev, key: keyRefOf(ck ?? resolveCaKey(o)) };
  return { cert: rp.next.cert, key: keyRefOf(resolveNextCaKey(o)) };
}

/** Whether the tree is between ca-rotate-start and the end of ca-rotate-finish (its ca.pem is not the signing root's). */
export function inRotation(o: TreeOptions): boolean {
  return rotationSigner(o) !== undefined;
}

/** The intermediate CA: certs/intermediate.pem and its key: certs/intermediate-key.pem, or a token key (CA_KEY or its record). */
export function intermediateCa(o: TreeOptions, ik: CaKey = resolveIntermediateKey(o)): CaRef {
  return { name: INTERMEDIATE_NAME, cert: certPaths(o.certsDir, INTERMEDIATE_NAME).cert, key: keyRefOf(ik) };
}

/** The CA that signs the tree's leaves and CRL, with its chain and the trust file. `keys`: the CAs' keys, when resolved already. */
export function findSigningCa(o: TreeOptions, keys: { root?: CaKey; intermediate?: CaKey } = {}): SigningCa {
  const root = rootCa(o, keys.root);
  // the trust file is always certs/ca.pem (during a phased rotation the bundle, while the root that signs is its own file)
  if (!intermediateMode(o)) return { ...root, chain: [], trust: caPaths(o.certsDir).cert };
  const im = intermediateCa(o, keys.intermediate);
  return { ...im, chain: [im.cert], trust: caPaths(o.certsDir).cert, parent: root };
}

/** A key reference in words, for messages: the file, or the PKCS#11 URI. */
export const keyText = (k: KeyRef): string => (k.kind === "file" ? k.path : k.uri);

/** Whether the key is there to sign with (a file that exists; a token key is assumed present and checked on load). */
export const keyPresent = (k: KeyRef): boolean => k.kind !== "file" || existsSync(k.path);

/** What is said (after the key file's name) when a root key kept offline is needed. */
export function rootKeyAbsent(root: CaRef, forWhat: string): string {
  return `the root CA's key is absent (kept offline?); ${forWhat} needs it: put the root key back at ${keyText(root.key)} for this run, then move it offline again`;
}

export interface CaDeps {
  now: () => Date;
  crypto: CryptoProvider;
}

/**
 * The single loader of a CA's key: a signer (Issuer) for the CA's certificate, after ca-load's checks (the key matches
 * the certificate, which is a CA allowed to sign, currently valid, not SHA-1 signed, with a strong key).
 */
export async function loadCa(ca: CaRef, deps: CaDeps): Promise<{ issuer: Issuer; facts: CertFacts }> {
  if (ca.key.kind === "pkcs11") return loadIssuer(ca.cert, ca.key.uri, deps.now(), deps.crypto, ca.key.where);
  return loadIssuer(ca.cert, ca.key.path, deps.now(), deps.crypto);
}

/** The certificates of a PEM file, in order (DER). */
export function certBlocks(text: string): Buffer[] {
  return parsePemBlocks(text)
    .filter((b) => b.label === "CERTIFICATE")
    .map((b) => b.der);
}

/** Reads a CA certificate file that must hold exactly one certificate. */
export function readOneCert(file: string, what: string): CertFacts {
  const blocks = certBlocks(readText(file, what));
  if (blocks.length !== 1) throw new UserError(`${file}: holds ${blocks.length} certificates; expected exactly one (${what})`);
  try {
    return parseCertDer(blocks[0]);
  } catch (e) {
    throw new UserError(`${file}: the CERTIFICATE block is not a valid X.509 certificate (${e instanceof Error ? e.message : e})`);
  }
}

export interface LoadedSigningCa {
  issuer: Issuer;
  facts: CertFacts;
  /** the chain's certificates, in order */
  chain: CertFacts[];
  /** the PEM text appended to each leaf's certificate ("" in root mode) */
  chainPem: string;
}

/** Reads the chain files of a signing CA (no key needed): their certificates and the PEM text leaves carry. */
export function readChain(ca: SigningCa): { chain: CertFacts[]; chainPem: string } {
  const chain = ca.chain.map((f) => readOneCert(f, "a CA certificate of the chain"));
  return { chain, chainPem: chain.map((c) => toPem("CERTIFICATE", c.der)).join("") };
}

/**
 * The signing CA, ready to sign: its key loaded (loadCa), its chain read, and, for an intermediate, its link to the
 * parent checked (signed by the root's key), so a leaf never carries a chain that does not lead to the trust file.
 */
export async function loadSigningCa(ca: SigningCa, deps: CaDeps): Promise<LoadedSigningCa> {
  readOneCert(ca.cert, "the signing CA's certificate");
  const { issuer, facts } = await loadCa(ca, deps);
  const { chain, chainPem } = readChain(ca);
  if (ca.parent) {
    const parent = readOneCert(ca.parent.cert, "the root CA certificate");
    if (!signedBy(facts, parent)) throw new UserError(`${ca.cert}: is not signed by the root CA in ${ca.parent.cert}; make a new intermediate ("make rotate-intermediate", with the root key) or restore the root`);
  }
  return { issuer, facts, chain, chainPem };
}

/** The checks an intermediate must pass to sign this tree's leaves, beyond loadCa's: one line each, or none. */
export function intermediateProblems(file: string, im: CertFacts, root: CertFacts, rootFile: string, now: Date): string[] {
  const out: string[] = [];
  if (!signedBy(im, root)) out.push(`${file}: is not signed by the root CA in ${rootFile} (its issuer name or signature does not match)`);
  out.push(...caCertFaults(im, { root: false }).map((why) => `${file}: ${why}`));
  if (im.keyUsageBits && !im.keyUsageBits.includes(6)) out.push(`${file}: its key usage does not allow signing CRLs (no cRLSign)`);
  // the intermediate's EKU (when it has one) constrains every leaf below it, in Go: members need both
  const lack = missingRoleEkus("member", im.extKeyUsages);
  if (lack.length) out.push(`${file}: its extended key usage lacks ${lack.map(ekuOpensslName).join(" and ")}; Go refuses the leaves below it ("incompatible key usage")`);
  const rootPath = pathLen(root);
  if (rootPath === 0) out.push(`${rootFile}: its path length is 0, so it may not sign an intermediate CA; re-make the root without "pathlenzero"`);
  if (now > im.notAfter) out.push(`${file}: expired on ${im.notAfter.toISOString()}; make a new one with "make rotate-intermediate"`);
  else if (now < im.notBefore) out.push(`${file}: is not valid until ${im.notBefore.toISOString()}; check the clock`);
  return out;
}

/** A CA certificate's pathLenConstraint, undefined when it has none. */
export function pathLen(f: CertFacts): number | undefined {
  const bc = f.extensions.get("2.5.29.19");
  if (!bc) return undefined;
  const n = children(bc.value, readNode(bc.value)).find((x) => x.tag === TAG.INTEGER);
  return n ? Number(BigInt(`0x${content(bc.value, n).toString("hex") || "0"}`)) : undefined;
}

/** Whether a leaf's file carries exactly the chain after the leaf. */
export function carriesChain(fileText: string, chain: CertFacts[]): boolean {
  const blocks = certBlocks(fileText).slice(1);
  return blocks.length === chain.length && blocks.every((b, i) => b.equals(chain[i].der));
}

/** A readable name for a CA file in messages. */
export const caLabel = (ca: CaRef): string => (ca.name === INTERMEDIATE_NAME ? `the intermediate CA in ${ca.cert}` : `the CA in ${ca.cert}`);
