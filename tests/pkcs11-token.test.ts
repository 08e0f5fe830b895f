// A CA whose key lives in a PKCS#11 token (README "CA keys in an HSM (PKCS#11)"), judged by real tools: a SoftHSM2
// token initialised in a temp dir (softhsm2-util), pkcs11-tool (opensc) reading the key's attributes from the token,
// and openssl verifying every leaf (-x509_strict) and the CRL. The provider is installed by `make pkcs11-deps` (run
// here, as tests/tools.sh does).
import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runMake, sh, snapshot, tempDir, tempTree } from "./helpers";
import { makeInProcess, runInProcess } from "./in-process";
import { allFiles, expectRefused, haveHsm as haveJudges, hsm, MODULE, PIN, privateKeysIn, revokedNames, spkiOf, tokenInProcess } from "./pkcs11-helpers";

const haveHsm = haveJudges();
const it_ = haveHsm ? it : it.skip;

const token = hsm();
const hsmDir = token.dir;
const hsmEnv = token.env;
const tool = token.tool;
const URI = "pkcs11:token=etcd-ca;object=ca";
const keyVars = [`CA_KEY=${URI}`, `PKCS11_MODULE=${MODULE}`];

const t = tempTree({ examples: ["calicoctl"] });
const c = (f: string) => join(t.certs, f);
const outputs: string[] = [];

/** What make runs for TARGETS, in this process (pkcs11-helpers' makeInProcess), on the file's one token. */
async function make(targets: string[], extra: string[] = [], env: Record<string, string> = hsmEnv) {
  const r = await makeInProcess(targets, t, extra, env);
  outputs.push(r.stdout, r.stderr);
  return r;
}

/**
 * make in a process of its own: make's own refusals, and what this file's long-lived process would hide (the token
 * stays logged in and the provider loaded once opened): a wrong or missing PIN, a run that needs no PIN, the provider.
 */
function makeSpawned(targets: string[], extra: string[] = [], env: NodeJS.ProcessEnv = hsmEnv) {
  const r = runMake(targets, t, extra, { env });
  outputs.push(r.stdout, r.stderr);
  return r;
}

const caSpki = () => spkiOf(c("ca.pem"));
/** The leaves' certificate files, the revoked ones left out (make rotate leaves them to the old CA: never re-issued by itself). */
const leaves = () => {
  const revoked = revokedNames(t.certs);
  return readdirSync(t.certs).filter((f) => f.endsWith(".pem") && !f.endsWith("-key.pem") && f !== "ca.pem" && f !== "crl.pem" && !revoked.has(f.slice(0, -4)));
};
/** openssl verify -x509_strict of every leaf against the CA, in one call: a "FILE: OK" line per leaf. */
const expectLeavesVerify = () => {
  const files = leaves().map(c);
  expect(sh("openssl", ["verify", "-x509_strict", "-CAfile", c("ca.pem"), ...files]).trim().split("\n")).toEqual(files.map((f) => `${f}: OK`));
};
const serialOf = (f: string) => new X509Certificate(readFileSync(c(f))).serialNumber.toLowerCase();

/** One line on stderr, non-zero, nothing in certs/ changed. */
const refused = (r: { status: number | null; stderr: string }, before: Record<string, string>, pattern: RegExp) => expectRefused(r, t.certs, before, pattern);

beforeAll(() => {
  if (haveHsm) token.init();
}, 300_000);
if (haveHsm) tokenInProcess(token);

