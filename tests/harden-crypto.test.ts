// Crypto hygiene: serials positive, at most 20 octets and unique in a tree (even when the random source repeats);
// no SHA-1 anywhere; RSA keys of 2048 bits or more; keys 0600 from the moment they are created, under umask 000
// too; no leaf outlives its CA; ca/req refuse to print a key to a terminal unless --force.
import fs, { readdirSync, readFileSync, rmSync, statSync, writeFileSync, fstatSync } from "node:fs";
import fsp from "node:fs/promises";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { DIST, mode, ROOT, sh, tempTree, withTools } from "./helpers";
import type { Run } from "./helpers";
import { runInProcess } from "./in-process";
import { parseCertPem } from "../scripts/lib/x509/certinfo";
import { build } from "../scripts/lib/tree/build";
import { defaultDeps } from "../scripts/lib/x509/issue";
import { commitWrites, planBundle, KEY_MODE, TEMP_PREFIX } from "../scripts/lib/tree/output";
import { DEFAULT_MEMBERS, DEFAULT_PROXIES } from "../scripts/lib/tree/targets";
import { readAllStamps } from "../scripts/lib/tree/state";

const trees: string[] = [];
afterAll(() => trees.forEach((d) => rmSync(d, { recursive: true, force: true })));
const newTree = () => {
  const t = tempTree();
  trees.push(t.dir);
  return t;
};
const treeOpts = (t: { config: string; certs: string }) => ({ configDir: t.config, certsDir: t.certs, members: DEFAULT_MEMBERS, proxies: DEFAULT_PROXIES });
/** The content octets of a certificate's serialNumber INTEGER, read from the DER: Certificate → TBS → [0] version → serial. */
function serialOctets(pem: string): Buffer {
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64");
  // one TLV header at `at`: returns where its content starts and its length
  const tlv = (at: number): { tag: number; start: number; len: number } => {
    const tag = der[at];
    let len = der[at + 1];
    let start = at + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + der[start + i];
      start += n;
    }
    return { tag, start, len };
  };
  const tbs = tlv(tlv(0).start);
  let at = tbs.start;
  let field = tlv(at);
  if (field.tag === 0xa0) field = tlv((at = field.start + field.len));
  expect(field.tag).toBe(0x02);
  return der.subarray(field.start, field.start + field.len);
}
const certFiles = (certs: string) => readdirSync(certs).filter((f) => f.endsWith(".pem") && !f.endsWith("-key.pem"));

const KEYS: Record<string, object> = {
  r2048: { algo: "rsa", size: 2048 },
  r3072: { algo: "rsa", size: 3072 },
  r4096: { algo: "rsa", size: 4096 },
  e256: { algo: "ecdsa", size: 256 },
  e384: { algo: "ecdsa", size: 384 },
  e521: { algo: "ecdsa", size: 521 },
};

