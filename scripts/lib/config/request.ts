// The CSR JSON (cfssl's csr.CertificateRequest): parsed and validated purely, returning every problem with its
// JSON path. Defaults: key {algo: "ecdsa", size: 384} (cfssl: 256), RSA size 2048 when only algo is given.

import { Parsed, Problem, show } from "../common/errors";
import { field, fieldKey, isObject, joinPath, JsonObject, typeName } from "./gojson";
import { classifyHost, SanSet } from "./hosts";
import { parseGoDuration } from "./duration";

export type KeyAlgo = "ecdsa" | "rsa";

export interface KeySpec {
  algo: KeyAlgo;
  size: number;
}

export const NAME_FIELDS = ["C", "ST", "L", "O", "OU"] as const;
export type NameField = (typeof NAME_FIELDS)[number];
export type NameEntry = Partial<Record<NameField, string>>;

export interface CaOptions {
  expiryMs?: number;
  pathlen: number;
  pathlenzero: boolean;
  backdateMs?: number;
}

export interface CertRequest {
  cn: string;
  names: NameEntry[];
  serialNumber: string;
  hosts: string[];
  sans: SanSet;
  key: KeySpec;
  ca?: CaOptions;
}

export const DEFAULT_KEY: KeySpec = { algo: "ecdsa", size: 384 };
export const DEFAULT_RSA_SIZE = 2048;
export const EC_SIZES = [256, 384, 521];
export const RSA_MIN = 2048;
export const RSA_MAX = 8192;
/** RFC 5280 upper bound for commonName (ub-common-name). */
export const CN_MAX = 64;

/** Length in characters (Unicode code points), as RFC 5280's upper bounds count them; not UTF-16 code units. */
export const chars = (s: string): number => [...s].length;

export interface RequestOptions {
  /** Making a CA: the `ca` block is allowed (cfssl: "ca section only permitted in initca") and a subject required. */
  allowCa?: boolean;
  /** A user certificate: the CN is the etcd user name, so it must be present. */
  requireCn?: boolean;
}

function stringField(obj: JsonObject, name: string, path: string, file: string, problems: Problem[]): string {
  const v = field(obj, name);
  if (v === undefined || v === null) return "";
  if (typeof v !== "string") {
    problems.push({ file, path: joinPath(path, fieldKey(obj, name)), message: `${show(v)} is ${typeName(v)}; a string is expected` });
    return "";
  }
  return v;
}

function parseKey(v: unknown, file: string, problems: Problem[]): KeySpec {
  if (v === undefined || v === null) return { ...DEFAULT_KEY };
  if (!isObject(v)) {
    problems.push({ file, path: "key", message: `${show(v)} is ${typeName(v)}; an object like {"algo": "ecdsa", "size": 384} is expected` });
    return { ...DEFAULT_KEY };
  }
  const algoV = field(v, "algo");
  let algo: KeyAlgo = DEFAULT_KEY.algo;
  if (algoV !== undefined && algoV !== null) {
    if (algoV === "ecdsa" || algoV === "rsa") algo = algoV;
    else {
      const hint = algoV === "ed25519" ? " (ed25519 is not usable by etcd 3.4, built with Go 1.12)" : "";
      problems.push({ file, path: `key.${fieldKey(v, "algo")}`, message: `${show(algoV)} is not a supported key algorithm; accepted: "ecdsa", "rsa"${hint}` });
      return { ...DEFAULT_KEY };
    }
  }
  const sizeV = field(v, "size");
  const sizePath = `key.${fieldKey(v, "size")}`;
  let size = algo === "rsa" ? DEFAULT_RSA_SIZE : DEFAULT_KEY.size;
  if (sizeV !== undefined && sizeV !== null) {
    if (typeof sizeV !== "number" || !Number.isInteger(sizeV)) {
      problems.push({ file, path: sizePath, message: `${show(sizeV)} is not an integer; accepted: ${algo === "rsa" ? `${RSA_MIN} to ${RSA_MAX}` : EC_SIZES.join(", ")}` });
    } else size = sizeV;
  }
  if (algo === "ecdsa" && !EC_SIZES.includes(size)) {
    problems.push({ file, path: sizePath, message: `${size} is not an ECDSA curve size (256, 384 or 521)` });
  } else if (algo === "rsa" && (size < RSA_MIN || size > RSA_MAX)) {
    problems.push({ file, path: sizePath, message: `${size} is not an allowed RSA key size (${RSA_MIN} to ${RSA_MAX} bits)` });
  }
  return { algo, size };
}

