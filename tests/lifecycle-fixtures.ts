// Fixtures for the lifecycle tests: trees with short-lived and already-expired profiles (real certificates, no
// faked clocks), and openssl's view of a certificate.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runMake, sh, tempTree } from "./helpers";
import type { Run } from "./helpers";

/** ca-config.json with the shipped default, a 10-day "user" profile and a "past" profile that ended in 2020. */
export const SHORT_CA_CONFIG = {
  signing: {
    default: { usages: ["signing", "key encipherment", "server auth", "client auth"], expiry: "8760h" },
    profiles: {
      user: { usages: ["signing", "key encipherment", "client auth"], expiry: "240h" },
      past: { usages: ["signing", "key encipherment", "client auth"], not_before: "2020-01-01T00:00:00Z", not_after: "2020-02-01T00:00:00Z" },
    },
  },
};

export type Tree = ReturnType<typeof tempTree>;

export function writeJson(file: string, v: unknown): void {
  writeFileSync(file, JSON.stringify(v, null, 2) + "\n");
}

export function editJson(file: string, edit: (v: Record<string, unknown>) => void): void {
  const v = JSON.parse(readFileSync(file, "utf8"));
  edit(v);
  writeJson(file, v);
}

/** A tree whose users (root, and the examples given) get 10-day certificates. */
export function shortTree(examples: string[] = []): Tree {
  const t = tempTree({ examples });
  writeJson(join(t.config, "ca-config.json"), SHORT_CA_CONFIG);
  return t;
}

/** Adds a user whose certificate ended in 2020 (the "past" profile). */
export function addExpiredUser(t: Tree, name: string): void {
  const root = JSON.parse(readFileSync(join(t.config, "req-root.json"), "utf8"));
  writeJson(join(t.config, `req-${name}.json`), { ...root, CN: name, profile: "past", etcd: undefined });
}

/** make in the project root against the tree; asserts nothing. */
export const make = (t: Tree, targets: string[], extra: string[] = []) => runMake(targets, t, extra);

/** The tree options the Makefile's TREE passes (ETCD_MEMBERS and PROXIES at their defaults). */
export const treeArgs = (t: Tree): string[] => ["--config-dir", t.config, "--certs-dir", t.certs, "--members", "etcd1 etcd2 etcd3", "--proxies", "proxy1"];

/**
 * `make TARGET` for the lifecycle targets, in process: `lifecycle.js CMD $(TREE) ARGS` as the recipe runs it (ARGS:
 * what make's variables become, e.g. WARN_DAYS=5 → "--warn-days", "5"). The status is the script's (1 where make
 * would say 2).
 */
export const lifecycle = async (t: Tree, cmd: string, args: string[] = [], env?: Record<string, string | undefined>): Promise<Run> => (await inProcess()).runInProcess("lifecycle", [cmd, ...treeArgs(t), ...args], { env });

/** `make` (make all) in process: `tls.js build $(TREE)`, as the recipe runs it; asserts nothing. */
export const build = async (t: Tree): Promise<Run> => (await inProcess()).runInProcess("tls", ["build", ...treeArgs(t)]);

// loaded on first use: the unit tests that take only editJson/writeJson from here do not load every script's main
const inProcess = () => import("./in-process");

/** The tree after a successful `make` (in process); fails the test when the build does not succeed. */
export const made = async (t: Tree): Promise<Tree> => (await inProcess()).made(t);

/**
 * The expiry reports' tree: a short-lived CA's tree with calico-node and an expired user "old", made (in process); plus, where
 * openssl is there, NAME.pem: a self-signed P-256 certificate tls-setup did not make (subject SUBJ, openssl's -subj
 * syntax; EXTRA: more `openssl req` arguments).
 */
export async function expiryTree(foreign: { name: string; subj: string; extra?: string[] }, haveOpenssl: boolean): Promise<Tree> {
  const t = shortTree(["calico-node"]);
  addExpiredUser(t, "old");
  await made(t);
  if (haveOpenssl)
    sh("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", foreign.subj, "-days", "400", ...(foreign.extra ?? []), "-keyout", keyPath(t, foreign.name), "-out", certPath(t, foreign.name)]);
  return t;
}

export const certPath = (t: Tree, name: string) => join(t.certs, `${name}.pem`);
export const keyPath = (t: Tree, name: string) => join(t.certs, `${name}-key.pem`);

/** openssl x509 with the given print options. */
export const openssl509 = (file: string, ...opts: string[]): string => sh("openssl", ["x509", "-in", file, "-noout", ...opts]);

/** The public key (PEM) of a certificate and of a private key, by openssl. */
export const certPubkey = (file: string) => sh("openssl", ["x509", "-in", file, "-noout", "-pubkey"]);
export const keyPubkey = (file: string) => sh("openssl", ["pkey", "-in", file, "-pubout"]);

/** openssl's notAfter as a Date. */
export const opensslNotAfter = (file: string): Date => new Date(openssl509(file, "-enddate").trim().replace(/^notAfter=/, ""));

/** Leaf certificate files of a tree (NAME.pem), by name. */
export const LEAVES = ["etcd1", "etcd2", "etcd3", "proxy1", "root"];
