#!/usr/bin/env node
// bare PREFIX (or -bare PREFIX) — cfssljson -bare: reads cfssl's JSON on stdin (or -f FILE) and writes
// PREFIX.pem, PREFIX-key.pem (0600) and PREFIX.csr atomically.
import yargs from "yargs";
import { runMain, UserError } from "./lib/common/errors";
import { normalizeArgv, readStdin } from "./lib/cli/cli";
import { bare } from "./lib/cli/cfssl";
import { readText } from "./lib/x509/ca-load";

runMain("bare", async () => {
  const argv = await yargs(normalizeArgv(process.argv.slice(2)))
    .scriptName("bare")
    .usage("$0 PREFIX\n\nLike `cfssljson -bare PREFIX`: writes PREFIX.pem, PREFIX-key.pem, PREFIX.csr from cfssl's JSON on stdin.")
    .option("bare", { type: "string", describe: "PREFIX, as cfssljson takes it (-bare PREFIX)" })
    .option("f", { type: "string", describe: "read the JSON from this file instead of stdin" })
    .strictOptions()
    .help()
    .parseAsync();
  const prefix = argv.bare ?? (argv._[0] === undefined ? undefined : String(argv._[0]));
  if (!prefix) throw new UserError("PREFIX: is missing; usage: bare PREFIX (e.g. bare certs/etcd1)");
  const input = argv.f ? readText(argv.f, "cfssl's JSON output") : readStdin();
  await bare(prefix, input, argv.f ?? "stdin");
});
