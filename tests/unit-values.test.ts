// Unit tests: Go durations, hosts, subject encoding, DER pieces.
import { parseGoDuration } from "../scripts/lib/config/duration";
import { classifyHost, formatIp, parseIp } from "../scripts/lib/config/hosts";
import { encodeSubject, directoryString } from "../scripts/lib/x509/subject";
import { time, integer, oid, decodeOid, readNode, content } from "../scripts/lib/x509/der";
import { keyUsageExtension, roundToMinute, newSerial, defaultDeps, issueCa } from "../scripts/lib/x509/issue";
import { canonicalSerialHex, parseCertPem } from "../scripts/lib/x509/certinfo";
import { parseRequest } from "../scripts/lib/config/request";

describe("Go durations", () => {
  test.each([
    ["8760h", 8760 * 3600e3],
    ["1h30m", 5400e3],
    ["90s", 90e3],
    ["1.5h", 5400e3],
    ["300ms", 300],
    ["1000us", 1],
    ["1000µs", 1],
    ["1000000ns", 1],
    ["-1h", -3600e3],
    ["+2m", 120e3],
    ["0", 0],
  ])("%s = %d ms", (s, ms) => {
    expect(parseGoDuration(s).ms).toBeCloseTo(ms, 6);
  });
  test.each(["", "h", "1", "1d", "1y", "1 h", "1H", "h1", "1h 30m", "3000000h"])("%j is refused", (s) => {
    expect(parseGoDuration(s).error).toBeDefined();
  });
});

describe("hosts", () => {
  test.each([
    ["127.0.0.1", "ip", "127.0.0.1"],
    ["10.0.0.254", "ip", "10.0.0.254"],
    ["::1", "ip", "::1"],
    ["fd00::a:1", "ip", "fd00::a:1"],
    ["::ffff:10.1.2.3", "ip", "10.1.2.3"],
    ["bob@example.com", "email", "bob@example.com"],
    ["Bob <bob@example.com>", "email", "bob@example.com"],
    ["spiffe://cluster/etcd", "uri", "spiffe://cluster/etcd"],
    ["localhost", "dns", "localhost"],
    ["etcd-1.example.com", "dns", "etcd-1.example.com"],
    ["*.etcd.example.com", "dns", "*.etcd.example.com"],
    ["bücher.example", "dns", "xn--bcher-kva.example"],
  ])("%s is %s %s", (host, kind, value) => {
    const r = classifyHost(host);
    expect(r.kind).toBe(kind);
    if (r.kind === "ip") expect(formatIp(r.bytes)).toBe(value);
    else if (r.kind !== "error") expect(r.value).toBe(value);
  });
  test.each(["", " ", "x y", "-bad-", "bad-.example", "a..b", "1.2.3.256", "01.2.3.4", "[::1]", "fe80::1%eth0", "a_b.example", "x".repeat(64) + ".example", "bob@", "@x", "exa mple@x.com"])("%j is refused", (host) => {
    expect(classifyHost(host).kind).toBe("error");
  });
  test("IPv4 and IPv4-mapped addresses are 4 bytes, IPv6 16", () => {
    expect(parseIp("1.2.3.4")).toEqual(Buffer.from([1, 2, 3, 4]));
    expect(parseIp("::ffff:1.2.3.4")).toEqual(Buffer.from([1, 2, 3, 4]));
    expect(parseIp("2001:db8::1")!.length).toBe(16);
    expect(formatIp(parseIp("2001:db8:0:0:1:0:0:1")!)).toBe("2001:db8::1:0:0:1");
  });
});

describe("subject encoding (Go pkix.Name order and string types)", () => {
  // Each RDN as [oid, tag, value] lists, decoded independently of the encoder.
  function rdns(der: Buffer): [string, number, string][][] {
    const out: [string, number, string][][] = [];
    const top = readNode(der);
    for (let p = top.contentStart; p < top.end; ) {
      const set = readNode(der, p);
      const rdn: [string, number, string][] = [];
      for (let q = set.contentStart; q < set.end; ) {
        const atv = readNode(der, q);
        const t = readNode(der, atv.contentStart);
        const v = readNode(der, t.end);
        rdn.push([decodeOid(content(der, t)), v.tag, content(der, v).toString("utf8")]);
        q = atv.end;
      }
      out.push(rdn);
      p = set.end;
    }
    return out;
  }
  test("order C, ST, L, O, OU, CN, serialNumber whatever the JSON order; multi-valued RDNs sorted", () => {
    const der = encodeSubject({ cn: "etcd", serialNumber: "7", names: [{ OU: "b", O: "org", L: "here", ST: "state", C: "US" }, { OU: "a" }] });
    expect(rdns(der)).toEqual([
      [["2.5.4.6", 0x13, "US"]],
      [["2.5.4.8", 0x13, "state"]],
      [["2.5.4.7", 0x13, "here"]],
      [["2.5.4.10", 0x13, "org"]],
      [["2.5.4.11", 0x13, "a"], ["2.5.4.11", 0x13, "b"]],
      [["2.5.4.3", 0x13, "etcd"]],
      [["2.5.4.5", 0x13, "7"]],
    ]);
  });
  test.each([
    ["plain 'text' (ok) +,-./:=?", 0x13],
    ["with * star", 0x0c],
    ["with & amp", 0x0c],
    ["under_score", 0x0c],
    ["Ünïcode", 0x0c],
    ["mail@x", 0x0c],
  ])("%j is encoded with tag %i", (s, tag) => {
    expect(directoryString(s)[0]).toBe(tag);
  });
  test("an empty subject is an empty SEQUENCE", () => {
    expect(encodeSubject({ cn: "", names: [], serialNumber: "" })).toEqual(Buffer.from([0x30, 0]));
  });
});

