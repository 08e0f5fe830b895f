// The planner: reads the configs and the stamps and decides, by content, what is stale and why. `make`, `make -n`
// (through `tls-setup plan`) and the watcher all use it, so they never disagree.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Problem } from "../common/errors";
import { field, fieldKey } from "../config/gojson";
import { readJsonObjectFile } from "../config/config-files";
import { CertRequest, parseRequest } from "../config/request";
import { ekuName, missingRoleEkus, parseCaConfig, Profile, ROLE_EKU_WHY, selectProfile, SigningConfig } from "../config/profile";
import { caFiles, discoverTargets, memberConfig, Role, Target, TreeOptions } from "./targets";
import { hashValue, Inputs, readAllStamps, sha256, Stamp } from "./state";
import { bundlePaths, caPaths as caPathsIn } from "./output";
import { EtcdAccess, parseUserAccess } from "../config/etcd-access";

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
}

export interface Plan {
  options: TreeOptions;
  items: PlanItem[];
  problems: Problem[];
  warnings: string[];
  /** names with files and a stamp in certs/ but no config any more */
  orphans: string[];
  /** SHA-256 of the current CA certificate (undefined when the CA will be made) */
  caFingerprint?: string;
  /** the stamps found in certs/.tls-setup/ */
  stamps: Map<string, Stamp>;
}

export interface PlanOptions {
  /** re-make everything, the CA included (hack/tls-setup's behaviour) */
  rotate?: boolean;
  /** only these targets (and the CA when they need it) */
  only?: string[];
  /** the CA only */
  caOnly?: boolean;
  /** re-make the `only` targets even when up to date (renewal) */
  force?: boolean;
}

/** The part of a request that decides the certificate's content. */
function requestInputs(r: CertRequest): unknown {
  return { cn: r.cn, names: r.names, serialNumber: r.serialNumber, sans: r.sans, key: r.key, ca: r.ca };
}

/** The whole signing config and the profile picked from it: any real edit of ca-config.json re-makes every leaf. */
function profileInputs(cfg: SigningConfig, p: Profile): unknown {
  return { config: cfg, profile: p.name };
}

