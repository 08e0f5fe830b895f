// ca CSR.json — cfssl gencert -initca: prints {"cert","csr","key"} for a new self-signed CA. The whole of the `ca`
// script (scripts/ca.ts runs it through runMain); the tests call it in-process.
import yargs from "yargs";
import { CliIo, normalizeArgv, processIo, refuseKeyToTerminal } from "./cli";
import { cfsslJson, initCa } from "./cfssl";

export async function caMain(args: string[], io: CliIo = processIo): Promise<void> {
  const argv = await yargs(normalizeArgv(args))
    .scriptName("ca")
    .usage("$0 CSR.json\n\nLike `cfssl gencert -initca CSR.json`: prints the CA as cfssl's JSON; pipe it into `bare certs/ca`.")
    .option("force", { type: "boolean", describe: "print the private key even when stdout is a terminal" })
    .option("initca", { type: "boolean", hidden: true })
    .demandCommand(1, 1, "give one CSR JSON file, e.g. config/ca-csr.json")
    .strictOptions()
    .help()
    .parseAsync();
  refuseKeyToTerminal(argv.force, io.stdoutIsTTY());
  const issued = await initCa(String(argv._[0]), (line) => io.err(line + "\n"));
  io.out(cfsslJson(issued));
}
