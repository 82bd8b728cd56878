//! The Mann-Whitney U test (Wilcoxon rank-sum): do two samples come from the same
//! distribution, or does one tend to be larger? Exact for small untied samples, normal
//! approximation with tie and continuity corrections otherwise.

use serde::{Deserialize, Serialize};

/// Largest group size for which the exact distribution is used (when there are no ties).
pub const EXACT_MAX_GROUP: usize = 30;

/// How the p-values were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MannWhitneyMethod {
    /// The exact null distribution of U (no ties, both groups of at most 30).
    Exact,
    /// Normal approximation with tie correction and continuity correction.
    NormalApproximation,
}

/// Result of comparing a candidate sample with a baseline sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MannWhitney {
    /// Baseline values.
    pub n_baseline: u64,
    /// Candidate values.
    pub n_candidate: u64,
    /// U of the candidate: pairs (candidate, baseline) where the candidate value is larger,
    /// ties counting one half.
    pub u_candidate: f64,
    /// U of the baseline: `n_baseline x n_candidate - u_candidate`.
    pub u_baseline: f64,
    /// `(u_candidate - n_b n_c / 2) / sd`, tie-corrected, no continuity correction; `None`
    /// when every value is tied.
    pub z: Option<f64>,
    /// One-sided p-value of "the candidate tends to be larger".
    pub p_greater: f64,
    /// One-sided p-value of "the candidate tends to be smaller".
    pub p_less: f64,
    /// Two-sided p-value.
    pub p_two_sided: f64,
    /// `u_candidate / (n_b n_c)`: probability that a candidate value exceeds a baseline
    /// value (ties one half); 0.5 means no difference.
    pub effect: f64,
    /// How the p-values were obtained.
    pub method: MannWhitneyMethod,
}

/// Compares `candidate` with `baseline`. `None` when either is empty or holds a NaN.
#[must_use]
pub fn mann_whitney_u(baseline: &[f64], candidate: &[f64]) -> Option<MannWhitney> {
    let (nb, nc) = (baseline.len(), candidate.len());
    if nb == 0 || nc == 0 || baseline.iter().chain(candidate).any(|v| v.is_nan()) {
        return None;
    }
    // Ranks of the pooled values, ties sharing their average rank.
    let mut pooled: Vec<(f64, bool)> = baseline
        .iter()
        .map(|&v| (v, false))
        .chain(candidate.iter().map(|&v| (v, true)))
        .collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = pooled.len();
    let mut rank_sum_candidate = 0.0;
    let mut tie_term = 0.0; // sum of t^3 - t over tie groups
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && pooled[j].0 == pooled[i].0 {
            j += 1;
        }
        let t = (j - i) as f64;
        let average_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum_candidate += average_rank * pooled[i..j].iter().filter(|p| p.1).count() as f64;
        tie_term += t * t * t - t;
        i = j;
    }
    let (nbf, ncf) = (nb as f64, nc as f64);
    let u_candidate = rank_sum_candidate - ncf * (ncf + 1.0) / 2.0;
    let pairs = nbf * ncf;
    let u_baseline = pairs - u_candidate;
    let mean = pairs / 2.0;
    let nf = n as f64;
    let variance = pairs / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)).max(1.0));
    let sd = variance.max(0.0).sqrt();
    let z = (sd > 0.0).then(|| (u_candidate - mean) / sd);

    let exact = tie_term == 0.0 && nb <= EXACT_MAX_GROUP && nc <= EXACT_MAX_GROUP;
    let (p_greater, p_less, method) = if exact {
        let freq = u_distribution(nc, nb);
        let total: f64 = freq.iter().map(|&f| f as f64).sum();
        // U is an integer without ties.
        let u = u_candidate.round() as usize;
        let at_least: f64 = freq[u..].iter().map(|&f| f as f64).sum();
        let at_most: f64 = freq[..=u].iter().map(|&f| f as f64).sum();
        (at_least / total, at_most / total, MannWhitneyMethod::Exact)
    } else if sd > 0.0 {
        let greater = upper_tail((u_candidate - mean - 0.5) / sd);
        let less = 1.0 - upper_tail((u_candidate - mean + 0.5) / sd);
        (greater, less, MannWhitneyMethod::NormalApproximation)
    } else {
        (1.0, 1.0, MannWhitneyMethod::NormalApproximation)
    };
    Some(MannWhitney {
        n_baseline: nb as u64,
        n_candidate: nc as u64,
        u_candidate,
        u_baseline,
        z,
        p_greater: p_greater.clamp(0.0, 1.0),
        p_less: p_less.clamp(0.0, 1.0),
        p_two_sided: (2.0 * p_greater.min(p_less)).clamp(0.0, 1.0),
        effect: u_candidate / pairs,
        method,
    })
}

