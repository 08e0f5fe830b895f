// Watch mode: rebuild on every change in the config directory, through the same build() (and so the same planner)
// as `make`. Any event just schedules a build; the planner decides by content what is stale, so a save with identical
// content, an editor's temp file or an atomic rename-over cost one no-op plan. One build runs at a time and at most
// one rerun is queued; a bad config is reported and watching goes on; a signal finishes the running build first.

import { existsSync, statSync } from "node:fs";
import { dirname, resolve, sep } from "node:path";
import type { FSWatcher } from "chokidar";
import { build, buildNotices, BuildOptions, buildSummary } from "../tree/build";
import { isUserError, UserError } from "../common/errors";
import { createProgress } from "../tree/progress";
import { TreeOptions } from "../tree/targets";

/** Runs a task after a quiet period; one run at a time; changes during a run queue exactly one rerun. */
export class Debouncer {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly task: () => Promise<void>,
    private readonly quietMs: number,
  ) {}

  /** Something changed: run the task once things are quiet (or once the running one ends). */
  trigger(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.start(), this.quietMs);
  }

  /** Runs the task now (or after the running one). */
  runNow(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running) this.again = true;
    else this.start();
  }

  private start(): void {
    this.timer = undefined;
    if (this.stopped) return this.settle();
    this.running = this.task()
      .catch(() => {})
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          this.trigger();
        } else this.settle();
      });
  }

  private settle(): void {
    if (this.running || this.timer) return;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Resolves when no run is going on or pending. */
  idle(): Promise<void> {
    if (!this.running && !this.timer) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** No new runs; resolves once the running one (if any) has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.again = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
    this.settle();
  }
}

export interface WatchOptions {
  /** quiet period before a build, ms */
  debounceMs?: number;
  concurrency?: number;
  /** regeneration lines and the ready line */
  out?: (line: string) => void;
  /** problems, warnings, orphans */
  err?: (line: string) => void;
  build?: Pick<BuildOptions, "deps" | "fsync">;
}

export interface TreeWatcher {
  /** resolves after the first build, once the watch is live */
  ready: Promise<void>;
  /** stops watching after the running build (if any) has finished writing */
  close(): Promise<void>;
}

export const DEFAULT_DEBOUNCE_MS = 30;
/** the longest a stop waits for the file watcher to close once no build is running */
const CLOSE_WAIT_MS = 50;

const inside = (child: string, parent: string) => child === parent || child.startsWith(parent + sep);

/** Paths the watcher ignores: everything but the config directory and the JSON files directly in it, and always the certs directory. */
export function ignoredPath(configDir: string, certsDir: string): (p: string) => boolean {
  const root = resolve(configDir);
  const certs = resolve(certsDir);
  return (p) => {
    const abs = resolve(p);
    if (inside(abs, certs)) return true;
    if (abs === root) return false;
    return dirname(abs) !== root || !abs.endsWith(".json");
  };
}

/** Starts watching a tree: an initial build, then a build after every change. */
export function watchTree(o: TreeOptions, wo: WatchOptions = {}): TreeWatcher {
  const out = wo.out ?? ((l) => process.stdout.write(l + "\n"));
  const err = wo.err ?? ((l) => process.stderr.write(l + "\n"));
  const quietMs = wo.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  if (!Number.isFinite(quietMs) || quietMs < 0 || quietMs > 60_000) throw new UserError(`--debounce: ${quietMs} is not a quiet period; expected milliseconds from 0 to 60000`);
  if (!existsSync(o.configDir) || !statSync(o.configDir).isDirectory()) throw new UserError(`${o.configDir}: does not exist or is not a directory; expected the config directory`);

  // warnings and orphans are told once, not after every build
  let told = new Set<string>();
  let first = true;
  const runBuild = async () => {
    const t0 = Date.now();
    const progress = createProgress();
    const say = new Set<string>();
    try {
      const r = await build(o, { ...wo.build, concurrency: wo.concurrency, log: progress.wrap(out), onProgress: (d, n) => progress.update(d, n) });
      for (const l of buildNotices(o, r)) say.add(l);
      for (const l of say) if (!told.has(l)) err(l);
      told = say;
      const n = r.made.length + r.adopted.length;
      if (n || first) out(`watch: ${buildSummary(r, Date.now() - t0)}`);
    } catch (e) {
      progress.clear();
      // a bad config: its problems, one per line; nothing was written
      if (isUserError(e)) for (const l of e.message.split("\n")) err(`error: ${l}`);
      else err(`watch: internal error (please report): ${e instanceof Error ? e.stack : String(e)}`);
      told = new Set();
    } finally {
      first = false;
    }
  };

  const runner = new Debouncer(runBuild, quietMs);
  // loaded here: only the watcher needs chokidar
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const chokidar = require("chokidar") as typeof import("chokidar");
  const fsw: FSWatcher = chokidar.watch(o.configDir, { ignoreInitial: true, depth: 0, ignored: ignoredPath(o.configDir, o.certsDir) });
  fsw.on("all", () => runner.trigger());
  fsw.on("error", (e) => err(`watch: ${o.configDir}: ${e instanceof Error ? e.message : String(e)}`));
  const live = new Promise<void>((r) => fsw.once("ready", () => r()));

  const ready = (async () => {
    await live;
    runner.runNow();
    await runner.idle();
    out(`watch: watching ${o.configDir} (certificates in ${o.certsDir}); Ctrl-C to stop`);
  })();

  let closing: Promise<void> | undefined;
  return {
    ready,
    close: () =>
      (closing ??= (async () => {
        await runner.stop();
        // Closing the OS watches is quick, but chokidar may wait on its own closers (polling, fsevents): once the
        // builds are done nothing is at stake, so stopping waits for it briefly at most.
        await Promise.race([fsw.close(), new Promise<void>((r) => setTimeout(r, CLOSE_WAIT_MS).unref())]);
      })()),
  };
}

/**
 * Watches until SIGINT or SIGTERM, then returns 0 once the running build (if any) has finished writing. The caller
 * exits the process then: timers the file-watching library leaves behind (its event throttles outlive close()) must
 * not hold an idle watcher's exit back.
 */
export async function watchUntilSignal(o: TreeOptions, wo: WatchOptions = {}): Promise<number> {
  const w = watchTree(o, wo);
  const err = wo.err ?? ((l) => process.stderr.write(l + "\n"));
  const stopped = new Promise<void>((done) => {
    // handlers stay installed: a second Ctrl-C must not kill a build half-way either
    const onSignal = (sig: NodeJS.Signals) => {
      err(`watch: ${sig}: stopping (after the running build, if any)`);
      w.close().then(done, done);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
  await Promise.race([w.ready, stopped]);
  await stopped;
  return 0;
}
