#!/usr/bin/env node
// ca CSR.json — cfssl gencert -initca: prints {"cert","csr","key"} for a new self-signed CA.
import yargs from "yargs";
import { runMain } from "./lib/common/errors";
import { normalizeArgv, refuseKeyToTerminal, stderrLog } from "./lib/cli/cli";
import { cfsslJson, initCa } from "./lib/cli/cfssl";

runMain("ca", async () => {
  const argv = await yargs(normalizeArgv(process.argv.slice(2)))
    .scriptName("ca")
    .usage("$0 CSR.json\n\nLike `cfssl gencert -initca CSR.json`: prints the CA as cfssl's JSON; pipe it into `bare certs/ca`.")
    .option("force", { type: "boolean", describe: "print the private key even when stdout is a terminal" })
    .option("initca", { type: "boolean", hidden: true })
    .demandCommand(1, 1, "give one CSR JSON file, e.g. config/ca-csr.json")
    .strictOptions()
    .help()
    .parseAsync();
  refuseKeyToTerminal(argv.force);
  const issued = await initCa(String(argv._[0]), stderrLog);
  process.stdout.write(cfsslJson(issued));
});
