/**
 * Jest: TypeScript through ts-jest (type checking is `tsc --noEmit`, run by `make test` before jest). globalSetup
 * rebuilds dist/ when a source is newer than a bundle, so a bare `npx jest` never tests stale bundles.
 */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/tests"],
  testMatch: ["**/*.test.ts"],
  transform: { "^.+\\.ts$": "ts-jest" },
  testTimeout: 120000,
  maxWorkers: 2,
  globalSetup: "<rootDir>/tests/global-setup.js",
};
