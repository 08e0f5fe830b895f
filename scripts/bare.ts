#!/usr/bin/env node
// bare PREFIX (or -bare PREFIX) — cfssljson -bare: reads cfssl's JSON on stdin (or -f FILE) and writes
// PREFIX.pem, PREFIX-key.pem (0600) and PREFIX.csr atomically (lib/cli/bare-main.ts).
import { runMain } from "./lib/common/errors";
import { bareMain } from "./lib/cli/bare-main";

runMain("bare", () => bareMain(process.argv.slice(2)));
