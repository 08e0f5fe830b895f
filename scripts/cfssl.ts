#!/usr/bin/env node
// A cfssl-shaped front for the Makefile's $(CFSSL): `gencert -initca CSR` runs ca, `gencert -ca … CSR` runs req,
// so rules pasted from etcd's hack/tls-setup or Calico's docs keep working.

const [cmd, ...rest] = process.argv.slice(2);
if (cmd !== "gencert") {
  process.stderr.write(`cfssl: ${cmd ?? "(none)"}: is not supported; this front implements "cfssl gencert" only (see ca, req, bare)\n`);
  process.exitCode = 1;
} else {
  const initca = rest.some((a) => /^--?initca(=true)?$/.test(a));
  process.argv = [process.argv[0], process.argv[1], ...rest.filter((a) => !/^--?initca(=true)?$/.test(a))];
  /* eslint-disable @typescript-eslint/no-require-imports */
  if (initca) require("./ca");
  else require("./req");
}
