// One run at a time per certs directory. The lock is a directory holding the owner's pid; it comes into being
// complete: the pid is written into a private directory which is then renamed to "lock" (rename fails while a held
// lock exists), so a lock is never seen without its owner. A second run waits (saying so); a lock left by a killed
// run is taken over, and a takeover that catches a live run's lock by mistake gives it back.

import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { UserError } from "../common/errors";
import { stateDir } from "./state";
import { pidAlive } from "./output";

export interface Lock {
  release(): void;
}

function holder(dir: string): number | undefined {
  try {
    return Number(readFileSync(join(dir, "pid"), "utf8")) || undefined;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const scratch = (dir: string, what: string) => `${dir}.${what}-${process.pid}-${randomBytes(4).toString("hex")}`;

/** Makes the lock in one step (a filled private directory renamed into place). False when someone holds it. */
function tryTake(dir: string): boolean {
  const tmp = scratch(dir, "new");
  mkdirSync(tmp, { mode: 0o700 });
  try {
    writeFileSync(join(tmp, "pid"), String(process.pid));
    renameSync(tmp, dir); // replaces only a missing or empty "lock"
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOTEMPTY" || code === "EEXIST") return false;
    throw e;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Removes lock.new-PID-* / lock.stale-PID-* directories that killed runs left behind. */
function cleanScratch(dir: string): void {
  const parent = join(dir, "..");
  let names: string[] = [];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^lock\.(?:new|stale)-(\d+)-/.exec(n);
    if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) rmSync(join(parent, n), { recursive: true, force: true });
  }
}

export async function acquireLock(certsDir: string, opts: { timeoutMs?: number; onWait?: (pid: number) => void } = {}): Promise<Lock> {
  mkdirSync(stateDir(certsDir), { recursive: true, mode: 0o700 });
  const dir = join(stateDir(certsDir), "lock");
  const deadline = Date.now() + (opts.timeoutMs ?? 300_000);
  let told = false;
  for (;;) {
    if (tryTake(dir)) {
      cleanScratch(dir);
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          if (holder(dir) !== process.pid) return; // taken over while we ran (only after a very long stall)
          const gone = scratch(dir, "stale");
          try {
            renameSync(dir, gone);
          } catch {
            return;
          }
          rmSync(gone, { recursive: true, force: true });
        },
      };
    }
    const pid = holder(dir);
    if (pid === undefined || !pidAlive(pid)) {
      // left by a killed run (or garbled): take it over
      stealLock(dir, pid);
      continue;
    }
    if (!told) {
      opts.onWait?.(pid);
      told = true;
    }
    if (Date.now() > deadline) throw new UserError(`${dir}: another tls-setup run (pid ${pid}) holds the lock; gave up waiting`);
    await sleep(100);
  }
}

/** Moves a dead run's lock aside. If a live run took the lock between our look and the move, it is put back. */
function stealLock(dir: string, deadPid: number | undefined): void {
  const gone = scratch(dir, "stale");
  try {
    renameSync(dir, gone); // only one run wins the rename
  } catch {
    return; // someone else took it over first, or it was released
  }
  const got = holder(gone);
  if (got !== deadPid && got !== undefined && pidAlive(got)) {
    try {
      renameSync(gone, dir);
      return;
    } catch {
      // a third run made a new lock meanwhile; the live run's own release() will see it is not the holder
    }
  }
  rmSync(gone, { recursive: true, force: true });
}
