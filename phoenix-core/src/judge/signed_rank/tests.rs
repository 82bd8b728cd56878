//! The signed-rank test against scipy (committed corpus, see
//! `phoenix-core/tests/scipy/wilcoxon_corpus.py`) and against brute-force enumeration.

use serde::Deserialize;

use super::*;

/// P(W+ >= observed) and P(W+ <= observed) by enumerating all 2^n sign assignments of the
/// nonzero differences' midranks: the definition the dynamic program must agree with.
fn brute_force(baseline: &[f64], candidate: &[f64]) -> (f64, f64) {
    let d: Vec<f64> = baseline
        .iter()
        .zip(candidate)
        .map(|(b, c)| c - b)
        .filter(|d| *d != 0.0)
        .collect();
    let n = d.len();
    // Midrank of |d_i|: 1 + (values below) + (equal values - 1) / 2.
    let rank: Vec<f64> = d
        .iter()
        .map(|x| {
            let below = d.iter().filter(|y| y.abs() < x.abs()).count() as f64;
            let equal = d.iter().filter(|y| y.abs() == x.abs()).count() as f64;
            below + (equal + 1.0) / 2.0
        })
        .collect();
    let observed: f64 = (0..n).filter(|&i| d[i] > 0.0).map(|i| rank[i]).sum();
    let (mut ge, mut le) = (0_u64, 0_u64);
    for mask in 0_u64..(1 << n) {
        let w: f64 = (0..n).filter(|i| mask >> i & 1 == 1).map(|i| rank[i]).sum();
        ge += u64::from(w >= observed);
        le += u64::from(w <= observed);
    }
    let all = (1_u64 << n) as f64;
    (ge as f64 / all, le as f64 / all)
}

/// A small deterministic generator (64-bit LCG, high bits), so the cases need no crate.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[test]
fn exact_with_ties_and_zeros_equals_brute_force_enumeration() {
    let mut rng = Lcg(7);
    let mut with_ties = 0;
    for case in 0..400 {
        let n = 1 + (case % 16) as usize;
        let spread = 1 + rng.below(6); // few magnitudes: many ties and zeros
        let baseline: Vec<f64> = (0..n).map(|_| 1_000.0 + rng.below(50) as f64).collect();
        let candidate: Vec<f64> = baseline
            .iter()
            .map(|b| b + rng.below(2 * spread + 1) as f64 - spread as f64)
            .collect();
        let r = wilcoxon_signed_rank(&baseline, &candidate).unwrap();
        assert_eq!(r.method, SignedRankMethod::Exact);
        with_ties += usize::from(r.ties);
        let (ge, le) = brute_force(&baseline, &candidate);
        assert!(
            (r.p_greater - ge).abs() < 1e-12 && (r.p_less - le).abs() < 1e-12,
            "case {case}: {baseline:?} {candidate:?}: dp ({}, {}) vs enumeration ({ge}, {le})",
            r.p_greater,
            r.p_less
        );
        assert_eq!(r.n + r.zeros, n as u64);
        assert!((r.w_plus + r.w_minus - (r.n * (r.n + 1)) as f64 / 2.0).abs() < 1e-9);
    }
    assert!(with_ties > 100, "the cases must exercise ties: {with_ties}");
}

#[derive(Deserialize)]
struct Corpus {
    scipy: String,
    zero_method: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    kind: String,
    baseline: Vec<f64>,
    candidate: Vec<f64>,
    w_plus: f64,
    approx_greater: f64,
    approx_less: f64,
    exact_greater: Option<f64>,
    exact_less: Option<f64>,
}

#[test]
fn agrees_with_scipy_on_the_corpus() {
    let corpus: Corpus =
        serde_json::from_str(include_str!("../../../tests/data/wilcoxon_corpus.json")).unwrap();
    assert_eq!(corpus.zero_method, "wilcox");
    assert!(corpus.scipy.starts_with("1."), "{}", corpus.scipy);
    let (mut exact, mut exact_tied, mut approx) = (0, 0, 0);
    for (i, c) in corpus.cases.iter().enumerate() {
        let what = format!("case {i} ({}, {} pairs)", c.kind, c.baseline.len());
        let auto = wilcoxon_signed_rank(&c.baseline, &c.candidate).unwrap();
        assert_eq!(auto.w_plus, c.w_plus, "{what}");
        assert_eq!(
            auto.method,
            if auto.n as usize <= EXACT_MAX_PAIRS {
                SignedRankMethod::Exact
            } else {
                SignedRankMethod::NormalApproximation
            },
            "{what}"
        );
        if let (Some(g), Some(l)) = (c.exact_greater, c.exact_less) {
            let r =
                signed_rank_with(&c.baseline, &c.candidate, Some(SignedRankMethod::Exact)).unwrap();
            assert!(
                (r.p_greater - g).abs() < 1e-9 && (r.p_less - l).abs() < 1e-9,
                "{what}: exact ({}, {}) vs scipy ({g}, {l})",
                r.p_greater,
                r.p_less
            );
            exact += 1;
            exact_tied += usize::from(r.ties || r.zeros > 0);
        }
        let r = signed_rank_with(
            &c.baseline,
            &c.candidate,
            Some(SignedRankMethod::NormalApproximation),
        )
        .unwrap();
        assert!(
            (r.p_greater - c.approx_greater).abs() < 1e-6
                && (r.p_less - c.approx_less).abs() < 1e-6,
            "{what}: approximation ({}, {}) vs scipy ({}, {})",
            r.p_greater,
            r.p_less,
            c.approx_greater,
            c.approx_less
        );
        approx += 1;
    }
    assert!(
        exact >= 200 && exact_tied >= 80 && approx >= 400,
        "{exact} {exact_tied} {approx}"
    );
}

