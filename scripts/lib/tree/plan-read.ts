// The planner's edge: everything it decides from is read here, in one function (configs parsed, stamps, the hashes of
// the files in certs/, the CA's facts, and the facts of files that differ from their stamp). The decisions in
// plan.ts take this record and read nothing.

import { createPublicKey } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { isUserError, Listed, Problem } from "../common/errors";
import { field, fieldKey } from "../config/gojson";
import { readJsonObjectFile } from "../config/config-files";
import { CertRequest, KeySpec, parseRequest } from "../config/request";
import { parseCaConfig, SigningConfig } from "../config/profile";
import { EtcdAccess, parseUserAccess } from "../config/etcd-access";
import { ClusterSettings, MemberCerts } from "../config/etcd-cluster";
import { CertFacts, parseCertDer, parseCertPem } from "../x509/certinfo";
import { parsePrivateKeyPem } from "../x509/keys";
import { toPem } from "../x509/pem";
import { caFiles, discoverTargets, INTERMEDIATE_NAME, isCaRole, Target, TreeOptions } from "./targets";
import { certBlocks, findSigningCa, inRotation, rotationState, SigningCa } from "./signing-ca";
import { readAllStamps, sha256, Stamp } from "./state";
import { readRevoked, RevokedEntry } from "./revoked";
import { bundlePaths, caPaths, certPaths } from "./output";
import { CaKey, resolveCaKey, resolveIntermediateKey } from "./ca-key";
import { formatPkcs11Uri } from "../x509/pkcs11";

/** SHA-256 of a certificate's three files as they are on disk (undefined: missing or unreadable). */
export interface FileHashes {
  cert?: string;
  key?: string;
  csr?: string;
}

/** A request file, parsed (request undefined when it has problems). */
export interface Loaded {
  request?: CertRequest;
  profileName?: string;
  etcd?: EtcdAccess;
}

/** What was found on disk for a certificate whose files differ from its stamp (or that has none). */
export interface Found {
  files: FileHashes;
  /** the certificate, when it parses */
  cert?: CertFacts;
  /** the certificates after the first in the file (DER): the chain a leaf carries */
  chain?: Buffer[];
  /** SHA-256 of the file's certificates re-encoded as tls-setup writes them: equal to the stamp's when they are the same certificates */
  certCanonical?: string;
  /** the private key's public half (SPKI DER) and spec, when it parses */
  key?: { spki: Buffer; spec: KeySpec };
}

export interface PlanInputs {
  options: TreeOptions;
  /** during a phased CA rotation: why the CA is kept (ca.pem is the trust bundle; the signing CA is its own file) */
  rotation?: string;
  /** the member layout in force (MEMBER_CERTS, else etcd-cluster.json, else "combined") */
  layout: MemberCerts;
  /** etcd-cluster.json's settings */
  cluster: ClusterSettings;
  /** the CA first, then the intermediate (intermediate mode), then the leaves asked for */
  targets: Target[];
  /** the CA that signs the leaves (the root, or the intermediate), its chain and the trust file */
  signer: SigningCa;
  /** the intermediate's facts, when certs/intermediate.pem parses (intermediate mode) */
  intermediate?: CertFacts;
  /** every target of the tree (to tell orphans) */
  allNames: Set<string>;
  /** parsed requests by config file (req-csr.json once for members and proxies) */
  requests: Map<string, Loaded>;
  signing?: SigningConfig;
  signingFile: string;
  /** problems and warnings met while reading and parsing */
  problems: Problem[];
  warnings: string[];
  stamps: Map<string, Stamp>;
  /** file hashes of every target considered */
  files: Map<string, FileHashes>;
  /** the root CA certificate's facts, when certs/ca.pem parses */
  ca?: CertFacts;
  /** facts of the leaves whose files differ from their stamp, or that have none, when all three files exist */
  found: Map<string, Found>;
  /** public key (SPKI hex) of every certificate in the tree, by name (read only when `found` is not empty) */
  certKeys: Map<string, string>;
  /** whether each target's certificate and key files exist */
  exists: Map<string, { cert: boolean; key: boolean }>;
  /** stamped names whose certificate file exists (orphan candidates) */
  stampedWithCert: Set<string>;
  /** the CA key's URI when it is in a PKCS#11 token */
  caTokenKey?: string;
  /** the intermediate's key URI when it is in a PKCS#11 token (intermediate mode) */
  imTokenKey?: string;
  /** the revoked serials (certs/ca-revoked.json), lower-case hex */
  revoked: Map<string, RevokedEntry>;
  now: Date;
}

export interface ReadOptions {
  only?: string[];
  caOnly?: boolean;
  now?: Date;
}

export const requestKey = (t: Target): string => (isCaRole(t.role) ? t.name : t.configFile);

