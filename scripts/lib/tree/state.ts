// Per-target stamps in CERTS_DIR/.tls-setup/NAME.json: what each certificate was made from (input hashes) and what
// was written (file hashes). Content decides staleness, never mtimes.

import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Role } from "./targets";
import { commitWrites, CommitOptions, PlannedWrite, TEMP_PREFIX } from "./output";

export const STATE_DIR = ".tls-setup";
export const STAMP_VERSION = 1;

export interface Inputs {
  /** hash of the normalised request */
  request: string;
  /** hash of the signing profile (leaves) */
  profile?: string;
  /** SHA-256 of the issuing CA certificate (leaves) */
  ca?: string;
}

export interface Stamp {
  version: number;
  name: string;
  role: Role;
  config: string;
  inputs: Inputs;
  files: { cert: string; key: string; csr: string };
  serial: string;
  notAfter: string;
  issuedAt: string;
}

export const sha256 = (data: Buffer | string): string => createHash("sha256").update(data).digest("hex");

/** Stable JSON (sorted keys, Buffers as hex) for hashing normalised values. */
export function canonical(v: unknown): string {
  if (Buffer.isBuffer(v)) return JSON.stringify(v.toString("hex"));
  if (v instanceof Date) return JSON.stringify(v.toISOString());
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v && typeof v === "object") {
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}

export const hashValue = (v: unknown): string => sha256(canonical(v));

export const stateDir = (certsDir: string): string => join(certsDir, STATE_DIR);
const stampPath = (certsDir: string, name: string) => join(stateDir(certsDir), `${name}.json`);

export function readStamp(certsDir: string, name: string): Stamp | undefined {
  try {
    const s = JSON.parse(readFileSync(stampPath(certsDir, name), "utf8")) as Stamp;
    return s.version === STAMP_VERSION && s.name === name ? s : undefined;
  } catch {
    return undefined;
  }
}

export function readAllStamps(certsDir: string): Map<string, Stamp> {
  const out = new Map<string, Stamp>();
  let names: string[] = [];
  try {
    names = readdirSync(stateDir(certsDir));
  } catch {
    return out;
  }
  for (const f of names) {
    if (!f.endsWith(".json") || f.startsWith(TEMP_PREFIX)) continue;
    const s = readStamp(certsDir, f.slice(0, -5));
    if (s) out.set(s.name, s);
  }
  return out;
}

/** A stamp as a planned write (0600, in the 0700 state directory, made here), for the one commit; put it last, after the files it describes. */
export function stampWrite(certsDir: string, stamp: Stamp): PlannedWrite {
  mkdirSync(stateDir(certsDir), { recursive: true, mode: 0o700 });
  return { path: stampPath(certsDir, stamp.name), data: JSON.stringify(stamp, null, 2) + "\n", mode: 0o600 };
}

/** Writes a stamp alone through the one commit (atomic, flushed unless fsync is false). */
export async function writeStamp(certsDir: string, stamp: Stamp, opts: CommitOptions = {}): Promise<void> {
  await commitWrites([stampWrite(certsDir, stamp)], opts);
}
