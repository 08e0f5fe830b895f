// Carries out a plan in one process: the CA first, then every stale leaf, a few at a time (WebCrypto's signing runs
// on libuv's thread pool, so both cores work). Each certificate is committed atomically, then its stamp.

import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../common/errors";
import { defaultDeps, IssueDeps, Issued, Issuer, issueCa, issueLeaf, serialFrom } from "../x509/issue";
import { importKeyPair, KeyPair } from "../x509/keys";
import { bundlePaths, cleanTemps, commitWrites, planBundle, PlannedWrite, repairKeyMode, tryUnlink } from "./output";
import { CaRef, intermediateProblems, keyPresent, keyText, loadCa, loadSigningCa, pathLen, readOneCert, rootCa } from "./signing-ca";
import { makePlan, Orphan, Plan, PlanItem, PlanOptions } from "./plan";
import { sha256, Stamp, stampWrite, stateDir, writeStamp } from "./state";
import { isCaRole, TreeOptions } from "./targets";
import { acquireLock } from "./lock";
import { isoSeconds } from "../x509/certinfo";
import { caCertFaults } from "../x509/chain";
import { KeySpec } from "../config/request";
import { CaKey, caKeyRecordWrite, PreparedTokenKey, prepareTokenKey, recordedLine, rememberCaKey, resolveCaKey, resolveIntermediateKey, tokenKeyOf } from "./ca-key";

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
function stampFor(item: PlanItem, issued: Issued | undefined, inputs = item.inputs, certText = issued?.certPem): Stamp {
  let files: Stamp["files"];
  let serial: string;
  let notAfter: Date;
  if (issued) {
    // issued.keyPem is the kept key's own text when the key was kept; certText is the file written (with its chain)
    files = { cert: sha256(certText ?? issued.certPem), key: sha256(issued.keyPem), csr: sha256(issued.csrPem) };
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
  // the CAs' keys: files in certs/, or keys in a PKCS#11 token (CA_KEY / ROOT_KEY or their records; tree/ca-key.ts)
  const caKey = resolveCaKey(o);
  const root = rootCa(o, caKey);
  const imItem = plan.items.find((i) => i.target.role === "intermediate");
  const imKey: CaKey | undefined = imItem ? resolveIntermediateKey(o) : undefined;
  let caFingerprint = plan.caFingerprint;
  let rootFingerprint: string | undefined;
  const caItem = plan.items.find((i) => i.target.role === "ca");
  // the token keys of the CAs to make, checked before anything is generated or written (one refusal changes nothing)
  const caToken: PreparedTokenKey | undefined =
    caItem?.action === "make" && caKey.token
      ? await prepareTokenKey(caKey, { fresh: !!(bo.rotate || bo.newKey), spec: caItem.request.key, configFile: caItem.target.configFile, certFile: root.cert, command: "make rotate" })
      : undefined;
  const imToken: PreparedTokenKey | undefined =
    imItem?.action === "make" && imKey?.token
      ? await prepareTokenKey(imKey, { fresh: !!(bo.rotate || bo.rotateIntermediate || bo.newKey), spec: imItem.request.key, configFile: imItem.target.configFile, certFile: bundlePaths(join(o.certsDir, imItem.target.name)).cert, command: bo.rotate ? "make rotate" : "make rotate-intermediate" })
      : undefined;
  if (caItem?.action === "make") {
    const t = Date.now();
    const inToken = await keyInToken(caToken);
    const key = inToken?.key ?? (bo.rotate || bo.newKey || root.key.kind !== "file" ? undefined : await reusableKey(root.key.path, caItem.request.key, deps));
    const issued = await issueCa(caItem.request, uniqueDeps, key);
    const bundle = planBundle(join(o.certsDir, root.name), { cert: issued.certPem, key: key ? undefined : issued.keyPem, csr: issued.csrPem });
    const recorded = await commitCa(o, caKey, bundle, stampFor(caItem, issued), fsync);
    rootFingerprint = sha256(issued.certPem);
    caFingerprint = rootFingerprint;
    result.made.push("ca");
    log(`made ${root.cert} (CA${keyNote(inToken, !!key)}): ${caItem.reason} [${Date.now() - t} ms]`);
    if (recorded) log(recorded);
    if (inToken) removeOldKeyFile(bundlePaths(join(o.certsDir, root.name)).key, "CA", log);
  } else if (caItem?.action === "adopt") {
    // the files must form a usable CA before we trust them (the certificate alone when the key is kept offline)
    if (keyPresent(root.key)) await loadCa(root, deps);
    else checkRootCert(root, deps.now());
    await writeStamp(o.certsDir, stampFor(caItem, undefined), { fsync });
    result.adopted.push("ca");
    log(`kept ${root.cert}: ${caItem.reason}`);
  } else if (caItem) result.unchanged.push("ca");

  const signer = plan.signer;
  if (imItem?.action === "make") {
    const t = Date.now();
    const { issuer: rootIssuer, facts: rootFacts } = await loadCa(root, deps);
    if (pathLen(rootFacts) === 0) throw new UserError(`${root.cert}: its path length is 0, so it may not sign an intermediate CA; re-make the root without "pathlenzero" in ${caItem?.target.configFile ?? "ca-csr.json"}`);
    const im = bundlePaths(join(o.certsDir, imItem.target.name));
    // a key in a token: made (or kept) there, never written; else the key file, kept unless a new one is asked for
    const inToken = await keyInToken(imToken);
    const key = inToken?.key ?? (bo.rotate || bo.rotateIntermediate || bo.newKey || imKey?.token ? undefined : await reusableKey(im.key, imItem.request.key, deps));
    const issued = await issueLeaf(imItem.request, imItem.profile!, rootIssuer, uniqueDeps, key);
    rootFingerprint ??= sha256(readFileSync(root.cert));
    const bundle = planBundle(join(o.certsDir, imItem.target.name), { cert: issued.certPem, key: key ? undefined : issued.keyPem, csr: issued.csrPem });
    const recorded = await commitCa(o, imKey, bundle, stampFor(imItem, issued, { ...imItem.inputs, ca: rootFingerprint }), fsync);
    caFingerprint = sha256(issued.certPem);
    result.made.push(imItem.target.name);
    const clamp = issued.clampedFrom ? `; cut to the root's end ${isoSeconds(issued.notAfter).slice(0, 10)}` : "";
    log(`made ${im.cert} (intermediate CA${keyNote(inToken, !!key)}, signed by ${root.cert}): ${imItem.reason}${clamp} [${Date.now() - t} ms]`);
    if (recorded) log(recorded);
    if (inToken) removeOldKeyFile(im.key, "intermediate CA", log);
  } else if (imItem?.action === "adopt") {
    // an intermediate made elsewhere (cfssl, openssl): its chain to the root and its key are checked first
    const problems = intermediateProblems(signer.cert, readOneCert(signer.cert, "the intermediate CA certificate"), readOneCert(root.cert, "the root CA certificate"), root.cert, deps.now());
    if (problems.length) throw new UserError(problems.map((p) => `${p}; not adopted as the intermediate CA`).join("\n"));
    await loadCa(signer, deps);
    await writeStamp(o.certsDir, stampFor(imItem, undefined), { fsync });
    result.adopted.push(imItem.target.name);
    log(`kept ${signer.cert}: ${imItem.reason}`);
  } else if (imItem) result.unchanged.push(imItem.target.name);
  if (result.made.some((n) => n === signer.name) && existsSync(join(o.certsDir, "crl.pem")))
    result.warnings.push(`${join(o.certsDir, "crl.pem")}: was signed by the previous ${signer.parent ? "intermediate CA" : "CA"}; run "make crl" to re-sign it with ${signer.cert} (etcd compares serials only, openssl -crl_check needs the new issuer)`);

  const leaves = plan.items.filter((i) => !isCaRole(i.target.role));
  const stale = leaves.filter((i) => i.action === "make");
  result.unchanged.push(...leaves.filter((i) => i.action === "keep").map((i) => i.target.name));
  // certificates made outside tls-setup that satisfy their config (the planner checked them): stamped, not re-issued
  for (const item of leaves.filter((i) => i.action === "adopt")) {
    await writeStamp(o.certsDir, stampFor(item, undefined), { fsync });
    result.adopted.push(item.target.name);
    log(`kept ${bundlePaths(join(o.certsDir, item.target.name)).cert}: ${item.reason}`);
  }
  if (stale.length) {
    if (!existsSync(signer.cert)) throw new UserError(`${signer.cert}: does not exist; run "make ca" first`);
    const { issuer, chainPem } = await loadSigningCa(signer, deps);
    caFingerprint ??= sha256(readFileSync(signer.cert));
    let done = 0;
    let failure: { error: unknown } | undefined;
    const queue = [...stale];
    // on the first failure the other workers stop taking work, and build() keeps the lock until they have stopped
    const worker = async () => {
      for (let item = queue.shift(); item && !failure; item = queue.shift()) {
        try {
          await makeLeaf(item, { issuer, chainPem }, caFingerprint!, o, bo, uniqueDeps, log, fsync);
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
  for (const k of imKey ? [caKey, imKey] : [caKey]) {
    const recorded = await rememberCaKey(o, k, { fsync });
    if (recorded) log(recorded);
  }
  for (const i of plan.items) {
    const key = bundlePaths(join(o.certsDir, i.target.name)).key;
    if (repairKeyMode(key)) log(`made ${key} readable by its owner only (it was readable by others)`);
  }
  result.ms = Date.now() - t0;
  return result;
}

/** The key of a CA being made in a token, once its checks passed: the kept one, or the one generated now. */
const keyInToken = async (p: PreparedTokenKey | undefined): Promise<{ key: KeyPair; made: boolean } | undefined> => (p ? { key: await tokenKeyOf(p), made: p.made } : undefined);

/** How a CA just made got its key, for its log line: made in / kept in its token, or its key file kept. */
const keyNote = (inToken: { key: KeyPair; made: boolean } | undefined, kept: boolean): string =>
  inToken ? `, key ${inToken.made ? "made in" : "kept in"} token ${inToken.key.uri}` : kept ? ", key kept" : "";

/**
 * A CA's one commit: its files, the record of its token key when the record does not say it yet (a later run without
 * CA_KEY / ROOT_KEY finds the key), and its stamp, in which a token key stands by its URI's hash. Returns the line
 * saying a record was written, if one was.
 */
async function commitCa(o: TreeOptions, ck: CaKey | undefined, bundle: PlannedWrite[], stamp: Stamp, fsync: boolean): Promise<string | undefined> {
  if (ck?.token) stamp.files.key = ck.token.hash;
  const record = ck && caKeyRecordWrite(o, ck);
  await commitWrites([...bundle, ...(record ? [record] : []), stampWrite(o.certsDir, stamp)], { fsync });
  if (!record) return undefined;
  ck.token!.recorded = true;
  return recordedLine(o, ck);
}

/**
 * A CA made with a key in a token leaves no key file of its own: a key file still there belonged to the CA it
 * replaces (as a CA made with a key file writes over it), and would be a CA private key left in certs/.
 */
function removeOldKeyFile(file: string, what: string, log: (l: string) => void): void {
  if (!existsSync(file)) return;
  tryUnlink(file);
  log(`removed ${file}: the ${what}'s key is in the token now; that file held the key of the ${what} it replaces`);
}

/** A root CA certificate adopted while its key is offline: it must be a self-signed CA allowed to sign, and valid. */
function checkRootCert(root: CaRef, now: Date): void {
  const f = readOneCert(root.cert, "the root CA certificate");
  const why = caCertFaults(f, { root: true })[0] ?? (now > f.notAfter ? `the CA expired on ${isoSeconds(f.notAfter)}` : undefined);
  if (why) throw new UserError(`${root.cert}: ${why}; not adopted as the root (its key ${keyText(root.key)} is absent)`);
}

async function makeLeaf(item: PlanItem, signer: { issuer: Issuer; chainPem: string }, caFingerprint: string, o: TreeOptions, bo: BuildOptions, deps: IssueDeps, log: (l: string) => void, fsync: boolean): Promise<void> {
  const t = Date.now();
  const prefix = join(o.certsDir, item.target.name);
  const paths = bundlePaths(prefix);
  const key = bo.rotate || bo.newKey || !item.stamp ? undefined : await reusableKey(paths.key, item.request.key, deps, item.stamp.files.key);
  const issued = await issueLeaf(item.request, item.profile!, signer.issuer, deps, key);
  // the leaf, then the chain (the intermediate): Go sends every certificate of --cert-file
  const certText = issued.certPem + signer.chainPem;
  // the stamp last in the same commit: flushed alongside the files, renamed after them
  const bundle = planBundle(prefix, { cert: certText, key: key ? undefined : issued.keyPem, csr: issued.csrPem });
  await commitWrites([...bundle, stampWrite(o.certsDir, stampFor(item, issued, { ...item.inputs, ca: caFingerprint }, certText))], { fsync });
  const clamp = issued.clampedFrom ? `; cut to the CA's end ${issued.notAfter.toISOString().slice(0, 10)}` : "";
  log(`made ${paths.cert} (${item.target.role}${key ? ", key kept" : ""}): ${item.reason}${clamp} [${Date.now() - t} ms]`);
}
