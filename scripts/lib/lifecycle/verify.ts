// `make verify`: checks the certificates on disk against the CA and the configs, one line per problem naming the file.
// Every leaf must chain to the CA (signature checked) and be within its validity; every key must match its
// certificate and be readable by its owner only; member certificates need serverAuth, clientAuth and every host of
// req-csr.json (split members: etcdN serverAuth without clientAuth, etcdN-client the reverse), and none may be what
// etcd would refuse under etcd-cluster.json's allowed CN / hostnames; user certificates clientAuth and the config's
// CN; proxy certificates an empty CN. A CRL in
// certs/crl.pem, when present, must be signed by the CA and current. Warnings name etcd pitfalls in the configs.

import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { CertFacts, commonName, parseCertDer, parseCertPem, subjectAltNames, isoSeconds, verifySignature } from "../x509/certinfo";
import { CrlFacts, parseCrlDer } from "../x509/crl";
import { nameString } from "./inspect";
import { caCertFaults, signedBy } from "../x509/chain";
import { formatProblem, isUserError } from "../common/errors";
import { formatIp } from "../config/hosts";
import { publicKeyOfPem } from "../x509/keys";
import { defaultDeps, IssueDeps } from "../x509/issue";
import { certPaths } from "../tree/output";
import { fileHashes, makePlan, PlanItem, retireHint } from "../tree/plan";
import { Stamp, stateDir } from "../tree/state";
import { ekuOpensslName, forbiddenRoleEkus, isMemberRole, missingRoleEkus, Profile, ROLE_EKU_WHY } from "../config/profile";
import { ALLOWED_FIELDS, ClusterSettings, clusterFile, verifyHostname } from "../config/etcd-cluster";
import { parseIp } from "../config/hosts";
import { Role } from "../tree/targets";
import { CertRequest } from "../config/request";
import { caFiles, isCaRole, memberConfig, TreeOptions } from "../tree/targets";
import { carriesChain, certBlocks, intermediateProblems, keyPresent, keyText, inRotation, rootCa } from "../tree/signing-ca";
import { parsePemBlocks } from "../x509/pem";
import { DAY_MS } from "./expiry";

export interface VerifyResult {
  /** one line each, starting with the file it is about */
  problems: string[];
  warnings: string[];
  /** names of the certificates checked */
  checked: string[];
}


/** Message of a UserError (it already names the file), else rethrows. */
function userMessage(e: unknown): string {
  if (isUserError(e)) return e.message;
  throw e;
}

/** Private keys must not be readable by group or others (0600, or stricter). */
export function keyModeProblem(file: string): string | undefined {
  const m = statSync(file).mode & 0o777;
  if ((m & 0o077) === 0) return undefined;
  return `${file}: has mode ${m.toString(8).padStart(4, "0")}, readable by others; a private key must be mode 0600 (chmod 600 ${file}, or run "make", which repairs it)`;
}

/** Without an ExtendedKeyUsage extension a certificate may be used for anything (Go's and OpenSSL's rule). */

/** The SAN entries (DNS:, IP:, email:, URI:) a request's hosts ask for. */
export function expectedSans(r: CertRequest): string[] {
  return [...r.sans.dns.map((d) => `DNS:${d}`), ...r.sans.ips.map((ip) => `IP:${formatIp(ip)}`), ...r.sans.emails.map((e) => `email:${e}`), ...r.sans.uris.map((u) => `URI:${u}`)];
}

/** A certificate and its key (keyFile undefined: a key kept elsewhere, offline or in a token: the certificate alone). */
function checkPair(certFile: string, keyFile: string | undefined, problems: string[]): CertFacts | undefined {
  let facts: CertFacts | undefined;
  if (!existsSync(certFile)) problems.push(`${certFile}: does not exist; run "make"`);
  else
    try {
      facts = parseCertPem(readFileSync(certFile, "utf8"), certFile);
    } catch (e) {
      problems.push(userMessage(e));
    }
  if (keyFile === undefined) return facts;
  if (!existsSync(keyFile)) {
    problems.push(`${keyFile}: does not exist; run "make" (a new key and certificate are made)`);
    return facts;
  }
  const mode = keyModeProblem(keyFile);
  if (mode) problems.push(mode);
  try {
    const key = publicKeyOfPem(readFileSync(keyFile, "utf8"), keyFile);
    if (facts && !key.spki.equals(facts.spki)) problems.push(`${keyFile}: does not match ${certFile} (a different public key); run "make" to re-issue the certificate for this key`);
  } catch (e) {
    problems.push(userMessage(e));
  }
  return facts;
}

