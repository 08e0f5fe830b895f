#!/usr/bin/env node
// tls-setup day 2: check-expiration, verify, renew, inspect, secrets (behind the Makefile targets of those names).
import { runMain } from "./lib/common/errors";
import { lifecycleMain } from "./lib/cli/lifecycle-main";

// a reader that stops early (| head) is not an error
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw e;
});

runMain("tls-setup", () => lifecycleMain(process.argv.slice(2)));
