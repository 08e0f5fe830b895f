// The target graph: which config file feeds which certificate. The CA comes from ca-csr.json; the intermediate CA
// (opt-in) from intermediate-csr.json; members and proxies from req-csr.json (proxies with an empty CN, as etcd's
// gRPC proxy demands); one user per req-<user>.json.
// The member layout (MEMBER_CERTS, or "member_certs" in etcd-cluster.json): "combined" gives each member one
// certificate with server and client auth (role "member"); "split" gives etcdN (role "member-server", server auth only)
// and etcdN-client (role "member-client", client auth only), both from req-csr.json, for etcd >= 3.5.

import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Listed, Problem } from "../common/errors";
import { errnoCode, readFailure } from "../common/fs-errors";
import { readJsonObjectFile } from "../config/config-files";
import { ClusterSettings, clusterFile, MemberCerts, NO_SETTINGS, parseClusterSettings } from "../config/etcd-cluster";

export type Role = "ca" | "intermediate" | "member" | "member-server" | "member-client" | "proxy" | "user";

/** The roles of the tree's CAs (the root, and the intermediate that signs the leaves in intermediate mode). */
export const isCaRole = (r: Role): r is "ca" | "intermediate" => r === "ca" || r === "intermediate";

export interface TreeOptions {
  configDir: string;
  certsDir: string;
  members: string[];
  proxies: string[];
  /** the member layout asked for on the command line (MEMBER_CERTS); undefined: etcd-cluster.json's, else "combined" */
  memberCerts?: MemberCerts;
  /**
   * CA_KEY: the key of the CA that signs the leaves in a PKCS#11 token (an RFC 7512 URI): the root's in root mode, the
   * intermediate's in intermediate mode; unset: the recorded one, else the key file (tree/ca-key.ts)
   */
  caKey?: string;
  /** ROOT_KEY: the root's key in a PKCS#11 token, in intermediate mode (in root mode only as CA_KEY's twin) */
  rootKey?: string;
  /** NEXT_CA_KEY: the new CA's key in a PKCS#11 token, for make ca-rotate-start */
  nextCaKey?: string;
  /** PKCS11_MODULE: the token's module, when CA_KEY's URI has no module-path */
  pkcs11Module?: string;
  /** set by make ca-rotate-reissue only: sign with the rotation's new CA (tree/signing-ca.ts rotationState) */
  rotationSigner?: "new";
}

export interface Target {
  name: string;
  role: Role;
  configFile: string;
}

/** The name of a member's client certificate in the split layout. */
export const memberClientName = (member: string) => `${member}-client`;

/** etcd-cluster.json, read and parsed (the defaults when it does not exist). */
export function readClusterSettings(configDir: string): { settings: ClusterSettings; problems: Problem[]; warnings: string[] } {
  const file = clusterFile(configDir);
  if (!existsSync(file)) return { settings: NO_SETTINGS, problems: [], warnings: [] };
  const j = readJsonObjectFile(file);
  if (!j.value) return { settings: NO_SETTINGS, problems: j.problems, warnings: [] };
  const r = parseClusterSettings(j.value, file);
  return { settings: r.value ?? NO_SETTINGS, problems: r.problems, warnings: r.warnings };
}

/** The member layout in force: MEMBER_CERTS, else etcd-cluster.json's "member_certs", else "combined". */
export const memberLayout = (o: TreeOptions, s: ClusterSettings): MemberCerts => o.memberCerts ?? s.memberCerts ?? "combined";

export const DEFAULT_MEMBERS = ["etcd1", "etcd2", "etcd3"];
export const DEFAULT_PROXIES = ["proxy1"];
/** Names whose files the tree already uses for other things. */
export const RESERVED_NAMES = ["ca", "intermediate", "crl", "csr", "etcd-rbac"];

const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

export function nameProblem(name: string): string | undefined {
  if (!SAFE_NAME.test(name)) return `${JSON.stringify(name)} is not a safe name; use letters, digits, ".", "_" and "-", not starting with "." or "-"`;
  if (name.length > 64) return `${JSON.stringify(name)} is longer than 64 characters`;
  // NAME-key.pem is the key file of NAME: a certificate named "ca-key" would write its certificate over certs/ca-key.pem
  if (/-key$/i.test(name)) return `${JSON.stringify(name)} ends in "-key", which names another certificate's key file (certs/${name.slice(0, -4)}-key.pem); choose another name`;
  return undefined;
}

export const caFiles = (o: TreeOptions) => ({ config: join(o.configDir, "ca-csr.json"), signing: join(o.configDir, "ca-config.json") });
/** The intermediate CA's config: its presence turns intermediate mode on. */
export const intermediateConfig = (o: TreeOptions) => join(o.configDir, "intermediate-csr.json");
/** Intermediate mode is on when the intermediate's config exists. */
export const intermediateMode = (o: TreeOptions): boolean => existsSync(intermediateConfig(o));
export const INTERMEDIATE_NAME = "intermediate";
export const memberConfig = (o: TreeOptions) => join(o.configDir, "req-csr.json");

/** What a config directory defines: its targets, with the cluster settings and member layout they were made under. */
export interface TargetSet {
  targets: Target[];
  warnings: string[];
  layout: MemberCerts;
  settings: ClusterSettings;
}

/** Lists the targets a config directory defines, with problems for unsafe or clashing names. */
export function discoverTargets(o: TreeOptions): Listed<TargetSet> {
  const cluster = readClusterSettings(o.configDir);
  const problems: Problem[] = [...cluster.problems];
  const layout = memberLayout(o, cluster.settings);
  const targets: Target[] = [{ name: "ca", role: "ca", configFile: caFiles(o).config }];
  if (intermediateMode(o)) targets.push({ name: INTERMEDIATE_NAME, role: "intermediate", configFile: intermediateConfig(o) });
  const builtin = new Set<string>(RESERVED_NAMES);
  const add = (name: string, role: Role, variable: string, what = "") => {
    const p = nameProblem(name);
    if (p) problems.push({ file: variable, path: "", message: `${what}${p}` });
    else if (builtin.has(name)) problems.push({ file: variable, path: "", message: `${what}${JSON.stringify(name)} is already used by another certificate; choose another name` });
    else {
      builtin.add(name);
      targets.push({ name, role, configFile: memberConfig(o) });
    }
  };
  for (const name of o.members) {
    add(name, layout === "split" ? "member-server" : "member", "ETCD_MEMBERS");
    if (layout === "split" && !nameProblem(name)) add(memberClientName(name), "member-client", "ETCD_MEMBERS", `the client certificate of ${JSON.stringify(name)} (MEMBER_CERTS=split): `);
  }
  for (const name of o.proxies) add(name, "proxy", "PROXIES");
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
  return { value: { targets, warnings: cluster.warnings, layout, settings: cluster.settings }, problems };
}
