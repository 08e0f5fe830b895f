// RFC 7512 PKCS#11 URIs as CA_KEY and -ca-key take them: the RFC's own examples (§3) parse, percent-encoding is
// decoded (id as bytes), what cannot name a signing key is refused in one line, and the canonical form round-trips.
import { formatPkcs11Uri, parsePkcs11Uri, readPin } from "../scripts/lib/x509/pkcs11";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./helpers";

const parse = (s: string) => parsePkcs11Uri(s, "CA_KEY");
const refusal = (s: string): string => {
  try {
    parse(s);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error(`${s} was accepted`);
};

describe("RFC 7512 URIs", () => {
  it("parses the RFC's examples that name a private key", () => {
    // RFC 7512 §3: "pkcs11:object=my-pubkey;type=public" (we refuse type=public, below) and these:
    const a = parse("pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=private;serial=");
    expect(a.path).toMatchObject({ token: "The Software PKCS#11 Softtoken", manufacturer: "Snake Oil, Inc.", model: "1.0", object: "my-certificate", type: "private", serial: "" });
    const b = parse("pkcs11:object=my-sign-key;type=private?module-name=mypkcs11");
    expect(b.query["module-name"]).toBe("mypkcs11");
    const c = parse("pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.;id=%69%95%3E%5C%F4%BD%EC%91;type=private?pin-source=file:/etc/token_pin");
    expect(c.id!.toString("hex")).toBe("69953e5cf4bdec91");
    expect(c.query["pin-source"]).toBe("file:/etc/token_pin");
    const d = parse("pkcs11:slot-description=Sun%20Metaslot;object=x;slot-id=2");
    expect(d.slotId).toBe(2n);
    // attribute names are case-insensitive, values are not
    expect(parse("pkcs11:TOKEN=Etcd;Object=CA").path).toMatchObject({ token: "Etcd", object: "CA" });
  });

  it("round-trips through the canonical form", () => {
    for (const s of ["pkcs11:token=etcd-ca;object=ca", "pkcs11:token=a%3Bb;object=c%20d;id=%01%ff?module-path=/usr/lib/softhsm/libsofthsm2.so", "pkcs11:object=%C3%A9t%C3%A9;slot-id=42"]) {
      const u = parse(s);
      const again = parse(formatPkcs11Uri(u));
      expect(again).toEqual(u);
    }
    expect(formatPkcs11Uri(parse("pkcs11:object=ca;token=etcd-ca?module-path=/m.so"), { query: false })).toBe("pkcs11:token=etcd-ca;object=ca");
  });

  it("refuses, in one line, what cannot name a signing key", () => {
    const cases: [string, RegExp][] = [
      ["/etc/ca-key.pem", /is not a PKCS#11 URI/],
      ["pkcs11:token=etcd-ca;objekt=ca", /unknown attribute "objekt"; accepted: token, /],
      ["pkcs11:token=etcd-ca;object=ca?x-vendor=1", /unknown attribute "x-vendor"/],
      ["pkcs11:token=a;token=b;object=ca", /"token" is given twice/],
      ["pkcs11:token=etcd-ca;object=ca;type=public", /type: "public" cannot sign/],
      ["pkcs11:token=etcd-ca;object=ca;type=cert", /type: "cert" cannot sign/],
      ["pkcs11:token=etcd-ca", /names no key; give object=/],
      ["pkcs11:token=etcd-ca;object=c%zz", /"%" not followed by two hex digits/],
      ["pkcs11:token=etcd-ca;object=%ff%fe", /not UTF-8/],
      ["pkcs11:token=etcd-ca;id=", /not a percent-encoded byte string/],
      ["pkcs11:token=etcd-ca;object=ca;slot-id=0x1", /slot-id: "0x1" is not a decimal/],
      ["pkcs11:token=etcd-ca;object", /is not an attribute=value pair/],
      ["pkcs11:token=etcd-ca;object=ca;library-version=two", /library-version: "two"/],
    ];
    for (const [uri, pattern] of cases) {
      const m = refusal(uri);
      expect(m).toMatch(pattern);
      expect(m).toMatch(/^CA_KEY: /);
      expect(m).not.toContain("\n");
    }
  });

  it("never repeats a PIN given in the URI", () => {
    const m = refusal("pkcs11:token=etcd-ca;object=ca?pin-value=s3cret-PIN");
    expect(m).toMatch(/a PIN is never written in a URI/);
    expect(m).not.toContain("s3cret-PIN");
  });
});

describe("the PIN", () => {
  const u = parse("pkcs11:token=etcd-ca;object=ca");
  it("comes from PKCS11_PIN_FILE (one trailing newline dropped) before PKCS11_PIN", () => {
    const f = join(tempDir("tls-setup-pin-"), "pin");
    writeFileSync(f, "from-file\n");
    expect(readPin(u, { PKCS11_PIN_FILE: f, PKCS11_PIN: "from-env" })).toBe("from-file");
    expect(readPin(u, { PKCS11_PIN: "from-env" })).toBe("from-env");
    expect(readPin(u, {})).toBeUndefined();
    expect(readPin(parse(`pkcs11:token=etcd-ca;object=ca?pin-source=file:${f}`), { PKCS11_PIN: "from-env" })).toBe("from-file");
    expect(() => readPin(u, { PKCS11_PIN_FILE: `${f}.missing` })).toThrow(/^PKCS11_PIN_FILE: .*pin\.missing: /);
  });
});
