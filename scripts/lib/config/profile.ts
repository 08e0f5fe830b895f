// ca-config.json (cfssl's config.Config): signing profiles with usages, expiry, backdate and CA constraints.
// Unlike cfssl, unknown usage strings and unknown profile names are errors instead of being silently ignored.

import { Parsed, Problem, show } from "../common/errors";
import { field, fieldKey, isObject, joinPath, JsonObject, typeName } from "./gojson";
import { DURATION_HELP, parseGoDuration } from "./duration";

/** KeyUsage bit numbers (RFC 5280 §4.2.1.3). */
export const KEY_USAGE_BITS: Record<string, number> = {
  signing: 0,
  "digital signature": 0,
  "content commitment": 1,
  "content committment": 1,
  "key encipherment": 2,
  "data encipherment": 3,
  "key agreement": 4,
  "cert sign": 5,
  "crl sign": 6,
  "encipher only": 7,
  "decipher only": 8,
};

/** The one table of extended key usages: cfssl's usage name (configs, inspect), the OID, OpenSSL's short name (verify). */
const EKU_TABLE: [cfssl: string, oid: string, openssl: string][] = [
  ["any", "2.5.29.37.0", "anyExtendedKeyUsage"],
  ["server auth", "1.3.6.1.5.5.7.3.1", "serverAuth"],
  ["client auth", "1.3.6.1.5.5.7.3.2", "clientAuth"],
  ["code signing", "1.3.6.1.5.5.7.3.3", "codeSigning"],
  ["email protection", "1.3.6.1.5.5.7.3.4", "emailProtection"],
  ["s/mime", "1.3.6.1.5.5.7.3.4", "emailProtection"],
  ["ipsec end system", "1.3.6.1.5.5.7.3.5", "ipsecEndSystem"],
  ["ipsec tunnel", "1.3.6.1.5.5.7.3.6", "ipsecTunnel"],
  ["ipsec user", "1.3.6.1.5.5.7.3.7", "ipsecUser"],
  ["timestamping", "1.3.6.1.5.5.7.3.8", "timeStamping"],
  ["ocsp signing", "1.3.6.1.5.5.7.3.9", "OCSPSigning"],
  ["microsoft sgc", "1.3.6.1.4.1.311.10.3.3", "msSGC"],
  ["netscape sgc", "2.16.840.1.113730.4.1", "nsSGC"],
];

/** cfssl usage name → OID */
export const EXT_KEY_USAGE_OIDS: Record<string, string> = Object.fromEntries(EKU_TABLE.map(([name, oid]) => [name, oid]));

/** An EKU OID as cfssl names it ("server auth"; the first name when two share the OID), else the OID. */
export const ekuName = (oid: string): string => EKU_TABLE.find((e) => e[1] === oid)?.[0] ?? oid;

/** An EKU OID as OpenSSL names it ("serverAuth"), else the OID. */
export const ekuOpensslName = (oid: string): string => EKU_TABLE.find((e) => e[1] === oid)?.[2] ?? oid;

export const OID_SERVER_AUTH = EXT_KEY_USAGE_OIDS["server auth"];
export const OID_CLIENT_AUTH = EXT_KEY_USAGE_OIDS["client auth"];
export const OID_ANY_EKU = EXT_KEY_USAGE_OIDS.any;

export type LeafRole = "member" | "member-server" | "member-client" | "proxy" | "user";

/** Why each kind of etcd certificate needs its extended key usages. */
export const ROLE_EKU_WHY: Record<LeafRole, string> = {
  member: "an etcd member uses one certificate as server and as client",
  "member-server": "with MEMBER_CERTS=split the member serves clients and peers with it",
  "member-client": "with MEMBER_CERTS=split the member dials its peers (and its own client port) with it",
  proxy: "the proxy dials the members as a client",
  user: "etcd reads the user from a client certificate",
};

