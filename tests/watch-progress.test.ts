// The progress line of long builds: drawn on a terminal only, never under CI=true, cleared at the end.
import { createProgress, progressLine } from "../scripts/lib/tree/progress";

function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; written: string[] } {
  const written: string[] = [];
  const stream = { isTTY, write: (s: string) => (written.push(s), true) } as unknown as NodeJS.WriteStream;
  return { stream, written };
}

describe("progress", () => {
  test("on a terminal: counts up with \\r, keeps printed lines clear of it, and is erased at the end", () => {
    const { stream, written } = fakeStream(true);
    const printed: string[] = [];
    const p = createProgress({ stream, env: {}, minTotal: 3, intervalMs: 0 });
    const log = p.wrap((l) => printed.push(l));
    p.update(1, 4);
    expect(written.join("")).toBe("\r[1/4] making certificates…\x1b[K");
    log("made certs/u1.pem");
    p.update(2, 4);
    p.update(3, 4);
    p.update(4, 4);
    expect(printed).toEqual(["made certs/u1.pem"]);
    const all = written.join("");
    // erased before the line was printed, redrawn after it, and erased at the end
    expect(all).toBe("\r[1/4] making certificates…\x1b[K" + "\r\x1b[K" + "\r[1/4] making certificates…\x1b[K" + "\r[2/4] making certificates…\x1b[K" + "\r[3/4] making certificates…\x1b[K" + "\r\x1b[K");
    expect(progressLine(57, 200)).toBe("[ 57/200] making certificates…");
  });

  test("quiet when stderr is not a terminal, under CI=true, and for short runs", () => {
    for (const [tty, env, total] of [[false, {}, 100], [true, { CI: "true" }, 100], [true, {}, 5]] as const) {
      const { stream, written } = fakeStream(tty);
      const p = createProgress({ stream, env, minTotal: 20, intervalMs: 0 });
      const printed: string[] = [];
      const log = p.wrap((l) => printed.push(l));
      for (let i = 1; i <= total; i++) {
        log(`made ${i}`);
        p.update(i, total);
      }
      p.clear();
      expect(written).toEqual([]);
      expect(printed).toHaveLength(total);
    }
  });
});
