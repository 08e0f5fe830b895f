// Shared by the in-process planner tests (unit-plan, unit-intermediate, unit-split): copies of a tree built once,
// and reading a plan's decisions.
import { cpSync, rmSync } from "node:fs";
import { tempTree } from "./helpers";
import { Action, Plan } from "../scripts/lib/tree/plan";

type Tree = ReturnType<typeof tempTree>;

/** A fresh temp tree holding a copy of FROM's configs and certificates. */
export function copyTree(from: { config: string; certs: string }): Tree {
  const t = tempTree();
  rmSync(t.config, { recursive: true });
  cpSync(from.config, t.config, { recursive: true });
  cpSync(from.certs, t.certs, { recursive: true });
  return t;
}

export const actions = (p: Plan): Record<string, Action> => Object.fromEntries(p.items.map((i) => [i.target.name, i.action]));
export const reason = (p: Plan, name: string): string => p.items.find((i) => i.target.name === name)!.reason;
/** every target "keep" except those named */
export const expectActions = (p: Plan, changed: Record<string, Action>) => {
  expect(p.problems).toEqual([]);
  expect(actions(p)).toEqual(Object.fromEntries(Object.keys(actions(p)).map((n) => [n, changed[n] ?? "keep"])));
};
export const make = (...names: string[]): Record<string, Action> => Object.fromEntries(names.map((n) => [n, "make" as Action]));
