// Every bad input is refused cleanly: exit code 1 (make's 2), exactly the expected error line(s) naming the file,
// the field and the bad value, no stack trace, and nothing on disk changes (the whole temp tree is hashed before and
// after, so nothing is written outside certs/ either). The cases run the scripts' main functions in-process (the
// code `node dist/ca.js` runs, from argv to the error line and exit code; `make all` runs `tls build` with the
// Makefile's options); the few in SPAWNED run the real thing (node dist/*.js, make) to prove the wiring.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, Run, runMake, runScript, sh, snapshot, tempTree, haveTool, withTools } from "./helpers";
import { runInProcess } from "./in-process";
import { parseRequest } from "../scripts/lib/config/request";
import { issueCa, defaultDeps } from "../scripts/lib/x509/issue";

const tree = tempTree();
const IN = join(tree.dir, "in");
const rel = (f: string) => `in/${f}`;

/** What a case runs: a script with its arguments (in the temp tree, stdin from `input`), or `make all VAR=value...`. */
type Invocation = { script: "ca" | "req" | "bare"; args: string[]; input?: () => string } | { make: string[] };

/** One refusal: `setup` writes inputs (its changes are part of the "before" state), `run` says what runs. */
interface Case {
  name: string;
  setup?: () => void;
  run: Invocation;
  /** one entry per stderr line: every string in it must occur in that line */
  lines: string[][];
  cleanup?: () => void;
}

const cases: Case[] = [];
const put = (f: string, data: string | Buffer) => writeFileSync(join(IN, f), data);
const json = (v: unknown) => JSON.stringify(v);
const ca = (file: string): Invocation => ({ script: "ca", args: [rel(file)] });
const req = (args: string[]): Invocation => ({ script: "req", args });
const reqTree = (csr: string, extra: string[] = []): Invocation => req(["-ca", "certs/ca.pem", "-ca-key", "certs/ca-key.pem", ...extra, rel(csr)]);
const bare = (input: () => string): Invocation => ({ script: "bare", args: ["certs/etcd1"], input });
const make = (extra: string[] = []): Invocation => ({ make: extra });
const pem = (f: string) => readFileSync(join(tree.certs, f), "utf8");

// ---- ca: malformed input, wrong types, bad keys, bad hosts, bad durations (one CSR file each) ----
const caCase = (name: string, content: string | Buffer, lines: string[][]) =>
  cases.push({ name: `ca: ${name}`, setup: () => put("f.json", content), run: ca("f.json"), lines: lines.map((l) => ["ca: in/f.json: ", ...l]) });
const withCn = (extra: object) => json({ CN: "x", ...extra });

