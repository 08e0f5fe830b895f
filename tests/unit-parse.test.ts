// Unit tests: CSR JSON and ca-config.json parsing and validation (case tables).
import { parseRequest } from "../scripts/lib/config/request";
import { parseCaConfig, selectProfile, BUILTIN_DEFAULT, missingRoleEkus } from "../scripts/lib/config/profile";
import { parseJsonObject, field } from "../scripts/lib/config/gojson";
import { formatProblem } from "../scripts/lib/common/errors";

const F = "config/req-x.json";
const parse = (obj: unknown, opts = {}) => parseRequest(obj as Record<string, unknown>, F, opts);
const messages = (r: { problems: { file: string; path: string; message: string }[] }) => r.problems.map(formatProblem);

describe("CSR JSON", () => {
  test("defaults: ECDSA P-384, no SANs, empty subject", () => {
    const r = parse({});
    expect(r.problems).toEqual([]);
    expect(r.value).toMatchObject({ cn: "", names: [], hosts: [], key: { algo: "ecdsa", size: 384 } });
  });

  test.each([
    [{ key: { size: 256 } }, { algo: "ecdsa", size: 256 }],
    [{ key: { size: 521 } }, { algo: "ecdsa", size: 521 }],
    [{ key: { algo: "rsa" } }, { algo: "rsa", size: 2048 }],
    [{ key: { algo: "rsa", size: 4096 } }, { algo: "rsa", size: 4096 }],
    [{ KEY: { ALGO: "ecdsa", SIZE: 384 } }, { algo: "ecdsa", size: 384 }],
  ])("key %j → %j", (input, key) => {
    expect(parse(input).value?.key).toEqual(key);
  });

  test.each([
    [{ key: { algo: "dsa" } }, 'config/req-x.json: key.algo: "dsa" is not a supported key algorithm; accepted: "ecdsa", "rsa"'],
    [{ key: { algo: "ECDSA" } }, 'config/req-x.json: key.algo: "ECDSA" is not a supported key algorithm; accepted: "ecdsa", "rsa"'],
    [{ key: { size: 300 } }, "config/req-x.json: key.size: 300 is not an ECDSA curve size (256, 384 or 521)"],
    [{ key: { algo: "rsa", size: 1024 } }, "config/req-x.json: key.size: 1024 is not an allowed RSA key size (2048 to 8192 bits)"],
    [{ key: { algo: "rsa", size: 16384 } }, "config/req-x.json: key.size: 16384 is not an allowed RSA key size (2048 to 8192 bits)"],
    [{ key: { size: "384" } }, 'config/req-x.json: key.size: "384" is not an integer; accepted: 256, 384, 521'],
    [{ key: { size: 384.5 } }, "config/req-x.json: key.size: 384.5 is not an integer; accepted: 256, 384, 521"],
    [{ key: [] }, 'config/req-x.json: key: [] is an array; an object like {"algo": "ecdsa", "size": 384} is expected'],
    [{ CN: 7 }, "config/req-x.json: CN: 7 is a number; a string is expected"],
    [{ CN: "x".repeat(65) }, `config/req-x.json: CN: "${"x".repeat(65)}" is 65 characters; a common name may have at most 64`],
    [{ hosts: "a.example" }, 'config/req-x.json: hosts: "a.example" is a string; an array of host names and IP addresses is expected'],
    [{ hosts: [1] }, "config/req-x.json: hosts[0]: 1 is a number; a host name or IP address string is expected"],
    [{ names: {} }, "config/req-x.json: names: {} is an object; an array of objects with C, ST, L, O, OU is expected"],
    [{ names: [{ O: 5 }] }, "config/req-x.json: names[0].O: 5 is a number; a string is expected"],
    [{ ca: { expiry: "1y" } }, "config/req-x.json: ca: a \"ca\" section is only permitted in the CA's request (ca-csr.json), as in cfssl"],
  ])("%j is refused", (input, message) => {
    const r = parse(input);
    expect(r.value).toBeUndefined();
    expect(messages(r)).toEqual([message]);
  });

  test("every problem is reported at once, each with its path", () => {
    const r = parse({ CN: 1, hosts: ["", "ok.example", "a b"], key: { size: 1 } });
    expect(r.problems.map((p) => p.path)).toEqual(["CN", "hosts[0]", "hosts[2]", "key.size"]);
  });

  test("issue 9 #16: lengths count characters (code points), not UTF-16 code units", () => {
    const emoji = "\u{1F600}";
    expect(emoji.length).toBe(2);
    expect(parse({ CN: emoji.repeat(64), names: [{ O: emoji.repeat(128) }] }).problems).toEqual([]);
    const m = messages(parse({ CN: emoji.repeat(65) }));
    expect(m).toEqual([`config/req-x.json: CN: "${emoji.repeat(65)}" is 65 characters; a common name may have at most 64`]);
    // a long value is cut in the message by characters, never inside a surrogate pair
    const cut = messages(parse({ CN: "a" + emoji.repeat(99) }))[0];
    expect(cut).toBe(`config/req-x.json: CN: "a${emoji.repeat(75)}... is 100 characters; a common name may have at most 64`);
    expect(cut).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/);
    expect(messages(parse({ names: [{ OU: emoji.repeat(129) }] }))[0]).toContain("names[0].OU:");
  });

  test("a user certificate needs a CN", () => {
    expect(messages(parse({}, { requireCn: true }))).toEqual(["config/req-x.json: CN: is missing or empty; a user certificate's CN is the etcd user name"]);
  });

  test("the ca block (initca only): expiry, pathlen, pathlenzero, backdate", () => {
    const r = parse({ CN: "ca", ca: { expiry: "87600h", pathlen: 2, pathlenzero: false, backdate: "1h" } }, { allowCa: true });
    expect(r.value?.ca).toEqual({ expiryMs: 87600 * 3600e3, pathlen: 2, pathlenzero: false, backdateMs: 3600e3 });
  });

  test.each([
    [{ expiry: "-1h" }, 'ca.expiry: "-1h" is not a positive duration; a CA needs a lifetime such as "43800h"'],
    [{ expiry: "0" }, 'ca.expiry: "0" is not a positive duration; a CA needs a lifetime such as "43800h"'],
    [{ expiry: "5y" }, '"5y" is not a Go duration such as "8760h" or "1h30m" (units h, m, s, ms, us, ns; no d or y) (days and years are not Go duration units: use hours, e.g. 8760h for 365 days)'],
    [{ pathlen: -1 }, "ca.pathlen: -1 is not a non-negative integer"],
    [{ pathlenzero: "yes" }, 'ca.pathlenzero: "yes" is not true or false'],
  ])("ca block %j is refused", (ca, message) => {
    const r = parse({ CN: "ca", ca }, { allowCa: true });
    expect(r.value).toBeUndefined();
    expect(messages(r)[0]).toContain(message);
  });

  test("names are collected per attribute; CN and serialnumber kept", () => {
    const r = parse({ CN: "u", serialnumber: "42", names: [{ O: "a", OU: "x" }, { O: "b", C: "US" }] });
    expect(r.value?.names).toEqual([{ O: "a", OU: "x" }, { O: "b", C: "US" }]);
    expect(r.value?.serialNumber).toBe("42");
  });
});