/** The EKUs (OIDs) each role needs, and those it must not have (the split layout keeps server and client apart). */
const ROLE_EKUS: Record<LeafRole, { need: string[]; forbid: string[] }> = {
  member: { need: [OID_SERVER_AUTH, OID_CLIENT_AUTH], forbid: [] },
  "member-server": { need: [OID_SERVER_AUTH], forbid: [OID_CLIENT_AUTH] },
  "member-client": { need: [OID_CLIENT_AUTH], forbid: [OID_SERVER_AUTH] },
  proxy: { need: [OID_CLIENT_AUTH], forbid: [] },
  user: { need: [OID_CLIENT_AUTH], forbid: [] },
};

/**
 * The extended key usages (OIDs) a certificate of this role needs but `ekus` lacks. An empty list (no extension)
 * or "any" allows every usage, as Go and etcd read it.
 */
export function missingRoleEkus(role: LeafRole, ekus: string[]): string[] {
  if (ekus.length === 0 || ekus.includes(OID_ANY_EKU)) return [];
  return ROLE_EKUS[role].need.filter((o) => !ekus.includes(o));
}

/**
 * The extended key usages (OIDs) a certificate of this role must not have but `ekus` allows (split member
 * certificates: the server one no client auth, the client one no server auth). No extension, or "any", allows
 * every usage, so it counts as having them.
 */
export function forbiddenRoleEkus(role: LeafRole, ekus: string[]): string[] {
  const open = ekus.length === 0 || ekus.includes(OID_ANY_EKU);
  return ROLE_EKUS[role].forbid.filter((o) => open || ekus.includes(o));
}

/** Whether a role is one of a member's certificates (combined, or either half of the split layout). */
export const isMemberRole = (role: string): boolean => role === "member" || role === "member-server" || role === "member-client";

/**
 * A profile limited to one extended key usage: the key usages of `base` and exactly `eku` ("server auth" or
 * "client auth"). The split layout signs with this when ca-config.json has no "member-server" / "member-client"
 * profile.
 */
export function restrictProfile(base: Profile, eku: "server auth" | "client auth"): Profile {
  const usages = [...base.usages.filter((u) => Object.hasOwn(KEY_USAGE_BITS, u)), eku];
  return { ...base, usages, extKeyUsages: [EXT_KEY_USAGE_OIDS[eku]], issuerUrls: [...base.issuerUrls], restrictedTo: eku };
}

export interface CaConstraint {
  isCa: boolean;
  maxPathLen: number;
  maxPathLenZero: boolean;
}

export interface Profile {
  name: string;
  usages: string[];
  /** bit numbers of the KeyUsage extension */
  keyUsageBits: number[];
  /** ExtKeyUsage OIDs in usage order */
  extKeyUsages: string[];
  expiryMs: number;
  backdateMs?: number;
  notBefore?: Date;
  notAfter?: Date;
  caConstraint?: CaConstraint;
  ocspUrl?: string;
  crlUrl?: string;
  issuerUrls: string[];
  /** set when the profile is `name` limited to this one extended key usage (restrictProfile) */
  restrictedTo?: string;
}

export interface SigningConfig {
  default: Profile;
  profiles: Record<string, Profile>;
}

/** cfssl's built-in default when no -config is given. */
export const BUILTIN_DEFAULT: Profile = {
  name: "default",
  usages: ["signing", "key encipherment", "server auth", "client auth"],
  keyUsageBits: [0, 2],
  extKeyUsages: [OID_SERVER_AUTH, OID_CLIENT_AUTH],
  expiryMs: 8760 * 3_600_000,
  issuerUrls: [],
};

export const BUILTIN_CONFIG: SigningConfig = { default: BUILTIN_DEFAULT, profiles: {} };

const ALL_USAGES = [...Object.keys(KEY_USAGE_BITS), ...Object.keys(EXT_KEY_USAGE_OIDS)];