describe("DER pieces", () => {
  test("UTCTime through 2049, GeneralizedTime from 2050", () => {
    expect(time(new Date("2049-12-31T23:59:59Z")).toString("latin1")).toBe("\x17\x0d491231235959Z");
    expect(time(new Date("2050-01-01T00:00:00Z")).toString("latin1")).toBe("\x18\x0f20500101000000Z");
  });
  test("INTEGER is minimal and positive", () => {
    expect(integer(0)).toEqual(Buffer.from([2, 1, 0]));
    expect(integer(128)).toEqual(Buffer.from([2, 2, 0, 128]));
    expect(integer(256)).toEqual(Buffer.from([2, 2, 1, 0]));
  });
  test("OIDs round-trip", () => {
    for (const o of ["1.2.840.10045.4.3.3", "2.5.29.37.0", "1.3.6.1.4.1.311.10.3.3", "2.16.840.1.113730.4.1"]) {
      const d = oid(o);
      expect(decodeOid(content(d, readNode(d)))).toBe(o);
    }
  });
  test("key usage bits as Go marshals them (trailing zero bits unused)", () => {
    // digitalSignature + keyEncipherment = 1010 0000, 5 unused bits
    expect(keyUsageExtension([0, 2])!.subarray(-4)).toEqual(Buffer.from([0x03, 0x02, 0x05, 0xa0]));
    // keyCertSign + cRLSign = 0000 0110, 1 unused bit
    expect(keyUsageExtension([5, 6])!.subarray(-4)).toEqual(Buffer.from([0x03, 0x02, 0x01, 0x06]));
    // decipherOnly needs a second byte
    expect(keyUsageExtension([0, 8])!.subarray(-5)).toEqual(Buffer.from([0x03, 0x03, 0x07, 0x80, 0x80]));
  });
  test("Go's Round(time.Minute)", () => {
    expect(roundToMinute(new Date("2026-01-01T10:00:29.999Z")).toISOString()).toBe("2026-01-01T10:00:00.000Z");
    expect(roundToMinute(new Date("2026-01-01T10:00:30.000Z")).toISOString()).toBe("2026-01-01T10:01:00.000Z");
  });
  test("a serial has one written form: no leading zero bytes, lower case, as the certificate's DER holds it", () => {
    expect(["00", "0000", "01", "0001", "00000a", "000080ff", "7F", "00AB"].map(canonicalSerialHex)).toEqual(["00", "00", "01", "01", "0a", "80ff", "7f", "ab"]);
  });
  test("an issued serial whose drawn bytes start with a zero byte is written as its certificate holds it", async () => {
    // drawn 0x80 0x80 ...: the top bit cleared gives 00 80 ..., which DER writes as 00 80 ... (sign byte) = value 80 ...
    for (const first of [0x80, 0x00]) {
      const deps = { ...defaultDeps(), randomSerial: () => Buffer.from([first, first === 0 ? 0x12 : 0x80, ...Buffer.alloc(18, 0x34)]) };
      const ca = await issueCa(parseRequest({ CN: "serial CA" }, "ca.json", { allowCa: true }).value!, deps);
      const cert = parseCertPem(ca.certPem, "ca.pem");
      expect({ first, issued: ca.serialHex }).toEqual({ first, issued: cert.serialHex });
      expect(cert.serialHex.startsWith("00")).toBe(false);
    }
  });
  test("serials are positive and at most 20 octets", () => {
    const deps = { ...defaultDeps(), randomSerial: () => Buffer.alloc(20, 0xff) };
    const s = newSerial(deps);
    expect(s.length).toBe(20);
    expect(s[0] & 0x80).toBe(0);
  });
});
