// The entry scripts' main functions run in the test's own process: the same argv, working directory and stdin, what
// they (and the library under them) print captured, and the exit code the script would end with. Most bad-input
// cases run this way (no Node start per case); a few per script still spawn dist/*.js to prove the wiring.
import { exitCodeOf } from "../scripts/lib/common/errors";
import type { CliIo } from "../scripts/lib/cli/cli";
import { caMain } from "../scripts/lib/cli/ca-main";
import { reqMain } from "../scripts/lib/cli/req-main";
import { bareMain } from "../scripts/lib/cli/bare-main";
import { tlsMain } from "../scripts/lib/cli/tls-main";
import { lifecycleMain } from "../scripts/lib/cli/lifecycle-main";
import { etcdMain } from "../scripts/lib/cli/etcd-main";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { snapshot } from "./helpers";
import type { Run } from "./helpers";

/** Each script's program name (the prefix of its error lines) and main, as scripts/NAME.ts passes them to runMain. */
const MAINS = {
  ca: ["ca", caMain],
  req: ["req", reqMain],
  bare: ["bare", bareMain],
  tls: ["tls-setup", (args: string[]) => tlsMain(args)],
  lifecycle: ["tls-setup", (args: string[]) => lifecycleMain(args)],
  etcd: ["tls-setup etcd", (args: string[]) => etcdMain(args)],
} as const satisfies Record<string, readonly [string, (args: string[], io: CliIo) => Promise<void | number>]>;

type Write = typeof process.stdout.write;

/**
 * Runs dist/SCRIPT.js's main function here, as `node dist/SCRIPT.js ARGS` would run it in `cwd` with `input` on
 * stdin (and `env` added to the environment): returns its exit status and everything written to stdout and stderr
 * while it ran (the library's own writes to process.stdout/stderr included). process.exit is refused while it runs
 * (yargs calls it for --help and its own usage errors): an in-process case must end through runMain's path, so that
 * shows as an internal error here. Runs take turns: one swaps process.stdout, the working directory and the
 * environment while it runs, so two at once (test.concurrent) would mix their output; a call made while another runs
 * starts when it ends.
 */
type InProcessOptions = { cwd?: string; input?: string; env?: Record<string, string | undefined> };
let turn: Promise<unknown> = Promise.resolve();
export function runInProcess(script: keyof typeof MAINS, args: string[], opts: InProcessOptions = {}): Promise<Run> {
  const run = turn.then(() => runNow(script, args, opts));
  turn = run.catch(() => undefined);
  return run;
}

async function runNow(script: keyof typeof MAINS, args: string[], opts: InProcessOptions): Promise<Run> {
  const [prog, main] = MAINS[script];
  let stdout = "";
  let stderr = "";
  const capture = (add: (s: string) => void): Write =>
    ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      add(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));
      const cb = rest.find((r) => typeof r === "function") as (() => void) | undefined;
      cb?.();
      return true;
    }) as Write;
  const io: CliIo = { out: (t) => void (stdout += t), err: (t) => void (stderr += t), stdin: () => opts.input ?? "", stdoutIsTTY: () => false };
  const saved = { out: process.stdout.write, err: process.stderr.write, exit: process.exit, cwd: process.cwd() };
  process.stdout.write = capture((s) => (stdout += s));
  process.stderr.write = capture((s) => (stderr += s));
  process.exit = ((code?: number) => {
    throw new Error(`process.exit(${code}) called by an in-process ${script}`);
  }) as typeof process.exit;
  const savedEnv = Object.entries(opts.env ?? {}).map(([k]) => [k, process.env[k]] as const);
  for (const [k, v] of Object.entries(opts.env ?? {})) setEnv(k, v);
  if (opts.cwd) process.chdir(opts.cwd);
  try {
    const code = await exitCodeOf(prog, () => main(args, io), io.err);
    return { status: code ?? 0, stdout, stderr };
  } finally {
    process.chdir(saved.cwd);
    process.stdout.write = saved.out;
    process.stderr.write = saved.err;
    process.exit = saved.exit;
    for (const [k, v] of savedEnv) setEnv(k, v);
  }
}

function setEnv(k: string, v: string | undefined): void {
  if (v === undefined) delete process.env[k];
  else process.env[k] = v;
}

/** `tls-setup ARGS --config-dir … --certs-dir …` on a tree, in process. */
export const tlsOn = (t: { config: string; certs: string }, ...args: string[]): Promise<Run> => runInProcess("tls", [...args, "--config-dir", t.config, "--certs-dir", t.certs]);

/** `lifecycle ARGS --config-dir … --certs-dir …` (check-expiration, verify, renew, inspect, secrets) on a tree, in process. */
export const lifecycleOn = (t: { config: string; certs: string }, ...args: string[]): Promise<Run> => runInProcess("lifecycle", [...args, "--config-dir", t.config, "--certs-dir", t.certs]);

/** `etcd ARGS --config-dir … --certs-dir …` (rbac, revoke, crl) on a tree, in process. */
export const etcdOn = (t: { config: string; certs: string }, ...args: string[]): Promise<Run> => runInProcess("etcd", [...args, "--config-dir", t.config, "--certs-dir", t.certs]);

/**
 * A `tls-setup ca-rotate STEP` on the tree refused as a user error: exit 1, exactly one line matching `re`, no stack,
 * and not a byte of the certs folder changed.
 */