describe("a tree with RSA and ECDSA users", () => {
  const t = newTree();
  /** openssl x509 -serial -text of a certificate of this tree (which no test changes): asked once per file. */
  const x509Texts = new Map<string, string>();
  const x509SerialText = (f: string): string => {
    if (!x509Texts.has(f)) x509Texts.set(f, sh("openssl", ["x509", "-in", f, "-noout", "-serial", "-text"]));
    return x509Texts.get(f)!;
  };
  beforeAll(async () => {
    for (const [name, key] of Object.entries(KEYS)) writeFileSync(join(t.config, `req-${name}.json`), JSON.stringify({ CN: name, key }));
    for (let i = 0; i < 14; i++) writeFileSync(join(t.config, `req-x${i}.json`), JSON.stringify({ CN: `x${i}`, key: { algo: "ecdsa", size: 256 } }));
    const r = await runInProcess("tls", ["build", "--config-dir", t.config, "--certs-dir", t.certs]);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
  });

  test("serials are positive, at most 20 octets and unique (our reading of the DER)", () => {
    const files = certFiles(t.certs);
    expect(files.length).toBe(6 + 6 + 14);
    const seen = new Set<string>();
    for (const f of files) {
      const facts = parseCertPem(readFileSync(join(t.certs, f), "utf8"), f);
      // the serial INTEGER's content octets as encoded, sign byte included (a value printed as hex loses it)
      const der = serialOctets(readFileSync(join(t.certs, f), "utf8"));
      expect(der.length).toBeLessThanOrEqual(20);
      expect(der[0] & 0x80).toBe(0); // a DER INTEGER with the top bit clear is positive
      if (der.length > 1) expect(der[0] === 0 && (der[1] & 0x80) === 0).toBe(false); // minimal: no needless 00 byte
      expect(BigInt(`0x${der.toString("hex")}`)).toBe(BigInt(`0x${facts.serialHex}`));
      seen.add(facts.serialHex);
    }
    expect(seen.size).toBe(files.length);
  });

  withTools("openssl")("serials as openssl reads them: positive, the same as ours, and unique", () => {
    const files = certFiles(t.certs);
    expect(files.length).toBe(6 + 6 + 14);
    const seen = new Set<string>();
    for (const f of files) {
      const facts = parseCertPem(readFileSync(join(t.certs, f), "utf8"), f);
      const text = x509SerialText(join(t.certs, f));
      const hex = /^serial=([0-9A-F]+)$/m.exec(text)![1];
      expect(text).not.toMatch(/Negative/);
      expect(BigInt(`0x${hex}`)).toBe(BigInt(`0x${facts.serialHex}`));
      expect(BigInt(`0x${hex}`) > 0n).toBe(true);
      seen.add(hex);
    }
    expect(seen.size).toBe(files.length);
  });

  withTools("openssl")("no SHA-1 or MD5 in any certificate or CSR; signature hashes follow the signing key", () => {
    for (const f of certFiles(t.certs)) {
      const name = f.slice(0, -4);
      // openssl's -text of the certificate (the serial= line before it, hex digits only)
      const cert = x509SerialText(join(t.certs, f));
      const csr = sh("openssl", ["req", "-in", join(t.certs, `${name}.csr`), "-noout", "-text"]);
      expect(cert).not.toMatch(/sha1|md5/i);
      expect(csr).not.toMatch(/sha1With|md5|ecdsa-with-SHA1\b/i);
      // every certificate here is signed by the P-384 CA
      expect(cert).toMatch(/Signature Algorithm: ecdsa-with-SHA384/);
      const bits = Number(/Public-Key: \((\d+) bit\)/.exec(cert)![1]);
      if (/rsaEncryption/.test(cert)) expect(bits).toBeGreaterThanOrEqual(2048);
      const csrSig = /Signature Algorithm: (\S+)/.exec(csr)![1];
      const want: Record<string, string> = { r2048: "sha256WithRSAEncryption", r3072: "sha384WithRSAEncryption", r4096: "sha512WithRSAEncryption", e256: "ecdsa-with-SHA256", e384: "ecdsa-with-SHA384", e521: "ecdsa-with-SHA512" };
      if (want[name]) expect(`${name} ${csrSig}`).toBe(`${name} ${want[name]}`);
    }
  });

  test("every private key is 0600, certificates and CSRs 0644, the state directory 0700", () => {
    for (const f of readdirSync(t.certs)) {
      const m = statSync(join(t.certs, f)).mode & 0o777;
      if (f === ".tls-setup") expect(m).toBe(0o700);
      else expect(`${f} ${m.toString(8)}`).toBe(`${f} ${f.endsWith("-key.pem") ? "600" : "644"}`);
    }
  });
});

