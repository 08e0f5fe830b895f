// A second oracle that needs no cfssl: @peculiar/x509's own generator (X509CertificateGenerator.create,
// Pkcs10CertificateRequestGenerator.create) builds the CA, leaf and CSR from the same inputs (same key, serial,
// dates, subject and extensions in the same order, written with its own classes), and the to-be-signed bytes must
// equal ours. Signatures are left out (ECDSA signatures are randomized).
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { parseRequest, CertRequest } from "../scripts/lib/config/request";
import { parseCaConfig, Profile } from "../scripts/lib/config/profile";
import { formatIp } from "../scripts/lib/config/hosts";
import { issueCa, issueLeaf, makeCsr, IssueDeps, Issued, DEFAULT_BACKDATE_MS, roundToMinute } from "../scripts/lib/x509/issue";
import { generateKeyPair, getCrypto, KeyPair } from "../scripts/lib/x509/keys";
import { children, raw, readNode } from "../scripts/lib/x509/der";

const crypto = getCrypto();
x509.cryptoProvider.set(crypto as Crypto);

/** The first element of a signed structure: TBSCertificate or CertificationRequestInfo. */
const tbsOf = (der: Buffer | ArrayBuffer): string => {
  const b = Buffer.from(der as ArrayBuffer);
  return raw(b, children(b, readNode(b))[0]).toString("hex");
};

const NOW = new Date("2026-03-04T05:06:37.890Z");
const deps = (serial: string): IssueDeps => ({ now: () => NOW, randomSerial: () => Buffer.from(serial, "hex"), crypto });

/** cfssl's subject order (C, ST, L, O, OU, CN, serialNumber; one RDN per type) as @peculiar/x509 JSON names. */
function peculiarName(r: CertRequest): x509.Name {
  const json: x509.JsonName = [];
  for (const f of ["C", "ST", "L", "O", "OU"] as const) {
    const values = r.names.map((n) => n[f]).filter((v): v is string => !!v);
    if (values.length) json.push({ [f]: values });
  }
  if (r.cn) json.push({ CN: [r.cn] });
  if (r.serialNumber) json.push({ "2.5.4.5": [r.serialNumber] });
  // DER: the values of a multi-valued RDN (a SET OF) go sorted by their encodings; @peculiar/x509 keeps the order it
  // is given, so give them in the order of @peculiar/x509's own encodings of each
  for (const rdn of json) for (const [type, values] of Object.entries(rdn)) rdn[type] = [...values].sort((a, b) => Buffer.compare(atv(type, a), atv(type, b)));
  return new x509.Name(json);
}

/** @peculiar/x509's encoding of one AttributeTypeAndValue (from a one-attribute Name: SEQUENCE { SET { atv } }). */
function atv(type: string, value: string): Buffer {
  const b = Buffer.from(new x509.Name([{ [type]: [value] }]).toArrayBuffer());
  const set = children(b, readNode(b))[0];
  return raw(b, children(b, set)[0]);
}

function signing(spec: KeyPair["spec"]): Algorithm | EcdsaParams {
  if (spec.algo === "ecdsa") return { name: "ECDSA", hash: { 256: "SHA-256", 384: "SHA-384", 521: "SHA-512" }[spec.size as 256] } as EcdsaParams;
  return { name: "RSASSA-PKCS1-v1_5", hash: spec.size >= 4096 ? "SHA-512" : spec.size >= 3072 ? "SHA-384" : "SHA-256" } as Algorithm;
}

const hexOf = (b: Buffer | ArrayBuffer) => Buffer.from(b as ArrayBuffer).toString("hex");

function sanNames(r: CertRequest, onlyIps: boolean): x509.JsonGeneralName[] {
  return [
    ...(onlyIps ? [] : r.sans.dns.map((value) => ({ type: "dns" as const, value }))),
    ...(onlyIps ? [] : r.sans.emails.map((value) => ({ type: "email" as const, value }))),
    ...r.sans.ips.map((ip) => ({ type: "ip" as const, value: formatIp(ip) })),
  ];
}

async function peculiarCsr(r: CertRequest, key: KeyPair, publicKey: CryptoKey): Promise<string> {
  const extensions: x509.Extension[] = [];
  const san = sanNames(r, false);
  if (san.length) extensions.push(new x509.SubjectAlternativeNameExtension(san, false));
  if (r.ca) extensions.push(new x509.BasicConstraintsExtension(true, r.ca.pathlen > 0 || r.ca.pathlenzero ? r.ca.pathlen : undefined, true));
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: peculiarName(r), keys: { privateKey: key.privateKey, publicKey }, signingAlgorithm: signing(key.spec), extensions });
  return tbsOf(csr.rawData);
}

