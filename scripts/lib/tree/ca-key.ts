// Where a tree's CA keys are: a key file in certs/, or a key in a PKCS#11 token, for each CA by name:
//
//   "ca"            the root (the one CA in root mode): certs/ca-key.pem, or a token key recorded in
//                   certs/.tls-setup/ca-key.ref; named by CA_KEY in root mode, by ROOT_KEY in intermediate mode
//   "intermediate"  the intermediate (intermediate mode): certs/intermediate-key.pem, or a token key recorded in
//                   certs/.tls-setup/intermediate-key.ref; named by CA_KEY (the key of the CA that signs the leaves)
//   "ca-next"       the new CA of a phased rotation (ca-rotate-start .. -finish): certs/ca-next-key.pem, or a token
//                   key recorded in certs/.tls-setup/ca-next-key.ref; named by NEXT_CA_KEY at ca-rotate-start
//
// A token key is named by an RFC 7512 URI (`make CA_KEY='pkcs11:token=etcd-ca;object=ca'
// PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so`) and, once a run has used it, recorded (the URI and the module path,
// never the PIN), so later runs (make, renew, revoke, crl, the watcher, the rotation) find it without repeating it. An
// explicit variable wins over the record and replaces it. The one place that says which key signs for each CA.

import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../common/errors";
import { readFailure } from "../common/fs-errors";
import { KeySpec } from "../config/request";
import { KeyPair } from "../x509/keys";
import { formatPkcs11Uri, generateTokenKeyPair, isPkcs11Uri, loadTokenKeyPair, modulePathOf, parsePkcs11Uri, Pkcs11Uri, readPin, tokenHasKey, withModule } from "../x509/pkcs11";
import { caPaths, certPaths, commitWrites, PlannedWrite } from "./output";
import { sha256, stateDir } from "./state";
import { INTERMEDIATE_NAME, intermediateConfig, intermediateMode, TreeOptions } from "./targets";

/** The CAs whose key may be in a token: the root, the intermediate, the new CA of a phased rotation. */
export type CaKeyName = "ca" | "intermediate" | "ca-next";

const RECORD: Record<CaKeyName, string> = { ca: "ca-key.ref", intermediate: "intermediate-key.ref", "ca-next": "ca-next-key.ref" };

/** The record of a CA's token key (not *.json: the state directory's *.json are certificate stamps). */
export const keyRecordFile = (certsDir: string, name: CaKeyName): string => join(stateDir(certsDir), RECORD[name]);

/** The key file of a CA whose key is not in a token. */
const keyFileOf = (certsDir: string, name: CaKeyName): string => (name === "ca" ? caPaths(certsDir).key : certPaths(certsDir, name === "intermediate" ? INTERMEDIATE_NAME : "ca-next").key);

export interface CaKey {
  /** which CA's key */
  name: CaKeyName;
  /** the variable that names it in this mode (CA_KEY, ROOT_KEY, NEXT_CA_KEY), for messages and fixes */
  variable: string;
  /** the key reference loadIssuer takes: the key file, or the URI with its module-path */
  ref: string;
  /** where it came from, for messages: the key file, the variable, or the record file */
  where: string;
  token?: {
    uri: Pkcs11Uri;
    modulePath: string;
    /** stands for the key in the CA's stamp (files.key): the hash of the URI's path, which names the key */
    hash: string;
    /** whether the record already says this (else a successful run writes it) */
    recorded: boolean;
  };
}

interface KeyRecord {
  uri: string;
  module: string;
}

