// tls-setup day 2: check-expiration, verify, renew, inspect, secrets (behind the Makefile targets of those names). The
// whole of the `lifecycle` script (scripts/lifecycle.ts runs it through runMain); the tests call it in-process. The
// commands print through lifecycle/commands.ts (to the process's stdout and stderr).
import { commandYargs, failAsUserError } from "./cli";
import { treeOptions, toTree } from "./tree-args";
import { parseWarnDays } from "../lifecycle/expiry";
import { checkExpirationCommand, inspectCommand, parseExpiryFormat, parseFormat, renewCommand, secretsCommand, verifyCommand } from "../lifecycle/commands";

export async function lifecycleMain(args: string[]): Promise<number> {
  let code = 0;
  await treeOptions(commandYargs(args))
    .scriptName("lifecycle")
    .command(
      "check-expiration",
      "list every certificate with its end of validity; exit 1 when any ends within --warn-days",
      (y) =>
        y
          .option("warn-days", { type: "string", describe: "days of warning (default 30)" })
          .option("ca-warn-days", { type: "string", describe: "warn when the CA ends within this many days (default 365)" })
          .option("format", { type: "string", describe: "text, json or prometheus (node_exporter's textfile format)" })
          .option("metrics-file", { type: "string", describe: "write the prometheus format to this file, atomically (e.g. a *.prom in node_exporter's textfile directory)" }),
      async (a) => {
        const metricsFile = a["metrics-file"] === "" ? undefined : a["metrics-file"];
        code = await checkExpirationCommand(toTree(a), { warnDays: parseWarnDays(a["warn-days"]), caWarnDays: parseWarnDays(a["ca-warn-days"], "CA_WARN_DAYS", 365), format: parseExpiryFormat(a.format, metricsFile), metricsFile });
      },
    )
    .command("verify", "check every certificate, key and the CRL against the CA and the configs; exit 1 on any problem", (y) => y, async (a) => {
      code = await verifyCommand(toTree(a));
    })
    .command(
      "renew",
      "re-issue the leaves ending within --warn-days (or --name), keeping their keys",
      (y) =>
        y
          .option("warn-days", { type: "string", describe: "renew what ends within this many days (default 30)" })
          .option("name", { type: "string", describe: "renew this certificate whatever its expiry" })
          .option("new-key", { type: "boolean", describe: "new private keys for what is renewed" })
          .option("hook", { type: "string", describe: "a shell command run (sh -c) after something was renewed; TLS_SETUP_RENEWED holds the names (default: $RENEW_HOOK)" }),
      async (a) => {
        code = await renewCommand(toTree(a), { warnDays: parseWarnDays(a["warn-days"]), name: a.name, newKey: a["new-key"], hook: (a.hook ?? process.env.RENEW_HOOK) || undefined });
      },
    )
    .command(
      "inspect",
      "describe one certificate (like cfssl certinfo)",
      (y) => y.option("name", { type: "string", describe: "the certificate: a name in the certs directory, or a .pem path" }).option("format", { type: "string", describe: "text or json" }),
      (a) => {
        code = inspectCommand(toTree(a), { name: a.name, format: parseFormat(a.format) });
      },
    )
    .command(
      "secrets",
      "write a Kubernetes Secret manifest per etcd user into CERTS_DIR/k8s/",
      (y) =>
        y
          .option("name", { type: "string", describe: "only this user" })
          .option("namespace", { type: "string", describe: "the Secrets' namespace (default kube-system)" })
          .option("secret-name", { type: "string", describe: "the Secret's name (one user only; default etcd-<user>)" }),
      async (a) => {
        code = await secretsCommand(toTree(a), { user: a.name, namespace: a.namespace, secretName: a["secret-name"] });
      },
    )
    .demandCommand(1, "give a command: check-expiration, verify, renew, inspect, secrets")
    // yargs would print the usage and the stack for an error thrown by an async handler: runMain reports it instead
    .fail(failAsUserError)
    .strict()
    .help()
    .parseAsync();
  return code;
}
