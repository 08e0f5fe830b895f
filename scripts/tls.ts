#!/usr/bin/env node
// tls-setup: the tree commands behind the Makefile (build, plan, prune; lib/cli/tls-main.ts).
import { runMain } from "./lib/common/errors";
import { tlsMain } from "./lib/cli/tls-main";

runMain("tls-setup", () => tlsMain(process.argv.slice(2)));
