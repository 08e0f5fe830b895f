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
 * Runs an entry script's main function. User errors print their message, prefixed with the program name, and set
 * exit code 1; anything else is a bug: its stack is printed and the exit code is 2.
 */
export function runMain(prog: string, main: () => Promise<void | number>): void {
  main().then(
    (code) => {
      if (typeof code === "number") process.exitCode = code;
    },
    (e: unknown) => {
      if (isUserError(e)) {
        for (const line of e.message.split("\n")) process.stderr.write(`${prog}: ${line}\n`);
        process.exitCode = 1;
      } else {
        process.stderr.write(`${prog}: internal error (please report): ${e instanceof Error ? e.stack : String(e)}\n`);
        process.exitCode = 2;
      }
    },
  );
}
