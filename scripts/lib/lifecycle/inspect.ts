// A readable summary of one certificate (`make inspect`), like `cfssl certinfo`: subject, issuer, SANs, usages,
// validity, serial, key, signature algorithm and key identifiers. The JSON uses cfssl certinfo's field names where
// cfssl has them; key identifiers are written with two hex digits per byte (cfssl drops leading zeros).

import { createHash, createPublicKey } from "node:crypto";
import { CertFacts, subjectAltNames, isoSeconds } from "../x509/certinfo";
import { children, content, decodeOid, readNode } from "../x509/der";
import { ekuName } from "../config/profile";
import { DAY_MS } from "./expiry";

const ATTR_NAMES: Record<string, string> = {
  "2.5.4.3": "CN",
  "2.5.4.6": "C",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.9": "street",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
  "2.5.4.5": "serialNumber",
  "2.5.4.17": "postalCode",
  "1.2.840.113549.1.9.1": "emailAddress",
};

export interface NameAttribute {
  oid: string;
  type: string;
  value: string;
}

function decodeString(tag: number, b: Buffer): string {
  if (tag === 0x1e) {
    const swapped = Buffer.from(b);
    swapped.swap16();
    return swapped.toString("utf16le");
  }
  if (tag === 0x14) return b.toString("latin1");
  return b.toString("utf8");
}

/** A Name's relative distinguished names, in certificate order, each a list of attributes. */
export function nameRdns(nameDer: Buffer): NameAttribute[][] {
  return children(nameDer, readNode(nameDer)).map((rdn) =>
    children(nameDer, rdn).map((atv) => {
      const [t, v] = children(nameDer, atv);
      const oid = decodeOid(content(nameDer, t));
      return { oid, type: ATTR_NAMES[oid] ?? oid, value: decodeString(v.tag, content(nameDer, v)) };
    }),
  );
}