export function loadRequestFor(t: Target, problems: Problem[], warnings: string[]): Loaded {
  const j = readJsonObjectFile(t.configFile);
  if (!j.value) {
    problems.push(...j.problems);
    return {};
  }
  const r = parseRequest(j.value, t.configFile, { allowCa: isCaRole(t.role), requireCn: t.role === "user" });
  if (!r.value) {
    problems.push(...r.problems);
    return {};
  }
  let profileName: string | undefined;
  const pv = field(j.value, "profile");
  if (pv !== undefined && pv !== null) {
    if (typeof pv !== "string" || pv === "") problems.push({ file: t.configFile, path: "profile", message: `${JSON.stringify(pv)} is not a profile name; expected a string naming a profile of ca-config.json` });
    else profileName = pv;
  }
  if (t.role === "user" && r.value.cn !== t.name)
    warnings.push(`${t.configFile}: CN: ${JSON.stringify(r.value.cn)} differs from the user name ${JSON.stringify(t.name)} in the file name; etcd will see the user ${JSON.stringify(r.value.cn)}`);
  const etcd = field(j.value, "etcd");
  let access: EtcdAccess | undefined;
  if (etcd !== undefined && t.role !== "user") problems.push({ file: t.configFile, path: "etcd", message: "is only meaningful in a user's config (req-<user>.json)" });
  else if (etcd !== undefined) {
    const a = parseUserAccess(etcd, r.value.cn, t.configFile, fieldKey(j.value, "etcd"));
    problems.push(...a.problems);
    access = a.value;
  }
  return { request: r.value, profileName, etcd: access };
}

export function fileHashes(certsDir: string, name: string): FileHashes {
  const p = bundlePaths(join(certsDir, name));
  const h = (f: string) => {
    try {
      return sha256(readFileSync(f));
    } catch {
      return undefined;
    }
  };
  return { cert: h(p.cert), key: h(p.key), csr: h(p.csr) };
}

function hashFile(f: string): string | undefined {
  try {
    return sha256(readFileSync(f));
  } catch {
    return undefined;
  }
}

function readCert(file: string): CertFacts | undefined {
  try {
    return parseCertPem(readFileSync(file, "utf8"), file);
  } catch {
    return undefined;
  }
}

/** A certificate file's first certificate, the ones after it, and the hash of all of them as tls-setup writes them. */
function readCertAndChain(file: string): Pick<Found, "cert" | "chain" | "certCanonical"> {
  let blocks: Buffer[];
  try {
    blocks = certBlocks(readFileSync(file, "utf8"));
  } catch {
    return {};
  }
  if (!blocks.length) return {};
  let cert: CertFacts | undefined;
  try {
    cert = parseCertDer(blocks[0]);
  } catch {
    return {};
  }
  return { cert, chain: blocks.slice(1), certCanonical: sha256(blocks.map((b) => toPem("CERTIFICATE", b)).join("")) };
}

function readKey(file: string): Found["key"] {
  try {
    const k = parsePrivateKeyPem(readFileSync(file, "utf8"), file);
    const spki = createPublicKey(k.key).export({ format: "der", type: "spki" });
    return { spki, spec: k.spec };
  } catch {
    return undefined;
  }
}

const differs = (f: FileHashes, s: Stamp | undefined) => !s || f.cert !== s.files.cert || f.key !== s.files.key || f.csr !== s.files.csr;

