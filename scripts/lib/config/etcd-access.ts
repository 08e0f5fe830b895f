// The "etcd" block of a user's config (req-<user>.json): which key prefixes the etcd user (the certificate's CN) may
// read and write, and which existing roles it gets. cfssl ignores the block, so the file stays cfssl-compatible.
// Parsing is pure and returns every problem with its JSON path.

import { Parsed, Problem, show } from "../common/errors";
import { fieldKey, isObject, joinPath, typeName, field } from "./gojson";

export interface EtcdAccess {
  /** key prefixes the user may read and write */
  readwrite: string[];
  /** key prefixes the user may only read */
  read: string[];
  /** existing roles granted as they are (e.g. "root") */
  roles: string[];
}

export const ACCESS_FIELDS = ["readwrite", "read", "roles"] as const;
/** etcd's built-in role with every permission; it needs no `role add`. */
export const ROOT_ROLE = "root";
/** The user etcd requires before `auth enable`; the rbac script runs as this user. */
export const ROOT_USER = "root";

// etcd accepts almost any user or role name; the rbac script matches names in etcdctl's output, so we keep them plain.
const ETCD_NAME = /^[A-Za-z0-9_][A-Za-z0-9._:@-]*$/;
export const ETCD_NAME_RULE = 'letters, digits, ".", "_", "-", ":" and "@", not starting with ".", "-", ":" or "@"';

export function etcdNameProblem(name: string): string | undefined {
  if (!ETCD_NAME.test(name)) return `${show(name)} is not a usable etcd user or role name; use ${ETCD_NAME_RULE}`;
  if (name.length > 64) return `${show(name)} is longer than 64 characters`;
  return undefined;
}

function stringList(v: unknown, file: string, path: string, what: string, check: (s: string) => string | undefined, problems: Problem[]): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    problems.push({ file, path, message: `${show(v)} is ${typeName(v)}; a list of ${what} is expected, e.g. ["/calico/"]` });
    return [];
  }
  const out: string[] = [];
  v.forEach((x, i) => {
    const p = joinPath(path, i);
    if (typeof x !== "string") problems.push({ file, path: p, message: `${show(x)} is ${typeName(x)}; ${what} are strings` });
    else {
      const why = check(x);
      if (why) problems.push({ file, path: p, message: why });
      else if (!out.includes(x)) out.push(x);
    }
  });
  return out;
}

function prefixProblem(s: string): string | undefined {
  if (s === "") return 'is empty; a key prefix such as "/calico/" is expected (an empty prefix would grant the whole keyspace: use the role "root" for that)';
  if (s.includes("\0")) return `${show(s)} contains a NUL character, which cannot be passed to etcdctl`;
  return undefined;
}

/** Parses the value of a user config's "etcd" field. `base` is its JSON path (the key as spelled in the file). */
export function parseEtcdAccess(v: unknown, file: string, base = "etcd"): Parsed<EtcdAccess> {
  const problems: Problem[] = [];
  if (!isObject(v)) {
    problems.push({ file, path: base, message: `${show(v)} is ${typeName(v)}; an object like {"readwrite": ["/prefix/"], "read": [], "roles": []} is expected` });
    return { problems };
  }
  for (const k of Object.keys(v))
    if (!(ACCESS_FIELDS as readonly string[]).includes(k.toLowerCase()))
      problems.push({ file, path: joinPath(base, k), message: `is not a known field; accepted: ${ACCESS_FIELDS.map((f) => `"${f}"`).join(", ")}` });
  const path = (name: string) => joinPath(base, fieldKey(v, name));
  const readwrite = stringList(field(v, "readwrite"), file, path("readwrite"), "key prefixes", prefixProblem, problems);
  const read = stringList(field(v, "read"), file, path("read"), "key prefixes", prefixProblem, problems);
  const roles = stringList(field(v, "roles"), file, path("roles"), "role names", etcdNameProblem, problems);
  for (const p of read)
    if (readwrite.includes(p))
      problems.push({ file, path: joinPath(path("read"), read.indexOf(p)), message: `${show(p)} is also in "readwrite"; list a prefix once (readwrite includes read)` });
  return problems.length ? { problems } : { value: { readwrite, read, roles }, problems };
}

/**
 * Parses a user's "etcd" block together with its CN (the etcd user name): the CN must be a usable etcd name, and
 * the root user needs no grants (the root role has every permission).
 */
export function parseUserAccess(v: unknown, cn: string, file: string, base = "etcd"): Parsed<EtcdAccess> {
  const r = parseEtcdAccess(v, file, base);
  const problems = [...r.problems];
  const why = cn === "" ? undefined : etcdNameProblem(cn);
  if (why) problems.push({ file, path: "CN", message: `${why} (the CN is the etcd user of this config's "etcd" block)` });
  if (r.value && cn === ROOT_USER && (r.value.readwrite.length || r.value.read.length))
    problems.push({ file, path: base, message: `the root user has every permission through the role "root"; remove "readwrite" and "read"` });
  return problems.length ? { problems } : r;
}

/** One etcd user the rbac script provisions. */
export interface EtcdUser {
  /** the etcd user name: the certificate's CN */
  name: string;
  /** the config it comes from */
  file: string;
  access: EtcdAccess;
}

/** The role made for a user's own grants: named after the user. */
export const ownRole = (u: EtcdUser): string | undefined => (u.access.readwrite.length || u.access.read.length ? u.name : undefined);

/** Checks the users as a whole: one config per etcd user, and a root user to run the script as. */
export function usersProblems(users: EtcdUser[], configDir: string): Problem[] {
  const problems: Problem[] = [];
  const seen = new Map<string, string>();
  for (const u of users) {
    const other = seen.get(u.name);
    if (other) problems.push({ file: u.file, path: "CN", message: `${show(u.name)} is also the CN of ${other}; one etcd user needs one config` });
    else seen.set(u.name, u.file);
  }
  if (!seen.has(ROOT_USER))
    problems.push({ file: configDir, path: "", message: `no req-<user>.json has the CN "root"; etcd needs a root user before auth is enabled, and the rbac script runs as root: add req-root.json with "CN": "root" and {"etcd": {"roles": ["root"]}}` });
  return problems;
}
