// The planner: decides, by content, what is stale and why. `make`, `make -n` (through `tls-setup plan`) and the
// watcher all use it, so they never disagree. makePlan = the decisions below over what readPlanInputs (plan-read.ts,
// the only I/O) found: the CA's decision, each leaf's decision (make, adopt or keep), the orphans.

import { basename, join } from "node:path";
import { Problem } from "../common/errors";
import { CertRequest, KeySpec } from "../config/request";
import { formatIp } from "../config/hosts";
import { ekuName, ekuOpensslName, forbiddenRoleEkus, intermediateProfile, isMemberRole, LeafRole, missingRoleEkus, Profile, restrictProfile, ROLE_EKU_WHY, selectProfile, SigningConfig } from "../config/profile";
import { ClusterSettings, MemberCerts } from "../config/etcd-cluster";
import { canonicalSerialHex, CertFacts, subjectAltNames } from "../x509/certinfo";
import { signedBy } from "../x509/chain";
import { encodeSubject } from "../x509/subject";
import { isCaRole, memberConfig, Role, Target, TreeOptions } from "./targets";
import { CaRef, keyText, pathLen, rootKeyAbsent, SigningCa } from "./signing-ca";
import { hashValue, Inputs, Stamp } from "./state";
import { bundlePaths } from "./output";
import { EtcdAccess } from "../config/etcd-access";
import { FileHashes, Found, PlanInputs, readPlanInputs, requestKey } from "./plan-read";
import { RevokedEntry } from "./revoked";

export { fileHashes, loadUsers } from "./plan-read";
export type { FileHashes, Found, PlanInputs } from "./plan-read";

export type Action = "make" | "adopt" | "keep";

export interface PlanItem {
  target: Target;
  action: Action;
  /** why it is made (or "up to date") */
  reason: string;
  request: CertRequest;
  /** undefined for the CA */
  profile?: Profile;
  inputs: Inputs;
  stamp?: Stamp;
  /** a user's "etcd" block (users only, when present) */
  etcd?: EtcdAccess;
  /** for "adopt": the files found (their hashes and the certificate), from which the stamp is written */
  found?: Found;
  /** its current certificate's revocation (make revoke), when revoked */
  revoked?: RevokedEntry;
}

/** A certificate with files and a stamp in certs/ that the configs no longer name, and why. */
export interface Orphan {
  name: string;
  /** what happened: "no longer a member (ETCD_MEMBERS)", "its config (req-x.json) is gone", ... */
  why: string;
}

export interface Plan {
  options: TreeOptions;
  /** the member layout in force */
  layout: MemberCerts;
  /** etcd-cluster.json's settings (the allowed identities verify checks) */
  cluster: ClusterSettings;
  items: PlanItem[];
  problems: Problem[];
  warnings: string[];
  /** certificates with files and a stamp in certs/ that the configs no longer name */
  orphans: Orphan[];
  /** SHA-256 of the current signing CA's certificate (the root, or the intermediate; undefined when it will be made) */
  caFingerprint?: string;
  /** the CA that signs the leaves, its chain and the trust file */
  signer: SigningCa;
  /** the stamps found in certs/.tls-setup/ */
  stamps: Map<string, Stamp>;
}

export interface PlanOptions {
  /** re-make everything, the CA included (hack/tls-setup's behaviour) */
  rotate?: boolean;
  /** only these targets (and the CA when they need it) */
  only?: string[];
  /** the CA only (and the intermediate, in intermediate mode) */
  caOnly?: boolean;
  /** a new intermediate CA (new key), and so every leaf re-issued (make rotate-intermediate) */
  rotateIntermediate?: boolean;
  /** re-make the `only` targets even when up to date (renewal) */
  force?: boolean;
}

/** The part of a request that decides the certificate's content. */
function requestInputs(r: CertRequest): unknown {
  return { cn: r.cn, names: r.names, serialNumber: r.serialNumber, sans: r.sans, key: r.key, ca: r.ca };
}