/** Reads everything the planner decides from. */
export function readPlanInputs(o: TreeOptions, ro: ReadOptions = {}): PlanInputs {
  const problems: Problem[] = [];
  const warnings: string[] = [];
  const {
    value: { targets: all, warnings: tw, layout, settings: cluster },
    problems: tp,
  } = discoverTargets(o);
  problems.push(...tp);
  warnings.push(...tw);
  const stamps = readAllStamps(o.certsDir);
  const rv = readRevoked(o.certsDir);
  problems.push(...rv.problems);

  const signingFile = caFiles(o).signing;
  let signing: SigningConfig | undefined;
  const sj = readJsonObjectFile(signingFile);
  if (!sj.value) problems.push(...sj.problems);
  else {
    const c = parseCaConfig(sj.value, signingFile);
    if (!c.value) problems.push(...c.problems);
    signing = c.value;
  }

  // the CAs, then the leaves asked for (all, unless only some or none)
  const only = ro.only ? new Set(ro.only) : undefined;
  const cas = all.filter((t) => isCaRole(t.role));
  const targets = [...cas, ...(ro.caOnly ? [] : all.filter((t) => !isCaRole(t.role) && (!only || only.has(t.name))))];
  const requests = new Map<string, Loaded>();
  const files = new Map<string, FileHashes>();
  const exists = new Map<string, { cert: boolean; key: boolean }>();
  for (const t of targets) {
    const k = requestKey(t);
    if (!requests.has(k)) requests.set(k, loadRequestFor(t, problems, warnings));
    files.set(t.name, fileHashes(o.certsDir, t.name));
    const p = bundlePaths(join(o.certsDir, t.name));
    exists.set(t.name, { cert: existsSync(p.cert), key: existsSync(p.key) });
  }

  // a CA key in a PKCS#11 token (tree/ca-key.ts): "present" beside its certificate, its stamp hash the URI's
  const tokenKey = (name: string, resolve: () => CaKey): { key?: CaKey; problem: boolean } => {
    let key: CaKey | undefined;
    let problem = false;
    try {
      key = resolve();
    } catch (e) {
      if (!isUserError(e)) throw e;
      problems.push({ file: "", path: "", message: e.message });
      problem = true;
    }
    if ((key?.token || problem) && files.has(name)) {
      if (key?.token) files.get(name)!.key = key.token.hash;
      // (a bad CA_KEY is the one problem said about the CA's key)
      exists.set(name, { cert: exists.get(name)!.cert, key: exists.get(name)!.cert });
    }
    return { key, problem };
  };
  const caKey = tokenKey("ca", () => resolveCaKey(o)).key;
  const imKey = cas.some((t) => t.name === INTERMEDIATE_NAME) ? tokenKey(INTERMEDIATE_NAME, () => resolveIntermediateKey(o)).key : undefined;

  // (after a bad CA_KEY, said above, the signing CA is found as if the key were the file)
  const signer = findSigningCa(o, {
    root: caKey ?? { name: "ca", variable: "CA_KEY", ref: caPaths(o.certsDir).key, where: caPaths(o.certsDir).key },
    intermediate: imKey ?? { name: "intermediate", variable: "CA_KEY", ref: certPaths(o.certsDir, INTERMEDIATE_NAME).key, where: certPaths(o.certsDir, INTERMEDIATE_NAME).key },
  });
  const caFacts = new Map<string, CertFacts>();
  for (const t of cas) {
    const facts = files.get(t.name)?.cert !== undefined ? readCert(bundlePaths(join(o.certsDir, t.name)).cert) : undefined;
    if (facts) caFacts.set(t.name, facts);
  }
  // a phased CA rotation: ca.pem is the trust bundle; the root the leaves (or, in intermediate mode, the intermediate)
  // are compared with is the signing root's own file (ca-prev.pem, then ca-next.pem)
  let rotation: string | undefined;
  const rs = rotationState(o, false);
  if (rs.problem) problems.push({ file: "", path: "", message: rs.problem });
  else if (inRotation(o)) {
    const root = signer.parent ?? signer;
    rotation = signer.parent ? `CA rotation in progress (make ca-rotate-status); the intermediate is signed by ${root.cert}` : `CA rotation in progress (make ca-rotate-status); leaves are signed by ${root.cert}`;
    // (a key in a token: present, as outside a rotation)
    const key = root.key.kind === "file" ? root.key.path : undefined;
    files.set("ca", { ...fileHashes(o.certsDir, "ca"), cert: hashFile(root.cert), key: key === undefined ? sha256(root.key.kind === "pkcs11" ? root.key.uri : "") : hashFile(key) });
    exists.set("ca", { cert: true, key: key === undefined || existsSync(key) });
    const f = readCert(root.cert);
    if (f) caFacts.set("ca", f);
    else caFacts.delete("ca");
  }
  const ca = caFacts.get("ca");
  const found = new Map<string, Found>();
  for (const t of targets) {
    if (isCaRole(t.role)) continue;
    const f = files.get(t.name)!;
    if (f.cert === undefined || f.key === undefined || !differs(f, stamps.get(t.name))) continue;
    const p = bundlePaths(join(o.certsDir, t.name));
    found.set(t.name, { files: f, ...readCertAndChain(p.cert), key: readKey(p.key) });
  }
  for (const [name, facts] of caFacts) found.set(name, { files: files.get(name)!, cert: facts });

  // a candidate's key is compared with every other certificate's
  const certKeys = new Map<string, string>();
  if ([...found.keys()].some((n) => !caFacts.has(n))) {
    for (const t of all) {
      const facts = caFacts.get(t.name) ?? found.get(t.name)?.cert ?? readCert(bundlePaths(join(o.certsDir, t.name)).cert);
      if (facts) certKeys.set(t.name, facts.spki.toString("hex"));
    }
  }

  const stampedWithCert = new Set([...stamps.keys()].filter((n) => existsSync(join(o.certsDir, `${n}.pem`))));
  return { options: o, rotation, layout, cluster, targets, signer, intermediate: signer.parent ? caFacts.get(signer.name) : undefined, allNames: new Set(all.map((t) => t.name)), requests, signing, signingFile, problems, warnings, stamps, files, ca, found, certKeys, exists, stampedWithCert, caTokenKey: caKey?.token && formatPkcs11Uri(caKey.token.uri, { query: false }), imTokenKey: imKey?.token && formatPkcs11Uri(imKey.token.uri, { query: false }), revoked: rv.value ?? new Map(), now: ro.now ?? new Date() };
}

export interface LoadedUser {
  target: Target;
  request: CertRequest;
  etcd?: EtcdAccess;
}

/** The user configs of a tree, parsed and validated, without looking at any certificate (for `make rbac`, secrets). */
export function loadUsers(o: TreeOptions): Listed<LoadedUser[]> {
  const problems: Problem[] = [];
  const warnings: string[] = [];
  const {
    value: { targets },
    problems: tp,
  } = discoverTargets(o);
  problems.push(...tp);
  const users: LoadedUser[] = [];
  for (const t of targets) {
    if (t.role !== "user") continue;
    const l = loadRequestFor(t, problems, warnings);
    if (l.request) users.push({ target: t, request: l.request, etcd: l.etcd });
  }
  return { value: users, problems };
}

