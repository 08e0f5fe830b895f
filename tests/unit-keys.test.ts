// Key conversion through node:crypto's KeyObject, judged by OpenSSL's command line on every key type we support
// (RSA 2048/3072/4096, ECDSA P-256/384/521): the private key PEM we write from PKCS#8 is byte for byte what
// `openssl ec` (SEC1, named curve and public key, as cfssl writes) or `openssl rsa -traditional` (PKCS#1) writes for
// the same key; PKCS#1, SEC1 and PKCS#8 inputs give the public key `openssl pkey -pubout` gives and the size or
// curve `openssl pkey -text` prints. Keys we generate come back unchanged through OpenSSL's conversion.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeWith, ROOT } from "./helpers";
import { generateKeyPair, importKeyPair, parsePrivateKeyPem, privateKeyPem, publicKeyOfPem } from "../scripts/lib/x509/keys";
import { KeySpec } from "../scripts/lib/config/request";

const openssl = (args: string[], input?: string): Buffer => execFileSync("openssl", args, { input, stdio: ["pipe", "pipe", "pipe"] });
const FIXTURE_KEYS = join(ROOT, "tests", "fixtures", "keys");
const CURVES: Record<number, string> = { 256: "P-256", 384: "P-384", 521: "P-521" };
const SPECS: KeySpec[] = [
  { algo: "rsa", size: 2048 },
  { algo: "rsa", size: 3072 },
  { algo: "rsa", size: 4096 },
  { algo: "ecdsa", size: 256 },
  { algo: "ecdsa", size: 384 },
  { algo: "ecdsa", size: 521 },
];

const describeOpenssl = describeWith("openssl");

describeOpenssl("key conversion matches OpenSSL on every key type", () => {
  const dir = mkdtempSync(join(tmpdir(), "tls-keys-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** OpenSSL's own reading of a key: its size or curve, as `openssl pkey -text` prints it. */
  const opensslSpec = (pem: string): KeySpec => {
    const text = openssl(["pkey", "-noout", "-text"], pem).toString("utf8");
    const rsa = /^Private-Key: \((\d+) bit, 2 primes\)/m.exec(text);
    if (rsa) return { algo: "rsa", size: Number(rsa[1]) };
    const curve = /^NIST CURVE: P-(\d+)$/m.exec(text);
    if (!curve) throw new Error(`openssl pkey -text: no size or curve in\n${text}`);
    return { algo: "ecdsa", size: Number(curve[1]) };
  };

  describe.each(SPECS.map((s) => [`${s.algo} ${s.size}`, s] as const))("%s", (_name, spec) => {
    // made by OpenSSL, in all three forms: EC keys made here on every run; RSA keys made once by `openssl genpkey`
    // (tests/fixtures/keys/openssl-rsa-SIZE.pem), since an RSA 4096 key costs OpenSSL 0.5 to 2.5 s of CPU (measured),
    // the run's slowest and least predictable step. The keys we generate (the third test) are new on every run.
    const file = join(dir, `${spec.algo}-${spec.size}.pem`);
    const gen = spec.algo === "rsa" ? undefined : ["-algorithm", "EC", "-pkeyopt", `ec_paramgen_curve:${CURVES[spec.size]}`];
    let pkcs8Pem = "";
    let traditional = "";
    let pkcs8Der: Buffer = Buffer.alloc(0);
    let spki: Buffer = Buffer.alloc(0);
    beforeAll(() => {
      if (gen) openssl(["genpkey", ...gen, "-out", file]);
      else copyFileSync(join(FIXTURE_KEYS, `openssl-rsa-${spec.size}.pem`), file);
      pkcs8Pem = readFileSync(file, "utf8");
      traditional = openssl(spec.algo === "rsa" ? ["rsa", "-traditional", "-in", file] : ["ec", "-in", file]).toString("utf8");
      pkcs8Der = openssl(["pkcs8", "-topk8", "-nocrypt", "-in", file, "-outform", "DER"]);
      spki = openssl(["pkey", "-in", file, "-pubout", "-outform", "DER"]);
    });

    test(`PKCS#8 → ${spec.algo === "rsa" ? "PKCS#1" : "SEC1"} PEM is byte-identical to OpenSSL's`, () => {
      expect(traditional).toMatch(spec.algo === "rsa" ? /^-----BEGIN RSA PRIVATE KEY-----\n/ : /^-----BEGIN EC PRIVATE KEY-----\n/);
      expect(privateKeyPem(spec, pkcs8Der)).toBe(traditional);
    });

    test("PKCS#8, and PKCS#1 or SEC1, read as OpenSSL reads them: size or curve, and public key (SPKI)", async () => {
      expect(opensslSpec(pkcs8Pem)).toEqual(spec);
      for (const pem of [pkcs8Pem, traditional]) {
        expect(parsePrivateKeyPem(pem, "k.pem").spec).toEqual(opensslSpec(pem));
        const kp = await importKeyPair(pem, "k.pem");
        expect(kp.spec).toEqual(spec);
        expect(kp.spki.equals(spki)).toBe(true);
        // the pair check's reading (no WebCrypto import): the same size or curve and public key
        const pub = publicKeyOfPem(pem, "k.pem");
        expect(pub.spec).toEqual(spec);
        expect(pub.spki.equals(spki)).toBe(true);
      }
    });

    test("a key we generate: OpenSSL converts it to the same bytes, reads the same size and public key", async () => {
      const kp = await generateKeyPair(spec);
      const again = openssl(spec.algo === "rsa" ? ["rsa", "-traditional"] : ["ec"], kp.pem).toString("utf8");
      expect(kp.pem).toBe(again);
      expect(opensslSpec(kp.pem)).toEqual(spec);
      expect(kp.spki.equals(openssl(["pkey", "-pubout", "-outform", "DER"], kp.pem))).toBe(true);
      writeFileSync(join(dir, "gen.pem"), kp.pem);
    });
  });
});
