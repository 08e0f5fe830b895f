// Classifies the "hosts" of a CSR the way cfssl does (IP, then email, then URI, then DNS name) and, unlike cfssl,
// validates them: cfssl turns "", "x y" or "-bad-" into DNS SANs and panics on non-ASCII names.

import { isIPv4, isIPv6 } from "node:net";
import { domainToASCII } from "node:url";

export interface SanSet {
  dns: string[];
  emails: string[];
  ips: Buffer[];
  uris: string[];
}

export type HostResult = { kind: "ip"; bytes: Buffer } | { kind: "email"; value: string } | { kind: "uri"; value: string } | { kind: "dns"; value: string } | { kind: "error"; message: string };

export function ipv4Bytes(s: string): Buffer {
  return Buffer.from(s.split(".").map(Number));
}

export function ipv6Bytes(s: string): Buffer {
  let text = s;
  const tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    tail.push(...ipv4Bytes(v4[1]));
    text = text.slice(0, -v4[1].length) + "0:0";
  }
  const [head, rest] = text.includes("::") ? text.split("::") : [text, undefined];
  const words = (x: string) => (x === "" ? [] : x.split(":").map((w) => parseInt(w, 16)));
  const h = words(head);
  const r = rest === undefined ? [] : words(rest);
  const all = rest === undefined ? h : [...h, ...new Array(8 - h.length - r.length).fill(0), ...r];
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  if (tail.length) Buffer.from(tail).copy(out, 12);
  return out;
}

/** Parses an IP literal as Go's net.ParseIP does (no zones, no brackets, no leading zeros in IPv4). */
export function parseIp(s: string): Buffer | undefined {
  if (isIPv4(s)) return ipv4Bytes(s);
  // every IPv6 address has a ':' and no DNS name does: a run whose hosts are names and IPv4 addresses never asks
  // isIPv6, whose first call builds Node's IPv6 pattern (~3.5 ms, most of a small plan's own work)
  if (s.includes(":") && isIPv6(s) && !s.includes("%")) {
    const b = ipv6Bytes(s);
    // IPv4-mapped addresses are stored as 4 bytes, like Go's To4().
    if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return b.subarray(12);
    return b;
  }
  return undefined;
}

export function formatIp(b: Buffer | Uint8Array): string {
  const x = Buffer.from(b);
  if (x.length === 4) return [...x].join(".");
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(x.readUInt16BE(i).toString(16));
  // compress the longest run of zero words
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== "0") { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return words.join(":");
  return `${words.slice(0, best).join(":")}::${words.slice(best + bestLen).join(":")}`;
}

const EMAIL = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+$/;

function parseEmail(s: string): string | undefined {
  const angle = /^[^<>@]*<([^<>]+)>$/.exec(s.trim());
  const addr = angle ? angle[1] : s;
  if (!EMAIL.test(addr)) return undefined;
  const [local, domain] = addr.split("@");
  if (local.startsWith(".") || local.endsWith(".") || local.includes("..")) return undefined;
  if (dnsNameError(domain) !== undefined) return undefined;
  return addr;
}

const LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** Why a DNS name is not a valid SAN dNSName (RFC 1034 preferred syntax, an optional leading "*."), or undefined. */
export function dnsNameError(name: string): string | undefined {
  if (name === "") return "is empty";
  if (name.length > 253) return "is longer than 253 characters";
  const labels = name.split(".");
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (i === 0 && l === "*" && labels.length > 1) continue;
    if (l === "") return "has an empty label";
    if (!LABEL.test(l)) return `has an invalid label ${JSON.stringify(l)}`;
  }
  return undefined;
}

const ACCEPTED = "an IP address, an email address, a URI, or a DNS name of letters, digits and hyphens";

/** Classifies one host string. Non-ASCII DNS names are converted to punycode (IDNA); anything invalid is an error. */
export function classifyHost(host: string): HostResult {
  const ip = parseIp(host);
  if (ip) return { kind: "ip", bytes: ip };
  if (host.includes("@")) {
    const email = parseEmail(host);
    if (email) return { kind: "email", value: email };
    return { kind: "error", message: `${JSON.stringify(host)} is not a valid email address; expected ${ACCEPTED}` };
  }
  // an IPv6 literal with a zone or a "::" is never a URI, even though "fe80:" looks like a scheme
  if (/^[0-9a-fA-F:.]*:[0-9a-fA-F:.]*%/.test(host) || /^[0-9a-fA-F:.]*::[0-9a-fA-F:.]*$/.test(host))
    return { kind: "error", message: `${JSON.stringify(host)} is not a valid IP address; expected ${ACCEPTED}` };
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(host) && !/^\[/.test(host)) {
    try {
      const u = new URL(host);
      if (/\s/.test(host)) throw new Error("space");
      if (u.hostname === "" && u.protocol !== "urn:" && !host.includes(":/")) throw new Error("no host");
      return { kind: "uri", value: host };
    } catch {
      return { kind: "error", message: `${JSON.stringify(host)} is not a valid URI; expected ${ACCEPTED}` };
    }
  }
  let name = host;
  if (/[^\x00-\x7f]/.test(name)) {
    const ascii = domainToASCII(name);
    if (ascii === "") return { kind: "error", message: `${JSON.stringify(host)} is not a valid internationalised domain name; expected ${ACCEPTED}` };
    name = ascii;
  }
  if (/^\d+(\.\d+)*$/.test(name) || /^\[.*\]$/.test(name) || /^[0-9a-fA-F:]+(%.*)?$/.test(name) && name.includes(":")) {
    return { kind: "error", message: `${JSON.stringify(host)} is not a valid IP address; expected ${ACCEPTED}` };
  }
  const err = dnsNameError(name);
  if (err) return { kind: "error", message: `${JSON.stringify(host)} ${err}; expected ${ACCEPTED}` };
  return { kind: "dns", value: name };
}
