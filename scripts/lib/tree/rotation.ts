// The phased CA rotation (README "Rotating the CA"): a new root CA replaces the old one without an outage, because
// etcd reads its trust file only at start but its certificate and key on every handshake.
//
//   make ca-rotate-start    a new CA (new key, from ca-csr.json) in certs/ca-next.pem, ca-next-key.pem, ca-next.csr
//                           (a CA key in a PKCS#11 token: the new key is made in the token, named by NEXT_CA_KEY and
//                           recorded in certs/.tls-setup/ca-next-key.ref instead of ca-next-key.pem);
//                           the old CA's own certificate copied to certs/ca-prev.pem (its key stays certs/ca-key.pem);
//                           certs/ca.pem becomes the bundle old + new. No leaf changes; the old CA still signs.
//   make ca-rotate-reissue  every leaf re-issued by the new CA (keys kept unless NEW_KEY=1); the new CA signs from now.
//   make ca-rotate-finish   the old CA's certificate, key and CSR go to certs/archive/ca-DATE-SERIAL/; the new CA's
//                           files become certs/ca.pem (the new CA alone), ca-key.pem, ca.csr; the rotation files go.
//                           (Token keys: the old key stays in the token, its record is archived; ca-next-key.ref
//                           becomes ca-key.ref in the commit that makes the new CA certs/ca.pem.)
//
// The step is read from the files alone (signing-ca.ts rotationState), so an interrupted step is run again and a
// copied certs folder is read right. Each step's writes are ordered so that its last rename is what moves the state.
//
// Intermediate mode (config/intermediate-csr.json) replaces the ROOT the same way; the intermediate signs throughout:
//   start    the new root as above; the old root's key is not needed (may stay offline): the old intermediate signs on.
//   reissue  the old intermediate's files copied to certs/archive/intermediate-DATE-SERIAL/; a new intermediate (new
//            key) signed by the new root (its key certs/ca-next-key.pem is needed for this); every leaf re-issued by
//            it, each file the leaf then the new intermediate.
//   finish   as above; the old root's key is archived when it is in certs/, else (offline) left where it is; the new
//            root's key becomes certs/ca-key.pem when it is in certs/ (else it stays offline: make needs it not).
//   Token keys: the old root's (ROOT_KEY or ca-key.ref) needs NEXT_CA_KEY at start, as in root mode (the new root's
//   key made in the token, recorded in ca-next-key.ref); at reissue the new root signs the new intermediate through
//   it, and an intermediate key in a token (intermediate-key.ref) needs CA_KEY naming a new object for the new
//   intermediate (recorded in intermediate-key.ref in the commit that makes it; the old record archived with the old
//   intermediate); a file intermediate key given a CA_KEY moves into the token. finish as in root mode.

import { existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../common/errors";
import { isoSeconds, commonName, CertFacts, parseCertDer } from "../x509/certinfo";
import { signedBy } from "../x509/chain";
import { defaultDeps, IssueDeps, issueCa } from "../x509/issue";
import { KeyPair, publicKeyOfPem } from "../x509/keys";
import { caPaths, CERT_MODE, certPaths, cleanTemps, commitWrites, KEY_MODE, PlannedWrite, tryUnlink } from "./output";
import { acquireLock } from "./lock";
import { makePlan, PlanItem } from "./plan";
import { build } from "./build";
import { sha256, Stamp, stampWrite } from "./state";
import { intermediateMode, keyRefOf, loadCa, pathLen, readOneCert, rotationPaths, RotationState, rotationState, RotationStep } from "./signing-ca";
import { CaKey, caKeyText, keyRecordFile, keyRecordWriteAs, nextObjectUri, prepareTokenKey, resolveCaKey, resolveIntermediateKey, resolveNextCaKey, sameKeyInToken, tokenKeyOf } from "./ca-key";
import { INTERMEDIATE_NAME, TreeOptions } from "./targets";

export interface RotateOptions {
  deps?: IssueDeps;
  log?: (line: string) => void;
  newKey?: boolean;
  fsync?: boolean;
}

const NEXT: Record<RotationStep, string> = {
  none: "make ca-rotate-start",
  starting: "make ca-rotate-start (it was interrupted; run it again)",
  started: "make ca-rotate-reissue (after the rolling restart printed by ca-rotate-start)",
  reissuing: "make ca-rotate-reissue (it was interrupted; run it again)",
  reissued: "make ca-rotate-finish (after the clients that load their certificate once have restarted)",
  finishing: "make ca-rotate-finish (it was interrupted; run it again)",
};

/** One line: which step comes next, for a step asked out of order. */
const outOfOrder = (what: string, s: RotationState) => new UserError(`${what}: the CA rotation is at step "${s.step}"; the next step is ${NEXT[s.step]}`);

/** NEXT_CA_KEY names the new CA's key once, at the start; the other steps read its record. */
function refuseNextKeyAfterStart(o: TreeOptions, what: string): void {
  if (what !== "ca-rotate-start" && o.nextCaKey) throw new UserError(`NEXT_CA_KEY: is given to make ca-rotate-start only (it records the new CA's key in ${keyRecordFile(o.certsDir, "ca-next")}); leave it out of ${what}`);
}

const sameTokenKey = (a: CaKey, b: CaKey): boolean => !!a.token && !!b.token && a.token.hash === b.token.hash;

/**
 * The new CA's key at ca-rotate-start: NEXT_CA_KEY, or the key an interrupted start recorded; a CA key (in
 * intermediate mode the root's) in a token needs one (the new key is made in a token too); else the file
 * certs/ca-next-key.pem.
 */
function nextKeyForStart(o: TreeOptions, old: CaKey, im: boolean): CaKey {
  const nk = resolveNextCaKey(o);
  const oldWord = im ? "the root CA's key" : "the CA key";
  if (old.token && !nk.token)
    throw new UserError(`ca-rotate-start: ${oldWord} is in a PKCS#11 token (${caKeyText(old)}${im ? `, ${old.where}` : ""}); the new ${im ? "root" : "CA"}'s key is made in a token too: name a new object with NEXT_CA_KEY, e.g. make ca-rotate-start NEXT_CA_KEY='${nextObjectUri(old.token.uri)}'`);
  if (old.token && sameKeyInToken(nk, old))
    throw new UserError(`${nk.where}: ${caKeyText(nk)}: is the current ${im ? "root " : ""}CA's key; the new ${im ? "root" : "CA"} needs a new key: name a new object, e.g. NEXT_CA_KEY='${nextObjectUri(old.token.uri)}'`);
  if (im && nk.token) {
    const ik = resolveIntermediateKey({ ...o, caKey: undefined });
    if (sameTokenKey(nk, ik)) throw new UserError(`${nk.where}: ${caKeyText(nk)}: is the intermediate CA's key (${ik.where}); the new root needs its own key: name a new object, e.g. NEXT_CA_KEY='${nextObjectUri(nk.token.uri)}'`);
  }
  return nk;
}

function stateOrThrow(o: TreeOptions): RotationState {
  const s = rotationState(o);
  if (s.problem) throw new UserError(s.problem);
  return s;
}

async function underLock<T>(o: TreeOptions, what: string, f: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(o.certsDir, { onWait: (pid) => process.stderr.write(`${what}: waiting for another tls-setup run (pid ${pid})\n`) });
  try {
    cleanTemps(o.certsDir);
    return await f();
  } finally {
    lock.release();
  }
}

const caName = (f: CertFacts) => `"${commonName(f.subjectDer)}" (serial ${f.serialHex}, ends ${isoSeconds(f.notAfter).slice(0, 10)})`;

/** The restart plan of a rolling restart: members one at a time with a health gate, then proxies, then clients. */
export function restartPlan(o: TreeOptions, why: string): string[] {
  const ca = caPaths(o.certsDir).cert;
  const root = join(o.certsDir, "root");
  const out = [`Rolling restart (${why}); etcd reads --trusted-ca-file and --peer-trusted-ca-file only at start:`];
  o.members.forEach((m, i) => {
    out.push(`  ${i + 1}. copy ${ca} to ${m} (its --trusted-ca-file and --peer-trusted-ca-file); restart ${m}; wait until healthy:`);
    out.push(`       etcdctl --endpoints=https://HOST:2379 --cacert ${ca} --cert ${root}.pem --key ${root}-key.pem endpoint health   (HOST: ${m}'s address)`);
  });
  out.push(`  then the proxies${o.proxies.length ? ` (${o.proxies.join(", ")})` : ""}, one at a time; then every client that reads ${ca} (--cacert, the Secrets' etcd-ca: make secrets)`);
  return out;
}

/**
 * ca-rotate-start's new CA (the new root, in intermediate mode) from ca-csr.json: its key made in the token when the
 * new key is a token key (unless an interrupted start recorded this one: then it is kept), else a new key file's.
 */
async function issueNextCa(nk: CaKey, caItem: PlanItem, old: CertFacts, deps: IssueDeps) {
  let tokenKey: KeyPair | undefined;
  if (nk.token) {
    const prepared = await prepareTokenKey(nk, { fresh: !nk.token.recorded, spec: caItem.request.key, configFile: caItem.target.configFile, command: "make ca-rotate-start" });
    tokenKey = await tokenKeyOf(prepared);
  }
  const issued = await issueCa(caItem.request, deps, tokenKey);
  if (issued.certDer.equals(old.der)) throw new Error("internal: the new CA equals the old one");
  return issued;
}

/**
 * ca-rotate-start's one commit: the new CA's key (its file, or the record of its token key), CSR and certificate, the
 * old CA's own copy, then the trust bundle ca.pem last: its rename is what starts the rotation.
 */
async function commitStart(o: TreeOptions, nk: CaKey, issued: { keyPem: string; csrPem: string; certPem: string }, oldText: string, fsync: boolean): Promise<void> {
  const rp = rotationPaths(o.certsDir);
  const w = (path: string, data: string, mode = CERT_MODE): PlannedWrite => ({ path, data, mode });
  const keyWrite = nk.token ? keyRecordWriteAs(o, nk, "ca-next") : w(rp.next.key, issued.keyPem, KEY_MODE);
  await commitWrites([keyWrite, w(rp.next.csr, issued.csrPem), w(rp.prev, oldText), w(rp.next.cert, issued.certPem), w(rp.trust.cert, oldText.trimEnd() + "\n" + issued.certPem)], { fsync });
  // a key file left by an interrupted start without a token key would be a stray CA key: it goes
  if (nk.token) tryUnlink(rp.next.key);
}

/** make ca-rotate-start */
export async function rotateStart(o: TreeOptions, ro: RotateOptions = {}): Promise<string[]> {
  refuseNextKeyAfterStart(o, "ca-rotate-start");
  const deps = ro.deps ?? defaultDeps();
  return underLock(o, "ca-rotate-start", async () => {
    const s = stateOrThrow(o);
    if (s.step !== "none" && s.step !== "starting") throw outOfOrder("ca-rotate-start", s);
    const rp = rotationPaths(o.certsDir);
    const tp = rp.trust;
    if (!existsSync(tp.cert)) throw new UserError(`${tp.cert}: does not exist; there is no CA to rotate (make makes one)`);
    if (intermediateMode(o)) return startIntermediate(o, ro, deps);
    const ck = resolveCaKey(o);
    if (!ck.token && !existsSync(tp.key)) throw new UserError(`${tp.key}: the old CA's key is missing (kept offline?); ca-rotate-start needs it to keep signing until the re-issue: put it back for the rotation`);
    const nk = nextKeyForStart(o, ck, false);
    // the old CA must be usable: its key matches, it is a CA, valid (ca.pem holds exactly the old CA here)
    const oldText = readFileSync(tp.cert, "utf8");
    const { facts: old } = await loadCa({ name: "ca", cert: tp.cert, key: keyRefOf(ck) }, deps);
    const plan = makePlan(o, { caOnly: true });
    if (plan.problems.length) throw UserError.fromProblems(plan.problems);
    const caItem = plan.items.find((i) => i.target.role === "ca")!;
    const issued = await issueNextCa(nk, caItem, old, deps);
    await commitStart(o, nk, issued, oldText, ro.fsync ?? true);
    return [
      `ca-rotate-start: made the new CA ${rp.next.cert} ${caName(rotationState(o, false).next!)} with a new key ${nk.token ? `in token ${caKeyText(nk)} (recorded in ${keyRecordFile(o.certsDir, "ca-next")}; reissue and finish use it)` : rp.next.key}`,
      `ca-rotate-start: ${tp.cert} now trusts the old CA (${rp.prev}, key ${caKeyText(ck)}) and the new one; no leaf changed; the old CA still signs`,
      ...restartPlan(o, `1 of 2: every member, proxy and client must trust both CAs before any certificate from the new CA is used`),
      `Then: make ca-rotate-reissue`,
    ];
  });
}

/** make ca-rotate-reissue */
export async function rotateReissue(o: TreeOptions, ro: RotateOptions = {}): Promise<string[]> {
  refuseNextKeyAfterStart(o, "ca-rotate-reissue");
  const deps = ro.deps ?? defaultDeps();
  const s = stateOrThrow(o);
  if (s.step !== "started" && s.step !== "reissuing" && s.step !== "reissued") throw outOfOrder("ca-rotate-reissue", s);
  if (intermediateMode(o)) return reissueIntermediate(o, s, ro, deps);
  const rp = rotationPaths(o.certsDir);
  const nk = resolveNextCaKey(o);
  if (!nk.token && !existsSync(rp.next.key)) throw new UserError(`${rp.next.key}: the new CA's key is missing; restore it, or (nothing signed by it yet) remove ${rp.next.cert} and run make ca-rotate-start again`);
  await loadCa({ name: "ca", cert: rp.next.cert, key: keyRefOf(nk) }, deps);
  const log = ro.log ?? (() => {});
  const r = await build({ ...o, rotationSigner: "new" }, { newKey: ro.newKey, deps, log, fsync: ro.fsync });
  const after = rotationState(o);
  const { users, notReissued } = reissueOutcome(o, after, `signed by the new CA ${rp.next.cert}`);
  return [
    `ca-rotate-reissue: ${r.made.length} certificate(s) re-issued by the new CA ${rp.next.cert}${ro.newKey ? " with new keys" : " (keys kept)"}; from now on make signs with it`,
    `Picks it up by itself: the members (${o.members.join(", ")})${o.proxies.length ? ` and proxies (${o.proxies.join(", ")})` : ""} read --cert-file/--key-file on every new TLS handshake: copy the new files in place (key and certificate together), no restart`,
    `Must restart: every client that loads its certificate once${users.length ? ` (${users.join(", ")})` : ""}, after its new certificate is in place (Kubernetes: make secrets, then roll the pods)`,
    ...notReissued,
    `Then: make ca-rotate-finish`,
  ];
}

/**
 * After a re-issue: refused in one line when a leaf is still under the old CA (`where`: what "new" means), else the
 * users that must restart and the line naming the revoked leaves left to the old CA (never re-issued by themselves).
 */
function reissueOutcome(o: TreeOptions, after: RotationState, where: string): { users: string[]; notReissued: string[] } {
  const left = after.leaves.filter((l) => l.by !== "new" && l.by !== "missing" && l.by !== "revoked");
  if (left.length) throw new UserError(`ca-rotate-reissue: ${left.map((l) => l.file).join(", ")} still not ${where}; run make ca-rotate-reissue again`);
  const users = after.leaves.filter((l) => l.by !== "revoked" && !o.members.includes(l.name) && !o.proxies.includes(l.name) && !o.members.some((m) => l.name.startsWith(`${m}-`))).map((l) => l.name);
  const revoked = after.leaves.filter((l) => l.by === "revoked").map((l) => l.name);
  const notReissued = revoked.length ? [`Not re-issued: ${revoked.join(", ")} (revoked: make revoke); left to the old ${intermediateMode(o) ? "root" : "CA"}, they stop working when it leaves the trust`] : [];
  return { users, notReissued };
}

/** The archive folder of an old CA: certs/archive/NAME-DATE-SERIAL (an existing one for that serial is reused). */
function archiveDir(o: TreeOptions, prev: CertFacts, now: Date, name = "ca"): string {
  const base = rotationPaths(o.certsDir).archive;
  const suffix = `-${prev.serialHex}`;
  const found = existsSync(base) ? readdirSync(base).find((n) => n.startsWith(`${name}-`) && /^\d{4}-\d{2}-\d{2}-/.test(n.slice(name.length + 1)) && n.endsWith(suffix)) : undefined;
  return join(base, found ?? `${name}-${now.toISOString().slice(0, 10)}${suffix}`);
}

/**
 * ca-rotate-start in intermediate mode (under the lock, at step none or starting): the new root from ca-csr.json,
 * beside the old; the old root's key is not needed (the old intermediate keeps signing until the re-issue).
 */
async function startIntermediate(o: TreeOptions, ro: RotateOptions, deps: IssueDeps): Promise<string[]> {
  const rp = rotationPaths(o.certsDir);
  const tp = rp.trust;
  const imFile = certPaths(o.certsDir, INTERMEDIATE_NAME).cert;
  // the keys: the old root's (ROOT_KEY, its record or certs/ca-key.pem; not used here), the new root's (NEXT_CA_KEY,
  // required when the old root's key is in a token); CA_KEY (the intermediate's) belongs to the re-issue
  const rk = resolveCaKey(o);
  refuseIntermediateKeyAtStart(o);
  const nk = nextKeyForStart(o, rk, true);
  const oldText = readFileSync(tp.cert, "utf8");
  // the old root: checked with its key when the key file is here, else its certificate alone (a self-signed CA); a
  // token key is not opened (nothing signs with the old root during the rotation)
  const oldKeyFile = !rk.token && existsSync(tp.key);
  const old = oldKeyFile ? (await loadCa({ name: "ca", cert: tp.cert, key: { kind: "file", path: tp.key } }, deps)).facts : readOneCert(tp.cert, "the root CA certificate");
  if (!old.isCa || !signedBy(old, old)) throw new UserError(`${tp.cert}: is not a self-signed root CA certificate; ca-rotate-start replaces the root of an intermediate tree`);
  const plan = makePlan(o, { caOnly: true });
  if (plan.problems.length) throw UserError.fromProblems(plan.problems);
  // the tree as make leaves it: the rotation replaces a root whose intermediate is in place
  const stale = plan.items.find((i) => i.action !== "keep");
  if (stale) throw new UserError(`ca-rotate-start: ${stale.target.name === "ca" ? tp.cert : imFile}: ${stale.reason}; run make first, then make ca-rotate-start`);
  if (!signedBy(readOneCert(imFile, "the intermediate CA certificate"), old)) throw new UserError(`${imFile}: is not signed by the root CA in ${tp.cert}; run make first, then make ca-rotate-start`);
  const caItem = plan.items.find((i) => i.target.role === "ca")!;
  // refused before a key is made (in a token it would stay there)
  const zero = caItem.request.ca?.pathlenzero === true && (caItem.request.ca.pathlen ?? 0) === 0;
  const pathZero = () => new UserError(`${caItem.target.configFile}: ca.pathlenzero: gives the new root a path length of 0, so it may not sign the intermediate CA; remove it, then run make ca-rotate-start again`);
  if (zero) throw pathZero();
  const issued = await issueNextCa(nk, caItem, old, deps);
  if (pathLen(parseCertDer(issued.certDer)) === 0) throw pathZero();
  await commitStart(o, nk, issued, oldText, ro.fsync ?? true);
  const newKey = nk.token ? `in token ${caKeyText(nk)} (recorded in ${keyRecordFile(o.certsDir, "ca-next")}; reissue and finish use it)` : rp.next.key;
  const oldKey = rk.token ? `${caKeyText(rk)} (in the token) is not used by the rotation` : oldKeyFile ? `${tp.key} is not used by the rotation (it may go offline)` : "is not needed (kept offline)";
  const ik = resolveIntermediateKey(o);
  const reissueNeeds = ik.token
    ? `the new root's key ${caKeyText(nk)}, and a new object in the token for the new intermediate's key: make ca-rotate-reissue CA_KEY='${nextObjectUri(ik.token.uri)}'`
    : `the new root's key ${nk.token ? caKeyText(nk) : rp.next.key}`;
  return [
    `ca-rotate-start: made the new root CA ${rp.next.cert} ${caName(rotationState(o, false).next!)} with a new key ${newKey}`,
    `ca-rotate-start: ${tp.cert} now trusts the old root (${rp.prev}) and the new one; no leaf and no intermediate changed: the intermediate ${imFile} (under the old root) still signs; the old root's key ${oldKey}`,
    ...restartPlan(o, "1 of 2: every member, proxy and client must trust both roots before any certificate under the new root is used"),
    `Then: make ca-rotate-reissue (it needs ${reissueNeeds})`,
  ];
}

/**
 * CA_KEY at ca-rotate-start in intermediate mode names the intermediate's key, which start does not use (the
 * intermediate in place signs on): the current one is accepted, another is refused (it is the re-issue's, for the
 * new intermediate), rather than dropped unsaid.
 */
function refuseIntermediateKeyAtStart(o: TreeOptions): void {
  if (!o.caKey) return;
  const given = resolveIntermediateKey(o);
  const cur = resolveIntermediateKey({ ...o, caKey: undefined });
  if (sameTokenKey(given, cur)) return;
  throw new UserError(
    `CA_KEY: ${caKeyText(given)}: names the intermediate CA's key, which ca-rotate-start does not use (the intermediate in place signs on with its key ${caKeyText(cur)}); leave CA_KEY out here, and give a new intermediate's key to the next step: make ca-rotate-reissue CA_KEY='${caKeyText(given)}'`,
  );
}

/**
 * ca-rotate-reissue in intermediate mode: the old intermediate archived, a new one (new key) signed by the new root,
 * then every leaf re-issued by it (build, which signs with the new root's intermediate from here on). Run again after
 * an interruption: an intermediate already signed by the new root is kept, the leaves still under the old root are made.
 */
async function reissueIntermediate(o: TreeOptions, s: RotationState, ro: RotateOptions, deps: IssueDeps): Promise<string[]> {
  const rp = rotationPaths(o.certsDir);
  const imp = certPaths(o.certsDir, INTERMEDIATE_NAME);
  const log = ro.log ?? (() => {});
  const lines: string[] = [];
  const newIntermediate = s.intermediate !== "new";
  // the new root's key (a file, or the token key ca-rotate-start recorded) and the keys of the intermediate in place
  // and of the one to make (CA_KEY)
  const nk = resolveNextCaKey(o);
  const ik = resolveIntermediateKey(o);
  const cur = resolveIntermediateKey({ ...o, caKey: undefined });
  let oldImTokenKey: CaKey | undefined;
  if (newIntermediate) {
    if (!nk.token && !existsSync(rp.next.key)) throw new UserError(`${rp.next.key}: the new root's key is missing; ca-rotate-reissue signs the new intermediate CA with it: put it back for this step (or, nothing signed by it yet, remove ${rp.next.cert} and run make ca-rotate-start again)`);
    // a new intermediate needs a new key: in the token, a new object (CA_KEY), never the current one or a root's
    if (cur.token && !ik.token) throw new Error("internal: an intermediate key in a token resolved to a file");
    if (cur.token && !o.caKey)
      throw new UserError(`ca-rotate-reissue: the intermediate CA's key is in a PKCS#11 token (${caKeyText(cur)}, ${cur.where}); the new intermediate needs a new key, made in the token: name a new object with CA_KEY, e.g. make ca-rotate-reissue CA_KEY='${nextObjectUri(cur.token.uri)}'`);
    if (ik.token && sameTokenKey(ik, cur))
      throw new UserError(`${ik.where}: ${caKeyText(ik)}: is the current intermediate CA's key; the new intermediate needs a new key: name a new object, e.g. make ca-rotate-reissue CA_KEY='${nextObjectUri(ik.token.uri)}'`);
    if (ik.token && sameTokenKey(ik, nk))
      throw new UserError(`${ik.where}: ${caKeyText(ik)}: is the new root CA's key (${nk.where}); the new intermediate needs its own key: name another object, e.g. make ca-rotate-reissue CA_KEY='${nextObjectUri(ik.token.uri)}'`);
    await loadCa({ name: "ca", cert: rp.next.cert, key: keyRefOf(nk) }, deps);
    if (ik.token) {
      // the object must be free (checked before anything is archived; build makes the key in the token)
      const plan = makePlan(o, { caOnly: true });
      const imItem = plan.items.find((i) => i.target.role === "intermediate");
      if (!imItem) throw UserError.fromProblems(plan.problems);
      await prepareTokenKey(ik, { fresh: true, spec: imItem.request.key, configFile: imItem.target.configFile, command: "make ca-rotate-reissue" });
    }
    oldImTokenKey = cur.token ? cur : undefined;
    // the old intermediate's files into the archive before anything replaces them (its certificate last); a key in
    // a token stays there (it cannot leave it): its record is archived instead
    const dir = await underLock(o, "ca-rotate-reissue", async () => {
      if (!existsSync(imp.cert)) return undefined;
      const old = readOneCert(imp.cert, "the intermediate CA certificate");
      const dir = archiveDir(o, old, deps.now(), INTERMEDIATE_NAME);
      if (!existsSync(join(dir, "intermediate.pem"))) {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        const writes: PlannedWrite[] = [];
        if (existsSync(imp.csr)) writes.push({ path: join(dir, "intermediate.csr"), data: readFileSync(imp.csr), mode: CERT_MODE });
        if (cur.token) writes.push({ ...keyRecordWriteAs(o, cur, "intermediate"), path: join(dir, "intermediate-key.ref") });
        else if (existsSync(imp.key)) writes.push({ path: join(dir, "intermediate-key.pem"), data: readFileSync(imp.key), mode: KEY_MODE });
        writes.push({ path: join(dir, "intermediate.pem"), data: readFileSync(imp.cert), mode: CERT_MODE });
        await commitWrites(writes, { fsync: ro.fsync ?? true });
      }
      return dir;
    });
    if (dir && oldImTokenKey)
      lines.push(
        `ca-rotate-reissue: the old intermediate CA is archived in ${dir} (certificate, key record, CSR); its key stays in the token as ${caKeyText(oldImTokenKey)}: nothing signs with it once this step is done; delete it with pkcs11-tool (--delete-object --type privkey --label ...) then`,
      );
    else if (dir) lines.push(`ca-rotate-reissue: the old intermediate CA is archived in ${dir} (certificate, key, CSR)`);
  } else if (o.caKey && !sameTokenKey(ik, cur))
    // (an interrupted re-issue made the new intermediate already: its key is the recorded one)
    throw new UserError(`CA_KEY: ${caKeyText(ik)}: the new intermediate CA ${imp.cert} (signed by the new root) is made already, its key ${caKeyText(cur)}; leave CA_KEY out, then run make ca-rotate-reissue again`);
  const r = await build({ ...o, rotationSigner: "new" }, { rotateIntermediate: newIntermediate, newKey: ro.newKey, deps, log, fsync: ro.fsync });
  const after = rotationState(o);
  if (after.intermediate !== "new") throw new UserError(`ca-rotate-reissue: ${imp.cert} is still not signed by the new root ${rp.next.cert}; run make ca-rotate-reissue again`);
  const { users, notReissued } = reissueOutcome(o, after, `under the new root ${rp.next.cert}`);
  if (r.made.includes(INTERMEDIATE_NAME))
    lines.push(`ca-rotate-reissue: made the new intermediate CA ${imp.cert} (new key ${ik.token ? `in token ${caKeyText(ik)}, recorded in ${keyRecordFile(o.certsDir, "intermediate")}` : imp.key}), signed by the new root ${rp.next.cert}`);
  const leaves = r.made.filter((n) => n !== INTERMEDIATE_NAME).length;
  return [
    ...lines,
    `ca-rotate-reissue: ${leaves} certificate(s) re-issued by the new intermediate, each file the leaf then ${imp.cert}${ro.newKey ? " (new keys)" : " (keys kept)"}; from now on make signs with it`,
    `Picks it up by itself: the members (${o.members.join(", ")})${o.proxies.length ? ` and proxies (${o.proxies.join(", ")})` : ""} read --cert-file/--key-file on every new TLS handshake and trust both roots: copy the new files in place (key and certificate together), no restart`,
    `Must restart: every client that loads its certificate once${users.length ? ` (${users.join(", ")})` : ""}, after its new certificate is in place (Kubernetes: make secrets, then roll the pods)`,
    nk.token
      ? `The new root's key ${caKeyText(nk)} (in the token) is not needed by ca-rotate-finish or make; finish records it as the root's key (${keyRecordFile(o.certsDir, "ca")})`
      : `The new root's key ${rp.next.key} is not needed by ca-rotate-finish or make: it may go offline now`,
    ...notReissued,
    `Then: make ca-rotate-finish`,
  ];
}

/** make ca-rotate-finish */
export async function rotateFinish(o: TreeOptions, ro: RotateOptions = {}): Promise<string[]> {
  refuseNextKeyAfterStart(o, "ca-rotate-finish");
  const deps = ro.deps ?? defaultDeps();
  const fsync = ro.fsync ?? true;
  const im = intermediateMode(o);
  return underLock(o, "ca-rotate-finish", async () => {
    const s = stateOrThrow(o);
    if (s.step !== "reissued" && s.step !== "finishing") {
      const old = s.leaves.filter((l) => l.by === "old" || l.by === "other");
      const e = outOfOrder("ca-rotate-finish", s);
      throw old.length && s.step === "reissuing" ? new UserError(`${e.message}; ${old.length} leaf certificate(s) still signed by the old CA: ${old.map((l) => l.name).join(", ")}`) : e;
    }
    const rp = rotationPaths(o.certsDir);
    const tp = rp.trust;
    const next = s.next!;
    const nextText = readFileSync(rp.next.cert, "utf8");
    const lines: string[] = [];
    const caRecord = keyRecordFile(o.certsDir, "ca");
    const nextRecord = keyRecordFile(o.certsDir, "ca-next");
    const nk = resolveNextCaKey(o);
    let oldKeyNote: string | undefined;
    // 1. the old CA into the archive (its certificate last: present means complete); never deleted. A key in a token
    // stays there (it cannot leave it): its record is archived instead.
    if (s.prev) {
      const dir = archiveDir(o, s.prev, deps.now());
      const ac = join(dir, "ca.pem");
      const archivedRecord = join(dir, "ca-key.ref");
      if (!existsSync(ac)) {
        const ck = resolveCaKey(o);
        const writes: PlannedWrite[] = [];
        if (existsSync(tp.csr)) writes.push({ path: join(dir, "ca.csr"), data: readFileSync(tp.csr), mode: CERT_MODE });
        // (a token key: the CA's, in intermediate mode the old root's: ROOT_KEY or its record)
        if (ck.token) writes.push({ ...keyRecordWriteAs(o, ck, "ca"), path: archivedRecord });
        else if (existsSync(tp.key)) {
          const oldKey = readFileSync(tp.key, "utf8");
          const k = publicKeyOfPem(oldKey, tp.key);
          if (!k.spki.equals(s.prev.spki)) throw new UserError(`${tp.key}: is not the old ${im ? "root" : "CA"}'s key (${rp.prev}); put the old ${im ? "root" : "CA"}'s key back${im ? " or move it away (offline)" : ""}, then run make ca-rotate-finish again`);
          writes.push({ path: join(dir, "ca-key.pem"), data: oldKey, mode: KEY_MODE });
        } else if (!im) throw new UserError(`${tp.key}: the old CA's key is missing; it is archived by ca-rotate-finish: put it back, then run make ca-rotate-finish again`);
        // (intermediate mode: the old root's key may be offline; nothing was signed with it during the rotation)
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        await commitWrites([...writes, { path: ac, data: readFileSync(rp.prev), mode: CERT_MODE }], { fsync });
      }
      if (existsSync(archivedRecord)) {
        let uri = "";
        try {
          uri = String(JSON.parse(readFileSync(archivedRecord, "utf8")).uri ?? "");
        } catch {
          // the note then names the archived record only
        }
        oldKeyNote = `ca-rotate-finish: the old ${im ? "root" : "CA"}'s key stays in the token${uri ? ` as ${uri}` : ""} (its record: ${archivedRecord}); nothing signs with it any more: delete it with pkcs11-tool (--delete-object --type privkey --label ...) once the rotation is done`;
      }
      const keyArchived = existsSync(join(dir, "ca-key.pem"));
      if (oldKeyNote) lines.push(`ca-rotate-finish: the old ${im ? "root" : "CA"} ${caName(s.prev)} is archived in ${dir} (certificate, key record, CSR)`, oldKeyNote);
      else
        lines.push(
          keyArchived || !im
            ? `ca-rotate-finish: the old ${im ? "root" : "CA"} ${caName(s.prev)} is archived in ${dir} (certificate, key, CSR)`
            : `ca-rotate-finish: the old root ${caName(s.prev)} is archived in ${dir} (certificate, CSR); its key is not in ${o.certsDir} (kept offline): destroy it, or archive it where it is`,
        );
    }
    // 2. the new CA becomes certs/ca.pem, ca-key.pem (or, its key in a token, the record ca-key.ref), ca.csr, with its
    // stamp (a plain make then makes nothing); in intermediate mode the new root's key may already be offline: ca.pem
    // and ca.csr alone then
    const nextKeyHere = existsSync(rp.next.key);
    const inToken = !!nk.token && existsSync(nextRecord);
    if (inToken || nextKeyHere || im) {
      // the new CA's key: its token record, its key file, or (intermediate mode, kept offline) none; in the stamp the
      // key stands by the URI's hash, the file's hash, or "" (when it comes back, make adopts it after checking it)
      const keyText = !inToken && nextKeyHere ? readFileSync(rp.next.key, "utf8") : undefined;
      const keyWrite: PlannedWrite[] = inToken ? [keyRecordWriteAs(o, nk, "ca")] : keyText === undefined ? [] : [{ path: tp.key, data: keyText, mode: KEY_MODE }];
      const keyHash = inToken ? nk.token!.hash : keyText === undefined ? "" : sha256(keyText);
      const csrText = existsSync(rp.next.csr) ? readFileSync(rp.next.csr, "utf8") : "";
      const plan = makePlan(o, { caOnly: true });
      const caItem = plan.items.find((i) => i.target.role === "ca")!;
      const stamp: Stamp = {
        version: 1,
        name: "ca",
        role: "ca",
        config: caItem.target.configFile,
        inputs: { request: caItem.inputs.request },
        files: { cert: sha256(nextText), key: keyHash, csr: sha256(csrText) },
        serial: next.serialHex,
        notAfter: next.notAfter.toISOString(),
        issuedAt: new Date().toISOString(),
      };
      const writes: PlannedWrite[] = [...keyWrite, { path: tp.cert, data: nextText, mode: CERT_MODE }];
      if (csrText) writes.push({ path: tp.csr, data: csrText, mode: CERT_MODE });
      // ca.pem is replaced in place (never missing: every client reads it on each connection); a crash between the
      // new key's rename and ca.pem's leaves ca-next.pem, and the step is run again (see rotationState)
      await commitWrites([...writes, stampWrite(o.certsDir, stamp)], { fsync, removeOldCertFirst: false });
      if (inToken) {
        // an old key file (a file CA rotated into a token) is archived above: it leaves certs/
        if (s.prev && existsSync(join(archiveDir(o, s.prev, deps.now()), "ca-key.pem"))) tryUnlink(tp.key);
      } else if (existsSync(caRecord)) unlinkSync(caRecord); // the old CA's key was in a token: its record would now name the wrong key
    }
    // 3. the rotation's files go, ca-next.pem before its key (while ca-next.pem is there, its key is too); in
    // intermediate mode with the new root's key offline, the old root's key (archived above) leaves certs/ as well
    if (im && !nextKeyHere && s.prev && existsSync(tp.key) && existsSync(join(archiveDir(o, s.prev, deps.now()), "ca-key.pem"))) {
      let k: { spki: Buffer } | undefined;
      try {
        k = publicKeyOfPem(readFileSync(tp.key, "utf8"), tp.key);
      } catch {
        k = undefined;
      }
      if (k?.spki.equals(s.prev.spki)) unlinkSync(tp.key);
    }
    for (const f of [rp.prev, rp.next.csr, rp.next.cert, rp.next.key, nextRecord]) if (existsSync(f)) unlinkSync(f);
    const keyLine = nk.token
      ? `its key is ${caKeyText(nk)} in the token (recorded in ${caRecord})`
      : existsSync(tp.key)
        ? `its key is ${tp.key}${im ? " (it may go offline now: only a new intermediate needs it)" : ""}`
        : `its key is not in ${o.certsDir} (kept offline); put it at ${tp.key} when a new intermediate is made`;
    lines.push(`ca-rotate-finish: ${tp.cert} now holds the new ${im ? "root" : "CA"} ${caName(next)} alone; ${keyLine}`);
    lines.push(...restartPlan(o, im ? "2 of 2: the old root leaves the trust; until a member restarts it still accepts certificates under the old root" : "2 of 2: the old CA leaves the trust; until a member restarts it still accepts certificates of the old CA"));
    if (existsSync(join(o.certsDir, "crl.pem"))) lines.push(`The CRL ${join(o.certsDir, "crl.pem")} is re-signed by the new ${im ? "intermediate" : "CA"} (make ca-rotate-finish runs make crl)`);
    return lines;
  });
}

/** make ca-rotate-status: the step, what the files say, and what remains. */
export function rotateStatus(o: TreeOptions): string[] {
  const im = intermediateMode(o);
  const s = rotationState(o);
  const rp = rotationPaths(o.certsDir);
  const out = [`ca-rotate-status: step: ${s.step}${s.step === "none" ? " (no CA rotation in progress)" : ""}`];
  if (s.problem) return [...out, `ca-rotate-status: ${s.problem}`];
  if (s.step !== "none") {
    out.push(`  trust file ${rp.trust.cert}: ${s.trust.length} CA certificate(s)${s.trust.map((t) => `; ${s.prev && t.der.equals(s.prev.der) ? "old" : s.next && t.der.equals(s.next.der) ? "new" : "unknown"} ${im ? "root" : "CA"} ${caName(t)}`).join("")}`);
    if (im) {
      const imFile = certPaths(o.certsDir, INTERMEDIATE_NAME).cert;
      const by = { new: "signed by the new root (made by ca-rotate-reissue)", old: "signed by the old root (ca-rotate-reissue replaces it)", other: "signed by neither root", missing: "missing (make or ca-rotate-reissue makes it)" }[s.intermediate ?? "missing"];
      out.push(`  intermediate mode: the intermediate CA ${imFile} signs the leaves and the CRL; it is ${by}`);
    }
    if (s.leaves.length) {
      const n = (b: string) => s.leaves.filter((l) => l.by === b);
      out.push(`  leaves: ${n("new").length} ${im ? "under the new root (their intermediate is signed by it)" : "signed by the new CA"}, ${n("old").length} ${im ? "under the old root" : "by the old CA"}${n("other").length ? `, ${n("other").length} by neither (${n("other").map((l) => l.name).join(", ")})` : ""}${n("missing").length ? `, ${n("missing").length} missing (make makes them)` : ""}${n("revoked").length ? `, ${n("revoked").length} revoked and left to the old ${im ? "root" : "CA"} (${n("revoked").map((l) => l.name).join(", ")})` : ""}`);
      if (s.step === "reissuing") out.push(`  still by the old CA: ${n("old").map((l) => l.name).join(", ")}`);
    }
  } else {
    const stray = [rp.next.key, rp.next.csr, rp.prev].filter((f) => existsSync(f));
    if (stray.length) out.push(`  left by an interrupted ca-rotate-start (overwritten by the next one): ${stray.join(", ")}`);
  }
  if (s.step === "started" || s.step === "reissuing" || s.step === "reissued") {
    // where each CA's key is (a file, or a token key by its URI), from the variables and records; reads no token
    const where = (f: () => CaKey) => {
      try {
        const k = f();
        return k.token || existsSync(k.ref) ? caKeyText(k) : `${k.ref} (not there: kept offline?)`;
      } catch (e) {
        return e instanceof Error ? e.message : String(e);
      }
    };
    if (!im) out.push(`  keys: the old CA's ${where(() => resolveCaKey(o))}; the new CA's ${where(() => resolveNextCaKey(o))}`);
    else {
      // the intermediate's: the one in place (its record or file); CA_KEY is the new intermediate's before the re-issue
      const imKey = where(() => resolveIntermediateKey({ ...o, caKey: undefined }));
      const imWord = s.intermediate === "new" ? "the new intermediate's" : "the intermediate's (under the old root)";
      out.push(`  keys: the old root's ${where(() => resolveCaKey(o))}; the new root's ${where(() => resolveNextCaKey(o))}; ${imWord} ${imKey}`);
    }
  }
  out.push(`  next: ${NEXT[s.step]}`);
  return out;
}
