// Where a tree's CA key is: certs/ca-key.pem, or a key in a PKCS#11 token. The token is named by CA_KEY (an RFC 7512
// URI, `make CA_KEY='pkcs11:token=etcd-ca;object=ca' PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so`) and, once a
// run has used it, recorded in certs/.tls-setup/ca-key.ref (the URI and the module path, never the PIN), so later
// runs (make, renew, revoke, crl, the watcher, rotate) find it without repeating it. An explicit CA_KEY wins over the
// record and replaces it. The one place that says which key signs for a tree (the lead hooks it into SigningCa.key).

import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../common/errors";
import { readFailure } from "../common/fs-errors";
import { KeySpec } from "../config/request";
import { KeyPair } from "../x509/keys";
import { formatPkcs11Uri, generateTokenKeyPair, isPkcs11Uri, loadTokenKeyPair, modulePathOf, parsePkcs11Uri, Pkcs11Uri, readPin, tokenHasKey, withModule } from "../x509/pkcs11";
import { caPaths, commitWrites, PlannedWrite } from "./output";
import { sha256, stateDir } from "./state";
import { TreeOptions } from "./targets";

/** The record of a tree's token key (not *.json: the state directory's *.json are certificate stamps). */
export const caKeyRecordFile = (certsDir: string): string => join(stateDir(certsDir), "ca-key.ref");

export interface CaKey {
  /** the key reference loadIssuer takes: the key file, or the URI with its module-path */
  ref: string;
  /** where it came from, for messages: the key file, CA_KEY, or the record file */
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

interface Record {
  uri: string;
  module: string;
}

function readRecord(certsDir: string): { uri: Pkcs11Uri; module: string; file: string } | undefined {
  const file = caKeyRecordFile(certsDir);
  if (!existsSync(file)) return undefined;
  let r: Partial<Record>;
  try {
    r = JSON.parse(readFileSync(file, "utf8")) as Partial<Record>;
  } catch (e) {
    const why = e instanceof SyntaxError ? `is not JSON (${e.message})` : readFailure(e);
    throw new UserError(`${file}: ${why}; expected {"uri": "pkcs11:...", "module": "/path/to/module.so"} (written by make CA_KEY=...; remove it to use ${caPaths(certsDir).key})`);
  }
  if (typeof r?.uri !== "string" || typeof r.module !== "string" || r.module === "") throw new UserError(`${file}: expected {"uri": "pkcs11:...", "module": "/path/to/module.so"}; remove it to use ${caPaths(certsDir).key}`);
  return { uri: parsePkcs11Uri(r.uri, `${file}: uri`), module: r.module, file };
}

/** The tree's CA key: CA_KEY (o.caKey), else the recorded token key, else certs/ca-key.pem. Reads no token. */
export function resolveCaKey(o: TreeOptions): CaKey {
  const file = caPaths(o.certsDir).key;
  const record = readRecord(o.certsDir);
  let uri: Pkcs11Uri;
  let modulePath: string;
  let where: string;
  if (o.caKey !== undefined && o.caKey !== "") {
    if (!isPkcs11Uri(o.caKey)) throw new UserError(`CA_KEY: ${JSON.stringify(o.caKey)} is not a PKCS#11 URI; CA_KEY names a key in a token, e.g. CA_KEY='pkcs11:token=etcd-ca;object=ca' (a CA key file is always ${file})`);
    uri = parsePkcs11Uri(o.caKey, "CA_KEY");
    where = "CA_KEY";
    modulePath = modulePathOf(uri, o.pkcs11Module || process.env.PKCS11_MODULE || record?.module, "CA_KEY");
  } else if (record) {
    uri = record.uri;
    where = record.file;
    modulePath = o.pkcs11Module || record.uri.query["module-path"] || record.module;
  } else return { ref: file, where: file };
  const path = formatPkcs11Uri(uri, { query: false });
  const recorded = !!record && formatPkcs11Uri(record.uri, { query: false }) === path && record.module === modulePath;
  return { ref: formatPkcs11Uri(withModule(uri, modulePath)), where, token: { uri, modulePath, hash: sha256(path), recorded } };
}

/** The record's write, for a token key it does not hold yet (put it in the commit of a CA made with that key). */
export function caKeyRecordWrite(o: TreeOptions, ck: CaKey): PlannedWrite | undefined {
  if (!ck.token || ck.token.recorded) return undefined;
  const { ["module-path"]: _, ...query } = ck.token.uri.query;
  const record: Record = { uri: formatPkcs11Uri({ ...ck.token.uri, query }), module: ck.token.modulePath };
  mkdirSync(stateDir(o.certsDir), { recursive: true, mode: 0o700 });
  return { path: caKeyRecordFile(o.certsDir), data: JSON.stringify(record, null, 2) + "\n", mode: 0o644 };
}

/** The line that says a record was written. */
export const recordedLine = (o: TreeOptions, ck: CaKey): string =>
  `recorded the CA key ${formatPkcs11Uri(ck.token!.uri, { query: false })} (module ${ck.token!.modulePath}) in ${caKeyRecordFile(o.certsDir)}: later runs use it without CA_KEY`;

/** Writes the record after a successful run with a token key that it does not hold yet (atomically); returns a log line. */
export async function rememberCaKey(o: TreeOptions, ck: CaKey, opts: { fsync?: boolean } = {}): Promise<string | undefined> {
  const w = caKeyRecordWrite(o, ck);
  if (!w) return undefined;
  await commitWrites([w], opts);
  ck.token!.recorded = true;
  return recordedLine(o, ck);
}

/**
 * The token key for a CA being made: a new key generated inside the token when one is asked for (rotate, NEW_KEY) or
 * when the token holds none and there is no CA certificate yet; else the token's key, kept. Refuses a kept key of
 * another algorithm or size than ca-csr.json asks for, and a missing key when the CA certificate exists.
 */
export async function tokenKeyForNewCa(o: TreeOptions, ck: CaKey, spec: KeySpec, fresh: boolean): Promise<{ key: KeyPair; made: boolean }> {
  if (!ck.token) throw new Error("internal: tokenKeyForNewCa without a token key");
  const { uri, modulePath } = ck.token;
  const pin = readPin(uri);
  const shown = formatPkcs11Uri(uri, { query: false });
  if (fresh) return { key: await generateTokenKeyPair(uri, modulePath, pin, spec, { where: ck.where }), made: true };
  if (!tokenHasKey(uri, modulePath, pin, ck.where)) {
    const cert = caPaths(o.certsDir).cert;
    if (existsSync(cert)) throw new UserError(`${ck.where}: ${shown}: the token holds no private key by that name but ${cert} exists; give the CA_KEY that holds its key, or run "make rotate" to make a new CA (every certificate is then re-issued)`);
    return { key: await generateTokenKeyPair(uri, modulePath, pin, spec, { where: ck.where }), made: true };
  }
  const key = await loadTokenKeyPair(uri, modulePath, pin, { where: ck.where });
  if (key.spec.algo !== spec.algo || key.spec.size !== spec.size)
    throw new UserError(`${ck.where}: ${shown}: the token's key is ${key.spec.algo} ${key.spec.size} but ${o.configDir}/ca-csr.json asks for ${spec.algo} ${spec.size}; name a new object for a new key (make rotate CA_KEY=...), or change "key" back`);
  return { key, made: false };
}
