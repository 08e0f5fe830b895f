// Keys: generated and used for signing through WebCrypto (Node's native WebCrypto by default; @peculiar/webcrypto
// plugs in behind the same interface with TLS_SETUP_CRYPTO=peculiar). Converted through node:crypto's KeyObject
// (OpenSSL): private keys are written as cfssl does, SEC1 "EC PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY"; PKCS#1, SEC1
// and PKCS#8 are read; sizes and curves come from asymmetricKeyDetails.

import { createPrivateKey, createPublicKey, KeyObject } from "node:crypto";
import { children, content, integerFromBytes, nullValue, oid, readNode, seq, Der } from "./der";
import { parsePemBlocks } from "./pem";
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
  /** private key PEM as cfssl writes it (SEC1 or PKCS#1); empty for a key held in a PKCS#11 token (never written) */
  pem: string;
  /** the provider the private key belongs to, when it is not the default one (a PKCS#11 token's: x509/pkcs11.ts) */
  crypto?: CryptoProvider;
  /** the PKCS#11 URI of a key held in a token (without its module path), for messages */
  uri?: string;
}

export async function generateKeyPair(spec: KeySpec, crypto: CryptoProvider = getCrypto()): Promise<KeyPair> {
  const params =
    spec.algo === "ecdsa"
      ? { name: "ECDSA", namedCurve: `P-${spec.size}` }
      : { name: "RSASSA-PKCS1-v1_5", modulusLength: spec.size, publicExponent: new Uint8Array([1, 0, 1]), hash: hashFor(spec) };
  const kp = (await crypto.subtle.generateKey(params, true, ["sign", "verify"])) as CryptoKeyPair;
  const spki = Buffer.from(await crypto.subtle.exportKey("spki", kp.publicKey));
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey("pkcs8", kp.privateKey));
  return { spec, privateKey: kp.privateKey, spki, pem: privateKeyPem(spec, pkcs8) };
}

/** The private key as cfssl writes it: SEC1 "EC PRIVATE KEY" (named curve and public key, as Go's MarshalECPrivateKey) or PKCS#1 "RSA PRIVATE KEY", converted by OpenSSL through a KeyObject. */
export function privateKeyPem(spec: KeySpec, pkcs8: Buffer): string {
  return createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" }).export({ type: spec.algo === "rsa" ? "pkcs1" : "sec1", format: "pem" }) as string;
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

/** Our names of OpenSSL's curves (KeyObject.asymmetricKeyDetails.namedCurve). */
const CURVE_SIZES: Record<string, number> = { prime256v1: 256, secp384r1: 384, secp521r1: 521 };

const PEM_TYPES: Record<string, "pkcs1" | "sec1" | "pkcs8"> = { "RSA PRIVATE KEY": "pkcs1", "EC PRIVATE KEY": "sec1", "PRIVATE KEY": "pkcs8" };

/** The key spec (algorithm and size) of a private key, or why it is not one we sign with. */
function specOf(key: KeyObject): KeySpec {
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === "rsa" && d.modulusLength) return { algo: "rsa", size: d.modulusLength };
  if (key.asymmetricKeyType === "ec" && d.namedCurve && CURVE_SIZES[d.namedCurve]) return { algo: "ecdsa", size: CURVE_SIZES[d.namedCurve] };
  throw new Error(`unsupported private key algorithm ${key.asymmetricKeyType}${d.namedCurve ? ` (${d.namedCurve})` : ""}`);
}

/** Reads the first private key PEM block (PKCS#1, SEC1 or PKCS#8) as a KeyObject, with its key spec. */
export function parsePrivateKeyPem(text: string, file: string): { spec: KeySpec; key: KeyObject } {
  const block = parsePemBlocks(text).find((b) => /PRIVATE KEY$/.test(b.label));
  if (!block) {
    const what = /ENCRYPTED/.test(text) || /Proc-Type: 4,ENCRYPTED/.test(text) ? "an encrypted private key (keys must be unencrypted)" : "no PEM private key";
    throw new UserError(`${file}: contains ${what}; expected "EC PRIVATE KEY", "RSA PRIVATE KEY" or "PRIVATE KEY"`);
  }
  const type = PEM_TYPES[block.label];
  if (!type) throw new UserError(`${file}: unsupported key type "${block.label}"; expected "EC PRIVATE KEY", "RSA PRIVATE KEY" or "PRIVATE KEY"`);
  try {
    const key = createPrivateKey({ key: block.der, format: "der", type });
    return { spec: specOf(key), key };
  } catch (e) {
    throw new UserError(`${file}: the ${block.label} block is not a usable key (${e instanceof Error ? e.message : e}); expected an ECDSA P-256/384/521 or RSA key`);
  }
}

/**
 * The key spec and public key (SPKI DER) of a private key PEM, for checking that a key and a certificate belong
 * together. Through node:crypto alone: a WebCrypto import (importKeyPair) costs ~1.3 ms more per P-384 key and is
 * needed only to sign.
 */
export function publicKeyOfPem(text: string, file: string): { spec: KeySpec; spki: Buffer } {
  const { spec, key } = parsePrivateKeyPem(text, file);
  return { spec, spki: createPublicKey(key).export({ type: "spki", format: "der" }) };
}

/** Imports a private key PEM for signing, deriving its public key. */
export async function importKeyPair(text: string, file: string, crypto: CryptoProvider = getCrypto()): Promise<KeyPair> {
  const { spec, key } = parsePrivateKeyPem(text, file);
  const pkcs8 = key.export({ type: "pkcs8", format: "der" });
  let privateKey: CryptoKey;
  try {
    privateKey = await crypto.subtle.importKey("pkcs8", bytes(pkcs8), algorithmParams(spec), true, ["sign"]);
  } catch (e) {
    throw new UserError(`${file}: the private key could not be loaded (${e instanceof Error ? e.message : e})`);
  }
  const spki = createPublicKey(key).export({ type: "spki", format: "der" });
  return { spec, privateKey, spki, pem: text };
}

/** Signs DER with the key's algorithm and returns a DER signature value (ECDSA r||s converted to a SEQUENCE). */
export async function signDer(key: KeyPair, data: Buffer, crypto: CryptoProvider = getCrypto()): Promise<Buffer> {
  // a key held in a token signs through its own provider
  crypto = key.crypto ?? crypto;
  if (key.spec.algo === "rsa") return Buffer.from(await crypto.subtle.sign({ name: "RSASSA-PKCS1-v1_5" }, key.privateKey, bytes(data)));
  const sig = Buffer.from(await crypto.subtle.sign({ name: "ECDSA", hash: hashFor(key.spec) }, key.privateKey, bytes(data)));
  const half = sig.length / 2;
  return seq(integerFromBytes(sig.subarray(0, half)), integerFromBytes(sig.subarray(half)));
}