/// Frequencies of U = 0..=m*n under the null for groups of `m` and `n` untied values: the
/// coefficients of the Gaussian binomial `[m+n choose m]_q`, built as
/// `prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i)`.
fn u_distribution(m: usize, n: usize) -> Vec<i128> {
    let mut poly = vec![0_i128; m * n + 1];
    poly[0] = 1;
    for i in 1..=m {
        // Multiply by (1 - q^(n+i)), highest degree first.
        let shift = n + i;
        for k in (shift..poly.len()).rev() {
            poly[k] -= poly[k - shift];
        }
        // Divide by (1 - q^i): b[k] = a[k] + b[k - i].
        for k in i..poly.len() {
            poly[k] += poly[k - i];
        }
    }
    poly
}

/// P(Z > z) for a standard normal Z.
fn upper_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Chebyshev fit, fractional error below 1.2e-7).
pub(super) fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_distribution_matches_enumeration() {
        // m = 2, n = 2: U in 0..=4 with frequencies 1,1,2,1,1 (C(4,2) = 6 arrangements).
        assert_eq!(u_distribution(2, 2), [1, 1, 2, 1, 1]);
        assert_eq!(u_distribution(3, 2), [1, 1, 2, 2, 2, 1, 1]);
        let f = u_distribution(30, 30);
        let total: i128 = f.iter().sum();
        assert_eq!(total, 118_264_581_564_861_424); // C(60, 30)
        assert!(f.iter().all(|&x| x > 0));
    }

    #[test]
    fn clearly_larger_candidate_is_significant() {
        let baseline: Vec<f64> = (0..10).map(f64::from).collect();
        let candidate: Vec<f64> = (10..20).map(f64::from).collect();
        let r = mann_whitney_u(&baseline, &candidate).unwrap();
        assert_eq!(r.method, MannWhitneyMethod::Exact);
        assert_eq!(r.u_candidate, 100.0);
        assert_eq!(r.u_baseline, 0.0);
        assert_eq!(r.effect, 1.0);
        // Only 1 of C(20,10) = 184,756 arrangements is this extreme.
        assert!((r.p_greater - 1.0 / 184_756.0).abs() < 1e-12);
        assert_eq!(r.p_less, 1.0);
        assert!(r.p_two_sided < 1e-4);
    }

    #[test]
    fn known_small_example() {
        // Baseline 1,2,4; candidate 3,5: U_c = 1 (3 > 1,2) + ... = 2 + 3 = 5 of 6.
        let r = mann_whitney_u(&[1.0, 2.0, 4.0], &[3.0, 5.0]).unwrap();
        assert_eq!(r.u_candidate, 5.0);
        // P(U >= 5) = (1 + 1) / 10 with frequencies [1,1,2,2,2,1,1].
        assert!((r.p_greater - 0.2).abs() < 1e-12);
        assert!((r.p_two_sided - 0.4).abs() < 1e-12);
    }

    #[test]
    fn same_distribution_is_not_significant_and_ties_use_the_approximation() {
        let a = [5.0, 5.0, 6.0, 7.0, 5.0, 6.0, 7.0, 8.0];
        let b = [5.0, 6.0, 5.0, 7.0, 6.0, 8.0, 7.0, 5.0];
        let r = mann_whitney_u(&a, &b).unwrap();
        assert_eq!(r.method, MannWhitneyMethod::NormalApproximation);
        assert_eq!(r.u_candidate, 32.0);
        assert_eq!(r.z, Some(0.0));
        assert!(r.p_two_sided > 0.9);
    }

    #[test]
    fn large_samples_use_the_normal_approximation() {
        let baseline: Vec<f64> = (0..100).map(|i| f64::from(i) * 1.0).collect();
        let candidate: Vec<f64> = (0..100).map(|i| f64::from(i) * 1.0 + 20.5).collect();
        let r = mann_whitney_u(&baseline, &candidate).unwrap();
        assert_eq!(r.method, MannWhitneyMethod::NormalApproximation);
        // U_c = 10,000 - pairs where the baseline is larger: sum over i of #{j: j > i + 20.5}.
        let expected: f64 = (0..100).map(|i| f64::from(99 - (i + 20).min(99))).sum();
        assert_eq!(r.u_baseline, expected);
        assert!(r.p_greater < 1e-5, "{}", r.p_greater);
        assert!(r.z.unwrap() > 4.0);
    }

    #[test]
    fn all_tied_and_degenerate_inputs() {
        let r = mann_whitney_u(&[3.0; 40], &[3.0; 40]).unwrap();
        assert_eq!(r.z, None);
        assert_eq!(r.p_two_sided, 1.0);
        assert!(mann_whitney_u(&[], &[1.0]).is_none());
        assert!(mann_whitney_u(&[f64::NAN], &[1.0]).is_none());
    }

    #[test]
    fn erfc_is_accurate() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-7);
        assert!((upper_tail(1.959_963_985) - 0.025).abs() < 1e-6);
        assert!((upper_tail(-1.644_853_627) - 0.95).abs() < 1e-6);
    }
}
