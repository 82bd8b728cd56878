//! What every Phoenix benchmark shares, so that none of them can print a verdict it did not
//! compute or a figure it did not measure:
//!
//! - [`Machine`]: the machine and the peers' versions, read when the benchmark runs, with
//!   the load average before and after;
//! - [`Summary`]: min, median and max of a figure over repetitions;
//! - [`Target`] and [`Bound`]: one table of targets per benchmark; [`Target::verdict`]
//!   computes "met" or "missed" from the figure;
//! - [`Report`]: the rows of a generated table, rendered with their verdicts;
//! - [`write_generated`]: replaces one generated block of `docs/benchmarks.md` (between
//!   `<!-- bench-NAME:begin -->` and `<!-- bench-NAME:end -->`), leaving everything else,
//!   hand-written notes included, as it is;
//! - [`criterion_samples`]: the per-iteration times of a criterion benchmark's samples, so
//!   criterion benches report min/median/max too.

mod machine;
mod report;

pub use machine::{Machine, load_average};
pub use report::{
    Bound, Report, Summary, Target, benchmarks_doc, criterion_samples, percentile, write_generated,
};

/// True when the benchmark binary was started by `cargo bench` (which passes `--bench`),
/// false under `cargo test`, where benches run once as smoke tests and must not rewrite the
/// documentation.
#[must_use]
pub fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// An environment variable parsed as a number, or `default`.
#[must_use]
pub fn env_or<T: std::str::FromStr>(var: &str, default: T) -> T {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
