// The one certificate reader: the facts issuing, planning, verifying and reporting need, straight from DER (fast, no
// x509 stack): subject bytes, public key, validity, serial, basic constraints, key usage, SANs, and the signed part
// with its signature. Signatures (of certificates and CRLs) are checked by OpenSSL through node:crypto's verify.

import { createPublicKey, KeyObject, verify as verifyBytes } from "node:crypto";
import { children, content, decodeOid, readNode, raw, TAG } from "./der";
import { parsePemBlocks } from "./pem";
import { UserError } from "../common/errors";
import { formatIp } from "../config/hosts";

/** Signed DER (a certificate or a CRL): the to-be-signed bytes, the signature algorithm's OID and the signature. */
export interface Signed {
  tbsDer: Buffer;
  /** the OID of the issuer's signature algorithm */
  signatureOid: string;
  signature: Buffer;
}

export interface CertFacts extends Signed {
  der: Buffer;
  serialHex: string;
  subjectDer: Buffer;
  issuerDer: Buffer;
  spki: Buffer;
  notBefore: Date;
  notAfter: Date;
  isCa: boolean;
  /** KeyUsage bit numbers, undefined when the extension is absent */
  keyUsageBits?: number[];
  extKeyUsages: string[];
  ski?: Buffer;
  extensions: Map<string, { critical: boolean; value: Buffer }>;
}

/**
 * A serial number's one written form, the one every comparison uses (stamps, the revocation index, the CRL, the
 * planner): lower-case hex of its value without leading zero bytes, DER's minimal INTEGER without its sign byte
 * ("00" for zero). An issued serial is 20 random bytes with the top bit cleared, so one in 128 starts with a zero
 * byte, which its certificate's DER drops: written as the bytes were drawn, it would not match the certificate's.
 */
export function canonicalSerialHex(hex: string): string {
  return hex.toLowerCase().replace(/^(?:00)+(?=[0-9a-f]{2})/, "");
}

export function parseTime(buf: Buffer, tag: number): Date {
  const s = buf.toString("ascii");
  const m = tag === TAG.UTC_TIME ? /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)?Z$/.exec(s) : /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)?(?:\.\d+)?Z$/.exec(s);
  if (!m) throw new Error(`bad time ${s}`);
  let y = Number(m[1]);
  if (tag === TAG.UTC_TIME) y += y < 50 ? 2000 : 1900;
  return new Date(Date.UTC(y, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6] ?? 0)));
}

export function parseCertDer(der: Buffer): CertFacts {
  const top = readNode(der);
  if (top.tag !== TAG.SEQUENCE || top.end !== der.length) throw new Error("not a DER certificate");
  const [tbsNode, sigAlg, sigBits] = children(der, top);
  const tbs = children(der, tbsNode);
  const off = tbs[0].tag === 0xa0 ? 1 : 0;
  const serial = content(der, tbs[off]);
  const issuer = tbs[off + 2];
  const validity = children(der, tbs[off + 3]);
  const subject = tbs[off + 4];
  const spki = tbs[off + 5];
  const extensions = new Map<string, { critical: boolean; value: Buffer }>();
  const extsNode = tbs.find((n) => n.tag === 0xa3);
  if (extsNode) {
    const list = readNode(der, extsNode.contentStart);
    for (const e of children(der, list)) {
      const parts = children(der, e);
      const id = decodeOid(content(der, parts[0]));
      const critical = parts.length === 3 && content(der, parts[1])[0] !== 0;
      extensions.set(id, { critical, value: Buffer.from(content(der, parts[parts.length - 1])) });
    }
  }
  let isCa = false;
  const bc = extensions.get("2.5.29.19");
  if (bc) {
    const items = children(bc.value, readNode(bc.value));
    isCa = items.length > 0 && items[0].tag === TAG.BOOLEAN && content(bc.value, items[0])[0] !== 0;
  }
  let keyUsageBits: number[] | undefined;
  const ku = extensions.get("2.5.29.15");
  if (ku) {
    const bits = content(ku.value, readNode(ku.value)).subarray(1);
    keyUsageBits = [];
    for (let i = 0; i < bits.length * 8; i++) if (bits[i >> 3] & (0x80 >> (i & 7))) keyUsageBits.push(i);
  }
  const extKeyUsages: string[] = [];
  const eku = extensions.get("2.5.29.37");
  if (eku) for (const n of children(eku.value, readNode(eku.value))) extKeyUsages.push(decodeOid(content(eku.value, n)));
  const skiExt = extensions.get("2.5.29.14");
  const ski = skiExt ? Buffer.from(content(skiExt.value, readNode(skiExt.value))) : undefined;
  return {
    der,
    serialHex: canonicalSerialHex(Buffer.from(serial).toString("hex")),
    tbsDer: Buffer.from(raw(der, tbsNode)),
    signatureOid: decodeOid(content(der, children(der, sigAlg)[0])),
    signature: Buffer.from(content(der, sigBits).subarray(1)),
    subjectDer: Buffer.from(raw(der, subject)),
    issuerDer: Buffer.from(raw(der, issuer)),
    spki: Buffer.from(raw(der, spki)),
    notBefore: parseTime(content(der, validity[0]), validity[0].tag),
    notAfter: parseTime(content(der, validity[1]), validity[1].tag),
    isCa,
    keyUsageBits,
    extKeyUsages,
    ski,
    extensions,
  };
}

