// The options every tree command shares (directories, member and proxy names), for yargs.

import type { Argv } from "yargs";
import { DEFAULT_MEMBERS, DEFAULT_PROXIES, TreeOptions } from "../tree/targets";
import { MemberCerts, memberCertsProblem } from "../config/etcd-cluster";
import { UserError } from "../common/errors";

export const splitList = (s: string | undefined, dflt: string[]): string[] => (s === undefined ? dflt : s.split(/[\s,]+/).filter(Boolean));

export function treeOptions<T>(y: Argv<T>) {
  return y
    .option("config-dir", { type: "string", default: "config", describe: "where ca-csr.json, ca-config.json and req-*.json live" })
    .option("certs-dir", { type: "string", default: "certs", describe: "where certificates and keys are written" })
    .option("members", { type: "string", describe: `etcd member certificate names (default "${DEFAULT_MEMBERS.join(" ")}")` })
    .option("proxies", { type: "string", describe: `etcd proxy certificate names (default "${DEFAULT_PROXIES.join(" ")}")` })
    .option("member-certs", { type: "string", describe: 'member certificate layout: "combined" (one certificate, server and client auth) or "split" (etcdN: server auth, etcdN-client: client auth; etcd >= 3.5); default: etcd-cluster.json\'s "member_certs", else combined' })
    .option("ca-key", { type: "string", describe: "the signing CA's key in a PKCS#11 token (the root's in root mode, the intermediate's in intermediate mode): an RFC 7512 URI (pkcs11:token=etcd-ca;object=ca); recorded for later runs; PIN from PKCS11_PIN or PKCS11_PIN_FILE" })
    .option("root-key", { type: "string", describe: "intermediate mode: the root's key in a PKCS#11 token (an RFC 7512 URI); recorded for later runs" })
    .option("pkcs11-module", { type: "string", describe: "the PKCS#11 module (.so) of the token (default: PKCS11_MODULE, or the recorded one)" });
}

/** MEMBER_CERTS / --member-certs: undefined when not given (or empty). */
export function parseMemberCerts(v: string | undefined): MemberCerts | undefined {
  if (v === undefined || v === "") return undefined;
  const p = memberCertsProblem(v);
  if (p) throw new UserError(`MEMBER_CERTS: ${p}`);
  return v as MemberCerts;
}

export function toTree(a: { "config-dir": string; "certs-dir": string; members?: string; proxies?: string; "member-certs"?: string; "ca-key"?: string; "root-key"?: string; "pkcs11-module"?: string }): TreeOptions {
  const memberCerts = parseMemberCerts(a["member-certs"]);
  const t: TreeOptions = { configDir: a["config-dir"], certsDir: a["certs-dir"], members: splitList(a.members, DEFAULT_MEMBERS), proxies: splitList(a.proxies, DEFAULT_PROXIES), ...(memberCerts ? { memberCerts } : {}) };
  if (a["ca-key"] !== undefined) t.caKey = a["ca-key"];
  if (a["root-key"] !== undefined) t.rootKey = a["root-key"];
  if (a["pkcs11-module"] !== undefined) t.pkcs11Module = a["pkcs11-module"];
  return t;
}