function parseProfile(v: unknown, name: string, path: string, file: string, named: boolean, problems: Problem[]): Profile | undefined {
  if (!isObject(v)) {
    problems.push({ file, path, message: `${show(v)} is ${typeName(v)}; a profile object with "usages" and "expiry" is expected` });
    return undefined;
  }
  const before = problems.length;
  const p: Profile = { name, usages: [], keyUsageBits: [], extKeyUsages: [], expiryMs: 0, issuerUrls: [] };
  const usagesV = field(v, "usages");
  const usagesPath = joinPath(path, fieldKey(v, "usages"));
  if (usagesV !== undefined && usagesV !== null) {
    if (!Array.isArray(usagesV)) problems.push({ file, path: usagesPath, message: `${show(usagesV)} is ${typeName(usagesV)}; an array of usage strings is expected` });
    else
      usagesV.forEach((u, i) => {
        if (typeof u !== "string") {
          problems.push({ file, path: joinPath(usagesPath, i), message: `${show(u)} is ${typeName(u)}; a usage string is expected` });
        } else if (Object.hasOwn(KEY_USAGE_BITS, u)) {
          p.usages.push(u);
          if (!p.keyUsageBits.includes(KEY_USAGE_BITS[u])) p.keyUsageBits.push(KEY_USAGE_BITS[u]);
        } else if (Object.hasOwn(EXT_KEY_USAGE_OIDS, u)) {
          p.usages.push(u);
          // kept even when repeated ("email protection" and "s/mime"): Go writes every one, and so do we
          p.extKeyUsages.push(EXT_KEY_USAGE_OIDS[u]);
        } else {
          problems.push({ file, path: joinPath(usagesPath, i), message: `${show(u)} is not a known usage; accepted: ${ALL_USAGES.map((x) => `"${x}"`).join(", ")}` });
        }
      });
  }
  // cfssl refuses a named profile without usages when it loads the config, and the default one when it signs with it
  // ("no key usage available"); we refuse both when the config is loaded, before anything is written.
  if (p.usages.length === 0 && problems.length === before) {
    const what = usagesV === undefined || usagesV === null ? "is missing" : "is empty";
    problems.push({ file, path: usagesPath, message: `${what}; ${named ? "a" : "the default"} profile needs at least one usage, e.g. ["signing", "key encipherment", "client auth"] (cfssl: "no key usage available")` });
  }

  const dur = (key: string, required: boolean): number | undefined => {
    const d = field(v, key);
    const dpath = joinPath(path, fieldKey(v, key));
    if (d === undefined || d === null || d === "") {
      if (required) problems.push({ file, path: dpath, message: `is missing; every profile needs an expiry, ${DURATION_HELP}` });
      return undefined;
    }
    if (typeof d !== "string") {
      problems.push({ file, path: dpath, message: `${show(d)} is ${typeName(d)}; ${DURATION_HELP} is expected` });
      return undefined;
    }
    const r = parseGoDuration(d);
    if (r.error) problems.push({ file, path: dpath, message: r.error });
    else if (key === "expiry" && r.ms! <= 0) problems.push({ file, path: dpath, message: `${show(d)} is not a positive duration` });
    else if (r.ms! < 0) problems.push({ file, path: dpath, message: `${show(d)} is negative` });
    else return r.ms;
    return undefined;
  };
  const hasWindow = field(v, "not_after") !== undefined;
  p.expiryMs = dur("expiry", !hasWindow) ?? 0;
  p.backdateMs = dur("backdate", false);

  for (const key of ["not_before", "not_after"] as const) {
    const d = field(v, key);
    if (d === undefined || d === null || d === "") continue;
    const dpath = joinPath(path, fieldKey(v, key));
    const t = typeof d === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(d) ? new Date(d) : undefined;
    if (!t || isNaN(t.getTime())) problems.push({ file, path: dpath, message: `${show(d)} is not an RFC 3339 time such as "2027-01-01T00:00:00Z"` });
    else if (key === "not_before") p.notBefore = t;
    else p.notAfter = t;
  }
  if (p.notBefore && p.notAfter && p.notAfter <= p.notBefore)
    problems.push({ file, path: joinPath(path, "not_after"), message: "is not after not_before" });

  const cc = field(v, "ca_constraint");
  if (cc !== undefined && cc !== null) {
    const cpath = joinPath(path, fieldKey(v, "ca_constraint"));
    if (!isObject(cc)) problems.push({ file, path: cpath, message: `${show(cc)} is ${typeName(cc)}; an object like {"is_ca": true, "max_path_len": 0} is expected` });
    else {
      const isCa = field(cc, "is_ca");
      const mpl = field(cc, "max_path_len");
      const mplz = field(cc, "max_path_len_zero");
      if (isCa !== undefined && typeof isCa !== "boolean") problems.push({ file, path: joinPath(cpath, "is_ca"), message: `${show(isCa)} is not true or false` });
      if (mpl !== undefined && (typeof mpl !== "number" || !Number.isInteger(mpl) || mpl < 0)) problems.push({ file, path: joinPath(cpath, "max_path_len"), message: `${show(mpl)} is not a non-negative integer` });
      if (mplz !== undefined && typeof mplz !== "boolean") problems.push({ file, path: joinPath(cpath, "max_path_len_zero"), message: `${show(mplz)} is not true or false` });
      p.caConstraint = { isCa: isCa === true, maxPathLen: typeof mpl === "number" ? mpl : 0, maxPathLenZero: mplz === true };
    }
  }
  for (const key of ["ocsp_url", "crl_url"] as const) {
    const u = field(v, key);
    if (u === undefined || u === null || u === "") continue;
    if (typeof u !== "string" || !/^[a-z][a-z0-9+.-]*:\/\/\S+$/i.test(u)) problems.push({ file, path: joinPath(path, key), message: `${show(u)} is not a URL such as "http://ca.example/crl"` });
    else if (key === "ocsp_url") p.ocspUrl = u;
    else p.crlUrl = u;
  }
  const iu = field(v, "issuer_urls");
  if (iu !== undefined && iu !== null) {
    if (!Array.isArray(iu) || iu.some((u) => typeof u !== "string" || !/^[a-z][a-z0-9+.-]*:\/\/\S+$/i.test(u)))
      problems.push({ file, path: joinPath(path, "issuer_urls"), message: `${show(iu)} is not an array of URLs` });
    else p.issuerUrls = iu as string[];
  }
  // RFC 5280 §4.2.1.3: keyCertSign only with CA:TRUE; openssl -x509_strict and Go refuse such leaves
  if (!p.caConstraint?.isCa && p.keyUsageBits.includes(5))
    problems.push({ file, path: usagesPath, message: 'has "cert sign", which only a CA may have; add "ca_constraint": {"is_ca": true} for an intermediate CA, or remove it' });
  return problems.length === before ? p : undefined;
}

