// certs/crl.der beside certs/crl.pem, judged by Go itself: tests/go/crlcheck (built here with Debian's golang-go,
// offline, stdlib only) parses the CRL with x509.ParseCRL (etcd 3.4/3.5) and x509.ParseRevocationList (etcd 3.6,
// DER only), lists the revoked serials and checks strict DER; openssl reads the DER too.
import "reflect-metadata";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeWith, withTools, haveTool, ROOT, runMake, sh, snapshot, tempTree } from "./helpers";
import { etcdOn, tlsOn } from "./in-process";
import { children, raw, readNode, seq } from "../scripts/lib/x509/der";

const haveGo = haveTool("go");
const t = tempTree({ examples: ["calicoctl", "calico-node"] });
const c = (f: string) => join(t.certs, f);
const goDir = mkdtempSync(join(tmpdir(), "tls-setup-go-"));
const crlcheck = join(goDir, "crlcheck");

interface GoVerdict {
  form: string;
  parseCRLSerials: string[];
  parseRevocationListSerials?: string[];
  parseRevocationListError?: string;
  number?: string;
  thisUpdate: string;
  nextUpdate: string;
  strictDER: boolean;
  signatureCheckedAgainstCA: boolean;
}

function goCheck(file: string, ca = true): { status: number | null; verdict?: GoVerdict; stderr: string } {
  const r = spawnSync(crlcheck, [...(ca ? ["-ca", c("ca.pem")] : []), file], { encoding: "utf8" });
  return { status: r.status, verdict: r.status === 0 ? (JSON.parse(r.stdout) as GoVerdict) : undefined, stderr: r.stderr };
}

/** openssl's serial of a certificate: lower-case hex without leading zero octets (as Go's big.Int.Bytes gives). */
const serialOf = (name: string) => sh("openssl", ["x509", "-in", c(`${name}.pem`), "-noout", "-serial"]).trim().replace(/^serial=/, "").toLowerCase().replace(/^(00)+/, "");

// make's, make crl's and make revoke's commands run in process here (tests/in-process.ts), but for the first make crl
// (its output through make) and the failed make revoke, spawned
beforeAll(async () => {
  expect((await tlsOn(t, "build")).status).toBe(0);
  if (!haveGo) return;
  // offline, stdlib only, caches in a temp directory
  const env = { ...process.env, GOCACHE: join(goDir, "cache"), GOPATH: join(goDir, "gopath"), GOPROXY: "off", GOFLAGS: "", GO111MODULE: "" };
  const b = spawnSync("go", ["build", "-o", crlcheck, join(ROOT, "tests", "go", "crlcheck", "main.go")], { env, encoding: "utf8" });
  if (b.status !== 0) throw new Error(`go build of tests/go/crlcheck failed: ${b.stderr}`);
}, 120_000);
afterAll(() => {
  rmSync(t.dir, { recursive: true, force: true });
  rmSync(goDir, { recursive: true, force: true });
});

