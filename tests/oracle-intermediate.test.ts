// Real cfssl (Debian golang-cfssl 1.2.0) as the oracle for the intermediate CA: the intermediate `make` writes has the
// X.509 profile of one cfssl makes from the same configs (`cfssl gencert -initca intermediate-csr.json`, then
// `cfssl sign -ca ca.pem -ca-key ca-key.pem -config … -profile intermediate intermediate.csr`): extensions, their order
// and criticality, subject, issuer, AKI and lifetime. And a root + intermediate made by cfssl is adopted by `make`,
// which then signs the leaves with cfssl's intermediate (openssl verify -x509_strict judges the chains). `make` runs in
// process (tls.js build with the Makefile's tree options): the subject is what it makes, not make.
import { execSync } from "node:child_process";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FIXTURES, haveTool, sh, tempTree } from "./helpers";
import { build } from "./lifecycle-fixtures";
import { CertView, view } from "./x509";

const hasCfssl = haveTool("cfssl") && haveTool("cfssljson") && haveTool("openssl");
const itCfssl = hasCfssl ? test : test.skip;

/** cfssl's profile for an intermediate: what the brief's cfssl recipe uses, and our built-in default (3 years). */
const CFSSL_INTERMEDIATE = { usages: ["cert sign", "crl sign"], expiry: "26280h", ca_constraint: { is_ca: true, max_path_len: 0, max_path_len_zero: true } };

function intermediateTree(): ReturnType<typeof tempTree> {
  const t = tempTree({ examples: ["calicoctl"] });
  cpSync(join(FIXTURES, "examples", "intermediate-csr.json"), join(t.config, "intermediate-csr.json"));
  return t;
}

