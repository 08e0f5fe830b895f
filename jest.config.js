/** Jest: TypeScript through ts-jest (type checking is `tsc --noEmit`, run by `make test` before jest). */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/tests"],
  testMatch: ["**/*.test.ts"],
  transform: { "^.+\\.ts$": "ts-jest" },
  testTimeout: 120000,
  maxWorkers: 2,
};
