// A minimal etcd v3 client for the live tests' continuous traffic: one gRPC unary call (KV.Put or KV.Range) over a
// NEW HTTP/2 + TLS connection each time, with the client's certificate, key and trust file read from disk for every
// request, the way a spawned `etcdctl` reads them. The judge is still the real etcd: it checks the certificate
// chain against its trusted CA, maps the certificate's CN to the etcd user and applies its roles.
//
// Why not spawn etcdctl for each request: a Go process per request cost ~57 ms of CPU (measured: the CA rotation test
// spent 46 s of CPU in 45 s, a whole core of this 2-core machine, on its traffic), which slowed every other test
// file running beside it. This client costs a TLS handshake and a few frames in the jest worker.
//
// gRPC over HTTP/2: POST /etcdserverpb.KV/<Method>, content-type application/grpc, a body of one length-prefixed
// protobuf message; the outcome is the grpc-status trailer (or header, for a "trailers-only" reply). The protobuf
// messages used here have only bytes and varint fields, encoded by hand below.
import { ClientHttp2Session, connect, constants } from "node:http2";
import { readFileSync } from "node:fs";
import { createSecureContext, SecureContext, TLSSocket } from "node:tls";
import { join } from "node:path";

export interface CallResult {
  ok: boolean;
  /** the failure in one line (empty when ok) */
  error: string;
  /** whether the failure is about TLS or trust (handshake, certificate, unknown authority) */
  tls: boolean;
  /** the reply's message (protobuf), when ok */
  body?: Buffer;
}

const varint = (n: number): Buffer => {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
};
const bytesField = (no: number, v: Buffer): Buffer => Buffer.concat([varint((no << 3) | 2), varint(v.length), v]);

/** The fields of a protobuf message: field number -> values (varints as numbers, length-delimited as Buffers). */
export function pbFields(b: Buffer): Map<number, (number | Buffer)[]> {
  const out = new Map<number, (number | Buffer)[]>();
  let i = 0;
  const readVarint = (): number => {
    let n = 0;
    let shift = 0;
    for (;;) {
      const x = b[i++];
      n += (x & 0x7f) * 2 ** shift;
      if (!(x & 0x80)) return n;
      shift += 7;
    }
  };
  while (i < b.length) {
    const tag = readVarint();
    const [no, wire] = [Math.floor(tag / 8), tag & 7];
    let v: number | Buffer;
    if (wire === 0) v = readVarint();
    else if (wire === 2) {
      const len = readVarint();
      v = b.subarray(i, i + len);
      i += len;
    } else if (wire === 1) {
      v = b.subarray(i, i + 8);
      i += 8;
    } else if (wire === 5) {
      v = b.subarray(i, i + 4);
      i += 4;
    } else throw new Error(`protobuf wire type ${wire} not supported`);
    out.set(no, [...(out.get(no) ?? []), v]);
  }
  return out;
}

/** A failure about trust: a certificate refused by either side (not a connection cut while the handshake ran). */
const TLS_ERROR = /certificate|alert|verify|self.signed|issuer|authority|ERR_SSL/i;
/** A connection refused or cut (a member stopping or down for its restart): the client tries the next endpoint. */
const REFUSED = /ECONNREFUSED|ECONNRESET|EPIPE|GOAWAY|socket disconnected|ERR_HTTP2_SESSION_ERROR|ERR_HTTP2_STREAM_CANCEL/;

/**
 * The TLS context of the files' bytes (CA, certificate, key), parsed once per distinct content: the files are read on
 * every request (a renewed certificate is used from the next request on), but the same bytes need not be parsed into
 * a new OpenSSL context each time. A context never resumes a session by itself (Node keeps no client session cache),
 * and each request's handshake is checked to be a full one.
 */
const contexts = new Map<string, SecureContext>();
function contextFor(ca: Buffer, cert: Buffer, key: Buffer): SecureContext {
  const k = `${ca.length} ${cert.length} ${key.length} ${ca.toString("latin1")}${cert.toString("latin1")}${key.toString("latin1")}`;
  let c = contexts.get(k);
  if (!c) {
    c = createSecureContext({ ca, cert, key });
    if (contexts.size >= 64) contexts.clear();
    contexts.set(k, c);
  }
  return c;
}

/** The client's files: certificate and key of USER in DIR, the trust file TRUST. */
export interface ClientFiles {
  cert: string;
  key: string;
  ca: string;
}