const run = (cmd: string, cwd: string) => execSync(cmd, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

/** The parts of a certificate the parity is about. */
function essentials(v: CertView) {
  return { subjectDer: v.subjectDer, issuer: v.issuer, keyUsage: v.keyUsage, extKeyUsages: v.extKeyUsages, basicConstraints: v.basicConstraints, san: v.san, signatureAlgorithm: v.signatureAlgorithm, extensionOrder: v.extensionOrder, aki: v.aki };
}

/** cfssl's intermediate from the tree's configs, signed by the tree's root with `profile` under "intermediate". */
function cfsslIntermediate(t: ReturnType<typeof tempTree>, profile: object): CertView {
  const cfg = JSON.parse(readFileSync(join(t.config, "ca-config.json"), "utf8"));
  cfg.signing.profiles.intermediate = profile;
  writeFileSync(join(t.dir, "cfssl-config.json"), JSON.stringify(cfg));
  run(`cfssl gencert -initca ${join(t.config, "intermediate-csr.json")} | cfssljson -bare cfint`, t.dir);
  run(`cfssl sign -ca ${join(t.certs, "ca.pem")} -ca-key ${join(t.certs, "ca-key.pem")} -config cfssl-config.json -profile intermediate cfint.csr | cfssljson -bare cfsigned`, t.dir);
  return view(join(t.dir, "cfsigned.pem"));
}

describe("our intermediate is cfssl's (same root, same configs)", () => {
  itCfssl("the built-in profile (no \"intermediate\" in ca-config.json) equals cfssl's sign with the cert sign / crl sign / pathlen 0 profile", async () => {
    const t = intermediateTree();
    expect((await build(t)).status).toBe(0);
    const ours = view(join(t.certs, "intermediate.pem"));
    const theirs = cfsslIntermediate(t, CFSSL_INTERMEDIATE);
    expect(essentials(ours)).toEqual(essentials(theirs));
    expect(ours.basicConstraints).toEqual({ ca: true, pathLength: 0, critical: true });
    expect(ours.extKeyUsages).toBeUndefined();
    expect(ours.notAfter.getTime() - ours.notBefore.getTime()).toBe(theirs.notAfter.getTime() - theirs.notBefore.getTime());
    sh("openssl", ["verify", "-x509_strict", "-CAfile", join(t.certs, "ca.pem"), join(t.certs, "intermediate.pem"), join(t.dir, "cfsigned.pem")]);
  });

  itCfssl("a configured \"intermediate\" profile (2 years, with both auth EKUs) is honoured as cfssl honours it", async () => {
    const t = intermediateTree();
    const profile = { usages: ["cert sign", "crl sign", "server auth", "client auth"], expiry: "17520h", ca_constraint: { is_ca: true, max_path_len: 0, max_path_len_zero: true } };
    const cfg = JSON.parse(readFileSync(join(t.config, "ca-config.json"), "utf8"));
    cfg.signing.profiles.intermediate = profile;
    writeFileSync(join(t.config, "ca-config.json"), JSON.stringify(cfg, null, 2));
    expect((await build(t)).status).toBe(0);
    const ours = view(join(t.certs, "intermediate.pem"));
    const theirs = cfsslIntermediate(t, profile);
    expect(essentials(ours)).toEqual(essentials(theirs));
    expect(ours.notAfter.getTime() - ours.notBefore.getTime()).toBe(17520 * 3_600_000);
    expect(theirs.notAfter.getTime() - theirs.notBefore.getTime()).toBe(17520 * 3_600_000);
    // Go accepts the leaves below it (both EKUs): openssl's purpose check agrees
    for (const n of ["etcd1", "calicoctl"]) sh("openssl", ["verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", join(t.certs, "ca.pem"), "-untrusted", join(t.certs, `${n}.pem`), join(t.certs, `${n}.pem`)]);
  });
});

describe("a root and an intermediate made by cfssl are adopted", () => {
  itCfssl("make adopts both after checking the chain, then signs every leaf with cfssl's intermediate", async () => {
    const t = intermediateTree();
    const cfg = JSON.parse(readFileSync(join(t.config, "ca-config.json"), "utf8"));
    cfg.signing.profiles.intermediate = CFSSL_INTERMEDIATE;
    writeFileSync(join(t.dir, "cfssl-config.json"), JSON.stringify(cfg));
    sh("mkdir", ["-p", t.certs]);
    run(`cfssl gencert -initca ${join(t.config, "ca-csr.json")} | cfssljson -bare ca`, t.certs);
    run(`cfssl gencert -initca ${join(t.config, "intermediate-csr.json")} | cfssljson -bare intermediate`, t.certs);
    run(`cfssl sign -ca ca.pem -ca-key ca-key.pem -config ${join(t.dir, "cfssl-config.json")} -profile intermediate intermediate.csr | cfssljson -bare intermediate`, t.certs);
    const cas = { ca: readFileSync(join(t.certs, "ca.pem"), "utf8"), im: readFileSync(join(t.certs, "intermediate.pem"), "utf8") };
    const r = await build(t);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`kept ${t.certs}/ca.pem: adopting the existing CA in ${t.certs}/ca.pem`);
    expect(r.stdout).toContain(`kept ${t.certs}/intermediate.pem: adopting the existing intermediate CA in ${t.certs}/intermediate.pem (its chain to the root is checked)`);
    expect(readFileSync(join(t.certs, "ca.pem"), "utf8")).toBe(cas.ca);
    expect(readFileSync(join(t.certs, "intermediate.pem"), "utf8")).toBe(cas.im);
    for (const n of ["etcd1", "etcd2", "etcd3", "proxy1", "root", "calicoctl"]) {
      const f = join(t.certs, `${n}.pem`);
      expect(sh("openssl", ["verify", "-x509_strict", "-CAfile", join(t.certs, "ca.pem"), "-untrusted", f, f])).toBe(`${f}: OK\n`);
    }
    expect((await build(t)).stdout).toMatch(/tls-setup: made 0, unchanged 8, orphaned 0/);
  });
});
