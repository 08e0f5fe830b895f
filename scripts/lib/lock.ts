// One run at a time per certs directory: a lock directory made with mkdir (atomic), holding the owner's pid.
// A second run waits (saying so) and a lock left by a killed run is taken over.

import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "./errors";
import { stateDir } from "./state";

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

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function acquireLock(certsDir: string, opts: { timeoutMs?: number; onWait?: (pid: number) => void } = {}): Promise<Lock> {
  mkdirSync(stateDir(certsDir), { recursive: true, mode: 0o700 });
  const dir = join(stateDir(certsDir), "lock");
  const deadline = Date.now() + (opts.timeoutMs ?? 300_000);
  let told = false;
  for (;;) {
    try {
      mkdirSync(dir);
      writeFileSync(join(dir, "pid"), String(process.pid));
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          rmSync(dir, { recursive: true, force: true });
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const pid = holder(dir);
    if (pid === undefined) {
      // being created right now, or left half-made by a killed run: give it a moment, then take it over
      await sleep(50);
      if (holder(dir) === undefined) stealLock(dir);
      continue;
    }
    if (!alive(pid)) {
      stealLock(dir);
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

function stealLock(dir: string): void {
  const gone = `${dir}.stale-${process.pid}-${Date.now()}`;
  try {
    renameSync(dir, gone); // only one run wins the rename
    rmSync(gone, { recursive: true, force: true });
  } catch {
    // someone else took it over first
  }
}