describe("a tree whose CA key is in a SoftHSM2 token", () => {
  it_("make CA_KEY=pkcs11:... makes the CA key inside the token and records the choice, never the PIN", async () => {
    const r = await make([], keyVars);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/key made in token pkcs11:token=etcd-ca;object=ca/);
    expect(existsSync(c("ca-key.pem"))).toBe(false);
    const record = JSON.parse(readFileSync(c(".tls-setup/ca-key.ref"), "utf8"));
    expect(record).toEqual({ uri: URI, module: MODULE });
    for (const f of allFiles(t.certs)) expect(readFileSync(f, "latin1")).not.toContain(PIN);
  });

  it_("pkcs11-tool shows the key as a sensitive, never-extractable private key whose public half is the CA's", () => {
    const r = tool(["--list-objects", "--type", "privkey"]);
    expect(r.status).toBe(0);
    const block = r.stdout.split(/\n(?=\S)/).find((b) => /^Private Key Object/.test(b) && /label:\s+ca\n/.test(b + "\n"));
    expect(block).toBeDefined();
    expect(block).toMatch(/Access:.*\bsensitive\b/);
    expect(block).toMatch(/Access:.*never extractable/);
    // the token's public key object, as pkcs11-tool lists it (EC_POINT: the point in a DER OCTET STRING), is the CA
    // certificate's public key (the point is the SPKI's last bytes, after the BIT STRING's unused-bits octet)
    const pubs = tool(["--list-objects", "--type", "pubkey"]);
    expect(pubs.status).toBe(0);
    const pubBlock = pubs.stdout.split(/\n(?=\S)/).find((b) => /label:\s+ca\n/.test(b + "\n"));
    const point = /EC_POINT:\s+([0-9a-f]+)/.exec(pubBlock ?? "")?.[1];
    expect(point).toBeDefined();
    // the OCTET STRING's header: tag 04, then a one-octet length below 0x80, else 0x81 and the length
    const raw = point!.slice(parseInt(point!.slice(2, 4), 16) < 0x80 ? 4 : 6);
    expect(raw.startsWith("04")).toBe(true);
    expect(caSpki().endsWith(raw)).toBe(true);
  });

  it_("no file in the certs folder holds a CA private key, and openssl verifies every leaf strictly", () => {
    const keys = privateKeysIn(t.certs);
    expect(keys.length).toBeGreaterThanOrEqual(leaves().length);
    expect(keys.filter((k) => k.spki === caSpki())).toEqual([]);
    expect(leaves().sort()).toEqual(["calicoctl.pem", "etcd1.pem", "etcd2.pem", "etcd3.pem", "proxy1.pem", "root.pem"]);
    expectLeavesVerify();
    // the CA signed itself through the token too
    expect(sh("openssl", ["verify", "-x509_strict", "-CAfile", c("ca.pem"), c("ca.pem")]).trim()).toBe(`${c("ca.pem")}: OK`);
  });

  it_("later runs find the key through the record: nothing stale needs no PIN; renew signs through the token", async () => {
    const idle = makeSpawned([], [], { SOFTHSM2_CONF: hsmEnv.SOFTHSM2_CONF, PKCS11_PIN: "" });
    expect(idle.status).toBe(0);
    expect(idle.stdout).toMatch(/made 0, unchanged 7/);
    const before = serialOf("etcd1.pem");
    const r = await make(["renew"], ["WARN_DAYS=36500"]);
    expect(r.status).toBe(0);
    expect(serialOf("etcd1.pem")).not.toBe(before);
    expectLeavesVerify();
    expect(privateKeysIn(t.certs).filter((k) => k.spki === caSpki())).toEqual([]);
  });

  it_("make revoke signs the CRL through the token; openssl verifies it and lists the serial", async () => {
    const serial = serialOf("calicoctl.pem");
    const r = await make(["revoke", "NAME=calicoctl"]);
    expect(r.status).toBe(0);
    const v = spawnSync("openssl", ["crl", "-in", c("crl.pem"), "-CAfile", c("ca.pem"), "-verify", "-noout"], { encoding: "utf8" });
    expect(v.stderr.trim()).toBe("verify OK");
    expect(sh("openssl", ["crl", "-in", c("crl.pem"), "-noout", "-text"]).toLowerCase().replace(/:/g, "")).toContain(serial.replace(/^(00)+/, ""));
    expect((await make(["crl"])).status).toBe(0);
    const v2 = spawnSync("openssl", ["crl", "-in", c("crl.pem"), "-CAfile", c("ca.pem"), "-verify", "-noout"], { encoding: "utf8" });
    expect(v2.stderr.trim()).toBe("verify OK");
    const verify = await make(["verify"]);
    expect(verify.status).toBe(0);
    expect(verify.stdout).toMatch(/0 problems/);
  });

  it_("req -ca-key pkcs11:... (the cfssl-style script) signs with the token's key", async () => {
    const csr = join(t.dir, "req-one.json");
    writeFileSync(csr, JSON.stringify({ CN: "one", hosts: ["one.example"], key: { algo: "ecdsa", size: 256 } }));
    const r = await runInProcess("req", ["-ca", c("ca.pem"), "-ca-key", URI, "-config", join(t.config, "ca-config.json"), csr], { env: { ...hsmEnv, PKCS11_MODULE: MODULE } });
    expect(r.status).toBe(0);
    const cert = join(t.dir, "one.pem");
    writeFileSync(cert, JSON.parse(r.stdout).cert);
    expect(sh("openssl", ["verify", "-x509_strict", "-CAfile", c("ca.pem"), cert]).trim()).toBe(`${cert}: OK`);
  });

  it_("make rotate refuses to replace the token's key in place, and makes a new CA under a new object name", async () => {
    const before = snapshot(t.certs);
    refused(await make(["rotate"]), before, /already holds a private key by that name.*object=ca-2/);
    const r = await make(["rotate"], ["CA_KEY=pkcs11:token=etcd-ca;object=ca-2"]);
    expect(r.status).toBe(0);
    expect(JSON.parse(readFileSync(c(".tls-setup/ca-key.ref"), "utf8")).uri).toBe("pkcs11:token=etcd-ca;object=ca-2");
    expectLeavesVerify();
    expect(privateKeysIn(t.certs).filter((k) => k.spki === caSpki())).toEqual([]);
  });

  it_("an RSA CA key made in the token signs leaves and the CRL with the hash Go would pick (RSA 3072: SHA-384)", async () => {
    const rsa = tempTree();
    const caCsr = join(rsa.config, "ca-csr.json");
    writeFileSync(caCsr, JSON.stringify({ ...JSON.parse(readFileSync(caCsr, "utf8")), key: { algo: "rsa", size: 3072 } }));
    const r = await makeInProcess([], rsa, ["CA_KEY=pkcs11:token=etcd-ca;object=ca-rsa", `PKCS11_MODULE=${MODULE}`], hsmEnv);
    outputs.push(r.stdout, r.stderr);
    expect(r.status).toBe(0);
    const ca = join(rsa.certs, "ca.pem");
    expect(sh("openssl", ["x509", "-in", ca, "-noout", "-text"])).toMatch(/Signature Algorithm: sha384WithRSAEncryption[\s\S]*Public-Key: \(3072 bit\)/);
    expect(existsSync(join(rsa.certs, "ca-key.pem"))).toBe(false);
    for (const leaf of ["etcd1.pem", "root.pem"]) expect(sh("openssl", ["verify", "-x509_strict", "-CAfile", ca, join(rsa.certs, leaf)]).trim()).toBe(`${join(rsa.certs, leaf)}: OK`);
    const revoke = await makeInProcess(["revoke", "NAME=root"], rsa, [], hsmEnv);
    outputs.push(revoke.stdout, revoke.stderr);
    expect(revoke.status).toBe(0);
    expect(spawnSync("openssl", ["crl", "-in", join(rsa.certs, "crl.pem"), "-CAfile", ca, "-verify", "-noout"], { encoding: "utf8" }).stderr.trim()).toBe("verify OK");
    expect(tool(["--list-objects", "--type", "privkey"]).stdout).toMatch(/Private Key Object; RSA[\s\S]*?label:\s+ca-rsa[\s\S]*?Access:\s+sensitive, always sensitive, never extractable/);
  });

  it_("no output of any run showed the PIN", () => {
    expect(outputs.join("\n")).not.toContain(PIN);
    expect(outputs.length).toBeGreaterThan(0);
  });
});