function parseCa(v: unknown, file: string, problems: Problem[]): CaOptions {
  const ca: CaOptions = { pathlen: 0, pathlenzero: false };
  if (!isObject(v)) {
    problems.push({ file, path: "ca", message: `${show(v)} is ${typeName(v)}; an object like {"expiry": "43800h"} is expected` });
    return ca;
  }
  for (const name of ["expiry", "backdate"] as const) {
    const d = field(v, name);
    if (d === undefined || d === null || d === "") continue;
    const path = `ca.${fieldKey(v, name)}`;
    if (typeof d !== "string") {
      problems.push({ file, path, message: `${show(d)} is ${typeName(d)}; a Go duration string such as "43800h" is expected` });
      continue;
    }
    const r = parseGoDuration(d);
    if (r.error) problems.push({ file, path, message: r.error });
    else if (name === "expiry" && r.ms! <= 0) problems.push({ file, path, message: `${show(d)} is not a positive duration; a CA needs a lifetime such as "43800h"` });
    else if (name === "backdate" && r.ms! < 0) problems.push({ file, path, message: `${show(d)} is negative; a backdate is a non-negative duration` });
    else if (name === "expiry") ca.expiryMs = r.ms;
    else ca.backdateMs = r.ms;
  }
  const pl = field(v, "pathlen");
  if (pl !== undefined && pl !== null) {
    if (typeof pl !== "number" || !Number.isInteger(pl) || pl < 0) problems.push({ file, path: `ca.${fieldKey(v, "pathlen")}`, message: `${show(pl)} is not a non-negative integer` });
    else ca.pathlen = pl;
  }
  const plz = field(v, "pathlenzero");
  if (plz !== undefined && plz !== null) {
    if (typeof plz !== "boolean") problems.push({ file, path: `ca.${fieldKey(v, "pathlenzero")}`, message: `${show(plz)} is not true or false` });
    else ca.pathlenzero = plz;
  }
  return ca;
}

/** Parses a CSR JSON object (already decoded). `file` is used in problems only. */
export function parseRequest(obj: JsonObject, file: string, opts: RequestOptions = {}): Parsed<CertRequest> {
  const problems: Problem[] = [];
  const cn = stringField(obj, "CN", "", file, problems);
  if (chars(cn) > CN_MAX) problems.push({ file, path: fieldKey(obj, "CN"), message: `${show(cn)} is ${chars(cn)} characters; a common name may have at most ${CN_MAX}` });
  if (opts.requireCn && cn === "" && !problems.some((p) => p.path === fieldKey(obj, "CN")))
    problems.push({ file, path: "CN", message: "is missing or empty; a user certificate's CN is the etcd user name" });

  const names: NameEntry[] = [];
  const namesV = field(obj, "names");
  if (namesV !== undefined && namesV !== null) {
    const key = fieldKey(obj, "names");
    if (!Array.isArray(namesV)) problems.push({ file, path: key, message: `${show(namesV)} is ${typeName(namesV)}; an array of objects with C, ST, L, O, OU is expected` });
    else
      namesV.forEach((entry, i) => {
        const path = joinPath(key, i);
        if (!isObject(entry)) {
          problems.push({ file, path, message: `${show(entry)} is ${typeName(entry)}; an object with C, ST, L, O, OU is expected` });
          return;
        }
        const n: NameEntry = {};
        for (const f of NAME_FIELDS) {
          const s = stringField(entry, f, path, file, problems);
          if (chars(s) > CN_MAX * 2) problems.push({ file, path: joinPath(path, f), message: `${show(s)} is longer than ${CN_MAX * 2} characters` });
          if (s !== "") n[f] = s;
        }
        names.push(n);
      });
  }
  const serialNumber = stringField(obj, "serialnumber", "", file, problems);

  const hosts: string[] = [];
  const sans: SanSet = { dns: [], emails: [], ips: [], uris: [] };
  const hostsV = field(obj, "hosts");
  if (hostsV !== undefined && hostsV !== null) {
    const key = fieldKey(obj, "hosts");
    if (!Array.isArray(hostsV)) problems.push({ file, path: key, message: `${show(hostsV)} is ${typeName(hostsV)}; an array of host names and IP addresses is expected` });
    else
      hostsV.forEach((h, i) => {
        const path = joinPath(key, i);
        if (typeof h !== "string") {
          problems.push({ file, path, message: `${show(h)} is ${typeName(h)}; a host name or IP address string is expected` });
          return;
        }
        const r = classifyHost(h);
        if (r.kind === "error") problems.push({ file, path, message: r.message });
        else {
          hosts.push(h);
          if (r.kind === "ip") sans.ips.push(r.bytes);
          else if (r.kind === "email") sans.emails.push(r.value);
          else if (r.kind === "uri") sans.uris.push(r.value);
          else sans.dns.push(r.value);
        }
      });
  }

  const key = parseKey(field(obj, "key"), file, problems);
  const caV = field(obj, "ca");
  let ca: CaOptions | undefined;
  if (caV !== undefined && caV !== null) {
    if (!opts.allowCa) problems.push({ file, path: fieldKey(obj, "ca"), message: "a \"ca\" section is only permitted in the CA's request (ca-csr.json), as in cfssl" });
    else ca = parseCa(caV, file, problems);
  }
  if (problems.length) return { problems };
  const value: CertRequest = { cn, names, serialNumber, hosts, sans, key, ca };
  if (opts.allowCa && !hasSubject(value)) return { problems: [{ file, path: "CN", message: "is empty and no names are given; a CA needs a subject (a CN, or names with C/ST/L/O/OU)" }] };
  return { value, problems };
}

/** cfssl's rule for a CA subject: a CN, or names whose every entry has some C/ST/L/O/OU. */
export function hasSubject(r: CertRequest): boolean {
  if (r.cn !== "") return true;
  return r.names.length > 0 && r.names.every((n) => Object.keys(n).length > 0);
}