#[test]
fn textbook_values() {
    // Untied n = 5, all positive: W+ = 15, P(W+ >= 15) = 1/32.
    let b = [10.0, 20.0, 30.0, 40.0, 50.0];
    let c = [11.0, 22.0, 33.0, 44.0, 55.0];
    let r = wilcoxon_signed_rank(&b, &c).unwrap();
    assert_eq!((r.w_plus, r.w_minus, r.n, r.zeros), (15.0, 0.0, 5, 0));
    assert!((r.p_greater - 1.0 / 32.0).abs() < 1e-15);
    assert_eq!(r.p_less, 1.0);
    assert!((r.p_two_sided - 1.0 / 16.0).abs() < 1e-15);
    assert_eq!(r.effect, 1.0);
    // Swapped: the candidate lower everywhere.
    let r = wilcoxon_signed_rank(&c, &b).unwrap();
    assert_eq!(r.w_plus, 0.0);
    assert_eq!(r.p_greater, 1.0);
    assert!((r.p_less - 1.0 / 32.0).abs() < 1e-15);
}

#[test]
fn zeros_are_dropped_and_all_zero_is_not_significant() {
    // Two zero differences are dropped: the rest is the n = 5 case above.
    let b = [10.0, 20.0, 30.0, 40.0, 50.0, 7.0, 8.0];
    let c = [11.0, 22.0, 33.0, 44.0, 55.0, 7.0, 8.0];
    let r = wilcoxon_signed_rank(&b, &c).unwrap();
    assert_eq!((r.pairs, r.zeros, r.n), (7, 2, 5));
    assert!((r.p_greater - 1.0 / 32.0).abs() < 1e-15);
    let r = wilcoxon_signed_rank(&[3.0; 8], &[3.0; 8]).unwrap();
    assert_eq!((r.n, r.z, r.p_greater, r.p_less), (0, None, 1.0, 1.0));
    assert_eq!(r.effect, 0.5);
}

#[test]
fn one_outlier_pair_is_one_rank() {
    // Nine intervals where the candidate is 10 us cheaper, one where it spent 200 us more:
    // its sum is far above the baseline's, its ranks are not.
    let b = [100_000.0; 10];
    let mut c = [90_000.0; 10];
    c[4] = 300_000.0;
    let r = wilcoxon_signed_rank(&b, &c).unwrap();
    assert_eq!((r.candidate_higher, r.w_plus), (1, 10.0));
    assert!(r.p_greater > 0.9, "{}", r.p_greater);
}

#[test]
fn large_samples_use_the_approximation_and_degenerate_inputs_are_refused() {
    let b: Vec<f64> = (0..80).map(|i| f64::from(i) * 3.0).collect();
    let c: Vec<f64> = (0..80)
        .map(|i| f64::from(i) * 3.0 + f64::from(i % 7) - 2.0)
        .collect();
    let r = wilcoxon_signed_rank(&b, &c).unwrap();
    assert_eq!(r.method, SignedRankMethod::NormalApproximation);
    assert!(r.n > EXACT_MAX_PAIRS as u64);
    assert!(r.z.is_some());
    // Exact is still feasible there and close to the approximation.
    let e = signed_rank_with(&b, &c, Some(SignedRankMethod::Exact)).unwrap();
    assert!(
        (e.p_greater - r.p_greater).abs() < 0.01,
        "{} {}",
        e.p_greater,
        r.p_greater
    );
    assert!(wilcoxon_signed_rank(&[], &[]).is_none());
    assert!(wilcoxon_signed_rank(&[1.0], &[1.0, 2.0]).is_none());
    assert!(wilcoxon_signed_rank(&[f64::NAN], &[1.0]).is_none());
}