async function publicKeyOf(k: KeyPair): Promise<CryptoKey> {
  const alg = k.spec.algo === "ecdsa" ? { name: "ECDSA", namedCurve: `P-${k.spec.size}` } : { name: "RSASSA-PKCS1-v1_5", hash: (signing(k.spec) as EcdsaParams).hash };
  return crypto.subtle.importKey("spki", new Uint8Array(k.spki), alg, true, ["verify"]);
}

const req = (json: object, ca = false) => {
  const r = parseRequest(json as Record<string, unknown>, "in.json", { allowCa: ca });
  if (!r.value) throw new Error(JSON.stringify(r.problems));
  return r.value;
};

interface CaMade {
  request: CertRequest;
  key: KeyPair;
  issued: Issued;
  ski: Buffer;
}

const caCases: [string, object, string][] = [
  ["ECDSA P-384 CA with names, IP hosts (DNS dropped) and pathlen 1", { CN: "Test CA", names: [{ C: "US", ST: "CA", L: "San Francisco", O: "etcd", OU: "ops" }, { OU: "ça & co" }], hosts: ["10.0.0.1", "ca.example", "::1"], key: { algo: "ecdsa", size: 384 }, ca: { pathlen: 1 } }, "5a0102030405060708090a0b0c0d0e0f10111213"],
  ["RSA 2048 CA, pathlenzero, lifetime past 2049 (GeneralizedTime)", { CN: "RSA CA", key: { algo: "rsa", size: 2048 }, ca: { expiry: "300000h", pathlenzero: true } }, "00f10203040506070809"],
  ["P-256 CA without CN (names only)", { names: [{ O: "only org" }, { O: "second org" }], key: { algo: "ecdsa", size: 256 } }, "7f"],
];

