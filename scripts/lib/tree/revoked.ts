// Which certificates of a tree are revoked: the serials in certs/ca-revoked.json (written by `make revoke`, read
// here without the CA). The planner reads them so that a revoked certificate is never re-issued by itself: a new
// serial from the same CA (an edited profile, `make renew` of what ends soon, a CA rotation's re-issue) would give
// the revoked user working access again, since the CRL lists only the old serial. Only an explicit
// `make renew NAME=<user>` gives a revoked user a new certificate.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Parsed } from "../common/errors";
import { readFailure } from "../common/fs-errors";

/** The revocation index (its format: etcd/revoke.ts). */
export const revocationIndexFile = (certsDir: string): string => join(certsDir, "ca-revoked.json");

export interface RevokedEntry {
  serial: string;
  /** the certificate's name when it was revoked */
  name: string;
  revokedAt: string;
}

/** Every revoked serial of the tree (of every CA in the index), or the problem that keeps the index from being read. */
export function readRevoked(certsDir: string): Parsed<Map<string, RevokedEntry>> {
  const file = revocationIndexFile(certsDir);
  const out = new Map<string, RevokedEntry>();
  if (!existsSync(file)) return { value: out, problems: [] };
  const bad = (why: string): Parsed<Map<string, RevokedEntry>> => ({ problems: [{ file, path: "", message: `${why}; it is the revocation index (make revoke), needed to keep revoked certificates from being re-issued: restore it from a backup` }] });
  let v: { cas?: Record<string, { revoked?: { serial?: unknown; name?: unknown; revokedAt?: unknown }[] }> };
  try {
    v = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    return bad(e instanceof SyntaxError ? `is not valid JSON (${e.message})` : readFailure(e));
  }
  if (typeof v !== "object" || v === null || typeof v.cas !== "object" || v.cas === null) return bad(`has no "cas" object`);
  for (const ca of Object.values(v.cas))
    for (const r of Array.isArray(ca?.revoked) ? ca.revoked : [])
      if (typeof r?.serial === "string") out.set(r.serial.toLowerCase(), { serial: r.serial, name: String(r.name ?? ""), revokedAt: String(r.revokedAt ?? "") });
  return { value: out, problems: [] };
}
