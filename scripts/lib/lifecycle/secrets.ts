// `make secrets`: one Kubernetes Secret manifest per etcd user in certs/k8s/<user>.yaml, with the keys Calico's
// manifests read from calico-etcd-secrets (etcd-ca, etcd-cert, etcd-key), each the base64 of the file. The Secret is
// named etcd-<user> (lower-cased, "_" as "-") in kube-system unless told otherwise. The manifests hold private keys,
// so they are written 0600 in a 0700 directory. Users with etcd's root user or role (CN root, or "roles": ["root"])
// hold a key that can do anything in etcd: they are left out unless named (NAME=root).

import { chmodSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CertFacts, parseCertPem } from "../x509/certinfo";
import { UserError } from "../common/errors";
import { publicKeyOfPem } from "../x509/keys";
import { certPaths, commitWrites, KEY_MODE } from "../tree/output";
import { findSigningCa } from "../tree/signing-ca";
import { TreeOptions } from "../tree/targets";
import { loadUsers } from "../tree/plan";
import { readRevoked } from "../tree/revoked";
import { ROOT_USER } from "../config/etcd-access";

export const SECRETS_DIR = "k8s";
export const DEFAULT_NAMESPACE = "kube-system";
export const SECRET_KEYS = { ca: "etcd-ca", cert: "etcd-cert", key: "etcd-key" } as const;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export function namespaceProblem(ns: string): string | undefined {
  if (ns.length > 63 || !DNS_LABEL.test(ns)) return `SECRET_NAMESPACE: ${JSON.stringify(ns)} is not a Kubernetes namespace name; expected lower-case letters, digits and "-" (at most 63, starting and ending with a letter or digit)`;
  return undefined;
}

export function secretNameProblem(name: string, variable = "SECRET_NAME"): string | undefined {
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) return `${variable}: ${JSON.stringify(name)} is not a valid Secret name; expected lower-case letters, digits, "-" and "." (at most 253, starting and ending with a letter or digit)`;
  return undefined;
}

/** The default Secret name for a user: etcd-<user>, lower-cased, with "_" as "-". */
export const defaultSecretName = (user: string): string => `etcd-${user.toLowerCase().replace(/_/g, "-")}`.replace(/[-.]+$/, "");

export interface SecretInput {
  name: string;
  namespace: string;
  user: string;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  /** the files, for the comment at the top */
  files: { ca: string; cert: string; key: string };
}

/** A Secret manifest as YAML; every scalar is a double-quoted (JSON) string, which YAML reads verbatim. */
export function secretManifest(s: SecretInput): string {
  const q = (v: string) => JSON.stringify(v);
  const labels: [string, string][] = [["app.kubernetes.io/managed-by", "tls-setup"], ["app.kubernetes.io/component", "etcd-client"]];
  if (s.user.length <= 63 && LABEL_VALUE.test(s.user)) labels.push(["tls-setup/etcd-user", s.user]);
  return [
    `# Made by tls-setup ("make secrets") from ${s.files.ca}, ${s.files.cert} and ${s.files.key}.`,
    `# It holds the private key of the etcd user ${JSON.stringify(s.user)}: keep it out of version control.`,
    "apiVersion: v1",
    "kind: Secret",
    "type: Opaque",
    "metadata:",
    `  name: ${q(s.name)}`,
    `  namespace: ${q(s.namespace)}`,
    "  labels:",
    ...labels.map(([k, v]) => `    ${q(k)}: ${q(v)}`),
    "data:",
    `  ${SECRET_KEYS.ca}: ${q(s.ca.toString("base64"))}`,
    `  ${SECRET_KEYS.cert}: ${q(s.cert.toString("base64"))}`,
    `  ${SECRET_KEYS.key}: ${q(s.key.toString("base64"))}`,
    "",
  ].join("\n");
}

export interface SecretsOptions {
  /** only this user */
  user?: string;
  namespace?: string;
  /** the Secret's name; only when one user is selected */
  secretName?: string;
}

/** Why a user's key is etcd's root key, if it is: the CN root, or the root role. */
export function rootReason(cn: string, roles: string[] | undefined): string | undefined {
  if (cn === ROOT_USER) return `CN ${ROOT_USER}: the etcd root user`;
  if (roles?.includes(ROOT_USER)) return `"etcd": {"roles": ["${ROOT_USER}"]}: the etcd root role`;
  return undefined;
}

export interface LeftOut {
  user: string;
  why: string;
  /** root: etcd's root key (written only when named); revoked: its certificate is revoked (never written) */
  kind: "root" | "revoked";
}

export interface WrittenSecret {
  user: string;
  name: string;
  file: string;
  changed: boolean;
  /** why this user's key is etcd's root key (written only when named) */
  root?: string;
}

/**
 * Writes certs/k8s/<user>.yaml for every user but those with etcd's root user or role (or the one selected, root or
 * not). Checks everything before writing anything.
 */