export function parseCaConfig(obj: JsonObject, file: string): Parsed<SigningConfig> {
  const problems: Problem[] = [];
  const signing = field(obj, "signing");
  if (!isObject(signing)) {
    problems.push({ file, path: "signing", message: `${signing === undefined ? "is missing" : `${show(signing)} is ${typeName(signing)}`}; an object {"default": {...}, "profiles": {...}} is expected` });
    return { problems };
  }
  const sk = fieldKey(obj, "signing");
  const defV = field(signing, "default");
  let def: Profile | undefined = BUILTIN_DEFAULT;
  if (defV !== undefined && defV !== null) def = parseProfile(defV, "default", `${sk}.${fieldKey(signing, "default")}`, file, false, problems);
  // no prototype: a profile named "toString" or "__proto__" is just a name
  const profiles: Record<string, Profile> = Object.create(null);
  const profV = field(signing, "profiles");
  if (profV !== undefined && profV !== null) {
    const ppath = `${sk}.${fieldKey(signing, "profiles")}`;
    if (!isObject(profV)) problems.push({ file, path: ppath, message: `${show(profV)} is ${typeName(profV)}; an object of named profiles is expected` });
    else
      for (const [name, pv] of Object.entries(profV)) {
        const p = parseProfile(pv, name, joinPath(ppath, name), file, true, problems);
        if (p) {
          // cfssl's FillTemplate: a profile without URLs takes the default's. issuer_urls is inherited only when
          // missing or null (Go's nil slice); an explicit [] means none.
          if (def && !p.ocspUrl) p.ocspUrl = def.ocspUrl;
          if (def && !p.crlUrl) p.crlUrl = def.crlUrl;
          const iu = isObject(pv) ? field(pv, "issuer_urls") : undefined;
          if (def && (iu === undefined || iu === null)) p.issuerUrls = [...def.issuerUrls];
          profiles[name] = p;
        }
      }
  }
  if (problems.length) return { problems };
  return { value: { default: def!, profiles }, problems };
}

