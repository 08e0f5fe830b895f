// The benchmark behind `make bench`: our `make` against hack/tls-setup's Makefile shape driving real cfssl
// (bench/Makefile.cfssl), on identical generated trees, alternating the two; plus the watcher's save-to-disk latency
// and the peak memory of a 1000-user build. Prints a table and writes it to bench/results.md.

import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { UserError } from "../common/errors";

export interface BenchOptions {
  /** the project (Makefile, dist/, config/, bench/) */
  root: string;
  /** rounds of the small comparisons and of the watch samples */
  rounds: number;
  /** rounds of the 200-user comparisons (cfssl takes seconds per run) */
  bigRounds: number;
  /** where the Markdown table goes */
  out: string;
  log: (line: string) => void;
}

interface Tree {
  config: string;
  certs: string;
  users: string[];
}

export interface Row {
  what: string;
  ours: number;
  cfssl?: number;
  unit: "ms" | "MB";
  /** the goal, as a limit on ours/cfssl (ratio) or on ours (absolute) */
  goal: { ratio?: number; max?: number };
  samples: number;
}

const onPath = (tool: string) => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;

export function requireCfssl(): void {
  const missing = ["cfssl", "cfssljson"].filter((t) => !onPath(t));
  if (missing.length) throw new UserError(`${missing.join(" and ")} not found on PATH; the benchmark compares against the real tools: install them with "apt-get install golang-cfssl" (Debian/Ubuntu), or "go install github.com/cloudflare/cfssl/cmd/...@latest"`);
}