describe("Go-style JSON reading", () => {
  test("keys match case-insensitively and the last duplicate wins", () => {
    const j = parseJsonObject('{"cn": "a", "CN": "b", "Cn": "c"}', "f.json");
    expect(field(j.value!, "CN")).toBe("c");
  });
  test.each([
    ["", "f.json: is empty; a JSON object is expected"],
    ["[1]", "f.json: is an array; a JSON object is expected"],
    ["null", "f.json: is null; a JSON object is expected"],
    ['{"a": 1} x', "f.json: is not valid JSON at line 1, column 10"],
    ['{"a": ', "f.json: is not valid JSON"],
    ["[".repeat(100) + "]".repeat(100), "f.json: is an array; a JSON object is expected"],
    ['{"a":' + "[".repeat(100) + "]".repeat(100) + "}", "f.json: is nested deeper than 64 levels"],
  ])("%j → %s", (text, message) => {
    const j = parseJsonObject(text, "f.json");
    expect(j.value).toBeUndefined();
    expect(j.problems).toHaveLength(1);
    expect(formatProblem(j.problems[0])).toContain(message);
  });
  test("non-UTF-8 bytes are refused", () => {
    const j = parseJsonObject(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), "f.json");
    expect(j.problems.map(formatProblem)).toEqual(["f.json: is not valid UTF-8 text; a JSON object is expected"]);
  });
  test("a UTF-8 byte order mark is tolerated", () => {
    expect(parseJsonObject("\ufeff{\"CN\":\"x\"}", "f.json").value).toEqual({ CN: "x" });
  });
});