export async function writeSecrets(o: TreeOptions, opts: SecretsOptions = {}): Promise<{ written: WrittenSecret[]; leftOut: LeftOut[] }> {
  const namespace = opts.namespace ?? DEFAULT_NAMESPACE;
  const nsProblem = namespaceProblem(namespace);
  if (nsProblem) throw new UserError(nsProblem);
  const loaded = loadUsers(o);
  if (loaded.problems.length) throw UserError.fromProblems(loaded.problems);
  const users = loaded.value.map((u) => u.target.name);
  if (opts.user !== undefined && !users.includes(opts.user)) throw new UserError(`NAME: ${JSON.stringify(opts.user)} is not an etcd user of ${o.configDir} (one req-<user>.json each); known: ${users.join(", ") || "none"}`);
  if (!users.length) throw new UserError(`${o.configDir}: has no req-<user>.json, so there is no user to make a Secret for; add one (see config/examples/)`);
  const leftOut: LeftOut[] = [];
  const rootWhy = new Map<string, string>();
  const revoked = readRevoked(o.certsDir).value ?? new Map();
  // each candidate's certificate, read once: for the revocation check here and for its Secret below
  const certs = new Map<string, { text: string; facts: CertFacts }>();
  for (const u of loaded.value) {
    const name = u.target.name;
    if (opts.user !== undefined && opts.user !== name) continue;
    const why = rootReason(u.request.cn, u.etcd?.roles);
    if (why) rootWhy.set(name, why);
    if (why && opts.user === undefined) {
      leftOut.push({ user: name, why, kind: "root" });
      continue;
    }
    const certFile = certPaths(o.certsDir, name).cert;
    if (!existsSync(certFile)) continue; // said below ("run make first")
    const text = readFileSync(certFile, "utf8");
    const facts = parseCertPem(text, certFile);
    certs.set(name, { text, facts });
    // a revoked certificate in a Secret would be refused by etcd: never shipped (README "Revoked stays revoked")
    if (revoked.has(facts.serialHex)) {
      const revokedWhy = `its certificate ${certFile} is revoked (make revoke); a new one first: make renew NAME=${name} NEW_KEY=1`;
      if (opts.user === name) throw new UserError(`NAME: ${JSON.stringify(name)}: ${revokedWhy}`);
      leftOut.push({ user: name, why: revokedWhy, kind: "revoked" });
    }
  }
  const selected = opts.user !== undefined ? [opts.user] : users.filter((u) => !leftOut.some((l) => l.user === u));
  if (opts.secretName !== undefined) {
    if (selected.length > 1) throw new UserError(`SECRET_NAME: ${JSON.stringify(opts.secretName)} can name one Secret only, but there are ${selected.length} users (${selected.join(", ")}); select one with NAME=<user>`);
    const p = secretNameProblem(opts.secretName);
    if (p) throw new UserError(p);
  }
  if (!selected.length) return { written: [], leftOut };
  // etcd-ca is the trust file (the root only); etcd-cert the leaf's file, which carries the intermediate in intermediate mode
  const caFile = findSigningCa(o).trust;
  if (!existsSync(caFile)) throw new UserError(`${caFile}: does not exist; run "make" first`);
  const ca = readFileSync(caFile);
  const planned: { user: string; name: string; file: string; data: string }[] = [];
  for (const user of selected) {
    const p = certPaths(o.certsDir, user);
    const read = certs.get(user);
    if (!read) throw new UserError(`${p.cert}: does not exist; run "make" first`);
    if (!existsSync(p.key)) throw new UserError(`${p.key}: does not exist; run "make" first`);
    const cert = Buffer.from(read.text);
    const key = readFileSync(p.key);
    const kp = publicKeyOfPem(key.toString("utf8"), p.key);
    if (!kp.spki.equals(read.facts.spki)) throw new UserError(`${p.key}: does not match ${p.cert}; run "make" to repair the pair before making its Secret`);
    const name = opts.secretName ?? defaultSecretName(user);
    const np = secretNameProblem(name, `${join(o.configDir, `req-${user}.json`)}: the user name gives the Secret name`);
    if (np) throw new UserError(`${np}; choose one with NAME=${user} SECRET_NAME=<name>`);
    const file = join(o.certsDir, SECRETS_DIR, `${user}.yaml`);
    planned.push({ user, name, file, data: secretManifest({ name, namespace, user, ca, cert, key, files: { ca: caFile, cert: p.cert, key: p.key } }) });
  }
  mkdirSync(join(o.certsDir, SECRETS_DIR), { recursive: true, mode: 0o700 });
  const out: WrittenSecret[] = [];
  for (const w of planned) {
    const changed = !existsSync(w.file) || readFileSync(w.file, "utf8") !== w.data;
    if (changed) await commitWrites([{ path: w.file, data: w.data, mode: KEY_MODE }]);
    else chmodSync(w.file, KEY_MODE);
    out.push({ user: w.user, name: w.name, file: w.file, changed, root: rootWhy.get(w.user) });
  }
  return { written: out, leftOut };
}