/**
 * Picks a profile by name; an unknown name is an error (cfssl silently falls back to the default). As in cfssl, a
 * profile named "default" under `profiles` wins over `signing.default` when asked for by name.
 */
export function selectProfile(cfg: SigningConfig, name: string | undefined, file: string): Parsed<Profile> {
  if (name === undefined || name === "") return { value: cfg.default, problems: [] };
  const p = Object.hasOwn(cfg.profiles, name) ? cfg.profiles[name] : undefined;
  if (p) return { value: p, problems: [] };
  if (name === "default") return { value: cfg.default, problems: [] };
  const known = ["default", ...Object.keys(cfg.profiles)].map((n) => `"${n}"`).join(", ");
  return { problems: [{ file, path: "signing.profiles", message: `has no profile ${JSON.stringify(name)}; available: ${known}` }] };
}

/** The profile name the intermediate CA is signed with, when ca-config.json has it. */
export const INTERMEDIATE_PROFILE = "intermediate";

/**
 * The built-in profile of the intermediate CA, when ca-config.json has no "intermediate" profile: cfssl's usages
 * "cert sign" and "crl sign" (key usage, critical), no extended key usage, CA:TRUE with path length 0, 3 years
 * (26280h; cut to the root's end, like every certificate).
 */
export const BUILTIN_INTERMEDIATE: Profile = {
  name: INTERMEDIATE_PROFILE,
  usages: ["cert sign", "crl sign"],
  keyUsageBits: [5, 6],
  extKeyUsages: [],
  expiryMs: 26280 * 3_600_000,
  caConstraint: { isCa: true, maxPathLen: 0, maxPathLenZero: true },
  issuerUrls: [],
};

/**
 * The intermediate's profile: "intermediate" of ca-config.json, or the built-in one. A configured profile must make
 * a CA ("ca_constraint": {"is_ca": true}) that may sign certificates and CRLs, and an EKU, if it gives one, must
 * include both server auth and client auth: Go checks the leaves' usages against every CA in the chain.
 */
export function intermediateProfile(cfg: SigningConfig, file: string): Parsed<Profile> {
  const p = Object.hasOwn(cfg.profiles, INTERMEDIATE_PROFILE) ? cfg.profiles[INTERMEDIATE_PROFILE] : undefined;
  if (!p) return { value: BUILTIN_INTERMEDIATE, problems: [] };
  const path = `signing.profiles.${INTERMEDIATE_PROFILE}`;
  const problems: Problem[] = [];
  if (!p.caConstraint?.isCa) problems.push({ file, path: `${path}.ca_constraint`, message: 'is not {"is_ca": true}; the intermediate is a CA: give "ca_constraint": {"is_ca": true, "max_path_len": 0, "max_path_len_zero": true}' });
  const lacks = [5, 6].filter((b) => !p.keyUsageBits.includes(b)).map((b) => (b === 5 ? '"cert sign"' : '"crl sign"'));
  if (lacks.length) problems.push({ file, path: `${path}.usages`, message: `lacks ${lacks.join(" and ")}; the intermediate signs the leaves and the CRL` });
  const eku = missingRoleEkus("member", p.extKeyUsages);
  if (eku.length) problems.push({ file, path: `${path}.usages`, message: `has extended key usages without ${eku.map((o) => `"${ekuName(o)}"`).join(" and ")}; Go refuses leaves below an intermediate whose EKU lacks theirs (give both "server auth" and "client auth", or no extended key usage)` });
  return problems.length ? { problems } : { value: p, problems };
}
