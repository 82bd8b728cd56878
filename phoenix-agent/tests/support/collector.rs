//! The real OpenTelemetry Collector for tests: Phoenix's pinned distribution
//! (`collector/manifest.yaml`), built by `scripts/build-collector`.

use std::path::PathBuf;

/// Whether a missing Collector must fail the test run (`PHOENIX_REQUIRE_COLLECTOR=1`, as
/// `.ci/run` sets it).
#[must_use]
pub fn collector_required() -> bool {
    std::env::var("PHOENIX_REQUIRE_COLLECTOR").is_ok_and(|v| v == "1" || v == "true")
}

/// The Collector binary: `PHOENIX_OTELCOL`, else the last build of
/// `scripts/build-collector` in the workspace's target directory. Without either, prints a
/// loud skip notice and returns `None`, or panics when [`collector_required`].
#[must_use]
pub fn collector_binary() -> Option<PathBuf> {
    let from_env = std::env::var_os("PHOENIX_OTELCOL")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/otelcol/otelcol-phoenix");
    let found = from_env.or_else(|| built.exists().then_some(built));
    match found {
        Some(path) if path.exists() => Some(path),
        other => {
            assert!(
                !collector_required(),
                "no OpenTelemetry Collector ({}) but PHOENIX_REQUIRE_COLLECTOR=1: run scripts/build-collector",
                other.map_or_else(
                    || "PHOENIX_OTELCOL is not set".to_owned(),
                    |p| format!("{} does not exist", p.display())
                )
            );
            eprintln!(
                "\n!!!!!!!! SKIPPED: no OpenTelemetry Collector (set PHOENIX_OTELCOL or run scripts/build-collector), so this Collector test did not run !!!!!!!!\n"
            );
            None
        }
    }
}