export const userFiles = (dir: string, user: string, trust: string): ClientFiles => ({ cert: join(dir, `${user}.pem`), key: join(dir, `${user}-key.pem`), ca: trust });

/** One unary call to ENDPOINT (https://host:port) on a new connection; never throws. METHOD: "Range" (KV) or "Auth/UserGet". */
export function grpcCall(endpoint: string, files: ClientFiles, method: string, message: Buffer, timeoutMs = 6000): Promise<CallResult> {
  return new Promise((resolve) => {
    let session: ClientHttp2Session | undefined;
    let done = false;
    let status: string | undefined;
    let grpcMessage = "";
    const chunks: Buffer[] = [];
    const finish = (r: CallResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      session?.destroy();
      resolve(r);
    };
    const fail = (e: unknown) => {
      const err = e as NodeJS.ErrnoException;
      const text = `${err.code ?? ""} ${err.message ?? String(e)}`.trim();
      finish({ ok: false, error: text, tls: TLS_ERROR.test(text) && !/socket disconnected before secure TLS/.test(text) });
    };
    const timer = setTimeout(() => finish({ ok: false, error: `timed out after ${timeoutMs} ms`, tls: false }), timeoutMs);
    try {
      session = connect(endpoint, { secureContext: contextFor(readFileSync(files.ca), readFileSync(files.cert), readFileSync(files.key)), ALPNProtocols: ["h2"] });
      // a full handshake every time (the point of the traffic: each request meets the member's current certificate)
      session.on("connect", (s: ClientHttp2Session) => {
        // no socket: the session was destroyed before this event ran (the call already failed or timed out; seen
        // under load as a TypeError that failed the whole test file)
        const socket = s.socket as TLSSocket | undefined;
        if (socket?.isSessionReused()) fail(new Error("the TLS session was resumed; every request must make a full handshake"));
      });
    } catch (e) {
      fail(e);
      return;
    }
    session.on("error", fail);
    const req = session.request({
      [constants.HTTP2_HEADER_METHOD]: "POST",
      // "Put", "Range": the KV service; "Auth/UserList" and the like: that service
      [constants.HTTP2_HEADER_PATH]: method.includes("/") ? `/etcdserverpb.${method}` : `/etcdserverpb.KV/${method}`,
      "content-type": "application/grpc",
      te: "trailers",
    });
    const header = Buffer.alloc(5);
    header.writeUInt32BE(message.length, 1);
    req.on("response", (h) => {
      if (h["grpc-status"] !== undefined) [status, grpcMessage] = [String(h["grpc-status"]), String(h["grpc-message"] ?? "")];
    });
    req.on("trailers", (h) => {
      if (h["grpc-status"] !== undefined) [status, grpcMessage] = [String(h["grpc-status"]), String(h["grpc-message"] ?? "")];
    });
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("error", fail);
    req.on("end", () => {
      if (status === undefined) return finish({ ok: false, error: "no grpc-status in the reply", tls: false });
      if (status !== "0") return finish({ ok: false, error: `grpc-status ${status}: ${decodeURIComponent(grpcMessage)}`, tls: TLS_ERROR.test(grpcMessage) });
      const body = Buffer.concat(chunks);
      finish({ ok: true, error: "", tls: false, body: body.subarray(5, 5 + body.readUInt32BE(1)) });
    });
    req.end(Buffer.concat([header, message]));
  });
}

/** A failure of the transport or of a member in transition (the kind etcd's own client retries on another endpoint). */
const transient = (r: CallResult): boolean => !r.tls && (REFUSED.test(r.error) || /^no grpc-status|^grpc-status 14:/.test(r.error));

/**
 * A call through several endpoints, as etcd's multi-endpoint client (clientv3, which etcdctl and calicoctl use) does:
 * a member that refuses or drops the connection, or answers "unavailable" (it is stopping, or its leader changed),
 * is retried on the next endpoint until the deadline; anything else (a TLS refusal above all, never retried; a
 * permission error; a wrong value) is the call's result. The puts here are idempotent, so a retry is safe.
 */
