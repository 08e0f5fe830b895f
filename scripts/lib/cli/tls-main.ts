// tls-setup: the tree commands behind the Makefile (build, plan, prune). The whole of the `tls` script
// (scripts/tls.ts runs it through runMain); the tests call it in-process. The commands print through
// tree/commands.ts (to the process's stdout and stderr).
import { commandYargs, failAsUserError } from "./cli";
import { treeOptions, toTree } from "./tree-args";
import { buildCommand, caRotateCommand, nameForFile, planCommand, pruneCommand } from "../tree/commands";

export async function tlsMain(args: string[]): Promise<number> {
  let code = 0;
  await treeOptions(commandYargs(args))
    .scriptName("tls-setup")
    .command(
      "build [names..]",
      "make every stale certificate (or only NAMES), the CA first when needed",
      (y) =>
        y
          .positional("names", { type: "string", array: true, describe: "only these certificates (e.g. etcd1 calico-node)" })
          .option("ca-only", { type: "boolean", describe: "the CA only" })
          .option("rotate", { type: "boolean", describe: "re-make everything with new keys, the CA included" })
          .option("rotate-intermediate", { type: "boolean", describe: "a new intermediate CA (new key, signed by the root), then every leaf re-issued (keys kept)" })
          .option("new-key", { type: "boolean", describe: "new keys for what is re-made (default: keys are kept)" })
          .option("file", { type: "string", describe: "only the certificate this output file belongs to (certs/NAME.pem, -key.pem, .csr)" }),
      async (a) => {
        const tree = toTree(a);
        const only = a.file ? [nameForFile(tree, a.file)] : a.names?.length ? a.names.map(String) : undefined;
        code = await buildCommand(tree, { only, caOnly: a["ca-only"] || only?.[0] === "ca", rotate: a.rotate, rotateIntermediate: a["rotate-intermediate"], newKey: a["new-key"] });
      },
    )
    .command(
      "plan",
      "show what is stale and why, without changing anything",
      (y) =>
        y
          .option("names", { type: "boolean", describe: "print only the stale names, one per line (for the Makefile)" })
          .option("ca-only", { type: "boolean", describe: "the CA only" })
          .option("file", { type: "string", describe: "only the certificate this output file belongs to" }),
      async (a) => {
        const tree = toTree(a);
        const only = a.file ? [nameForFile(tree, a.file)] : undefined;
        code = planCommand(tree, { names: a.names, caOnly: a["ca-only"] || only?.[0] === "ca", only });
      },
    )
    .command(
      "prune",
      "remove the files of orphaned certificates (no longer a member, a proxy, or a user with a config); never automatic",
      (y) => y,
      async (a) => {
        code = await pruneCommand(toTree(a));
      },
    )
    .command(
      "ca-rotate <step>",
      "the phased CA rotation: start (new CA, trust both), reissue (leaves by the new CA), finish (trust the new CA only), status",
      (y) => y.positional("step", { type: "string", choices: ["start", "reissue", "finish", "status"], demandOption: true }).option("new-key", { type: "boolean", describe: "reissue: new keys for the leaves (default: kept)" })
          .option("next-ca-key", { type: "string", describe: "start: the new CA's key, made in a PKCS#11 token (an RFC 7512 URI naming a new object); recorded for reissue and finish" }),
      async (a) => {
        const tree = toTree(a);
        if (a["next-ca-key"] !== undefined) tree.nextCaKey = a["next-ca-key"];
        code = await caRotateCommand(tree, String(a.step), { newKey: a["new-key"] });
      },
    )
    .demandCommand(1, "give a command: build, plan, prune, ca-rotate")
    .strict()
    .fail(failAsUserError)
    .help()
    .parseAsync();
  return code;
}