/** The whole signing config and the profile picked from it: any real edit of ca-config.json re-makes every leaf. */
function profileInputs(cfg: SigningConfig, p: Profile): unknown {
  return p.restrictedTo ? { config: cfg, profile: p.name, restrictedTo: p.restrictedTo } : { config: cfg, profile: p.name };
}

const profileKey = (p: Profile) => (p.restrictedTo ? `${p.name}\u0000${p.restrictedTo}` : p.name);

/** Which of a certificate's files differs from what its stamp recorded, if any. */
interface FileDrift {
  part: "cert" | "key" | "csr";
  missing: boolean;
}

function fileDrift(now: FileHashes, stamp: Stamp): FileDrift | undefined {
  for (const part of ["cert", "key", "csr"] as const) {
    if (now[part] === undefined) return { part, missing: true };
    if (now[part] !== stamp.files[part]) return { part, missing: false };
  }
  return undefined;
}

const driftText = (certsDir: string, name: string, d: FileDrift): string => `${bundlePaths(join(certsDir, name))[d.part]} ${d.missing ? "is missing" : "was changed outside tls-setup"}`;

function roleProblems(role: LeafRole, profile: Profile, file: string): Problem[] {
  const out: Problem[] = [];
  const path = `signing.profiles.${profile.name}.usages`;
  const missing = missingRoleEkus(role, profile.extKeyUsages);
  if (missing.length) out.push({ file, path, message: `lacks ${missing.map((m) => `"${ekuName(m)}"`).join(" and ")}, needed by ${role} certificates (${ROLE_EKU_WHY[role]})` });
  const extra = forbiddenRoleEkus(role, profile.extKeyUsages);
  if (extra.length)
    out.push({ file, path, message: `${profile.extKeyUsages.length ? `has ${extra.map((m) => `"${ekuName(m)}"`).join(" and ")}` : "has no extended key usage (which allows every usage)"}; ${role} certificates (MEMBER_CERTS=split) must not carry ${extra.map((m) => `"${ekuName(m)}"`).join(" and ")}: the split layout keeps server and client auth on separate certificates` });
  return out;
}

function pickProfile(cfg: SigningConfig, t: Target, explicit: string | undefined, signingFile: string, problems: Problem[]): Profile | undefined {
  // split members: a profile named "member-server" / "member-client" when ca-config.json has one; else the profile a
  // combined member would get, limited to server auth or to client auth
  if (t.role === "member-server" || t.role === "member-client") {
    if (Object.hasOwn(cfg.profiles, t.role)) return cfg.profiles[t.role];
    const base = pickProfile(cfg, { ...t, role: "member" }, explicit, signingFile, problems);
    return base && restrictProfile(base, t.role === "member-server" ? "server auth" : "client auth");
  }
  if (explicit) {
    const p = selectProfile(cfg, explicit, signingFile);
    if (!p.value) problems.push(...p.problems.map((x) => ({ ...x, message: `${x.message} (asked for by ${t.configFile})` })));
    return p.value;
  }
  // a profile named after the role, else the default
  return (Object.hasOwn(cfg.profiles, t.role) ? cfg.profiles[t.role] : undefined) ?? cfg.default;
}

/** Why a certificate whose stamp has another role is re-made (a switch of MEMBER_CERTS, mostly). */
export function roleChangeReason(from: string, to: Role, byDefault = false): string {
  if (from === "member" && to === "member-server") return "MEMBER_CERTS=split: re-issued with server auth only (its client side is now a separate certificate)";
  if (from === "member-server" && to === "member")
    return `MEMBER_CERTS=combined${byDefault ? ' (the default: neither MEMBER_CERTS nor "member_certs" in etcd-cluster.json says split)' : ""}: re-issued with server and client auth`;
  return `its role changed from ${from} to ${to}`;
}

function leafInputs(request: CertRequest, profileHash: string, caFingerprint: string): Inputs {
  return { request: hashValue(requestInputs(request)), profile: profileHash, ca: caFingerprint };
}

