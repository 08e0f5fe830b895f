// Reading certificates in tests with @peculiar/x509 (an independent parser from the one the tool uses).
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { readFileSync } from "node:fs";

x509.cryptoProvider.set(globalThis.crypto);

export { x509 };

export interface CertView {
  subject: string;
  subjectDer: string;
  issuer: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  signatureAlgorithm: string;
  keyUsage?: { usages: number; critical: boolean };
  extKeyUsages?: string[];
  basicConstraints?: { ca: boolean; pathLength?: number; critical: boolean };
  san?: { names: { type: string; value: string }[]; critical: boolean };
  ski?: string;
  aki?: string;
  extensionOrder: string[];
  cert: x509.X509Certificate;
}

export function view(pemOrFile: string): CertView {
  const pem = pemOrFile.includes("-----BEGIN") ? pemOrFile : readFileSync(pemOrFile, "utf8");
  const cert = new x509.X509Certificate(pem);
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension);
  return {
    subject: cert.subject,
    subjectDer: Buffer.from(cert.subjectName.toArrayBuffer()).toString("hex"),
    issuer: cert.issuer,
    serial: cert.serialNumber,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    signatureAlgorithm: JSON.stringify(cert.signatureAlgorithm),
    keyUsage: ku ? { usages: ku.usages, critical: ku.critical } : undefined,
    extKeyUsages: eku?.usages.map(String),
    basicConstraints: bc ? { ca: bc.ca, pathLength: bc.pathLength, critical: bc.critical } : undefined,
    san: san ? { names: san.names.items.map((n) => ({ type: n.type as string, value: n.value })), critical: san.critical } : undefined,
    ski: ski?.keyId,
    aki: aki?.keyId,
    extensionOrder: cert.extensions.map((e) => e.type),
    cert,
  };
}

/** SubjectPublicKeyInfo of a cert, as hex, for key/cert match checks. */
export async function certSpki(pemOrFile: string): Promise<string> {
  const pem = pemOrFile.includes("-----BEGIN") ? pemOrFile : readFileSync(pemOrFile, "utf8");
  return Buffer.from(new x509.X509Certificate(pem).publicKey.rawData).toString("hex");
}