function checkValidity(file: string, f: CertFacts, now: Date, fix: string, problems: string[]): void {
  if (now > f.notAfter) problems.push(`${file}: expired on ${isoSeconds(f.notAfter)}; ${fix}`);
  else if (now < f.notBefore) problems.push(`${file}: is not valid until ${isoSeconds(f.notBefore)}; check the clock`);
}

function checkRole(item: PlanItem, file: string, f: CertFacts, problems: string[]): void {
  const { role, configFile } = item.target;
  const cn = commonName(f.subjectDer);
  if (isCaRole(role)) return;
  const missing = missingRoleEkus(role, f.extKeyUsages).map(ekuOpensslName);
  if (missing.length) {
    problems.push(`${file}: lacks the extended key usage ${missing.join(" and ")}, needed by a ${role} certificate (${ROLE_EKU_WHY[role]}); fix the profile in ca-config.json and run "make"`);
  }
  const extra = forbiddenRoleEkus(role, f.extKeyUsages).map(ekuOpensslName);
  if (extra.length)
    problems.push(`${file}: allows the extended key usage ${extra.join(" and ")}, but MEMBER_CERTS=split keeps a ${role} certificate to ${role === "member-server" ? "serverAuth" : "clientAuth"} only; run "make" to re-issue it`);
  if (isMemberRole(role)) {
    const have = new Set(subjectAltNames(f).map((s) => (s.startsWith("DNS:") ? s.toLowerCase() : s)));
    const lack = expectedSans(item.request).filter((s) => !have.has(s.startsWith("DNS:") ? s.toLowerCase() : s));
    if (lack.length) problems.push(`${file}: lacks ${lack.join(", ")} of the hosts in ${configFile}; run "make" to re-issue it`);
  } else if (role === "user") {
    if (cn !== item.request.cn) problems.push(`${file}: CN is ${JSON.stringify(cn)} but ${configFile} asks for ${JSON.stringify(item.request.cn)} (etcd would see the user ${JSON.stringify(cn)}); run "make" to re-issue it`);
  } else if (role === "proxy" && cn !== "") {
    problems.push(`${file}: CN is ${JSON.stringify(cn)}; a proxy certificate needs an empty CN (etcd 3.4's gRPC proxy refuses a client certificate with a CN); run "make" to re-issue it`);
  }
}

/** Which of etcd's allowed-identity checks see a certificate of this role (as the peer or client presenting it). */
function identityChecks(role: Role): ("peer" | "client")[] {
  // etcd applies --peer-cert-allowed-* to the certificate a peer presents on the peer port, on both ends of the
  // connection (its tls.Config for serving and for dialing share the check): the combined member certificate, and
  // in the split layout both the server certificate and the peer-client certificate. --client-cert-allowed-hostname
  // applies to what dials the client port: users, proxies, and the member itself (its gateway).
  if (role === "member") return ["peer", "client"];
  if (role === "member-server") return ["peer"];
  if (role === "member-client") return ["peer", "client"];
  if (role === "proxy" || role === "user") return ["client"];
  return [];
}

/** The allowed identities of etcd-cluster.json that a certificate does not satisfy: what etcd would refuse. */
export function identityProblems(role: Role, file: string, f: CertFacts, s: ClusterSettings, configDir: string): string[] {
  const out: string[] = [];
  const cf = clusterFile(configDir);
  const checks = identityChecks(role);
  const sans = subjectAltNames(f);
  const dns = sans.filter((x) => x.startsWith("DNS:")).map((x) => x.slice(4));
  const ips = sans.filter((x) => x.startsWith("IP:")).map((x) => parseIp(x.slice(3))).filter((x): x is Buffer => !!x);
  const refusal = '(etcd: "client certificate authentication failed")';
  for (const [field, flag, key] of ALLOWED_FIELDS) {
    const allowed = s[key];
    if (!allowed.length || !checks.includes(field.startsWith("peer") ? "peer" : "client")) continue;
    const list = allowed.map((v) => JSON.stringify(v)).join(", ");
    if (key === "peerAllowedCn") {
      const cn = commonName(f.subjectDer);
      if (!allowed.includes(cn)) out.push(`${file}: CN ${JSON.stringify(cn)} is not an allowed peer CN (${cf}: ${field}: ${list}); members started with ${flag} refuse it ${refusal}; the member CN comes from req-csr.json's "CN"`);
    } else if (!allowed.some((h) => verifyHostname({ dns, ips }, h))) {
      out.push(`${file}: no SAN (${sans.join(", ") || "none"}) matches the allowed ${field.startsWith("peer") ? "peer" : "client"} hostname ${list} (${cf}: ${field}); members started with ${flag} refuse it ${refusal}; add the name to the certificate's hosts`);
    }
  }
  return out;
}

