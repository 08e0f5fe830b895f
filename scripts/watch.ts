#!/usr/bin/env node
// watch: rebuild certificates whenever a config changes (the same planner as `make`), until Ctrl-C.
import yargs from "yargs";
import { runMain } from "./lib/common/errors";
import { treeOptions, toTree } from "./lib/cli/tree-args";
import { DEFAULT_DEBOUNCE_MS, watchUntilSignal } from "./lib/watch/watch";

runMain("watch", async () => {
  const a = await treeOptions(yargs(process.argv.slice(2)))
    .scriptName("watch")
    .usage("$0 [--config-dir config] [--certs-dir certs]: make what is stale now, then again after every config change")
    .option("debounce", { type: "number", default: DEFAULT_DEBOUNCE_MS, describe: "quiet period (ms) after a change before building" })
    .strict()
    .help()
    .parseAsync();
  const code = await watchUntilSignal(toTree(a), { debounceMs: a.debounce });
  // stopped, and nothing is being written: exit now (stdout and stderr are written synchronously to files, pipes and
  // terminals), not when the last stray timer of the watching library fires
  process.exit(code);
});
