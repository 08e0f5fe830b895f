// make verify: each kind of problem is one line naming the file, with a non-zero exit; `make` repairs what it owns
// (a swapped key, a loose key mode, a cert from another CA) and verify passes after. openssl judges the repairs.
// The subject is the library behind the targets: `make` and `make verify` run in process (lifecycle.js verify and
// tls.js build with the Makefile's tree options); make's own exit status for verify is core-habits.test.ts's.
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { mode, withTools, sh, sha256File, snapshot } from "./helpers";
import { runInProcess } from "./in-process";
import { addExpiredUser, build, certPath, certPubkey, editJson, keyPath, keyPubkey, lifecycle, made, shortTree, Tree } from "./lifecycle-fixtures";
import { toPem } from "../scripts/lib/x509/pem";

/** The problem lines of a verify run (stdout lines starting with the certs directory). */
const problemLines = (t: Tree, out: string) => out.split("\n").filter((l) => l.startsWith(t.certs) || l.startsWith(t.config));

describe("make verify", () => {
  test("a fresh tree passes, and verify changes nothing", async () => {
    const t = await made(shortTree());
    const before = snapshot(t.certs);
    const r = await lifecycle(t, "verify");
    expect(r.stdout).toMatch(/^verify: ok: 6 certificates checked, 0 problems, 0 warnings$/m);
    expect(r.status).toBe(0);
    expect(snapshot(t.certs)).toEqual(before);
  });

  withTools("openssl")("swapped keys fail naming both key files; make re-issues the pairs and verify passes", async () => {
    const t = await made(shortTree());
    const k1 = readFileSync(keyPath(t, "etcd1"));
    copyFileSync(keyPath(t, "etcd2"), keyPath(t, "etcd1"));
    writeFileSync(keyPath(t, "etcd2"), k1);
    const r = await lifecycle(t, "verify");
    expect(r.status).not.toBe(0);
    const lines = problemLines(t, r.stdout);
    expect(lines).toEqual([
      `${keyPath(t, "etcd1")}: does not match ${certPath(t, "etcd1")} (a different public key); run "make" to re-issue the certificate for this key`,
      `${keyPath(t, "etcd2")}: does not match ${certPath(t, "etcd2")} (a different public key); run "make" to re-issue the certificate for this key`,
    ]);
    expect(certPubkey(certPath(t, "etcd1"))).not.toBe(keyPubkey(keyPath(t, "etcd1")));
    const fix = await build(t);
    expect(fix.status).toBe(0);
    // a key changed outside tls-setup is not trusted: the pair is re-made with a new key
    expect(fix.stdout).toMatch(/made .*etcd1\.pem \(member\): .*etcd1-key\.pem was changed outside tls-setup/);
    expect(readFileSync(keyPath(t, "etcd1"))).not.toEqual(readFileSync(keyPath(t, "etcd2")));
    expect((await lifecycle(t, "verify")).status).toBe(0);
    for (const n of ["etcd1", "etcd2"]) {
      expect(certPubkey(certPath(t, n))).toBe(keyPubkey(keyPath(t, n)));
      expect(sh("openssl", ["verify", "-CAfile", certPath(t, "ca"), certPath(t, n)])).toMatch(/: OK/);
    }
  });

  test("a key readable by others fails naming it; make restores 0600 without re-issuing", async () => {
    const t = await made(shortTree());
    chmodSync(keyPath(t, "root"), 0o644);
    const r = await lifecycle(t, "verify");
    expect(r.status).not.toBe(0);
    expect(problemLines(t, r.stdout)).toEqual([`${keyPath(t, "root")}: has mode 0644, readable by others; a private key must be mode 0600 (chmod 600 ${keyPath(t, "root")}, or run "make", which repairs it)`]);
    const cert = readFileSync(certPath(t, "root"), "utf8");
    const fix = await build(t);
    expect(fix.stdout).toMatch(/made .*root-key\.pem readable by its owner only/);
    expect(fix.stdout).toMatch(/made 0, unchanged 6/);
    expect(mode(keyPath(t, "root"))).toBe(0o600);
    expect(readFileSync(certPath(t, "root"), "utf8")).toBe(cert);
    expect((await lifecycle(t, "verify")).status).toBe(0);
  });

  test("certificates that do not fit their role or the CA: one line each, naming the file", async () => {
    const t = await made(shortTree());
    // a member certificate from another CA
    const other = join(t.dir, "other");
    mkdirSync(other);
    const caJson = await runInProcess("ca", [join(t.config, "ca-csr.json")]);
    await runInProcess("bare", [join(other, "ca")], { input: caJson.stdout });
    const leaf = await runInProcess("req", ["-ca", join(other, "ca.pem"), "-ca-key", join(other, "ca-key.pem"), "-config", join(t.config, "ca-config.json"), join(t.config, "req-csr.json")]);
    expect((await runInProcess("bare", [join(t.certs, "etcd3")], { input: leaf.stdout })).status).toBe(0);
    // a user certificate where a member's belongs (no serverAuth, no hosts), a member's where the proxy's belongs
    for (const f of ["", "-key"]) {
      copyFileSync(join(t.certs, `root${f}.pem`), join(t.certs, `etcd2${f}.pem`));
      copyFileSync(join(t.certs, `etcd1${f}.pem`), join(t.certs, `proxy1${f}.pem`));
    }
    chmodSync(keyPath(t, "etcd2"), 0o600);
    // configs edited after make: a new member host, a new CN for the user
    editJson(join(t.config, "req-csr.json"), (v) => (v.hosts as string[]).push("10.0.0.1"));
    editJson(join(t.config, "req-root.json"), (v) => (v.CN = "admin"));
    const r = await lifecycle(t, "verify");
    expect(r.status).not.toBe(0);
    const lines = problemLines(t, r.stdout);
    const about = (name: string) => lines.filter((l) => l.startsWith(`${certPath(t, name)}:`));
    expect(about("etcd3")).toEqual([`${certPath(t, "etcd3")}: is not signed by the CA in ${certPath(t, "ca")}; run "make" to re-issue it`, `${certPath(t, "etcd3")}: lacks IP:10.0.0.1 of the hosts in ${join(t.config, "req-csr.json")}; run "make" to re-issue it`]);
    expect(about("etcd2")[0]).toMatch(/etcd2\.pem: lacks the extended key usage serverAuth, needed by a member certificate/);
    expect(about("etcd2")[1]).toMatch(/etcd2\.pem: lacks DNS:localhost, IP:127\.0\.0\.1, IP:10\.0\.0\.1 of the hosts in .*req-csr\.json/);
    expect(about("etcd1")).toEqual([`${certPath(t, "etcd1")}: lacks IP:10.0.0.1 of the hosts in ${join(t.config, "req-csr.json")}; run "make" to re-issue it`]);
    expect(about("proxy1")).toEqual([`${certPath(t, "proxy1")}: CN is "etcd"; a proxy certificate needs an empty CN (etcd 3.4's gRPC proxy refuses a client certificate with a CN); run "make" to re-issue it`]);
    expect(about("root")).toEqual([`${certPath(t, "root")}: CN is "root" but ${join(t.config, "req-root.json")} asks for "admin" (etcd would see the user "root"); run "make" to re-issue it`]);
    expect(lines).toHaveLength(7);
    expect(r.stderr).toMatch(/warning: .*req-root\.json: CN: "admin" differs from the user name "root"/);
    // the copied pairs share keys with the originals: verify names the copies (root's files went over etcd2's)
    expect(r.stderr).toContain(`warning: ${certPath(t, "etcd2")}: has the same key as ${keyPath(t, "root")} and was changed outside tls-setup (files copied from another certificate?); give it its own with "make renew NAME=etcd2 NEW_KEY=1"`);
    expect(r.stderr).toContain(`warning: ${certPath(t, "proxy1")}: has the same key as ${keyPath(t, "etcd1")} and was changed outside tls-setup`);
    expect(r.stderr).not.toContain(`warning: ${certPath(t, "root")}: has the same key`);
    // make repairs every one of them, with new keys for the files changed outside tls-setup
    expect((await build(t)).status).toBe(0);
    const again = await lifecycle(t, "verify");
    expect(problemLines(t, again.stdout)).toEqual([]);
    expect(again.status).toBe(0);
    expect(again.stderr).not.toMatch(/same key/);
  });

  test("two certificates sharing a key: the warning names the one changed outside tls-setup, wherever it sorts", async () => {
    const t = await made(shortTree());
    // etcd2's files copied over etcd1's (etcd1 comes first in the tree; the copy is etcd1)
    copyFileSync(certPath(t, "etcd2"), certPath(t, "etcd1"));
    copyFileSync(keyPath(t, "etcd2"), keyPath(t, "etcd1"));
    const etcd2 = [sha256File(certPath(t, "etcd2")), sha256File(keyPath(t, "etcd2"))];
    const r = await lifecycle(t, "verify");
    const shared = r.stderr.split("\n").filter((l) => l.includes("same key") || l.includes("share one key"));
    expect(shared).toEqual([`warning: ${certPath(t, "etcd1")}: has the same key as ${keyPath(t, "etcd2")} and was changed outside tls-setup (files copied from another certificate?); give it its own with "make renew NAME=etcd1 NEW_KEY=1"`]);
    // following the advice re-keys etcd1 and leaves etcd2 alone
    expect((await lifecycle(t, "renew", ["--name", "etcd1", "--new-key"])).status).toBe(0);
    expect([sha256File(certPath(t, "etcd2")), sha256File(keyPath(t, "etcd2"))]).toEqual(etcd2);
    expect((await lifecycle(t, "verify")).stderr).not.toMatch(/same key|share one key/);
    // without stamps neither can be told to be the copy: both are named, and no member is picked
    copyFileSync(certPath(t, "etcd2"), certPath(t, "etcd1"));
    copyFileSync(keyPath(t, "etcd2"), keyPath(t, "etcd1"));
    rmSync(join(t.certs, ".tls-setup", "etcd1.json"));
    rmSync(join(t.certs, ".tls-setup", "etcd2.json"));
    const unsure = (await lifecycle(t, "verify")).stderr.split("\n").filter((l) => l.includes("same key") || l.includes("share one key"));
    expect(unsure).toEqual([`warning: ${certPath(t, "etcd1")}, ${certPath(t, "etcd2")}: share one key (files copied from another certificate?), and the stamps in ${join(t.certs, ".tls-setup")}/ do not tell which is the copy; give the copy its own with "make renew NAME=<the copy> NEW_KEY=1"`]);
  });

  test("an expired or missing certificate, a broken key, an invalid config", async () => {
    const t = shortTree();
    addExpiredUser(t, "old");
    await made(t);
    writeFileSync(keyPath(t, "etcd3"), "not a key\n", { mode: 0o600 });
    unlinkSync(certPath(t, "etcd2"));
    writeFileSync(join(t.config, "req-bad.json"), JSON.stringify({ CN: "bad", key: { algo: "ecdsa", size: 300 } }));
    const r = await lifecycle(t, "verify");
    expect(r.status).not.toBe(0);
    expect(problemLines(t, r.stdout)).toEqual([
      `${join(t.config, "req-bad.json")}: key.size: 300 is not an ECDSA curve size (256, 384 or 521)`,
      `${certPath(t, "etcd2")}: does not exist; run "make"`,
      `${keyPath(t, "etcd3")}: contains no PEM private key; expected "EC PRIVATE KEY", "RSA PRIVATE KEY" or "PRIVATE KEY"`,
      `${certPath(t, "old")}: expired on 2020-02-01T00:00:00Z; renew it with "make renew NAME=old"`,
    ]);
  });

  withTools("openssl")("certs/crl.pem: a current CRL signed by the CA passes; a stale or badly signed one fails", async () => {
    const t = await made(shortTree());
    const ca = join(t.dir, "openssl-ca");
    mkdirSync(ca);
    writeFileSync(join(ca, "index.txt"), "");
    writeFileSync(join(ca, "crlnumber"), "01\n");
    writeFileSync(join(ca, "cnf"), `[ca]\ndefault_ca = d\n[d]\ndatabase = ${ca}/index.txt\ncrlnumber = ${ca}/crlnumber\ndefault_md = sha384\n`);
    const crl = join(t.certs, "crl.pem");
    const gencrl = (...extra: string[]) => sh("openssl", ["ca", "-gencrl", "-batch", "-config", join(ca, "cnf"), "-keyfile", keyPath(t, "ca"), "-cert", certPath(t, "ca"), "-out", crl, ...extra]);
    gencrl("-crldays", "7");
    const ok = await lifecycle(t, "verify");
    expect(ok.stdout).toMatch(/verify: ok: 6 certificates checked \(and the CRL\), 0 problems/);
    expect(ok.status).toBe(0);

    gencrl("-crl_lastupdate", "20200101000000Z", "-crl_nextupdate", "20200108000000Z");
    const stale = await lifecycle(t, "verify");
    expect(stale.status).not.toBe(0);
    expect(problemLines(t, stale.stdout)).toEqual([`${crl}: is out of date: its nextUpdate was 2020-01-08T00:00:00Z; re-make the CRL`]);

    // a current CRL whose signature was tampered with (the last byte of the signature value)
    gencrl("-crldays", "7");
    const der = Buffer.from(sh("openssl", ["crl", "-in", crl, "-outform", "PEM"]).replace(/-----[^-]+-----|\s/g, ""), "base64");
    der[der.length - 1] ^= 0x01;
    writeFileSync(crl, toPem("X509 CRL", der));
    const bad = await lifecycle(t, "verify");
    expect(bad.status).not.toBe(0);
    expect(problemLines(t, bad.stdout)).toEqual([`${crl}: its signature does not verify with the CA's key; re-make the CRL with the current CA`]);

    writeFileSync(crl, readFileSync(certPath(t, "etcd1")));
    expect(problemLines(t, (await lifecycle(t, "verify")).stdout)).toEqual([`${crl}: holds no "X509 CRL" PEM block; expected the CRL etcd reads with --client-crl-file`]);
  });

  test("warnings about etcd pitfalls: hosts without 127.0.0.1/localhost, DNS-only members, profiles outlasting the CA", async () => {
    const t = shortTree();
    editJson(join(t.config, "req-csr.json"), (v) => (v.hosts = ["etcd.example.com"]));
    editJson(join(t.config, "ca-csr.json"), (v) => (v.ca = { expiry: "2160h" }));
    await made(t);
    const r = await lifecycle(t, "verify");
    expect(r.status).toBe(0);
    const warnings = r.stderr.split("\n").filter((l) => l.startsWith("warning: "));
    const csr = join(t.config, "req-csr.json");
    expect(warnings).toEqual([
      `warning: ${csr}: hosts: lacks "127.0.0.1"; local clients and health checks dial 127.0.0.1, and etcd checks it against the certificate`,
      `warning: ${csr}: hosts: lacks "localhost"; local clients dial localhost, and etcd checks it against the certificate`,
      `warning: ${csr}: hosts: has DNS names only; etcd checks a peer's remote IP against the IP SANs (else it resolves the DNS names), so add each member's IP address`,
      expect.stringMatching(new RegExp(`^warning: ${join(t.config, "ca-config.json")}: signing\\.default\\.expiry: "8760h" outlasts the CA, which ends .* \\(8[89] days left\\); its certificates are cut to the CA's end`)),
    ]);
    expect(r.stdout).toMatch(/verify: ok: 6 certificates checked, 0 problems, 4 warnings/);
  });
});