function changedReason(t: Target, a: Inputs, b: Inputs, caWord = "the CA"): string | undefined {
  if (a.request !== b.request) return `${t.configFile} changed`;
  if (a.profile !== b.profile) return "ca-config.json changed";
  if (a.ca !== b.ca) return `${caWord} changed`;
  return undefined;
}

/** What a CA's decision (the root's or the intermediate's) reads of its own files. */
interface CaFileFacts {
  target: Target;
  certsDir: string;
  inputs: Inputs;
  stamp?: Stamp;
  files: FileHashes;
  /** whether its certificate and key files exist */
  exists: { cert: boolean; key: boolean };
  rotate?: boolean;
  /** the CA key's URI when it is in a PKCS#11 token (tree/ca-key.ts) */
  tokenKey?: string;
}

/** The CA's decision. */
export interface CaFacts extends CaFileFacts {
  /** intermediate mode: the root's key may be kept offline (absent) while its certificate stays */
  keyMayBeOffline?: boolean;
}

export interface Decision {
  action: Action;
  reason: string;
  problem?: Problem;
}

/**
 * The CA is made when there is none, when `make rotate` asks for one or when ca-csr.json changed (re-signed with its
 * key when only the certificate is gone); a CA found without a stamp, or changed since its stamp, is adopted (build
 * checks that it is a usable CA first). A certificate without its key is a problem, never a reason for a new CA.
 */
export function decideCa(c: CaFacts): Decision {
  const paths = bundlePaths(join(c.certsDir, "ca"));
  const keep: Decision = { action: "keep", reason: "up to date" };
  if (c.rotate) return { action: "make", reason: "make rotate: a new CA was asked for" };
  if (!c.exists.cert && !c.exists.key) return { action: "make", reason: `${paths.cert} does not exist` };
  if (c.exists.cert && !c.exists.key && c.keyMayBeOffline) return decideOfflineRoot(c, paths);
  if (c.exists.cert && !c.exists.key)
    return { ...keep, problem: { file: paths.key, path: "", message: `is missing but ${paths.cert} exists; restore the key, or run "make rotate" to make a new CA (every certificate is then re-issued)` } };
  if (!c.exists.cert) return { action: "make", reason: `${paths.cert} is missing (re-signed with the existing key)` };
  if (!c.stamp) return { action: "adopt", reason: `adopting the existing CA in ${paths.cert}` };
  if (c.stamp.inputs.request !== c.inputs.request) return { action: "make", reason: `${c.target.configFile} changed` };
  const d = fileDrift(c.files, c.stamp);
  // a missing ca.csr is harmless; a changed cert or key is someone's CA put in place: adopt it, after checks
  if (d?.part === "key" && c.tokenKey) return { action: "adopt", reason: `the CA key is now ${c.tokenKey}; adopting it once it proves to be the CA's` };
  if (d && !(d.part === "csr" && d.missing)) return { action: "adopt", reason: `${driftText(c.certsDir, "ca", d)}; adopting the CA found there` };
  return keep;
}

/**
 * The root with its key kept offline (intermediate mode): its certificate is all the leaves' tree needs. A root found
 * without a stamp, or whose certificate changed, is adopted (build checks the certificate alone); an edited
 * ca-csr.json would need the key (a new root re-signed with it), so it is a problem naming where the key belongs.
 */
function decideOfflineRoot(c: CaFacts, paths: { cert: string; key: string }): Decision {
  const keep: Decision = { action: "keep", reason: "up to date (its key is offline)" };
  if (!c.stamp) return { action: "adopt", reason: `adopting the existing root CA in ${paths.cert} (its key is absent: kept offline)` };
  if (c.stamp.inputs.request !== c.inputs.request) return { ...keep, problem: { file: paths.key, path: "", message: rootKeyAbsent({ name: "ca", cert: paths.cert, key: { kind: "file", path: paths.key } }, `re-making the root CA (${c.target.configFile} changed)`) } };
  if (c.files.cert !== c.stamp.files.cert) return { action: "adopt", reason: `${paths.cert} was changed outside tls-setup; adopting the root CA found there (its key is absent: kept offline)` };
  return keep;
}

