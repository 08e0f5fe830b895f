// make check-expiration FORMAT=prometheus (and METRICS_FILE): node_exporter's textfile format, judged by promtool
// (Debian's prometheus package) and read back against openssl's notAfter and serial of each certificate. The recipe
// runs in process (lifecycle.js check-expiration with the Makefile's tree options; FORMAT and METRICS_FILE become
// --format and --metrics-file), but for one spawned make with both variables, which keeps make's wiring of them.
import fs from "node:fs";
import fsp from "node:fs/promises";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describeWith, haveTool, mode, sh, snapshot } from "./helpers";
import { expiryTree, lifecycle, make, openssl509, Tree } from "./lifecycle-fixtures";
import { writeMetricsFile } from "../scripts/lib/lifecycle/metrics";

const haveOpenssl = haveTool("openssl");
const NOT_AFTER = "tls_setup_certificate_not_after_timestamp_seconds";
const LEFT = "tls_setup_certificate_expires_in_seconds";
const ODD_CN = 'odd "quoted" \\ name';

let t: Tree;
beforeAll(async () => {
  // a certificate with a CN that needs escaping in a label value (openssl reads \\ in -subj as one backslash)
  t = await expiryTree({ name: "odd", subj: `/CN=${ODD_CN.replace(/\\/g, "\\\\")}` }, haveOpenssl);
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A reader of the text format's sample lines, with label-value unescaping (written here, not taken from the code). */
function parseSamples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[2] ? m[2].slice(1, -1) : "";
    for (let i = 0; i < body.length; ) {
      const eq = body.indexOf("=", i);
      const key = body.slice(i, eq);
      if (body[eq + 1] !== '"') throw new Error(`label ${key} is not quoted: ${line}`);
      let v = "";
      let j = eq + 2;
      for (; body[j] !== '"'; j++) {
        if (body[j] === "\\") {
          j++;
          v += body[j] === "n" ? "\n" : body[j];
        } else v += body[j];
      }
      labels[key] = v;
      i = j + 1;
      if (body[i] === ",") i++;
    }
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

function promtool(file: string): { status: number | null; out: string } {
  const r = spawnSync("promtool", ["check", "metrics"], { input: fs.readFileSync(file), encoding: "utf8" });
  return { status: r.status, out: (r.stdout + r.stderr).trim() };
}

describeWith("promtool", "openssl")("FORMAT=prometheus", () => {
  test("promtool accepts it; every certificate's notAfter and seconds left, labelled, match openssl", async () => {
    const before = snapshot(t.certs);
    const started = Math.floor(Date.now() / 1000);
    const r = await lifecycle(t, "check-expiration", ["--format", "prometheus"]);
    const ended = Math.ceil(Date.now() / 1000);
    // the expiring and expired certificates still make it fail (the script: 1, make: 2), as in the other formats
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(join(t.certs, "old.pem"));
    const file = join(t.dir, "stdout.prom");
    fs.writeFileSync(file, r.stdout);
    expect(promtool(file)).toEqual({ status: 0, out: "" });
    expect(r.stdout).toContain(`# TYPE ${NOT_AFTER} gauge\n`);
    expect(r.stdout).toContain(`# HELP ${LEFT} `);
    const samples = parseSamples(r.stdout);
    const names = fs.readdirSync(t.certs).filter((f) => f.endsWith(".pem") && !f.endsWith("-key.pem")).map((f) => f.replace(/\.pem$/, "")).sort();
    expect(names).toContain("odd");
    for (const metric of [NOT_AFTER, LEFT]) expect(samples.filter((s) => s.name === metric).map((s) => s.labels.name).sort()).toEqual(names);
    const reportTime = samples.find((s) => s.name === "tls_setup_check_expiration_timestamp_seconds")!.value;
    expect(reportTime).toBeGreaterThanOrEqual(started);
    expect(reportTime).toBeLessThanOrEqual(ended);
    for (const s of samples.filter((x) => x.name === NOT_AFTER)) {
      const f = join(t.certs, `${s.labels.name}.pem`);
      // one openssl run per certificate for the four fields judged (notAfter, serial, subject and issuer in RFC 2253)
      const seen = openssl509(f, "-enddate", "-serial", "-subject", "-issuer", "-nameopt", "RFC2253");
      const field = (k: string) => new RegExp(`^${k}=(.*)$`, "m").exec(seen)?.[1] ?? "";
      const notAfter = new Date(field("notAfter")).getTime() / 1000;
      expect([s.labels.name, s.value]).toEqual([s.labels.name, notAfter]);
      const left = samples.find((x) => x.name === LEFT && x.labels.name === s.labels.name)!;
      expect(left.value).toBe(notAfter - reportTime);
      expect(left.labels).toEqual(s.labels);
      const serial = field("serial").toLowerCase();
      expect(serial.replace(/^(00)+(?=[89a-f])/, "")).toBe(s.labels.serial);
      const subject = (k: string) => /CN=((?:[^,\\\n]|\\.)*)/.exec(field(k))?.[1]?.replace(/\\(.)/g, "$1") ?? "";
      expect([s.labels.name, s.labels.cn, s.labels.issuer]).toEqual([s.labels.name, subject("subject"), subject("issuer")]);
    }
    const byName = Object.fromEntries(samples.filter((s) => s.name === NOT_AFTER).map((s) => [s.labels.name, s.labels]));
    expect(byName.odd.cn).toBe(ODD_CN);
    expect(byName.odd.role).toBe("unknown");
    expect([byName.ca.role, byName.etcd1.role, byName.proxy1.role, byName.root.role]).toEqual(["ca", "member", "proxy", "user"]);
    expect(samples.find((s) => s.name === LEFT && s.labels.name === "old")!.value).toBeLessThan(0);
    expect(snapshot(t.certs)).toEqual(before);
  });

  test("promtool is a real judge: an unescaped quote and a missing TYPE family fail it", async () => {
    const r = await lifecycle(t, "check-expiration", ["--format", "prometheus"]);
    const file = join(t.dir, "bad.prom");
    fs.writeFileSync(file, r.stdout.replace('odd \\"quoted\\"', 'odd "quoted"'));
    expect(promtool(file).status).not.toBe(0);
    fs.writeFileSync(file, r.stdout.replace(/^# TYPE (\S+) gauge$/m, "# TYPE $1 gauge\n# TYPE $1 counter"));
    expect(promtool(file).status).not.toBe(0);
  });

  test("METRICS_FILE writes the same text to the file (0644), leaves no temp file, and says so in one line", async () => {
    const dir = join(t.dir, "textfile");
    fs.mkdirSync(dir);
    const file = join(dir, "tls-setup.prom");
    const certs = fs.readdirSync(t.certs).filter((f) => f.endsWith(".pem") && !f.endsWith("-key.pem")).length;
    const r = await lifecycle(t, "check-expiration", ["--metrics-file", file]);
    expect(r.status).toBe(1);
    expect(r.stdout.trim()).toBe(`check-expiration: wrote the metrics of ${certs} certificates to ${file}`);
    expect(promtool(file)).toEqual({ status: 0, out: "" });
    expect(mode(file)).toBe(0o644);
    expect(fs.readdirSync(dir)).toEqual(["tls-setup.prom"]);
    const first = parseSamples(fs.readFileSync(file, "utf8")).filter((s) => s.name === NOT_AFTER);
    expect(first).toHaveLength(certs);
    // again, explicitly FORMAT=prometheus: replaced in place (spawned: make's wiring of FORMAT and METRICS_FILE)
    expect(make(t, ["-s", "check-expiration"], ["FORMAT=prometheus", `METRICS_FILE=${file}`]).status).toBe(2);
    expect(parseSamples(fs.readFileSync(file, "utf8")).filter((s) => s.name === NOT_AFTER)).toEqual(first);
    expect(fs.readdirSync(dir)).toEqual(["tls-setup.prom"]);
  });
});

test("the metrics file's temp file is in the same directory and does not end in .prom (node_exporter reads *.prom)", async () => {
  const dir = fs.mkdtempSync(join(t.dir, "atomic-"));
  const file = join(dir, "x.prom");
  const opened: string[] = [];
  const renamed: string[] = [];
  const realOpen = fsp.open;
  const realRename = fsp.rename;
  const o = jest.spyOn(fsp, "open").mockImplementation(((path: fs.PathLike, flags?: string | number, m?: fs.Mode) => {
    opened.push(String(path));
    return realOpen(path, flags, m);
  }) as typeof fsp.open);
  const rn = jest.spyOn(fsp, "rename").mockImplementation(((a: fs.PathLike, b: fs.PathLike) => {
    renamed.push(`${String(a)} -> ${String(b)}`);
    return realRename(a, b);
  }) as typeof fsp.rename);
  try {
    await writeMetricsFile(file, "x 1\n");
  } finally {
    o.mockRestore();
    rn.mockRestore();
  }
  const temp = opened.find((f) => f.startsWith(join(dir, ".tls-setup-tmp-")));
  expect(temp).toBeDefined();
  expect(temp!.endsWith(".prom")).toBe(false);
  expect(renamed).toEqual([`${temp} -> ${file}`]);
  expect(fs.readFileSync(file, "utf8")).toBe("x 1\n");
});

test("bad FORMAT, FORMAT=json with METRICS_FILE, and a missing directory: one line, nothing written", async () => {
  const missing = join(t.dir, "nosuchdir", "m.prom");
  for (const [extra, msg] of [
    [["--format", "xml"], 'FORMAT: "xml" is not an output format; accepted: text, json, prometheus'],
    [["--format", "json", "--metrics-file", join(t.dir, "m.prom")], "METRICS_FILE: is written in the prometheus format only"],
    [["--metrics-file", missing], `METRICS_FILE: ${missing}: its directory ${join(t.dir, "nosuchdir")} does not exist`],
  ] as [string[], string][]) {
    const r = await lifecycle(t, "check-expiration", extra);
    expect(r.status).not.toBe(0);
    const lines = r.stderr.split("\n").filter((l) => l && !l.startsWith("make: "));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(msg);
  }
  expect(fs.existsSync(join(t.dir, "m.prom"))).toBe(false);
  expect(fs.existsSync(join(t.dir, "nosuchdir"))).toBe(false);
});