describe("ca-config.json", () => {
  const C = "config/ca-config.json";
  test("the default profile and named profiles with usages in order", () => {
    const r = parseCaConfig({ signing: { default: { usages: ["signing", "client auth", "server auth"], expiry: "1h30m" }, profiles: { peer: { usages: ["key encipherment", "server auth"], expiry: "720h" } } } }, C);
    expect(r.problems).toEqual([]);
    expect(r.value!.default).toMatchObject({ keyUsageBits: [0], extKeyUsages: ["1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.1"], expiryMs: 5400e3 });
    expect(r.value!.profiles.peer).toMatchObject({ keyUsageBits: [2], extKeyUsages: ["1.3.6.1.5.5.7.3.1"], expiryMs: 720 * 3600e3 });
  });

  test.each([
    ["signing", [0], []],
    ["digital signature", [0], []],
    ["content commitment", [1], []],
    ["content committment", [1], []],
    ["key encipherment", [2], []],
    ["data encipherment", [3], []],
    ["key agreement", [4], []],
    ["crl sign", [6], []],
    ["encipher only", [7], []],
    ["decipher only", [8], []],
    ["any", [], ["2.5.29.37.0"]],
    ["server auth", [], ["1.3.6.1.5.5.7.3.1"]],
    ["client auth", [], ["1.3.6.1.5.5.7.3.2"]],
    ["code signing", [], ["1.3.6.1.5.5.7.3.3"]],
    ["email protection", [], ["1.3.6.1.5.5.7.3.4"]],
    ["s/mime", [], ["1.3.6.1.5.5.7.3.4"]],
    ["ipsec end system", [], ["1.3.6.1.5.5.7.3.5"]],
    ["ipsec tunnel", [], ["1.3.6.1.5.5.7.3.6"]],
    ["ipsec user", [], ["1.3.6.1.5.5.7.3.7"]],
    ["timestamping", [], ["1.3.6.1.5.5.7.3.8"]],
    ["ocsp signing", [], ["1.3.6.1.5.5.7.3.9"]],
    ["microsoft sgc", [], ["1.3.6.1.4.1.311.10.3.3"]],
    ["netscape sgc", [], ["2.16.840.1.113730.4.1"]],
  ])("usage %s → key usage bits %j, EKU %j", (usage, bits, ekus) => {
    const r = parseCaConfig({ signing: { profiles: { p: { usages: [usage], expiry: "1h" } } } }, C);
    expect(r.value!.profiles.p.keyUsageBits).toEqual(bits);
    expect(r.value!.profiles.p.extKeyUsages).toEqual(ekus);
  });

  test.each([
    [{ signing: { default: { usages: ["signing", "serverauth"], expiry: "1h" } } }, 'signing.default.usages[1]: "serverauth" is not a known usage; accepted: "signing"'],
    [{ signing: { default: { usages: ["signing"] } } }, "signing.default.expiry: is missing; every profile needs an expiry"],
    [{ signing: { default: { usages: ["signing"], expiry: "365d" } } }, 'signing.default.expiry: "365d" is not a Go duration'],
    [{ signing: { default: { usages: ["signing"], expiry: "-8760h" } } }, 'signing.default.expiry: "-8760h" is not a positive duration'],
    [{ signing: { default: { usages: ["signing"], expiry: 8760 } } }, "signing.default.expiry: 8760 is a number"],
    [{ signing: { profiles: { p: { expiry: "1h" } } } }, "signing.profiles.p.usages: is missing; a profile needs at least one usage"],
    [{ signing: { profiles: { p: { usages: [], expiry: "1h" } } } }, "signing.profiles.p.usages: is empty; a profile needs at least one usage"],
    // issue 9 #15: cfssl refuses to sign with a default profile without usages ("no key usage available")
    [{ signing: { default: { expiry: "1h" } } }, 'signing.default.usages: is missing; the default profile needs at least one usage, e.g. ["signing", "key encipherment", "client auth"] (cfssl: "no key usage available")'],
    [{ signing: { default: { usages: [], expiry: "1h" } } }, "signing.default.usages: is empty; the default profile needs at least one usage"],
    [{ signing: { default: { usages: null, expiry: "1h" } } }, "signing.default.usages: is missing; the default profile needs at least one usage"],
    [{ signing: { profiles: { p: { usages: "signing", expiry: "1h" } } } }, 'signing.profiles.p.usages: "signing" is a string; an array of usage strings is expected'],
    [{ signing: [] }, "signing: [] is an array"],
    [{}, "signing: is missing"],
    [{ signing: { default: { usages: ["signing"], expiry: "1h", not_before: "yesterday" } } }, 'signing.default.not_before: "yesterday" is not an RFC 3339 time'],
    [{ signing: { default: { usages: ["signing"], expiry: "1h", ca_constraint: { is_ca: "yes" } } } }, 'signing.default.ca_constraint.is_ca: "yes" is not true or false'],
  ])("%j is refused", (cfg, message) => {
    const r = parseCaConfig(cfg, C);
    expect(r.value).toBeUndefined();
    expect(messages(r).join("\n")).toContain(message);
  });

  test("every profile needs its own expiry (cfssl: empty expiry string)", () => {
    const r = parseCaConfig({ signing: { default: { usages: ["signing"], expiry: "10h" }, profiles: { p: { usages: ["client auth"] } } } }, C);
    expect(messages(r)).toEqual(['config/ca-config.json: signing.profiles.p.expiry: is missing; every profile needs an expiry, a Go duration such as "8760h" or "1h30m" (units h, m, s, ms, us, ns; no d or y)']);
  });

  test("an unknown profile is an error listing the profiles (cfssl falls back silently)", () => {
    const cfg = parseCaConfig({ signing: { default: { usages: ["signing"], expiry: "1h" }, profiles: { peer: { usages: ["server auth"], expiry: "1h" } } } }, C).value!;
    expect(selectProfile(cfg, "peer", C).value?.name).toBe("peer");
    expect(selectProfile(cfg, "nope", C).problems.map(formatProblem)).toEqual(['config/ca-config.json: signing.profiles: has no profile "nope"; available: "default", "peer"']);
  });

  test("issue 9 #12: named profiles inherit the default's issuer_urls, ocsp_url, crl_url unless they set them (an explicit [] means none, as Go's non-nil empty slice)", () => {
    const urls = { ocsp_url: "http://ocsp.example", crl_url: "http://crl.example/crl", issuer_urls: ["http://ca.example/ca.crt"] };
    const cfg = parseCaConfig({ signing: { default: { usages: ["signing"], expiry: "1h", ...urls }, profiles: { a: { usages: ["client auth"], expiry: "1h" }, b: { usages: ["client auth"], expiry: "1h", issuer_urls: null }, none: { usages: ["client auth"], expiry: "1h", issuer_urls: [] }, own: { usages: ["client auth"], expiry: "1h", issuer_urls: ["http://own.example/ca"], ocsp_url: "http://own.example/ocsp" } } } }, C).value!;
    for (const n of ["a", "b"]) expect(cfg.profiles[n]).toMatchObject({ ocspUrl: urls.ocsp_url, crlUrl: urls.crl_url, issuerUrls: urls.issuer_urls });
    expect(cfg.profiles.none).toMatchObject({ ocspUrl: urls.ocsp_url, crlUrl: urls.crl_url, issuerUrls: [] });
    expect(cfg.profiles.own).toMatchObject({ ocspUrl: "http://own.example/ocsp", crlUrl: urls.crl_url, issuerUrls: ["http://own.example/ca"] });
  });

  test('issue 9 #13: -profile default picks a profile named "default" under profiles when there is one, as cfssl does', () => {
    const withIt = parseCaConfig({ signing: { default: { usages: ["signing"], expiry: "1h" }, profiles: { default: { usages: ["client auth"], expiry: "2h" } } } }, C).value!;
    expect(selectProfile(withIt, "default", C).value?.expiryMs).toBe(2 * 3600e3);
    expect(selectProfile(withIt, undefined, C).value?.expiryMs).toBe(3600e3);
    expect(selectProfile(withIt, "", C).value?.expiryMs).toBe(3600e3);
    const without = parseCaConfig({ signing: { default: { usages: ["signing"], expiry: "1h" } } }, C).value!;
    expect(selectProfile(without, "default", C).value?.expiryMs).toBe(3600e3);
  });

  test('"cert sign" is refused on a profile that does not make a CA, accepted with ca_constraint.is_ca', () => {
    expect(messages(parseCaConfig({ signing: { profiles: { p: { usages: ["cert sign"], expiry: "1h" } } } }, C))[0]).toContain('signing.profiles.p.usages: has "cert sign", which only a CA may have');
    expect(parseCaConfig({ signing: { profiles: { p: { usages: ["cert sign"], expiry: "1h", ca_constraint: { is_ca: true } } } } }, C).value!.profiles.p.keyUsageBits).toEqual([5]);
  });

  test.each(["toString", "constructor", "__proto__", "hasOwnProperty"])("usage %j (a name every JS object has) is unknown", (u) => {
    expect(messages(parseCaConfig({ signing: { default: { usages: [u], expiry: "1h" } } }, C))[0]).toContain(`signing.default.usages[0]: ${JSON.stringify(u)} is not a known usage`);
  });

  test.each(["toString", "constructor", "__proto__"])("profile %j is not found unless defined, and works when defined", (name) => {
    const cfg = parseCaConfig({ signing: { default: { usages: ["signing"], expiry: "1h" } } }, C).value!;
    expect(selectProfile(cfg, name, C).problems.map(formatProblem)).toEqual([`config/ca-config.json: signing.profiles: has no profile ${JSON.stringify(name)}; available: "default"`]);
    const withIt = parseCaConfig(JSON.parse(`{"signing": {"default": {"usages": ["signing"], "expiry": "1h"}, "profiles": {"${name}": {"usages": ["client auth"], "expiry": "2h"}}}}`), C).value!;
    expect(selectProfile(withIt, name, C).value?.expiryMs).toBe(2 * 3600e3);
  });

  test("the EKUs each role needs: none or any allows all", () => {
    expect(missingRoleEkus("member", [])).toEqual([]);
    expect(missingRoleEkus("member", ["2.5.29.37.0"])).toEqual([]);
    expect(missingRoleEkus("member", ["1.3.6.1.5.5.7.3.2"])).toEqual(["1.3.6.1.5.5.7.3.1"]);
    expect(missingRoleEkus("user", ["1.3.6.1.5.5.7.3.1"])).toEqual(["1.3.6.1.5.5.7.3.2"]);
    expect(missingRoleEkus("proxy", ["1.3.6.1.5.5.7.3.2"])).toEqual([]);
  });

  test("cfssl's built-in default", () => {
    expect(BUILTIN_DEFAULT).toMatchObject({ expiryMs: 8760 * 3600e3, keyUsageBits: [0, 2], extKeyUsages: ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"] });
  });
});