function readRecord(certsDir: string, name: CaKeyName): { uri: Pkcs11Uri; module: string; file: string } | undefined {
  const file = keyRecordFile(certsDir, name);
  if (!existsSync(file)) return undefined;
  let r: Partial<KeyRecord>;
  const fix = `remove it to use ${keyFileOf(certsDir, name)}`;
  try {
    r = JSON.parse(readFileSync(file, "utf8")) as Partial<KeyRecord>;
  } catch (e) {
    const why = e instanceof SyntaxError ? `is not JSON (${e.message})` : readFailure(e);
    throw new UserError(`${file}: ${why}; expected {"uri": "pkcs11:...", "module": "/path/to/module.so"} (written by make with a key in a token; ${fix})`);
  }
  if (typeof r?.uri !== "string" || typeof r.module !== "string" || r.module === "") throw new UserError(`${file}: expected {"uri": "pkcs11:...", "module": "/path/to/module.so"}; ${fix}`);
  return { uri: parsePkcs11Uri(r.uri, `${file}: uri`), module: r.module, file };
}

/** The module of another CA's record (the tree's CAs usually share one token), when one is readable. */
function otherRecordedModule(certsDir: string, name: CaKeyName): string | undefined {
  for (const other of ["ca", "intermediate", "ca-next"] as const) {
    if (other === name) continue;
    try {
      const m = readRecord(certsDir, other)?.module;
      if (m) return m;
    } catch {
      // a bad record is said when that CA's key is resolved
    }
  }
  return undefined;
}

/** A CA's key: the variable's URI (when given), else the recorded token key, else the key file. Reads no token. */
function resolveKey(o: TreeOptions, name: CaKeyName, variable: string, given: string | undefined): CaKey {
  const file = keyFileOf(o.certsDir, name);
  const record = readRecord(o.certsDir, name);
  let uri: Pkcs11Uri;
  let modulePath: string;
  let where: string;
  if (given !== undefined && given !== "") {
    if (!isPkcs11Uri(given)) throw new UserError(`${variable}: ${JSON.stringify(given)} is not a PKCS#11 URI; ${variable} names a key in a token, e.g. ${variable}='pkcs11:token=etcd-ca;object=${name}' (a key file is always ${file})`);
    uri = parsePkcs11Uri(given, variable);
    where = variable;
    modulePath = modulePathOf(uri, o.pkcs11Module || process.env.PKCS11_MODULE || record?.module || otherRecordedModule(o.certsDir, name), variable);
  } else if (record) {
    uri = record.uri;
    where = record.file;
    modulePath = o.pkcs11Module || record.uri.query["module-path"] || record.module;
  } else return { name, variable, ref: file, where: file };
  const path = formatPkcs11Uri(uri, { query: false });
  const recorded = !!record && formatPkcs11Uri(record.uri, { query: false }) === path && record.module === modulePath;
  return { name, variable, ref: formatPkcs11Uri(withModule(uri, modulePath)), where, token: { uri, modulePath, hash: sha256(path), recorded } };
}

const samePath = (a: string | undefined, b: string | undefined): boolean => {
  if (!a || !b || !isPkcs11Uri(a) || !isPkcs11Uri(b)) return a === b;
  try {
    return formatPkcs11Uri(parsePkcs11Uri(a, "ROOT_KEY"), { query: false }) === formatPkcs11Uri(parsePkcs11Uri(b, "CA_KEY"), { query: false });
  } catch {
    return false;
  }
};

/**
 * The root's key (the one CA's in root mode): CA_KEY in root mode, ROOT_KEY in intermediate mode, else the recorded
 * token key (ca-key.ref), else certs/ca-key.pem. In root mode ROOT_KEY is refused unless it says what CA_KEY says.
 */
export function resolveCaKey(o: TreeOptions): CaKey {
  if (intermediateMode(o)) return resolveKey(o, "ca", "ROOT_KEY", o.rootKey);
  if (o.rootKey !== undefined && o.rootKey !== "" && !samePath(o.rootKey, o.caKey))
    throw new UserError(`ROOT_KEY: names the root's key in intermediate mode only; this tree has one CA (no ${intermediateConfig(o)}), whose key is CA_KEY: use CA_KEY='${o.rootKey.replace(/'/g, "")}'`);
  return resolveKey(o, "ca", "CA_KEY", o.caKey);
}

