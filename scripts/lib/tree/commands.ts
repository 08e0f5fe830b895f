// The tree commands, between argv parsing and the library: they print and return exit codes.

import { basename } from "node:path";
import { discoverTargets, intermediateConfig, TreeOptions } from "./targets";
import { intermediateMode } from "./signing-ca";
import { build, buildNotices, buildSummary } from "./build";
import { makePlan, staleItems } from "./plan";
import { UserError } from "../common/errors";
import { createProgress } from "./progress";
import { prune } from "./prune";
import { rotateFinish, rotateReissue, rotateStart, rotateStatus } from "./rotation";

const out = (l: string) => process.stdout.write(l + "\n");
const err = (l: string) => process.stderr.write(l + "\n");

export async function buildCommand(o: TreeOptions, opts: { only?: string[]; caOnly?: boolean; rotate?: boolean; rotateIntermediate?: boolean; newKey?: boolean }): Promise<number> {
  if (opts.rotateIntermediate && !intermediateMode(o)) throw new UserError(`${intermediateConfig(o)}: does not exist, so this tree has no intermediate CA to replace; copy config/examples/intermediate-csr.json there to sign with an intermediate (README "Offline root and intermediate")`);
  const progress = createProgress();
  const r = await build(o, { ...opts, log: progress.wrap(out), onProgress: (d, n) => progress.update(d, n) }).finally(() => progress.clear());
  for (const l of buildNotices(o, r)) err(l);
  out(`tls-setup: ${buildSummary(r)}`);
  return 0;
}

export function planCommand(o: TreeOptions, opts: { names?: boolean; caOnly?: boolean; only?: string[] }): number {
  const plan = makePlan(o, { caOnly: opts.caOnly, only: opts.only });
  if (opts.names) {
    // for the Makefile: on a config problem, name everything stale so make runs the build, which reports it
    if (plan.problems.length) for (const i of plan.items) out(i.target.name);
    else for (const i of staleItems(plan)) out(i.target.name);
    return 0;
  }
  if (plan.problems.length) throw UserError.fromProblems(plan.problems);
  for (const i of plan.items) out(`${i.action === "keep" ? "ok   " : i.action === "adopt" ? "adopt" : "make "} ${i.target.name.padEnd(24)} ${i.reason}`);
  for (const x of plan.orphans) out(`orphan ${x.name.padEnd(24)} ${x.why}`);
  return 0;
}

/** The certificate an output file belongs to: certs/NAME.pem, certs/NAME-key.pem or certs/NAME.csr. */
export function nameForFile(o: TreeOptions, file: string): string {
  const base = basename(file).replace(/\.(pem|csr)$/, "");
  const names = new Set(discoverTargets(o).value.targets.map((t) => t.name));
  if (names.has(base)) return base;
  const stripped = base.replace(/-key$/, "");
  if (names.has(stripped)) return stripped;
  throw new UserError(`${file}: is not a file of any certificate in ${o.configDir}; known: ${[...names].join(", ")}`);
}

/** `tls-setup prune`: lists the orphaned files, removes them, says how many (or that there was nothing to prune). */
export async function pruneCommand(o: TreeOptions): Promise<number> {
  const removed = await prune(o, { log: out });
  out(removed.length ? `prune: removed ${removed.length} orphaned certificate${removed.length === 1 ? "" : "s"} (${removed.map((p) => p.orphan.name).join(", ")})` : `prune: nothing to prune in ${o.certsDir}`);
  return 0;
}

/** `tls-setup ca-rotate STEP`: the phased CA rotation (tree/rotation.ts); prints what to do next. */
export async function caRotateCommand(o: TreeOptions, step: string, opts: { newKey?: boolean }): Promise<number> {
  const progress = createProgress();
  const log = progress.wrap(out);
  let lines: string[];
  if (step === "start") lines = await rotateStart(o, { log });
  else if (step === "reissue") lines = await rotateReissue(o, { log, newKey: opts.newKey }).finally(() => progress.clear());
  else if (step === "finish") lines = await rotateFinish(o, { log });
  else if (step === "status") lines = rotateStatus(o);
  else throw new UserError(`ca-rotate: ${JSON.stringify(step)} is not a step; known: start, reissue, finish, status`);
  for (const l of lines) out(l);
  return 0;
}
