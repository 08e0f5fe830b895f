// Loading a signing CA (cert + key) with the checks cfssl skips: the key must match, the cert must be a CA that
// may sign certificates, and it must be within its validity.

import { readFileSync } from "node:fs";
import { UserError } from "../common/errors";
import { readFailure } from "../common/fs-errors";
import { CertFacts, parseCertPem } from "./certinfo";
import { CryptoProvider, getCrypto, importKeyPair } from "./keys";
import { Issuer } from "./issue";
import { RSA_MIN } from "../config/request";
import { isPkcs11Uri, loadTokenKeyPair, tokenRef } from "./pkcs11";

/** A CA key held in a PKCS#11 token (the provider packages are loaded on this first use). */
async function loadTokenKey(ref: string, where: string, spki: Buffer) {
  const t = tokenRef(ref, where);
  return loadTokenKeyPair(t.uri, t.modulePath, t.pin, { where, spki });
}

/** Signature algorithms we refuse to chain to (SHA-1 and MD5 based). */
const WEAK_SIGNATURES: Record<string, string> = {
  "1.2.840.113549.1.1.4": "md5WithRSAEncryption",
  "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
  "1.2.840.10045.4.1": "ecdsa-with-SHA1",
  "1.2.840.10040.4.3": "dsa-with-SHA1",
};


export function readText(file: string, what: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new UserError(`${file}: ${readFailure(e)}; expected ${what}`);
  }
}

/**
 * Loads a signing CA. `keyFile` is a key reference: a PEM file, or a PKCS#11 URI (`pkcs11:token=etcd-ca;object=ca`,
 * the module from its module-path or PKCS11_MODULE, the PIN from the environment; see pkcs11.ts). `keyFrom` names
 * where a URI came from in messages (CA_KEY, -ca-key, the tree's record).
 */
export async function loadIssuer(certFile: string, keyFile: string, now: Date, crypto: CryptoProvider = getCrypto(), keyFrom = "CA_KEY"): Promise<{ issuer: Issuer; facts: CertFacts }> {
  const facts = parseCertPem(readText(certFile, "the CA certificate (PEM)"), certFile);
  const key = isPkcs11Uri(keyFile) ? await loadTokenKey(keyFile, keyFrom, facts.spki) : await importKeyPair(readText(keyFile, "the CA private key (PEM)"), keyFile, crypto);
  if (key.uri) keyFile = key.uri;
  if (!key.spki.equals(facts.spki)) throw new UserError(`${keyFile}: does not match the certificate ${certFile} (different public key); expected the CA's own private key`);
  if (!facts.isCa) throw new UserError(`${certFile}: is not a CA certificate (basicConstraints CA:FALSE or missing); expected a CA such as certs/ca.pem`);
  if (facts.keyUsageBits && !facts.keyUsageBits.includes(5)) throw new UserError(`${certFile}: its key usage does not allow signing certificates (no keyCertSign)`);
  if (key.spec.algo === "rsa" && key.spec.size < RSA_MIN) throw new UserError(`${keyFile}: is an RSA ${key.spec.size}-bit key; a CA key must be RSA ${RSA_MIN} bits or more, or ECDSA`);
  const weak = WEAK_SIGNATURES[facts.signatureOid];
  if (weak) throw new UserError(`${certFile}: is signed with ${weak}; SHA-1 and MD5 signatures are refused, re-make the CA with SHA-256 or better`);
  if (now > facts.notAfter) throw new UserError(`${certFile}: the CA expired on ${facts.notAfter.toISOString()}; renew it with "make rotate"`);
  if (now < facts.notBefore) throw new UserError(`${certFile}: the CA is not valid until ${facts.notBefore.toISOString()}; check the clock`);
  return { issuer: { certDer: facts.der, subjectDer: facts.subjectDer, ski: facts.ski, notAfter: facts.notAfter, key }, facts };
}
