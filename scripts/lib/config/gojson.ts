// JSON reading with the semantics of Go's encoding/json as cfssl uses it: object keys match case-insensitively,
// the last duplicate wins, unknown keys are ignored. Parse errors become Problems that name the file and position.

import { failed, Parsed } from "../common/errors";

export type JsonObject = { [key: string]: unknown };

export const isObject = (v: unknown): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v);

const MAX_DEPTH = 64;

function depth(v: unknown, d = 0): number {
  if (d > MAX_DEPTH) return d;
  if (Array.isArray(v)) return v.reduce((m: number, x) => Math.max(m, depth(x, d + 1)), d + 1);
  if (isObject(v)) return Object.values(v).reduce((m: number, x) => Math.max(m, depth(x, d + 1)), d + 1);
  return d;
}

function lineCol(text: string, pos: number): string {
  const before = text.slice(0, pos);
  const line = before.split("\n").length;
  const col = pos - before.lastIndexOf("\n");
  return `line ${line}, column ${col}`;
}

/** Parses bytes as a JSON object. Returns the object, or a problem describing why it is not one. */
export function parseJsonObject(bytes: Buffer | string, file: string): Parsed<JsonObject> {
  let text: string;
  if (typeof bytes === "string") text = bytes;
  else {
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      return failed({ file, path: "", message: "is not valid UTF-8 text; a JSON object is expected" });
    }
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.trim() === "") return failed({ file, path: "", message: "is empty; a JSON object is expected" });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const m = /position (\d+)/.exec(msg);
    const where = m ? ` at ${lineCol(text, Number(m[1]))}` : "";
    const reason = msg.replace(/ in JSON at position \d+.*$/s, "").replace(/^Unexpected token .*?(, ".*")? is not valid JSON$/s, "unexpected character");
    return failed({ file, path: "", message: `is not valid JSON${where}: ${reason}` });
  }
  if (!isObject(value)) {
    const kind = Array.isArray(value) ? "an array" : value === null ? "null" : `a ${typeof value}`;
    return failed({ file, path: "", message: `is ${kind}; a JSON object is expected` });
  }
  if (depth(value) > MAX_DEPTH) return failed({ file, path: "", message: `is nested deeper than ${MAX_DEPTH} levels` });
  return { value, problems: [] };
}

/** Looks a field up the way Go does: exact or case-insensitive key match, the last matching key winning. */
export function field(obj: JsonObject, name: string): unknown {
  const lower = name.toLowerCase();
  let found: unknown = undefined;
  for (const k of Object.keys(obj)) if (k.toLowerCase() === lower) found = obj[k];
  return found;
}

/** The actual key spelling used in the file for a field (for messages), or the canonical name. */
export function fieldKey(obj: JsonObject, name: string): string {
  const lower = name.toLowerCase();
  let key = name;
  for (const k of Object.keys(obj)) if (k.toLowerCase() === lower) key = k;
  return key;
}

export const joinPath = (base: string, key: string | number): string =>
  typeof key === "number" ? `${base}[${key}]` : base === "" ? key : `${base}.${key}`;

export function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return "an object";
  return `a ${typeof v}`;
}
