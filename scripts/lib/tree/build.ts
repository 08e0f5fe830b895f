// Carries out a plan in one process: the CA first, then every stale leaf, a few at a time (WebCrypto's signing runs
// on libuv's thread pool, so both cores work). Each certificate is committed atomically, then its stamp.

import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../common/errors";
import { defaultDeps, IssueDeps, Issued, Issuer, issueCa, issueLeaf, serialFrom } from "../x509/issue";
import { importKeyPair, KeyPair } from "../x509/keys";
import { bundlePaths, CA_NAME, caPaths as caPathsIn, cleanTemps, commitWrites, planBundle, repairKeyMode } from "./output";
import { makePlan, Orphan, Plan, PlanItem, PlanOptions } from "./plan";
import { sha256, Stamp, stampWrite, stateDir, writeStamp } from "./state";
import { TreeOptions } from "./targets";
import { acquireLock } from "./lock";
import { parseCertPem } from "../x509/certinfo";
import { KeySpec } from "../config/request";
import { caKeyRecordWrite, recordedLine, rememberCaKey, resolveCaKey, tokenKeyForNewCa } from "./ca-key";

export interface BuildOptions extends PlanOptions {
  /** a new key even when the existing one could be kept */
  newKey?: boolean;
  /** how many certificates are made at once */
  concurrency?: number;
  deps?: IssueDeps;
  log?: (line: string) => void;
  /** called after each certificate is made (for progress displays) */
  onProgress?: (done: number, total: number) => void;
  fsync?: boolean;
}

export interface BuildResult {
  made: string[];
  adopted: string[];
  unchanged: string[];
  orphans: Orphan[];
  warnings: string[];
  ms: number;
}

/** The warning and orphan lines of a build, as `make` and the watcher print them. */
export function buildNotices(o: TreeOptions, r: BuildResult): string[] {
  return [
    ...r.warnings.map((w) => `warning: ${w}`),
    ...r.orphans.map((x) => `orphaned: ${o.certsDir}/${x.name}.pem and its key: ${x.why}; left in place ("make prune" removes them)`),
  ];
}

/** "made N, unchanged M, orphaned K in T ms" */
export const buildSummary = (r: BuildResult, ms = r.ms): string => `made ${r.made.length}, unchanged ${r.unchanged.length + r.adopted.length}, orphaned ${r.orphans.length} in ${ms} ms`;

const sameSpec = (a: KeySpec, b: KeySpec) => a.algo === b.algo && a.size === b.size;

/**
 * The existing private key, when it can be kept: it parses and has the algorithm and size the config asks for, and
 * (for leaves) it is the key tls-setup wrote, not one changed outside the tool (e.g. another cert's key copied over).
 */
async function reusableKey(file: string, spec: KeySpec, deps: IssueDeps, expectedHash?: string): Promise<KeyPair | undefined> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch {
    return undefined;
  }
  if (expectedHash !== undefined && sha256(bytes) !== expectedHash) return undefined;
  try {
    const k = await importKeyPair(bytes.toString("utf8"), file, deps.crypto);
    return sameSpec(k.spec, spec) ? k : undefined;
  } catch {
    return undefined;
  }
}

/** The stamp of a certificate just made (hashed from memory), or of files the plan found on disk and adopts. */
function stampFor(item: PlanItem, issued: Issued | undefined, inputs = item.inputs): Stamp {
  let files: Stamp["files"];
  let serial: string;
  let notAfter: Date;
  if (issued) {
    // issued.keyPem is the kept key's own text when the key was kept
    files = { cert: sha256(issued.certPem), key: sha256(issued.keyPem), csr: sha256(issued.csrPem) };
    [serial, notAfter] = [issued.serialHex, issued.notAfter];
  } else {
    const f = item.found;
    if (!f?.cert) throw new Error(`internal: no certificate found for ${item.target.name} to adopt`);
    files = { cert: f.files.cert ?? "", key: f.files.key ?? "", csr: f.files.csr ?? "" };
    [serial, notAfter] = [f.cert.serialHex, f.cert.notAfter];
  }
  return { version: 1, name: item.target.name, role: item.target.role, config: item.target.configFile, inputs, files, serial, notAfter: notAfter.toISOString(), issuedAt: new Date().toISOString() };
}

