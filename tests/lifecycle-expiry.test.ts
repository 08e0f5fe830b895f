// make check-expiration and make inspect, on real short-lived and expired certificates; openssl and cfssl judge.
// The targets' recipes run in process (lifecycle.js CMD with the Makefile's tree options; make's variables become the
// options the recipe passes); make's own wiring of these targets is core-habits.test.ts's (exit codes, NAME).
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { readdirSync } from "node:fs";
import { haveTool, sh, snapshot, withTools } from "./helpers";
import { runInProcess } from "./in-process";
import { certPath, expiryTree, lifecycle, made, openssl509, opensslNotAfter, shortTree, Tree } from "./lifecycle-fixtures";

const haveOpenssl = haveTool("openssl");
const DAY = 86_400_000;

let t: Tree;
beforeAll(async () => {
  // a certificate tls-setup did not make, from another (self-signed, non-CA) origin
  t = await expiryTree({ name: "foreign", subj: "/CN=foreign", extra: ["-addext", "basicConstraints=critical,CA:FALSE"] }, haveOpenssl);
});

describe("make check-expiration", () => {
  test("names every certificate ending within WARN_DAYS (default 30) or already ended, and exits non-zero", async () => {
    const before = snapshot(t.certs);
    const r = await lifecycle(t, "check-expiration");
    expect(r.status).not.toBe(0);
    const failing = r.stderr.split("\n").filter((l) => l.startsWith(t.certs));
    expect(failing).toHaveLength(3);
    expect(failing.find((l) => l.startsWith(`${certPath(t, "root")}:`))).toMatch(/expires on .* in 9 days \(within WARN_DAYS=30\).*make renew NAME=root/);
    expect(failing.find((l) => l.startsWith(`${certPath(t, "calico-node")}:`))).toMatch(/in 9 days/);
    expect(failing.find((l) => l.startsWith(`${certPath(t, "old")}:`))).toMatch(/expired on 2020-02-01 00:00 UTC/);
    // the table lists everything, with the stamp's role or "unknown"
    const rows = r.stdout.split("\n").filter(Boolean);
    expect(rows[0]).toMatch(/^NAME\s+CN\s+ROLE\s+NOT AFTER\s+DAYS LEFT\s+CA\s+STATUS$/);
    const byName = Object.fromEntries(rows.slice(1).map((l) => [l.split(/\s+/)[0], l]));
    // "foreign" is made by openssl in beforeAll (a fixture, not a judge here)
    expect(Object.keys(byName).sort()).toEqual(["ca", "calico-node", "etcd1", "etcd2", "etcd3", ...(haveOpenssl ? ["foreign"] : []), "old", "proxy1", "root"]);
    expect(byName.ca).toMatch(/^ca\s+tls-setup etcd CA\s+ca\s.*self-signed\s+ok$/);
    expect(byName.proxy1).toMatch(/^proxy1\s+\(empty\)\s+proxy\s.*\s364\s+ca\s+ok$/);
    expect(byName.root).toMatch(/^root\s+root\s+user\s.*\s9\s+ca\s+EXPIRING$/);
    expect(byName.old).toMatch(/EXPIRED$/);
    expect(snapshot(t.certs)).toEqual(before);
  });

  withTools("openssl")("FORMAT=json: the same report, dates and chains as openssl sees them", async () => {
    const r = await lifecycle(t, "check-expiration", ["--format", "json"]);
    expect(r.status).not.toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.warnDays).toBe(30);
    expect([...rep.failing].sort()).toEqual(["calico-node", "old", "root"]);
    const now = Date.now();
    for (const e of rep.certificates) {
      // one openssl run for both fields (notAfter and the RFC 2253 subject)
      const seen = openssl509(e.file, "-enddate", "-subject", "-nameopt", "RFC2253");
      const notAfter = new Date(/^notAfter=(.*)$/m.exec(seen)![1]);
      expect(new Date(e.notAfter).getTime()).toBe(notAfter.getTime());
      expect(e.daysLeft).toBe(Math.floor((notAfter.getTime() - now) / DAY));
      expect(e.cn).toBe(e.name === "proxy1" ? "" : (/CN=([^,\n]*)/.exec(/^subject=(.*)$/m.exec(seen)![1])?.[1] ?? ""));
      // the chain is judged by openssl too
      const verified = spawnSync("openssl", ["verify", "-CAfile", join(t.certs, "ca.pem"), e.file], { stdio: "ignore" }).status === 0 ? "yes" : "no";
      if (e.name === "old") expect(verified).toBe("no"); // expired: openssl refuses it, but it still chains to the CA
      else expect(e.ca === "ca" || e.ca === "self-signed").toBe(verified === "yes");
    }
    const roles = Object.fromEntries(rep.certificates.map((e: { name: string; role: string; ca: string }) => [e.name, `${e.role}/${e.ca}`]));
    expect(roles).toEqual({ ca: "ca/self-signed", "calico-node": "user/ca", etcd1: "member/ca", etcd2: "member/ca", etcd3: "member/ca", foreign: "unknown/none", old: "user/ca", proxy1: "proxy/ca", root: "user/ca" });
  });

  test("WARN_DAYS below the days left passes; an expired certificate still fails", async () => {
    const r = await lifecycle(t, "check-expiration", ["--warn-days", "5", "--format", "json"]);
    expect(r.status).not.toBe(0);
    expect(JSON.parse(r.stdout).failing).toEqual(["old"]);
    const ok = await made(shortTree());
    const r2 = await lifecycle(ok, "check-expiration", ["--warn-days", "5"]);
    expect(r2.status).toBe(0);
    expect(r2.stdout).toMatch(/check-expiration: 6 certificates, none ends within 5 days/);
    expect((await lifecycle(ok, "check-expiration")).status).not.toBe(0);
  });

  test("bad WARN_DAYS, FORMAT or a missing certs directory: one-line errors", async () => {
    const bad = await lifecycle(t, "check-expiration", ["--warn-days", "soon"]);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/^tls-setup: WARN_DAYS: "soon" is not a whole number of days/m);
    expect((await lifecycle(t, "check-expiration", ["--format", "yaml"])).stderr).toMatch(/FORMAT: "yaml" is not an output format; accepted: text, json/);
    const empty = shortTree();
    const r = await lifecycle(empty, "check-expiration");
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/certs: does not exist; run "make" first/);
  });
});