/** certs/crl.pem: a PEM (or DER) X.509 CRL, signed by the CA, issued in the past and not past its nextUpdate. */
export async function checkCrl(file: string, ca: CertFacts, now: Date): Promise<string[]> {
  const bytes = readFileSync(file);
  const text = bytes.toString("latin1");
  let der: Buffer = bytes;
  if (text.includes("-----BEGIN")) {
    const block = parsePemBlocks(text).find((b) => b.label === "X509 CRL");
    if (!block) return [`${file}: holds no "X509 CRL" PEM block; expected the CRL etcd reads with --client-crl-file`];
    der = block.der;
  }
  let crl: CrlFacts;
  try {
    crl = parseCrlDer(der);
  } catch (e) {
    return [`${file}: is not a valid X.509 CRL (${e instanceof Error ? e.message : e})`];
  }
  const problems: string[] = [];
  if (!crl.issuerDer.equals(ca.subjectDer)) problems.push(`${file}: is issued by "${nameString(crl.issuerDer)}", not by the CA ("${nameString(ca.subjectDer)}")`);
  else if (!verifySignature(crl, ca.spki)) problems.push(`${file}: its signature does not verify with the CA's key; re-make the CRL with the current CA`);
  if (crl.thisUpdate > now) problems.push(`${file}: its thisUpdate ${isoSeconds(crl.thisUpdate)} is in the future; check the clock`);
  if (crl.nextUpdate && crl.nextUpdate < now) problems.push(`${file}: is out of date: its nextUpdate was ${isoSeconds(crl.nextUpdate)}; re-make the CRL`);
  return problems;
}

function profilePath(p: Profile): string {
  return p.name === "default" ? "signing.default.expiry" : `signing.profiles.${p.name}.expiry`;
}

/** etcd pitfalls in the member config and the profiles (warnings, not failures). */
function configWarnings(o: TreeOptions, items: PlanItem[], ca: CertFacts | undefined, now: Date): string[] {
  const out: string[] = [];
  const member = items.find((i) => isMemberRole(i.target.role) || i.target.role === "proxy");
  if (member) {
    const file = memberConfig(o);
    const hosts = expectedSans(member.request);
    for (const [h, why] of [["IP:127.0.0.1", "local clients and health checks dial 127.0.0.1"], ["DNS:localhost", "local clients dial localhost"]])
      if (!hosts.some((x) => x.toLowerCase() === h.toLowerCase())) out.push(`${file}: hosts: lacks "${h.split(":")[1]}"; ${why}, and etcd checks it against the certificate`);
    if (member.request.sans.ips.length === 0 && member.request.sans.dns.length > 0)
      out.push(`${file}: hosts: has DNS names only; etcd checks a peer's remote IP against the IP SANs (else it resolves the DNS names), so add each member's IP address`);
  }
  if (ca) {
    const left = ca.notAfter.getTime() - now.getTime();
    const seen = new Set<string>();
    for (const i of items) {
      const p = i.profile;
      if (!p || isCaRole(i.target.role) || seen.has(p.name)) continue;
      seen.add(p.name);
      const ends = p.notAfter ? p.notAfter.getTime() - now.getTime() : p.expiryMs;
      if (ends > left)
        out.push(
          `${caFiles(o).signing}: ${profilePath(p)}: ${p.notAfter ? `not_after ${isoSeconds(p.notAfter)}` : `"${p.expiryMs / 3_600_000}h"`} outlasts the CA, which ends ${isoSeconds(ca.notAfter)} (${Math.floor(left / DAY_MS)} days left); its certificates are cut to the CA's end, so plan a new CA ("make rotate") before then`,
        );
    }
  }
  return out;
}

/** A certificate whose public key is also another's. */
interface KeyHolder {
  name: string;
  cert: string;
  key: string;
  /** its certificate or key differs from what tls-setup wrote (its stamp), or it has no stamp */
  outside: boolean;
}

