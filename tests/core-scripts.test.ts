// The single-shot scripts: flag forms, the CA-lifetime clamp, the crypto providers, the injected clock and serials.
import { writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { DIST, FIXTURES, ROOT, runScript, sh, tempDir } from "./helpers";
import { view } from "./x509";
import { runInProcess } from "./in-process";
import { issueCa, issueLeaf, IssueDeps } from "../scripts/lib/x509/issue";
import { parseRequest } from "../scripts/lib/config/request";
import { BUILTIN_DEFAULT } from "../scripts/lib/config/profile";
import { parseCertPem } from "../scripts/lib/x509/certinfo";
import { normalizeArgv } from "../scripts/lib/cli/cli";

const cfg = (f: string) => join(FIXTURES, f);
let dir: string;
// Most cases run the scripts' mains in process (tests/in-process.ts); req keeps its spawned case (the CA-lifetime
// warning), ca, req and bare theirs under the peculiar provider, bare its refusal's exit status, tls its EPIPE cases.
beforeAll(async () => {
  dir = tempDir("tls-setup-scripts-");
  const r = await runInProcess("ca", [cfg("ca-csr.json")]);
  expect(r.status).toBe(0);
  expect((await runInProcess("bare", [join(dir, "ca")], { input: r.stdout })).status).toBe(0);
});

test("cfssl's single-dash flags and the double-dash forms are the same", async () => {
  expect(normalizeArgv(["-ca", "a", "-ca-key=b", "--config", "c", "-f", "x", "file.json"])).toEqual(["--ca", "a", "--ca-key=b", "--config", "c", "-f", "x", "file.json"]);
  for (const args of [["-ca", join(dir, "ca.pem"), "-ca-key", join(dir, "ca-key.pem")], ["--ca", join(dir, "ca.pem"), `--ca-key=${join(dir, "ca-key.pem")}`]]) {
    const r = await runInProcess("req", [...args, "-config", cfg("ca-config.json"), cfg("req-root.json")]);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).cert).toContain("BEGIN CERTIFICATE");
  }
});