describeWith("go")("Go's crypto/x509 (etcd 3.4, 3.5 and 3.6) reads the CRL", () => {
  test("no revocation yet: crl.der and crl.pem are the same CRL; both parsers read it, strict DER, no revoked list", () => {
    const r = runMake(["crl"], t);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`wrote ${c("crl.pem")} and ${c("crl.der")}`);
    const der = readFileSync(c("crl.der"));
    const pem = readFileSync(c("crl.pem"), "utf8");
    expect(Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64").equals(der)).toBe(true);
    const d = goCheck(c("crl.der"));
    expect(d.stderr).toBe("");
    expect(d.verdict).toMatchObject({ form: "der", parseCRLSerials: [], parseRevocationListSerials: [], number: "1", strictDER: true, signatureCheckedAgainstCA: true });
    // TBSCertList: version, signature, issuer, thisUpdate, nextUpdate, crlExtensions: no revokedCertificates at all
    const tbs = readNode(der, readNode(der).contentStart);
    expect(children(der, tbs).map((n) => n.tag)).toEqual([0x02, 0x30, 0x30, 0x17, 0x17, 0xa0]);
    // etcd 3.4/3.5 read the PEM too (ParseCRL); etcd 3.6's ParseRevocationList refuses PEM: that is why crl.der exists
    const p = goCheck(c("crl.pem"));
    expect(p.verdict).toMatchObject({ form: "pem", parseCRLSerials: [], strictDER: true, signatureCheckedAgainstCA: true });
    expect(p.verdict?.parseRevocationListError).toBeTruthy();
  });

  test("revoked serials: Go lists exactly those revoked, in both files", async () => {
    const revoked: string[] = [];
    for (const n of ["calicoctl", "etcd2"]) {
      revoked.push(serialOf(n));
      expect((await etcdOn(t, "revoke", n)).status).toBe(0);
    }
    const d = goCheck(c("crl.der"));
    expect(d.stderr).toBe("");
    expect(d.verdict).toMatchObject({ parseCRLSerials: revoked, parseRevocationListSerials: revoked, number: "3", strictDER: true, signatureCheckedAgainstCA: true });
    expect(goCheck(c("crl.pem")).verdict?.parseCRLSerials).toEqual(revoked);
    expect(revoked).not.toContain(serialOf("calico-node"));
  });

  test("the strict-DER check is a real judge: an empty revokedCertificates SEQUENCE, a long-form length and a tampered signature fail", () => {
    const der = readFileSync(c("crl.der"));
    const top = readNode(der);
    const [tbsNode, alg, sig] = children(der, top);
    const tbsParts = children(der, tbsNode).map((n) => raw(der, n));
    const bad = join(t.dir, "bad.der");
    // what a CRL with nothing revoked must not have: an empty list between nextUpdate and the extensions
    const emptyList = seq(seq(...tbsParts.slice(0, 5), seq(), tbsParts[tbsParts.length - 1]), raw(der, alg), raw(der, sig));
    writeFileSync(bad, emptyList);
    let r = goCheck(bad, false);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/empty constructed element/);
    // the same CRL with the top SEQUENCE's length in a longer form than needed
    const body = der.subarray(top.contentStart);
    writeFileSync(bad, Buffer.concat([Buffer.from([0x30, 0x83, 0, (body.length >> 8) & 0xff, body.length & 0xff]), body]));
    r = goCheck(bad, false);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/crlcheck: .*length/);
    // one flipped bit inside the signature: the CA check fails
    const tampered = Buffer.from(der);
    tampered[tampered.length - 5] ^= 0x01;
    writeFileSync(bad, tampered);
    r = goCheck(bad, true);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("signature");
  });
});

withTools("openssl")("openssl reads crl.der (DER) and verifies its signature with the CA", async () => {
  expect((await etcdOn(t, "crl")).status).toBe(0);
  const text = sh("openssl", ["crl", "-inform", "DER", "-in", c("crl.der"), "-noout", "-text"]);
  expect(text).toMatch(/Version 2 \(0x1\)/);
  const v = spawnSync("openssl", ["crl", "-inform", "DER", "-in", c("crl.der"), "-CAfile", c("ca.pem"), "-noout", "-verify"], { encoding: "utf8" });
  expect(`${v.status} ${(v.stdout + v.stderr).trim()}`).toBe("0 verify OK");
  // the same bytes as the PEM, re-encoded by openssl
  const fromPem = spawnSync("openssl", ["crl", "-in", c("crl.pem"), "-outform", "DER"], { encoding: "buffer" }).stdout;
  expect(fromPem.equals(readFileSync(c("crl.der")))).toBe(true);
});

test("a failed revoke writes neither file", async () => {
  expect((await etcdOn(t, "crl")).status).toBe(0);
  const before = snapshot(t.certs);
  const r = runMake(["revoke", "NAME=nosuch"], t);
  expect(r.status).not.toBe(0);
  expect(snapshot(t.certs)).toEqual(before);
});
