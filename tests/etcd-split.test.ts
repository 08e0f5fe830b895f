// MEMBER_CERTS=split (issue 12): etcd >= 3.5 takes a member's client-auth certificate separately
// (--client-cert-file, --peer-client-cert-file). The only etcd here is Debian's 3.4.23, which has no such flags (the
// first test shows it from `etcd --help`), so no split cluster can run here. What can be proven is proven with
// OpenSSL as the judge: each half verifies for its purpose only (openssl verify -purpose), and in a TLS handshake in
// the roles etcd 3.5 gives them (s_server serving etcdN.pem and requiring a client certificate, s_client presenting
// etcdN-client.pem), the split pair is accepted, while the server certificate presented as a client certificate and
// the client certificate served as a server certificate are refused ("unsuitable certificate purpose").
import { ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { haveTool, runMake, tempTree } from "./helpers";
import { tlsOn } from "./in-process";
import { freePorts, sleep } from "./etcd-cluster";

const haveOpenssl = haveTool("openssl");
const haveEtcd = haveTool("etcd");
const t = tempTree();
const c = (f: string) => join(t.certs, f);

const o = haveOpenssl ? describe : describe.skip;
const e = haveEtcd ? test : test.skip;

// spawned: the suite's one case of make's MEMBER_CERTS= passed on to the build
beforeAll(() => {
  const r = runMake([], t, ["MEMBER_CERTS=split"]);
  expect(r.status).toBe(0);
});

e("etcd 3.4.23 (the etcd here) has no --client-cert-file / --peer-client-cert-file, so a split cluster cannot run here", () => {
  const help = spawnSync("etcd", ["--help"], { encoding: "utf8" });
  const text = `${help.stdout}${help.stderr}`;
  expect(spawnSync("etcd", ["--version"], { encoding: "utf8" }).stdout).toMatch(/^etcd Version: 3\.4\./);
  expect(text).toContain("--peer-cert-allowed-cn");
  expect(text).not.toContain("--client-cert-file");
  expect(text).not.toContain("--peer-client-cert-file");
});

/** openssl verify -purpose P: "ok" or the error it reports. */
function verifyPurpose(name: string, purpose: string): string {
  const r = spawnSync("openssl", ["verify", "-purpose", purpose, "-CAfile", c("ca.pem"), c(`${name}.pem`)], { encoding: "utf8" });
  if (r.status === 0) return "ok";
  return /error \d+ at \d+ depth lookup: (.*)/.exec(r.stdout + r.stderr)?.[1] ?? `failed: ${r.stdout}${r.stderr}`;
}

interface Server {
  proc: ChildProcess;
  port: number;
  out: () => string;
}

/** openssl s_server serving NAME, requiring and verifying a client certificate (as etcd with --client-cert-auth). */
async function serve(name: string): Promise<Server> {
  const [port] = await freePorts(1);
  const proc = spawn("openssl", ["s_server", "-accept", String(port), "-cert", c(`${name}.pem`), "-key", c(`${name}-key.pem`), "-CAfile", c("ca.pem"), "-Verify", "2", "-verify_return_error", "-www", "-tls1_2"], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  for (let i = 0; i < 100 && !out.includes("ACCEPT"); i++) await sleep(50);
  if (!out.includes("ACCEPT")) throw new Error(`s_server did not start: ${out}`);
  return { proc, port, out: () => out };
}

/** openssl s_client presenting NAME's certificate, verifying the server for localhost; the reply's first line or the error. */
function client(s: Server, name: string): { status: number | null; text: string } {
  const r = spawnSync(
    "openssl",
    ["s_client", "-connect", `127.0.0.1:${s.port}`, "-servername", "localhost", "-verify_hostname", "localhost", "-CAfile", c("ca.pem"), "-cert", c(`${name}.pem`), "-key", c(`${name}-key.pem`), "-verify_return_error", "-tls1_2", "-ign_eof"],
    { input: "GET / HTTP/1.0\r\n\r\n", encoding: "utf8", timeout: 20_000 },
  );
  return { status: r.status, text: r.stdout + r.stderr };
}

o("the split halves, judged by OpenSSL", () => {
  test("openssl verify: etcdN.pem is a TLS server certificate only, etcdN-client.pem a TLS client certificate only", async () => {
    for (const m of ["etcd1", "etcd2", "etcd3"]) {
      expect([verifyPurpose(m, "sslserver"), verifyPurpose(m, "sslclient")]).toEqual(["ok", "unsuitable certificate purpose"]);
      expect([verifyPurpose(`${m}-client`, "sslserver"), verifyPurpose(`${m}-client`, "sslclient")]).toEqual(["unsuitable certificate purpose", "ok"]);
    }
    // the same member in the combined layout (etcd 3.4's) is both
    const combined = tempTree();
    expect((await tlsOn(combined, "build")).status).toBe(0); // make's command, in process
    for (const p of ["sslserver", "sslclient"]) expect(spawnSync("openssl", ["verify", "-purpose", p, "-CAfile", join(combined.certs, "ca.pem"), join(combined.certs, "etcd1.pem")]).status).toBe(0);
  });

  test("a handshake as etcd 3.5 would make it: etcd1 serves etcd1.pem, a peer presents etcd2-client.pem: accepted both ways", async () => {
    const s = await serve("etcd1");
    try {
      const r = client(s, "etcd2-client");
      expect(r.text).toContain("Verify return code: 0 (ok)");
      expect(r.text).toContain("HTTP/1.0 200 ok");
      // s_server's page names the client certificate it accepted
      expect(r.text).toMatch(/Client certificate[\s\S]*CN ?= ?etcd/);
    } finally {
      s.proc.kill();
    }
  }, 30_000);

  test("the EKU split is real: etcd2.pem (server auth only) presented as a client certificate is refused by the server", async () => {
    const s = await serve("etcd1");
    try {
      const r = client(s, "etcd2");
      expect(r.text).not.toContain("HTTP/1.0 200 ok");
      for (let i = 0; i < 40 && !s.out().includes("unsuitable certificate purpose"); i++) await sleep(50);
      expect(s.out()).toContain("unsuitable certificate purpose");
    } finally {
      s.proc.kill();
    }
  }, 30_000);

  test("and etcd1-client.pem (client auth only) served as a server certificate is refused by the client", async () => {
    const s = await serve("etcd1-client");
    try {
      const r = client(s, "etcd2-client");
      expect(r.status).not.toBe(0);
      expect(r.text).toContain("unsuitable certificate purpose");
      expect(r.text).not.toContain("HTTP/1.0 200 ok");
    } finally {
      s.proc.kill();
    }
  }, 30_000);

  test("both halves carry the member's CN and hosts (peers check the client certificate's CN and IP too)", () => {
    const text = (n: string) => spawnSync("openssl", ["x509", "-in", c(`${n}.pem`), "-noout", "-subject", "-ext", "subjectAltName"], { encoding: "utf8" }).stdout;
    expect(text("etcd1-client")).toBe(text("etcd1"));
    expect(text("etcd1")).toContain("CN = etcd");
    expect(readFileSync(c("etcd1-client-key.pem"), "utf8")).not.toBe(readFileSync(c("etcd1-key.pem"), "utf8"));
  });
});