export async function expectStepRefused(t: { config: string; certs: string }, step: string, re: RegExp): Promise<void> {
  const before = snapshot(t.certs);
  const r = await tlsOn(t, "ca-rotate", step);
  expect([step, r.status, r.stderr.trim().split("\n").length]).toEqual([step, 1, 1]);
  expect(r.stderr).toMatch(re);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(snapshot(t.certs)).toEqual(before);
}

/**
 * The tree after `tls-setup build ARGS` in process (what `make` runs on it): for a test whose subject comes after a
 * build. Fails the test when the build does not succeed.
 */
export async function made<T extends { config: string; certs: string }>(t: T, ...args: string[]): Promise<T> {
  const r = await tlsOn(t, "build", ...args);
  if (r.status !== 0) throw new Error(`tls-setup build ${args.join(" ")} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return t;
}

/**
 * What `make TARGETS VARS` runs (the Makefile's recipes), run in the test's own process: `tls-setup build`, `renew`,
 * `revoke`... with the same arguments make would pass (CA_KEY → --ca-key, ROOT_KEY → --root-key, PKCS11_MODULE →
 * --pkcs11-module, NEXT_CA_KEY → --next-ca-key, WARN_DAYS → --warn-days, NAME → --name or revoke's name), and the
 * follow-up `etcd crl` of rotate-intermediate, ca-rotate-reissue and ca-rotate-finish when certs/crl.pem exists.
 * `env` is set in process.env for the run (SOFTHSM2_CONF, PKCS11_PIN...). It throws on a target or variable it does
 * not map, so nothing is dropped silently. For cases whose subject is not make itself (every target keeps spawned
 * cases through runMake); with a token, only for cases that do not depend on a fresh process: the PKCS#11 module is
 * initialised once per process and a token stays logged in once opened, so a wrong or missing PIN, and whether a run
 * needs the PIN at all, stay with runMake (a process of its own).
 */
export async function makeInProcess(args: string[], tree: { config: string; certs: string }, extra: string[] = [], env: Record<string, string | undefined> = {}): Promise<Run> {
  const vars: Record<string, string> = {};
  // make takes VAR=value among the targets as well as after them
  const targets = args.filter((a) => !a.includes("="));
  for (const v of [...args.filter((a) => a.includes("=")), ...extra]) {
    const i = v.indexOf("=");
    if (i < 1) throw new Error(`makeInProcess: ${v}: expected VAR=value`);
    vars[v.slice(0, i)] = v.slice(i + 1);
  }
  const known = ["CA_KEY", "ROOT_KEY", "PKCS11_MODULE", "NEXT_CA_KEY", "WARN_DAYS", "NAME"];
  for (const k of Object.keys(vars)) if (!known.includes(k)) throw new Error(`makeInProcess: ${k} is not mapped; use runMake`);
  const opt = (v: string, flag: string) => (vars[v] ? [flag, vars[v]] : []);
  const treeArgs = ["--config-dir", tree.config, "--certs-dir", tree.certs, ...opt("CA_KEY", "--ca-key"), ...opt("ROOT_KEY", "--root-key"), ...opt("PKCS11_MODULE", "--pkcs11-module")];
  const target = targets.length === 0 ? "all" : targets.length === 1 ? targets[0] : "";
  const steps: [Parameters<typeof runInProcess>[0], string[]][] = [];
  const crlAfter = () => (existsSync(join(tree.certs, "crl.pem")) ? [["etcd", ["crl", ...treeArgs]] as (typeof steps)[number]] : []);
  const step = /^ca-rotate-(start|reissue|finish|status)$/.exec(target)?.[1];
  if (target === "all") steps.push(["tls", ["build", ...treeArgs]]);
  else if (target === "rotate") steps.push(["tls", ["build", "--rotate", ...treeArgs]]);
  else if (target === "rotate-intermediate") steps.push(["tls", ["build", "--rotate-intermediate", ...treeArgs]]);
  else if (target === "plan") steps.push(["tls", ["plan", ...treeArgs]]);
  else if (target === "prune") steps.push(["tls", ["prune", ...treeArgs]]);
  else if (step) steps.push(["tls", ["ca-rotate", step, ...treeArgs, ...(step !== "status" ? opt("NEXT_CA_KEY", "--next-ca-key") : [])]]);
  else if (target === "renew") steps.push(["lifecycle", ["renew", ...treeArgs, ...opt("WARN_DAYS", "--warn-days"), ...opt("NAME", "--name")]]);
  else if (target === "verify") steps.push(["lifecycle", ["verify", ...treeArgs]]);
  else if (target === "revoke" && vars.NAME) steps.push(["etcd", ["revoke", ...treeArgs, vars.NAME]]);
  else if (target === "crl") steps.push(["etcd", ["crl", ...treeArgs]]);
  else throw new Error(`makeInProcess: make ${targets.join(" ")} is not mapped; use runMake`);
  if ((vars.NEXT_CA_KEY && !step) || (vars.WARN_DAYS && target !== "renew") || (vars.NAME && target !== "renew" && target !== "revoke")) throw new Error(`makeInProcess: ${extra.join(" ")} is not passed by make ${target}`);
  const out: Run = { status: 0, stdout: "", stderr: "" };
  const followUp = ["rotate-intermediate", "ca-rotate-reissue", "ca-rotate-finish"].includes(target);
  for (let i = 0; i < steps.length; i++) {
    const r = await runInProcess(steps[i][0], steps[i][1], { env });
    out.stdout += r.stdout;
    out.stderr += r.stderr;
    out.status = r.status;
    if (r.status !== 0) break;
    if (i === 0 && followUp) steps.push(...crlAfter());
  }
  return out;
}