describe("errors are one line and change nothing", () => {
  const renewOne = (extra: string[] = []) => make(["renew", "NAME=etcd1"], extra);
  /** in a process of its own: a PIN that is wrong, missing or read from a file, the provider's packages */
  const renewSpawned = (extra: string[] = [], env: NodeJS.ProcessEnv = hsmEnv) => makeSpawned(["renew", "NAME=etcd1"], extra, env);

  it_("a wrong PIN", () => refused(renewSpawned([], { ...hsmEnv, PKCS11_PIN: "not-the-pin" }), snapshot(t.certs), /PKCS11_PIN: token "etcd-ca": the PIN is wrong/));
  it_("no PIN at all", () => refused(renewSpawned([], { ...hsmEnv, PKCS11_PIN: "" }), snapshot(t.certs), /PKCS11_PIN: the token "etcd-ca" needs its user PIN/));
  it_("the PIN from PKCS11_PIN_FILE works, a missing file is named", () => {
    const pinFile = join(hsmDir, "pin");
    writeFileSync(pinFile, `${PIN}\n`, { mode: 0o600 });
    expect(renewSpawned([], { SOFTHSM2_CONF: hsmEnv.SOFTHSM2_CONF, PKCS11_PIN: "", PKCS11_PIN_FILE: pinFile }).status).toBe(0);
    refused(renewSpawned([], { SOFTHSM2_CONF: hsmEnv.SOFTHSM2_CONF, PKCS11_PIN: "", PKCS11_PIN_FILE: join(hsmDir, "nope") }), snapshot(t.certs), /PKCS11_PIN_FILE: .*nope: does not exist/);
  });
  it_("a PIN on make's command line", () => refused(makeSpawned(["renew", "NAME=etcd1", `PKCS11_PIN=${PIN}`], [], { SOFTHSM2_CONF: hsmEnv.SOFTHSM2_CONF }), snapshot(t.certs), /PKCS11_PIN: not on make's command line/));
  it_("a missing token", async () => refused(await renewOne(["CA_KEY=pkcs11:token=no-such-token;object=ca-2"]), snapshot(t.certs), /no token matches .*its tokens: "etcd-ca"/));
  it_("a missing object", async () => refused(await renewOne(["CA_KEY=pkcs11:token=etcd-ca;object=nothing"]), snapshot(t.certs), /holds no private key by that name/));
  it_("an object that is not a private key (a certificate, a secret key)", async () => {
    expect(tool(["--write-object", c("ca.pem"), "--type", "cert", "--label", "cacert"]).status).toBe(0);
    expect(tool(["--keygen", "--key-type", "AES:32", "--label", "aes"]).status).toBe(0);
    refused(await renewOne(["CA_KEY=pkcs11:token=etcd-ca;object=cacert"]), snapshot(t.certs), /holds a certificate by that name but no private key/);
    refused(await renewOne(["CA_KEY=pkcs11:token=etcd-ca;object=aes"]), snapshot(t.certs), /holds a secret key by that name but no private key/);
  });
  it_("a private key of a kind we do not sign with (EC secp256k1)", async () => {
    expect(tool(["--keypairgen", "--key-type", "EC:secp256k1", "--label", "k1"]).status).toBe(0);
    refused(await renewOne(["CA_KEY=pkcs11:token=etcd-ca;object=k1"]), snapshot(t.certs), /is an EC key on a curve we do not sign with/);
  });
  it_("a token key that is not the CA certificate's", async () => {
    expect((await make(["plan"], ["CA_KEY=pkcs11:token=etcd-ca;object=ca"])).stdout).toMatch(/adopt ca .*the CA key is now pkcs11:token=etcd-ca;object=ca; adopting it once it proves to be the CA's/);
    refused(await renewOne(["CA_KEY=pkcs11:token=etcd-ca;object=ca"]), snapshot(t.certs), /does not belong to the CA certificate/);
  });
  it_("the module missing or not a module", async () => {
    refused(await renewOne([`PKCS11_MODULE=${join(hsmDir, "none.so")}`]), snapshot(t.certs), /PKCS11_MODULE: .*none\.so: does not exist/);
    refused(await renewOne(["PKCS11_MODULE=/etc/hostname"]), snapshot(t.certs), /PKCS11_MODULE: \/etc\/hostname: cannot be loaded as a PKCS#11 module/);
  });
  it_("the provider packages not installed", async () => {
    refused(renewSpawned([], { ...hsmEnv, TLS_SETUP_PKCS11_DEPS: join(hsmDir, "empty") }), snapshot(t.certs), /provider packages .* are not installed; run "make pkcs11-deps"/);
  });
  it_("a bad URI: an unknown attribute, a PIN in it, a type that cannot sign, no key named", async () => {
    refused(await renewOne(["CA_KEY=pkcs11:token=etcd-ca;objekt=ca"]), snapshot(t.certs), /CA_KEY: .*unknown attribute "objekt"; accepted: token, /);
    refused(renewSpawned([`CA_KEY=pkcs11:token=etcd-ca;object=ca?pin-value=${PIN}`]), snapshot(t.certs), /CA_KEY: a PIN is never written in the URI/);
    refused(await renewOne(["CA_KEY=pkcs11:token=etcd-ca;object=ca;type=cert"]), snapshot(t.certs), /type: "cert" cannot sign/);
    refused(await renewOne(["CA_KEY=pkcs11:token=etcd-ca"]), snapshot(t.certs), /names no key; give object=/);
    refused(await renewOne(["CA_KEY=certs/other-key.pem"]), snapshot(t.certs), /CA_KEY: "certs\/other-key.pem" is not a PKCS#11 URI/);
  });
});

describe("ordinary runs do not load the provider", () => {
  it("a build with a file CA key never requires node-webcrypto-p11 or graphene-pk11", () => {
    // stand-ins that leave a mark when loaded
    const fake = tempDir("tls-setup-fake-p11-");
    const mark = join(fake, "loaded");
    for (const pkg of ["node-webcrypto-p11", "graphene-pk11"]) {
      mkdirSync(join(fake, "node_modules", pkg), { recursive: true });
      writeFileSync(join(fake, "node_modules", pkg, "package.json"), JSON.stringify({ name: pkg, main: "index.js" }));
      writeFileSync(join(fake, "node_modules", pkg, "index.js"), `require("fs").appendFileSync(${JSON.stringify(mark)}, ${JSON.stringify(pkg + "\n")});`);
    }
    const plain = tempTree();
    const r = runMake([], plain, [], { env: { TLS_SETUP_PKCS11_DEPS: fake } });
    expect(r.status).toBe(0);
    expect(existsSync(join(plain.certs, "ca-key.pem"))).toBe(true);
    expect(runMake(["renew"], plain, ["WARN_DAYS=36500"], { env: { TLS_SETUP_PKCS11_DEPS: fake } }).status).toBe(0);
    expect(runMake(["revoke", "NAME=root"], plain, [], { env: { TLS_SETUP_PKCS11_DEPS: fake } }).status).toBe(0);
    expect(existsSync(mark)).toBe(false);
    // while a token key does load them (so the mark would have shown a load)
    const tokenRun = runMake(["renew", "NAME=etcd1"], plain, [`CA_KEY=${URI}`, `PKCS11_MODULE=${MODULE}`], { env: { TLS_SETUP_PKCS11_DEPS: fake } });
    expect(tokenRun.status).not.toBe(0);
    expect(readFileSync(mark, "utf8")).toMatch(/graphene-pk11|node-webcrypto-p11/);
  });
});