/**
 * What the planner knows about the intermediate CA (intermediate mode); its inputs are its request, its profile and the
 * root's fingerprint ("(new CA)" when the root is made).
 */
export interface IntermediateFacts extends CaFileFacts {
  /** the root CA is made in this run */
  rootNew: boolean;
  /** the root CA (its files), and whether its key is there to sign with */
  root: CaRef;
  rootKeyPresent: boolean;
  /** a new intermediate was asked for (make rotate-intermediate) */
  rotateIntermediate?: boolean;
  /** a phased root rotation is in progress (then a new intermediate is asked for by make ca-rotate-reissue) */
  inRotation?: boolean;
}

/**
 * The intermediate is made (signed by the root) when there is none, when the root is new, when a new one is asked
 * for, or when intermediate-csr.json, its profile or the root changed; one found without a stamp, or changed since,
 * is adopted after build checks its chain (this needs only the root's certificate). Making it is the one step that
 * needs the root's key: without it the decision carries a one-line problem saying where the key is expected.
 */
export function decideIntermediate(c: IntermediateFacts): Decision {
  const paths = bundlePaths(join(c.certsDir, c.target.name));
  const root = c.root;
  const make = (reason: string): Decision => {
    if (c.rootNew || c.rootKeyPresent) return { action: "make", reason };
    return { action: "make", reason, problem: { file: keyText(root.key), path: "", message: rootKeyAbsent(root, `making the intermediate CA (${reason})`) } };
  };
  if (c.rotate) return make("make rotate");
  if (c.rootNew) return make("the root CA is new");
  if (c.rotateIntermediate) return make(c.inRotation ? "a new intermediate CA under the rotation's new root (make ca-rotate-reissue)" : "a new intermediate CA was asked for (make rotate-intermediate)");
  if (!c.exists.cert && !c.exists.key) return make(`${paths.cert} does not exist`);
  if (c.exists.cert && !c.exists.key)
    return { action: "keep", reason: "up to date", problem: { file: paths.key, path: "", message: `is missing but ${paths.cert} exists; restore the key, or run "make rotate-intermediate" for a new intermediate (every leaf is re-issued; the trust file stays)` } };
  if (!c.exists.cert) return make(`${paths.cert} is missing (re-signed with the existing key)`);
  if (!c.stamp) return { action: "adopt", reason: `adopting the existing intermediate CA in ${paths.cert} (its chain to the root is checked)` };
  if (c.stamp.inputs.request !== c.inputs.request) return make(`${c.target.configFile} changed`);
  if (c.stamp.inputs.profile !== c.inputs.profile) return make("its profile (ca-config.json) changed");
  if (c.stamp.inputs.ca !== c.inputs.ca) return make("the root CA changed");
  const d = fileDrift(c.files, c.stamp);
  if (d?.part === "key" && c.tokenKey) return { action: "adopt", reason: `the intermediate CA's key is now ${c.tokenKey}; adopting it once it proves to be the intermediate's (its chain to the root is checked)` };
  if (d && !(d.part === "csr" && d.missing)) return { action: "adopt", reason: `${driftText(c.certsDir, c.target.name, d)}; adopting the intermediate CA found there (its chain to the root is checked)` };
  return { action: "keep", reason: "up to date" };
}

/** What the planner knows about one leaf. */
export interface LeafFacts {
  target: Target;
  request: CertRequest;
  inputs: Inputs;
  stamp?: Stamp;
  files: FileHashes;
  /** whether its certificate file exists */
  certExists: boolean;
  /** what was found on disk, when its files differ from the stamp (or there is none) */
  found?: Found;
  /** the revocation of its current certificate (make revoke), when it is revoked */
  revoked?: RevokedEntry;
}

