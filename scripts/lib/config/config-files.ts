// Reading config files from disk into validated values; every problem of a file is reported at once.

import { failed, Parsed, UserError } from "../common/errors";
import { parseJsonObject, JsonObject } from "./gojson";
import { CertRequest, parseRequest, RequestOptions } from "./request";
import { parseCaConfig, SigningConfig } from "./profile";
import { readFileSync } from "node:fs";
import { readFailure } from "../common/fs-errors";


export function readBytes(file: string): Parsed<Buffer> {
  try {
    return { value: readFileSync(file), problems: [] };
  } catch (e) {
    const why = readFailure(e);
    return failed({ file, path: "", message: why === "is a directory" ? "is a directory, not a JSON file" : why });
  }
}

export function readJsonObjectFile(file: string): Parsed<JsonObject> {
  const r = readBytes(file);
  return r.value ? parseJsonObject(r.value, file) : { problems: r.problems };
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
