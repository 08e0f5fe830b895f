// The revocation index certs/ca-revoked.json: its format and its one reader (etcd/revoke.ts writes it and builds the
// CRL from it). The planner reads the revoked serials, without the CA, so that a revoked certificate is never
// re-issued by itself: a new serial from the same CA (an edited profile, `make renew` of what ends soon, a CA
// rotation's re-issue) would give the revoked user working access again, since the CRL lists only the old serial.
// Only an explicit `make renew NAME=<user>` gives a revoked user a new certificate.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Parsed } from "../common/errors";
import { readFailure } from "../common/fs-errors";
import { canonicalSerialHex } from "../x509/certinfo";

/** The revocation index: which serials `make revoke` revoked, per CA (written by etcd/revoke.ts). */
export const revocationIndexFile = (certsDir: string): string => join(certsDir, "ca-revoked.json");
export const INDEX_VERSION = 1;

export interface RevokedRecord {
  serial: string;
  name: string;
  /** the certificate's CN when it was revoked */
  cn: string;
  revokedAt: string;
}

export interface CaRevocations {
  /** the CA's subject CN, for people reading the file */
  ca: string;
  crlNumber: number;
  revoked: RevokedRecord[];
  /** for an intermediate: the caKeyId of its root (the intermediates of one root share their revocations) */
  root?: string;
}

export interface RevocationIndex {
  version: number;
  /** keyed by caKeyId (etcd/revoke.ts) */
  cas: Record<string, CaRevocations>;
}

/** The one reader of the revocation index (empty when there is none), or the one-line problem that keeps it from being read. */
export function readRevocationIndex(certsDir: string): Parsed<RevocationIndex> {
  const file = revocationIndexFile(certsDir);
  if (!existsSync(file)) return { value: { version: INDEX_VERSION, cas: {} }, problems: [] };
  const bad = (message: string): Parsed<RevocationIndex> => ({ problems: [{ file, path: "", message }] });
  let v: RevocationIndex;
  try {
    v = JSON.parse(readFileSync(file, "utf8")) as RevocationIndex;
  } catch (e) {
    return bad(e instanceof SyntaxError ? `is not valid JSON (${e.message}); it is the revocation index: restore it from a backup` : readFailure(e));
  }
  if (v?.version !== INDEX_VERSION || typeof v.cas !== "object" || v.cas === null) return bad(`is not a tls-setup revocation index (version ${INDEX_VERSION})`);
  return { value: v, problems: [] };
}

export interface RevokedEntry {
  serial: string;
  /** the certificate's name when it was revoked */
  name: string;
  revokedAt: string;
}

/** Every revoked serial of the tree (of every CA in the index), lower-case hex, or the index's problem. */
export function readRevoked(certsDir: string): Parsed<Map<string, RevokedEntry>> {
  const index = readRevocationIndex(certsDir);
  if (!index.value) return { problems: index.problems };
  const out = new Map<string, RevokedEntry>();
  for (const ca of Object.values(index.value.cas))
    for (const r of Array.isArray(ca?.revoked) ? ca.revoked : [])
      if (typeof r?.serial === "string") out.set(canonicalSerialHex(r.serial), { serial: r.serial, name: r.name, revokedAt: r.revokedAt });
  return { value: out, problems: [] };
}
