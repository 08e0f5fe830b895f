// Keys through WebCrypto. Node's native WebCrypto is the default provider; @peculiar/webcrypto plugs in behind the
// same interface (TLS_SETUP_CRYPTO=peculiar). Private keys are written as cfssl does: SEC1 "EC PRIVATE KEY" or
// PKCS#1 "RSA PRIVATE KEY"; PKCS#1, SEC1 and PKCS#8 are read.

import { bitString, children, content, decodeOid, explicit, integer, integerFromBytes, nullValue, octetString, oid, readNode, seq, TAG, Der } from "./der";
import { parsePemBlocks, toPem } from "./pem";
import { KeySpec } from "../config/request";
import { UserError } from "../common/errors";

export type CryptoProvider = Crypto;

/** A copy in a plain ArrayBuffer, as WebCrypto's types want. */
const bytes = (b: Buffer): Uint8Array<ArrayBuffer> => new Uint8Array(b);

let cached: CryptoProvider | undefined;

/** The crypto provider: Node's WebCrypto, or @peculiar/webcrypto when TLS_SETUP_CRYPTO=peculiar. */
export function getCrypto(): CryptoProvider {
  if (cached) return cached;
  if (process.env.TLS_SETUP_CRYPTO === "peculiar") {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Crypto } = require("@peculiar/webcrypto") as { Crypto: new () => CryptoProvider };
    cached = new Crypto();
  } else {
    cached = globalThis.crypto as CryptoProvider;
  }
  return cached;
}

export const OID = {
  ecPublicKey: "1.2.840.10045.2.1",
  rsaEncryption: "1.2.840.113549.1.1.1",
  ecdsaWithSHA256: "1.2.840.10045.4.3.2",
  ecdsaWithSHA384: "1.2.840.10045.4.3.3",
  ecdsaWithSHA512: "1.2.840.10045.4.3.4",
  sha256WithRSA: "1.2.840.113549.1.1.11",
  sha384WithRSA: "1.2.840.113549.1.1.12",
  sha512WithRSA: "1.2.840.113549.1.1.13",
};

const CURVE_OIDS: Record<number, string> = { 256: "1.2.840.10045.3.1.7", 384: "1.3.132.0.34", 521: "1.3.132.0.35" };
const CURVE_BY_OID: Record<string, number> = Object.fromEntries(Object.entries(CURVE_OIDS).map(([k, v]) => [v, Number(k)]));

/** The hash Go's crypto/x509 picks for a signing key (cfssl's signer.DefaultSigAlgo). */
export function hashFor(spec: KeySpec): "SHA-256" | "SHA-384" | "SHA-512" {
  if (spec.algo === "ecdsa") return spec.size === 256 ? "SHA-256" : spec.size === 384 ? "SHA-384" : "SHA-512";
  return spec.size >= 4096 ? "SHA-512" : spec.size >= 3072 ? "SHA-384" : "SHA-256";
}

export function signatureAlgorithm(spec: KeySpec): Der {
  const h = hashFor(spec);
  if (spec.algo === "ecdsa") return seq(oid(h === "SHA-256" ? OID.ecdsaWithSHA256 : h === "SHA-384" ? OID.ecdsaWithSHA384 : OID.ecdsaWithSHA512));
  return seq(oid(h === "SHA-256" ? OID.sha256WithRSA : h === "SHA-384" ? OID.sha384WithRSA : OID.sha512WithRSA), nullValue());
}

function algorithmParams(spec: KeySpec): RsaHashedImportParams | EcKeyImportParams {
  return spec.algo === "ecdsa" ? { name: "ECDSA", namedCurve: `P-${spec.size}` } : { name: "RSASSA-PKCS1-v1_5", hash: hashFor(spec) };
}

/** A private key able to sign, with what certificates need to know about it. */
export interface KeyPair {
  spec: KeySpec;
  privateKey: CryptoKey;
  /** SubjectPublicKeyInfo DER */
  spki: Buffer;
  /** private key PEM as cfssl writes it (SEC1 or PKCS#1) */
  pem: string;
}

export async function generateKeyPair(spec: KeySpec, crypto: CryptoProvider = getCrypto()): Promise<KeyPair> {
  const params =
    spec.algo === "ecdsa"
      ? { name: "ECDSA", namedCurve: `P-${spec.size}` }
      : { name: "RSASSA-PKCS1-v1_5", modulusLength: spec.size, publicExponent: new Uint8Array([1, 0, 1]), hash: hashFor(spec) };
  const kp = (await crypto.subtle.generateKey(params, true, ["sign", "verify"])) as CryptoKeyPair;
  const spki = Buffer.from(await crypto.subtle.exportKey("spki", kp.publicKey));
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey("pkcs8", kp.privateKey));
  return { spec, privateKey: kp.privateKey, spki, pem: privateKeyPem(spec, pkcs8, spki) };
}

/** SEC1 / PKCS#1 PEM from PKCS#8 DER. */
function privateKeyPem(spec: KeySpec, pkcs8: Buffer, spki: Buffer): string {
  const inner = pkcs8Inner(pkcs8);
  if (spec.algo === "rsa") return toPem("RSA PRIVATE KEY", inner);
  // Rebuild ECPrivateKey with the curve and public key, as Go's MarshalECPrivateKey does.
  const ec = readNode(inner);
  const [, d] = children(inner, ec);
  const point = subjectPublicKeyBits(spki);
  const sec1 = seq(integer(1), octetString(Buffer.from(content(inner, d))), explicit(0, oid(CURVE_OIDS[spec.size])), explicit(1, bitString(point)));
  return toPem("EC PRIVATE KEY", sec1);
}

