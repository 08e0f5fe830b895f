// A randomized differential test against real cfssl 1.2.0 (Debian golang-cfssl): many generated valid CSRs and
// ca-config.json files, signed by the same CA with both tools, compared field by field. Our side runs in-process
// (the functions behind dist/cfssl.js), cfssl is spawned a few at a time.
//
// The seed is printed in the suite's name; repeat a run with ORACLE_SEED=<seed>. ORACLE_CASES sets the number of
// leaf cases (default 48). Where we differ from cfssl on purpose, the generator steers clear of it or accounts for
// it; every such place names its row of DELIBERATE_DIFFERENCES, the one list of them (README "Differences from
// cfssl" says the same in prose).
import "reflect-metadata";
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describeWith, tempDir } from "./helpers";
import { x509 } from "./x509";
import { gencert, initCa } from "../scripts/lib/cli/cfssl";
import { defaultDeps, issueCa, roundToMinute } from "../scripts/lib/x509/issue";
import { parseRequest } from "../scripts/lib/config/request";
import { children, raw, readNode } from "../scripts/lib/x509/der";
import { EXT_KEY_USAGE_OIDS, KEY_USAGE_BITS } from "../scripts/lib/config/profile";

/** Where tls-setup deliberately differs from cfssl, and what the generator does about it. */
export const DELIBERATE_DIFFERENCES = {
  defaultKey: { cfssl: "default key ECDSA P-256; {algo: rsa} alone means RSA-256", ours: "default P-384; RSA alone is 2048", generator: "always writes both key.algo and key.size" },
  unknownUsage: { cfssl: "unknown usage strings ignored", ours: "an error", generator: "picks usages from the known table only" },
  certSignLeaf: { cfssl: "cert sign allowed on leaf profiles", ours: "only with ca_constraint.is_ca", generator: "adds cert sign only to is_ca profiles" },
  unknownProfile: { cfssl: "an unknown -profile falls back to default", ours: "an error", generator: "passes only defined names (or default)" },
  invalidHosts: { cfssl: '"", "x y", "-bad-" become DNS SANs; non-ASCII hosts panic', ours: "errors; non-ASCII names become punycode", generator: "valid ASCII hosts only" },
  uriSans: { cfssl: "1.2.0 makes URIs DNS names", ours: "URI SANs, as cfssl 1.6", generator: "no URI hosts" },
  expiry: { cfssl: "zero or negative expiry accepted", ours: "an error", generator: "positive expiries only" },
  notAfterWithoutExpiry: { cfssl: "every profile needs expiry, even with not_after", ours: "not_after alone is enough", generator: "always writes expiry" },
  clampToCa: { cfssl: "a leaf may outlive its CA", ours: "notAfter cut to the CA's", generator: "lifetimes end well before the CA's (CA 5 years, leaves at most 2)" },
  caChecks: { cfssl: "the signing CA is not checked", ours: "must be a valid, unexpired CA with a matching key", generator: "signs with a good CA" },
  defaultNoUsages: { cfssl: "a default profile without usages fails only when used", ours: "refused when the config is loaded", generator: "the default profile always has usages" },
  cnLength: { cfssl: "no length limit (Go)", ours: "CN at most 64 characters, names values at most 128 (RFC 5280 ub-common-name)", generator: "CN up to 64, names values up to 40 characters" },
  contentCommitment: { cfssl: '1.2.0 knows only the misspelling "content committment"', ours: "both spellings, as cfssl 1.6", generator: 'writes "content committment" only' },
  caBackdate: { cfssl: "ca.backdate only in 1.6", ours: "ca.backdate accepted", generator: "no ca.backdate" },
  notSupported: { cfssl: "policies, name_whitelist, auth_keys, remote signers", ours: "not supported", generator: "none of them" },
} as const;
type Difference = keyof typeof DELIBERATE_DIFFERENCES;
/** Marks a generator decision made because of a deliberate difference (and checks the row exists). */
const because = (d: Difference) => void DELIBERATE_DIFFERENCES[d];

const SEED = process.env.ORACLE_SEED ? Number(process.env.ORACLE_SEED) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
const CASES = Number(process.env.ORACLE_CASES ?? 48);
const CA_CASES = 6;
const CA_KEYS = [{ algo: "ecdsa", size: 384 }, { algo: "rsa", size: 2048 }, { algo: "ecdsa", size: 256 }, { algo: "ecdsa", size: 521 }];
const PARALLEL = 3;