test("a repeated serial from the random source is never used twice under one CA", async () => {
  const t = newTree();
  const a = Buffer.alloc(20, 0x11);
  const b = Buffer.alloc(20, 0x22);
  let calls = 0;
  // the CA gets A; then the source says B twelve times (the top bit set on some, which a serial clears) while
  // four leaves are made at once: one leaf gets B, the others fresh serials
  const repeating = {
    ...defaultDeps(),
    randomSerial: () => {
      const n = calls++;
      if (n === 0) return Buffer.from(a);
      if (n <= 12) return n % 2 ? Buffer.from(b) : Buffer.concat([Buffer.from([0xa2]), b.subarray(1)]);
      return defaultDeps().randomSerial();
    },
  };
  await build(treeOpts(t), { deps: repeating, fsync: false });
  const serials = certFiles(t.certs).map((f) => parseCertPem(readFileSync(join(t.certs, f), "utf8"), f).serialHex);
  const big = (x: string) => BigInt(`0x${x}`);
  expect(serials).toHaveLength(6);
  expect(new Set(serials.map(big)).size).toBe(6);
  expect(serials.filter((s) => big(s) === big(a.toString("hex")))).toHaveLength(1);
  expect(serials.filter((s) => big(s) === big(b.toString("hex")))).toHaveLength(1);
  expect(calls).toBeGreaterThan(13);
  // a renewal later is offered every serial already stamped, and still gets a new one
  const stamped = [...readAllStamps(t.certs).values()].map((s) => Buffer.from(s.serial.padStart(40, "0"), "hex"));
  let i = 0;
  const replay = { ...defaultDeps(), randomSerial: () => (i < stamped.length ? stamped[i++] : defaultDeps().randomSerial()) };
  await build(treeOpts(t), { deps: replay, only: ["root"], force: true, fsync: false });
  const after = certFiles(t.certs).map((f) => parseCertPem(readFileSync(join(t.certs, f), "utf8"), f).serialHex);
  expect(i).toBe(stamped.length);
  expect(new Set(after.map((s) => BigInt(`0x${s}`))).size).toBe(6);
  expect(after).not.toEqual(serials);
});

test("keys are 0600 from creation, even under umask 000 (the temp file is opened 0600)", async () => {
  const t = newTree();
  const old = process.umask(0);
  const opened: string[] = [];
  const real = fsp.open;
  const spy = jest.spyOn(fsp, "open").mockImplementation((async (p: fs.PathLike, flags?: string | number, m?: fs.Mode) => {
    const fh = await real(p, flags, m);
    if (String(p).includes(TEMP_PREFIX)) opened.push(`${String(p).replace(/.*-/, "")} ${(fstatSync(fh.fd).mode & 0o777).toString(8)}`);
    return fh;
  }) as typeof fsp.open);
  try {
    fs.mkdirSync(t.certs);
    await commitWrites(planBundle(join(t.certs, "x"), { key: "-----BEGIN EC PRIVATE KEY-----\n-----END EC PRIVATE KEY-----\n", cert: "c", csr: "r" }));
  } finally {
    spy.mockRestore();
    process.umask(old);
  }
  // the three temp files are opened in parallel, so in no fixed order
  expect([...opened].sort()).toEqual([`key.pem ${KEY_MODE.toString(8)}`, "x.csr 644", "x.pem 644"]);
  expect(mode(join(t.certs, "x-key.pem"))).toBe(0o600);
});

test("under umask 000, make, bare and a whole build still write keys 0600 and the state 0700", () => {
  const t = newTree();
  const r = spawnSync("sh", ["-c", `umask 000 && make --no-print-directory -C "${ROOT}" all CONFIG_DIR="${t.config}" CERTS_DIR="${t.certs}" && node "${DIST}/ca.js" "${t.config}/ca-csr.json" | node "${DIST}/bare.js" "${t.certs}/extra"`], { encoding: "utf8" });
  expect({ status: r.status, stderr: r.stderr.replace(/\[INFO\].*\n/g, "") }).toEqual({ status: 0, stderr: "" });
  const keys = readdirSync(t.certs).filter((f) => f.endsWith("-key.pem"));
  expect(keys).toHaveLength(7);
  for (const k of keys) expect(`${k} ${mode(join(t.certs, k)).toString(8)}`).toBe(`${k} 600`);
  expect(mode(join(t.certs, ".tls-setup"))).toBe(0o700);
  for (const s of readdirSync(join(t.certs, ".tls-setup"))) expect(`${s} ${mode(join(t.certs, ".tls-setup", s)).toString(8)}`).toBe(`${s} 600`);
});

