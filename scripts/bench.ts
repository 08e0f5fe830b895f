#!/usr/bin/env node
// bench: our make against hack/tls-setup's Makefile with real cfssl; prints the table and writes bench/results.md.
import yargs from "yargs";
import { join, resolve } from "node:path";
import { runMain } from "./lib/common/errors";
import { runBench } from "./lib/bench/bench";

runMain("bench", async () => {
  const root = resolve(__dirname, "..");
  const a = await yargs(process.argv.slice(2))
    .scriptName("bench")
    .usage("$0: compare `make` with hack/tls-setup's Makefile driving cfssl (needs cfssl and cfssljson)")
    .option("rounds", { type: "number", default: 5, describe: "rounds of the standard-tree comparison (watch samples: 3× this)" })
    .option("big-rounds", { type: "number", default: 3, describe: "rounds of the 200-user comparisons" })
    .option("out", { type: "string", default: join(root, "bench", "results.md"), describe: "where the Markdown table is written" })
    .strict()
    .help()
    .parseAsync();
  return runBench({ root, rounds: a.rounds, bigRounds: a["big-rounds"], out: a.out, log: (l) => process.stdout.write(l + "\n") });
});
