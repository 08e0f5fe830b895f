// A one-line progress display for long builds ("[ 57/200] making certificates…"), drawn on stderr with \r and
// cleared at the end. Only on a terminal and not under CI=true; elsewhere every method is a no-op pass-through.

export interface Progress {
  /** build()'s onProgress callback */
  update(done: number, total: number): void;
  /** wraps a line printer so lines do not run into the progress line */
  wrap(print: (line: string) => void): (line: string) => void;
  /** removes the progress line */
  clear(): void;
}

export interface ProgressOptions {
  stream?: NodeJS.WriteStream;
  env?: NodeJS.ProcessEnv;
  /** runs shorter than this show nothing */
  minTotal?: number;
  /** at most one redraw per this many ms (the last one is always drawn) */
  intervalMs?: number;
}

/** Whether a progress line would be shown on this stream. */
export function progressWanted(stream: NodeJS.WriteStream = process.stderr, env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(stream.isTTY) && env.CI !== "true" && env.TERM !== "dumb";
}

export const progressLine = (done: number, total: number): string => {
  const w = String(total).length;
  return `[${String(done).padStart(w)}/${total}] making certificates…`;
};

export function createProgress(o: ProgressOptions = {}): Progress {
  const stream = o.stream ?? process.stderr;
  if (!progressWanted(stream, o.env)) return { update() {}, wrap: (p) => p, clear() {} };
  const minTotal = o.minTotal ?? 20;
  const interval = o.intervalMs ?? 50;
  let shown = "";
  let latest = "";
  let last = 0;
  const draw = (s: string) => {
    stream.write(`\r${s}\x1b[K`);
    shown = s;
  };
  const clear = () => {
    if (shown) stream.write("\r\x1b[K");
    shown = "";
  };
  return {
    update(done, total) {
      if (total < minTotal) return;
      latest = done < total ? progressLine(done, total) : "";
      const now = Date.now();
      if (done < total && now - last < interval) return;
      last = now;
      if (latest) draw(latest);
      else clear();
    },
    wrap: (print) => (line) => {
      const again = shown && latest;
      clear();
      print(line);
      if (again) draw(latest);
    },
    clear,
  };
}
