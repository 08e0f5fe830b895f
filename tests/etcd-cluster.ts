// A throwaway etcd 3.4 cluster on 127.0.0.1 for the end-to-end tests: members and the gRPC proxy run with the
// tree's certificates, on ports the OS hands out; every process is tracked so afterAll can stop it, and each logs
// to a file whose last lines go into failure messages.
import { ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

export interface Proc {
  name: string;
  child: ChildProcess;
  logFile: string;
}

const LOG_LINES = 60;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** n distinct free TCP ports on 127.0.0.1 (held together while asking, so no two are the same). */
export async function freePorts(n: number): Promise<number[]> {
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

  /** Starts a process logging to LOGDIR/NAME.log (a file, so a busy test never blocks it on a full pipe). */
  start(name: string, cmd: string, args: string[]): Proc {
    mkdirSync(this.logDir, { recursive: true });
    const logFile = join(this.logDir, `${name}.log`);
    const fd = openSync(logFile, "a");
    try {
      const child = spawn(cmd, args, { stdio: ["ignore", fd, fd] });
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

/** etcdctl as above without blocking the test's event loop (for waits that run side by side). */
export function etcdctlAsync(certs: string, user: string, endpoints: string, args: string[], timeoutMs = 20_000): Promise<Ctl> {
  return new Promise((resolve) =>
    execFile("etcdctl", args, { env: etcdctlEnv(certs, user, endpoints), encoding: "utf8", timeout: timeoutMs }, (err, stdout, stderr) =>
      resolve({ status: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout: stdout ?? "", stderr: stderr ?? "" }),
    ),
  );
}

/** Retries until ok() or the deadline; returns the last result. */
export async function waitFor<T>(what: string, attempt: () => T | Promise<T>, ok: (t: T) => boolean, deadlineMs = 60_000): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const r = await attempt();
    if (ok(r)) return r;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(r)}`);
    await sleep(300);
  }
}
