// Building an X.509 v2 CRL (RFC 5280 §5) signed by the CA: issuer, thisUpdate/nextUpdate, the revoked serials,
// and the AuthorityKeyIdentifier and CRLNumber extensions. The clock and crypto come from the caller.

import { bitString, children, content, decodeOid, explicit, implicit, integer, integerFromBytes, octetString, oid, raw, readNode, seq, time, Der, TAG } from "./der";
import { parseTime, Signed } from "./certinfo";
import { CryptoProvider, getCrypto, signatureAlgorithm, signDer } from "./keys";
import { Issuer } from "./issue";
import { toPem } from "./pem";

export interface RevokedEntry {
  /** the certificate's serial number, hex */
  serialHex: string;
  revokedAt: Date;
}

export interface CrlParams {
  thisUpdate: Date;
  nextUpdate: Date;
  /** CRLNumber: grows with every CRL the CA issues */
  number: number;
  entries: RevokedEntry[];
}

const OID_AUTHORITY_KEY_ID = "2.5.29.35";
const OID_CRL_NUMBER = "2.5.29.20";

export async function buildCrlDer(issuer: Issuer, p: CrlParams, crypto: CryptoProvider = getCrypto()): Promise<Der> {
  const sigAlg = signatureAlgorithm(issuer.key.spec);
  const exts: Der[] = [];
  if (issuer.ski) exts.push(seq(oid(OID_AUTHORITY_KEY_ID), octetString(seq(implicit(0, issuer.ski)))));
  exts.push(seq(oid(OID_CRL_NUMBER), octetString(integer(p.number))));
  const parts: Der[] = [integer(1), sigAlg, issuer.subjectDer, time(p.thisUpdate), time(p.nextUpdate)];
  // RFC 5280: the list is absent, not empty, when nothing is revoked
  if (p.entries.length) parts.push(seq(...p.entries.map((e) => seq(integerFromBytes(Buffer.from(e.serialHex, "hex")), time(e.revokedAt)))));
  parts.push(explicit(0, seq(...exts)));
  const tbs = seq(...parts);
  const sig = await signDer(issuer.key, tbs, crypto);
  return seq(tbs, sigAlg, bitString(sig));
}

export const crlPem = (der: Der): string => toPem("X509 CRL", der);

export interface CrlFacts extends Signed {
  issuerDer: Buffer;
  thisUpdate: Date;
  nextUpdate?: Date;
}

/** Reads a CRL's DER with the certificate reader's primitives: CertificateList → tbsCertList ([version,] signature, issuer, thisUpdate, [nextUpdate], ...). */
export function parseCrlDer(der: Buffer): CrlFacts {
  const top = readNode(der);
  if (top.tag !== TAG.SEQUENCE || top.end !== der.length) throw new Error("not a DER CRL");
  const [tbsNode, sigAlg, sigBits] = children(der, top);
  if (!tbsNode || !sigAlg || !sigBits || sigBits.tag !== TAG.BIT_STRING) throw new Error("not a DER CRL");
  const items = children(der, tbsNode);
  const i = items[0].tag === TAG.INTEGER ? 2 : 1;
  const [issuer, thisUpdate, next] = items.slice(i, i + 3);
  const isTime = (n: typeof next | undefined) => n !== undefined && (n.tag === TAG.UTC_TIME || n.tag === TAG.GENERALIZED_TIME);
  if (!issuer || !isTime(thisUpdate)) throw new Error("not a DER CRL");
  return {
    tbsDer: Buffer.from(raw(der, tbsNode)),
    signatureOid: decodeOid(content(der, children(der, sigAlg)[0])),
    signature: Buffer.from(content(der, sigBits).subarray(1)),
    issuerDer: Buffer.from(raw(der, issuer)),
    thisUpdate: parseTime(content(der, thisUpdate), thisUpdate.tag),
    nextUpdate: isTime(next) ? parseTime(content(der, next), next.tag) : undefined,
  };
}
