// CA keys held in a PKCS#11 token (an HSM, a smart card, SoftHSM2), named by an RFC 7512 URI such as
// `pkcs11:token=etcd-ca;object=ca`. Signing goes through PeculiarVentures' WebCrypto provider over PKCS#11
// (node-webcrypto-p11, over graphene-pk11 and the native addon pkcs11js). Those packages are installed on demand
// (`make pkcs11-deps`, into pkcs11/node_modules) and loaded only when a PKCS#11 key is used: the default build needs
// no compiler and an ordinary run never loads them. The PIN comes from PKCS11_PIN or the file named by
// PKCS11_PIN_FILE, never from a command line, a URI or a log.

import { createPublicKey, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { UserError } from "../common/errors";
import { readFailure } from "../common/fs-errors";
import { KeySpec } from "../config/request";
import { CryptoProvider, getCrypto, hashFor, KeyPair } from "./keys";

// ---------------------------------------------------------------------------------------------------------------
// RFC 7512 URIs

/** The path attributes of RFC 7512 §2.3 (what identifies the token and the object). */
const PATH_ATTRS = ["token", "manufacturer", "serial", "model", "library-manufacturer", "library-description", "library-version", "object", "type", "id", "slot-description", "slot-manufacturer", "slot-id"] as const;
/** The query attributes of RFC 7512 §2.3 (how to reach it). */
const QUERY_ATTRS = ["module-path", "module-name", "pin-source", "pin-value"] as const;
type PathAttr = (typeof PATH_ATTRS)[number];
type QueryAttr = (typeof QUERY_ATTRS)[number];

export interface Pkcs11Uri {
  /** path attributes, percent-decoded (id and slot-id also below in their own form) */
  path: Partial<Record<PathAttr, string>>;
  query: Partial<Record<Exclude<QueryAttr, "pin-value">, string>>;
  /** CKA_ID, decoded to bytes */
  id?: Buffer;
  slotId?: bigint;
}

export const isPkcs11Uri = (s: string): boolean => /^pkcs11:/i.test(s);

const ACCEPTED = `accepted: ${PATH_ATTRS.join(", ")} (separated by ";"), then ?${QUERY_ATTRS.filter((a) => a !== "pin-value").join(", ")} (separated by "&")`;

/** Percent-decoding to bytes; undefined when a "%" is not followed by two hex digits. */
function pctBytes(v: string): Buffer | undefined {
  const out: number[] = [];
  for (let i = 0; i < v.length; i++) {
    if (v[i] === "%") {
      if (!/^[0-9A-Fa-f]{2}$/.test(v.slice(i + 1, i + 3))) return undefined;
      out.push(parseInt(v.slice(i + 1, i + 3), 16));
      i += 2;
    } else out.push(...Buffer.from(v[i], "utf8"));
  }
  return Buffer.from(out);
}

/**
 * Parses a PKCS#11 URI (RFC 7512). `where` names its origin in messages (CA_KEY, -ca-key, a record file). Unknown or
 * repeated attributes, a bad percent-encoding, a type other than "private" and a PIN in the URI are refused.
 */
export function parsePkcs11Uri(text: string, where: string): Pkcs11Uri {
  // a PIN put in the URI against the rules is not repeated in the message
  const bad = (why: string) => new UserError(`${where}: ${JSON.stringify(text.replace(/(pin-value=)[^&]*/gi, "$1..."))}: ${why}`);
  if (!isPkcs11Uri(text)) throw bad('is not a PKCS#11 URI; expected e.g. "pkcs11:token=etcd-ca;object=ca" (RFC 7512)');
  const rest = text.slice("pkcs11:".length);
  const q = rest.indexOf("?");
  const [pathPart, queryPart] = q < 0 ? [rest, ""] : [rest.slice(0, q), rest.slice(q + 1)];
  const u: Pkcs11Uri = { path: {}, query: {} };
  const seen = new Set<string>();
  const each = (part: string, sep: string, known: readonly string[], put: (name: string, raw: string) => void) => {
    for (const item of part === "" ? [] : part.split(sep)) {
      const eq = item.indexOf("=");
      if (eq <= 0) throw bad(`${JSON.stringify(item)} is not an attribute=value pair; ${ACCEPTED}`);
      const name = item.slice(0, eq).toLowerCase();
      if (!known.includes(name)) throw bad(`unknown attribute ${JSON.stringify(name)}; ${ACCEPTED}`);
      if (seen.has(name)) throw bad(`the attribute ${JSON.stringify(name)} is given twice`);
      seen.add(name);
      put(name, item.slice(eq + 1));
    }
  };
  const text8 = (name: string, raw: string): string => {
    const b = pctBytes(raw);
    if (!b) throw bad(`${name}: ${JSON.stringify(raw)} has a "%" not followed by two hex digits`);
    const s = b.toString("utf8");
    if (!Buffer.from(s, "utf8").equals(b)) throw bad(`${name}: is not UTF-8 once percent-decoded`);
    return s;
  };
  each(pathPart, ";", PATH_ATTRS, (name, raw) => {
    if (name === "id") {
      const b = pctBytes(raw);
      if (!b || b.length === 0) throw bad(`id: ${JSON.stringify(raw)} is not a percent-encoded byte string (e.g. id=%01%a2)`);
      u.id = b;
      u.path.id = b.toString("hex");
      return;
    }
    const v = text8(name, raw);
    if (name === "slot-id") {
      if (!/^[0-9]+$/.test(v)) throw bad(`slot-id: ${JSON.stringify(v)} is not a decimal slot number`);
      u.slotId = BigInt(v);
    }
    if (name === "type" && v !== "private") throw bad(`type: ${JSON.stringify(v)} cannot sign; a CA key is type=private (or leave type out)`);
    if (name === "library-version" && !/^[0-9]+(\.[0-9]+)?$/.test(v)) throw bad(`library-version: ${JSON.stringify(v)} is not "major" or "major.minor"`);
    u.path[name as PathAttr] = v;
  });
  each(queryPart, "&", QUERY_ATTRS, (name, raw) => {
    if (name === "pin-value") throw bad("a PIN is never written in a URI (it would show in process lists, logs and ca-key.ref); export PKCS11_PIN or set PKCS11_PIN_FILE");
    u.query[name as Exclude<QueryAttr, "pin-value">] = text8(name, raw);
  });
  if (u.path.object === undefined && u.id === undefined) throw bad("names no key; give object=LABEL (and/or id=...), e.g. pkcs11:token=etcd-ca;object=ca");
  return u;
}

const pctEncode = (b: Buffer, keep: RegExp): string => [...b].map((c) => (keep.test(String.fromCharCode(c)) ? String.fromCharCode(c) : `%${c.toString(16).padStart(2, "0")}`)).join("");

/** The URI in a canonical form (attributes in RFC order, values percent-encoded where needed). */
export function formatPkcs11Uri(u: Pkcs11Uri, opts: { query?: boolean } = {}): string {
  const keepPath = /[A-Za-z0-9\-._~:@!$'()*+,&]/;
  const keepQuery = /[A-Za-z0-9\-._~:@!$'()*+,;/]/;
  const path = PATH_ATTRS.filter((a) => u.path[a] !== undefined).map((a) => `${a}=${a === "id" ? pctEncode(u.id!, /(?!)/) : pctEncode(Buffer.from(u.path[a]!, "utf8"), keepPath)}`);
  const query = opts.query === false ? [] : QUERY_ATTRS.filter((a): a is Exclude<QueryAttr, "pin-value"> => a !== "pin-value" && u.query[a as Exclude<QueryAttr, "pin-value">] !== undefined).map((a) => `${a}=${pctEncode(Buffer.from(u.query[a]!, "utf8"), keepQuery)}`);
  return `pkcs11:${path.join(";")}${query.length ? `?${query.join("&")}` : ""}`;
}

/** The URI with its module path set (replacing any given in it). */
export const withModule = (u: Pkcs11Uri, modulePath: string): Pkcs11Uri => ({ ...u, query: { ...u.query, "module-path": modulePath } });

// ---------------------------------------------------------------------------------------------------------------
// The provider packages, installed on demand into pkcs11/node_modules

/** The pinned packages (pkcs11/package.json and its lock file pin the rest). */
export const PKCS11_PACKAGES = ["node-webcrypto-p11", "graphene-pk11", "pkcs11js"];
const NOT_INSTALLED = `the provider packages (${PKCS11_PACKAGES.join(", ")}) are not installed; run "make pkcs11-deps" (it builds pkcs11js with g++, make and python3)`;

// Just the parts of graphene-pk11 and node-webcrypto-p11 used here (their own types live in pkcs11/node_modules,
// which the type check does not need).
interface GKey {
  class: number;
  type: number;
  label: string;
  id: Buffer;
  handle: Buffer;
  getAttribute(a: Record<string, null>): Record<string, unknown>;
  setAttribute(a: Record<string, unknown>): void;
  get(name: string): Buffer;
  toType<T = GKey>(): T;
}
interface GCollection<T> {
  length: number;
  items(i: number): T;
}
interface GToken {
  label: string;
  serialNumber: string;
  model: string;
  manufacturerID: string;
  flags: number;
}
interface GSlot {
  handle: Buffer;
  slotDescription: string;
  manufacturerID: string;
  getToken(): GToken;
  open(flags: number): GSession;
}
interface GSession {
  login(pin: string, userType?: number): void;
  find(template: Record<string, unknown>): GCollection<GKey>;
  flags: number;
}
interface GModule {
  libraryDescription: string;
  manufacturerID: string;
  libraryVersion: { major: number; minor: number };
  initialize(): void;
  getSlots(present: boolean): GCollection<GSlot>;
}
interface Graphene {
  Module: { load(lib: string, name?: string): GModule };
  ObjectClass: Record<string, number>;
  KeyType: Record<string, number>;
  SessionFlag: Record<string, number>;
  TokenFlag: Record<string, number>;
}
interface P11Crypto extends CryptoProvider {
  keyStorage: { getItem(id: string, alg: Algorithm, extractable: boolean, usages: KeyUsage[]): Promise<CryptoKey> };
}
interface WebcryptoP11 {
  Crypto: new (p: { session: GSession }) => P11Crypto;
  CryptoKey: { getID(k: GKey): string };
}

interface Provider {
  graphene: Graphene;
  p11: WebcryptoP11;
}
let provider: Provider | undefined;

/** Where the packages may be: pkcs11/node_modules beside dist/ (or scripts/), else the project's node_modules. */
function providerRoots(): string[] {
  // TLS_SETUP_PKCS11_DEPS: a directory holding node_modules/ with the provider (then the only place looked at)
  if (process.env.TLS_SETUP_PKCS11_DEPS) return [process.env.TLS_SETUP_PKCS11_DEPS];
  const roots: string[] = [];
  for (let d = __dirname, i = 0; i < 6; i++, d = dirname(d)) roots.push(join(d, "pkcs11"), d);
  return roots;
}

/** Loads the provider packages (once per process); a one-line error naming the fix when they are missing. */
export function loadProvider(): Provider {
  if (provider) return provider;
  for (const root of providerRoots()) {
    if (!existsSync(join(root, "node_modules", "node-webcrypto-p11", "package.json"))) continue;
    // resolved at run time from that directory: esbuild never sees these names, so nothing bundles them
    const req = createRequire(join(root, "package.json"));
    const broken = (why: string) => new UserError(`PKCS#11: ${join(root, "node_modules")}: the provider does not load (${why}); run "make pkcs11-deps" again (it rebuilds pkcs11js for this Node)`);
    let p: Provider;
    try {
      p = { graphene: req("graphene-pk11") as Graphene, p11: req("node-webcrypto-p11") as WebcryptoP11 };
    } catch (e) {
      throw broken(oneLine(e));
    }
    if (typeof p.graphene?.Module?.load !== "function" || typeof p.p11?.Crypto !== "function") throw broken("graphene-pk11 or node-webcrypto-p11 is not the package expected");
    provider = p;
    return provider;
  }
  throw new UserError(`PKCS#11: ${NOT_INSTALLED}`);
}

const oneLine = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split("\n")[0];

// ---------------------------------------------------------------------------------------------------------------
// Tokens, sessions, PINs

/** The PIN: pin-source in the URI, else PKCS11_PIN_FILE, else PKCS11_PIN; undefined when none is given. */
export function readPin(u: Pkcs11Uri, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const file = u.query["pin-source"]?.replace(/^file:(\/\/)?/, "") ?? env.PKCS11_PIN_FILE;
  const from = u.query["pin-source"] !== undefined ? "pin-source" : "PKCS11_PIN_FILE";
  if (file !== undefined && file !== "") {
    try {
      return readFileSync(file, "utf8").replace(/\r?\n$/, "");
    } catch (e) {
      throw new UserError(`${from}: ${file}: ${readFailure(e)}; expected a file holding the token's user PIN`);
    }
  }
  return env.PKCS11_PIN === undefined || env.PKCS11_PIN === "" ? undefined : env.PKCS11_PIN;
}

/** The module: module-path in the URI, else the one given (PKCS11_MODULE). */
export function modulePathOf(u: Pkcs11Uri, given: string | undefined, where: string): string {
  const m = u.query["module-path"] ?? given;
  if (!m) throw new UserError(`${where}: ${formatPkcs11Uri(u)}: names no PKCS#11 module; give PKCS11_MODULE=/path/to/module.so (e.g. /usr/lib/softhsm/libsofthsm2.so)`);
  return m;
}

interface Token {
  uri: Pkcs11Uri;
  label: string;
  session: GSession;
  p11: P11Crypto;
  /** the provider's WebCrypto, its calls one at a time (a PKCS#11 session runs one operation at once) */
  crypto: CryptoProvider;
}

const modules = new Map<string, GModule>();
const tokens = new Map<string, Token>();

const ckr = (e: unknown): string | undefined => /\b(CKR_[A-Z_]+)\b/.exec(oneLine(e))?.[1];

function openModule(g: Graphene, path: string, name: string): GModule {
  const known = modules.get(path);
  if (known) return known;
  if (!existsSync(path)) throw new UserError(`${name}: ${path}: does not exist; expected a PKCS#11 module (a .so), e.g. /usr/lib/softhsm/libsofthsm2.so`);
  let mod: GModule;
  try {
    mod = g.Module.load(path, path);
  } catch (e) {
    throw new UserError(`${name}: ${path}: cannot be loaded as a PKCS#11 module (${oneLine(e)})`);
  }
  try {
    mod.initialize();
  } catch (e) {
    if (ckr(e) !== "CKR_CRYPTOKI_ALREADY_INITIALIZED") throw new UserError(`${name}: ${path}: the module failed to start (${ckr(e) ?? oneLine(e)})`);
  }
  modules.set(path, mod);
  return mod;
}

/** Little-endian slot handle (graphene's Buffer) as a number. */
const slotNumber = (h: Buffer): bigint => [...h].reverse().reduce((a, b) => (a << 8n) | BigInt(b), 0n);

function tokenMatches(u: Pkcs11Uri, slot: GSlot, t: GToken): boolean {
  const p = u.path;
  const eq = (want: string | undefined, have: string) => want === undefined || want === have.trim();
  return eq(p.token, t.label) && eq(p.manufacturer, t.manufacturerID) && eq(p.serial, t.serialNumber) && eq(p.model, t.model) && eq(p["slot-description"], slot.slotDescription) && eq(p["slot-manufacturer"], slot.manufacturerID) && (u.slotId === undefined || u.slotId === slotNumber(slot.handle));
}

/** Opens (once per process) a logged-in session on the token the URI names. */
function openToken(u: Pkcs11Uri, modulePath: string, pin: string | undefined, where: string): Token {
  const { graphene: g, p11 } = loadProvider();
  const shown = formatPkcs11Uri(u, { query: false });
  const key = `${modulePath}\n${shown}`;
  const known = tokens.get(key);
  if (known) return known;
  const mod = openModule(g, modulePath, "PKCS11_MODULE");
  const lib = u.path;
  const version = `${mod.libraryVersion.major}.${mod.libraryVersion.minor}`;
  if ((lib["library-manufacturer"] !== undefined && lib["library-manufacturer"] !== mod.manufacturerID.trim()) || (lib["library-description"] !== undefined && lib["library-description"] !== mod.libraryDescription.trim()) || (lib["library-version"] !== undefined && !`${version}.`.startsWith(`${lib["library-version"]}.`)))
    throw new UserError(`${where}: ${shown}: the module ${modulePath} is "${mod.libraryDescription.trim()}" by "${mod.manufacturerID.trim()}", version ${version}, not the library the URI names`);
  const slots = mod.getSlots(true);
  const present: { slot: GSlot; token: GToken }[] = [];
  for (let i = 0; i < slots.length; i++) {
    const slot = slots.items(i);
    present.push({ slot, token: slot.getToken() });
  }
  const matching = present.filter((s) => tokenMatches(u, s.slot, s.token));
  const labels = present.map((s) => s.token.label.trim()).filter((l) => l !== "").map((l) => JSON.stringify(l)).join(", ") || "none initialised";
  if (matching.length === 0) throw new UserError(`${where}: ${shown}: no token matches in ${modulePath}; its tokens: ${labels}`);
  if (matching.length > 1) throw new UserError(`${where}: ${shown}: ${matching.length} tokens match in ${modulePath} (${labels}); add serial= or slot-id= to the URI`);
  const { slot, token } = matching[0];
  const label = token.label.trim();
  let session: GSession;
  try {
    session = slot.open(g.SessionFlag.SERIAL_SESSION | g.SessionFlag.RW_SESSION);
  } catch (e) {
    throw new UserError(`${where}: ${shown}: the token ${JSON.stringify(label)} cannot be opened (${ckr(e) ?? oneLine(e)})`);
  }
  if (token.flags & g.TokenFlag.LOGIN_REQUIRED) {
    if (pin === undefined) throw new UserError(`PKCS11_PIN: the token ${JSON.stringify(label)} needs its user PIN; export PKCS11_PIN or set PKCS11_PIN_FILE to a file holding it (never on a command line)`);
    try {
      session.login(pin);
    } catch (e) {
      const code = ckr(e);
      if (code !== "CKR_USER_ALREADY_LOGGED_IN") {
        const why = code === "CKR_PIN_INCORRECT" ? "the PIN is wrong" : code === "CKR_PIN_LOCKED" ? "the PIN is locked (too many wrong tries); unlock it with the SO PIN" : code === "CKR_PIN_LEN_RANGE" ? "the PIN has the wrong length" : `login failed (${code ?? oneLine(e)})`;
        throw new UserError(`PKCS11_PIN: token ${JSON.stringify(label)}: ${why}; nothing was changed`);
      }
    }
  }
  const crypto = new p11.Crypto({ session });
  const t: Token = { uri: u, label, session, p11: crypto, crypto: serialised(crypto) };
  tokens.set(key, t);
  return t;
}

/** A WebCrypto whose sign calls run one after another (others pass through). */
function serialised(c: P11Crypto): CryptoProvider {
  let last: Promise<unknown> = Promise.resolve();
  const sign = (...args: Parameters<SubtleCrypto["sign"]>): Promise<ArrayBuffer> => {
    const next = last.then(() => c.subtle.sign(...args));
    last = next.catch(() => undefined);
    return next;
  };
  const subtle = Object.create(c.subtle, { sign: { value: sign } }) as SubtleCrypto;
  return Object.create(c, { subtle: { value: subtle } }) as CryptoProvider;
}

// ---------------------------------------------------------------------------------------------------------------
// Keys

const CURVES: Record<string, number> = { "06082a8648ce3d030107": 256, "06052b81040022": 384, "06052b81040023": 521 };

function template(g: Graphene, u: Pkcs11Uri, cls?: number): Record<string, unknown> {
  return { ...(cls === undefined ? {} : { class: cls }), token: true, ...(u.path.object !== undefined ? { label: u.path.object } : {}), ...(u.id ? { id: u.id } : {}) };
}

function findAll(t: Token, u: Pkcs11Uri, cls?: number): GKey[] {
  const { graphene: g } = loadProvider();
  const c = t.session.find(template(g, u, cls));
  return Array.from({ length: c.length }, (_, i) => c.items(i).toType<GKey>());
}

const classNames = (g: Graphene, objs: GKey[]): string => [...new Set(objs.map((o) => (Object.entries(g.ObjectClass).find(([, v]) => v === o.class)?.[0] ?? String(o.class)).toLowerCase().replace(/_/g, " ")))].join(", ");

/** The spec of a token key (ECDSA P-256/384/521 or RSA), or why it is not one we sign with. */
function tokenKeySpec(g: Graphene, k: GKey, what: string): KeySpec {
  if (k.type === g.KeyType.EC) {
    const params = k.get("paramsECDSA").toString("hex");
    const size = CURVES[params];
    if (!size) throw new UserError(`${what}: is an EC key on a curve we do not sign with (parameters ${params}); expected ECDSA P-256, P-384 or P-521, or RSA`);
    return { algo: "ecdsa", size };
  }
  if (k.type === g.KeyType.RSA) {
    const bits = k.get("modulus").length * 8;
    return { algo: "rsa", size: bits };
  }
  const type = Object.entries(g.KeyType).find(([, v]) => v === k.type)?.[0] ?? String(k.type);
  throw new UserError(`${what}: is a ${type} key; expected an ECDSA (P-256, P-384, P-521) or RSA private key`);
}

const algorithmFor = (spec: KeySpec): Algorithm =>
  spec.algo === "ecdsa" ? ({ name: "ECDSA", namedCurve: `P-${spec.size}` } as EcKeyAlgorithm) : ({ name: "RSASSA-PKCS1-v1_5", hash: { name: hashFor(spec) } } as RsaHashedKeyAlgorithm);

const specText = (s: KeySpec) => (s.algo === "ecdsa" ? `ECDSA P-${s.size}` : `RSA ${s.size}`);

/** Whether the private key behind `privateKey` signs for `spki` (one test signature, checked with Node's WebCrypto). */
async function signsFor(c: CryptoProvider, privateKey: CryptoKey, spec: KeySpec, spki: Buffer): Promise<boolean> {
  const data = new Uint8Array(randomBytes(32));
  const alg = spec.algo === "ecdsa" ? { name: "ECDSA", hash: hashFor(spec) } : { name: "RSASSA-PKCS1-v1_5" };
  const sig = await c.subtle.sign(alg, privateKey, data);
  try {
    const pub = await getCrypto().subtle.importKey("spki", new Uint8Array(spki), algorithmFor(spec), false, ["verify"]);
    return await getCrypto().subtle.verify(alg, pub, sig, data);
  } catch {
    return false;
  }
}

export interface TokenKeyOptions {
  /** where the URI came from, for messages (CA_KEY, -ca-key, ...) */
  where?: string;
  /** the public key the key must belong to (the CA certificate's), used when the token holds no public key object */
  spki?: Buffer;
}

/**
 * A token's private key as a KeyPair usable as a CA key: `privateKey` is the provider's CryptoKey, `crypto` the
 * provider that signs with it (signDer uses it), `pem` is empty (the key never leaves the token). The public key comes
 * from the token's public key object, else from `spki`; either way one test signature shows the pair belongs together.
 */
export async function loadTokenKeyPair(uri: Pkcs11Uri, modulePath: string, pin: string | undefined, opts: TokenKeyOptions = {}): Promise<KeyPair> {
  const where = opts.where ?? "CA_KEY";
  const t = openToken(uri, modulePath, pin, where);
  const { graphene: g, p11 } = loadProvider();
  const shown = formatPkcs11Uri(uri, { query: false });
  const privs = findAll(t, uri, g.ObjectClass.PRIVATE_KEY);
  if (privs.length === 0) {
    const others = findAll(t, uri);
    if (others.length) throw new UserError(`${where}: ${shown}: token ${JSON.stringify(t.label)} holds a ${classNames(g, others)} by that name but no private key; expected an ECDSA or RSA private key`);
    throw new UserError(`${where}: ${shown}: token ${JSON.stringify(t.label)} holds no private key by that name (object=${uri.path.object ?? ""}${uri.id ? `, id=${uri.path.id}` : ""})`);
  }
  if (privs.length > 1) throw new UserError(`${where}: ${shown}: token ${JSON.stringify(t.label)} holds ${privs.length} private keys by that name; add id= to the URI`);
  const k = privs[0];
  const spec = tokenKeySpec(g, k, `${where}: ${shown}`);
  if (k.getAttribute({ sign: null }).sign === false) throw new UserError(`${where}: ${shown}: the key may not sign (CKA_SIGN is false); expected a signing key`);
  let privateKey: CryptoKey;
  try {
    privateKey = await t.p11.keyStorage.getItem(p11.CryptoKey.getID(k), algorithmFor(spec), false, ["sign"]);
  } catch (e) {
    throw new UserError(`${where}: ${shown}: the key cannot be used (${ckr(e) ?? oneLine(e)})`);
  }
  let spki = opts.spki;
  const pubTemplate = { ...uri, id: k.id.length ? k.id : uri.id, path: { ...uri.path, object: k.label || uri.path.object } };
  const pubs = findAll(t, pubTemplate, g.ObjectClass.PUBLIC_KEY);
  if (pubs.length === 1) {
    try {
      const pub = await t.p11.keyStorage.getItem(p11.CryptoKey.getID(pubs[0]), algorithmFor(spec), true, ["verify"]);
      spki = Buffer.from(await t.p11.subtle.exportKey("spki", pub));
    } catch {
      // fall back on the certificate's public key
    }
  }
  if (!spki) throw new UserError(`${where}: ${shown}: token ${JSON.stringify(t.label)} holds no public key for it and there is no CA certificate to take it from`);
  const mismatch = `${where}: ${shown}: the token's key does not belong to the CA certificate`;
  if (opts.spki && !spki.equals(opts.spki)) throw new UserError(`${mismatch} (its public key object differs); expected the CA's own key`);
  if (!(await signsFor(t.crypto, privateKey, spec, spki))) throw new UserError(`${mismatch} (a test signature does not verify with its public key); expected the CA's own key`);
  return { spec, privateKey, spki, pem: "", crypto: t.crypto, uri: shown };
}

/** Whether the token holds a private key by the URI's name (for "keep the key or make one"). */
export function tokenHasKey(uri: Pkcs11Uri, modulePath: string, pin: string | undefined, where = "CA_KEY"): boolean {
  const t = openToken(uri, modulePath, pin, where);
  return findAll(t, uri, loadProvider().graphene.ObjectClass.PRIVATE_KEY).length > 0;
}

/**
 * Generates a key pair inside the token: the private key sensitive and never extractable, labelled with the URI's
 * object (and given its id, when it has one). Refuses when the token already holds a private key by that name.
 */
export async function generateTokenKeyPair(uri: Pkcs11Uri, modulePath: string, pin: string | undefined, spec: KeySpec, opts: { where?: string } = {}): Promise<KeyPair> {
  const where = opts.where ?? "CA_KEY";
  const t = openToken(uri, modulePath, pin, where);
  const { graphene: g } = loadProvider();
  const shown = formatPkcs11Uri(uri, { query: false });
  if (uri.path.object === undefined) throw new UserError(`${where}: ${shown}: a key made in the token needs a label; add object=NAME to the URI`);
  if (findAll(t, uri, g.ObjectClass.PRIVATE_KEY).length)
    throw new UserError(`${where}: ${shown}: token ${JSON.stringify(t.label)} already holds a private key by that name, and a new key was asked for; name a new object (e.g. object=${uri.path.object}-2) or delete the old one with pkcs11-tool`);
  const p11params = { token: true, sensitive: true, label: uri.path.object };
  const params =
    spec.algo === "ecdsa"
      ? { name: "ECDSA", namedCurve: `P-${spec.size}`, ...p11params }
      : { name: "RSASSA-PKCS1-v1_5", modulusLength: spec.size, publicExponent: new Uint8Array([1, 0, 1]), hash: hashFor(spec), ...p11params };
  let kp: CryptoKeyPair;
  try {
    kp = (await t.p11.subtle.generateKey(params, false, ["sign", "verify"])) as CryptoKeyPair;
  } catch (e) {
    throw new UserError(`${where}: ${shown}: token ${JSON.stringify(t.label)} could not make a ${specText(spec)} key (${ckr(e) ?? oneLine(e)})`);
  }
  if (uri.id) for (const k of [kp.privateKey, kp.publicKey]) (k as unknown as { key: GKey }).key.setAttribute({ id: uri.id });
  const spki = Buffer.from(await t.p11.subtle.exportKey("spki", kp.publicKey));
  // a key the module made but we cannot read back would be useless: check it now
  createPublicKey({ key: spki, format: "der", type: "spki" });
  return { spec, privateKey: kp.privateKey, spki, pem: "", crypto: t.crypto, uri: shown };
}

/** Where a key reference came from and how to reach it: the URI, its module, the PIN (from the environment). */
export interface TokenRef {
  uri: Pkcs11Uri;
  modulePath: string;
  pin?: string;
  where: string;
}

/** Resolves a key reference string that is a PKCS#11 URI: the module from the URI or PKCS11_MODULE, the PIN from the environment. */
export function tokenRef(text: string, where: string, env: NodeJS.ProcessEnv = process.env): TokenRef {
  const uri = parsePkcs11Uri(text, where);
  return { uri, modulePath: modulePathOf(uri, env.PKCS11_MODULE || undefined, where), pin: readPin(uri, env), where };
}