// ---- seeded PRNG (sfc32 from a splitmix32 seed expansion) ----
function prng(seed: number) {
  let s = seed >>> 0;
  const split = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = split(), b = split(), c = split(), d = split();
  const next = () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)];
  const chance = (p: number) => next() < p;
  const subset = <T>(xs: readonly T[], min = 0): T[] => {
    const out = xs.filter(() => chance(0.3));
    while (out.length < min) {
      const x = pick(xs);
      if (!out.includes(x)) out.push(x);
    }
    // shuffled: the order of usages and hosts matters to both tools
    for (let i = out.length - 1; i > 0; i--) {
      const j = int(0, i);
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  };
  return { next, int, pick, chance, subset };
}
type Rng = ReturnType<typeof prng>;

// ---- generators ----
const PRINTABLE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?";
// characters that make Go pick UTF8String: & and * (not PrintableString for Go), accents, CJK, emoji, @ _ ; ! "
const OTHER = ["&", "*", "@", "_", ";", "!", '"', "é", "ü", "ß", "Ω", "中", "文", "日本", "😀", "🔐", "ñ", "Å"];

function text(r: Rng, maxChars: number): string {
  const n = r.int(1, maxChars);
  const utf8 = r.chance(0.35);
  let out = "";
  for (let i = 0; i < n; i++) out += utf8 && r.chance(0.3) ? r.pick(OTHER) : PRINTABLE[r.int(0, PRINTABLE.length - 1)];
  // at most maxChars code points
  return [...out].slice(0, maxChars).join("");
}

const label = (r: Rng) => {
  const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  let s = chars[r.int(0, 51)];
  const n = r.int(0, 12);
  for (let i = 0; i < n; i++) s += r.chance(0.1) ? "-" : chars[r.int(0, chars.length - 1)];
  return s + chars[r.int(0, chars.length - 1)];
};

function host(r: Rng): string {
  because("invalidHosts");
  because("uriSans");
  switch (r.int(0, 9)) {
    case 0:
    case 1:
    case 2:
      return Array.from({ length: r.int(1, 4) }, () => label(r)).join(".");
    case 3:
      return `*.${label(r)}.${label(r)}`;
    case 4:
    case 5:
      return Array.from({ length: 4 }, () => r.int(0, 255)).join(".");
    case 6: {
      const w = Array.from({ length: 8 }, () => (r.chance(0.4) ? "0" : r.int(0, 0xffff).toString(16)));
      return r.pick([w.join(":"), `${w[0]}::${w[7]}`, "::1", `fe80::${w[3]}`, `2001:db8::${w[1]}:${w[2]}`]);
    }
    case 7:
      return `::ffff:${r.int(1, 223)}.${r.int(0, 255)}.${r.int(0, 255)}.${r.int(0, 255)}`;
    default:
      return `${label(r)}${r.pick(["", ".", "+", "_"])}${label(r)}@${label(r)}.example`;
  }
}

function keySpec(r: Rng) {
  because("defaultKey");
  return r.chance(0.15) ? { algo: "rsa", size: 2048 } : { algo: "ecdsa", size: r.pick([256, 384, 521]) };
}

const NAME_FIELDS = ["C", "ST", "L", "O", "OU"] as const;

function subject(r: Rng): Record<string, unknown> {
  because("cnLength");
  const csr: Record<string, unknown> = {};
  if (r.chance(0.85)) csr.CN = text(r, r.chance(0.1) ? 64 : 24);
  if (r.chance(0.6))
    csr.names = Array.from({ length: r.int(1, 3) }, () => {
      const n: Record<string, string> = {};
      for (const f of r.subset(NAME_FIELDS, r.chance(0.9) ? 1 : 0)) n[f] = text(r, f === "C" ? 2 : 40);
      return n;
    });
  if (r.chance(0.1)) csr.serialnumber = String(r.int(1, 1e9));
  return csr;
}

function leafCsr(r: Rng): Record<string, unknown> {
  const csr = subject(r);
  if (r.chance(0.9)) csr.hosts = Array.from({ length: r.int(0, 5) }, () => host(r));
  csr.key = keySpec(r);
  return csr;
}

