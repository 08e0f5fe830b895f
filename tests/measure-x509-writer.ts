// Not a test: measures what @peculiar/x509's generator would cost us instead of the DER writer in scripts/lib/x509
// (the figures quoted in scripts/lib/x509/der.ts, issue.ts and the README's Development section). Run:
//   npx esbuild tests/measure-x509-writer.ts --bundle --platform=node --outfile=/tmp/measure.js && node /tmp/measure.js
// Load times are measured in fresh node processes, each loading an esbuild bundle (as dist/ ships them).
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseRequest } from "../scripts/lib/config/request";
import { BUILTIN_DEFAULT } from "../scripts/lib/config/profile";
import { issueCa, issueLeaf, defaultDeps, roundToMinute, DEFAULT_BACKDATE_MS } from "../scripts/lib/x509/issue";
import { generateKeyPair, getCrypto, keyIdentifier } from "../scripts/lib/x509/keys";
import { encodeSubject } from "../scripts/lib/x509/subject";

const ROOT = resolve(__dirname.endsWith("tests") ? join(__dirname, "..") : process.cwd());
const crypto = getCrypto();
x509.cryptoProvider.set(crypto as Crypto);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median time (ms) for a fresh node to load a bundle of `entry` (minus an empty node's start). */
function loadTime(dir: string, name: string, entry: string, runs = 9): number {
  const src = join(dir, `${name}.ts`);
  const out = join(dir, `${name}.js`);
  writeFileSync(src, entry);
  execFileSync(join(ROOT, "node_modules/.bin/esbuild"), [src, "--bundle", "--platform=node", `--outfile=${out}`, "--log-level=error"], { cwd: ROOT, env: { ...process.env, NODE_PATH: join(ROOT, "node_modules") } });
  const probe = `const t=process.hrtime.bigint();require(${JSON.stringify(out)});process.stdout.write(String(Number(process.hrtime.bigint()-t)/1e6))`;
  return median(Array.from({ length: runs }, () => Number(execFileSync(process.execPath, ["-e", probe], { encoding: "utf8" }))));
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "measure-x509-"));
  const lib = (p: string) => JSON.stringify(join(ROOT, "scripts/lib", p));
  const peculiarLoad = loadTime(dir, "peculiar", `import "reflect-metadata"; import * as x from "@peculiar/x509"; (globalThis as any).x = x.X509CertificateGenerator;`);
  const probe = `const t=process.hrtime.bigint();require("reflect-metadata");require("@peculiar/x509");process.stdout.write(String(Number(process.hrtime.bigint()-t)/1e6))`;
  const peculiarModulesLoad = median(Array.from({ length: 9 }, () => Number(execFileSync(process.execPath, ["-e", probe], { cwd: ROOT, encoding: "utf8" }))));
  const oursLoad = loadTime(dir, "ours", `import { issueLeaf, makeCsr } from ${lib("x509/issue")}; (globalThis as any).x = [issueLeaf, makeCsr];`);

  // issuing: the same member certificate (P-384 CA, P-384 leaf key made once), N times each way
  const N = 300;
  const caReq = parseRequest({ CN: "CA", key: { algo: "ecdsa", size: 384 } }, "ca.json", { allowCa: true }).value!;
  const deps = defaultDeps(crypto);
  const caKey = await generateKeyPair(caReq.key, crypto);
  const ca = await issueCa(caReq, deps, caKey);
  const ski = await keyIdentifier(caKey.spki, crypto);
  const issuer = { certDer: ca.certDer, subjectDer: encodeSubject(caReq), ski, notAfter: ca.notAfter, key: caKey };
  const req = parseRequest({ CN: "etcd1", hosts: ["etcd1.example", "10.0.0.1", "127.0.0.1"], names: [{ O: "etcd" }] }, "req.json").value!;
  const key = await generateKeyPair(req.key, crypto);

  const time = async (f: () => Promise<unknown>) => {
    for (let i = 0; i < 20; i++) await f(); // warm up
    const t = process.hrtime.bigint();
    for (let i = 0; i < N; i++) await f();
    return Number(process.hrtime.bigint() - t) / 1e6 / N;
  };
  const ours = await time(() => issueLeaf(req, BUILTIN_DEFAULT, issuer, deps, key));
  const subject = new x509.Name([{ O: ["etcd"] }, { CN: ["etcd1"] }]);
  const caName = new x509.Name([{ CN: ["CA"] }]);
  const theirs = await time(async () => {
    const nb = new Date(roundToMinute(new Date()).getTime() - DEFAULT_BACKDATE_MS);
    const ext = [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"], false),
      new x509.BasicConstraintsExtension(false, undefined, true),
      await x509.SubjectKeyIdentifierExtension.create(new Uint8Array(key.spki), false, crypto as Crypto),
      new x509.AuthorityKeyIdentifierExtension(ski.toString("hex"), false),
      new x509.SubjectAlternativeNameExtension([{ type: "dns", value: "etcd1.example" }, { type: "ip", value: "10.0.0.1" }, { type: "ip", value: "127.0.0.1" }], false),
    ];
    const pub = await crypto.subtle.importKey("spki", new Uint8Array(key.spki), { name: "ECDSA", namedCurve: "P-384" }, true, ["verify"]);
    const serial = Buffer.from(crypto.getRandomValues(new Uint8Array(20)));
    serial[0] &= 0x7f;
    await x509.X509CertificateGenerator.create({ serialNumber: serial.toString("hex"), subject, issuer: caName, notBefore: nb, notAfter: new Date(nb.getTime() + 8760 * 3600e3), publicKey: new Uint8Array(key.spki), signingKey: caKey.privateKey, signingAlgorithm: { name: "ECDSA", hash: "SHA-384" } as EcdsaParams, extensions: ext }, crypto as Crypto);
    const csrName = new x509.Name([{ O: ["etcd"] }, { CN: ["etcd1"] }]);
    await x509.Pkcs10CertificateRequestGenerator.create({ name: csrName, keys: { privateKey: key.privateKey, publicKey: pub }, signingAlgorithm: { name: "ECDSA", hash: "SHA-384" } as EcdsaParams, extensions: [ext[5]] }, crypto as Crypto);
  });
  console.log(`node ${process.version}, ${N} member certificates + CSRs (P-384 CA and key, key made once)`);
  console.log(`load:  @peculiar/x509 + reflect-metadata bundle ${peculiarLoad.toFixed(1)} ms (from node_modules ${peculiarModulesLoad.toFixed(1)} ms); our x509/issue bundle ${oursLoad.toFixed(1)} ms`);
  console.log(`issue: @peculiar/x509 generator ${theirs.toFixed(2)} ms per certificate + CSR; our DER writer ${ours.toFixed(2)} ms (${(theirs / ours).toFixed(1)}x)`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
