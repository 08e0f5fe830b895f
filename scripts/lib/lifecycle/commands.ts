// The day-2 commands behind `make check-expiration`, `verify`, `renew`, `inspect` and `secrets`: they print and
// return exit codes (1 when something needs attention).

import { existsSync, readFileSync } from "node:fs";
import { parseCertDer } from "../x509/certinfo";
import { certBlocks } from "../tree/signing-ca";
import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { UserError } from "../common/errors";
import { caExpiryWarnings, DEFAULT_CA_WARN_DAYS, expiryFailures, expiryReport, formatExpiryTable } from "./expiry";
import { formatPrometheus, writeMetricsFile } from "./metrics";
import { verifyTree } from "./verify";
import { renewTree } from "./renew";
import { describeCert, formatDescription, nameString } from "./inspect";
import { findIssuer, listCertFiles, readCertFile } from "../x509/chain";
import { readAllStamps } from "../tree/state";
import { SECRETS_DIR, writeSecrets } from "./secrets";
import { discoverTargets, TreeOptions } from "../tree/targets";

const out = (l: string) => process.stdout.write(l + "\n");
const err = (l: string) => process.stderr.write(l + "\n");

export type Format = "text" | "json";

export function parseFormat(v: unknown): Format {
  if (v === undefined || v === "" || v === "text") return "text";
  if (v === "json") return "json";
  throw new UserError(`FORMAT: ${JSON.stringify(String(v))} is not an output format; accepted: text, json`);
}

export type ExpiryFormat = Format | "prometheus";

/** check-expiration's FORMAT: text, json or prometheus; METRICS_FILE alone means prometheus. */
export function parseExpiryFormat(v: unknown, metricsFile?: string): ExpiryFormat {
  const f: ExpiryFormat = v === "prometheus" ? "prometheus" : v === undefined || v === "" ? (metricsFile ? "prometheus" : "text") : parseFormatFor(v, "text, json, prometheus");
  if (metricsFile && f !== "prometheus") throw new UserError(`METRICS_FILE: is written in the prometheus format only; drop FORMAT=${String(v)} or give FORMAT=prometheus`);
  return f;
}

function parseFormatFor(v: unknown, accepted: string): Format {
  if (v === "text" || v === "json") return v;
  throw new UserError(`FORMAT: ${JSON.stringify(String(v))} is not an output format; accepted: ${accepted}`);
}

export async function checkExpirationCommand(o: TreeOptions, opts: { warnDays: number; caWarnDays?: number; format: ExpiryFormat; metricsFile?: string }): Promise<number> {
  const now = new Date();
  const r = expiryReport(o.certsDir, now, opts.warnDays);
  if (opts.format === "prometheus" && opts.metricsFile) {
    await writeMetricsFile(opts.metricsFile, formatPrometheus(r));
    const revoked = r.certificates.filter((e) => e.status === "revoked").length;
    out(`check-expiration: wrote the metrics of ${r.certificates.length - revoked} certificates to ${opts.metricsFile}${revoked ? ` (${revoked} revoked left out)` : ""}`);
  } else if (opts.format === "prometheus") process.stdout.write(formatPrometheus(r));
  else if (opts.format === "json") out(JSON.stringify(r, null, 2));
  else for (const l of formatExpiryTable(r)) out(l);
  const failures = expiryFailures(r);
  for (const f of failures) err(f);
  for (const w of caExpiryWarnings(r, opts.caWarnDays ?? DEFAULT_CA_WARN_DAYS, now)) err(`warning: ${w}`);
  if (opts.format === "text" && !failures.length) out(`check-expiration: ${r.certificates.length} certificates, none ends within ${r.warnDays} days`);
  return failures.length ? 1 : 0;
}

export async function verifyCommand(o: TreeOptions): Promise<number> {
  const r = await verifyTree(o);
  for (const w of r.warnings) err(`warning: ${w}`);
  for (const p of r.problems) out(p);
  const n = (k: number, what: string) => `${k} ${what}${k === 1 ? "" : "s"}`;
  out(`verify: ${r.problems.length ? "FAILED" : "ok"}: ${n(r.checked.filter((c) => c !== "crl").length, "certificate")} checked${r.checked.includes("crl") ? " (and the CRL)" : ""}, ${n(r.problems.length, "problem")}, ${n(r.warnings.length, "warning")}`);
  return r.problems.length ? 1 : 0;
}

export async function renewCommand(o: TreeOptions, opts: { warnDays: number; name?: string; newKey?: boolean; hook?: string }): Promise<number> {
  const r = await renewTree(o, { ...opts, log: out });
  for (const w of r.warnings) err(`warning: ${w}`);
  if (!r.renewed.length) {
    out(`renew: nothing ends within ${opts.warnDays} days; nothing renewed (NAME=<name> renews one certificate anyway)${opts.hook ? "; RENEW_HOOK not run" : ""}`);
    return 0;
  }
  for (const x of r.renewed) out(`renewed ${x.file}: ends ${x.notAfter}${x.oldNotAfter ? ` (was ${x.oldNotAfter})` : ""}${opts.newKey ? ", new key" : ""}`);
  out("renew: the CA is unchanged; etcd re-reads its certificate files for each new connection, so etcd needs no restart; clients that read their files once at start pick the new ones up when restarted; re-run \"make secrets\" for Kubernetes Secrets");
  if (opts.hook) {
    const names = r.renewed.map((x) => x.name).join(" ");
    out(`renew: running RENEW_HOOK for ${names}`);
    const h = runRenewHook(opts.hook, { TLS_SETUP_RENEWED: names, TLS_SETUP_RENEWED_FILES: r.renewed.map((x) => x.file).join(" "), TLS_SETUP_CERTS_DIR: o.certsDir });
    if (h) {
      err(`renew: RENEW_HOOK ${h}; the certificates of ${names} are renewed (the hook is not run again until something is renewed)`);
      return 1;
    }
  }
  return 0;
}