function caCsr(r: Rng): Record<string, unknown> {
  const csr = subject(r);
  if (!csr.CN) csr.CN = text(r, 30); // a CA needs a subject
  if (r.chance(0.5)) csr.hosts = Array.from({ length: r.int(1, 3) }, () => host(r));
  csr.key = keySpec(r);
  because("caBackdate");
  if (r.chance(0.7)) {
    const ca: Record<string, unknown> = {};
    because("expiry");
    if (r.chance(0.7)) ca.expiry = r.pick(["87600h", "43800h", "8760h", "1h", "26280h30m"]);
    if (r.chance(0.5)) ca.pathlen = r.int(0, 3);
    if (r.chance(0.4)) ca.pathlenzero = r.chance(0.5);
    csr.ca = ca;
  }
  return csr;
}

because("contentCommitment");
const KU = Object.keys(KEY_USAGE_BITS).filter((u) => u !== "cert sign" && u !== "content commitment");
const EKU = Object.keys(EXT_KEY_USAGE_OIDS);
const url = (r: Rng, what: string) => `http://${label(r)}.example/${what}`;

function profile(r: Rng, isDefault: boolean): Record<string, unknown> {
  because("unknownUsage");
  because("defaultNoUsages");
  because("expiry");
  because("clampToCa");
  because("notAfterWithoutExpiry");
  because("notSupported");
  const p: Record<string, unknown> = {
    usages: r.subset([...KU, ...EKU], 1),
    expiry: r.pick(["1h", "24h", "720h", "8760h", "17520h", "90m", "1h30m45s", "2h0m1.5s", "4321s"]),
  };
  if (r.chance(0.3)) p.backdate = r.pick(["0s", "0", "1h", "10m", "30s", "1m30s"]);
  if (r.chance(0.3)) p.ocsp_url = url(r, "ocsp");
  if (r.chance(0.3)) p.crl_url = url(r, "crl");
  if (r.chance(0.3)) p.issuer_urls = r.chance(0.2) ? [] : Array.from({ length: r.int(1, 2) }, () => url(r, "ca.crt"));
  if (r.chance(0.08)) {
    // both in the future and within the CA's life
    const start = Math.floor(Date.now() / 1000) * 1000 + r.int(1, 400) * 3_600_000 + r.int(0, 3599) * 1000;
    p.not_before = new Date(start).toISOString().replace(".000Z", "Z");
    if (r.chance(0.6)) p.not_after = new Date(start + r.int(1, 9000) * 3_600_000).toISOString().replace(".000Z", "Z");
  }
  if (!isDefault && r.chance(0.15)) {
    const isCa = r.chance(0.7);
    p.ca_constraint = { is_ca: isCa, max_path_len: r.int(0, 2), max_path_len_zero: r.chance(0.5) };
    because("certSignLeaf");
    if (isCa && r.chance(0.7)) (p.usages as string[]).push("cert sign");
  }
  return p;
}

interface LeafCase {
  n: number;
  csr: Record<string, unknown>;
  config?: Record<string, unknown>;
  profile?: string;
  ca: number;
}

function leafCase(r: Rng, n: number): LeafCase {
  const csr = leafCsr(r);
  if (r.chance(0.1)) return { n, csr, ca: r.int(0, CA_KEYS.length - 1) }; // no -config: cfssl's built-in default
  const profiles: Record<string, unknown> = {};
  for (const name of r.subset(["client", "server", "peer", "default", "intermediate"])) profiles[name] = profile(r, false);
  const config = { signing: { default: profile(r, true), ...(Object.keys(profiles).length || r.chance(0.5) ? { profiles } : {}) } };
  because("unknownProfile");
  const choice = r.pick(["(none)", "default", ...Object.keys(profiles), ...Object.keys(profiles)]);
  return { n, csr, config, profile: choice === "(none)" ? undefined : choice, ca: r.int(0, CA_KEYS.length - 1) };
}

// ---- running both ----
let dir: string;
const cas: { cert: string; key: string }[] = [];

function cfssl(args: string[]): Promise<{ cert: string; csr: string }> {
  return new Promise((resolve, reject) =>
    execFile("cfssl", args, { cwd: dir, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`cfssl ${args.join(" ")} failed: ${stderr.split("\n").filter(Boolean).slice(-2).join(" | ")}`));
      try {
        resolve(JSON.parse(stdout));
      } catch {
        reject(new Error(`cfssl ${args.join(" ")}: output is not JSON: ${stdout.slice(0, 200)}`));
      }
    }),
  );
}