export function fileHashes(certsDir: string, name: string): { cert?: string; key?: string; csr?: string } {
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

type FileHashes = ReturnType<typeof fileHashes>;

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

function roleProblems(role: Role, profile: Profile, file: string): Problem[] {
  if (role === "ca") return [];
  const missing = missingRoleEkus(role, profile.extKeyUsages);
  if (!missing.length) return [];
  return [{ file, path: `signing.profiles.${profile.name}.usages`, message: `lacks ${missing.map((m) => `"${ekuName(m)}"`).join(" and ")}, needed by ${role} certificates (${ROLE_EKU_WHY[role]})` }];
}

interface Loaded {
  request?: CertRequest;
  profileName?: string;
  etcd?: EtcdAccess;
}

function loadRequestFor(t: Target, problems: Problem[], warnings: string[]): Loaded {
  const j = readJsonObjectFile(t.configFile);
  if (!j.value) {
    problems.push(...j.problems);
    return {};
  }
  const r = parseRequest(j.value, t.configFile, { allowCa: t.role === "ca", requireCn: t.role === "user" });
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

function pickProfile(cfg: SigningConfig, t: Target, explicit: string | undefined, signingFile: string, problems: Problem[]): Profile | undefined {
  if (explicit) {
    const p = selectProfile(cfg, explicit, signingFile);
    if (!p.value) problems.push(...p.problems.map((x) => ({ ...x, message: `${x.message} (asked for by ${t.configFile})` })));
    return p.value;
  }
  // a profile named after the role, else the default
  return (Object.hasOwn(cfg.profiles, t.role) ? cfg.profiles[t.role] : undefined) ?? cfg.default;
}

function leafInputs(request: CertRequest, profileHash: string, caFingerprint: string): Inputs {
  return { request: hashValue(requestInputs(request)), profile: profileHash, ca: caFingerprint };
}

function changedReason(t: Target, a: Inputs, b: Inputs): string | undefined {
  if (a.request !== b.request) return `${t.configFile} changed`;
  if (a.profile !== b.profile) return "ca-config.json changed";
  if (a.ca !== b.ca) return "the CA changed";
  return undefined;
}

/** The user configs of a tree, parsed and validated, without looking at any certificate (for `make rbac`). */
export function loadUsers(o: TreeOptions): { users: { target: Target; request: CertRequest; etcd?: EtcdAccess }[]; problems: Problem[] } {
  const problems: Problem[] = [];
  const warnings: string[] = [];
  const { targets, problems: tp } = discoverTargets(o);
  problems.push(...tp);
  const users: { target: Target; request: CertRequest; etcd?: EtcdAccess }[] = [];
  for (const t of targets) {
    if (t.role !== "user") continue;
    const l = loadRequestFor(t, problems, warnings);
    if (l.request) users.push({ target: t, request: l.request, etcd: l.etcd });
  }
  return { users, problems };
}

export function makePlan(o: TreeOptions, po: PlanOptions = {}): Plan {
  const problems: Problem[] = [];
  const warnings: string[] = [];
  const { targets, problems: tp } = discoverTargets(o);
  problems.push(...tp);
  const stamps = readAllStamps(o.certsDir);

  // The signing config
  let cfg: SigningConfig | undefined;
  const signingFile = caFiles(o).signing;
  const sj = readJsonObjectFile(signingFile);
  if (!sj.value) problems.push(...sj.problems);
  else {
    const c = parseCaConfig(sj.value, signingFile);
    if (!c.value) problems.push(...c.problems);
    cfg = c.value;
  }

  // Requests: req-csr.json once for members and proxies
  const loaded = new Map<string, Loaded>();
  const load = (t: Target): Loaded => {
    const key = t.role === "ca" ? "ca" : t.configFile;
    if (!loaded.has(key)) loaded.set(key, loadRequestFor(t, problems, warnings));
    return loaded.get(key)!;
  };
  const items: PlanItem[] = [];
  const caTarget = targets[0];
  const caLoaded = load(caTarget);
  const caPaths = caPathsIn(o.certsDir);
  const caStamp = stamps.get("ca");
  let caItem: PlanItem | undefined;
  let caFingerprint: string | undefined;
  if (caLoaded.request) {
    const caInputs: Inputs = { request: hashValue(requestInputs(caLoaded.request)) };
    const certHere = existsSync(caPaths.cert);
    const keyHere = existsSync(caPaths.key);
    let caCertHash: string | undefined;
    let action: Action = "keep";
    let reason = "up to date";
    if (po.rotate) [action, reason] = ["make", "make rotate: a new CA was asked for"];
    else if (!certHere && !keyHere) [action, reason] = ["make", `${caPaths.cert} does not exist`];
    else if (certHere && !keyHere)
      problems.push({ file: caPaths.key, path: "", message: `is missing but ${caPaths.cert} exists; restore the key, or run "make rotate" to make a new CA (every certificate is then re-issued)` });
    else if (!certHere) [action, reason] = ["make", `${caPaths.cert} is missing (re-signed with the existing key)`];
    else if (!caStamp) [action, reason] = ["adopt", `adopting the existing CA in ${caPaths.cert}`];
    else if (caStamp.inputs.request !== caInputs.request) [action, reason] = ["make", `${caTarget.configFile} changed`];
    else {
      const now = fileHashes(o.certsDir, "ca");
      caCertHash = now.cert;
      const d = fileDrift(now, caStamp);
      // a missing ca.csr is harmless; a changed cert or key is someone's CA put in place: adopt it, after checks
      if (d && !(d.part === "csr" && d.missing)) [action, reason] = ["adopt", `${driftText(o.certsDir, "ca", d)}; adopting the CA found there`];
    }
    caItem = { target: caTarget, action, reason, request: caLoaded.request, inputs: caInputs, stamp: caStamp };
    items.push(caItem);
    if (action !== "make" && certHere) caFingerprint = caCertHash ?? sha256(readFileSync(caPaths.cert));
  }

  if (!po.caOnly) {
    const only = po.only ? new Set(po.only) : undefined;
    // hashing the whole signing config once per profile, not once per leaf
    const profileHashes = new Map<string, string>();
    if (only) {
      const known = new Set(targets.map((t) => t.name));
      for (const n of only) if (!known.has(n)) problems.push({ file: "NAME", path: "", message: `${JSON.stringify(n)} is not a certificate of this tree; known: ${[...known].join(", ")}` });
    }
    for (const t of targets.slice(1)) {
      if (only && !only.has(t.name)) continue;
      const l = load(t);
      if (!l.request || !cfg) continue;
      const request = t.role === "proxy" ? { ...l.request, cn: "" } : l.request;
      const profile = pickProfile(cfg, t, l.profileName, signingFile, problems);
      if (!profile) continue;
      for (const p of roleProblems(t.role, profile, signingFile)) if (!problems.some((x) => x.message === p.message && x.path === p.path)) problems.push(p);
      const stamp = stamps.get(t.name);
      if (!profileHashes.has(profile.name)) profileHashes.set(profile.name, hashValue(profileInputs(cfg, profile)));
      const inputs = leafInputs(request, profileHashes.get(profile.name)!, caFingerprint ?? "(new CA)");
      let action: Action = "make";
      let reason: string;
      if (po.rotate) reason = "make rotate";
      else if (po.force && only) reason = "renewal asked for";
      else if (!caFingerprint) reason = "the CA is new";
      else if (!stamp) reason = existsSync(bundlePaths(join(o.certsDir, t.name)).cert) ? "not made by tls-setup yet" : "new";
      else {
        const d = fileDrift(fileHashes(o.certsDir, t.name), stamp);
        reason = d ? driftText(o.certsDir, t.name, d) : changedReason(t, stamp.inputs, inputs) ?? ((action = "keep"), "up to date");
      }
      items.push({ target: t, action, reason, request, profile, inputs, stamp, etcd: l.etcd });
    }
  }
  if (items.some((i) => i.target.role === "member")) {
    const req = loaded.get(memberConfig(o))?.request;
    if (req && req.sans.ips.length === 0 && req.sans.dns.length === 0) warnings.push(`${memberConfig(o)}: hosts: is empty; etcd members need their IP addresses and names (and 127.0.0.1, localhost) as SANs`);
  }

  // Orphans: stamped users whose config is gone
  const names = new Set(targets.map((t) => t.name));
  const orphans = [...stamps.keys()].filter((n) => !names.has(n) && existsSync(join(o.certsDir, `${n}.pem`)));
  return { options: o, items, problems, warnings, orphans, caFingerprint, stamps };
}

export const staleItems = (p: Plan): PlanItem[] => p.items.filter((i) => i.action !== "keep");
