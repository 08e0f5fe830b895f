// Jest's transform for our TypeScript: esbuild (already what builds dist/) strips the types, file by file, in about a
// millisecond; type checking is `tsc --noEmit`, which `make test` runs before jest. ts-jest did the same job through
// the TypeScript compiler at ~10 s of CPU per cold run (a clean clone's jest cache is always cold).
// import() becomes require(), as tsc does for CommonJS (jest runs a dynamic import only under --experimental-vm-modules).
const { transformSync, version } = require("esbuild");
const { createHash } = require("node:crypto");
const { readFileSync } = require("node:fs");

const SELF = readFileSync(__filename);

module.exports = {
  process(source, filename) {
    const out = transformSync(source, { loader: "ts", format: "cjs", target: "node20", supported: { "dynamic-import": false }, sourcemap: "inline", sourcefile: filename, sourcesContent: false });
    return { code: out.code };
  },
  getCacheKey(source, filename) {
    return createHash("sha256").update(version).update(SELF).update(filename).update("\0").update(source).digest("hex");
  },
};
