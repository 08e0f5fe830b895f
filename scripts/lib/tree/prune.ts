// `make prune`: removes the files of orphaned certificates (stamped certificates that no target names any more: a
// member or proxy dropped from ETCD_MEMBERS / PROXIES, a user whose req-<user>.json is gone). Never automatic; under
// the run lock, like build.

import { existsSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../common/errors";
import { discoverTargets, TreeOptions } from "./targets";
import { findOrphans, Orphan } from "./plan";
import { readAllStamps, stateDir } from "./state";
import { bundlePaths } from "./output";
import { acquireLock } from "./lock";

export interface Pruned {
  orphan: Orphan;
  /** the files removed (those that existed), the stamp last */
  files: string[];
}

/** An orphan's files in the order they are removed: the key first, the stamp last (a run cut short is finished by the next). */
export function orphanFiles(certsDir: string, name: string): string[] {
  const p = bundlePaths(join(certsDir, name));
  return [p.key, p.csr, p.cert, join(stateDir(certsDir), `${name}.json`)];
}

/** Lists the orphans (log), then removes their files. Refuses when target names are invalid (an orphan could be a misnamed target). */
export async function prune(o: TreeOptions, opts: { log?: (line: string) => void } = {}): Promise<Pruned[]> {
  const log = opts.log ?? (() => {});
  if (!existsSync(o.certsDir)) return [];
  const lock = await acquireLock(o.certsDir, { onWait: (pid) => log(`waiting for another tls-setup run (pid ${pid}) on ${o.certsDir}...`) });
  try {
    const {
      value: { targets },
      problems,
    } = discoverTargets(o);
    if (problems.length) throw UserError.fromProblems(problems);
    const stamps = readAllStamps(o.certsDir);
    const withCert = new Set([...stamps.keys()].filter((n) => existsSync(bundlePaths(join(o.certsDir, n)).cert)));
    const orphans = findOrphans(new Set(targets.map((t) => t.name)), stamps, withCert);
    const out: Pruned[] = orphans.map((orphan) => ({ orphan, files: orphanFiles(o.certsDir, orphan.name).filter((f) => existsSync(f)) }));
    for (const p of out) log(`orphaned: ${p.files.join(", ")}: ${p.orphan.why}`);
    for (const p of out) for (const f of p.files) unlinkSync(f);
    return out;
  } finally {
    lock.release();
  }
}