caCase("malformed JSON", '{"CN": ', [["is not valid JSON"]]);
caCase("trailing garbage", '{"CN": "x"} }', [["is not valid JSON", "line 1"]]);
caCase("empty file", "", [["is empty; a JSON object is expected"]]);
caCase("whitespace only", " \n\t\n", [["is empty; a JSON object is expected"]]);
caCase("non-UTF-8 bytes", Buffer.from([0x7b, 0x22, 0x43, 0x4e, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), [["is not valid UTF-8"]]);
caCase("absurdly nested object", '{"a":'.repeat(100000) + "1" + "}".repeat(100000), [["nested deeper than 64 levels"]]);
caCase("absurdly nested CN", '{"CN":' + "[".repeat(1000000) + "]".repeat(1000000) + "}", [["nested deeper than 64 levels"]]);
caCase("top-level array", "[1, 2]", [["is an array; a JSON object is expected"]]);
caCase("top-level string", '"CN"', [["is a string; a JSON object is expected"]]);
caCase("top-level null", "null", [["is null; a JSON object is expected"]]);
caCase("CN a number", json({ CN: 5 }), [["CN: 5 is a number; a string is expected"]]);
caCase("hosts a string", withCn({ hosts: "example.com" }), [['hosts: "example.com" is a string; an array']]);
caCase("names not an array", withCn({ names: { O: "x" } }), [['names: {"O":"x"} is an object; an array']]);
caCase("names entry not an object", withCn({ names: ["O"] }), [['names[0]: "O" is a string; an object']]);
caCase("key.size a string", withCn({ key: { algo: "ecdsa", size: "384" } }), [['key.size: "384" is not an integer; accepted: 256, 384, 521']]);
caCase("key.size a float", withCn({ key: { algo: "rsa", size: 2048.5 } }), [["key.size: 2048.5 is not an integer; accepted: 2048 to 8192"]]);
caCase("key not an object", withCn({ key: "ecdsa" }), [['key: "ecdsa" is a string; an object']]);
caCase("unknown algorithm", withCn({ key: { algo: "dsa", size: 2048 } }), [['key.algo: "dsa" is not a supported key algorithm; accepted: "ecdsa", "rsa"']]);
caCase("ed25519", withCn({ key: { algo: "ed25519" } }), [['key.algo: "ed25519" is not a supported key algorithm', "etcd 3.4"]]);
caCase("ECDSA 224", withCn({ key: { algo: "ecdsa", size: 224 } }), [["key.size: 224 is not an ECDSA curve size (256, 384 or 521)"]]);
caCase("ECDSA 512", withCn({ key: { algo: "ecdsa", size: 512 } }), [["key.size: 512 is not an ECDSA curve size"]]);
caCase("RSA 1024", withCn({ key: { algo: "rsa", size: 1024 } }), [["key.size: 1024 is not an allowed RSA key size (2048 to 8192 bits)"]]);
caCase("RSA 2047", withCn({ key: { algo: "rsa", size: 2047 } }), [["key.size: 2047 is not an allowed RSA key size"]]);
caCase("RSA 16384", withCn({ key: { algo: "rsa", size: 16384 } }), [["key.size: 16384 is not an allowed RSA key size (2048 to 8192 bits)"]]);
for (const [i, host, why] of [
  [0, "a b", 'has an invalid label "a b"'],
  [0, "", "is empty"],
  [0, "1.2.3.256", "is not a valid IP address"],
  [0, "01.2.3.4", "is not a valid IP address"],
  [0, "1.2.3", "is not a valid IP address"],
  [0, "[::1]", "is not a valid IP address"],
  [0, "fe80::1%eth0", "is not a valid IP address"],
  [0, "1::2::3", "is not a valid IP address"],
  [0, "-bad-", 'has an invalid label "-bad-"'],
  [0, "a..b", "has an empty label"],
  [0, "under_score.example", "has an invalid label"],
] as const)
  caCase(`host ${JSON.stringify(host)}`, withCn({ hosts: [host] }), [[`hosts[${i}]: ${JSON.stringify(host)} ${why}`, "expected an IP address"]]);
caCase("host a number", withCn({ hosts: ["ok.example", 5] }), [["hosts[1]: 5 is a number; a host name or IP address string"]]);
caCase("several problems, one line each", json({ CN: 1, hosts: ["a b", "ok", "1.2.3.256"], key: { algo: "rsa", size: 1024 } }), [
  ["CN: 1 is a number"],
  ['hosts[0]: "a b"'],
  ['hosts[2]: "1.2.3.256"'],
  ["key.size: 1024"],
]);
for (const [d, why] of [
  ["-1h", "is not a positive duration"],
  ["0", "is not a positive duration"],
  ["0s", "is not a positive duration"],
  ["365d", "days and years are not Go duration units"],
  ["1y", "days and years are not Go duration units"],
  ["ten hours", "is not a Go duration"],
] as const)
  caCase(`ca.expiry ${d}`, withCn({ ca: { expiry: d } }), [[`ca.expiry: ${JSON.stringify(d)} `, why]]);
caCase("ca.expiry a number", withCn({ ca: { expiry: 8760 } }), [["ca.expiry: 8760 is a number; a Go duration string"]]);
caCase("ca.backdate negative", withCn({ ca: { backdate: "-1h" } }), [['ca.backdate: "-1h" is negative']]);
caCase("ca.pathlen negative", withCn({ ca: { pathlen: -1 } }), [["ca.pathlen: -1 is not a non-negative integer"]]);
caCase("CN of 65 characters", json({ CN: "x".repeat(65) }), [[`CN: "${"x".repeat(65)}" is 65 characters; a common name may have at most 64`]]);
caCase("no subject at all", json({ key: { algo: "ecdsa", size: 256 } }), [["CN: is empty and no names are given"]]);
cases.push({ name: "ca: missing file", run: ca("nope.json"), lines: [["ca: in/nope.json: does not exist"]] });
cases.push({ name: "ca: a directory", setup: () => mkdirSync(join(IN, "d.json"), { recursive: true }), run: ca("d.json"), lines: [["ca: in/d.json: is a directory"]] });

// ---- req: signing configs, profiles, broken CA files ----
const reqCase = (name: string, setup: () => void, run: Invocation, lines: string[][]) => cases.push({ name: `req: ${name}`, setup, run, lines: lines.map((l) => ["req: ", ...l]) });
const good = () => put("u.json", json({ CN: "u", hosts: ["u.example"] }));
const cfgCase = (name: string, profile: object, lines: string[][]) =>
  reqCase(name, () => (good(), put("cfg.json", json({ signing: { default: profile } }))), reqTree("u.json", ["-config", rel("cfg.json")]), lines.map((l) => ["in/cfg.json: ", ...l]));
cfgCase("unknown usage", { usages: ["signing", "client auth", "bogus"], expiry: "1h" }, [['signing.default.usages[2]: "bogus" is not a known usage; accepted: "signing"']]);
cfgCase("usages a string", { usages: "client auth", expiry: "1h" }, [['signing.default.usages: "client auth" is a string; an array']]);
cfgCase("negative expiry", { usages: ["client auth"], expiry: "-1h" }, [['signing.default.expiry: "-1h" is not a positive duration']]);
cfgCase("zero expiry", { usages: ["client auth"], expiry: "0s" }, [['signing.default.expiry: "0s" is not a positive duration']]);
cfgCase("day unit", { usages: ["client auth"], expiry: "365d" }, [['signing.default.expiry: "365d"', "days and years are not Go duration units"]]);
// issue 9 #15: cfssl refuses these too ("no key usage available"); nothing is written
cfgCase("default profile without usages", { expiry: "1h" }, [["signing.default.usages: is missing; the default profile needs at least one usage", '(cfssl: "no key usage available")']]);
cfgCase("default profile with usages []", { usages: [], expiry: "1h" }, [["signing.default.usages: is empty; the default profile needs at least one usage"]]);
cfgCase("garbage expiry", { usages: ["client auth"], expiry: "soon" }, [['signing.default.expiry: "soon" is not a Go duration']]);
reqCase("config without signing", () => (good(), put("cfg.json", "{}")), reqTree("u.json", ["-config", rel("cfg.json")]), [["in/cfg.json: signing: is missing"]]);
reqCase("unknown profile", good, reqTree("u.json", ["-config", "config/ca-config.json", "-profile", "nope"]), [['config/ca-config.json: signing.profiles: has no profile "nope"; available: "default", "user"']]);
reqCase("ca section in a leaf request", () => put("u.json", json({ CN: "u", ca: { expiry: "1h" } })), reqTree("u.json"), [['in/u.json: ca: a "ca" section is only permitted']]);
reqCase("no -ca", good, req(["-ca-key", "certs/ca-key.pem", rel("u.json")]), [["-ca: is required"]]);
reqCase("CA cert garbage", () => (good(), put("g.pem", "garbage\n")), req(["-ca", rel("g.pem"), "-ca-key", "certs/ca-key.pem", rel("u.json")]), [['in/g.pem: contains no PEM data; expected a PEM "CERTIFICATE"']]);
reqCase("CA key garbage", () => (good(), put("g.pem", "garbage\n")), req(["-ca", "certs/ca.pem", "-ca-key", rel("g.pem"), rel("u.json")]), [["in/g.pem: contains no PEM private key"]]);
reqCase("a key instead of the CA cert", good, req(["-ca", "certs/ca-key.pem", "-ca-key", "certs/ca-key.pem", rel("u.json")]), [['certs/ca-key.pem: contains an EC PRIVATE KEY block; expected a PEM "CERTIFICATE"']]);
reqCase("a cert instead of the CA key", good, req(["-ca", "certs/ca.pem", "-ca-key", "certs/ca.pem", rel("u.json")]), [["certs/ca.pem: contains no PEM private key"]]);
reqCase("CA key of another CA", good, req(["-ca", "certs/ca.pem", "-ca-key", rel("other-ca-key.pem"), rel("u.json")]), [["in/other-ca-key.pem: does not match the certificate certs/ca.pem"]]);
reqCase("a leaf as the CA", good, req(["-ca", "certs/etcd1.pem", "-ca-key", "certs/etcd1-key.pem", rel("u.json")]), [["certs/etcd1.pem: is not a CA certificate"]]);
reqCase("an expired CA", good, req(["-ca", rel("expired-ca.pem"), "-ca-key", rel("expired-ca-key.pem"), rel("u.json")]), [["in/expired-ca.pem: the CA expired on "]]);
reqCase("an RSA-1024 CA", good, req(["-ca", rel("weak-ca.pem"), "-ca-key", rel("weak-ca-key.pem"), rel("u.json")]), [["in/weak-ca-key.pem: is an RSA 1024-bit key; a CA key must be RSA 2048 bits or more"]]);
reqCase("a SHA-1 signed CA", good, req(["-ca", rel("sha1-ca.pem"), "-ca-key", rel("sha1-ca-key.pem"), rel("u.json")]), [["in/sha1-ca.pem: is signed with sha1WithRSAEncryption; SHA-1 and MD5 signatures are refused"]]);
reqCase("CA file missing", good, req(["-ca", "certs/nope.pem", "-ca-key", "certs/ca-key.pem", rel("u.json")]), [["certs/nope.pem: does not exist"]]);

// ---- bare: bad JSON on stdin, or a key that is not the cert's (prefix certs/etcd1: the existing files must stay) ----
const bareCase = (name: string, input: () => string, lines: string[][]) => cases.push({ name: `bare: ${name}`, run: bare(input), lines: lines.map((l) => ["bare: stdin: ", ...l]) });
bareCase("empty input", () => "", [["is empty; expected cfssl's JSON"]]);
bareCase("garbage", () => "garbage", [["is not valid JSON"]]);
bareCase("an array", () => "[]", [["is an array; a JSON object is expected"]]);
bareCase("a non-string value", () => json({ cert: 5 }), [["cert: 5 is a number; expected a PEM string"]]);
bareCase("an object value", () => json({ key: { pem: "x" } }), [['key: {"pem":"x"} is an object; expected a PEM string']]);
bareCase("none of cert, key, csr", () => json({ certificate: "x" }), [['has none of "cert", "key", "csr"']]);
bareCase("cert garbage", () => json({ cert: "garbage" }), [["cert: contains no PEM data"]]);
bareCase("a cert alone that is not the key's on disk", () => json({ cert: pem("etcd2.pem") }), [["cert: does not belong to the key already in certs/etcd1-key.pem; nothing was written"]]);
bareCase("key that is not the cert's", () => json({ cert: pem("etcd1.pem"), key: pem("etcd2-key.pem"), csr: pem("etcd1.csr") }), [['key: does not belong to the certificate in "cert"; nothing was written']]);

// ---- make: unsafe or clashing user names, bad member names, bad configs ----
const userFile = (name: string) => join(tree.config, `req-${name}.json`);
const userJson = json({ CN: "u", key: { algo: "ecdsa", size: 256 } });
const makeCase = (name: string, setup: () => void, cleanup: () => void, lines: string[][], extra: string[] = []) =>
  cases.push({ name: `make: ${name}`, setup, cleanup, run: make(extra), lines: lines.map((l) => ["tls-setup: ", ...l]) });
for (const [name, why] of [
  [".", "is not a safe name"],
  ["-x", "is not a safe name"],
  ["a b", "is not a safe name"],
  ["$(touch pwned)", "is not a safe name"],
  ["`touch pwned`", "is not a safe name"],
  ["ca", "clashes with a built-in certificate"],
  ["etcd1", "clashes with a built-in certificate"],
  ["proxy1", "clashes with a built-in certificate"],
  ["x".repeat(65), "is longer than 64 characters"],
  // certs/ca-key.pem is the CA's key: a user "ca-key" would write its certificate over it
  ["ca-key", 'ends in "-key", which names another certificate\'s key file (certs/ca-key.pem)'],
  ["etcd1-key", 'ends in "-key", which names another certificate\'s key file (certs/etcd1-key.pem)'],
] as const)
  makeCase(`user file req-${name}.json`, () => writeFileSync(userFile(name), userJson), () => rmSync(userFile(name)), [[`config/req-${name}.json: user name ${JSON.stringify(name)} ${why}`]]);
makeCase("ETCD_MEMBERS=../evil", () => {}, () => {}, [['ETCD_MEMBERS: "../evil" is not a safe name']], ["ETCD_MEMBERS=../evil"]);
makeCase("ETCD_MEMBERS with a quote and a command", () => {}, () => {}, [["ETCD_MEMBERS: \"x'\""], ['ETCD_MEMBERS: ";"'], ['ETCD_MEMBERS: ";"'], ["ETCD_MEMBERS: \"'\""]], ["ETCD_MEMBERS=x' ; touch pwned ; '"]);
makeCase("PROXIES=/abs", () => {}, () => {}, [['PROXIES: "/abs" is not a safe name']], ["PROXIES=/abs"]);
const editConfig = (file: string, data: string | Buffer) => {
  const p = join(tree.config, file);
  return [() => (renameSync(p, p + ".orig"), writeFileSync(p, data)), () => renameSync(p + ".orig", p)] as const;
};
const newUser = (data: string | Buffer) => [() => writeFileSync(userFile("u"), data), () => rmSync(userFile("u"))] as const;
makeCase("user without CN", ...newUser(json({ hosts: [] })), [["config/req-u.json: CN: is missing or empty; a user certificate's CN is the etcd user name"]]);
makeCase("user with a 65-character CN", ...newUser(json({ CN: "u".repeat(65) })), [[`config/req-u.json: CN: "${"u".repeat(65)}" is 65 characters`]]);
makeCase("user asking for an unknown profile", ...newUser(json({ CN: "u", profile: "nope" })), [['ca-config.json: signing.profiles: has no profile "nope"', "(asked for by", "config/req-u.json)"]]);
makeCase("user config malformed", ...newUser('{"CN": "u",'), [["config/req-u.json: is not valid JSON"]]);
makeCase("user config not UTF-8", ...newUser(Buffer.from([0xc3, 0x28])), [["config/req-u.json: is not valid UTF-8"]]);
makeCase("user config an array", ...newUser("[]"), [["config/req-u.json: is an array"]]);
makeCase("user with a bad host", ...newUser(json({ CN: "u", hosts: ["01.2.3.4"] })), [['config/req-u.json: hosts[0]: "01.2.3.4" is not a valid IP address']]);
makeCase(
  "ca-config with days",
  ...editConfig("ca-config.json", json({ signing: { default: { usages: ["signing", "server auth", "client auth"], expiry: "30d" } } })),
  [['config/ca-config.json: signing.default.expiry: "30d"', "days and years"]],
);
makeCase(
  "ca-config with an unknown usage",
  ...editConfig("ca-config.json", json({ signing: { default: { usages: ["server auth", "client auth", "sever auth"], expiry: "1h" } } })),
  [['config/ca-config.json: signing.default.usages[2]: "sever auth" is not a known usage']],
);
makeCase("ca-csr with a zero expiry", ...editConfig("ca-csr.json", json({ CN: "CA", ca: { expiry: "0h" } })), [['config/ca-csr.json: ca.expiry: "0h" is not a positive duration']]);
makeCase("ca-csr with RSA 1024", ...editConfig("ca-csr.json", json({ CN: "CA", key: { algo: "rsa", size: 1024 } })), [["config/ca-csr.json: key.size: 1024 is not an allowed RSA key size"]]);
makeCase("req-csr.json empty", ...editConfig("req-csr.json", ""), [["config/req-csr.json: is empty"]]);
makeCase("CA key missing beside its cert", () => renameSync(join(tree.certs, "ca-key.pem"), join(IN, "ca-key.pem")), () => renameSync(join(IN, "ca-key.pem"), join(tree.certs, "ca-key.pem")), [
  ["certs/ca-key.pem: is missing but", "certs/ca.pem exists"],
]);

const swapCa = (prefix: string) => {
  const files = ["ca.pem", "ca-key.pem"];
  return [
    () => files.forEach((f) => (renameSync(join(tree.certs, f), join(IN, `orig-${f}`)), writeFileSync(join(tree.certs, f), readFileSync(join(IN, f.replace("ca", prefix)))))),
    () => files.forEach((f) => renameSync(join(IN, `orig-${f}`), join(tree.certs, f))),
  ] as const;
};
makeCase("adopting an RSA-1024 CA found in certs/", ...swapCa("weak-ca"), [["certs/ca-key.pem: is an RSA 1024-bit key"]]);
makeCase("adopting a leaf found as certs/ca.pem", ...swapCa("leaf"), [["certs/ca.pem: is not a CA certificate"]]);

const STACK = /^\s+at |internal error/m;

/**
 * The cases that run the real thing, to prove the wiring (node dist/SCRIPT.js: argv, stdin, the error line, the exit
 * code; make: the Makefile's quoting of file names and variables into the shell, and its exit code): one or more per
 * script and make. The rest run in-process.
 */
const SPAWNED = new Set([
  "ca: several problems, one line each",
  "ca: non-UTF-8 bytes",
  "req: CA key of another CA",
  "bare: key that is not the cert's",
  "make: user file req-$(touch pwned).json",
  "make: ETCD_MEMBERS with a quote and a command",
  "make: user config malformed",
]);

/** `make all`'s recipe: `$(TLS) build $(TREE)`, TREE from CONFIG_DIR, CERTS_DIR, ETCD_MEMBERS and PROXIES (Makefile). */
function makeAllArgs(extra: string[]): string[] {
  const vars: Record<string, string> = { ETCD_MEMBERS: "etcd1 etcd2 etcd3", PROXIES: "proxy1" };
  for (const e of extra) {
    const [k, v] = [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)];
    if (!(k in vars)) throw new Error(`makeAllArgs: ${k} is not a variable this test passes`);
    vars[k] = v;
  }
  return ["build", "--config-dir", tree.config, "--certs-dir", tree.certs, "--members", vars.ETCD_MEMBERS, "--proxies", vars.PROXIES];
}

