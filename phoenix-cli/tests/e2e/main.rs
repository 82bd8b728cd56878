//! End-to-end tests of the `phoenix` binary against a real in-process server: every
//! command, its exit code (0, 1 or 2), table alignment, and `--output json` parsed back
//! into the `phoenix-api` types.

mod experiments;
mod harness;
mod others;
mod pipelines;
mod queries;
mod watch;
