// Jest's order of the test files. Jest starts the longest files first, from the timings of an earlier run in this
// checkout; a fresh clone (CI) has none, and jest falls back to file size, which puts the three live etcd files
// (20–25 s each, most of it waiting on member restarts) behind large in-process files, and they end last while the
// other workers run out of work (measured with an empty cache: 66.8 s by file size, 64.9 s with this table).
// Without an earlier run's timings, a file's duration is taken from this table, measured on a 2-core machine
// (`npx jest --json`, 5 workers); a file not in it counts as quick. A file that failed in the last run goes first.
const Sequencer = require("@jest/test-sequencer").default;
const { basename } = require("node:path");

/** Seconds per file, whole suite, 5 workers (files under 3 s are left out). */
const MEASURED = {
  "etcd-intermediate-live.test.ts": 24.4,
  "etcd-e2e.test.ts": 24.2,
  "etcd-ca-rotate-live.test.ts": 19.9,
  "harden-crash.test.ts": 17.8,
  "watch.test.ts": 13.8,
  "core-make.test.ts": 13.5,
  "pkcs11-ca-keys.test.ts": 11.1,
  "harden-crypto.test.ts": 9.6,
  "pkcs11-token.test.ts": 9.5,
  "unit-keys.test.ts": 9.5,
  "unit-ca-rotate-intermediate.test.ts": 8.7,
  "etcd-identities.test.ts": 8.4,
  "etcd-renew-live.test.ts": 8.1,
  "oracle-cfssl.test.ts": 7.5,
  "core-scripts.test.ts": 7.3,
  "unit-ca-rotate.test.ts": 7.0,
  "release.test.ts": 6.0,
  "harden-input.test.ts": 5.7,
  "oracle-random.test.ts": 5.5,
  "harden-race.test.ts": 5.0,
  "unit-ca-rotate-crl.test.ts": 4.2,
  "core-habits.test.ts": 4.0,
  "core-start.test.ts": 3.6,
  "unit-intermediate.test.ts": 3.4,
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
