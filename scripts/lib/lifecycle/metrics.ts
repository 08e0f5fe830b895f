// `make check-expiration FORMAT=prometheus`: the expiry report in Prometheus' text format, for node_exporter's
// textfile collector (a *.prom file in its --collector.textfile.directory). One series per certificate and metric,
// labelled with name, CN, role, issuer and serial; written to METRICS_FILE atomically (temp file + rename, the temp
// file not ending in .prom), so the collector reads the old file or the new one, never half of one.

import { dirname } from "node:path";
import { existsSync, statSync } from "node:fs";
import { UserError } from "../common/errors";
import { commitWrites } from "../tree/output";
import { ExpiryReport } from "./expiry";

export const METRIC_NOT_AFTER = "tls_setup_certificate_not_after_timestamp_seconds";
export const METRIC_SECONDS_LEFT = "tls_setup_certificate_expires_in_seconds";
export const METRIC_REPORT_TIME = "tls_setup_check_expiration_timestamp_seconds";

/** A label value in the text format: backslash, double quote and line feed escaped. */
export const escapeLabel = (v: string): string => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
/** HELP text: backslash and line feed escaped. */
const escapeHelp = (v: string): string => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");

const seconds = (iso: string): number => Math.floor(Date.parse(iso) / 1000);

/** The report as the text exposition format (ends with a line feed, as the textfile collector wants). */
export function formatPrometheus(r: ExpiryReport): string {
  const now = seconds(r.now);
  const lines: string[] = [];
  const family = (name: string, help: string, rows: [Record<string, string> | undefined, number][]) => {
    lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} gauge`);
    for (const [labels, value] of rows) {
      const l = labels ? `{${Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}` : "";
      lines.push(`${name}${l} ${value}`);
    }
  };
  // a revoked certificate is left out: it is never renewed, so an alert on its end would ask for nothing
  const live = r.certificates.filter((e) => e.status !== "revoked");
  const labels = live.map((e) => ({ name: e.name, cn: e.cn, role: e.role, issuer: e.issuer, serial: e.serial }));
  family(METRIC_NOT_AFTER, `The certificate's notAfter (end of validity), as a Unix timestamp; from tls-setup's check-expiration of ${r.certsDir}.`, live.map((e, i) => [labels[i], seconds(e.notAfter)]));
  family(METRIC_SECONDS_LEFT, "Seconds from the report's time until the certificate's notAfter (negative once it has ended).", live.map((e, i) => [labels[i], seconds(e.notAfter) - now]));
  family(METRIC_REPORT_TIME, "When tls-setup's check-expiration wrote these metrics, as a Unix timestamp (an old value: the timer stopped).", [[undefined, now]]);
  return lines.join("\n") + "\n";
}

/** Writes the metrics to FILE atomically; its directory must exist (the collector's directory is not made here). */
export async function writeMetricsFile(file: string, text: string): Promise<void> {
  if (file === "" || file.endsWith("/")) throw new UserError(`METRICS_FILE: ${JSON.stringify(file)} is not a file name; expected e.g. /var/lib/node_exporter/textfile/tls-setup.prom`);
  const dir = dirname(file);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UserError(`METRICS_FILE: ${file}: its directory ${dir} does not exist; create it (node_exporter's --collector.textfile.directory)`);
  await commitWrites([{ path: file, data: text, mode: 0o644, tempSuffix: ".tmp" }]);
}
