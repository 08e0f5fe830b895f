// Reading config files from disk into validated values; every problem of a file is reported at once.

import { UserError, Problem } from "../common/errors";
import { parseJsonObject, JsonObject } from "./gojson";
import { CertRequest, parseRequest, RequestOptions } from "./request";
import { parseCaConfig, SigningConfig } from "./profile";
import { readFileSync } from "node:fs";

/** Why a file could not be read, in words: "does not exist", "is a directory", ... */
export function readFailure(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  return code === "ENOENT" ? "does not exist" : code === "EACCES" ? "is not readable (permission denied)" : code === "EISDIR" ? "is a directory" : `cannot be read (${code})`;
}

export function readBytes(file: string): { bytes?: Buffer; problem?: Problem } {
  try {
    return { bytes: readFileSync(file) };
  } catch (e) {
    const why = readFailure(e);
    return { problem: { file, path: "", message: why === "is a directory" ? "is a directory, not a JSON file" : why } };
  }
}

export function readJsonObjectFile(file: string): { value?: JsonObject; problems: Problem[] } {
  const r = readBytes(file);
  if (r.problem) return { problems: [r.problem] };
  const j = parseJsonObject(r.bytes!, file);
  return j.problem ? { problems: [j.problem] } : { value: j.value, problems: [] };
}

export function loadRequest(file: string, opts: RequestOptions = {}): CertRequest {
  const j = readJsonObjectFile(file);
  if (!j.value) throw UserError.fromProblems(j.problems);
  const r = parseRequest(j.value, file, opts);
  if (!r.value) throw UserError.fromProblems(r.problems);
  return r.value;
}

export function loadCaConfig(file: string): SigningConfig {
  const j = readJsonObjectFile(file);
  if (!j.value) throw UserError.fromProblems(j.problems);
  const r = parseCaConfig(j.value, file);
  if (!r.value) throw UserError.fromProblems(r.problems);
  return r.value;
}
