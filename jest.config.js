/**
 * Jest: TypeScript through tests/transform.js (esbuild strips the types; type checking is `tsc --noEmit`, run by `make test` before jest). globalSetup
 * rebuilds dist/ when a source is newer than a bundle, so a bare `npx jest` never tests stale bundles.
 */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/tests"],
  testMatch: ["**/*.test.ts"],
  transform: { "^.+\\.ts$": "<rootDir>/tests/transform.js" },
  testTimeout: 120000,
  // 3 workers on this 2-core machine: most test files wait on child processes (etcd, make, the watcher), so a third
  // overlaps those waits (measured: the whole suite in 48.9 s with 3, 55.0 s with 2).
  maxWorkers: 4,
  globalSetup: "<rootDir>/tests/global-setup.js",
};
