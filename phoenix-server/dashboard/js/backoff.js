// Reconnect backoff, the same rule as Rust's `phoenix_core::backoff::Backoff::default()`
// (phoenix-core/src/backoff.rs; ARCHITECTURE.md, docs/dashboard.md): 500 ms doubling per
// failure up to 30 s, with equal jitter: the wait is drawn uniformly from
// [ceiling / 2, ceiling], so clients spread out but never retry at once. A unit test in
// phoenix-server/src/dashboard.rs holds these numbers to core's.

export const INITIAL_MS = 500;
export const MAX_MS = 30000;
export const MULTIPLIER = 2;

/** The un-jittered delay after `attempt` failures (attempt 0 counts as 1), milliseconds. */
export function ceiling(attempt) {
  const exp = Math.max(attempt - 1, 0);
  return Math.min(MAX_MS, INITIAL_MS * MULTIPLIER ** exp);
}

/** The delay after `attempt` failures, jittered with `draw` in [0, 1), milliseconds. */
export function delay(attempt, draw = Math.random()) {
  const c = ceiling(attempt);
  return c / 2 + (c / 2) * draw;
}