async function inBatches<T, R>(xs: T[], n: number, f: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(xs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < xs.length) {
        const i = next++;
        out[i] = await f(xs[i]);
      }
    }),
  );
  return out;
}

// ---- comparing ----
const hex = (b: ArrayBuffer | Buffer) => Buffer.from(b as ArrayBuffer).toString("hex");
const SKI = "2.5.29.14";

/** What must match in a certificate, as plain data (the SKI's value differs: different keys). */
function certFacts(pem: string) {
  const c = new x509.X509Certificate(pem);
  return {
    subject: hex(c.subjectName.toArrayBuffer()),
    issuer: hex(c.issuerName.toArrayBuffer()),
    signatureAlgorithm: JSON.stringify(c.signatureAlgorithm),
    publicKeyAlgorithm: JSON.stringify(c.publicKey.algorithm),
    extensions: c.extensions.map((e) => `${e.type}${e.critical ? " critical" : ""} ${e.type === SKI ? `(${e.value.byteLength} bytes)` : hex(e.value)}`),
    lifetimeMs: c.notAfter.getTime() - c.notBefore.getTime(),
    notBefore: c.notBefore,
  };
}

/** A CSR's version, subject, attributes and signature algorithm, byte for byte (the key and signature differ). */
function csrFacts(pem: string) {
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
  const top = children(der, readNode(der));
  const [version, subj, , attrs] = children(der, top[0]);
  return { version: hex(raw(der, version)), subject: hex(raw(der, subj)), attributes: hex(raw(der, attrs)), signatureAlgorithm: hex(raw(der, top[1])) };
}

/** The notBefore both tools must pick: the profile's not_before, else now rounded to the minute minus the backdate. */
function expectedNotBefore(c: LeafCase, t0: number, t1: number): number[] {
  const p = (c.config ? (c.profile && (c.config.signing as { profiles?: Record<string, unknown> }).profiles?.[c.profile]) || (c.config.signing as { default: unknown }).default : {}) as Record<string, string>;
  if (p.not_before) return [Date.parse(p.not_before)];
  // zero backdate means the default 5 minutes, in cfssl and (issue 9 #14) in ours
  const bd = p.backdate ? parseGo(p.backdate) || 300_000 : 300_000;
  return [...new Set([t0, t1].map((t) => Math.floor((roundToMinute(new Date(t)).getTime() - bd) / 1000) * 1000))];
}
const parseGo = (s: string): number => {
  let ms = 0;
  for (const m of s.matchAll(/([\d.]+)(h|ms|m|s)/g)) ms += Number(m[1]) * { h: 3_600_000, m: 60_000, s: 1000, ms: 1 }[m[2] as "h"];
  return ms;
};

interface Outcome {
  label: string;
  mismatches: string[];
}

function compare(labelText: string, ours: { cert: string; csr: string }, theirs: { cert: string; csr: string }, notBefore?: number[]): Outcome {
  const mismatches: string[] = [];
  const a = certFacts(ours.cert);
  const b = certFacts(theirs.cert);
  for (const k of ["subject", "issuer", "signatureAlgorithm", "publicKeyAlgorithm", "lifetimeMs"] as const)
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) mismatches.push(`cert ${k}: ours ${JSON.stringify(a[k])}, cfssl ${JSON.stringify(b[k])}`);
  if (JSON.stringify(a.extensions) !== JSON.stringify(b.extensions)) mismatches.push(`cert extensions:\n  ours  ${a.extensions.join("\n        ")}\n  cfssl ${b.extensions.join("\n        ")}`);
  if (notBefore) {
    if (!notBefore.includes(a.notBefore.getTime())) mismatches.push(`our notBefore ${a.notBefore.toISOString()} is none of ${notBefore.map((t) => new Date(t).toISOString())}`);
    if (!notBefore.includes(b.notBefore.getTime())) mismatches.push(`cfssl's notBefore ${b.notBefore.toISOString()} is none of ${notBefore.map((t) => new Date(t).toISOString())}`);
  }
  const ca = csrFacts(ours.csr);
  const cb = csrFacts(theirs.csr);
  for (const k of Object.keys(ca) as (keyof typeof ca)[]) if (ca[k] !== cb[k]) mismatches.push(`csr ${k}: ours ${ca[k]}, cfssl ${cb[k]}`);
  return { label: labelText, mismatches };
}

