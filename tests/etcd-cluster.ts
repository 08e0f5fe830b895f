// A throwaway etcd 3.4 cluster on 127.0.0.1 for the end-to-end tests: members and the gRPC proxy run with the
// tree's certificates, on ports the OS hands out; every process is tracked so afterAll can stop it, and each logs
// to a file whose last lines go into failure messages. The pieces the live CA rotations share (make run asynchronously,
// client traffic counting failed requests, the printed rolling restart carried out) are here too.
import { ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { getEquals, memberHealthy, put, userFiles } from "./etcd-grpc";
import { join } from "node:path";

export interface Proc {
  name: string;
  child: ChildProcess;
  logFile: string;
}

const LOG_LINES = 60;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether PORT on 127.0.0.1 can be listened on now. */
const canListen = (port: number): Promise<boolean> =>
  new Promise((res) => {
    const s = createServer();
    s.once("error", () => res(false));
    s.listen(port, "127.0.0.1", () => s.close(() => res(true)));
  });

/** The first port of the kernel's ephemeral range (Linux; 32768 when it cannot be read). */
function ephemeralLow(): number {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

const PORT_BASE = 20000;
const PORT_SLICE = 1000;
const handedOut = new Set<number>();

/**
 * n distinct free TCP ports on 127.0.0.1 for servers the test starts (etcd members, a proxy). They are drawn below the
 * kernel's ephemeral range: a port the OS hands out with listen(0) is free again once released, and before etcd binds
 * it, any outgoing connection of the run (the traffic clients, etcdctl, the members' peer links) may take it as its
 * local port; etcd then fails to start ("address already in use"), as seen once under load: a member never became
 * healthy. Each jest worker draws from its own slice of 1000 ports, so two test files never pick the same one; within
 * a file, a port is handed out once. Where the ephemeral range starts too low for the slices, the OS picks (listen(0)).
 */
export async function freePorts(n: number): Promise<number[]> {
  const worker = Number(process.env.JEST_WORKER_ID ?? "1");
  const slices = Math.floor((ephemeralLow() - PORT_BASE) / PORT_SLICE);
  if (slices < 1) return osPorts(n);
  const low = PORT_BASE + ((worker - 1) % slices) * PORT_SLICE;
  const ports: number[] = [];
  for (let tries = 0; ports.length < n; tries++) {
    if (tries > 10 * PORT_SLICE) throw new Error(`no free port in ${low}-${low + PORT_SLICE - 1}`);
    const p = low + Math.floor(Math.random() * PORT_SLICE);
    if (handedOut.has(p) || !(await canListen(p))) continue;
    handedOut.add(p);
    ports.push(p);
  }
  return ports;
}

/** n distinct free ports the OS picks (held together while asking, so no two are the same). */
async function osPorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((res, rej) => {
      const s = createServer();
      s.once("error", rej);
      s.listen(0, "127.0.0.1", () => res(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export class Processes {
  readonly all: Proc[] = [];

  constructor(private readonly logDir: string) {}

  /**
   * Starts a process logging to LOGDIR/NAME.log (a file, so a busy test never blocks it on a full pipe). The etcd
   * servers started here get GOGC=400 unless GOGC is set: Go's collector then runs a quarter as often, which took
   * ~10% off their CPU on this shared 2-core machine (measured: 5.95-6.03 s instead of 6.57-6.91 s over two live
   * files); nothing they do for TLS or RBAC depends on it.
   */
  start(name: string, cmd: string, args: string[]): Proc {
    mkdirSync(this.logDir, { recursive: true });
    const logFile = join(this.logDir, `${name}.log`);
    const fd = openSync(logFile, "a");
    try {
      const child = spawn(cmd, args, { stdio: ["ignore", fd, fd], env: { ...process.env, GOGC: process.env.GOGC ?? "400" } });
      const p: Proc = { name, child, logFile };
      this.all.push(p);
      return p;
    } finally {
      closeSync(fd);
    }
  }

  static tail(p: Proc, lines = LOG_LINES): string {
    try {
      return readFileSync(p.logFile, "utf8").split("\n").filter(Boolean).slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /** SIGTERM, then SIGKILL after a few seconds; waits (bounded) for each process to exit. */
  async stop(p: Proc): Promise<void> {
    const i = this.all.indexOf(p);
    if (i >= 0) this.all.splice(i, 1);
    if (p.child.exitCode !== null || p.child.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.child.once("exit", () => r()));
    p.child.kill("SIGTERM");
    const kill = setTimeout(() => p.child.kill("SIGKILL"), 5000);
    let giveUp: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((r) => (giveUp = setTimeout(r, 8000)))]);
    clearTimeout(kill);
    clearTimeout(giveUp);
  }

  /**
   * Ends every process at once with SIGKILL, and waits (bounded) for each to exit: the cluster and its data are
   * thrown away, and members stopped together with SIGTERM spend 5 s or more on leadership transfer before exiting
   * (measured: SIGTERM to all three, then the 5 s SIGKILL in stop() ended them), for every etcd test file.
   */
  async stopAll(): Promise<void> {
    const all = this.all.splice(0);
    await Promise.all(
      all.map(async (p) => {
        if (p.child.exitCode !== null || p.child.signalCode !== null) return;
        const exited = new Promise<void>((r) => p.child.once("exit", () => r()));
        p.child.kill("SIGKILL");
        let giveUp: NodeJS.Timeout | undefined;
        await Promise.race([exited, new Promise((r) => (giveUp = setTimeout(r, 8000)))]);
        clearTimeout(giveUp);
      }),
    );
  }

  logs(): string {
    return this.all.map((p) => `--- ${p.name} (${p.logFile}, last lines)\n${Processes.tail(p)}`).join("\n");
  }
}

export interface Member {
  name: string;
  client: string;
  peer: string;
  proc?: Proc;
}

/** Three members etcd1..etcd3 on 127.0.0.1, with client and peer ports the OS hands out (not started). */
export async function threeMembers(): Promise<Member[]> {
  const ports = await freePorts(6);
  return [0, 1, 2].map((i) => ({ name: `etcd${i + 1}`, client: `https://127.0.0.1:${ports[2 * i]}`, peer: `https://127.0.0.1:${ports[2 * i + 1]}` }));
}

/**
 * Runs fn; when it fails, the processes' last log lines go into the failure's message. PROCS is read when fn fails
 * (a function: the Processes a setup step made, not the placeholder there was when the step began).
 */
export async function withLogs(procs: Processes | (() => Processes), fn: () => unknown | Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof Error) e.message += `\n\nprocess logs:\n${(typeof procs === "function" ? procs() : procs).logs()}`;
    throw e;
  }
}

/** The flags a member needs: TLS on both sides with the tree's member certificate, client and peer cert auth. */
export function memberArgs(m: Member, all: Member[], certs: string, dataDir: string, extra: string[] = []): string[] {
  const c = (f: string) => join(certs, f);
  return [
    "--name", m.name,
    "--data-dir", join(dataDir, m.name),
    "--listen-client-urls", m.client,
    "--advertise-client-urls", m.client,
    "--listen-peer-urls", m.peer,
    "--initial-advertise-peer-urls", m.peer,
    "--initial-cluster", all.map((x) => `${x.name}=${x.peer}`).join(","),
    "--initial-cluster-state", "new",
    "--initial-cluster-token", "tls-setup-e2e",
    // the test machine's cores are shared: slower elections keep a busy moment from costing the leader
    "--heartbeat-interval", "250", "--election-timeout", "2500",
    "--client-cert-auth", "--trusted-ca-file", c("ca.pem"), "--cert-file", c(`${m.name}.pem`), "--key-file", c(`${m.name}-key.pem`),
    "--peer-client-cert-auth", "--peer-trusted-ca-file", c("ca.pem"), "--peer-cert-file", c(`${m.name}.pem`), "--peer-key-file", c(`${m.name}-key.pem`),
    ...extra,
  ];
}

export interface Ctl {
  status: number | null;
  stdout: string;
  stderr: string;
}

function etcdctlEnv(certs: string, user: string, endpoints: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("ETCDCTL")) env[k] = v;
  return Object.assign(env, {
    ETCDCTL_API: "3",
    ETCDCTL_ENDPOINTS: endpoints,
    ETCDCTL_CACERT: join(certs, "ca.pem"),
    ETCDCTL_CERT: join(certs, `${user}.pem`),
    ETCDCTL_KEY: join(certs, `${user}-key.pem`),
    ETCDCTL_DIAL_TIMEOUT: "3s",
    ETCDCTL_COMMAND_TIMEOUT: "5s",
  });
}

/** etcdctl as USER (its certificate from certs/) against the endpoints; bounded by a timeout. */
export function etcdctl(certs: string, user: string, endpoints: string, args: string[], timeoutMs = 20_000): Ctl {
  const r = spawnSync("etcdctl", args, { env: etcdctlEnv(certs, user, endpoints), encoding: "utf8", timeout: timeoutMs });
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/** Retries until ok() or the deadline; returns the last result. */
export async function waitFor<T>(what: string, attempt: () => T | Promise<T>, ok: (t: T) => boolean, deadlineMs = 60_000, pollMs = 300): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const r = await attempt();
    if (ok(r)) return r;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(r)}`);
    await sleep(pollMs);
  }
}

/** `make ARGS` on a tree, asynchronously (the test's clients keep running meanwhile). */
export function makeAsync(tree: { config: string; certs: string }, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env };
    delete env.MAKEFLAGS;
    delete env.MAKELEVEL;
    const p = spawn("make", ["--no-print-directory", "-C", join(__dirname, ".."), ...args, `CONFIG_DIR=${tree.config}`, `CERTS_DIR=${tree.certs}`], { env });
    let [stdout, stderr] = ["", ""];
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

/**
 * Client traffic during a rotation: requests sent, served, failed for a TLS reason, failed because a file of the
 * client (certificate, key, trust file) could not be read, failed otherwise (restarts).
 */
export interface Traffic {
  requests: number;
  ok: number;
  tls: string[];
  files: string[];
  other: string[];
}
export const newTraffic = (): Traffic => ({ requests: 0, ok: 0, tls: [], files: [], other: [] });
/** A client's file missing or unreadable (the file read failed, not the connection). */
const FILE_ERROR = /\b(ENOENT|EACCES|EISDIR)\b/;

/**
 * A client as USER: put then get (compared) of KEY(i) in a loop through ENDPOINTS (the first one first, the next when
 * one refuses the connection) until stopped, `pauseMs` between rounds (a steady client, not a load test). Each
 * request is a new TLS connection with the user's files and the trust file read again (tests/etcd-grpc.ts: in
 * process, where an etcdctl per request cost a core of this 2-core machine). A failure is counted as TLS (a
 * certificate refused by either side), files (a client file missing for a moment: a step that replaced it not in
 * place) — what a rotation must never cause — or other (a member down for its restart).
 */
export async function trafficWorker(w: { certs: string; user: string; endpoints: string; key: (i: number) => string; pauseMs?: number; certDir?: string }, t: Traffic, stopped: () => boolean): Promise<void> {
  const eps = w.endpoints.split(",");
  for (let i = 0; !stopped(); i++) {
    const key = w.key(i);
    const files = userFiles(w.certDir ?? w.certs, w.user, join(w.certs, "ca.pem"));
    for (const [what, call] of [["put", () => put(eps, files, key, `v${i}`)], ["get", () => getEquals(eps, files, key, `v${i}`)]] as const) {
      t.requests++;
      const r = await call();
      if (r.ok) t.ok++;
      else (r.tls ? t.tls : FILE_ERROR.test(r.error) ? t.files : t.other).push(`${what}: ${r.error}`);
    }
    await sleep(w.pauseMs ?? 300);
  }
}

/**
 * Carries out a printed rolling-restart plan (make ca-rotate-start / -finish): each member in the printed order is
 * stopped and started again with `args(member)`, then the printed `etcdctl ... endpoint health` gate (HOST:2379 made
 * the member's address) is run until it passes. Returns the gates run.
 */
/** How long a restarted member is left to settle before the next one goes down. */
export const SETTLE_MS = 500;

export async function rollingRestart(printed: string, members: Member[], procs: Processes, args: (m: Member) => string[]): Promise<string[]> {
  const gates = printed.split("\n").filter((l) => /etcdctl --endpoints=https:\/\/HOST:2379 .* endpoint health/.test(l));
  const order = printed.split("\n").map((l) => /restart (etcd\d)/.exec(l)?.[1]).filter((x): x is string => !!x);
  expect(order).toEqual(members.map((m) => m.name));
  expect(gates).toHaveLength(members.length);
  const ran: string[] = [];
  for (const [i, name] of order.entries()) {
    const m = members.find((x) => x.name === name)!;
    await procs.stop(m.proc!);
    m.proc = procs.start(m.name, "etcd", args(m));
    // the printed gate, with the member's address for HOST:2379
    const words = gates[i].trim().split(/\s+/);
    const cmd = words.slice(1, words.indexOf("health") + 1).map((w) => w.replace("https://HOST:2379", m.client));
    // first wait in process until the member answers with the gate's files (fails fast while it is not listening yet,
    // where each etcdctl run waits out its dial timeout and costs a Go start), then run the printed gate until it passes
    const file = (flag: string) => cmd[cmd.indexOf(flag) + 1];
    const gateFiles = { ca: file("--cacert"), cert: file("--cert"), key: file("--key") };
    // (every 100 ms: a member answers ~0.3 s after its start, and a refused connection costs next to nothing)
    await waitFor(`${m.name} to answer after its restart`, () => memberHealthy(m.client, gateFiles), Boolean, 30_000, 100).catch(() => undefined);
    const end = Date.now() + 30_000;
    for (;;) {
      const r = await new Promise<boolean>((res) => execFile("etcdctl", cmd, { timeout: 10_000 }, (err) => res(!err)));
      if (r) break;
      if (Date.now() > end) throw new Error(`${m.name} not healthy after its restart: etcdctl ${cmd.join(" ")}`);
      await sleep(300);
    }
    ran.push(`${m.name}: etcdctl ${cmd.join(" ")}`);
    // as an operator would, let the restarted member settle (it rejoins, elections end) before the next one goes
    // down: without it the test restarts members back to back within a few seconds, far denser than a real rolling
    // restart (0.5 s is enough since the clients retry on another endpoint as etcd's own client does; measured with
    // 1 s and with 0.5 s: 0 failed requests either way)
    await sleep(SETTLE_MS);
  }
  return ran;
}
