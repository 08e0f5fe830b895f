// bare PREFIX (or -bare PREFIX) — cfssljson -bare: reads cfssl's JSON on stdin (or -f FILE) and writes
// PREFIX.pem, PREFIX-key.pem (0600) and PREFIX.csr atomically. The whole of the `bare` script (scripts/bare.ts runs
// it through runMain); the tests call it in-process.
import yargs from "yargs";
import { UserError } from "../common/errors";
import { readText } from "../x509/ca-load";
import { CliIo, normalizeArgv, processIo } from "./cli";
import { bare } from "./cfssl";

export async function bareMain(args: string[], io: CliIo = processIo): Promise<void> {
  const argv = await yargs(normalizeArgv(args))
    .scriptName("bare")
    .usage("$0 PREFIX\n\nLike `cfssljson -bare PREFIX`: writes PREFIX.pem, PREFIX-key.pem, PREFIX.csr from cfssl's JSON on stdin.")
    .option("bare", { type: "string", describe: "PREFIX, as cfssljson takes it (-bare PREFIX)" })
    .option("f", { type: "string", describe: "read the JSON from this file instead of stdin" })
    .strictOptions()
    .help()
    .parseAsync();
  const prefix = argv.bare ?? (argv._[0] === undefined ? undefined : String(argv._[0]));
  if (!prefix) throw new UserError("PREFIX: is missing; usage: bare PREFIX (e.g. bare certs/etcd1)");
  const input = argv.f ? readText(argv.f, "cfssl's JSON output") : io.stdin();
  await bare(prefix, input, argv.f ?? "stdin");
}