// ---- the cases ----
const rng = prng(SEED);
const caCases = Array.from({ length: CA_CASES }, () => caCsr(rng));
const leafCases = Array.from({ length: CASES }, (_, n) => leafCase(rng, n));

/** Regressions of issue 9 #11–#14 (found by this test's first version), run with fixed inputs on every run. */
const URLS = { ocsp_url: "http://ocsp.example/", crl_url: "http://crl.example/ca.crl", issuer_urls: ["http://ca.example/ca.crt"] };
const fixedCases: LeafCase[] = [
  // #11: SAN before CRL distribution points (Go's order: AIA, SAN, CRL DP)
  { n: 1000, csr: { CN: "crl", hosts: ["a.example", "10.0.0.1"], key: { algo: "ecdsa", size: 256 } }, config: { signing: { default: { usages: ["signing", "server auth"], expiry: "24h", ...URLS } } }, ca: 0 },
  // #12: a named profile inherits the default's issuer_urls (and ocsp_url, crl_url)
  { n: 1001, csr: { CN: "inherit", hosts: ["b.example"], key: { algo: "ecdsa", size: 256 } }, config: { signing: { default: { usages: ["signing"], expiry: "24h", ...URLS }, profiles: { named: { usages: ["client auth"], expiry: "48h" }, none: { usages: ["client auth"], expiry: "48h", issuer_urls: [] } } } }, profile: "named", ca: 0 },
  { n: 1002, csr: { CN: "inherit-none", hosts: ["b.example"], key: { algo: "ecdsa", size: 256 } }, config: { signing: { default: { usages: ["signing"], expiry: "24h", ...URLS }, profiles: { none: { usages: ["client auth"], expiry: "48h", issuer_urls: [] } } } }, profile: "none", ca: 0 },
  // #13: -profile default picks profiles.default when there is one
  { n: 1003, csr: { CN: "pd", hosts: ["c.example"], key: { algo: "ecdsa", size: 256 } }, config: { signing: { default: { usages: ["signing", "server auth"], expiry: "24h" }, profiles: { default: { usages: ["key agreement", "client auth"], expiry: "12h" } } } }, profile: "default", ca: 1 },
  // #14: a zero backdate is the default 5 minutes
  { n: 1004, csr: { CN: "bd0", hosts: ["d.example"], key: { algo: "ecdsa", size: 256 } }, config: { signing: { default: { usages: ["signing", "client auth"], expiry: "12h", backdate: "0s" } } }, ca: 0 },
  // #16: 40 emoji are 40 characters (80 UTF-16 code units), within the CN limit
  { n: 1005, csr: { CN: "\u{1F600}".repeat(40), names: [{ O: "\u{1F510}".repeat(40) }], hosts: ["e.example"], key: { algo: "ecdsa", size: 256 } }, ca: 0 },
];

const suite = describeWith("cfssl");