/** A time as RFC 3339 to the second: 2027-01-01T00:00:00Z. */
export const isoSeconds = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, "Z");

/** Reads the first CERTIFICATE block of a PEM text; errors name the file and what was found instead. */
export function parseCertPem(text: string, file: string): CertFacts {
  const blocks = parsePemBlocks(text);
  const block = blocks.find((b) => b.label === "CERTIFICATE");
  if (!block) {
    const found = blocks.length ? `${/^[AEIOU]/.test(blocks[0].label) ? "an" : "a"} ${blocks[0].label} block` : "no PEM data";
    throw new UserError(`${file}: contains ${found}; expected a PEM "CERTIFICATE"`);
  }
  try {
    return parseCertDer(block.der);
  } catch (e) {
    throw new UserError(`${file}: the CERTIFICATE block is not a valid X.509 certificate (${e instanceof Error ? e.message : e})`);
  }
}

/** Subject commonName of a Name DER (first CN), or "". */
export function commonName(nameDer: Buffer): string {
  for (const rdn of children(nameDer, readNode(nameDer)))
    for (const atv of children(nameDer, rdn)) {
      const [t, v] = children(nameDer, atv);
      if (decodeOid(content(nameDer, t)) === "2.5.4.3") return content(nameDer, v).toString("utf8");
    }
  return "";
}

/** SAN entries as text: DNS:x, IP:x, email:x, URI:x. */
export function subjectAltNames(facts: CertFacts): string[] {
  const san = facts.extensions.get("2.5.29.17");
  if (!san) return [];
  const out: string[] = [];
  for (const n of children(san.value, readNode(san.value))) {
    const c = content(san.value, n);
    const tag = n.tag & 0x1f;
    if (tag === 2) out.push(`DNS:${c.toString("ascii")}`);
    else if (tag === 1) out.push(`email:${c.toString("ascii")}`);
    else if (tag === 6) out.push(`URI:${c.toString("ascii")}`);
    else if (tag === 7) {
      out.push(`IP:${formatIp(c)}`);
    }
  }
  return out;
}

/** The hash of each signature algorithm we check (null: the algorithm hashes itself, as Ed25519). */
const SIGNATURE_HASHES: Record<string, string | null> = {
  "1.2.840.113549.1.1.4": "md5",
  "1.2.840.113549.1.1.5": "sha1",
  "1.2.840.113549.1.1.14": "sha224",
  "1.2.840.113549.1.1.11": "sha256",
  "1.2.840.113549.1.1.12": "sha384",
  "1.2.840.113549.1.1.13": "sha512",
  "1.2.840.10045.4.1": "sha1",
  "1.2.840.10045.4.3.1": "sha224",
  "1.2.840.10045.4.3.2": "sha256",
  "1.2.840.10045.4.3.3": "sha384",
  "1.2.840.10045.4.3.4": "sha512",
  "1.3.101.112": null,
};

// Memos, by content (the same bytes give the same answer): a planner or verify run asks the same question about the
// same certificate more than once (during a CA rotation, for every leaf: signed by the new CA? by the old?), each
// asking reading the files anew, and OpenSSL 3 takes ~0.5 ms to decode a public key and ~1 ms to verify a P-384
// signature. Bounded: cleared when full.
const MEMO_MAX = 4096;
const publicKeys = new Map<string, KeyObject>();
const verdicts = new Map<string, boolean>();
const remember = <V>(m: Map<string, V>, k: string, v: V): V => {
  if (m.size >= MEMO_MAX) m.clear();
  m.set(k, v);
  return v;
};

/** Whether `signed` carries a valid signature by the key `spki` (SubjectPublicKeyInfo DER); false for algorithms we do not know. */
export function verifySignature(signed: Signed, spki: Buffer): boolean {
  const hash = SIGNATURE_HASHES[signed.signatureOid];
  if (hash === undefined) return false;
  const spkiKey = spki.toString("latin1");
  // the lengths first, so that the concatenation names one question only
  const question = `${signed.signatureOid} ${spki.length} ${signed.signature.length} ${signed.tbsDer.length} ${spkiKey}${signed.signature.toString("latin1")}${signed.tbsDer.toString("latin1")}`;
  const known = verdicts.get(question);
  if (known !== undefined) return known;
  let ok: boolean;
  try {
    const key = publicKeys.get(spkiKey) ?? remember(publicKeys, spkiKey, createPublicKey({ key: spki, format: "der", type: "spki" }));
    ok = verifyBytes(hash, signed.tbsDer, key, signed.signature);
  } catch {
    ok = false;
  }
  return remember(verdicts, question, ok);
}
