// Shared by the in-process planner tests (unit-plan, unit-intermediate, unit-split): copies of a tree built once,
// and reading a plan's decisions.
import { cpSync, rmSync } from "node:fs";
import { tempTree } from "./helpers";
import { Action, makePlan, Plan, PlanOptions } from "../scripts/lib/tree/plan";
import { TreeOptions } from "../scripts/lib/tree/targets";

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

/** One row of a staleness table: a change to a built tree, what the planner then re-makes, and why. */
export interface PlanRow {
  row: string;
  change: (t: Tree) => void;
  remake: Record<string, Action>;
  why?: [string, RegExp][];
  plan?: PlanOptions;
}

/** Applies the row's change to T (a copy of a built tree) and checks the plan: the actions, and each reason named. */
export function expectRow(t: Tree, opts: (t: Tree) => TreeOptions, r: PlanRow): void {
  r.change(t);
  const p = makePlan(opts(t), r.plan);
  expectActions(p, r.remake);
  for (const [n, re] of r.why ?? []) expect(reason(p, n)).toMatch(re);
}