/** What every leaf's decision shares. */
export interface LeafContext {
  certsDir: string;
  rotate?: boolean;
  /** renewal asked for (make renew): re-made whatever its state */
  renew?: boolean;
  /** SHA-256 of the signing CA's certificate that stays (undefined: a new one is made) */
  caFingerprint?: string;
  /** the signing CA certificate's facts (the root, or the intermediate) */
  ca?: CertFacts;
  /** how reasons name the signing CA: "the CA" (default) or "the intermediate CA" */
  caWord?: string;
  /** the certificates a leaf's file must carry after the leaf (intermediate mode), and their files */
  chain?: { facts: CertFacts[]; files: string[] };
  /** public key (SPKI hex) of every certificate in the tree, by name */
  certKeys: Map<string, string>;
  now: Date;
  /** the member layout is the default (neither MEMBER_CERTS nor etcd-cluster.json named one) */
  layoutByDefault?: boolean;
}

const specText = (s: KeySpec) => `${s.algo} ${s.size}`;

/** The SAN entries a request's hosts ask for, as subjectAltNames() writes them (DNS names lower-cased). */
function requestSans(r: CertRequest): string[] {
  return [...r.sans.dns.map((d) => `DNS:${d.toLowerCase()}`), ...r.sans.ips.map((ip) => `IP:${formatIp(ip)}`), ...r.sans.emails.map((e) => `email:${e}`), ...r.sans.uris.map((u) => `URI:${u}`)];
}

/**
 * Why a certificate found in certs/ (made outside tls-setup) cannot be adopted, or undefined when it can: it must come
 * with its key and CSR, be signed by the CA and within its validity, carry the config's subject and exactly its SANs,
 * the EKUs its role needs, a key of the config's algorithm and size that belongs to it, and a key of its own (not
 * another certificate's, as when files are copied from another certificate).
 */
export function adoptionRefusal(l: LeafFacts, c: LeafContext): string | undefined {
  const p = bundlePaths(join(c.certsDir, l.target.name));
  const f = l.found;
  if (!f || f.files.key === undefined) return `${p.key} is missing`;
  if (f.files.csr === undefined) return `${p.csr} is missing`;
  if (!f.cert) return `${p.cert} holds no readable certificate`;
  if (!f.key) return `${p.key} holds no usable private key`;
  if (!c.ca || !signedBy(f.cert, c.ca)) return `it is not signed by ${c.caWord ?? "the CA"}`;
  if (c.now < f.cert.notBefore || c.now > f.cert.notAfter) return "it is not within its validity period";
  if (!f.cert.subjectDer.equals(encodeSubject(l.request))) return `its subject is not the one ${l.target.configFile} asks for`;
  const want = requestSans(l.request);
  const have = subjectAltNames(f.cert).map((s) => (s.startsWith("DNS:") ? `DNS:${s.slice(4).toLowerCase()}` : s));
  if ([...want].sort().join("\n") !== [...have].sort().join("\n")) return `its SANs (${have.join(", ") || "none"}) are not the hosts of ${l.target.configFile} (${want.join(", ") || "none"})`;
  const role = l.target.role;
  if (!isCaRole(role)) {
    const missing = missingRoleEkus(role, f.cert.extKeyUsages);
    if (missing.length) return `it lacks the extended key usage ${missing.map((m) => ekuOpensslName(m)).join(" and ")}, needed by a ${l.target.role} certificate`;
    const extra = forbiddenRoleEkus(role, f.cert.extKeyUsages);
    if (extra.length) return `it allows the extended key usage ${extra.map((m) => ekuOpensslName(m)).join(" and ")}, which a ${l.target.role} certificate must not have (MEMBER_CERTS=split)`;
  }
  if (f.key.spec.algo !== l.request.key.algo || f.key.spec.size !== l.request.key.size) return `its key is ${specText(f.key.spec)}, ${l.target.configFile} asks for ${specText(l.request.key)}`;
  if (!f.key.spki.equals(f.cert.spki)) return `${p.key} does not belong to ${p.cert}`;
  const chain = c.chain?.facts ?? [];
  const carried = f.chain ?? [];
  if (chain.length && (carried.length !== chain.length || !carried.every((b, i) => b.equals(chain[i].der))))
    return `its file does not carry ${c.chain!.files.join(", ")} after the certificate (etcd sends the chain from the certificate file)`;
  const spki = f.cert.spki.toString("hex");
  for (const [other, k] of c.certKeys)
    if (other !== l.target.name && k === spki) return `its key is the key of ${bundlePaths(join(c.certsDir, other)).cert} (copied from another certificate?)`;
  return undefined;
}