/** Runs RENEW_HOOK with sh -c, output passed through; undefined when it exits 0, else what went wrong. */
function runRenewHook(hook: string, env: Record<string, string>): string | undefined {
  const h = spawnSync("/bin/sh", ["-c", hook], { stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, ...env } });
  if (h.error) return `could not be started: ${h.error.message}`;
  if (h.signal) return `was killed by ${h.signal}`;
  return h.status === 0 ? undefined : `failed with exit code ${h.status}`;
}

export function inspectCommand(o: TreeOptions, opts: { name?: string; format: Format }): number {
  if (!opts.name) throw new UserError(`NAME: is missing; say which certificate, e.g. "make inspect NAME=etcd1" (a name of a certificate in ${o.certsDir})`);
  const byPath = opts.name.includes("/") || opts.name.endsWith(".pem");
  const file = byPath ? opts.name : join(o.certsDir, `${opts.name}.pem`);
  const name = byPath ? file.replace(/^.*\//, "").replace(/\.pem$/, "") : opts.name;
  if (!existsSync(file)) {
    const known = listCertFiles(o.certsDir).map((c) => c.name);
    throw new UserError(`${file}: does not exist; NAME=${opts.name} is not a certificate in ${o.certsDir}${known.length ? `; known: ${known.join(", ")}` : ""}`);
  }
  const facts = readCertFile(file);
  if (!facts) throw new UserError(`${file}: holds no PEM "CERTIFICATE"`);
  const cas = listCertFiles(o.certsDir).filter((c) => c.facts.isCa);
  const issuer = findIssuer(facts, cas);
  const chainsTo = !issuer ? "none" : issuer.file === file ? "self-signed" : issuer.name;
  // the path up to a self-signed root (leaf -> intermediate -> ca), and the certificates the file carries after it
  const path: string[] = [];
  for (let at = issuer; at && at.file !== file && !path.includes(at.name) && path.length < 8; ) {
    path.push(at.name);
    const up = findIssuer(at.facts, cas);
    at = up && up.file !== at.file ? up : undefined;
  }
  const inFile = certBlocks(readFileSync(file, "utf8")).slice(1).map((der) => nameString(parseCertDer(der).subjectDer));
  const inTree = resolve(dirname(file)) === resolve(o.certsDir);
  const role = !inTree ? "unknown" : readAllStamps(o.certsDir).get(name)?.role ?? discoverTargets(o).value.targets.find((t) => t.name === name)?.role ?? "unknown";
  const d = describeCert(facts, { name, file, role, chainsTo, chainPath: path, chainInFile: inFile, now: new Date() });
  if (opts.format === "json") out(JSON.stringify(d, null, 2));
  else for (const l of formatDescription(d)) out(l);
  return 0;
}

export async function secretsCommand(o: TreeOptions, opts: { user?: string; namespace?: string; secretName?: string }): Promise<number> {
  const { written, leftOut } = await writeSecrets(o, opts);
  const dir = join(o.certsDir, SECRETS_DIR);
  for (const w of written) out(`${w.changed ? "wrote" : "unchanged"} ${w.file}: Secret ${w.name} (user ${w.user}; keys etcd-ca, etcd-cert, etcd-key)`);
  for (const l of leftOut)
    out(l.kind === "root" ? `secrets: left out ${l.user} (${l.why}; its key can do anything in etcd); write it only if you mean to: make secrets NAME=${l.user}` : `secrets: left out ${l.user}: ${l.why}`);
  // a manifest of a left-out user already in the directory (root: NAME=root earlier; revoked: written before the
  // revocation) would go up with `apply -f dir/`
  const rootFiles = leftOut.map((l) => join(dir, `${l.user}.yaml`)).filter((f) => existsSync(f));
  if (!written.length) out(`secrets: no Secret written`);
  else if (opts.user !== undefined) out(`secrets: apply with "kubectl apply -f ${written[0].file}"; it holds ${written[0].root ? `etcd's root key (${written[0].root})` : "a private key"} (mode 0600)`);
  else if (rootFiles.length) out(`secrets: apply each file with "kubectl apply -f ${dir}/<user>.yaml": ${rootFiles.join(", ")} (${[...new Set(leftOut.filter((l) => rootFiles.includes(join(dir, `${l.user}.yaml`))).map((l) => (l.kind === "root" ? "etcd's root key" : "a revoked certificate")))].join(", ")}) is also in ${dir}/, so "kubectl apply -f ${dir}/" would upload it`);
  else out(`secrets: apply with "kubectl apply -f ${dir}/"; the files hold private keys (mode 0600)`);
  return 0;
}