describe("make inspect", () => {
  const names = () => readdirSync(t.certs).filter((f) => f.endsWith(".pem") && !f.endsWith("-key.pem")).map((f) => f.slice(0, -4));

  withTools("openssl", "cfssl")("FORMAT=json agrees with cfssl certinfo and openssl for every certificate", async () => {
    for (const n of names()) {
      const file = certPath(t, n);
      const r = await runInProcess("lifecycle", ["inspect", "--certs-dir", t.certs, "--config-dir", t.config, "--name", n, "--format", "json"]);
      expect(r.status).toBe(0);
      const d = JSON.parse(r.stdout);
      const c = JSON.parse(sh("cfssl", ["certinfo", "-cert", file]));
      for (const k of ["subject", "issuer", "serial_number", "sans", "not_before", "not_after", "sigalg"]) expect([n, k, d[k]]).toEqual([n, k, c[k] ?? (k === "sans" ? [] : undefined)]); // cfssl omits empty lists
      const text = openssl509(file, "-serial", "-subject", "-nameopt", "RFC2253", "-fingerprint", "-sha256", "-text");
      expect(text).toContain(`serial=${d.serial_hex}\n`);
      expect(text).toContain(`subject=${d.subject_dn}\n`);
      expect(text).toContain(`Fingerprint=${d.sha256_fingerprint}\n`);
      expect(d.subject_key_id).toBe(/Subject Key Identifier: *\n\s*([0-9A-F:]+)/.exec(text)?.[1]);
      expect(d.authority_key_id).toBe(/Authority Key Identifier: *\n\s*(?:keyid:)?([0-9A-F:]+)/.exec(text)?.[1]);
      const ku = /Key Usage: critical\n\s*(.*)/.exec(text)?.[1] ?? "";
      expect(d.key_usages.map((u: string) => u.replace(/\b\w/g, (x) => x.toUpperCase())).join(", ").replace("Crl", "CRL")).toBe(ku.replace("Certificate Sign", "Cert Sign"));
      const eku = (/Extended Key Usage: *\n\s*(.*)/.exec(text)?.[1] ?? "").replace(/TLS Web (Server|Client) Authentication/g, (_, x: string) => `${x.toLowerCase()} auth`);
      expect(d.ext_key_usages.join(", ")).toBe(eku);
      expect(`${d.key_size} bit`).toBe(/Public-Key: \((\d+ bit)\)/.exec(text)?.[1]);
      expect(d.is_ca).toBe(/CA:TRUE/.test(text));
    }
  });

  withTools("openssl")("text output: the fields openssl shows, and the role and chain", async () => {
    const file = certPath(t, "etcd1");
    const r = await lifecycle(t, "inspect", ["--name", "etcd1"]);
    expect(r.status).toBe(0);
    const lines = Object.fromEntries(r.stdout.split("\n").filter(Boolean).map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trim()]));
    expect(lines.role).toBe("member, chains to ca");
    expect(`subject=${lines.subject}`).toBe(openssl509(file, "-subject", "-nameopt", "RFC2253").trim());
    expect(`issuer=${lines.issuer}`).toBe(openssl509(file, "-issuer", "-nameopt", "RFC2253").trim());
    expect(`serial=${lines.serial.split(" ")[0]}`).toBe(openssl509(file, "-serial").trim());
    expect(lines.SANs).toBe(openssl509(file, "-ext", "subjectAltName").split("\n")[1].trim().replace(/IP Address:/g, "IP:"));
    expect(new Date(lines["not after"].split(" ")[0]).getTime()).toBe(opensslNotAfter(file).getTime());
    expect(lines["ext key usage"]).toBe("server auth, client auth");
    expect(lines.key).toBe("ECDSA P-384");
    expect(lines.CA).toBe("no");
    const ca = await lifecycle(t, "inspect", ["--name", certPath(t, "ca")]);
    expect(ca.stdout).toMatch(/^role:\s+ca, self-signed$/m);
    expect(ca.stdout).toMatch(/^key usage:\s+.*cert sign, crl sign$/m);
  });

  test("NAME missing or unknown: one-line errors", async () => {
    const r = await lifecycle(t, "inspect");
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/NAME: is missing; say which certificate, e.g. "make inspect NAME=etcd1"/);
    const u = await lifecycle(t, "inspect", ["--name", "nosuch"]);
    expect(u.status).not.toBe(0);
    expect(u.stderr).toContain(`${certPath(t, "nosuch")}: does not exist`);
    expect(u.stderr).not.toMatch(/\n\s+at /);
  });
});