function pkcs8Inner(pkcs8: Buffer): Buffer {
  const top = readNode(pkcs8);
  const [, , pk] = children(pkcs8, top);
  return Buffer.from(content(pkcs8, pk));
}

/** The subjectPublicKey BIT STRING contents (without the unused-bits byte). */
export function subjectPublicKeyBits(spki: Buffer): Buffer {
  const top = readNode(spki);
  const [, bits] = children(spki, top);
  return Buffer.from(content(spki, bits).subarray(1));
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits (what Go and cfssl use). */
export async function keyIdentifier(spki: Buffer, crypto: CryptoProvider = getCrypto()): Promise<Buffer> {
  return Buffer.from(await crypto.subtle.digest("SHA-1", bytes(subjectPublicKeyBits(spki))));
}

function specFromPkcs8(pkcs8: Buffer): { spec: KeySpec; pkcs8: Buffer } {
  const top = readNode(pkcs8);
  const [, alg] = children(pkcs8, top);
  const [algOid, params] = children(pkcs8, alg);
  const a = decodeOid(content(pkcs8, algOid));
  if (a === OID.rsaEncryption) {
    const inner = pkcs8Inner(pkcs8);
    const [, n] = children(inner, readNode(inner));
    const nb = content(inner, n);
    let bits = nb.length * 8;
    for (let i = 0; i < nb.length && nb[i] === 0; i++) bits -= 8;
    const first = nb.find((x) => x !== 0) ?? 0;
    bits -= Math.clz32(first) - 24;
    return { spec: { algo: "rsa", size: bits }, pkcs8 };
  }
  if (a === OID.ecPublicKey && params && params.tag === TAG.OID) {
    const size = CURVE_BY_OID[decodeOid(content(pkcs8, params))];
    if (size) return { spec: { algo: "ecdsa", size }, pkcs8 };
  }
  throw new Error(`unsupported private key algorithm ${a}`);
}

/** Parses the first private key PEM block (PKCS#1, SEC1 or PKCS#8) into PKCS#8 DER and a key spec. */
export function parsePrivateKeyPem(text: string, file: string): { spec: KeySpec; pkcs8: Buffer } {
  const block = parsePemBlocks(text).find((b) => /PRIVATE KEY$/.test(b.label));
  if (!block) {
    const what = /ENCRYPTED/.test(text) || /Proc-Type: 4,ENCRYPTED/.test(text) ? "an encrypted private key (keys must be unencrypted)" : "no PEM private key";
    throw new UserError(`${file}: contains ${what}; expected "EC PRIVATE KEY", "RSA PRIVATE KEY" or "PRIVATE KEY"`);
  }
  try {
    if (block.label === "RSA PRIVATE KEY") {
      return specFromPkcs8(seq(integer(0), seq(oid(OID.rsaEncryption), nullValue()), octetString(block.der)));
    }
    if (block.label === "EC PRIVATE KEY") {
      const ec = readNode(block.der);
      const parts = children(block.der, ec);
      const params = parts.find((p) => p.tag === 0xa0);
      if (!params) throw new Error("SEC1 key without curve");
      const curve = readNode(block.der, params.contentStart);
      return specFromPkcs8(seq(integer(0), seq(oid(OID.ecPublicKey), Buffer.from(block.der.subarray(curve.start, curve.end))), octetString(block.der)));
    }
    if (block.label === "PRIVATE KEY") return specFromPkcs8(block.der);
  } catch (e) {
    throw new UserError(`${file}: the ${block.label} block is not a usable key (${e instanceof Error ? e.message : e}); expected an ECDSA P-256/384/521 or RSA key`);
  }
  throw new UserError(`${file}: unsupported key type "${block.label}"; expected "EC PRIVATE KEY", "RSA PRIVATE KEY" or "PRIVATE KEY"`);
}

/** Imports a private key PEM for signing, deriving its public key. */
export async function importKeyPair(text: string, file: string, crypto: CryptoProvider = getCrypto()): Promise<KeyPair> {
  const { spec, pkcs8 } = parsePrivateKeyPem(text, file);
  const params = algorithmParams(spec);
  let privateKey: CryptoKey;
  try {
    privateKey = await crypto.subtle.importKey("pkcs8", bytes(pkcs8), params, true, ["sign"]);
  } catch (e) {
    throw new UserError(`${file}: the private key could not be loaded (${e instanceof Error ? e.message : e})`);
  }
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  const pubJwk: JsonWebKey = spec.algo === "ecdsa" ? { kty: "EC", crv: jwk.crv, x: jwk.x, y: jwk.y } : { kty: "RSA", n: jwk.n, e: jwk.e };
  const publicKey = await crypto.subtle.importKey("jwk", pubJwk, params, true, ["verify"]);
  const spki = Buffer.from(await crypto.subtle.exportKey("spki", publicKey));
  return { spec, privateKey, spki, pem: text };
}

/** Signs DER with the key's algorithm and returns a DER signature value (ECDSA r||s converted to a SEQUENCE). */
export async function signDer(key: KeyPair, data: Buffer, crypto: CryptoProvider = getCrypto()): Promise<Buffer> {
  if (key.spec.algo === "rsa") return Buffer.from(await crypto.subtle.sign({ name: "RSASSA-PKCS1-v1_5" }, key.privateKey, bytes(data)));
  const sig = Buffer.from(await crypto.subtle.sign({ name: "ECDSA", hash: hashFor(key.spec) }, key.privateKey, bytes(data)));
  const half = sig.length / 2;
  return seq(integerFromBytes(sig.subarray(0, half)), integerFromBytes(sig.subarray(half)));
}
