// tls-setup etcd: the etcd side of the tree — the RBAC script (users and roles from the configs) and revocation. The
// whole of the `etcd` script (scripts/etcd.ts runs it through runMain); the tests call it in-process.
import { commandYargs, failAsUserError } from "./cli";
import { treeOptions, toTree } from "./tree-args";
import { crlCommand, rbacCommand, revokeCommand } from "../etcd/commands";

export async function etcdMain(args: string[]): Promise<number> {
  let code = 0;
  await treeOptions(commandYargs(args))
    .scriptName("tls-setup-etcd")
    .command("rbac", "write CERTS_DIR/etcd-rbac.sh: etcd users, roles and grants from the configs' \"etcd\" blocks", (y) => y, async (a) => {
      code = await rbacCommand(toTree(a));
    })
    .command(
      "revoke [name]",
      "revoke certs/NAME.pem (record its serial) and write CERTS_DIR/crl.pem",
      (y) => y.positional("name", { type: "string", describe: "the certificate to revoke (e.g. calico-node); required" }),
      async (a) => {
        code = await revokeCommand(toTree(a), a.name === undefined || a.name === "" ? undefined : String(a.name));
      },
    )
    .command("crl", "write a fresh CERTS_DIR/crl.pem (new thisUpdate and nextUpdate) listing what is revoked", (y) => y, async (a) => {
      code = await crlCommand(toTree(a));
    })
    .demandCommand(1, "give a command: rbac, revoke, crl")
    .strict()
    // a user mistake is one line, not the usage text
    .fail(failAsUserError)
    .help()
    .parseAsync();
  return code;
}