/**
 * A leaf is made when asked for (rotate, renew), when the CA is new, when it has no files, when its config, the
 * signing config or the CA changed since its stamp, or when its files differ from the stamp. A certificate made
 * outside tls-setup (one tls-setup did not write: no stamp, or another certificate than the stamped one) is adopted
 * instead when it satisfies its config (adoptionRefusal); a stamped certificate whose file was merely edited, or whose
 * key or CSR changed or went missing, is re-made.
 */
export function decideLeaf(l: LeafFacts, c: LeafContext): Decision {
  const make = (reason: string): Decision => ({ action: "make", reason });
  // a revoked certificate is never re-issued by itself (a new serial would undo the revocation): only on request
  if (l.revoked && l.certExists && !c.renew) return { action: "keep", reason: revokedReason(l.target, l.revoked) };
  if (c.rotate) return make("make rotate");
  if (c.renew) return make("renewal asked for");
  if (!c.caFingerprint) return make(`${c.caWord ?? "the CA"} is new`);
  const cert = bundlePaths(join(c.certsDir, l.target.name)).cert;
  const adopted: Decision = { action: "adopt", reason: `${cert} was made outside tls-setup and satisfies ${l.target.configFile}: adopted` };
  if (!l.stamp) {
    if (!l.certExists) return make("new");
    const why = adoptionRefusal(l, c);
    return why ? make(`not made by tls-setup yet, and not adopted: ${why}`) : adopted;
  }
  if (l.stamp.role !== l.target.role) return make(roleChangeReason(l.stamp.role, l.target.role, c.layoutByDefault));
  const d = fileDrift(l.files, l.stamp);
  if (!d) {
    const changed = changedReason(l.target, l.stamp.inputs, l.inputs, c.caWord);
    return changed ? make(changed) : { action: "keep", reason: "up to date" };
  }
  const text = driftText(c.certsDir, l.target.name, d);
  if (l.found?.cert && l.found.certCanonical !== l.stamp.files.cert) {
    const why = adoptionRefusal(l, c);
    return why ? make(`${text}; not adopted: ${why}`) : adopted;
  }
  return make(text);
}

/** Why a revoked certificate stays as it is, and the two ways on. */
export function revokedReason(t: Target, r: RevokedEntry): string {
  const day = r.revokedAt.slice(0, 10);
  return `revoked${day ? ` on ${day}` : ""} (serial ${r.serial}): never re-issued by itself; a new certificate: make renew NAME=${t.name} NEW_KEY=1; ${retireHint(t)}`;
}

/** How a revoked certificate leaves the tree: its config (or its name in ETCD_MEMBERS / PROXIES) goes, then prune. */
export const retireHint = (t: Target): string => `to retire it: remove ${t.configFile}${t.role === "user" ? "" : " (or the name from its list)"}, then make prune`;

