#!/usr/bin/env node
// req -ca CA.pem -ca-key CA-key.pem -config ca-config.json [-profile NAME] CSR.json — cfssl gencert
// (lib/cli/req-main.ts).
import { runMain } from "./lib/common/errors";
import { reqMain } from "./lib/cli/req-main";

runMain("req", () => reqMain(process.argv.slice(2)));
