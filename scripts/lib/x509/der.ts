// A minimal DER writer and reader for TBSCertificate, CSR and key structures. Why not @peculiar/x509's generator:
// it makes the same bytes for the same inputs (tests/oracle-peculiar.test.ts shows it, once it is handed multi-valued
// RDNs in DER order, which it does not sort), but it is slower where this tool spends its time. Measured with
// tests/measure-x509-writer.ts (node 20, 2 shared cores): loading it with reflect-metadata costs 34 ms per process
// as a bundle (61 ms from node_modules) against 9 ms for this writer, and every spawned script (ca, req, tls) pays
// it; issuing a member certificate and its CSR takes 4.2 ms with it against 1.4 ms here (3x, both signing with
// P-384). @peculiar/x509 is used only by the tests (a second oracle).

export type Der = Buffer;

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

function encodeLength(len: number): Buffer {
  if (len < 0x80) return Buffer.from([len]);
  const bytes: number[] = [];
  for (let n = len; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, content: Buffer): Der {
  return Buffer.concat([Buffer.from([tag]), encodeLength(content.length), content]);
}

export const seq = (...items: Der[]): Der => tlv(TAG.SEQUENCE, Buffer.concat(items));

/** A SET OF, its elements sorted by their encodings as DER requires (Go does the same). */
export const setOf = (...items: Der[]): Der => tlv(TAG.SET, Buffer.concat([...items].sort(Buffer.compare)));

/** Context-specific tag: [n] constructed (explicit) or primitive (implicit). */
export const explicit = (n: number, content: Der): Der => tlv(0xa0 | n, content);
export const implicit = (n: number, content: Buffer): Der => tlv(0x80 | n, content);

export const nullValue = (): Der => Buffer.from([TAG.NULL, 0]);
export const bool = (v: boolean): Der => tlv(TAG.BOOLEAN, Buffer.from([v ? 0xff : 0]));
export const octetString = (b: Buffer): Der => tlv(TAG.OCTET_STRING, b);
export const bitString = (b: Buffer, unusedBits = 0): Der => tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([unusedBits]), b]));

/** INTEGER from unsigned big-endian bytes (a leading zero is added when the top bit is set). */
export function integerFromBytes(bytes: Buffer): Der {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  let b = bytes.subarray(i);
  if (b.length === 0) b = Buffer.from([0]);
  if (b[0] & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(TAG.INTEGER, b);
}

export function integer(n: number | bigint): Der {
  let v = BigInt(n);
  if (v < 0n) throw new Error("negative INTEGER not supported");
  const bytes: number[] = [];
  do {
    bytes.unshift(Number(v & 0xffn));
    v >>= 8n;
  } while (v > 0n);
  return integerFromBytes(Buffer.from(bytes));
}

export function oid(dotted: string): Der {
  const parts = dotted.split(".").map((p) => BigInt(p));
  const out: number[] = [Number(parts[0] * 40n + parts[1])];
  for (const part of parts.slice(2)) {
    const chunk: number[] = [];
    let v = part;
    do {
      chunk.unshift(Number(v & 0x7fn));
      v >>= 7n;
    } while (v > 0n);
    for (let i = 0; i < chunk.length - 1; i++) chunk[i] |= 0x80;
    out.push(...chunk);
  }
  return tlv(TAG.OID, Buffer.from(out));
}

const pad2 = (n: number) => String(n).padStart(2, "0");

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. Seconds precision, Zulu. */
export function time(d: Date): Der {
  const y = d.getUTCFullYear();
  const rest = `${pad2(d.getUTCMonth() + 1)}${pad2(d.getUTCDate())}${pad2(d.getUTCHours())}${pad2(d.getUTCMinutes())}${pad2(d.getUTCSeconds())}Z`;
  if (y >= 1950 && y < 2050) return tlv(TAG.UTC_TIME, Buffer.from(pad2(y % 100) + rest, "ascii"));
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(String(y).padStart(4, "0") + rest, "ascii"));
}

// ---- reader ----

export interface Node {
  tag: number;
  /** offset of the tag byte */
  start: number;
  /** offset of the first content byte */
  contentStart: number;
  /** offset after the last content byte */
  end: number;
}

export function readNode(buf: Buffer, offset = 0): Node {
  if (offset + 2 > buf.length) throw new Error("truncated DER");
  const tag = buf[offset];
  let len = buf[offset + 1];
  let pos = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || pos + n > buf.length) throw new Error("bad DER length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[pos + i];
    pos += n;
  }
  if (pos + len > buf.length) throw new Error("truncated DER");
  return { tag, start: offset, contentStart: pos, end: pos + len };
}

export function children(buf: Buffer, node: Node): Node[] {
  const out: Node[] = [];
  for (let p = node.contentStart; p < node.end; ) {
    const c = readNode(buf, p);
    out.push(c);
    p = c.end;
  }
  return out;
}

export const raw = (buf: Buffer, n: Node): Buffer => buf.subarray(n.start, n.end);
export const content = (buf: Buffer, n: Node): Buffer => buf.subarray(n.contentStart, n.end);

export function decodeOid(b: Buffer): string {
  const parts: bigint[] = [];
  let v = 0n;
  for (const byte of b) {
    v = (v << 7n) | BigInt(byte & 0x7f);
    if (!(byte & 0x80)) {
      parts.push(v);
      v = 0n;
    }
  }
  const first = parts.shift() ?? 0n;
  const a = first < 80n ? first / 40n : 2n;
  return [a, first - a * 40n, ...parts].join(".");
}
