// Jest's globalTeardown: removes the directory tests/global-setup.js made for the tests' temp directories (on a
// tmpfs), with whatever a test left there.
const { rmSync } = require("node:fs");

module.exports = async function globalTeardown() {
  const dir = process.env.TLS_SETUP_TEST_TMPDIR;
  if (dir && process.env.KEEP_TEST_TREES !== "1") rmSync(dir, { recursive: true, force: true });
};
