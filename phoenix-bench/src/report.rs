//! Figures over repetitions, targets and their computed verdicts, and the generated blocks
//! of `docs/benchmarks.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Min, median and max of one figure over repetitions (or criterion samples).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Smallest value.
    pub min: f64,
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Largest value.
    pub max: f64,
    /// Number of values.
    pub n: usize,
}

impl Summary {
    /// The summary of `values`, or `None` when there are none (NaNs are ignored).
    #[must_use]
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => return None,
            n if n % 2 == 1 => sorted[n / 2],
            n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
        };
        Some(Self {
            min: sorted[0],
            median,
            max: sorted[n - 1],
            n,
        })
    }
}

/// The `p`-th percentile (0-100) of sorted values, nearest rank; NaN when empty.
#[must_use]
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a rank within the slice"
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Which way a figure must lie relative to its target value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// figure <= value
    AtMost(f64),
    /// figure < value
    Below(f64),
    /// figure >= value
    AtLeast(f64),
}

impl Bound {
    /// Whether `figure` satisfies the bound.
    #[must_use]
    pub fn holds(self, figure: f64) -> bool {
        match self {
            Self::AtMost(t) => figure <= t,
            Self::Below(t) => figure < t,
            Self::AtLeast(t) => figure >= t,
        }
    }
}

/// One target of a benchmark's targets table. The verdict is computed from the median.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Key the rows refer to.
    pub id: &'static str,
    /// The bound on the figure's median.
    pub bound: Bound,
    /// The target as the design states it, with its source, e.g. "p99 <= 5 ms, design 6".
    pub text: &'static str,
}

impl Target {
    /// "met (text)" or "**missed** (text)", computed from `median`.
    #[must_use]
    pub fn verdict(&self, median: f64) -> String {
        let met = self.bound.holds(median);
        format!("{} ({})", if met { "met" } else { "**missed**" }, self.text)
    }

    /// The target with `id` in `table`.
    ///
    /// # Panics
    /// When no target has that id: a benchmark's rows must refer to its own table.
    #[must_use]
    pub fn find(table: &'static [Self], id: &str) -> &'static Self {
        table
            .iter()
            .find(|t| t.id == id)
            .unwrap_or_else(|| panic!("no target {id:?} in the targets table"))
    }
}

#[derive(Debug)]
struct Row {
    figure: String,
    values: Vec<f64>,
    decimals: usize,
    targets: Vec<&'static Target>,
}

/// The rows of one generated table: each figure's values over repetitions, rendered as
/// min, median and max with the verdict of every target it is checked against.
#[derive(Debug, Default)]
pub struct Report {
    rows: Vec<Row>,
}

/// `value` with `decimals` decimals and thousands separators.
fn number(value: f64, decimals: usize) -> String {
    if !value.is_finite() {
        return "n/a".to_owned();
    }
    let text = format!("{:.*}", decimals, value.abs());
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if value < 0.0 { "-" } else { "" };
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

impl Report {
    /// An empty report.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a figure (its description with its unit), its values over repetitions, the
    /// decimals to show, and the targets it is checked against (none: "no target").
    pub fn row(
        &mut self,
        figure: impl Into<String>,
        values: Vec<f64>,
        decimals: usize,
        targets: &[&'static Target],
    ) -> &mut Self {
        self.rows.push(Row {
            figure: figure.into(),
            values,
            decimals,
            targets: targets.to_vec(),
        });
        self
    }

    /// The median of the row whose figure is `figure`, if it has values.
    #[must_use]
    pub fn median(&self, figure: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.figure == figure)
            .and_then(|r| Summary::of(&r.values))
            .map(|s| s.median)
    }

    /// The table in Markdown: figure, min, median, max, runs, target.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::from(
            "| Figure | min | median | max | runs | target |\n|---|---|---|---|---|---|\n",
        );
        for row in &self.rows {
            let Some(s) = Summary::of(&row.values) else {
                let _ = writeln!(out, "| {} | | not measured | | 0 | |", row.figure);
                continue;
            };
            let verdict = if row.targets.is_empty() {
                "no target".to_owned()
            } else {
                row.targets
                    .iter()
                    .map(|t| t.verdict(s.median))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {verdict} |",
                row.figure,
                number(s.min, row.decimals),
                number(s.median, row.decimals),
                number(s.max, row.decimals),
                s.n,
            );
        }
        out
    }
}

/// `docs/benchmarks.md` of this workspace.
#[must_use]
pub fn benchmarks_doc() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks.md")
}

