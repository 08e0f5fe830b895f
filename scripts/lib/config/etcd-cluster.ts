// etcd-cluster.json (optional, in the config directory): what the etcd cluster is run with, recorded beside the
// configs so that `make` and `make verify` know it. Two things: the member certificate layout ("member_certs":
// "combined", one certificate with server and client auth per member, as etcd 3.4 needs; or "split", a server-auth
// certificate etcdN.pem and a client-auth certificate etcdN-client.pem, for etcd >= 3.5's --client-cert-file and
// --peer-client-cert-file), and the identities etcd is told to allow (--peer-cert-allowed-cn,
// --peer-cert-allowed-hostname, --client-cert-allowed-hostname), each a string or a list of strings.
// Also Go's x509.Certificate.VerifyHostname, which etcd applies to the allowed hostnames.

import { join } from "node:path";
import { Parsed, Problem, show } from "../common/errors";
import { field, fieldKey, isObject, JsonObject, typeName } from "./gojson";
import { formatIp, parseIp } from "./hosts";

export const CLUSTER_FILE = "etcd-cluster.json";
export const clusterFile = (configDir: string) => join(configDir, CLUSTER_FILE);

export type MemberCerts = "combined" | "split";
export const MEMBER_CERTS: MemberCerts[] = ["combined", "split"];

export interface ClusterSettings {
  /** undefined when the file does not say (then the default, "combined", unless MEMBER_CERTS says) */
  memberCerts?: MemberCerts;
  /** --peer-cert-allowed-cn */
  peerAllowedCn: string[];
  /** --peer-cert-allowed-hostname */
  peerAllowedHostname: string[];
  /** --client-cert-allowed-hostname */
  clientAllowedHostname: string[];
}

export const NO_SETTINGS: ClusterSettings = { peerAllowedCn: [], peerAllowedHostname: [], clientAllowedHostname: [] };

/** The JSON field of each setting and the etcd flag it records. */
export const ALLOWED_FIELDS = [
  ["peer_cert_allowed_cn", "--peer-cert-allowed-cn", "peerAllowedCn"],
  ["peer_cert_allowed_hostname", "--peer-cert-allowed-hostname", "peerAllowedHostname"],
  ["client_cert_allowed_hostname", "--client-cert-allowed-hostname", "clientAllowedHostname"],
] as const;

export function memberCertsProblem(v: unknown): string | undefined {
  return typeof v === "string" && (MEMBER_CERTS as string[]).includes(v) ? undefined : `${show(v)} is not a member certificate layout; accepted: ${MEMBER_CERTS.map((m) => `"${m}"`).join(", ")}`;
}

/** Parses etcd-cluster.json; problems carry the file and the JSON field. Warnings: settings older etcd takes differently. */
export function parseClusterSettings(obj: JsonObject, file: string): Parsed<ClusterSettings> & { warnings: string[] } {
  const problems: Problem[] = [];
  const warnings: string[] = [];
  const out: ClusterSettings = { peerAllowedCn: [], peerAllowedHostname: [], clientAllowedHostname: [] };
  const mc = field(obj, "member_certs");
  if (mc !== undefined && mc !== null) {
    const p = memberCertsProblem(mc);
    if (p) problems.push({ file, path: fieldKey(obj, "member_certs"), message: p });
    else out.memberCerts = mc as MemberCerts;
  }
  for (const [name, flag, key] of ALLOWED_FIELDS) {
    const v = field(obj, name);
    if (v === undefined || v === null) continue;
    const path = fieldKey(obj, name);
    const list = typeof v === "string" ? [v] : Array.isArray(v) ? v : undefined;
    if (!list || list.some((x) => typeof x !== "string" || x === "")) {
      problems.push({ file, path, message: `${show(v)} is ${Array.isArray(v) ? "not a list of non-empty strings" : typeName(v)}; expected the value given to etcd's ${flag}: a string, or a list of strings (etcd >= 3.5.15)` });
      continue;
    }
    const values = list as string[];
    if (key !== "peerAllowedCn") {
      const bad = values.find((h) => /[\s,]/.test(h));
      if (bad !== undefined) {
        problems.push({ file, path, message: `${show(bad)} is not a host name or IP address (as etcd's ${flag} takes one)` });
        continue;
      }
    } else if (values.some((cn) => [...cn].length > 64)) {
      problems.push({ file, path, message: `${show(values.find((cn) => [...cn].length > 64))} is longer than 64 characters, the longest CN a certificate can have` });
      continue;
    }
    out[key] = values;
    if (values.length > 1)
      warnings.push(`${file}: ${path}: ${values.length} values; etcd 3.4 and 3.5 before 3.5.15 take one ${flag} (a second flag replaces the first); lists need etcd >= 3.5.15 or 3.6`);
  }
  if (out.peerAllowedCn.length && out.peerAllowedHostname.length)
    problems.push({ file, path: fieldKey(obj, "peer_cert_allowed_hostname"), message: `is given together with peer_cert_allowed_cn; etcd refuses to start with both ("AllowedCN and AllowedHostname are mutually exclusive"): keep one` });
  return problems.length ? { problems, warnings } : { value: out, problems, warnings };
}

// Go's VerifyHostname (crypto/x509, Go >= 1.17, no CN fallback), which etcd uses for the allowed hostnames.

const lowerAscii = (s: string) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

function validHostname(host: string, isPattern: boolean): boolean {
  if (!isPattern) host = host.replace(/\.$/, "");
  if (host.length === 0) return false;
  const parts = host.split(".");
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (part === "") return false;
    if (isPattern && i === 0 && part === "*") continue;
    for (let j = 0; j < part.length; j++) {
      const c = part[j];
      if (/[a-zA-Z0-9_]/.test(c) || (c === "-" && j !== 0)) continue;
      return false;
    }
  }
  return true;
}

function matchExactly(pattern: string, host: string): boolean {
  if (host === "" || host === "." || pattern === "" || pattern === ".") return false;
  return lowerAscii(pattern) === lowerAscii(host);
}

function matchHostnames(pattern: string, host: string): boolean {
  pattern = lowerAscii(pattern).replace(/\.$/, "");
  host = lowerAscii(host.replace(/\.$/, ""));
  if (pattern.length === 0 || host.length === 0) return false;
  const pp = pattern.split(".");
  const hp = host.split(".");
  if (pp.length !== hp.length) return false;
  return pp.every((p, i) => (i === 0 && p === "*") || p === hp[i]);
}

/**
 * Whether a certificate with these SANs passes Go's cert.VerifyHostname(host): an IP (also in brackets) only against
 * the IP SANs; a name against the DNS SANs (a full left-most "*" label matches one label; trailing dots and ASCII case
 * ignored). The CN is never looked at.
 */
export function verifyHostname(sans: { dns: string[]; ips: Buffer[] }, host: string): boolean {
  const candidate = host.length >= 3 && host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  const ip = parseIp(candidate);
  // Go's IP.Equal: an IPv4 address equals its IPv4-mapped IPv6 form
  const norm = (b: Buffer) => formatIp(b.length === 16 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff ? b.subarray(12) : b);
  if (ip) return sans.ips.some((x) => norm(x) === norm(ip));
  const name = lowerAscii(host);
  const valid = validHostname(name, false);
  return sans.dns.some((m) => (valid && validHostname(m, true) ? matchHostnames(m, name) : matchExactly(m, name)));
}
