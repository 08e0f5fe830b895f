// The build itself: a failure part-way stops the other workers before the lock is released.
import { mkdirSync, writeFileSync, existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { DIST, runMake, tempTree } from "./helpers";

test("when one certificate fails, no other is made after the error (nothing written without the lock)", () => {
  const tree = tempTree();
  for (let i = 0; i < 40; i++) writeFileSync(join(tree.config, `req-u${String(i).padStart(2, "0")}.json`), JSON.stringify({ CN: `u${i}` }));
  expect(runMake([], tree).status).toBe(0);
  // a directory where u05's certificate goes: its rename fails mid-run
  rmSync(join(tree.certs, "u05.pem"));
  mkdirSync(join(tree.certs, "u05.pem"));
  writeFileSync(join(tree.certs, "u05.pem", "x"), "");
  const r = spawnSync("sh", ["-c", `"${process.execPath}" "${join(DIST, "tls.js")}" build --rotate --config-dir "${tree.config}" --certs-dir "${tree.certs}" 2>&1`], { encoding: "utf8" });
  // a file-system refusal is the user's to fix: one line naming the file, exit 1, no stack
  expect(r.status).toBe(1);
  const lines = r.stdout.trim().split("\n");
  const errorAt = lines.findIndex((l) => l.startsWith("tls-setup:"));
  expect(errorAt).toBeGreaterThan(0);
  expect(lines[errorAt]).toMatch(new RegExp(`^tls-setup: ${tree.certs}/u05\\.pem: cannot be written: (a directory is in the way|operation not permitted)$`));
  // the error is the last line: no other certificate was made after it
  expect(lines.slice(errorAt)).toEqual([lines[errorAt]]);
  expect(lines.filter((l) => l.startsWith("made ")).length).toBeLessThan(45);
  // the lock is gone and a later run completes once the obstacle is removed
  expect(existsSync(join(tree.certs, ".tls-setup", "lock"))).toBe(false);
  spawnSync("rm", ["-rf", join(tree.certs, "u05.pem")]);
  const again = runMake([], tree);
  expect(again.status).toBe(0);
  expect(readdirSync(tree.certs).filter((f) => f.startsWith(".tls-setup-tmp-"))).toEqual([]);
});
