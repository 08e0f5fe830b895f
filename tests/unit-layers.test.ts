// The library's folders are layers: a folder may import from its own folder and from lower layers only, never from a
// higher one or from a sibling on its own level. This keeps the arrows in docs/architecture.md true.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";

const LIB = resolve(__dirname, "../scripts/lib");
/** Lower number = lower layer. Folders on one level may not import each other. */
export const LAYERS: Record<string, number> = { common: 0, config: 1, x509: 2, tree: 3, lifecycle: 4, etcd: 4, watch: 4, cli: 5, bench: 5 };

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith(".ts") ? [p] : [];
  });
}

function importsOf(file: string): string[] {
  const src = readFileSync(file, "utf8");
  return [...src.matchAll(/(?:from|import\(|require\()\s*"(\.[^"]*)"/g)].map((m) => resolve(dirname(file), m[1]));
}

const folderOf = (abs: string): string => relative(LIB, abs).split(sep)[0];

describe("library layers", () => {
  const files = tsFiles(LIB);

  test("every library file sits in a known layer folder", () => {
    const loose = files.filter((f) => !(folderOf(f) in LAYERS) || relative(LIB, f).split(sep).length !== 2);
    expect(loose.map((f) => relative(LIB, f))).toEqual([]);
  });

  test("imports run downwards only", () => {
    const wrong: string[] = [];
    for (const f of files) {
      const from = folderOf(f);
      for (const target of importsOf(f)) {
        const rel = relative(LIB, target);
        if (rel.startsWith("..")) {
          wrong.push(`${relative(LIB, f)} imports ${relative(dirname(f), target)} (outside the library)`);
          continue;
        }
        const to = folderOf(target);
        if (to === from) continue;
        if (!(LAYERS[to] < LAYERS[from])) wrong.push(`${relative(LIB, f)} (${from}, layer ${LAYERS[from]}) imports ${rel} (${to}, layer ${LAYERS[to]})`);
      }
    }
    expect(wrong).toEqual([]);
  });

  test("the check itself catches an upward import", () => {
    // a lower folder importing a higher one must be reported: guard against a check that can never fail
    expect(LAYERS.x509 < LAYERS.tree && LAYERS.common < LAYERS.config).toBe(true);
    const sample = join(LIB, "x509", "fake.ts");
    const target = resolve(dirname(sample), "../tree/plan");
    expect(LAYERS[folderOf(target)] < LAYERS[folderOf(sample)]).toBe(false);
  });
});