test("a profile longer than the CA's life is cut to the CA's end, and the tool says so", () => {
  writeFileSync(join(dir, "long.json"), JSON.stringify({ signing: { default: { usages: ["signing", "client auth"], expiry: "876000h" } } }));
  const r = runScript("req", ["-ca", join(dir, "ca.pem"), "-ca-key", join(dir, "ca-key.pem"), "-config", join(dir, "long.json"), cfg("req-root.json")]);
  expect(r.status).toBe(0);
  expect(r.stderr).toMatch(/\[WARNING\] the profile's expiry \(876000h\) outlives the CA: the certificate ends with the CA on /);
  const leaf = view(JSON.parse(r.stdout).cert);
  expect(leaf.notAfter.getTime()).toBe(view(join(dir, "ca.pem")).notAfter.getTime());
});

test("the @peculiar/webcrypto provider plugs in behind the same interface", () => {
  const env = { TLS_SETUP_CRYPTO: "peculiar" };
  const ca = runScript("ca", [cfg("ca-csr.json")], { env });
  expect(ca.status).toBe(0);
  expect(runScript("bare", [join(dir, "pca")], { input: ca.stdout }).status).toBe(0);
  const leaf = runScript("req", ["-ca", join(dir, "pca.pem"), "-ca-key", join(dir, "pca-key.pem"), "-config", cfg("ca-config.json"), cfg("req-csr.json")], { env });
  expect(leaf.status).toBe(0);
  expect(runScript("bare", [join(dir, "pleaf")], { input: leaf.stdout }).status).toBe(0);
  expect(sh("openssl", ["verify", "-x509_strict", "-CAfile", join(dir, "pca.pem"), join(dir, "pleaf.pem")])).toContain("OK");
});

describe("issuing with a pinned clock and serial source", () => {
  const deps = (serialByte: number): IssueDeps => ({ now: () => new Date("2030-06-15T12:34:56Z"), randomSerial: () => Buffer.alloc(20, serialByte), crypto: globalThis.crypto });
  const req = (o: object, opts = {}) => parseRequest(o as Record<string, unknown>, "test.json", opts).value!;

  test("notBefore is the rounded minute minus 5 minutes; the serial is the injected one, top bit cleared", async () => {
    const ca = await issueCa(req({ CN: "pinned CA", ca: { expiry: "8760h" } }, { allowCa: true }), deps(0xab));
    const f = parseCertPem(ca.certPem, "ca");
    expect(f.notBefore.toISOString()).toBe("2030-06-15T12:30:00.000Z");
    expect(f.notAfter.toISOString()).toBe("2031-06-15T12:30:00.000Z");
    expect(f.serialHex).toBe("2b" + "ab".repeat(19));
  });

  test("a leaf names its issuer byte for byte and carries the CA's key id", async () => {
    const caReq = req({ CN: "pinned CA", names: [{ O: "Ünï" }] }, { allowCa: true });
    const ca = await issueCa(caReq, deps(1));
    const caFacts = parseCertPem(ca.certPem, "ca");
    const { importKeyPair } = await import("../scripts/lib/x509/keys");
    const key = await importKeyPair(ca.keyPem, "ca-key");
    const leaf = await issueLeaf(req({ CN: "u", hosts: ["a.example"] }), BUILTIN_DEFAULT, { certDer: caFacts.der, subjectDer: caFacts.subjectDer, ski: caFacts.ski, notAfter: caFacts.notAfter, key }, deps(2));
    const lf = parseCertPem(leaf.certPem, "leaf");
    expect(lf.issuerDer.equals(caFacts.subjectDer)).toBe(true);
    expect(view(leaf.certPem).aki).toBe(caFacts.ski!.toString("hex"));
    expect(lf.notBefore.toISOString()).toBe("2030-06-15T12:30:00.000Z");
    expect(lf.notAfter.toISOString()).toBe("2031-06-15T12:30:00.000Z");
  });
});

test("bare writes cfssljson's layout with modes, from stdin or -f", async () => {
  const json = (await runInProcess("req", ["-ca", join(dir, "ca.pem"), "-ca-key", join(dir, "ca-key.pem"), cfg("req-root.json")])).stdout;
  writeFileSync(join(dir, "in.json"), json);
  expect((await runInProcess("bare", ["-f", join(dir, "in.json"), join(dir, "viaf")])).status).toBe(0);
  const j = JSON.parse(json);
  expect(readFileSync(join(dir, "viaf.pem"), "utf8")).toBe(j.cert);
  expect(readFileSync(join(dir, "viaf-key.pem"), "utf8")).toBe(j.key);
  expect(readFileSync(join(dir, "viaf.csr"), "utf8")).toBe(j.csr);
  expect(sh("stat", ["-c", "%a", join(dir, "viaf-key.pem"), join(dir, "viaf.pem"), join(dir, "viaf.csr")]).split("\n").slice(0, 3)).toEqual(["600", "644", "644"]);
});

test("bare into a directory that does not exist: one line naming it, exit 1", async () => {
  const json = (await runInProcess("ca", [cfg("ca-csr.json")])).stdout;
  const r = runScript("bare", [join(dir, "no-such-dir", "x")], { input: json });
  expect(r.status).toBe(1);
  expect(r.stderr).toBe(`bare: ${join(dir, "no-such-dir")}: cannot write there: the directory does not exist\n`);
});

test("a reader that stops early (make plan | head -1) ends the output quietly: no EPIPE stack, exit 0, the work done", async () => {
  const t = tempDir("tls-setup-pipe-");
  const config = join(t, "config");
  sh("cp", ["-r", FIXTURES, config]);
  for (let i = 0; i < 400; i++) writeFileSync(join(config, `req-u${i}.json`), JSON.stringify({ CN: `u${i}`, key: { algo: "ecdsa", size: 256 } }));
  const args = ["--config-dir", config, "--certs-dir", join(t, "certs")];
  // the shell's pipe into head: head exits after one line and closes the pipe while the script still writes
  const node = JSON.stringify(process.execPath);
  for (const cmd of ["plan", "build"]) {
    const r = spawnSync("bash", ["-c", `set -o pipefail; ${node} ${JSON.stringify(join(DIST, "tls.js"))} ${cmd} ${args.map((a) => JSON.stringify(a)).join(" ")} 2>${JSON.stringify(join(t, "err"))} | head -1`], { encoding: "utf8" });
    expect({ cmd, status: r.status, lines: r.stdout.split("\n").filter(Boolean).length, stderr: readFileSync(join(t, "err"), "utf8") }).toEqual({ cmd, status: 0, lines: 1, stderr: "" });
  }
  // the build finished despite its closed output: every user's certificate is there and the next plan is all "ok"
  const plan = await runInProcess("tls", ["plan", ...args]);
  expect(plan.stdout.split("\n").filter((l) => l && !l.startsWith("ok "))).toEqual([]);
  expect(plan.stdout.split("\n").filter((l) => l.startsWith("ok ")).length).toBe(406);
});
