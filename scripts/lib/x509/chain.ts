// The certificates found in a certs directory and which CA each one chains to: the issuer name must equal a CA's
// subject and the signature must verify with that CA's public key (OpenSSL, through node:crypto, is the judge).
// Certificates are read by certinfo's reader, as everywhere.

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CertFacts, parseCertPem, verifySignature } from "./certinfo";

export interface CertFile {
  /** file name without ".pem" (the certificate's name in the tree) */
  name: string;
  file: string;
  facts: CertFacts;
}

/** Reads a PEM file's first CERTIFICATE; undefined when the file holds none (a key, a CRL) or cannot be read. */
export function readCertFile(file: string): CertFacts | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  try {
    return parseCertPem(text, file);
  } catch {
    return undefined;
  }
}

/** Every certificate directly in certsDir (NAME.pem; keys, CSRs, CRLs and subdirectories are skipped), by name. */
export function listCertFiles(certsDir: string): CertFile[] {
  let names: string[];
  try {
    names = readdirSync(certsDir);
  } catch {
    return [];
  }
  const out: CertFile[] = [];
  for (const f of names.sort()) {
    if (!f.endsWith(".pem") || f.endsWith("-key.pem") || f.startsWith(".")) continue;
    const file = join(certsDir, f);
    const facts = readCertFile(file);
    if (facts) out.push({ name: f.slice(0, -4), file, facts });
  }
  return out;
}

/** Whether `cert` names `ca` as its issuer and carries a signature made with the CA's key. */
export function signedBy(cert: CertFacts, ca: CertFacts): boolean {
  return cert.issuerDer.equals(ca.subjectDer) && verifySignature(cert, ca.spki);
}

/**
 * What keeps a certificate from being a CA that signs certificates, one reason each (no file name): not a CA (or, for
 * a root, not self-signed), no keyCertSign. Empty when it may sign.
 */
export function caCertFaults(f: CertFacts, opts: { root: boolean }): string[] {
  const out: string[] = [];
  if (!f.isCa) out.push("is not a CA certificate (basicConstraints CA:FALSE or missing)");
  else if (opts.root && !signedBy(f, f)) out.push("is not self-signed (its signature does not verify with its own key)");
  if (f.keyUsageBits && !f.keyUsageBits.includes(5)) out.push("its key usage does not allow signing certificates (no keyCertSign)");
  return out;
}


/** The CA (among `cas`) that issued `cert`, or undefined. A self-signed CA chains to itself. */
export function findIssuer(cert: CertFacts, cas: CertFile[]): CertFile | undefined {
  return cas.find((ca) => ca.facts.isCa && signedBy(cert, ca.facts));
}