describe("no leaf outlives its CA", () => {
  const t = newTree();
  let r: Run;
  beforeAll(async () => {
    writeFileSync(join(t.config, "ca-csr.json"), JSON.stringify({ CN: "short CA", ca: { expiry: "2h" } }));
    r = await runInProcess("tls", ["build", "--config-dir", t.config, "--certs-dir", t.certs]);
  });

  test("a 1-year profile under a 2-hour CA ends with the CA", async () => {
    expect(r.status).toBe(0);
    const caEnd = parseCertPem(readFileSync(join(t.certs, "ca.pem"), "utf8"), "ca").notAfter.getTime();
    for (const f of certFiles(t.certs)) expect(`${f} ${parseCertPem(readFileSync(join(t.certs, f), "utf8"), f).notAfter.getTime()}`).toBe(`${f} ${caEnd}`);
    expect(r.stdout.match(/cut to the CA's end/g)).toHaveLength(5);
    const q = await runInProcess("req", ["-ca", join(t.certs, "ca.pem"), "-ca-key", join(t.certs, "ca-key.pem"), join(t.config, "req-root.json")]);
    expect(q.status).toBe(0);
    expect(q.stderr).toMatch(/\[WARNING\] the profile's expiry \(8760h\) outlives the CA: the certificate ends with the CA on /);
    const leaf = parseCertPem(JSON.parse(q.stdout).cert, "stdout");
    expect(leaf.notAfter.getTime()).toBe(caEnd);
  });

  withTools("openssl")("openssl reads one end date on every certificate of that tree", () => {
    const ends = certFiles(t.certs).map((f) => sh("openssl", ["x509", "-in", join(t.certs, f), "-noout", "-enddate"]).trim());
    expect(ends).toHaveLength(6);
    expect(new Set(ends).size).toBe(1);
  });
});

describe("ca and req refuse to print a private key to a terminal", () => {
  // script(1) runs the command on a pseudo-terminal; -e passes its exit status through
  const onTty = (cmd: string) => spawnSync("script", ["-qec", cmd, "/dev/null"], { encoding: "utf8", cwd: ROOT });
  const t = newTree();
  beforeAll(async () => {
    const r = await runInProcess("tls", ["build", "--ca-only", "--config-dir", t.config, "--certs-dir", t.certs]);
    expect(r.status).toBe(0);
  });
  const ca = `node dist/ca.js config/ca-csr.json`;
  const req = () => `node dist/req.js -ca ${t.certs}/ca.pem -ca-key ${t.certs}/ca-key.pem config/req-root.json`;

  withTools("script").each([
    ["ca", () => ca],
    ["req", req],
  ])("%s: refused on a terminal, printed with --force, printed into a pipe", (prog, cmd) => {
    const refused = onTty(cmd());
    expect(refused.status).toBe(1);
    expect(refused.stdout).toContain(`${prog}: stdout is a terminal: refusing to print a private key there; pipe into bare (… | bare certs/NAME) or pass --force`);
    expect(refused.stdout).not.toContain("PRIVATE KEY-----");
    expect(refused.stdout).not.toMatch(/^\s+at /m);
    const forced = onTty(`${cmd()} --force`);
    expect(forced.status).toBe(0);
    expect(forced.stdout).toContain("PRIVATE KEY-----");
    const piped = spawnSync("sh", ["-c", cmd()], { encoding: "utf8", cwd: ROOT });
    expect(piped.status).toBe(0);
    expect(JSON.parse(piped.stdout).key).toMatch(/^-----BEGIN EC PRIVATE KEY-----/);
  });
});
