// Go's time.ParseDuration, as cfssl's ca-config.json uses it: "8760h", "1h30m", "90s". Units ns us µs ms s m h;
// no days or years. Returns milliseconds, or an error message naming what is accepted.

const UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  "μs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Go's limit: about 292 years in nanoseconds. */
const MAX_MS = 9_223_372_036_854.775;

export const DURATION_HELP = 'a Go duration such as "8760h" or "1h30m" (units h, m, s, ms, us, ns; no d or y)';

export function parseGoDuration(s: string): { ms?: number; error?: string } {
  const m = /^([+-]?)(.*)$/s.exec(s)!;
  const sign = m[1] === "-" ? -1 : 1;
  let rest = m[2];
  if (rest === "0") return { ms: 0 };
  if (rest === "") return { error: `${JSON.stringify(s)} is not ${DURATION_HELP}` };
  let total = 0;
  const re = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;
  while (rest.length > 0) {
    const part = re.exec(rest);
    if (!part) {
      const hint = /^\d+(\.\d+)?[dy]/.test(rest) ? " (days and years are not Go duration units: use hours, e.g. 8760h for 365 days)" : "";
      return { error: `${JSON.stringify(s)} is not ${DURATION_HELP}${hint}` };
    }
    total += Number(part[1]) * UNITS[part[2]];
    rest = rest.slice(part[0].length);
  }
  if (total > MAX_MS) return { error: `${JSON.stringify(s)} is longer than Go's maximum duration (about 292 years)` };
  return { ms: sign * total };
}

export function formatDuration(ms: number): string {
  const h = Math.floor(ms / 3_600_000);
  const rest = ms - h * 3_600_000;
  if (rest === 0) return `${h}h`;
  const m = Math.floor(rest / 60_000);
  const s = (rest - m * 60_000) / 1000;
  return `${h}h${m}m${s}s`;
}
