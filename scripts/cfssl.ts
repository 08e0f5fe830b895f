#!/usr/bin/env node
// A cfssl-shaped front for the Makefile's $(CFSSL): `gencert -initca CSR` runs ca, `gencert -ca … CSR` runs req,
// so rules pasted from etcd's hack/tls-setup or Calico's docs keep working.

const USAGE = `cfssl gencert -initca CSR.json
cfssl gencert -ca CA.pem -ca-key CA-key.pem [-config ca-config.json]
              [-profile NAME] CSR.json

A cfssl-shaped front for the Makefile's $(CFSSL): "gencert -initca" runs ca,
"gencert" with -ca runs req (see their --help). Only "cfssl gencert" is
implemented; pipe the output into bare (cfssljson -bare).
`;

const [cmd, ...rest] = process.argv.slice(2);
if (cmd === undefined || cmd === "--help" || cmd === "-h" || cmd === "-help" || cmd === "help") {
  // no command is a mistake (exit 1); asking for help is not
  (cmd === undefined ? process.stderr : process.stdout).write(USAGE);
  process.exitCode = cmd === undefined ? 1 : 0;
} else if (cmd !== "gencert") {
  process.stderr.write(`cfssl: ${cmd}: is not supported; this front implements "cfssl gencert" only (see ca, req, bare; --help)\n`);
  process.exitCode = 1;
} else {
  const initca = rest.some((a) => /^--?initca(=true)?$/.test(a));
  process.argv = [process.argv[0], process.argv[1], ...rest.filter((a) => !/^--?initca(=true)?$/.test(a))];
  /* eslint-disable @typescript-eslint/no-require-imports */
  if (initca) require("./ca");
  else require("./req");
}
