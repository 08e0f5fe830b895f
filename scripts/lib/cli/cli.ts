// Shared bits of the entry scripts: cfssl-style single-dash long flags, stdin, and refusing to print keys to a
// terminal.

import { readFileSync } from "node:fs";
import yargs from "yargs";
import type { Argv } from "yargs";
import { UserError } from "../common/errors";

/** cfssl takes Go-style flags (-ca-key x); yargs wants --ca-key. Single-dash words become double-dash. */
export function normalizeArgv(argv: string[]): string[] {
  return argv.map((a) => (/^-[A-Za-z][A-Za-z0-9-]+(=.*)?$/s.test(a) ? `-${a}` : a));
}

/**
 * Where an entry script's main function reads and writes: the process's streams in a script (processIo), buffers in
 * the tests that call it in-process.
 */
export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
  stdin: () => string;
  stdoutIsTTY: () => boolean;
}

export function readStdin(): string {
  try {
    return readFileSync(0, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EAGAIN" || code === "EOF") return "";
    throw e;
  }
}

/** Private keys are not printed to a terminal (where they end up in scrollback) unless forced. */
export function refuseKeyToTerminal(force: boolean | undefined, isTTY: boolean = Boolean(process.stdout.isTTY)): void {
  if (isTTY && !force) throw new UserError("stdout is a terminal: refusing to print a private key there; pipe into bare (… | bare certs/NAME) or pass --force");
}

/**
 * For yargs' .fail(): a UserError thrown by a command handler reaches runMain (one line, no help text, no stack),
 * and yargs' own usage errors (unknown option, missing command) become UserErrors too.
 */
export function failAsUserError(msg: string | undefined, err: Error | undefined): never {
  if (err && !(err.name === "YError")) throw err;
  throw new UserError(`${msg ?? err?.message ?? "invalid arguments"} (see --help)`);
}


/** The process's own streams. */
export const processIo: CliIo = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  stdin: readStdin,
  stdoutIsTTY: () => Boolean(process.stdout.isTTY),
};

/**
 * yargs for a script with commands (tls, lifecycle, etcd). Each time yargs runs a command it renders the whole help
 * text (cliui: string widths, wrapping) only to keep it for a usage message on a later failure; our failures are one
 * line (failAsUserError), never the usage, so that rendering is skipped: ~2 ms of a run, and more in the tests, which
 * call the mains in-process hundreds of times, each file with cold code. `--help` renders its text as before. A yargs
 * without this internal hook (another major version) simply renders as before.
 */
export function commandYargs(args: string[]): Argv {
  const y = yargs(args);
  const usage = (y as unknown as { getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: () => void } } }).getInternalMethods?.().getUsageInstance?.();
  if (usage && typeof usage.cacheHelpMessage === "function") usage.cacheHelpMessage = () => undefined;
  return y;
}
