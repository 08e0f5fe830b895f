// Expected user errors (bad input, missing files) carry only a message and are printed as one line without a
// stack; anything else is a bug and keeps its stack.

/** One thing wrong with an input, located by file and JSON path (e.g. "key.size"). */
export interface Problem {
  file: string;
  path: string;
  message: string;
}

/** The one result shape of reading or parsing: the value, or the problems that kept it from being one. */
export interface Parsed<T> {
  value?: T;
  problems: Problem[];
}

/**
 * The same shape for a listing (the targets of a config directory, its users), whose value is useful even when some
 * entries are wrong: every good entry in value, and one problem for each bad one.
 */
export type Listed<T> = Parsed<T> & { value: T };

/** A parse that failed for one reason. */
export const failed = <T>(problem: Problem): Parsed<T> => ({ problems: [problem] });

export function formatProblem(p: Problem): string {
  return [p.file, p.path, p.message].filter((s) => s !== "").join(": ");
}

export class UserError extends Error {
  readonly problems: Problem[];
  constructor(message: string, problems: Problem[] = []) {
    super(message);
    this.name = "UserError";
    this.problems = problems;
  }

  static fromProblems(problems: Problem[]): UserError {
    return new UserError(problems.map(formatProblem).join("\n"), problems);
  }
}

export const isUserError = (e: unknown): e is UserError => e instanceof UserError;

/** Short rendering of a JSON value for messages: strings quoted, long values cut. */
export function show(v: unknown): string {
  let s: string;
  try {
    s = v === undefined ? "undefined" : JSON.stringify(v);
  } catch {
    s = String(v);
  }
  // cut by characters (code points), never inside a surrogate pair
  const chars = [...s];
  return chars.length > 80 ? chars.slice(0, 77).join("") + "..." : s;
}

/**
 * Runs an entry script's main function and gives its exit code (undefined: main returned none). User errors print
 * their message to `writeErr`, one line each prefixed with the program name: exit code 1; anything else is a bug:
 * its stack is printed and the exit code is 2. The tests call this in-process, as runMain does in a script.
 */
export async function exitCodeOf(prog: string, main: () => Promise<void | number>, writeErr: (text: string) => void): Promise<number | undefined> {
  try {
    const code = await main();
    return typeof code === "number" ? code : undefined;
  } catch (e) {
    if (isUserError(e)) {
      for (const line of e.message.split("\n")) writeErr(`${prog}: ${line}\n`);
      return 1;
    }
    writeErr(`${prog}: internal error (please report): ${e instanceof Error ? e.stack : String(e)}\n`);
    return 2;
  }
}

/** Runs an entry script's main function (see exitCodeOf), writing errors to stderr and setting process.exitCode. */
export function runMain(prog: string, main: () => Promise<void | number>): void {
  // a reader that stops early (make plan | head) closes the pipe: the rest of the output is dropped, and the run
  // still finishes its work (a build is never cut off mid-commit) instead of dying on an unhandled EPIPE
  for (const stream of [process.stdout, process.stderr])
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "EPIPE") throw e;
    });
  void exitCodeOf(prog, main, (text) => process.stderr.write(text)).then((code) => {
    if (code !== undefined) process.exitCode = code;
  });
}
