// The expiry report (`make check-expiration`, after kubeadm's `certs check-expiration`): every certificate in the
// certs directory with its CN, role, end of validity, days left and the CA it chains to; those ending within
// WARN_DAYS (or already ended) make the report fail.

import { UserError } from "../common/errors";
import { commonName, isoSeconds } from "../x509/certinfo";
import { CertFile, findIssuer, listCertFiles } from "../x509/chain";
import { readAllStamps } from "../tree/state";
import { readRevoked } from "../tree/revoked";
import { isCaRole, Role } from "../tree/targets";
import { existsSync } from "node:fs";

export const DAY_MS = 86_400_000;
export const DEFAULT_WARN_DAYS = 30;
/** CA_WARN_DAYS: a CA ending within this many days is warned about (a CA rotation takes two rolling restarts) */
export const DEFAULT_CA_WARN_DAYS = 365;

/** "revoked": on the revocation index (make revoke); never renewed by itself, so its end asks for nothing */
export type ExpiryStatus = "ok" | "expiring" | "expired" | "revoked";

export interface ExpiryEntry {
  name: string;
  file: string;
  cn: string;
  /** from the stamp in certs/.tls-setup/, "unknown" for a certificate tls-setup did not make */
  role: string;
  notBefore: string;
  notAfter: string;
  /** whole days until notAfter (negative once expired) */
  daysLeft: number;
  /** the name of the CA certificate it chains to, "self-signed" for a root, "none" when no CA in the directory signed it */
  ca: string;
  /** the issuer's CN, as the certificate names it */
  issuer: string;
  /** the serial number, lower-case hex (as openssl x509 -serial prints it) */
  serial: string;
  status: ExpiryStatus;
}

export interface ExpiryReport {
  certsDir: string;
  now: string;
  warnDays: number;
  certificates: ExpiryEntry[];
  /** names of the certificates expiring within warnDays or expired */
  failing: string[];
}

/** WARN_DAYS as given on the command line: a whole, non-negative number of days. */
export function parseWarnDays(v: unknown, name = "WARN_DAYS", dflt = DEFAULT_WARN_DAYS): number {
  if (v === undefined || v === "") return dflt;
  const s = String(v).trim();
  if (!/^\d+$/.test(s) || Number(s) > 36500) throw new UserError(`${name}: ${JSON.stringify(String(v))} is not a whole number of days; expected e.g. ${dflt} (0 to 36500)`);
  return Number(s);
}

export function expiryStatus(notAfter: Date, now: Date, warnDays: number): ExpiryStatus {
  const left = notAfter.getTime() - now.getTime();
  if (left <= 0) return "expired";
  return left <= warnDays * DAY_MS ? "expiring" : "ok";
}

export const daysLeft = (notAfter: Date, now: Date): number => Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS);


export function expiryEntry(c: CertFile, cas: CertFile[], role: string, now: Date, warnDays: number): ExpiryEntry {
  const issuer = findIssuer(c.facts, cas);
  return {
    name: c.name,
    file: c.file,
    cn: commonName(c.facts.subjectDer),
    role,
    notBefore: isoSeconds(c.facts.notBefore),
    notAfter: isoSeconds(c.facts.notAfter),
    daysLeft: daysLeft(c.facts.notAfter, now),
    ca: !issuer ? "none" : issuer.name === c.name ? "self-signed" : issuer.name,
    issuer: commonName(c.facts.issuerDer),
    serial: c.facts.serialHex,
    status: expiryStatus(c.facts.notAfter, now, warnDays),
  };
}

/** The root first, then the intermediate, then the rest. */
const rank = (e: ExpiryEntry): number => (e.role === "ca" ? 0 : e.role === "intermediate" ? 1 : 2);

/** Reads every certificate in the certs directory; CAs first, then by name. */
export function expiryReport(certsDir: string, now: Date, warnDays: number): ExpiryReport {
  if (!existsSync(certsDir)) throw new UserError(`${certsDir}: does not exist; run "make" first`);
  const certs = listCertFiles(certsDir);
  if (!certs.length) throw new UserError(`${certsDir}: holds no certificates; run "make" first`);
  const cas = certs.filter((c) => c.facts.isCa);
  const stamps = readAllStamps(certsDir);
  const revoked = readRevoked(certsDir).value ?? new Map();
  const entries = certs
    .map((c) => expiryEntry(c, cas, stamps.get(c.name)?.role ?? "unknown", now, warnDays))
    .map((e): ExpiryEntry => (!isCaRole(e.role as Role) && revoked.has(e.serial) ? { ...e, status: "revoked" } : e))
    .sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
  return { certsDir, now: isoSeconds(now), warnDays, certificates: entries, failing: entries.filter((e) => e.status === "expiring" || e.status === "expired").map((e) => e.name) };
}

const when = (s: string) => s.replace("T", " ").replace(/:\d\dZ$/, " UTC");

/** The report as an aligned table. */
export function formatExpiryTable(r: ExpiryReport): string[] {
  const head = ["NAME", "CN", "ROLE", "NOT AFTER", "DAYS LEFT", "CA", "STATUS"];
  const rows = r.certificates.map((e) => [e.name, e.cn === "" ? "(empty)" : e.cn, e.role, when(e.notAfter), String(e.daysLeft), e.ca, e.status === "ok" ? "ok" : e.status.toUpperCase()]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  return [head, ...rows].map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]))).join("  "));
}

/** One line per failing certificate, naming its file and what to do. */
export function expiryFailures(r: ExpiryReport): string[] {
  return r.certificates
    .filter((e) => e.status === "expiring" || e.status === "expired")
    .map((e) => {
      const what = e.status === "expired" ? `expired on ${when(e.notAfter)}` : `expires on ${when(e.notAfter)}, in ${e.daysLeft} day${e.daysLeft === 1 ? "" : "s"} (within WARN_DAYS=${r.warnDays})`;
      const fix = e.role === "intermediate" ? 'a new intermediate needs "make rotate-intermediate" (the root key; no restart, the trust stays)' : e.role === "ca" ? 'a new CA needs "make rotate" (and restarting everything that trusts it)' : e.role === "unknown" ? "it was not made by tls-setup; renew it where it came from" : `renew it with "make renew NAME=${e.name}"`;
      return `${e.file}: ${what}; ${fix}`;
    });
}

/**
 * A warning for the tree's CA (certs/ca.pem, the stamp's role "ca") when it ends within caWarnDays, naming the
 * phased rotation: two rolling restarts, not to be done in a hurry. Certificates already failing are left to
 * expiryFailures.
 */
export function caExpiryWarnings(r: ExpiryReport, caWarnDays: number, now: Date): string[] {
  return r.certificates
    .filter((e) => e.role === "ca" && e.status === "ok" && new Date(e.notAfter).getTime() - now.getTime() <= caWarnDays * DAY_MS)
    .map((e) => `${e.file}: the CA ends on ${when(e.notAfter)}, in ${e.daysLeft} days (within CA_WARN_DAYS=${caWarnDays}); rotate it without an outage: make ca-rotate-start, a rolling restart, make ca-rotate-reissue, make ca-rotate-finish, a rolling restart (README "Rotating the CA")`);
}
