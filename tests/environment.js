// Jest's test environment: Node's, plus removing the temp directories a test file made (tests/helpers.ts tempDir and
// tempTree record them in the file's global). It runs after the file's last hook, so no afterAll of the file still
// needs them (an etcd member stopping, a watcher closing). Jest's workers end without running the "exit" handlers of
// a test file's process object, where this used to be: ~130 trees were left in the temp directory per run.
// KEEP_TEST_TREES=1 keeps them for a look after a failure.
const { TestEnvironment } = require("jest-environment-node");
const { rmSync } = require("node:fs");

module.exports = class TempDirsEnvironment extends TestEnvironment {
  async teardown() {
    const dirs = this.global.__tlsSetupTempDirs ?? [];
    if (process.env.KEEP_TEST_TREES !== "1") for (const d of dirs) rmSync(d, { recursive: true, force: true });
    await super.teardown();
  }
};
