// Jest's order of the test files. Jest starts the longest files first, from the timings of an earlier run in this
// checkout; a fresh clone (CI) has none, and jest falls back to file size, which puts the three live etcd files
// (20–25 s each, most of it waiting on member restarts) behind large in-process files, and they end last while the
// other workers run out of work (measured with an empty cache: 66.8 s by file size, 64.9 s with this table).
// Without an earlier run's timings, a file's duration is taken from this table, measured on a 2-core machine
// (`npx jest --json`, 4 workers); a file not in it counts as quick. A file that failed in the last run goes first.
const Sequencer = require("@jest/test-sequencer").default;
const { basename } = require("node:path");

/** Seconds per file, whole suite, 4 workers (files under 3 s are left out). */
const MEASURED = {
  "etcd-intermediate-live.test.ts": 24.9,
  "etcd-ca-rotate-live.test.ts": 19.5,
  "etcd-e2e.test.ts": 19.3,
  "pkcs11-ca-keys.test.ts": 15.3,
  "core-make.test.ts": 13.9,
  "watch.test.ts": 13.5,
  "harden-crash.test.ts": 12.1,
  "unit-ca-rotate-intermediate.test.ts": 10,
  "etcd-identities.test.ts": 9.9,
  "pkcs11-token.test.ts": 8.5,
  "unit-ca-rotate.test.ts": 8.3,
  "core-scripts.test.ts": 8.2,
  "unit-keys.test.ts": 8,
  "harden-crypto.test.ts": 7,
  "etcd-renew-live.test.ts": 7,
  "release.test.ts": 6.7,
  "core-habits.test.ts": 6.3,
  "oracle-cfssl.test.ts": 6,
  "oracle-random.test.ts": 5.8,
  "core-help.test.ts": 5.2,
  "unit-ca-rotate-crl.test.ts": 4.7,
  "harden-input.test.ts": 4.4,
  "harden-race.test.ts": 4.3,
  "lifecycle-timer.test.ts": 3,
};

class LongestFirst extends Sequencer {
  sort(tests) {
    const seconds = (t) => {
      const ms = this.time(t);
      return ms != null ? ms / 1000 : MEASURED[basename(t.path)] ?? 0;
    };
    return [...tests].sort((a, b) => {
      const fa = this.hasFailed(a);
      const fb = this.hasFailed(b);
      if (fa !== fb) return fa ? -1 : 1;
      return seconds(b) - seconds(a);
    });
  }
}

module.exports = LongestFirst;