/** Stamped certificates whose files are still there but that no target names any more, with what happened (by name). */
export function findOrphans(names: Set<string>, stamps: Map<string, Stamp>, withCert: Set<string>): Orphan[] {
  const why = (s: Stamp): string => {
    if (s.role === "member-client") {
      const member = s.name.replace(/-client$/, "");
      return names.has(member) ? `the client certificate of ${member} in the split layout, unused with MEMBER_CERTS=combined (${member}.pem has server and client auth)` : "no longer a member (not in ETCD_MEMBERS)";
    }
    if (isMemberRole(s.role)) return "no longer a member (not in ETCD_MEMBERS)";
    if (s.role === "proxy") return "no longer a proxy (not in PROXIES)";
    return `its config (${basename(s.config)}) is gone`;
  };
  return [...stamps.values()]
    .filter((s) => !names.has(s.name) && withCert.has(s.name))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((s) => ({ name: s.name, why: why(s) }));
}

/** Plans a tree: reads it (readPlanInputs), then decides. */
export function makePlan(o: TreeOptions, po: PlanOptions = {}): Plan {
  return planFrom(readPlanInputs(o, { only: po.only, caOnly: po.caOnly }), po);
}

/** The plan for what was read: no I/O. */
export function planFrom(x: PlanInputs, po: PlanOptions = {}): Plan {
  const o = x.options;
  const problems = [...x.problems];
  const warnings = [...x.warnings];
  const items: PlanItem[] = [];
  const caTarget = x.targets[0];
  const imTarget = x.targets.find((t) => t.role === "intermediate");
  const leaves = x.targets.filter((t) => !isCaRole(t.role));
  const caRequest = x.requests.get("ca")?.request;
  const caExists = x.exists.get("ca") ?? { cert: false, key: false };
  let rootFingerprint: string | undefined;
  let rootNew = false;
  if (caRequest) {
    const inputs: Inputs = { request: hashValue(requestInputs(caRequest)) };
    const files = x.files.get("ca") ?? {};
    const stamp = x.stamps.get("ca");
    if (x.rotation && po.rotate) problems.push({ file: "", path: "", message: "make rotate: a phased CA rotation is in progress (make ca-rotate-status); finish it (make ca-rotate-finish) instead" });
    const d: Decision = x.rotation ? { action: "keep", reason: x.rotation } : decideCa({ target: caTarget, certsDir: o.certsDir, inputs, stamp, files, exists: caExists, rotate: po.rotate, keyMayBeOffline: !!imTarget, tokenKey: x.caTokenKey });
    if (d.problem) problems.push(d.problem);
    items.push({ target: caTarget, action: d.action, reason: d.reason, request: caRequest, inputs, stamp, found: d.action === "adopt" ? x.found.get("ca") : undefined });
    if (d.action !== "make" && caExists.cert) rootFingerprint = files.cert;
    rootNew = d.action === "make";
  }

  // the CA that signs the leaves: the root, or (intermediate mode) the intermediate
  let caFingerprint = rootFingerprint;
  let signerFacts = x.ca;
  if (imTarget) {
    caFingerprint = undefined;
    signerFacts = undefined;
    const request = x.requests.get(imTarget.name)?.request;
    const profile = x.signing ? intermediateProfile(x.signing, x.signingFile) : undefined;
    if (profile) problems.push(...profile.problems);
    if (request && profile?.value && caRequest) {
      const inputs: Inputs = { request: hashValue(requestInputs(request)), profile: hashValue(profile.value), ca: rootFingerprint ?? "(new CA)" };
      const files = x.files.get(imTarget.name) ?? {};
      const exists = x.exists.get(imTarget.name) ?? { cert: false, key: false };
      const stamp = x.stamps.get(imTarget.name);
      const d = decideIntermediate({ target: imTarget, certsDir: o.certsDir, inputs, stamp, files, exists, rootNew, root: x.signer.parent!, rootKeyPresent: caExists.key, rotate: po.rotate, rotateIntermediate: po.rotateIntermediate, inRotation: x.rotation !== undefined, tokenKey: x.imTokenKey });
      if (d.problem) problems.push(d.problem);
      // a root with path length 0 may sign no CA (Go and openssl refuse the chain): refused before anything is made
      const zero = rootNew ? caRequest.ca?.pathlenzero === true && (caRequest.ca.pathlen ?? 0) === 0 : x.ca !== undefined && pathLen(x.ca) === 0;
      if (d.action === "make" && zero)
        problems.push(
          rootNew
            ? { file: caTarget.configFile, path: "ca.pathlenzero", message: "gives the root a path length of 0, so it may not sign the intermediate CA of intermediate-csr.json; remove it" }
            : { file: x.signer.parent!.cert, path: "", message: "has path length 0, so it may not sign an intermediate CA; a root for intermediate mode needs none (make rotate makes a new root from ca-csr.json)" },
        );
      items.push({ target: imTarget, action: d.action, reason: d.reason, request, profile: profile.value, inputs, stamp, found: d.action === "adopt" ? x.found.get(imTarget.name) : undefined });
      if (d.action !== "make" && exists.cert) {
        caFingerprint = files.cert;
        signerFacts = x.intermediate;
      }
    }
  }

  if (!po.caOnly) {
    if (po.only) for (const n of po.only) if (!x.allNames.has(n)) problems.push({ file: "NAME", path: "", message: `${JSON.stringify(n)} is not a certificate of this tree; known: ${[...x.allNames].join(", ")}` });
    const chain = imTarget && signerFacts ? { facts: [signerFacts], files: x.signer.chain } : undefined;
    const ctx: LeafContext = { certsDir: o.certsDir, rotate: po.rotate, renew: po.force && !!po.only, caFingerprint, ca: signerFacts, caWord: imTarget ? "the intermediate CA" : undefined, chain, certKeys: x.certKeys, now: x.now, layoutByDefault: !o.memberCerts && !x.cluster.memberCerts };
    // hashing the whole signing config once per profile, not once per leaf
    const profileHashes = new Map<string, string>();
    for (const t of leaves) {
      if (isCaRole(t.role)) continue;
      const l = x.requests.get(requestKey(t));
      if (!l?.request || !x.signing) continue;
      const request = t.role === "proxy" ? { ...l.request, cn: "" } : l.request;
      const profile = pickProfile(x.signing, t, l.profileName, x.signingFile, problems);
      if (!profile) continue;
      for (const p of roleProblems(t.role, profile, x.signingFile)) if (!problems.some((q) => q.message === p.message && q.path === p.path)) problems.push(p);
      const stamp = x.stamps.get(t.name);
      const pk = profileKey(profile);
      if (!profileHashes.has(pk)) profileHashes.set(pk, hashValue(profileInputs(x.signing, profile)));
      const inputs = leafInputs(request, profileHashes.get(pk)!, caFingerprint ?? "(new CA)");
      const found = x.found.get(t.name);
      const serial = found?.cert?.serialHex ?? stamp?.serial;
      // (a stamp written before serials had one form may hold the drawn bytes' leading zero)
      const revoked = serial ? x.revoked.get(canonicalSerialHex(serial)) : undefined;
      const d = decideLeaf({ target: t, request, inputs, stamp, files: x.files.get(t.name) ?? {}, certExists: x.exists.get(t.name)?.cert ?? false, found, revoked }, ctx);
      items.push({ target: t, action: d.action, reason: d.reason, request, profile, inputs, stamp, etcd: l.etcd, found: d.action === "adopt" ? found : undefined, revoked });
    }
  }
  if (items.some((i) => isMemberRole(i.target.role))) {
    const req = x.requests.get(memberConfig(o))?.request;
    if (req && req.sans.ips.length === 0 && req.sans.dns.length === 0) warnings.push(`${memberConfig(o)}: hosts: is empty; etcd members need their IP addresses and names (and 127.0.0.1, localhost) as SANs`);
  }
  return { options: o, layout: x.layout, cluster: x.cluster, items, problems, warnings, orphans: findOrphans(x.allNames, x.stamps, x.stampedWithCert), caFingerprint, signer: x.signer, stamps: x.stamps };
}

export const staleItems = (p: Plan): PlanItem[] => p.items.filter((i) => i.action !== "keep");