/** Runs a case's invocation, spawned or in-process; `exit` is the status a refusal must end with. */
async function invoke(run: Invocation, spawned: boolean): Promise<{ r: Run; exit: number }> {
  if ("make" in run) {
    // make reports a failed recipe with its own exit code 2; tls-setup itself exits with 1
    if (spawned) return { r: runMake(["all"], tree, run.make), exit: 2 };
    return { r: await runInProcess("tls", makeAllArgs(run.make), { cwd: ROOT }), exit: 1 };
  }
  const opts = { cwd: tree.dir, input: run.input?.() };
  return { r: spawned ? runScript(run.script, run.args, opts) : await runInProcess(run.script, run.args, opts), exit: 1 };
}

beforeAll(async () => {
  mkdirSync(IN, { recursive: true });
  const r = runScript("tls", ["build", "--config-dir", tree.config, "--certs-dir", tree.certs]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  // another CA's key, and an expired CA made with the library under a clock six years back
  sh("sh", ["-c", `node ${JSON.stringify(join(ROOT, "dist/ca.js"))} config/ca-csr.json | node ${JSON.stringify(join(ROOT, "dist/bare.js"))} in/other-ca`], { cwd: tree.dir });
  const parsed = parseRequest({ CN: "old CA", ca: { expiry: "1h" } }, "expired", { allowCa: true });
  const then = new Date(Date.now() - 6 * 365 * 86_400_000);
  const expired = await issueCa(parsed.value!, { ...defaultDeps(), now: () => then });
  writeFileSync(join(IN, "expired-ca.pem"), expired.certPem);
  writeFileSync(join(IN, "expired-ca-key.pem"), expired.keyPem, { mode: 0o600 });
  writeFileSync(join(IN, "leaf.pem"), readFileSync(join(tree.certs, "etcd1.pem")));
  writeFileSync(join(IN, "leaf-key.pem"), readFileSync(join(tree.certs, "etcd1-key.pem")));
  // a weak CA made by openssl (RSA-1024) and a SHA-1 signed one
  haveTool("openssl");
  for (const [name, args] of [["weak-ca", ["-newkey", "rsa:1024"]], ["sha1-ca", ["-newkey", "rsa:2048", "-sha1"]]] as const)
    sh("openssl", ["req", "-x509", ...args, "-nodes", "-keyout", join(IN, `${name}-key.pem`), "-out", join(IN, `${name}.pem`), "-subj", `/CN=${name}`, "-days", "30"]);
});

afterAll(() => rmSync(tree.dir, { recursive: true, force: true }));

test("at least 40 bad-input cases are defined; the spawned ones cover each script and make", () => {
  expect(cases.length).toBeGreaterThanOrEqual(40);
  const spawned = cases.filter((c) => SPAWNED.has(c.name));
  expect(spawned.map((c) => c.name).sort()).toEqual([...SPAWNED].sort());
  expect(new Set(spawned.map((c) => ("make" in c.run ? "make" : c.run.script)))).toEqual(new Set(["ca", "req", "bare", "make"]));
});

test.each(cases.map((c) => [`${c.name} is refused cleanly (${SPAWNED.has(c.name) ? "spawned" : "in-process"})`, c] as const))("%s", async (_name, c) => {
  c.setup?.();
  try {
    const before = snapshot(tree.dir);
    const { r, exit } = await invoke(c.run, SPAWNED.has(c.name));
    const after = snapshot(tree.dir);
    expect(r.status).toBe(exit);
    expect(r.stderr).not.toMatch(STACK);
    // make adds its own "make: *** [...] Error 1" line; everything else on stderr is ours
    const lines = r.stderr.split("\n").filter((l) => l !== "" && !/^make(\[\d+\])?: \*\*\* /.test(l));
    expect(lines).toHaveLength(c.lines.length);
    c.lines.forEach((want, i) => {
      for (const s of want) expect(lines[i]).toContain(s);
    });
    expect(after).toEqual(before);
    expect(existsSync(join(tree.dir, "pwned"))).toBe(false);
    expect(existsSync(join(ROOT, "pwned"))).toBe(false);
  } finally {
    c.cleanup?.();
  }
});

test("after all refusals the tree is still up to date and intact", () => {
  const r = runScript("tls", ["plan", "--names", "--config-dir", tree.config, "--certs-dir", tree.certs]);
  expect(r.status).toBe(0);
  expect(r.stdout).toBe("");
});

withTools("openssl")("a non-ASCII host becomes a punycode DNS SAN (accepted, not refused)", () => {
  writeFileSync(userFile("idn"), json({ CN: "idn", hosts: ["bücher.example", "127.0.0.1"] }));
  try {
    const r = runScript("tls", ["build", "idn", "--config-dir", tree.config, "--certs-dir", tree.certs]);
    expect(r.status).toBe(0);
    const text = sh("openssl", ["x509", "-in", join(tree.certs, "idn.pem"), "-noout", "-ext", "subjectAltName"]);
    expect(text).toContain("DNS:xn--bcher-kva.example");
    expect(text).toContain("IP Address:127.0.0.1");
  } finally {
    rmSync(userFile("idn"));
  }
});