/** Whether a certificate's files are not the ones tls-setup wrote (by the hashes in its stamp). */
function changedOutside(certsDir: string, name: string, stamp: Stamp | undefined): boolean {
  if (!stamp) return true;
  const now = fileHashes(certsDir, name);
  return now.cert !== stamp.files.cert || now.key !== stamp.files.key;
}

/**
 * Warnings for certificates sharing one key. The stamps tell which files were changed outside tls-setup (the copy);
 * the warning names that one, and its advice re-keys that one only. The CA is never the copy.
 */
function sharedKeyWarnings(groups: Iterable<KeyHolder[]>, stamps: string): string[] {
  const out: string[] = [];
  for (const g of groups) {
    if (g.length < 2) continue;
    const copies = g.filter((h) => h.outside && h.name !== "ca");
    const originals = g.filter((h) => !copies.includes(h));
    if (copies.length && originals.length) {
      for (const c of copies)
        out.push(`${c.cert}: has the same key as ${originals[0].key} and was changed outside tls-setup (files copied from another certificate?); give it its own with "make renew NAME=${c.name} NEW_KEY=1"`);
    } else {
      out.push(
        `${g.map((h) => h.cert).join(", ")}: share one key (files copied from another certificate?), and the stamps in ${stamps}/ do not tell which is the copy; give the copy its own with "make renew NAME=<the copy> NEW_KEY=1"`,
      );
    }
  }
  return out;
}

/** Whether a leaf's file carries an intermediate (not the signing one) that issued it and that a root of the trust file signed. */
function underOtherRoot(fileText: string, leaf: CertFacts, trusted: CertFacts[], signing: CertFacts): boolean {
  const der = certBlocks(fileText)[1];
  let im: CertFacts;
  try {
    if (!der) return false;
    im = parseCertDer(der);
  } catch {
    return false;
  }
  return !im.der.equals(signing.der) && im.isCa && signedBy(leaf, im) && trusted.some((t) => signedBy(im, t));
}

