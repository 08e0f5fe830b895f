// `make renew` (after kubeadm's `certs renew`): re-issues the leaves that expire within WARN_DAYS, or the one named,
// from their current configs, through the core build (only + force). The CA and every other certificate stay as they
// are; each private key is kept unless a new one is asked for.

import { isoSeconds } from "../x509/certinfo";
import { build, BuildResult } from "../tree/build";
import { listCertFiles, readCertFile } from "../x509/chain";
import { UserError } from "../common/errors";
import { daysLeft, expiryStatus } from "./expiry";
import { certPaths } from "../tree/output";
import { findSigningCa } from "../tree/signing-ca";
import { makePlan } from "../tree/plan";
import { caFiles, INTERMEDIATE_NAME, isCaRole, TreeOptions } from "../tree/targets";

export interface RenewOptions {
  warnDays: number;
  /** renew this certificate whatever its expiry */
  name?: string;
  newKey?: boolean;
  now?: Date;
  log?: (line: string) => void;
}

export interface Renewed {
  name: string;
  file: string;
  oldNotAfter?: string;
  notAfter: string;
}

export interface RenewResult {
  renewed: Renewed[];
  warnings: string[];
  build?: BuildResult;
}


/** Which leaves to renew: the named one, or every leaf whose certificate ends within warnDays. */
export function selectRenewals(o: TreeOptions, opts: RenewOptions): { names: string[]; warnings: string[]; notAfter: Map<string, Date | undefined> } {
  const now = opts.now ?? new Date();
  const plan = makePlan(o);
  if (plan.problems.length) throw UserError.fromProblems(plan.problems);
  for (const ca of plan.items.filter((i) => isCaRole(i.target.role)))
    if (ca.action === "make") throw new UserError(`${ca.target.configFile}: the ${ca.target.role === "ca" ? "CA" : "intermediate CA"} has to be made first (${ca.reason}); "make renew" never makes a CA: run "make"`);
  if (!plan.items.some((i) => i.target.role === "ca")) throw new UserError(`${caFiles(o).config}: the CA has to be made first (no CA); "make renew" never makes a CA: run "make"`);
  const leaves = plan.items.filter((i) => !isCaRole(i.target.role)).map((i) => i.target.name);
  const warnings: string[] = [];
  // the leaves cannot outlive the CA that signs them, nor the root above it
  const signer = findSigningCa(o);
  for (const ca of signer.parent ? [signer, signer.parent] : [signer]) {
    const facts = readCertFile(ca.cert);
    const fix = ca.name === "ca" ? 'a new CA needs "make rotate" and restarts' : 'a new intermediate needs "make rotate-intermediate" (no restart)';
    if (facts && expiryStatus(facts.notAfter, now, opts.warnDays) !== "ok")
      warnings.push(`${ca.cert}: the ${ca.name === "ca" ? "CA" : "intermediate CA"} ends ${isoSeconds(facts.notAfter)} (${daysLeft(facts.notAfter, now)} days left); renewed certificates cannot outlive it: ${fix}`);
  }
  if (opts.name !== undefined) {
    if (opts.name === INTERMEDIATE_NAME && signer.parent) throw new UserError(`NAME: "intermediate" is the intermediate CA; "make renew" re-issues leaves only; a new intermediate is "make rotate-intermediate" (needs the root key; every leaf is re-issued, nothing restarts)`);
    if (opts.name === "ca") throw new UserError(`NAME: "ca" is the CA; "make renew" re-issues leaves only; a new CA is "make rotate" (every certificate is re-issued and everything that trusts the CA restarts)`);
    if (!leaves.includes(opts.name)) throw new UserError(`NAME: ${JSON.stringify(opts.name)} is not a certificate of this tree; known: ${leaves.join(", ")}`);
    return { names: [opts.name], warnings, notAfter: new Map([[opts.name, readCertFile(certPaths(o.certsDir, opts.name).cert)?.notAfter]]) };
  }
  // each leaf's certificate is read once: its end decides, and renewTree reports it
  const notAfter = new Map(leaves.map((n) => [n, readCertFile(certPaths(o.certsDir, n).cert)?.notAfter]));
  const revoked = new Set(plan.items.filter((i) => i.revoked).map((i) => i.target.name));
  const names = leaves.filter((n) => {
    const end = notAfter.get(n);
    return end !== undefined && expiryStatus(end, now, opts.warnDays) !== "ok";
  });
  // a revoked certificate is renewed only when named: a new serial would undo the revocation
  for (const n of names.filter((x) => revoked.has(x))) warnings.push(`${certPaths(o.certsDir, n).cert}: is revoked; not renewed (make renew NAME=${n} NEW_KEY=1 gives it a new certificate)`);
  const kept = names.filter((x) => !revoked.has(x));
  const owned = new Set(plan.items.map((i) => i.target.name));
  for (const c of listCertFiles(o.certsDir))
    if (!owned.has(c.name) && expiryStatus(c.facts.notAfter, now, opts.warnDays) !== "ok") warnings.push(`${c.file}: expires ${isoSeconds(c.facts.notAfter)} but has no config here; not renewed`);
  return { names: kept, warnings, notAfter };
}

export async function renewTree(o: TreeOptions, opts: RenewOptions): Promise<RenewResult> {
  const { names, warnings, notAfter: before } = selectRenewals(o, opts);
  if (!names.length) return { renewed: [], warnings };
  const result = await build(o, { only: names, force: true, newKey: opts.newKey, log: opts.log });
  const now = opts.now ?? new Date();
  const renewed: Renewed[] = [];
  for (const n of names) {
    const file = certPaths(o.certsDir, n).cert;
    const f = readCertFile(file);
    if (!f) continue;
    const old = before.get(n);
    renewed.push({ name: n, file, oldNotAfter: old ? isoSeconds(old) : undefined, notAfter: isoSeconds(f.notAfter) });
  }
  const still = renewed.filter((x) => expiryStatus(new Date(x.notAfter), now, opts.warnDays) !== "ok");
  if (still.length)
    warnings.push(`renewed, but still ending within ${opts.warnDays} days (the profile's expiry, or the CA's end, is shorter than WARN_DAYS): ${still.map((x) => `${x.file} (${x.notAfter})`).join(", ")}`);
  warnings.push(...result.warnings);
  return { renewed, warnings, build: result };
}
