// PEM encoding with 64-character lines (as Go's encoding/pem) and a tolerant PEM block reader.

export function toPem(label: string, der: Buffer | ArrayBuffer | Uint8Array): string {
  const b64 = Buffer.from(der as ArrayBuffer).toString("base64");
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

export interface PemBlock {
  label: string;
  der: Buffer;
}

export function parsePemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const body = m[2];
    if (/^[A-Za-z-]+:/m.test(body)) continue; // encrypted or with headers: not usable here
    out.push({ label: m[1], der: Buffer.from(body.replace(/\s+/g, ""), "base64") });
  }
  return out;
}
