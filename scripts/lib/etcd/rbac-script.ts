// The shell script `make rbac` writes (certs/etcd-rbac.sh): etcdctl commands that create the root user, one role per
// user with its prefix grants, the users (no password: etcd takes the user from the client certificate's CN), the
// role grants, and enable auth last. It checks what exists first, so re-running it changes nothing. Pure: the text
// depends only on the users.

import { EtcdUser, ownRole, ROOT_ROLE, ROOT_USER } from "../config/etcd-access";

/** Single-quotes a word for POSIX sh: any bytes but NUL survive. */
export const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** The range end etcdctl computes for `--prefix` (clientv3.GetPrefixRangeEnd): the prefix with its last byte below 0xff incremented. */
export function prefixRangeEnd(prefix: Buffer): Buffer {
  for (let i = prefix.length - 1; i >= 0; i--)
    if (prefix[i] < 0xff) {
      const end = Buffer.from(prefix.subarray(0, i + 1));
      end[i]++;
      return end;
    }
  return Buffer.from([0]);
}

export type PermType = "read" | "readwrite";

/** How `etcdctl role get -w json` prints one prefix grant (Go's encoding/json of etcd's Permission; READ is 0 and omitted). */
export function permissionJson(type: PermType, prefix: string): string {
  const key = Buffer.from(prefix, "utf8");
  const kind = type === "readwrite" ? `"permType":2,` : "";
  return `{${kind}"key":"${key.toString("base64")}","range_end":"${prefixRangeEnd(key).toString("base64")}"}`;
}

const PRELUDE = `set -eu
export ETCDCTL_API=3
changes=0
# etcdctl 3.4's user and role commands wait forever for an unreachable cluster: bound each call where we can
if command -v timeout >/dev/null 2>&1; then etcdctl() { timeout 60 etcdctl "$@"; }; fi
fail() { printf 'etcd-rbac: %s\\n' "$*" >&2; exit 1; }
warn() { printf 'etcd-rbac: warning: %s\\n' "$*" >&2; }
did() { printf 'etcd-rbac: %s\\n' "$*"; changes=$((changes + 1)); }
# has_line LIST WORD: WORD is one of LIST's lines
has_line() { printf '%s\\n' "$1" | grep -Fxq -e "$2"; }
# perms ROLE: the role's grants, one JSON object a line
perms() { etcdctl role get -w json -- "$1" | grep -o '{[^{}]*"key":[^{}]*}' || true; }
# user_roles USER: the user's roles, one a line
user_roles() { etcdctl user get -w json -- "$1" | sed -n 's/.*"roles":\\[\\([^]]*\\)\\].*/\\1/p' | tr ',' '\\n' | tr -d '"'; }

add_role() { has_line "$roles" "$1" || { etcdctl role add -- "$1" >/dev/null; roles=$(printf '%s\\n%s' "$roles" "$1"); did "added role $1"; }; }
# grant ROLE TYPE PREFIX JSON: a prefix grant, unless the role has it already
grant() {
  has_line "$current" "$4" && return 0
  etcdctl role grant-permission --prefix=true -- "$1" "$2" "$3" >/dev/null
  did "granted $2 on prefix $3 to role $1"
}
add_user() { has_line "$users" "$1" || { etcdctl user add --no-password -- "$1" >/dev/null; users=$(printf '%s\\n%s' "$users" "$1"); did "added user $1 (no password: it authenticates with its certificate)"; }; }
# grant_role USER ROLE
grant_role() {
  has_line "$(user_roles "$1")" "$2" && return 0
  etcdctl user grant-role -- "$1" "$2" >/dev/null
  did "granted role $2 to user $1"
}

for v in ETCDCTL_ENDPOINTS ETCDCTL_CACERT ETCDCTL_CERT ETCDCTL_KEY; do
  eval "test -n \\"\\\${$v:-}\\"" || fail "$v is not set; run with the root user's certificate (see the top of this file)"
done
etcdctl member list >/dev/null || fail "cannot reach etcd at $ETCDCTL_ENDPOINTS with $ETCDCTL_CERT"
users=$(etcdctl user list) || fail "cannot list the etcd users; is ETCDCTL_CERT the root user's certificate (CN root), and are the endpoints up?"
roles=$(etcdctl role list) || fail "cannot list the etcd roles"
`;

export interface ScriptOptions {
  /** where the users came from, for the header (e.g. "config/req-*.json") */
  source: string;
}