/**
 * The intermediate's key (intermediate mode): CA_KEY (the key of the CA that signs the leaves), else the recorded
 * token key (intermediate-key.ref), else certs/intermediate-key.pem. The root's token key is refused: each CA has
 * its own key.
 */
export function resolveIntermediateKey(o: TreeOptions): CaKey {
  const k = resolveKey(o, "intermediate", "CA_KEY", o.caKey);
  if (k.token) {
    let root: CaKey | undefined;
    try {
      root = resolveCaKey(o);
    } catch {
      // a bad ROOT_KEY is said where the root's key is resolved
    }
    if (root && sameKeyInToken(root, k)) {
      const shown = formatPkcs11Uri(k.token.uri, { query: false });
      throw new UserError(`${k.where}: ${shown}: is the root CA's key (${root.where}); in intermediate mode CA_KEY names the intermediate's own key: give it another object (e.g. CA_KEY='${formatPkcs11Uri({ ...k.token.uri, query: {}, path: { ...k.token.uri.path, object: "intermediate" }, id: undefined })}'), and the root's key as ROOT_KEY`);
    }
  }
  return k;
}

/**
 * The key of the new CA of a phased rotation: NEXT_CA_KEY (ca-rotate-start only), else the recorded token key
 * (ca-next-key.ref, written by ca-rotate-start), else certs/ca-next-key.pem.
 */
export function resolveNextCaKey(o: TreeOptions): CaKey {
  return resolveKey(o, "ca-next", "NEXT_CA_KEY", o.nextCaKey);
}

/** Whether two CA keys are the same key in the same token: the same URI path through the same module. */
export const sameKeyInToken = (a: CaKey, b: CaKey): boolean => !!a.token && !!b.token && a.token.hash === b.token.hash && a.token.modulePath === b.token.modulePath;

/** A token key's URI as shown in messages (no module path), or the key file. */
export const caKeyText = (ck: CaKey): string => (ck.token ? formatPkcs11Uri(ck.token.uri, { query: false }) : ck.ref);

/** The record's content for a token key. */
function recordText(ck: CaKey): string {
  const { ["module-path"]: _, ...query } = ck.token!.uri.query;
  const record: KeyRecord = { uri: formatPkcs11Uri({ ...ck.token!.uri, query }), module: ck.token!.modulePath };
  return JSON.stringify(record, null, 2) + "\n";
}

/** The write of a token key's record as another CA's record (ca-rotate-finish: the new CA's key becomes the CA's). */
export function keyRecordWriteAs(o: TreeOptions, ck: CaKey, as: CaKeyName): PlannedWrite {
  mkdirSync(stateDir(o.certsDir), { recursive: true, mode: 0o700 });
  return { path: keyRecordFile(o.certsDir, as), data: recordText(ck), mode: 0o644 };
}

/** The record's write, for a token key it does not hold yet (put it in the commit of a CA made with that key). */
export function caKeyRecordWrite(o: TreeOptions, ck: CaKey): PlannedWrite | undefined {
  if (!ck.token || ck.token.recorded) return undefined;
  return keyRecordWriteAs(o, ck, ck.name);
}

const CA_WORD: Record<CaKeyName, string> = { ca: "CA", intermediate: "intermediate CA", "ca-next": "new CA" };

/** The line that says a record was written. */
export const recordedLine = (o: TreeOptions, ck: CaKey): string =>
  `recorded the ${ck.variable === "ROOT_KEY" ? "root CA" : CA_WORD[ck.name]} key ${caKeyText(ck)} (module ${ck.token!.modulePath}) in ${keyRecordFile(o.certsDir, ck.name)}: later runs use it without ${ck.variable}`;