suite(`randomized differential test against cfssl 1.2.0 (seed ${SEED}; repeat with ORACLE_SEED=${SEED})`, () => {
  const leafOutcomes = new Map<number, Outcome>();
  const caOutcomes: Outcome[] = [];

  beforeAll(async () => {
    dir = tempDir("tls-setup-oracle-random-");
    const deps = defaultDeps();
    // CAs made by us, one per signature algorithm family (the leaf's signature algorithm follows the CA's key)
    for (const [i, key] of CA_KEYS.entries()) {
      const req = parseRequest({ CN: `Oracle CA ${i}`, names: [{ O: "tls-setup tests", OU: "différentiel" }], key }, "ca.json", { allowCa: true }).value!;
      const issued = await issueCa(req, deps);
      const cert = join(dir, `ca${i}.pem`);
      const keyFile = join(dir, `ca${i}-key.pem`);
      writeFileSync(cert, issued.certPem);
      writeFileSync(keyFile, issued.keyPem, { mode: 0o600 });
      cas.push({ cert, key: keyFile });
    }
    const quiet = () => {};

    await inBatches([...leafCases, ...fixedCases], PARALLEL, async (c) => {
      const csrFile = join(dir, `leaf${c.n}.json`);
      writeFileSync(csrFile, JSON.stringify(c.csr));
      const args = ["gencert", "-ca", cas[c.ca].cert, "-ca-key", cas[c.ca].key];
      let config: string | undefined;
      if (c.config) {
        config = join(dir, `config${c.n}.json`);
        writeFileSync(config, JSON.stringify(c.config));
        args.push("-config", config);
      }
      if (c.profile !== undefined) args.push("-profile", c.profile);
      args.push(csrFile);
      const labelText = `case ${c.n}: csr ${JSON.stringify(c.csr)}${c.config ? ` config ${JSON.stringify(c.config)}` : " (no -config)"}${c.profile !== undefined ? ` -profile ${c.profile}` : ""} CA ${c.ca}`;
      const t0 = Date.now();
      try {
        const [theirs, ours] = await Promise.all([cfssl(args), gencert({ ca: cas[c.ca].cert, caKey: cas[c.ca].key, config, profile: c.profile, csrFile }, quiet, deps)]);
        leafOutcomes.set(c.n, compare(labelText, { cert: ours.certPem, csr: ours.csrPem }, theirs, expectedNotBefore(c, t0, Date.now())));
      } catch (e) {
        leafOutcomes.set(c.n, { label: labelText, mismatches: [`failed: ${(e as Error).message}`] });
      }
    });

    await inBatches(caCases.map((csr, i) => ({ csr, i })), PARALLEL, async ({ csr, i }) => {
      const csrFile = join(dir, `ca-csr${i}.json`);
      writeFileSync(csrFile, JSON.stringify(csr));
      const labelText = `CA case ${i}: csr ${JSON.stringify(csr)}`;
      const t0 = Date.now();
      try {
        const [theirs, ours] = await Promise.all([cfssl(["gencert", "-initca", csrFile]), initCa(csrFile, quiet, deps)]);
        const nb = [...new Set([t0, Date.now()].map((t) => roundToMinute(new Date(t)).getTime() - 300_000))];
        caOutcomes.push(compare(labelText, { cert: ours.certPem, csr: ours.csrPem }, theirs, nb));
      } catch (e) {
        caOutcomes.push({ label: labelText, mismatches: [`failed: ${(e as Error).message}`] });
      }
    });
  });

  const report = (o: Outcome | undefined) => (o ? (o.mismatches.length ? `${o.label}\n${o.mismatches.join("\n")}` : "same") : "not run");

  test(`${CASES} generated leaf certificates and CSRs match cfssl's`, () => {
    expect(leafOutcomes.size).toBe(CASES + fixedCases.length);
    const differing = leafCases.map((c) => report(leafOutcomes.get(c.n))).filter((r) => r !== "same");
    expect(differing).toEqual([]);
  });

  test(`${CA_CASES} generated CA certificates and CSRs match cfssl gencert -initca's`, () => {
    expect(caOutcomes.length).toBe(CA_CASES);
    expect(caOutcomes.map(report).filter((r) => r !== "same")).toEqual([]);
  });

  test.each([
    ["#11 SAN comes before the CRL distribution points", 1000],
    ["#12 a named profile inherits the default's issuer_urls", 1001],
    ['#12 issuer_urls: [] in a named profile means none', 1002],
    ['#13 -profile default uses profiles.default', 1003],
    ['#14 "backdate": "0s" backdates 5 minutes', 1004],
    ["#16 a CN of 40 emoji is 40 characters", 1005],
  ])("issue 9 %s, as cfssl", (_name, n) => {
    expect(report(leafOutcomes.get(n))).toBe("same");
  });

  test.each([
    ["missing", { expiry: "1h" }, "is missing"],
    ["[]", { usages: [], expiry: "1h" }, "is empty"],
  ])("issue 9 #15: a default profile with usages %s is refused by both", async (_name, def, words) => {
    const config = join(dir, `no-usages-${_name === "[]" ? "empty" : "missing"}.json`);
    writeFileSync(config, JSON.stringify({ signing: { default: def } }));
    const csrFile = join(dir, "leaf1000.json");
    await expect(cfssl(["gencert", "-ca", cas[0].cert, "-ca-key", cas[0].key, "-config", config, csrFile])).rejects.toThrow("no key usage available");
    await expect(gencert({ ca: cas[0].cert, caKey: cas[0].key, config, csrFile }, () => {})).rejects.toThrow(`${config}: signing.default.usages: ${words}; the default profile needs at least one usage`);
  });
});
