#!/usr/bin/env node
// tls-setup etcd: the etcd side of the tree — the RBAC script (users and roles from the configs) and revocation.
import { runMain } from "./lib/common/errors";
import { etcdMain } from "./lib/cli/etcd-main";

runMain("tls-setup etcd", () => etcdMain(process.argv.slice(2)));
