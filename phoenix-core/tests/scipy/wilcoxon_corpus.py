#!/usr/bin/env python3
"""Writes phoenix-core/tests/data/wilcoxon_corpus.json: paired samples with the p-values
scipy gives for the Wilcoxon signed-rank test of "candidate greater than baseline"
(`scipy.stats.wilcoxon(candidate, baseline, alternative=..., zero_method='wilcox')`).

The Rust test `judge::signed_rank::tests::agrees_with_scipy_on_the_corpus` reads the
committed JSON, so CI needs no scipy. To regenerate (from the repository root):

    python3 -m venv target/scipy-venv
    target/scipy-venv/bin/pip install scipy
    target/scipy-venv/bin/python phoenix-core/tests/scipy/wilcoxon_corpus.py

The corpus is deterministic (Python's `random.Random(20261205)`; values are integers, so
differences are exact in binary floating point). For each case:

- `exact_greater` / `exact_less`: the exact sign-flip (permutation) distribution.
  Without ties or zeros, scipy's `method='exact'`. With ties or zeros, scipy's
  `method='exact'` is **not** exact (it uses the untied table and rounds a half-integer
  statistic, gh-19872), so the reference is `method=PermutationMethod(n_resamples=inf)`,
  which enumerates all 2^n sign flips: only for cases of at most `PERMUTATION_MAX` pairs
  (else `null`). The Rust side also checks its exact-with-ties answer against its own
  brute-force enumeration.
- `approx_greater` / `approx_less`: `method='asymptotic', correction=False` (normal
  approximation with tie correction, zeros dropped), for every case with a nonzero pair.
"""

import json
import math
import random
import sys
from pathlib import Path

import numpy as np
import scipy
from scipy import stats

SEED = 20261205
PERMUTATION_MAX = 16
OUT = Path(__file__).resolve().parents[1] / "data" / "wilcoxon_corpus.json"


def case(rng, n, kind, shift):
    """Baseline and candidate of `n` pairs. `kind`: distinct (no tie, no zero), ties,
    zeros, ties_zeros."""
    while True:
        baseline = [rng.randint(5_000, 50_000) for _ in range(n)]
        if kind == "distinct":
            # Distinct nonzero |d|: a random permutation of distinct magnitudes.
            mags = rng.sample(range(1, 20 * n + 1), n)
            diffs = [m if rng.random() < 0.5 + shift else -m for m in mags]
        else:
            spread = max(2, n // 3)  # few magnitudes: ties
            diffs = [rng.randint(1, spread) * (1 if rng.random() < 0.5 + shift else -1)
                     for _ in range(n)]
            if kind in ("zeros", "ties_zeros"):
                for i in rng.sample(range(n), max(1, n // 5)):
                    diffs[i] = 0
            if kind == "zeros":
                # Zeros but no ties among the nonzero magnitudes.
                nz = [i for i in range(n) if diffs[i] != 0]
                mags = rng.sample(range(1, 20 * n + 1), len(nz))
                for i, m in zip(nz, mags):
                    diffs[i] = m if diffs[i] > 0 else -m
        candidate = [b + d for b, d in zip(baseline, diffs)]
        nonzero = [abs(d) for d in diffs if d != 0]
        has_ties = len(set(nonzero)) < len(nonzero)
        has_zeros = len(nonzero) < n
        want_ties = kind in ("ties", "ties_zeros")
        want_zeros = kind in ("zeros", "ties_zeros")
        if has_ties == want_ties and has_zeros == want_zeros and nonzero:
            return baseline, candidate, has_ties, has_zeros


def p(x, y, alternative, method, **kw):
    r = stats.wilcoxon(x, y, alternative=alternative, zero_method="wilcox",
                       method=method, **kw)
    return float(r.pvalue), float(r.statistic)


def write(doc):
    """One case per line, so a regenerated corpus diffs readably."""
    head = {k: v for k, v in doc.items() if k != "cases"}
    lines = [json.dumps(c, separators=(",", ":")) for c in doc["cases"]]
    text = json.dumps(head, indent=1)[:-2] + ',\n "cases": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n"
    assert json.loads(text) == doc
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)


def main():
    rng = random.Random(SEED)
    cases = []
    sizes = list(range(3, 41)) + [45, 50, 51, 60]
    for n in sizes:
        for kind in ("distinct", "ties", "zeros", "ties_zeros"):
            if kind in ("zeros", "ties_zeros") and n < 4:
                continue
            for shift in (-0.2, 0.0, 0.3):
                b, c, has_ties, has_zeros = case(rng, n, kind, shift)
                x, y = np.array(c, float), np.array(b, float)
                nonzero = sum(1 for u, v in zip(c, b) if u != v)
                entry = {"n_pairs": n, "kind": kind, "baseline": b, "candidate": c}
                _, w_plus = p(x, y, "greater", "asymptotic", correction=False)
                entry["w_plus"] = w_plus
                entry["approx_greater"], _ = p(x, y, "greater", "asymptotic", correction=False)
                entry["approx_less"], _ = p(x, y, "less", "asymptotic", correction=False)
                exact = None
                if not (has_ties or has_zeros):
                    if nonzero <= 50:
                        exact = (p(x, y, "greater", "exact")[0], p(x, y, "less", "exact")[0],
                                 "scipy exact")
                elif n <= PERMUTATION_MAX:
                    perm = stats.PermutationMethod(n_resamples=math.inf)
                    exact = (p(x, y, "greater", perm)[0], p(x, y, "less", perm)[0],
                             "scipy permutation, all 2^n sign flips")
                entry["exact_greater"] = exact[0] if exact else None
                entry["exact_less"] = exact[1] if exact else None
                entry["exact_reference"] = exact[2] if exact else None
                cases.append(entry)
    doc = {
        "generator": "phoenix-core/tests/scipy/wilcoxon_corpus.py",
        "scipy": scipy.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "seed": SEED,
        "zero_method": "wilcox",
        "cases": cases,
    }
    write(doc)
    exact = sum(1 for c in cases if c["exact_greater"] is not None)
    print(f"{len(cases)} cases ({exact} with an exact reference) -> {OUT}")


if __name__ == "__main__":
    main()
