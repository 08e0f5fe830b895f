// req -ca CA.pem -ca-key CA-key.pem -config ca-config.json [-profile NAME] CSR.json — cfssl gencert. The whole of
// the `req` script (scripts/req.ts runs it through runMain); the tests call it in-process.
import yargs from "yargs";
import { CliIo, normalizeArgv, processIo, refuseKeyToTerminal } from "./cli";
import { cfsslJson, gencert } from "./cfssl";

export async function reqMain(args: string[], io: CliIo = processIo): Promise<void> {
  const argv = await yargs(normalizeArgv(args))
    .scriptName("req")
    .usage("$0 -ca CA.pem -ca-key CA-key.pem [-config ca-config.json] [-profile NAME] CSR.json\n\nLike `cfssl gencert`: prints cfssl's JSON; pipe it into `bare certs/NAME`.")
    .option("ca", { type: "string", describe: "CA certificate (PEM)" })
    .option("ca-key", { type: "string", describe: "CA private key (PEM: SEC1, PKCS#1 or PKCS#8), or a key in a PKCS#11 token: pkcs11:token=...;object=... (module: PKCS11_MODULE, PIN: PKCS11_PIN or PKCS11_PIN_FILE)" })
    .option("config", { type: "string", describe: "cfssl signing config (ca-config.json); cfssl's built-in default without it" })
    .option("profile", { type: "string", describe: "signing profile; an unknown name is an error" })
    .option("force", { type: "boolean", describe: "print the private key even when stdout is a terminal" })
    .demandCommand(1, 1, "give one CSR JSON file, e.g. config/req-csr.json")
    .strictOptions()
    .help()
    .parseAsync();
  refuseKeyToTerminal(argv.force, io.stdoutIsTTY());
  const issued = await gencert({ ca: argv.ca, caKey: argv["ca-key"], config: argv.config, profile: argv.profile, csrFile: String(argv._[0]) }, (line) => io.err(line + "\n"));
  io.out(cfsslJson(issued));
}
