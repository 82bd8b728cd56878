//! The Wilcoxon signed-rank test of paired samples: baseline and candidate measured on the
//! same input in the same interval, so each interval is one pair and the test asks whether
//! the candidate's value tends to exceed the baseline's of the same interval.
//!
//! Conventions (those of `scipy.stats.wilcoxon` with its default `zero_method='wilcox'`):
//!
//! - `d_i = candidate_i - baseline_i`; pairs with `d_i = 0` are **dropped** before ranking
//!   (Wilcoxon's zero method) and counted in [`SignedRank::zeros`];
//! - the remaining `|d_i|` are ranked 1..n, tied values sharing their average rank (midrank);
//! - `W+` is the sum of the ranks of positive differences (candidate above baseline).
//!
//! **Exact** for `n <= EXACT_MAX_PAIRS` nonzero pairs, ties included: the null distribution
//! of `W+` given the observed ranks is that of the sum of a random subset of the ranks (each
//! sign flipped with probability one half), computed by dynamic programming over the
//! **doubled** ranks (integers even for midranks), `O(n x n(n+1))` additions. This is the
//! exact permutation (sign-flip) distribution, not the untied table: with ties it equals
//! `scipy.stats.wilcoxon(..., method=PermutationMethod(n_resamples=inf))`, without ties
//! `method='exact'`. Above [`EXACT_MAX_PAIRS`], the **normal approximation**: mean
//! `n(n+1)/4`, variance `n(n+1)(2n+1)/24 - sum(t^3 - t)/48` over tie groups of size `t`
//! (zeros already dropped, so they add nothing), no continuity correction (scipy's
//! `method='asymptotic', correction=False`).

use serde::{Deserialize, Serialize};

/// Most nonzero pairs for which the exact distribution is computed. The dynamic program has
/// `n(n+1) + 1` cells and `n` passes: 127,500 additions at 50 pairs. It is also scipy's
/// limit for its automatic choice of an exact method.
pub const EXACT_MAX_PAIRS: usize = 50;

/// How the p-values were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignedRankMethod {
    /// The exact sign-flip distribution of `W+` given the observed (mid)ranks.
    Exact,
    /// Normal approximation with tie correction, without continuity correction.
    NormalApproximation,
}

/// Result of the signed-rank test of candidate against baseline over paired values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedRank {
    /// Pairs given.
    pub pairs: u64,
    /// Pairs whose candidate equals the baseline: dropped (Wilcoxon's zero method).
    pub zeros: u64,
    /// Pairs ranked: `pairs - zeros`.
    pub n: u64,
    /// Pairs where the candidate is higher.
    pub candidate_higher: u64,
    /// Sum of the ranks of the pairs where the candidate is higher.
    pub w_plus: f64,
    /// Sum of the ranks of the pairs where the candidate is lower: `n(n+1)/2 - w_plus`.
    pub w_minus: f64,
    /// Whether some nonzero differences are tied in absolute value (midranks used).
    pub ties: bool,
    /// `(w_plus - n(n+1)/4) / sd`, tie-corrected; `None` when no pair is left.
    pub z: Option<f64>,
    /// One-sided p-value of "the candidate tends to be higher".
    pub p_greater: f64,
    /// One-sided p-value of "the candidate tends to be lower".
    pub p_less: f64,
    /// Two-sided p-value, `min(1, 2 min(p_greater, p_less))`.
    pub p_two_sided: f64,
    /// `w_plus / (n(n+1)/2)`: the share of the rank sum on the candidate's side; 0.5 means
    /// no tendency, 1 that the candidate is higher in every pair. 0.5 when `n = 0`.
    pub effect: f64,
    /// How the p-values were obtained.
    pub method: SignedRankMethod,
}

/// The test with the method chosen by size: exact up to [`EXACT_MAX_PAIRS`] nonzero pairs,
/// the normal approximation above. `None` when the slices differ in length, are empty, or
/// hold a NaN.
#[must_use]
pub fn wilcoxon_signed_rank(baseline: &[f64], candidate: &[f64]) -> Option<SignedRank> {
    signed_rank_with(baseline, candidate, None)
}

