// Unit test of the dashboard's reconnect backoff (dashboard/js/backoff.js), no browser
// needed: `node --test phoenix-server/tests/browser/backoff.test.mjs` (scripts/browser-test
// runs it first). The same cases as core's `phoenix_core::backoff` tests.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { INITIAL_MS, MAX_MS, MULTIPLIER, ceiling, delay } from '../../dashboard/js/backoff.js';

test('the policy is core\'s Backoff::default()', () => {
  assert.deepEqual([INITIAL_MS, MAX_MS, MULTIPLIER], [500, 30000, 2]);
});

test('ceilings double from the initial delay and cap', () => {
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 1000].map(ceiling),
    [500, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000],
  );
});

test('equal jitter: within [ceiling / 2, ceiling], deterministic given the draw', () => {
  for (let attempt = 1; attempt < 40; attempt++) {
    const c = ceiling(attempt);
    assert.equal(delay(attempt, 0), c / 2);
    assert.equal(delay(attempt, 0.5), delay(attempt, 0.5));
    assert.ok(delay(attempt, 0.999999) <= c);
    const random = delay(attempt);
    assert.ok(random >= c / 2 && random <= c, `${random} outside [${c / 2}, ${c}]`);
  }
});
