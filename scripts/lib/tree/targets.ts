// The target graph: which config file feeds which certificate. The CA comes from ca-csr.json; members and proxies
// from req-csr.json (proxies with an empty CN, as etcd's gRPC proxy demands); one user per req-<user>.json.

import { readdirSync } from "node:fs";
import { join } from "node:path";
import { Problem } from "../common/errors";
import { errnoCode, readFailure } from "../common/fs-errors";

export type Role = "ca" | "member" | "proxy" | "user";

export interface TreeOptions {
  configDir: string;
  certsDir: string;
  members: string[];
  proxies: string[];
  /** CA_KEY: the CA key in a PKCS#11 token (an RFC 7512 URI); unset: the recorded one, else certs/ca-key.pem (tree/ca-key.ts) */
  caKey?: string;
  /** PKCS11_MODULE: the token's module, when CA_KEY's URI has no module-path */
  pkcs11Module?: string;
}

export interface Target {
  name: string;
  role: Role;
  configFile: string;
}

export const DEFAULT_MEMBERS = ["etcd1", "etcd2", "etcd3"];
export const DEFAULT_PROXIES = ["proxy1"];
/** Names whose files the tree already uses for other things. */
export const RESERVED_NAMES = ["ca", "crl", "csr", "etcd-rbac"];

const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

export function nameProblem(name: string): string | undefined {
  if (!SAFE_NAME.test(name)) return `${JSON.stringify(name)} is not a safe name; use letters, digits, ".", "_" and "-", not starting with "." or "-"`;
  if (name.length > 64) return `${JSON.stringify(name)} is longer than 64 characters`;
  return undefined;
}

export const caFiles = (o: TreeOptions) => ({ config: join(o.configDir, "ca-csr.json"), signing: join(o.configDir, "ca-config.json") });
export const memberConfig = (o: TreeOptions) => join(o.configDir, "req-csr.json");

/** Lists the targets a config directory defines, with problems for unsafe or clashing names. */
export function discoverTargets(o: TreeOptions): { targets: Target[]; problems: Problem[] } {
  const problems: Problem[] = [];
  const targets: Target[] = [{ name: "ca", role: "ca", configFile: caFiles(o).config }];
  const builtin = new Set<string>(RESERVED_NAMES);
  for (const [role, list, variable] of [["member", o.members, "ETCD_MEMBERS"], ["proxy", o.proxies, "PROXIES"]] as const) {
    for (const name of list) {
      const p = nameProblem(name);
      if (p) problems.push({ file: variable, path: "", message: p });
      else if (builtin.has(name)) problems.push({ file: variable, path: "", message: `${JSON.stringify(name)} is already used by another certificate; choose another name` });
      else {
        builtin.add(name);
        targets.push({ name, role, configFile: memberConfig(o) });
      }
    }
  }
  let files: string[] = [];
  try {
    files = readdirSync(o.configDir).sort();
  } catch (e) {
    problems.push({ file: o.configDir, path: "", message: errnoCode(e) === "ENOENT" ? `${readFailure(e)}; expected the config directory` : readFailure(e) });
  }
  for (const f of files) {
    const m = /^req-(.*)\.json$/s.exec(f);
    if (!m || f === "req-csr.json") continue;
    const name = m[1];
    const file = join(o.configDir, f);
    const p = nameProblem(name);
    if (p) problems.push({ file, path: "", message: `user name ${p}` });
    else if (builtin.has(name)) problems.push({ file, path: "", message: `user name ${JSON.stringify(name)} clashes with a built-in certificate (${[...builtin].join(", ")}); rename the file` });
    else targets.push({ name, role: "user", configFile: file });
  }
  return { targets, problems };
}
