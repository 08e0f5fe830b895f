// --help of every entry script and `make help`: exit 0, read cleanly at 80 columns in a pipe (no line longer, no
// word cut in two), and `make help` lists every target the Makefile declares.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import yargs from "yargs";
import type { Argv } from "yargs";
import { ROOT, runScript } from "./helpers";
import { commandYargs } from "../scripts/lib/cli/cli";

const scripts = readdirSync(join(ROOT, "scripts")).filter((f) => f.endsWith(".ts")).map((f) => f.slice(0, -3));

// The words help may print: those of the sources that describe the options and commands, yargs' own English
// strings, and the paths shown as defaults. A word cut by the wrapping ("CSR.j" / "son") is in none of them.
const sourceText = [
  ...scripts.map((s) => join(ROOT, "scripts", `${s}.ts`)),
  ...readdirSync(join(ROOT, "scripts", "lib", "cli")).map((f) => join(ROOT, "scripts", "lib", "cli", f)),
  join(ROOT, "scripts", "lib", "tree", "targets.ts"),
  join(ROOT, "scripts", "lib", "watch", "watch.ts"),
  join(ROOT, "node_modules", "yargs", "locales", "en.json"),
]
  .map((f) => readFileSync(f, "utf8"))
  .concat(ROOT)
  .join("\n")
  .replace(/\\[nt]/g, " "); // "\n\nLike" in a source string is the word "Like"
const known = new Set(sourceText.match(/[A-Za-z][A-Za-z0-9]*/g));

function checkHelp(what: string, text: string): void {
  expect(text.trim()).not.toBe("");
  const long = text.split("\n").filter((l) => l.length > 80);
  expect({ what, long }).toEqual({ what, long: [] });
  const cut = (text.match(/[A-Za-z][A-Za-z0-9]*/g) ?? []).filter((w) => !known.has(w));
  expect({ what, cut }).toEqual({ what, cut: [] });
}

// the commands of the scripts that have them (each has its own --help)
const commands: Record<string, string[]> = {
  tls: ["build", "plan"],
  lifecycle: ["check-expiration", "verify", "renew", "inspect", "secrets"],
  etcd: ["rbac", "revoke", "crl"],
  cfssl: ["gencert"],
};

test("every entry script is covered", () => {
  expect(scripts.sort()).toEqual(["bare", "bench", "ca", "cfssl", "etcd", "lifecycle", "req", "tls", "watch"]);
});

test.each(scripts)("%s --help: exit 0, at most 80 columns, no word cut", (s) => {
  for (const args of [["--help"], ...(commands[s] ?? []).map((c) => [c, "--help"])]) {
    const r = runScript(s, args);
    expect({ args, status: r.status, stderr: r.stderr }).toEqual({ args, status: 0, stderr: "" });
    checkHelp(`${s} ${args.join(" ")}`, r.stdout);
  }
});

test("the word check is a real judge: the old character-cut wrapping fails it", () => {
  expect(() => checkHelp("cut", "req -ca CA.pem [-profile NAME] CSR.j\nson")).toThrow();
  expect(() => checkHelp("cut", "cfssl's built-in default wit\nhout it")).toThrow();
});

test("make help: one line per target, every target the Makefile declares (.PHONY) included", () => {
  const r = spawnSync("make", ["--no-print-directory", "-C", ROOT, "help"], { encoding: "utf8" });
  expect(r.status).toBe(0);
  const makefile = readFileSync(join(ROOT, "Makefile"), "utf8");
  const declared = [...makefile.matchAll(/^\.PHONY:(.*)$/gm)].flatMap((m) => m[1].trim().split(/\s+/));
  // FORCE (makes a rule always run) and source-checkout (refuses in a release) are prerequisites, not things to type
  const targets = declared.filter((t) => t !== "FORCE" && t !== "source-checkout");
  expect(targets.length).toBeGreaterThan(20);
  const listed = r.stdout.split("\n").filter((l) => /^\s+make /.test(l));
  for (const t of targets) {
    const lines = listed.filter((l) => new RegExp(`(^|[\\s/])make ${t.replace(/[-.]/g, "\\$&")}(\\s|$)`).test(l) || (t === "all" && l.includes("make / make all")));
    expect({ target: t, lines: lines.length }).toEqual({ target: t, lines: 1 });
  }
  for (const l of r.stdout.split("\n")) expect(l.length).toBeLessThanOrEqual(80);
});

test("commandYargs: running a command no longer renders the help text (plain yargs does); --help above still prints it", async () => {
  type Usage = { hasCachedHelpMessage(): boolean };
  const usageOf = (y: unknown) => (y as { getInternalMethods(): { getUsageInstance(): Usage } }).getInternalMethods().getUsageInstance();
  const run = async (y: Argv) => {
    let ran = false;
    await y.command("build", "make things", (b) => b, () => void (ran = true)).strict().parseAsync();
    return { ran, rendered: usageOf(y).hasCachedHelpMessage() };
  };
  expect(await run(yargs(["build"]))).toEqual({ ran: true, rendered: true });
  expect(await run(commandYargs(["build"]))).toEqual({ ran: true, rendered: false });
});