/** Plans and builds a tree under its lock. Throws UserError with every problem when any config is invalid. */
export async function build(o: TreeOptions, bo: BuildOptions = {}): Promise<BuildResult> {
  const t0 = Date.now();
  const log = bo.log ?? (() => {});
  mkdirSync(o.certsDir, { recursive: true, mode: 0o755 });
  const lock = await acquireLock(o.certsDir, { onWait: (pid) => log(`waiting for another tls-setup run (pid ${pid}) on ${o.certsDir}...`) });
  try {
    cleanTemps(o.certsDir);
    cleanTemps(stateDir(o.certsDir));
    const plan = makePlan(o, bo);
    if (plan.problems.length) throw UserError.fromProblems(plan.problems);
    return await execute(plan, bo, t0);
  } finally {
    lock.release();
  }
}

async function execute(plan: Plan, bo: BuildOptions, t0: number): Promise<BuildResult> {
  const o = plan.options;
  const deps = bo.deps ?? defaultDeps();
  const log = bo.log ?? (() => {});
  const fsync = bo.fsync ?? true;
  const result: BuildResult = { made: [], adopted: [], unchanged: [], orphans: plan.orphans, warnings: plan.warnings, ms: 0 };
  // Serials are unique under the CA: compared as numbers (stamps hold the issued bytes or, for adopted certs, DER's
  // minimal form), and reserved as soon as they are drawn, since leaves are made concurrently.
  const serialKey = (hex: string) => BigInt(`0x${hex || "0"}`).toString(16);
  let usedSerials: Set<string> | undefined;
  const uniqueDeps: IssueDeps = {
    ...deps,
    randomSerial: () => {
      usedSerials ??= new Set([...plan.stamps.values()].map((s) => serialKey(s.serial)));
      for (;;) {
        const s = serialFrom(deps.randomSerial());
        const k = serialKey(s.toString("hex"));
        if (usedSerials.has(k)) continue;
        usedSerials.add(k);
        return s;
      }
    },
  };
  const caPaths = caPathsIn(o.certsDir);
  // the CA key: certs/ca-key.pem, or a key in a PKCS#11 token (CA_KEY or the record; tree/ca-key.ts)
  const caKey = resolveCaKey(o);
  let caFingerprint = plan.caFingerprint;
  const caItem = plan.items.find((i) => i.target.role === "ca");
  if (caItem?.action === "make") {
    const t = Date.now();
    const inToken = caKey.token ? await tokenKeyForNewCa(o, caKey, caItem.request.key, !!(bo.rotate || bo.newKey)) : undefined;
    const key = inToken?.key ?? (bo.rotate || bo.newKey ? undefined : await reusableKey(caPaths.key, caItem.request.key, deps));
    const issued = await issueCa(caItem.request, uniqueDeps, key);
    const bundle = planBundle(join(o.certsDir, CA_NAME), { cert: issued.certPem, key: key ? undefined : issued.keyPem, csr: issued.csrPem });
    const stamp = stampFor(caItem, issued);
    if (caKey.token) stamp.files.key = caKey.token.hash;
    // a CA whose key is in a token: the record in the same commit (a later run without CA_KEY finds the key)
    const record = caKeyRecordWrite(o, caKey);
    await commitWrites([...bundle, ...(record ? [record] : []), stampWrite(o.certsDir, stamp)], { fsync });
    caFingerprint = sha256(issued.certPem);
    result.made.push("ca");
    const keyNote = inToken ? `, key ${inToken.made ? "made in" : "kept in"} token ${inToken.key.uri}` : key ? ", key kept" : "";
    log(`made ${caPaths.cert} (CA${keyNote}): ${caItem.reason} [${Date.now() - t} ms]`);
    if (record) {
      caKey.token!.recorded = true;
      log(recordedLine(o, caKey));
    }
  } else if (caItem?.action === "adopt") {
    // the files must form a usable CA before we trust them
    const { loadIssuer } = await import("../x509/ca-load");
    await loadIssuer(caPaths.cert, caKey.ref, deps.now(), deps.crypto, caKey.where);
    await writeStamp(o.certsDir, stampFor(caItem, undefined), { fsync });
    result.adopted.push("ca");
    log(`kept ${caPaths.cert}: ${caItem.reason}`);
  } else if (caItem) result.unchanged.push("ca");

  const leaves = plan.items.filter((i) => i.target.role !== "ca");
  const stale = leaves.filter((i) => i.action === "make");
  result.unchanged.push(...leaves.filter((i) => i.action === "keep").map((i) => i.target.name));
  // certificates made outside tls-setup that satisfy their config (the planner checked them): stamped, not re-issued
  for (const item of leaves.filter((i) => i.action === "adopt")) {
    await writeStamp(o.certsDir, stampFor(item, undefined), { fsync });
    result.adopted.push(item.target.name);
    log(`kept ${bundlePaths(join(o.certsDir, item.target.name)).cert}: ${item.reason}`);
  }
  if (stale.length) {
    if (!existsSync(caPaths.cert)) throw new UserError(`${caPaths.cert}: does not exist; run "make ca" first`);
    const { loadIssuer } = await import("../x509/ca-load");
    const { issuer } = await loadIssuer(caPaths.cert, caKey.ref, deps.now(), deps.crypto, caKey.where);
    caFingerprint ??= sha256(readFileSync(caPaths.cert));
    let done = 0;
    let failure: { error: unknown } | undefined;
    const queue = [...stale];
    // on the first failure the other workers stop taking work, and build() keeps the lock until they have stopped
    const worker = async () => {
      for (let item = queue.shift(); item && !failure; item = queue.shift()) {
        try {
          await makeLeaf(item, issuer, caFingerprint!, o, bo, uniqueDeps, log, fsync);
        } catch (error) {
          failure ??= { error };
          return;
        }
        result.made.push(item.target.name);
        bo.onProgress?.(++done, stale.length);
      }
    };
    await Promise.all(Array.from({ length: Math.min(bo.concurrency ?? 4, stale.length) }, worker));
    if (failure) throw failure.error;
  }
  // last, once everything else succeeded (a failed run changes nothing on disk)
  const recorded = await rememberCaKey(o, caKey, { fsync });
  if (recorded) log(recorded);
  for (const i of plan.items) {
    const key = bundlePaths(join(o.certsDir, i.target.name)).key;
    if (repairKeyMode(key)) log(`made ${key} readable by its owner only (it was readable by others)`);
  }
  result.ms = Date.now() - t0;
  return result;
}

async function makeLeaf(item: PlanItem, issuer: Issuer, caFingerprint: string, o: TreeOptions, bo: BuildOptions, deps: IssueDeps, log: (l: string) => void, fsync: boolean): Promise<void> {
  const t = Date.now();
  const prefix = join(o.certsDir, item.target.name);
  const paths = bundlePaths(prefix);
  const key = bo.rotate || bo.newKey || !item.stamp ? undefined : await reusableKey(paths.key, item.request.key, deps, item.stamp.files.key);
  const issued = await issueLeaf(item.request, item.profile!, issuer, deps, key);
  // the stamp last in the same commit: flushed alongside the files, renamed after them
  const bundle = planBundle(prefix, { cert: issued.certPem, key: key ? undefined : issued.keyPem, csr: issued.csrPem });
  await commitWrites([...bundle, stampWrite(o.certsDir, stampFor(item, issued, { ...item.inputs, ca: caFingerprint }))], { fsync });
  const clamp = issued.clampedFrom ? `; cut to the CA's end ${issued.notAfter.toISOString().slice(0, 10)}` : "";
  log(`made ${paths.cert} (${item.target.role}${key ? ", key kept" : ""}): ${item.reason}${clamp} [${Date.now() - t} ms]`);
}