/// Replaces the generated block `name` of `docs/benchmarks.md` with `body`, stamped with the
/// command that generated it and the commit it ran at. Everything outside the block
/// (hand-written notes included) is kept. A block that does not exist yet is appended.
///
/// # Panics
/// When the document cannot be read or written.
pub fn write_generated(name: &str, command: &str, body: &str) {
    let path = benchmarks_doc();
    let text = std::fs::read_to_string(&path).expect("read docs/benchmarks.md");
    let begin_tag = format!("<!-- bench-{name}:begin");
    let end_tag = format!("<!-- bench-{name}:end -->");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = match git(&["rev-parse", "--short", "HEAD"]) {
        None => "an unknown commit".to_owned(),
        Some(head) => {
            // Changes to anything but this document mean the code measured is not HEAD's.
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| s.lines().any(|l| !l.ends_with("docs/benchmarks.md")));
            if dirty {
                format!("commit {head} with uncommitted changes")
            } else {
                format!("commit {head}")
            }
        }
    };
    let block = format!(
        "{begin_tag} (generated by {command}; edits are overwritten) -->\n\n\
Generated by `{command}` at {commit}; everything between these markers comes from that \
run.\n\n{}\n\n{end_tag}",
        body.trim()
    );
    let out = match (text.find(&begin_tag), text.find(&end_tag)) {
        (Some(start), Some(end)) if end > start => {
            format!("{}{block}{}", &text[..start], &text[end + end_tag.len()..])
        }
        _ => format!("{}\n\n{block}\n", text.trim_end()),
    };
    std::fs::write(&path, out).expect("write docs/benchmarks.md");
    println!("wrote the `{name}` block of {}", path.display());
}

/// The per-iteration times, in nanoseconds, of every sample criterion took of the benchmark
/// `full_id` (e.g. `"cardinality/analyse"`) in this run, read from
/// `<target>/criterion/**/new/{benchmark,sample}.json`. Empty when criterion has not written
/// it (e.g. the benchmark was filtered out).
#[must_use]
pub fn criterion_samples(full_id: &str) -> Vec<f64> {
    let Some(root) = criterion_dir() else {
        return Vec::new();
    };
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let new = path.join("new");
            let meta = std::fs::read_to_string(new.join("benchmark.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
            if let Some(meta) = meta
                && meta["full_id"].as_str() == Some(full_id)
            {
                return read_samples(&new.join("sample.json"));
            }
            stack.push(path);
        }
    }
    Vec::new()
}

fn read_samples(path: &Path) -> Vec<f64> {
    let Some(v) = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    else {
        return Vec::new();
    };
    let (Some(iters), Some(times)) = (v["iters"].as_array(), v["times"].as_array()) else {
        return Vec::new();
    };
    iters
        .iter()
        .zip(times)
        .filter_map(|(i, t)| Some(t.as_f64()? / i.as_f64()?))
        .collect()
}

/// Where criterion writes: `$CRITERION_HOME`, else `<target>/criterion` next to the running
/// benchmark binary (`<target>/<profile>/deps/<bench>`).
fn criterion_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(PathBuf::from(home));
    }
    let exe = std::env::current_exe().ok()?;
    let target = exe.parent()?.parent()?.parent()?;
    Some(target.join("criterion"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_odd_and_even_counts() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max, s.n), (1.0, 2.0, 3.0, 3));
        let s = Summary::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert!((s.median - 2.5).abs() < 1e-12);
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[f64::NAN]).is_none());
    }

    #[test]
    fn verdicts_follow_the_figure() {
        static T: [Target; 2] = [
            Target {
                id: "p99",
                bound: Bound::AtMost(5.0),
                text: "p99 <= 5 ms",
            },
            Target {
                id: "rate",
                bound: Bound::AtLeast(10.0),
                text: ">= 10 M/s",
            },
        ];
        assert!(Target::find(&T, "p99").verdict(5.0).starts_with("met"));
        assert!(
            Target::find(&T, "p99")
                .verdict(5.1)
                .starts_with("**missed**")
        );
        assert!(
            Target::find(&T, "rate")
                .verdict(9.9)
                .starts_with("**missed**")
        );
        let mut r = Report::new();
        r.row(
            "latency (ms)",
            vec![1.0, 7.0, 6.0],
            1,
            &[Target::find(&T, "p99")],
        );
        r.row("rate", vec![12_345.6], 0, &[]);
        let table = r.render();
        assert!(
            table.contains("| latency (ms) | 1.0 | 6.0 | 7.0 | 3 | **missed** (p99 <= 5 ms) |")
        );
        assert!(table.contains("| rate | 12,346 | 12,346 | 12,346 | 1 | no target |"));
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(number(1_234_567.891, 1), "1,234,567.9");
        assert_eq!(number(999.0, 0), "999");
        assert_eq!(number(-1234.0, 0), "-1,234");
        assert_eq!(number(f64::NAN, 2), "n/a");
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!((percentile(&v, 99.0) - 99.0).abs() < 1e-12);
        assert!((percentile(&v, 100.0) - 100.0).abs() < 1e-12);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