/** Writes the record after a successful run with a token key that it does not hold yet (atomically); returns a log line. */
export async function rememberCaKey(o: TreeOptions, ck: CaKey, opts: { fsync?: boolean } = {}): Promise<string | undefined> {
  const w = caKeyRecordWrite(o, ck);
  if (!w) return undefined;
  await commitWrites([w], opts);
  ck.token!.recorded = true;
  return recordedLine(o, ck);
}

/** A new object name to suggest: object=ca -> ca-2, object=ca-2 -> ca-3. */
export function nextObjectUri(u: Pkcs11Uri): string {
  const obj = u.path.object ?? "ca";
  const m = /^(.*)-(\d+)$/.exec(obj);
  const next = m ? `${m[1]}-${Number(m[2]) + 1}` : `${obj}-2`;
  return formatPkcs11Uri({ ...u, id: undefined, path: { ...Object.fromEntries(Object.entries(u.path).filter(([k]) => k !== "id")), object: next }, query: {} });
}

/** A token key of a CA being made: the key already there (kept), or a function that generates it (called when the CA is made). */
export type PreparedTokenKey = { key: KeyPair; made: false } | { generate: () => Promise<KeyPair>; made: true };

export interface PrepareOptions {
  /** a new key is asked for (make rotate, rotate-intermediate, NEW_KEY, ca-rotate-start) */
  fresh: boolean;
  /** the request's key spec (algorithm and size the config asks for) and the config file that asks */
  spec: KeySpec;
  configFile: string;
  /** the CA's certificate file (a missing key is refused while it exists, unless fresh) */
  certFile?: string;
  /** the command that asked for a new key, for the fix ("make rotate", "make rotate-intermediate", ...) */
  command: string;
}

/**
 * Checks a token key for a CA being made, before anything is written or generated (so one refusal leaves token and
 * disk unchanged): a new key when one is asked for (its name must be free: the refusal names a new object) or when
 * the token holds none and there is no certificate yet; else the token's key, kept when it has the algorithm and size
 * the config asks for.
 */
export async function prepareTokenKey(ck: CaKey, po: PrepareOptions): Promise<PreparedTokenKey> {
  if (!ck.token) throw new Error("internal: prepareTokenKey without a token key");
  const { uri, modulePath } = ck.token;
  const pin = readPin(uri);
  const shown = formatPkcs11Uri(uri, { query: false });
  const has = tokenHasKey(uri, modulePath, pin, ck.where);
  const generate = () => generateTokenKeyPair(uri, modulePath, pin, po.spec, { where: ck.where });
  if (po.fresh) {
    if (has)
      throw new UserError(
        `${ck.where}: ${shown}: the token already holds a private key by that name, and ${po.command} makes a new key for the ${CA_WORD[ck.name]}; name a new object: ${po.command} ${ck.variable}='${nextObjectUri(uri)}' (the old key stays in the token; delete it with pkcs11-tool once nothing uses it)`,
      );
    return { generate, made: true };
  }
  if (!has) {
    if (po.certFile && existsSync(po.certFile))
      throw new UserError(`${ck.where}: ${shown}: the token holds no private key by that name but ${po.certFile} exists; give the ${ck.variable} that holds its key, or run "${po.command}" to make a new ${CA_WORD[ck.name]}`);
    return { generate, made: true };
  }
  const key = await loadTokenKeyPair(uri, modulePath, pin, { where: ck.where });
  if (key.spec.algo !== po.spec.algo || key.spec.size !== po.spec.size)
    throw new UserError(`${ck.where}: ${shown}: the token's key is ${key.spec.algo} ${key.spec.size} but ${po.configFile} asks for ${po.spec.algo} ${po.spec.size}; name a new object for a new key (${po.command} ${ck.variable}='${nextObjectUri(uri)}'), or change "key" back`);
  return { key, made: false };
}

/** The prepared key: the kept one, or the one generated now. */
export const tokenKeyOf = async (p: PreparedTokenKey): Promise<KeyPair> => ("key" in p ? p.key : p.generate());