export function machine(): string[] {
  const c = cpus();
  const cfssl = spawnSync("cfssl", ["version"], { encoding: "utf8" }).stdout?.split("\n")[0] ?? "?";
  return [`CPU: ${c[0]?.model ?? "?"} × ${c.length} cores`, `Node ${process.version}, Linux ${release()}, cfssl ${cfssl.replace(/^Version:\s*/, "")}`, `load average at start: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`];
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** A config tree: the shipped CA, signing and member configs plus the given users (copied from examples or made up). */
function makeTree(root: string, dir: string, users: { name: string; from?: string }[]): Tree {
  const config = join(dir, "config");
  mkdirSync(config, { recursive: true });
  for (const f of ["ca-config.json", "ca-csr.json", "req-csr.json"]) cpSync(join(root, "config", f), join(config, f));
  const template = JSON.parse(readFileSync(join(root, "config", "req-root.json"), "utf8"));
  for (const u of users) {
    if (u.from) cpSync(u.from, join(config, `req-${u.name}.json`));
    else writeFileSync(join(config, `req-${u.name}.json`), JSON.stringify({ ...template, CN: u.name }, null, 2) + "\n");
  }
  return { config, certs: join(dir, "certs"), users: users.map((u) => u.name) };
}

const numbered = (n: number, prefix = "user") => Array.from({ length: n }, (_, i) => ({ name: `${prefix}${String(i + 1).padStart(4, "0")}` }));

function timed(cmd: string, args: string[], what: string): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20 });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}):\n${(r.stderr ?? "").split("\n").slice(-10).join("\n")}`);
  return ms;
}

function checkMade(t: Tree, what: string): void {
  for (const n of ["ca", "etcd1", "proxy1", ...t.users.slice(-1)]) if (!existsSync(join(t.certs, `${n}.pem`))) throw new Error(`${what}: ${t.certs}/${n}.pem was not made`);
}

const ours = (o: BenchOptions, t: Tree) => timed("make", ["-s", "--no-print-directory", "-C", o.root, `CONFIG_DIR=${t.config}`, `CERTS_DIR=${t.certs}`], "our make");
const theirs = (o: BenchOptions, t: Tree) => timed("make", ["-s", "--no-print-directory", "-f", join(o.root, "bench", "Makefile.cfssl"), `CONFIG_DIR=${t.config}`, `CERTS_DIR=${t.certs}`], "cfssl's make");

/** Runs both sides `rounds` times, alternating which goes first. */
function compare(o: BenchOptions, rounds: number, side: { ours: () => number; cfssl: () => number }): { ours: number[]; cfssl: number[] } {
  const r = { ours: [] as number[], cfssl: [] as number[] };
  for (let i = 0; i < rounds; i++) {
    const order = i % 2 ? (["cfssl", "ours"] as const) : (["ours", "cfssl"] as const);
    for (const k of order) r[k].push(side[k]());
    o.log(`  round ${i + 1}/${rounds}: ours ${r.ours[i].toFixed(0)} ms, cfssl ${r.cfssl[i].toFixed(0)} ms`);
  }
  return r;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts the watcher on a built tree, then times `samples` saves of a new user config until its files are on disk. */
async function watchLatency(o: BenchOptions, t: Tree, samples: number): Promise<number[]> {
  const proc = spawn(process.execPath, [join(o.root, "dist", "watch.js"), "--config-dir", t.config, "--certs-dir", t.certs], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CI: "true" } });
  let out = "";
  let err = "";
  proc.stdout.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => proc.on("exit", (c) => r(c)));
  const template = readFileSync(join(t.config, `req-${t.users[0]}.json`), "utf8");
  const lat: number[] = [];
  try {
    for (let end = Date.now() + 60_000; !out.includes("watch: watching "); await sleep(10)) if (Date.now() > end || proc.exitCode !== null) throw new Error(`the watcher did not start:\n${out}\n${err}`);
    for (let i = 0; i < samples; i++) {
      const name = `watched${i}`;
      const stamp = join(t.certs, ".tls-setup", `${name}.json`);
      const t0 = process.hrtime.bigint();
      writeFileSync(join(t.config, `req-${name}.json`), template.replace(/"CN":\s*"[^"]*"/, `"CN": "${name}"`));
      // the stamp is written after the certificate, key and CSR are in place
      for (let end = Date.now() + 10_000; !existsSync(stamp); await sleep(1)) if (Date.now() > end) throw new Error(`no ${stamp} after 10 s:\n${err}`);
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
      await sleep(250);
    }
  } finally {
    proc.kill("SIGTERM");
    const code = await Promise.race([exited, sleep(10_000).then(() => "timeout")]);
    if (code !== 0) proc.kill("SIGKILL");
  }
  return lat;
}

/** Starts the watcher on a built tree `samples` times; each time, once it is idle, times Ctrl-C (SIGINT) to its exit. */
async function watchExit(o: BenchOptions, t: Tree, samples: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < samples; i++) {
    const proc = spawn(process.execPath, [join(o.root, "dist", "watch.js"), "--config-dir", t.config, "--certs-dir", t.certs], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CI: "true" } });
    let text = "";
    proc.stdout.on("data", (d: Buffer) => (text += d.toString()));
    proc.stderr.on("data", (d: Buffer) => (text += d.toString()));
    const exited = new Promise<number | null>((r) => proc.on("exit", (c) => r(c)));
    try {
      for (let end = Date.now() + 60_000; !text.includes("watch: watching "); await sleep(10)) if (Date.now() > end || proc.exitCode !== null) throw new Error(`the watcher did not start:\n${text}`);
      await sleep(200);
      const t0 = process.hrtime.bigint();
      proc.kill("SIGINT");
      const code = await Promise.race([exited, sleep(10_000).then(() => "timeout")]);
      if (code !== 0) throw new Error(`the watcher did not exit 0 within 10 s of SIGINT (${code}):\n${text}`);
      out.push(Number(process.hrtime.bigint() - t0) / 1e6);
    } finally {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    }
  }
  return out;
}

/** Peak RSS of one `tls-setup build` of a tree (the process make runs), read from the child itself at exit. */
function peakMemory(o: BenchOptions, t: Tree): { mb: number; ms: number } {
  const probe = `process.on("exit",()=>require("fs").writeSync(2,"\\nmaxrss="+process.resourceUsage().maxRSS+"\\n"));require(require("path").resolve(process.argv[1]))`;
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, ["-e", probe, join(o.root, "dist", "tls.js"), "build", "--config-dir", t.config, "--certs-dir", t.certs], { encoding: "utf8", maxBuffer: 64 << 20 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const m = /maxrss=(\d+)/.exec(r.stderr ?? "");
  if (r.status !== 0 || !m) throw new Error(`the 1000-user build failed (exit ${r.status}):\n${r.stderr}`);
  checkMade(t, "1000-user build");
  return { mb: Number(m[1]) / 1024, ms };
}

export function formatTable(rows: Row[]): string[] {
  const fmt = (v: number, unit: string) => (unit === "MB" ? `${v.toFixed(0)} MB` : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(0)} ms`);
  const lines = ["| measurement | ours (median) | cfssl (median) | ours/cfssl | goal | met |", "|---|---:|---:|---:|---|---|"];
  for (const r of rows) {
    const ratio = r.cfssl ? r.ours / r.cfssl : undefined;
    const goal = r.goal.ratio !== undefined ? `≤ ${r.goal.ratio}×` : `≤ ${r.goal.max} ${r.unit}`;
    const met = r.goal.ratio !== undefined ? ratio! <= r.goal.ratio : r.ours <= r.goal.max!;
    lines.push(`| ${r.what} (${r.samples}×) | ${fmt(r.ours, r.unit)} | ${r.cfssl ? fmt(r.cfssl, r.unit) : "—"} | ${ratio ? `${ratio.toFixed(2)}×` : "—"} | ${goal} | ${met ? "yes" : "**no**"} |`);
  }
  return lines;
}