function escapeRfc2253(v: string): string {
  let s = v.replace(/[\\,+"<>;]/g, (c) => `\\${c}`);
  if (/^[ #]/.test(s)) s = `\\${s}`;
  if (/ $/.test(s)) s = `${s.slice(0, -1)}\\ `;
  return s;
}

/** RFC 2253 string form (last RDN first), as Go's pkix.Name.String() and `openssl -nameopt RFC2253` print it. */
export function nameString(nameDer: Buffer): string {
  return nameRdns(nameDer)
    .reverse()
    .map((rdn) => rdn.map((a) => `${a.type}=${escapeRfc2253(a.value)}`).join("+"))
    .join(",");
}

/** cfssl certinfo's name object: the known attributes (several values joined with ","), and every value in order. */
export function cfsslName(nameDer: Buffer): Record<string, string | string[]> {
  const attrs = nameRdns(nameDer).flat();
  const pick = (type: string) => attrs.filter((a) => a.type === type).map((a) => a.value).join(",");
  const out: Record<string, string | string[]> = {};
  const fields: [string, string][] = [["common_name", "CN"], ["serial_number", "serialNumber"], ["country", "C"], ["organization", "O"], ["organizational_unit", "OU"], ["locality", "L"], ["province", "ST"], ["street_address", "street"], ["postal_code", "postalCode"]];
  for (const [k, t] of fields) {
    const v = pick(t);
    if (v !== "") out[k] = v;
  }
  if (attrs.length) out.names = attrs.map((a) => a.value);
  return out;
}

export const KEY_USAGE_NAMES = ["digital signature", "content commitment", "key encipherment", "data encipherment", "key agreement", "cert sign", "crl sign", "encipher only", "decipher only"];


const SIG_ALGS: Record<string, string> = {
  "1.2.840.10045.4.3.2": "ECDSAWithSHA256",
  "1.2.840.10045.4.3.3": "ECDSAWithSHA384",
  "1.2.840.10045.4.3.4": "ECDSAWithSHA512",
  "1.2.840.113549.1.1.5": "SHA1WithRSA",
  "1.2.840.113549.1.1.11": "SHA256WithRSA",
  "1.2.840.113549.1.1.12": "SHA384WithRSA",
  "1.2.840.113549.1.1.13": "SHA512WithRSA",
  "1.2.840.113549.1.1.10": "SHA256WithRSAPSS",
  "1.3.101.112": "Ed25519",
};

const CURVES: Record<string, string> = { prime256v1: "P-256", secp384r1: "P-384", secp521r1: "P-521" };

/** Upper-case hex with a colon between bytes, as openssl prints key identifiers and fingerprints. */
export const colonHex = (b: Buffer): string => [...b].map((x) => x.toString(16).padStart(2, "0").toUpperCase()).join(":");

export function keyDescription(spki: Buffer): { algorithm: string; size: number; curve?: string } {
  const k = createPublicKey({ key: spki, format: "der", type: "spki" });
  const d = k.asymmetricKeyDetails ?? {};
  if (k.asymmetricKeyType === "ec") {
    const curve = CURVES[d.namedCurve ?? ""] ?? d.namedCurve ?? "unknown";
    return { algorithm: "ECDSA", size: Number(/\d+/.exec(curve)?.[0] ?? 0), curve };
  }
  if (k.asymmetricKeyType === "rsa") return { algorithm: "RSA", size: d.modulusLength ?? 0 };
  return { algorithm: (k.asymmetricKeyType ?? "unknown").toUpperCase(), size: 0 };
}

const signatureAlgorithm = (f: CertFacts): string => SIG_ALGS[f.signatureOid] ?? f.signatureOid;

function authorityKeyId(f: CertFacts): Buffer | undefined {
  const ext = f.extensions.get("2.5.29.35");
  if (!ext) return undefined;
  const id = children(ext.value, readNode(ext.value)).find((n) => n.tag === 0x80);
  return id ? Buffer.from(content(ext.value, id)) : undefined;
}

export interface CertDescription {
  name: string;
  file: string;
  role: string;
  /** the CA certificate it chains to ("self-signed", "none") */
  chains_to: string;
  /** the CA certificates from its issuer up to the root, by name (["intermediate", "ca"]) */
  chain: string[];
  /** the subjects of the certificates its file carries after it (the intermediate, in intermediate mode) */
  chain_in_file: string[];
  subject: Record<string, string | string[]>;
  subject_dn: string;
  issuer: Record<string, string | string[]>;
  issuer_dn: string;
  /** decimal, as cfssl certinfo */
  serial_number: string;
  /** upper-case hex, as openssl x509 -serial */
  serial_hex: string;
  /** SAN values as cfssl certinfo lists them: DNS names, then IP addresses, email addresses, URIs */
  sans: string[];
  /** SANs with their type, in certificate order (DNS:, IP:, email:, URI:) */
  san_entries: string[];
  not_before: string;
  not_after: string;
  days_left: number;
  is_ca: boolean;
  key_usages: string[];
  ext_key_usages: string[];
  key_algorithm: string;
  key_size: number;
  sigalg: string;
  subject_key_id?: string;
  authority_key_id?: string;
  sha256_fingerprint: string;
}


export function describeCert(f: CertFacts, at: { name: string; file: string; role: string; chainsTo: string; chainPath?: string[]; chainInFile?: string[]; now: Date }): CertDescription {
  const entries = subjectAltNames(f);
  const order = ["DNS", "IP", "email", "URI"];
  const sans = order.flatMap((t) => entries.filter((e) => e.startsWith(`${t}:`)).map((e) => e.slice(t.length + 1)));
  const key = keyDescription(f.spki);
  const aki = authorityKeyId(f);
  return {
    name: at.name,
    file: at.file,
    role: at.role,
    chains_to: at.chainsTo,
    chain: at.chainPath ?? [],
    chain_in_file: at.chainInFile ?? [],
    subject: cfsslName(f.subjectDer),
    subject_dn: nameString(f.subjectDer),
    issuer: cfsslName(f.issuerDer),
    issuer_dn: nameString(f.issuerDer),
    serial_number: BigInt(`0x${f.serialHex || "0"}`).toString(10),
    serial_hex: f.serialHex.toUpperCase(),
    sans,
    san_entries: entries,
    not_before: isoSeconds(f.notBefore),
    not_after: isoSeconds(f.notAfter),
    days_left: Math.floor((f.notAfter.getTime() - at.now.getTime()) / DAY_MS),
    is_ca: f.isCa,
    key_usages: (f.keyUsageBits ?? []).map((b) => KEY_USAGE_NAMES[b] ?? `bit ${b}`),
    ext_key_usages: f.extKeyUsages.map(ekuName),
    key_algorithm: key.algorithm,
    key_size: key.size,
    sigalg: signatureAlgorithm(f),
    subject_key_id: f.ski ? colonHex(f.ski) : undefined,
    authority_key_id: aki ? colonHex(aki) : undefined,
    sha256_fingerprint: colonHex(createHash("sha256").update(f.der).digest()),
  };
}

/** The description as aligned "label: value" lines. */
export function formatDescription(d: CertDescription): string[] {
  const none = (xs: string[]) => (xs.length ? xs.join(", ") : "(none)");
  const rows: [string, string][] = [
    ["file", d.file],
    ["role", `${d.role}${d.chains_to === "self-signed" ? ", self-signed" : d.chains_to === "none" ? ", signed by no CA in this directory" : `, chains to ${d.chain.length > 1 ? d.chain.join(" -> ") : d.chains_to}`}`],
    ...(d.chain_in_file.length ? [["file also holds", d.chain_in_file.map((s) => `"${s}"`).join(", ")] as [string, string]] : []),
    ["subject", d.subject_dn === "" ? "(empty)" : d.subject_dn],
    ["issuer", d.issuer_dn],
    ["serial", `${d.serial_hex} (${d.serial_number})`],
    ["not before", d.not_before],
    ["not after", `${d.not_after} (${d.days_left < 0 ? `expired ${-d.days_left} days ago` : `${d.days_left} days left`})`],
    ["SANs", none(d.san_entries)],
    ["key usage", none(d.key_usages)],
    ["ext key usage", none(d.ext_key_usages)],
    ["CA", d.is_ca ? "yes" : "no"],
    ["key", d.key_algorithm === "ECDSA" ? `ECDSA P-${d.key_size}` : `${d.key_algorithm} ${d.key_size} bits`],
    ["signature", d.sigalg],
    ["subject key id", d.subject_key_id ?? "(none)"],
    ["authority key id", d.authority_key_id ?? "(none)"],
    ["SHA-256", d.sha256_fingerprint],
  ];
  const w = Math.max(...rows.map(([k]) => k.length)) + 1;
  return rows.map(([k, v]) => `${`${k}:`.padEnd(w)} ${v}`);
}