describe("@peculiar/x509's generator makes the same to-be-signed bytes", () => {
  const cas: CaMade[] = [];

  test.each(caCases)("CA: %s", async (_name, json, serial) => {
    const request = req(json, true);
    const key = await generateKeyPair(request.key, crypto);
    const issued = await issueCa(request, deps(serial), key);
    const name = peculiarName(request);
    const ski = await x509.SubjectKeyIdentifierExtension.create(new Uint8Array(key.spki), false, crypto as Crypto);
    const extensions: x509.Extension[] = [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      new x509.BasicConstraintsExtension(true, request.ca && (request.ca.pathlen > 0 || request.ca.pathlenzero) ? request.ca.pathlen : undefined, true),
      ski,
    ];
    const san = sanNames(request, true);
    if (san.length) extensions.push(new x509.SubjectAlternativeNameExtension(san, false));
    const notBefore = new Date(roundToMinute(NOW).getTime() - DEFAULT_BACKDATE_MS);
    const notAfter = new Date(notBefore.getTime() + (request.ca?.expiryMs ?? 43800 * 3_600_000));
    const theirs = await x509.X509CertificateGenerator.create({ serialNumber: serial, subject: name, issuer: name, notBefore, notAfter, publicKey: new Uint8Array(key.spki), signingKey: key.privateKey, signingAlgorithm: signing(key.spec), extensions }, crypto as Crypto);
    expect(tbsOf(issued.certDer)).toBe(tbsOf(theirs.rawData));
    // and the CSR beside it
    expect(tbsOf(Buffer.from(issued.csrPem.replace(/-----[^-]+-----|\s/g, ""), "base64"))).toBe(await peculiarCsr(request, key, await publicKeyOf(key)));
    cas.push({ request, key, issued, ski: Buffer.from(ski.keyId, "hex") });
  });

  const profiles = parseCaConfig(
    {
      signing: {
        default: { usages: ["signing", "key encipherment", "server auth", "client auth"], expiry: "8760h", ocsp_url: "http://ocsp.example/", crl_url: "http://crl.example/ca.crl", issuer_urls: ["http://ca.example/ca.crt", "http://ca2.example/ca.crt"] },
        profiles: {
          user: { usages: ["client auth"], expiry: "720h", backdate: "1h" },
          many: { usages: ["digital signature", "content commitment", "key agreement", "decipher only", "any", "code signing", "email protection", "ocsp signing", "netscape sgc"], expiry: "24h", issuer_urls: [] },
          intermediate: { usages: ["cert sign", "crl sign"], expiry: "8760h", ca_constraint: { is_ca: true, max_path_len: 0, max_path_len_zero: true } },
        },
      },
    },
    "ca-config.json",
  ).value!;

  const leafCases: [string, object, string, number, string][] = [
    ["member: DNS, email, IPv4 and IPv6 SANs, AIA and CRL DP", { CN: "etcd1", names: [{ O: "etcd", OU: "members" }], hosts: ["etcd1.example", "ops@example.com", "10.0.0.7", "2001:db8::7", "*.etcd.example"] }, "default", 0, "1a2b3c"],
    ["user: client auth only, backdate 1h, RSA CA", { CN: "calico-node", names: [{ O: "tenant 😀" }], hosts: [], key: { algo: "rsa", size: 2048 } }, "user", 1, "0102030405060708090a0b0c0d0e0f1011121314"],
    ["proxy: empty subject, so the SAN is critical", { hosts: ["proxy.example", "127.0.0.1"], key: { algo: "ecdsa", size: 521 } }, "many", 2, "42"],
    ["intermediate CA profile: only IP SANs, pathlen 0", { CN: "Intermediate", hosts: ["sub.example", "192.168.1.1"], serialnumber: "42" }, "intermediate", 0, "7e7e7e"],
  ];

  test.each(leafCases)("leaf: %s", async (_name, json, profileName, caIndex, serial) => {
    expect(cas.length).toBe(caCases.length);
    const ca = cas[caIndex];
    const profile: Profile = profileName === "default" ? profiles.default : profiles.profiles[profileName];
    const request = req(json);
    const key = await generateKeyPair(request.key, crypto);
    const issuer = { certDer: ca.issued.certDer, subjectDer: Buffer.from(peculiarName(ca.request).toArrayBuffer()), ski: ca.ski, notAfter: ca.issued.notAfter, key: ca.key };
    const issued = await issueLeaf(request, profile, issuer, deps(serial), key);

    const isCa = profile.caConstraint?.isCa === true;
    const extensions: x509.Extension[] = [];
    const flags = profile.keyUsageBits.reduce((a, b) => a | (1 << b), 0);
    if (flags) extensions.push(new x509.KeyUsagesExtension(flags, true));
    if (profile.extKeyUsages.length) extensions.push(new x509.ExtendedKeyUsageExtension(profile.extKeyUsages, false));
    extensions.push(isCa ? new x509.BasicConstraintsExtension(true, profile.caConstraint!.maxPathLen > 0 || profile.caConstraint!.maxPathLenZero ? profile.caConstraint!.maxPathLen : undefined, true) : new x509.BasicConstraintsExtension(false, undefined, true));
    extensions.push(await x509.SubjectKeyIdentifierExtension.create(new Uint8Array(key.spki), false, crypto as Crypto));
    extensions.push(new x509.AuthorityKeyIdentifierExtension(hexOf(ca.ski), false));
    if (profile.ocspUrl || profile.issuerUrls.length) extensions.push(new x509.AuthorityInfoAccessExtension({ ocsp: profile.ocspUrl ? [profile.ocspUrl] : [], caIssuers: profile.issuerUrls }));
    const san = sanNames(request, isCa);
    const subject = peculiarName(request);
    if (san.length) extensions.push(new x509.SubjectAlternativeNameExtension(san, request.cn === "" && request.names.every((n) => Object.keys(n).length === 0) && !request.serialNumber));
    if (profile.crlUrl) extensions.push(new x509.CRLDistributionPointsExtension([profile.crlUrl]));

    const notBefore = new Date(roundToMinute(NOW).getTime() - (profile.backdateMs || DEFAULT_BACKDATE_MS));
    const theirs = await x509.X509CertificateGenerator.create(
      { serialNumber: serial, subject, issuer: peculiarName(ca.request), notBefore, notAfter: new Date(notBefore.getTime() + profile.expiryMs), publicKey: new Uint8Array(key.spki), signingKey: ca.key.privateKey, signingAlgorithm: signing(ca.key.spec), extensions },
      crypto as Crypto,
    );
    expect(tbsOf(issued.certDer)).toBe(tbsOf(theirs.rawData));
    expect(tbsOf(Buffer.from(issued.csrPem.replace(/-----[^-]+-----|\s/g, ""), "base64"))).toBe(await peculiarCsr(request, key, await publicKeyOf(key)));
    // the standalone CSR writer too
    expect(tbsOf(await makeCsr(request, key, crypto))).toBe(await peculiarCsr(request, key, await publicKeyOf(key)));
  });
});