export async function runBench(o: BenchOptions): Promise<number> {
  requireCfssl();
  if (!existsSync(join(o.root, "dist", "watch.js"))) throw new UserError(`${join(o.root, "dist")}: not built; run "make build" first`);
  const started = new Date();
  const about = machine();
  for (const l of about) o.log(l);
  const work = mkdtempSync(join(tmpdir(), "tls-setup-bench-"));
  const rows: Row[] = [];
  try {
    // 1. the standard tree: CA + 3 members + 1 proxy + the 6 example users, from scratch each time
    const examples = ["calico-cni", "calico-kube-controllers", "calico-node", "calicoctl", "calicoctl-readonly", "kube-apiserver"];
    const std = makeTree(o.root, join(work, "standard"), examples.map((name) => ({ name, from: join(o.root, "config", "examples", `req-${name}.json`) })));
    const stdC = { ...std, certs: join(work, "standard", "certs-cfssl") };
    o.log("full build, standard tree:");
    const s = compare(o, o.rounds, {
      ours: () => (rmSync(std.certs, { recursive: true, force: true }), checkAfter(ours(o, std), std)),
      cfssl: () => (rmSync(stdC.certs, { recursive: true, force: true }), checkAfter(theirs(o, stdC), stdC)),
    });
    rows.push({ what: "full build, standard tree (CA + 3 members + 1 proxy + 6 users)", ours: median(s.ours), cfssl: median(s.cfssl), unit: "ms", goal: { ratio: 1.5 }, samples: o.rounds });

    // 2. 200 users, from scratch
    const big = makeTree(o.root, join(work, "big"), numbered(200));
    const bigC = { ...big, certs: join(work, "big", "certs-cfssl") };
    o.log("full build, 200 users:");
    const b = compare(o, o.bigRounds, {
      ours: () => (rmSync(big.certs, { recursive: true, force: true }), checkAfter(ours(o, big), big)),
      cfssl: () => (rmSync(bigC.certs, { recursive: true, force: true }), checkAfter(theirs(o, bigC), bigC)),
    });
    rows.push({ what: "full build, 200 users", ours: median(b.ours), cfssl: median(b.cfssl), unit: "ms", goal: { ratio: 0.5 }, samples: o.bigRounds });

    // 3. one user added to the built 200-user tree, make again (cfssl's Makefile redoes everything, as hack/tls-setup's)
    o.log("one user added to the 200-user tree:");
    const extra = join(big.config, "req-added.json");
    const withAdded = { ...big, users: [...big.users, "added"] };
    const a = compare(o, o.bigRounds, {
      ours: () => {
        for (const f of ["added.pem", "added-key.pem", "added.csr", ".tls-setup/added.json"]) rmSync(join(big.certs, f), { force: true });
        writeFileSync(extra, JSON.stringify({ ...JSON.parse(readFileSync(join(big.config, `req-${big.users[0]}.json`), "utf8")), CN: "added" }, null, 2) + "\n");
        return checkAfter(ours(o, withAdded), withAdded);
      },
      cfssl: () => checkAfter(theirs(o, { ...bigC, users: withAdded.users }), { ...bigC, users: withAdded.users }),
    });
    rows.push({ what: "one user added to the 200-user tree, make again", ours: median(a.ours), cfssl: median(a.cfssl), unit: "ms", goal: { ratio: 0.1 }, samples: o.bigRounds });

    // 4. the watcher: save a new user config → its files on disk
    o.log("watch latency:");
    rmSync(std.certs, { recursive: true, force: true });
    const lat = await watchLatency(o, std, Math.max(o.rounds * 3, 9));
    o.log(`  samples (ms): ${lat.map((x) => x.toFixed(0)).join(" ")}`);
    rows.push({ what: "watch: save a new user config → its files on disk", ours: median(lat), unit: "ms", goal: { max: 100 }, samples: lat.length });
    o.log("watch exit:");
    const ex = await watchExit(o, std, Math.max(o.rounds, 3));
    o.log(`  samples (ms): ${ex.map((x) => x.toFixed(0)).join(" ")}`);
    rows.push({ what: "watch: Ctrl-C (SIGINT) to an idle watcher → exited", ours: median(ex), unit: "ms", goal: { max: 200 }, samples: ex.length });

    // 5. peak memory of a 1000-user build
    o.log("peak memory, 1000 users:");
    const huge = makeTree(o.root, join(work, "huge"), numbered(1000));
    const mem = peakMemory(o, huge);
    o.log(`  ${mem.mb.toFixed(0)} MB, ${(mem.ms / 1000).toFixed(2)} s`);
    rows.push({ what: `peak memory (max RSS), 1000-user build (took ${(mem.ms / 1000).toFixed(1)} s)`, ours: mem.mb, unit: "MB", goal: { max: 200 }, samples: 1 });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }

  const table = formatTable(rows);
  const secs = ((Date.now() - started.getTime()) / 1000).toFixed(0);
  o.log("");
  for (const l of table) o.log(l);
  const md = [
    "# Benchmark results",
    "",
    `Latest \`make bench\` (${started.toISOString().slice(0, 16).replace("T", " ")} UTC, ${secs} s). Ours: \`make\` (one \`tls-setup build\` process).`,
    "cfssl: `bench/Makefile.cfssl`, hack/tls-setup's Makefile shape (a new CA and every certificate on each run, one",
    "`cfssl gencert | cfssljson -bare` per certificate). Medians; the two alternate, round by round, on identical configs.",
    "",
    ...about.map((l) => `- ${l}`),
    "",
    ...table,
    "",
  ];
  mkdirSync(resolve(o.out, ".."), { recursive: true });
  writeFileSync(o.out, md.join("\n"));
  o.log(`\nwritten to ${o.out}`);
  return 0;
}

function checkAfter(ms: number, t: Tree): number {
  checkMade(t, "build");
  return ms;
}
