#!/usr/bin/env node
// ca CSR.json — cfssl gencert -initca: prints {"cert","csr","key"} for a new self-signed CA (lib/cli/ca-main.ts).
import { runMain } from "./lib/common/errors";
import { caMain } from "./lib/cli/ca-main";

runMain("ca", () => caMain(process.argv.slice(2)));
