// The etcd commands behind `make rbac` and `make revoke`: they read the tree, call the library and print.

import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../common/errors";
import { loadUsers } from "../tree/plan";
import { EtcdUser, ROOT_USER, usersProblems } from "../config/etcd-access";
import { rbacScript } from "./rbac-script";
import { commitWrites } from "../tree/output";
import { TreeOptions } from "../tree/targets";
import { revoke } from "./revoke";

const out = (l: string) => process.stdout.write(l + "\n");
const err = (l: string) => process.stderr.write(l + "\n");

export const rbacScriptFile = (certsDir: string): string => join(certsDir, "etcd-rbac.sh");

/** The etcd users of a tree: every user config with an "etcd" block, and the root user. */
export function etcdUsers(o: TreeOptions): { users: EtcdUser[]; skipped: string[] } {
  // Only the user configs matter here (the CA key may well be kept offline, and no certificate is looked at).
  const loaded = loadUsers(o);
  if (loaded.problems.length) throw UserError.fromProblems(loaded.problems);
  const users: EtcdUser[] = [];
  const skipped: string[] = [];
  for (const u of loaded.value) {
    if (u.etcd) users.push({ name: u.request.cn, file: u.target.configFile, access: u.etcd });
    else if (u.request.cn === ROOT_USER) users.push({ name: ROOT_USER, file: u.target.configFile, access: { readwrite: [], read: [], roles: [] } });
    else skipped.push(u.target.configFile);
  }
  const problems = usersProblems(users, o.configDir);
  if (problems.length) throw UserError.fromProblems(problems);
  return { users, skipped };
}

export async function rbacCommand(o: TreeOptions): Promise<number> {
  const { users, skipped } = etcdUsers(o);
  const file = rbacScriptFile(o.certsDir);
  const text = rbacScript(users, { source: join(o.configDir, "req-*.json") });
  const same = existsSync(file) && readFileSync(file, "utf8") === text;
  if (!same) mkdirSync(o.certsDir, { recursive: true });
  if (!same) await commitWrites([{ path: file, data: text, mode: 0o755 }]);
  for (const f of skipped) err(`rbac: ${f} has no "etcd" block: its user is not created in etcd`);
  out(`rbac: ${same ? "unchanged" : "wrote"} ${file} (${users.length} users); run it with the root user's certificate: make rbac-apply ENDPOINTS=https://HOST:2379`);
  return 0;
}

/** `make revoke NAME=x`: a name is required (without one nothing would be revoked, which must not look like success). */
export async function revokeCommand(o: TreeOptions, name: string | undefined): Promise<number> {
  if (name === undefined || name === "") throw new UserError(`NAME: is missing; give the certificate to revoke: make revoke NAME=calicoctl (a name in ${o.certsDir}); make crl only refreshes the CRL`);
  return crlCommand(o, name);
}

/** `make crl` (no name): a fresh CRL listing what is revoked; with a name, revokes it first. */
export async function crlCommand(o: TreeOptions, name?: string): Promise<number> {
  const r = await revoke(o, name);
  if (r.revoked) out(`revoke: ${r.revoked.name}: serial ${r.revoked.serial} ${r.revoked.already ? "was already revoked" : "revoked"}`);
  out(`revoke: wrote ${r.crlFile} and ${r.crlDerFile} (${r.count} revoked; next update ${r.nextUpdate.toISOString()}); members read it with --client-crl-file ${r.crlDerFile} (etcd 3.4/3.5 also take ${r.crlFile})`);
  return 0;
}