export async function callAny(endpoints: string[], files: ClientFiles, method: string, message: Buffer, deadlineMs = 8000): Promise<CallResult> {
  const end = Date.now() + deadlineMs;
  let last: CallResult = { ok: false, error: "no endpoint", tls: false };
  for (let i = 0; ; i++) {
    last = await grpcCall(endpoints[i % endpoints.length], files, method, message, Math.max(1000, Math.min(6000, end - Date.now())));
    if (!transient(last) || Date.now() > end) return last;
    if (i % endpoints.length === endpoints.length - 1) await new Promise((r) => setTimeout(r, 200));
  }
}

/** KV.Put key=value through the endpoints. */
export const put = (endpoints: string[], files: ClientFiles, key: string, value: string) =>
  callAny(endpoints, files, "Put", Buffer.concat([bytesField(1, Buffer.from(key)), bytesField(2, Buffer.from(value))]));

/** KV.Range of one key: ok only when the key exists and its value is VALUE. */
export async function getEquals(endpoints: string[], files: ClientFiles, key: string, value: string): Promise<CallResult> {
  const { kvs, ...r } = await rangeOf(endpoints, files, key);
  if (!r.ok) return r;
  const got = kvs[0]?.value;
  return got === value ? r : { ok: false, error: `read ${JSON.stringify(got)} for ${key}, expected ${JSON.stringify(value)}`, tls: false };
}

/**
 * Whether a member serves as `etcdctl endpoint health` judges it: a linearizable read of the key "health" is
 * answered (a permission error counts as answered, as in etcdctl: the member and its leader are there). Fails fast
 * on a member not listening yet, where etcdctl waits out its dial timeout.
 */
export async function memberHealthy(endpoint: string, files: ClientFiles): Promise<boolean> {
  const r = await grpcCall(endpoint, files, "Range", bytesField(1, Buffer.from("health")), 3000);
  return r.ok || /^grpc-status 7:/.test(r.error);
}

/** Waits until every endpoint is healthy (memberHealthy, as root of the tree in CERTS); throws after the deadline. */
export async function waitHealthy(certs: string, endpoints: string[], deadlineMs = 60_000): Promise<void> {
  const files = userFiles(certs, "root", join(certs, "ca.pem"));
  const end = Date.now() + deadlineMs;
  for (;;) {
    const up = await Promise.all(endpoints.map((e) => memberHealthy(e, files)));
    if (up.every(Boolean)) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${endpoints.filter((_, i) => !up[i]).join(", ")} to be healthy`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A protobuf message of bytes fields (field number, value), and a varint field: for the requests below. */
export const pbBytes = (no: number, v: Buffer | string): Buffer => bytesField(no, Buffer.from(v));
export const pbVarint = (no: number, v: number): Buffer => Buffer.concat([varint(no << 3), varint(v)]);

/**
 * KV.Range through the endpoints as the client FILES, as `etcdctl get [--prefix] [--keys-only] -- KEY` asks it (the
 * prefix's range end computed as etcdctl computes it: RANGE_END given by the caller). On success, the keys and values.
 */
export async function rangeOf(endpoints: string[], files: ClientFiles, key: string, opts: { rangeEnd?: Buffer; keysOnly?: boolean } = {}): Promise<CallResult & { kvs: { key: string; value: string }[] }> {
  const msg = Buffer.concat([pbBytes(1, key), ...(opts.rangeEnd ? [pbBytes(2, opts.rangeEnd)] : []), ...(opts.keysOnly ? [pbVarint(8, 1)] : [])]);
  const r = await callAny(endpoints, files, "Range", msg);
  const kvs = r.ok
    ? ((pbFields(r.body!).get(2) ?? []) as Buffer[]).map((kv) => {
        const f = pbFields(kv);
        return { key: (f.get(1)?.[0] as Buffer | undefined)?.toString() ?? "", value: (f.get(5)?.[0] as Buffer | undefined)?.toString() ?? "" };
      })
    : [];
  return { ...r, kvs };
}

/** An RPC's reply without its response header (field 1: cluster id, member id, revision, raft term), in hex. */
export function withoutHeader(body: Buffer): string {
  const out: string[] = [];
  for (const [no, vs] of pbFields(body)) if (no !== 1) for (const v of vs) out.push(`${no}:${Buffer.isBuffer(v) ? v.toString("hex") : v}`);
  return out.join(" ");
}

/** The repeated string field NO of a reply (user names of Auth/UserList, roles of Auth/UserGet and Auth/RoleList). */
export const stringsOf = (body: Buffer, no: number): string[] => ((pbFields(body).get(no) ?? []) as Buffer[]).map((b) => b.toString());