/** The script for these users (validated by usersProblems: unique names, a root user). */
export function rbacScript(users: EtcdUser[], opts: ScriptOptions): string {
  const q = shellQuote;
  const ordered = [...users].sort((a, b) => (a.name === ROOT_USER ? -1 : b.name === ROOT_USER ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const own = new Set(ordered.map(ownRole).filter((r): r is string => r !== undefined));
  const L: string[] = [];
  L.push("#!/bin/sh");
  L.push(`# etcd users and roles, written by tls-setup (make rbac) from ${opts.source}. Do not edit: change the`);
  L.push("# configs and run `make rbac` again.");
  L.push("#");
  L.push("# Run with etcdctl's environment set to the root user's certificate (make rbac-apply ENDPOINTS=... does this):");
  L.push("#   ETCDCTL_ENDPOINTS=https://10.0.0.1:2379 ETCDCTL_CACERT=certs/ca.pem \\");
  L.push("#   ETCDCTL_CERT=certs/root.pem ETCDCTL_KEY=certs/root-key.pem sh certs/etcd-rbac.sh");
  L.push("# It adds what is missing - the root user first, auth enabled last - and changes nothing on a cluster that is");
  L.push("# already set up. It never removes a user, role or grant; it warns about grants of its roles no config asks for.");
  L.push("#");
  for (const u of ordered) {
    const r = ownRole(u);
    const parts = [r ? `role ${r}: ${u.access.readwrite.length} readwrite, ${u.access.read.length} read` : "", u.access.roles.length ? `roles ${u.access.roles.join(" ")}` : ""].filter(Boolean);
    L.push(`#   ${u.name}${parts.length ? ` (${parts.join("; ")})` : ""}  <- ${u.file.replace(/[\r\n]/g, " ")}`);
  }
  L.push("");
  L.push(PRELUDE);
  // roles asked for by name must exist before anything changes
  const asked = new Map<string, string>();
  for (const u of ordered) for (const r of u.access.roles) if (r !== ROOT_ROLE && !own.has(r) && !asked.has(r)) asked.set(r, u.file);
  if (asked.size) {
    L.push("# roles the configs grant by name: they must exist already");
    for (const [r, file] of asked) L.push(`has_line "$roles" ${q(r)} || fail ${q(`role ${r} (asked for by ${file}) does not exist; create it (etcdctl role add ${r}) and re-run`)}`);
    L.push("");
  }
  L.push("# the root user first: etcd needs it (with the role root) before auth is enabled");
  L.push(`add_user ${ROOT_USER}`);
  L.push(`grant_role ${ROOT_USER} ${ROOT_ROLE}`);
  for (const u of ordered) {
    const r = ownRole(u);
    if (!r) continue;
    const grants: [string, string, string][] = [
      ...u.access.readwrite.map((p): [string, string, string] => ["readwrite", p, permissionJson("readwrite", p)]),
      ...u.access.read.map((p): [string, string, string] => ["read", p, permissionJson("read", p)]),
    ];
    L.push("");
    L.push(`# role ${r} (${u.file.replace(/[\r\n]/g, " ")})`);
    L.push(`add_role ${q(r)}`);
    L.push(`current=$(perms ${q(r)})`);
    for (const [type, p, json] of grants) L.push(`grant ${q(r)} ${type} ${q(p)} ${q(json)}`);
    L.push(`extra=$(perms ${q(r)} | grep -Fxv ${grants.map((g) => `-e ${q(g[2])}`).join(" ")} || true)`);
    L.push(`test -z "$extra" || warn ${q(`role ${r} has grants no config asks for; see: etcdctl role get ${r}; remove them with etcdctl role revoke-permission`)}`);
  }
  for (const u of ordered) {
    if (u.name === ROOT_USER && !u.access.roles.some((x) => x !== ROOT_ROLE)) continue;
    L.push("");
    L.push(`# user ${u.name}`);
    if (u.name !== ROOT_USER) L.push(`add_user ${q(u.name)}`);
    const r = ownRole(u);
    const roles = [...(r ? [r] : []), ...u.access.roles.filter((x) => x !== r && !(u.name === ROOT_USER && x === ROOT_ROLE))];
    for (const x of roles) L.push(`grant_role ${q(u.name)} ${q(x)}`);
  }
  L.push("");
  L.push("# auth last: from here on etcd takes each client's user from its certificate's CN");
  L.push("etcdctl auth enable >/dev/null");
  L.push(`if [ "$changes" -eq 0 ]; then echo "etcd-rbac: nothing to change; auth is enabled"; else echo "etcd-rbac: $changes change(s); auth is enabled"; fi`);
  return L.join("\n") + "\n";
}
