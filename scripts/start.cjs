"use strict";
// dist/NAME.js: starts dist/NAME.bundle.js (esbuild's bundle of scripts/NAME.ts; build.mjs writes this file with the
// bundle's name filled in) through a V8 code cache in dist/.cache/, as Node 22's module.enableCompileCache() would
// (Node 20 has none). Compiling a ~300 KB bundle and the functions a run calls costs ~12 ms of the ~57 ms of CPU a
// `make` that finds nothing stale takes; with the cache V8 reads the bytecode instead (measured on `tls build` of a
// built tree: 56-58 ms of CPU straight from the bundle, 44-46 ms through its cache).
//
// The cache is a file per bundle content, Node version and architecture (a SHA-256 of them in its name) and per
// command (the first argument when it is a word: build, plan, renew...; else "_"), since it holds the functions the
// run that wrote it called (measured on `tls build`: 46 ms with its own cache, 51 ms with the one `--help` left). It is
// written when a run found none or V8 refused it (another Node, other flags), at the process's exit, to a temporary
// name and then renamed. It is only an acceleration: a cache that cannot be read or written (a read-only dist/, a directory of
// another user) leaves the run as it was. Bytecode runs as code, so only a cache the running user owns, in a
// directory the user owns, that neither group nor others may write, is read; the directory is made 0700 and the files
// 0600. build.mjs empties dist/.cache/ at every build.
const fs = require("fs");
const path = require("path");
const vm = require("vm");
const Module = require("module");
const { createHash } = require("crypto");

const file = path.join(__dirname, "__BUNDLE__");
const bytes = fs.readFileSync(file);
// the bundle's "#!/usr/bin/env node" line, emptied (the function wrapper below cannot start with it; lines keep their numbers)
const source = bytes.toString("utf8").replace(/^#!.*/, "");
const dir = path.join(__dirname, ".cache");
const command = /^[a-z][a-z0-9-]{0,31}$/.test(process.argv[2] || "") ? process.argv[2] : "_";
// (the file's bytes hashed, not the string: hashing the string made a UTF-8 copy of it that left a 1000-user build's
// peak memory ~3 MB higher, measured)
const cacheFile = path.join(dir, `__BUNDLE__.${createHash("sha256").update(bytes).update(`\0${process.version} ${process.arch}`).digest("hex").slice(0, 32)}.${command}.v8`);

/** Whether P is a directory (or a regular file) of this user that neither group nor others may write. */
function mine(p, directory) {
  try {
    const st = fs.lstatSync(p);
    return (directory ? st.isDirectory() : st.isFile()) && (typeof process.getuid !== "function" || st.uid === process.getuid()) && (st.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

let cachedData;
if (mine(dir, true) && mine(cacheFile, false)) {
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
}
const script = new vm.Script(Module.wrap(source), { filename: file, cachedData, importModuleDynamically: vm.constants && vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER });
if (cachedData === undefined || script.cachedDataRejected) {
  // at exit: the cache then holds the functions this run compiled too, not only the top level
  process.once("exit", () => {
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
    } catch (e) {
      if (e.code !== "EEXIST") return;
    }
    if (!mine(dir, true)) return;
    const tmp = `${cacheFile}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, script.createCachedData(), { mode: 0o600, flag: "wx" });
      fs.renameSync(tmp, cacheFile);
    } catch {
      try {
        fs.unlinkSync(tmp);
      } catch {
        // nothing was written
      }
    }
  });
}
const bundle = new Module(file, module);
bundle.filename = file;
bundle.paths = Module._nodeModulePaths(__dirname);
script.runInThisContext().call(bundle.exports, bundle.exports, Module.createRequire(file), bundle, file, __dirname);