/// The test with the method forced (`None`: chosen by size as [`wilcoxon_signed_rank`]).
#[must_use]
pub fn signed_rank_with(
    baseline: &[f64],
    candidate: &[f64],
    method: Option<SignedRankMethod>,
) -> Option<SignedRank> {
    if baseline.is_empty()
        || baseline.len() != candidate.len()
        || baseline.iter().chain(candidate).any(|v| v.is_nan())
    {
        return None;
    }
    let pairs = baseline.len();
    // Nonzero differences as (|d|, candidate higher).
    let mut diffs: Vec<(f64, bool)> = baseline
        .iter()
        .zip(candidate)
        .map(|(b, c)| c - b)
        .filter(|d| *d != 0.0)
        .map(|d| (d.abs(), d > 0.0))
        .collect();
    diffs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = diffs.len();
    // Doubled midranks: a tie group at sorted positions i..j (0-based) has rank
    // (i + 1 + j) / 2, doubled i + 1 + j, an integer.
    let mut doubled = Vec::with_capacity(n);
    let mut tie_term = 0.0; // sum of t^3 - t
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && diffs[j].0 == diffs[i].0 {
            j += 1;
        }
        let t = (j - i) as f64;
        tie_term += t * t * t - t;
        doubled.extend(std::iter::repeat_n((i + 1 + j) as u64, j - i));
        i = j;
    }
    let w_plus2: u64 = doubled
        .iter()
        .zip(&diffs)
        .filter(|(_, d)| d.1)
        .map(|(r, _)| *r)
        .sum();
    let total2 = (n * (n + 1)) as u64; // sum of doubled ranks
    let nf = n as f64;
    let w_plus = w_plus2 as f64 / 2.0;
    let mean = nf * (nf + 1.0) / 4.0;
    let variance = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - tie_term / 48.0;
    let sd = variance.max(0.0).sqrt();
    let z = (sd > 0.0).then(|| (w_plus - mean) / sd);
    let method = method.unwrap_or(if n <= EXACT_MAX_PAIRS {
        SignedRankMethod::Exact
    } else {
        SignedRankMethod::NormalApproximation
    });
    let (p_greater, p_less) = if n == 0 {
        (1.0, 1.0)
    } else {
        match method {
            SignedRankMethod::Exact => {
                let freq = subset_sum_counts(&doubled);
                let all: f64 = freq.iter().sum();
                let at_least: f64 = freq[w_plus2 as usize..].iter().sum();
                let at_most: f64 = freq[..=w_plus2 as usize].iter().sum();
                (at_least / all, at_most / all)
            }
            SignedRankMethod::NormalApproximation => match z {
                Some(z) => (upper_tail(z), upper_tail(-z)),
                None => (1.0, 1.0),
            },
        }
    };
    debug_assert_eq!(
        total2,
        doubled.iter().sum::<u64>(),
        "doubled ranks sum to n(n+1)"
    );
    Some(SignedRank {
        pairs: pairs as u64,
        zeros: (pairs - n) as u64,
        n: n as u64,
        candidate_higher: diffs.iter().filter(|d| d.1).count() as u64,
        w_plus,
        w_minus: (total2 - w_plus2) as f64 / 2.0,
        ties: tie_term > 0.0,
        z,
        p_greater: p_greater.clamp(0.0, 1.0),
        p_less: p_less.clamp(0.0, 1.0),
        p_two_sided: (2.0 * p_greater.min(p_less)).clamp(0.0, 1.0),
        effect: if n == 0 {
            0.5
        } else {
            w_plus2 as f64 / total2 as f64
        },
        method,
    })
}

/// `counts[s]`: how many of the `2^n` subsets of `items` sum to `s` (each item is the
/// doubled rank of a pair whose sign may flip). Counted in `f64`: every count is an integer
/// below `2^n`, exact in a double for `n <= 53`; above that the relative error is `1e-16`.
fn subset_sum_counts(items: &[u64]) -> Vec<f64> {
    let total: u64 = items.iter().sum();
    let mut counts = vec![0.0_f64; total as usize + 1];
    counts[0] = 1.0;
    let mut reach = 0_usize;
    for &item in items {
        let item = item as usize;
        // Highest sums first, so each item is used at most once.
        for s in (0..=reach).rev() {
            let c = counts[s];
            if c != 0.0 {
                counts[s + item] += c;
            }
        }
        reach += item;
    }
    counts
}

/// P(Z > z) for a standard normal Z.
pub(crate) fn upper_tail(z: f64) -> f64 {
    0.5 * super::stats::erfc(z / std::f64::consts::SQRT_2)
}

#[cfg(test)]
mod tests;