/** Verifies every certificate of a tree. Never throws for what it finds: it returns one line per problem. */
export async function verifyTree(o: TreeOptions, opts: { deps?: IssueDeps } = {}): Promise<VerifyResult> {
  const deps = opts.deps ?? defaultDeps();
  const now = deps.now();
  const plan = makePlan(o);
  const problems = plan.problems.map(formatProblem);
  const warnings = [...plan.warnings];
  const checked: string[] = [];
  const signer = plan.signer;
  const root = rootCa(o);
  // intermediate mode: the root's key may be kept offline; a key in a PKCS#11 token is not read here (that needs its
  // PIN): the certificate alone is checked then
  const rootOffline = !!signer.parent && !keyPresent(root.key);
  const ca = checkPair(root.cert, root.key.kind === "file" && !rootOffline ? root.key.path : undefined, problems);
  if (ca) {
    checked.push("ca");
    problems.push(...caCertFaults(ca, { root: true }).map((why) => `${root.cert}: ${why}`));
    checkValidity(root.cert, ca, now, 'a new CA needs "make rotate"', problems);
  }
  // the trust file holds roots only: an intermediate there would become a trust anchor of its own
  if (existsSync(signer.trust)) {
    const blocks = certBlocks(readFileSync(signer.trust, "utf8"));
    for (const [i, der] of blocks.entries()) {
      let f: CertFacts | undefined;
      try {
        f = parseCertDer(der);
      } catch {
        continue;
      }
      if (!signedBy(f, f)) problems.push(`${signer.trust}: certificate ${i + 1} ("${nameString(f.subjectDer)}") is not a self-signed root; the trust file must hold roots only (an intermediate there becomes a trust anchor)`);
    }
  }
  // the signing CA: the root, or the intermediate (its chain to the root checked)
  let signing = ca;
  if (signer.parent) {
    signing = undefined;
    const key = signer.key.kind === "file" ? signer.key.path : undefined;
    const im = checkPair(signer.cert, key, problems);
    if (im) {
      checked.push(signer.name);
      const n = certBlocks(readFileSync(signer.cert, "utf8")).length;
      if (n !== 1) problems.push(`${signer.cert}: holds ${n} certificates; expected the intermediate alone`);
      if (ca) problems.push(...intermediateProblems(signer.cert, im, ca, root.cert, now));
      signing = im;
    }
  }
  const holders = new Map<string, KeyHolder[]>();
  const hold = (spki: Buffer, h: KeyHolder) => {
    const k = spki.toString("hex");
    holders.set(k, [...(holders.get(k) ?? []), h]);
  };
  if (ca) hold(ca.spki, { name: "ca", cert: root.cert, key: keyText(root.key), outside: false });
  if (signer.parent && signing) hold(signing.spki, { name: signer.name, cert: signer.cert, key: signer.key.kind === "file" ? signer.key.path : signer.key.uri, outside: false });
  const chain = signer.chain.map((f) => certBlocks(existsSync(f) ? readFileSync(f, "utf8") : "")[0]).filter((d): d is Buffer => !!d);
  // the trust file's CAs (a bundle of the old and the new CA during a phased rotation)
  const trusted = existsSync(signer.trust) ? certBlocks(readFileSync(signer.trust, "utf8")).flatMap((d) => { try { return [parseCertDer(d)]; } catch { return []; } }) : [];
  const rotating = inRotation(o);
  const signerText = signer.parent ? `the intermediate CA in ${signer.cert}` : `the CA in ${root.cert}`;
  for (const item of plan.items) {
    if (isCaRole(item.target.role)) continue;
    const p = certPaths(o.certsDir, item.target.name);
    // a revoked certificate is meant not to work (and, after a CA rotation, is left to the old CA): said, not checked
    if (item.revoked && existsSync(p.cert)) {
      warnings.push(`${p.cert}: is revoked (serial ${item.revoked.serial}, make revoke); not verified; ${retireHint(item.target)}`);
      continue;
    }
    const f = checkPair(p.cert, p.key, problems);
    if (!f) continue;
    checked.push(item.target.name);
    hold(f.spki, { name: item.target.name, cert: p.cert, key: p.key, outside: changedOutside(o.certsDir, item.target.name, plan.stamps.get(item.target.name)) });
    const byOtherTrusted = !signer.parent && trusted.some((t) => signedBy(f, t));
    // intermediate mode during a root rotation: a leaf still issued by the old intermediate (the one its file carries),
    // which the other root of the bundle signed, is expected until the re-issue ends
    const oldChain = !!signer.parent && rotating && signing !== undefined && !signedBy(f, signing) && underOtherRoot(readFileSync(p.cert, "utf8"), f, trusted, signing);
    if (oldChain) warnings.push(`${p.cert}: is issued by the intermediate it carries, under the other root of the rotation's bundle ${signer.trust}, not by ${signerText}; make ca-rotate-reissue re-issues it`);
    else if (signing && !signedBy(f, signing)) {
      // during a CA rotation a leaf still signed by the other CA of the bundle is expected until the re-issue ends
      if (rotating && byOtherTrusted) warnings.push(`${p.cert}: is signed by the other CA of the rotation's bundle ${signer.trust}, not by the signing CA ${root.cert}; make ca-rotate-reissue re-issues it`);
      else problems.push(`${p.cert}: is not signed by ${signerText}; run "make" to re-issue it`);
    }
    else if (!signer.parent && trusted.length && !byOtherTrusted) problems.push(`${p.cert}: its CA is not in the trust file ${signer.trust}; members, proxies and clients reading it refuse this certificate`);
    if (!oldChain && signer.chain.length && chain.length === signer.chain.length && !carriesChain(readFileSync(p.cert, "utf8"), chain.map((d) => parseCertDer(d))))
      problems.push(`${p.cert}: does not carry ${signer.chain.join(", ")} after the certificate; etcd sends the chain from --cert-file, so clients cannot verify it; run "make" to re-issue it`);
    checkValidity(p.cert, f, now, `renew it with "make renew NAME=${item.target.name}"`, problems);
    checkRole(item, p.cert, f, problems);
    problems.push(...identityProblems(item.target.role, p.cert, f, plan.cluster, o.configDir));
  }
  warnings.push(...sharedKeyWarnings(holders.values(), stateDir(o.certsDir)));
  const crlFile = join(o.certsDir, "crl.pem");
  if (existsSync(crlFile)) {
    if (signing) problems.push(...(await checkCrl(crlFile, signing, now)));
    checked.push("crl");
  }
  warnings.push(...configWarnings(o, plan.items, signing, now));
  for (const x of plan.orphans) warnings.push(`${join(o.certsDir, `${x.name}.pem`)}: ${x.why}; not verified`);
  return { problems, warnings, checked };
}
