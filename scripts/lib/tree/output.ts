// Writing cfssl's file layout (PREFIX.pem, PREFIX-key.pem, PREFIX.csr) atomically: every file goes to a temp file in
// the same directory (keys created 0600), is flushed, then renamed into place. When a new key replaces an old one,
// the old certificate is removed first, so a crash can leave a cert missing (which the planner remakes) but never a
// certificate beside a key it does not belong to.

import { chmodSync, readdirSync, statSync, unlinkSync, existsSync, readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { UserError } from "../common/errors";
import { writeFailure } from "../common/fs-errors";
import { open as openAsync, rename as renameAsync, unlink as unlinkAsync } from "node:fs/promises";

export const TEMP_PREFIX = ".tls-setup-tmp-";
export const KEY_MODE = 0o600;
export const CERT_MODE = 0o644;

export interface Bundle {
  cert?: string;
  key?: string;
  csr?: string;
}

export interface PlannedWrite {
  path: string;
  /** text, or bytes for a binary file (certs/crl.der) */
  data: string | Buffer;
  mode: number;
  /** appended to the temp file's name, so that a reader globbing the directory (node_exporter's *.prom) skips it */
  tempSuffix?: string;
}

export function bundlePaths(prefix: string): { cert: string; key: string; csr: string } {
  return { cert: `${prefix}.pem`, key: `${prefix}-key.pem`, csr: `${prefix}.csr` };
}

/** The files of certificate NAME in a certs directory: NAME.pem, NAME-key.pem, NAME.csr. */
export const certPaths = (certsDir: string, name: string) => bundlePaths(join(certsDir, name));

export const CA_NAME = "ca";

/** The CA's files: certs/ca.pem, certs/ca-key.pem, certs/ca.csr (the one place the CA's paths are made). */
export const caPaths = (certsDir: string) => certPaths(certsDir, CA_NAME);

/** The writes for a bundle, in commit order: key first, then the certificate that commits it, then the CSR. */
export function planBundle(prefix: string, b: Bundle): PlannedWrite[] {
  const p = bundlePaths(prefix);
  const out: PlannedWrite[] = [];
  if (b.key) out.push({ path: p.key, data: b.key, mode: KEY_MODE });
  if (b.cert) out.push({ path: p.cert, data: b.cert, mode: CERT_MODE });
  if (b.csr) out.push({ path: p.csr, data: b.csr, mode: CERT_MODE });
  return out;
}

function tempName(path: string, suffix = ""): string {
  return join(dirname(path), `${TEMP_PREFIX}${process.pid}-${randomBytes(4).toString("hex")}-${basename(path)}${suffix}`);
}

export interface CommitOptions {
  fsync?: boolean;
  /**
   * When a bundle brings a new key, remove the certificate already on disk before the key is renamed into place (the
   * default: a crash never leaves an old certificate beside a new key). False only where the certificate must never
   * be missing, not even for that moment, and a half-done commit is found and finished by a rerun: the trust file
   * certs/ca.pem at ca-rotate-finish (clients read it on every connection; ca-next.pem stays until the step is done).
   */
  removeOldCertFirst?: boolean;
}

/**
 * When a bundle brings a new key, the certificate already on disk must go before the key is renamed into place, so
 * that a crash never leaves the old certificate beside the new key. Returns that certificate's path, if any.
 */
function certToRemoveFirst(writes: PlannedWrite[]): string | undefined {
  const keyWrite = writes.find((w) => w.path.endsWith("-key.pem"));
  if (!keyWrite) return undefined;
  const certPath = keyWrite.path.replace(/-key\.pem$/, ".pem");
  const old = existsSync(keyWrite.path) ? readFileSync(keyWrite.path, "utf8") : undefined;
  return old !== keyWrite.data && existsSync(certPath) ? certPath : undefined;
}

/** A file-system refusal (a directory in the way, permissions, a full disk) as one line naming the file. */
function asUserError(e: unknown): unknown {
  const err = e as NodeJS.ErrnoException & { dest?: string };
  const reason = writeFailure(err);
  if (!reason) return e;
  const file = err.dest ?? err.path ?? "";
  // a temp file could not be made: the directory itself is the problem
  if (file.includes(TEMP_PREFIX)) return new UserError(`${dirname(file)}: cannot write there: ${err.code === "ENOENT" ? "the directory does not exist" : reason}`);
  return new UserError(`${file}: cannot be written: ${reason}`);
}

/** Takes group and other permissions off a private key file (e.g. after a copy or a chmod); true when it did. */
export function repairKeyMode(path: string): boolean {
  try {
    const m = statSync(path).mode & 0o777;
    if ((m & 0o077) === 0) return false;
    chmodSync(path, m & 0o700);
    return true;
  } catch {
    return false;
  }
}

async function writeTemp(w: PlannedWrite, fsync: boolean): Promise<string> {
  const tmp = tempName(w.path, w.tempSuffix);
  const fh = await openAsync(tmp, "wx", w.mode);
  try {
    await fh.writeFile(w.data);
    if (fsync) await fh.sync();
  } finally {
    await fh.close();
  }
  return tmp;
}

async function fsyncDir(dir: string): Promise<void> {
  try {
    const fh = await openAsync(dir, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // some filesystems refuse fsync on directories; the renames are still atomic
  }
}

/**
 * The one way files are written (bundles, stamps, the CRL and its index, Secrets, the RBAC script): atomically, in the
 * order of the file comment, off the event loop. The temp files are written and flushed in parallel on libuv's
 * thread pool, so many bundles committed at once share the filesystem's journal commits and the signing goes on
 * meanwhile. File-system refusals become one-line UserErrors naming the file.
 */
export async function commitWrites(writes: PlannedWrite[], opts: CommitOptions = {}): Promise<void> {
  await commitWritesUnchecked(writes, opts).catch((e) => {
    throw asUserError(e);
  });
}

async function commitWritesUnchecked(writes: PlannedWrite[], opts: CommitOptions): Promise<void> {
  const fsync = opts.fsync ?? true;
  const made = await Promise.allSettled(writes.map((w) => writeTemp(w, fsync)));
  const temps = made.map((r) => (r.status === "fulfilled" ? r.value : ""));
  const failed = made.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) {
    for (const t of temps) if (t) tryUnlink(t);
    throw failed.reason;
  }
  const oldCert = opts.removeOldCertFirst === false ? undefined : certToRemoveFirst(writes);
  if (oldCert) {
    await unlinkAsync(oldCert);
    if (fsync) await fsyncDir(dirname(oldCert));
  }
  for (let i = 0; i < writes.length; i++) await renameAsync(temps[i], writes[i].path);
  if (fsync) await Promise.all([...new Set(writes.map((w) => dirname(w.path)))].map(fsyncDir));
}

export function tryUnlink(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/** Whether a process exists (EPERM: it exists, but is another user's). Used for temp files and the lock. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Removes temp files left by killed runs (their pid is no longer alive). Returns how many were removed. */
export function cleanTemps(dir: string): number {
  let n = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    if (!name.startsWith(TEMP_PREFIX)) continue;
    const pid = Number(name.slice(TEMP_PREFIX.length).split("-")[0]);
    if (pid === process.pid || (pid > 0 && pidAlive(pid))) continue;
    tryUnlink(join(dir, name));
    n++;
  }
  return n;
}
