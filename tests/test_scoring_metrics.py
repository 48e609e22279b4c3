"""EER, minDCF, actDCF, Cllr and DET points against independent computations."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from scipy.stats import norm
from sklearn.metrics import roc_auc_score, roc_curve

from speakervlad.errors import TrialError
from speakervlad.scoring import metrics
from speakervlad.scoring.metrics import error_curve, roc_auc, sparse_error_curve


def brute_force(scores: np.ndarray, labels: np.ndarray, p_target: float) -> tuple[float, float, float]:
    """Reference values by trying every threshold one by one: (EER, its threshold, minDCF)."""
    tar, non = scores[labels], scores[~labels]
    candidates = np.append(np.unique(scores), np.inf)
    misses = np.array([np.sum(tar < t) for t in candidates])
    false_alarms = np.array([np.sum(non >= t) for t in candidates])
    fpr, tpr, _ = roc_curve(labels, scores)
    eer = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)
    # the operating point nearest to equal error: smallest |P_miss - P_fa|, first on ties
    eer_threshold = candidates[np.argmin(np.abs(misses * non.size - false_alarms * tar.size))]
    miss, fa = misses / tar.size, false_alarms / non.size
    dcf = (p_target * miss + (1 - p_target) * fa) / min(p_target, 1 - p_target)
    return eer, eer_threshold, dcf.min()


def random_case(rng: np.random.Generator, kind: int) -> tuple[np.ndarray, np.ndarray]:
    n = int(rng.integers(4, 120))
    labels = rng.random(n) < rng.uniform(0.2, 0.8)
    labels[:2] = [True, False]
    if kind == 0:  # continuous, overlapping
        scores = rng.standard_normal(n) + rng.uniform(0, 3) * labels
    elif kind == 1:  # heavy ties
        scores = rng.integers(-2, 3, n).astype(np.float64) + labels * rng.integers(0, 2, n)
    else:  # float32, ties across classes
        scores = np.round(rng.standard_normal(n) + labels, 1).astype(np.float32)
    return scores, labels


@pytest.mark.parametrize("kind", [0, 1, 2])
def test_eer_and_min_dcf_match_brute_force_on_random_cases(kind):
    rng = np.random.default_rng(kind)
    for _ in range(60):
        scores, labels = random_case(rng, kind)
        eer, eer_threshold, dcf = brute_force(scores, labels, 0.05)
        ours_eer, ours_threshold = metrics.eer(scores, labels)
        assert ours_eer == pytest.approx(eer, abs=1e-9)
        assert ours_threshold == pytest.approx(eer_threshold)
        assert metrics.min_dcf(scores, labels, 0.05)[0] == pytest.approx(dcf, abs=1e-12)


def test_sparse_curve_equals_full_curve_bit_for_bit():
    rng = np.random.default_rng(7)
    cases = [random_case(rng, k % 3) for k in range(150)]
    cases.append((np.array([-0.0, 0.0, 1e-40, -1e-40, 5.0, 5.0]), np.array([1, 0, 1, 0, 1, 0], bool)))
    cases.append((1.0 + 1e-9 * rng.standard_normal(5000), rng.random(5000) < 0.5))  # one bucket
    big = rng.random(200_000) < 0.5
    cases.append(((0.1 * rng.standard_normal(200_000) + 0.3 * big).astype(np.float32), big))
    for scores, labels in cases:
        full = error_curve(scores, labels)
        sparse = sparse_error_curve(scores, labels, (0.01, 0.05, 0.5))
        assert sparse.eer() == full.eer()
        for p in (0.01, 0.05, 0.5):
            assert sparse.min_dcf(p) == full.min_dcf(p)


def test_analytic_cases():
    rng = np.random.default_rng(0)
    labels = np.repeat([True, False], 5000)
    separated = np.where(labels, 2.0, 1.0) + 0.1 * rng.random(10_000)
    assert metrics.eer(separated, labels)[0] == 0.0
    assert metrics.min_dcf(separated, labels, 0.01)[0] == 0.0
    same = rng.standard_normal(10_000)
    assert metrics.eer(same, labels)[0] == pytest.approx(0.5, abs=0.02)
    assert metrics.min_dcf(same, labels, 0.01)[0] == pytest.approx(1.0, abs=0.02)
    for d_prime in (1.0, 2.5, 4.0):
        labels = np.repeat([True, False], 200_000)
        scores = rng.standard_normal(400_000) + d_prime * labels
        assert metrics.eer(scores, labels)[0] == pytest.approx(norm.cdf(-d_prime / 2), abs=0.002)


def test_all_tied_scores_give_chance_eer_and_unit_min_dcf():
    labels = np.array([1, 0, 1, 0, 0], bool)
    assert metrics.eer(np.full(5, 0.3), labels) == (0.5, 0.3)
    assert metrics.min_dcf(np.full(5, 0.3), labels, 0.01)[0] == 1.0


def test_ties_are_decided_together_and_order_does_not_matter():
    scores = np.array([0.5, 0.5, 0.5, 0.2, 0.9, 0.5])
    labels = np.array([1, 0, 1, 0, 1, 0], bool)
    curve = error_curve(scores, labels)
    assert curve.thresholds.tolist() == [0.2, 0.5, 0.9, np.inf]  # no threshold splits the 0.5s
    assert curve.misses.tolist() == [0, 0, 2, 3]
    assert curve.false_alarms.tolist() == [3, 2, 0, 0]
    perm = np.random.default_rng(1).permutation(6)
    assert metrics.eer(scores[perm], labels[perm]) == metrics.eer(scores, labels)
    assert metrics.min_dcf(scores[perm], labels[perm], 0.1) == metrics.min_dcf(scores, labels, 0.1)


def test_act_dcf_and_cllr_against_direct_formulas():
    rng = np.random.default_rng(3)
    labels = rng.random(2000) < 0.3
    llrs = rng.standard_normal(2000) * 2 + 3 * labels - 1
    for p in (0.01, 0.2):
        threshold = np.log((1 - p) / p)
        miss = np.mean(llrs[labels] < threshold)
        fa = np.mean(llrs[~labels] >= threshold)
        expected = (p * miss + (1 - p) * fa) / min(p, 1 - p)
        assert metrics.act_dcf(llrs, labels, p) == pytest.approx(expected)
        assert metrics.act_dcf(llrs, labels, p) >= metrics.min_dcf(llrs, labels, p)[0]
    expected_cllr = 0.5 / np.log(2) * (np.mean(np.log1p(np.exp(-llrs[labels])))
                                       + np.mean(np.log1p(np.exp(llrs[~labels]))))
    assert metrics.cllr(llrs, labels) == pytest.approx(expected_cllr)
    assert 0 < metrics.min_cllr(llrs, labels) < metrics.cllr(llrs, labels)


def test_cllr_reference_points():
    labels = np.array([1, 1, 0, 0], bool)
    assert metrics.cllr(np.zeros(4), labels) == pytest.approx(1.0)  # uninformative
    assert metrics.min_cllr(np.array([3.0, 2.0, 1.0, 0.0]), labels) == pytest.approx(0.0)
    assert metrics.min_cllr(np.ones(4), labels) == pytest.approx(1.0)
    # min_cllr is invariant to monotone transforms of the scores
    rng = np.random.default_rng(0)
    scores = rng.standard_normal(500)
    labels = rng.random(500) < scores.clip(-2, 2) / 4 + 0.5
    assert metrics.min_cllr(np.exp(scores), labels) == pytest.approx(metrics.min_cllr(scores, labels))


def test_well_calibrated_gaussian_llrs_have_small_calibration_loss():
    rng = np.random.default_rng(5)
    labels = np.repeat([True, False], 50_000)
    mu = 2.0  # scores N(+-mu/2, 1): the true LLR is mu * score
    llrs = mu * (rng.standard_normal(100_000) + np.where(labels, mu / 2, -mu / 2))
    assert metrics.cllr(llrs, labels) - metrics.min_cllr(llrs, labels) < 0.01
    assert metrics.cllr(3 * llrs, labels) - metrics.min_cllr(llrs, labels) > 0.1  # overconfident


def test_det_points_are_the_staircase_corners():
    rng = np.random.default_rng(2)
    labels = rng.random(300) < 0.5
    scores = rng.standard_normal(300) + labels
    curve = error_curve(scores, labels)
    fa, miss = curve.det_points()
    assert (fa[0], miss[0], fa[-1], miss[-1]) == (1.0, 0.0, 0.0, 1.0)
    assert np.all(np.diff(fa) <= 0) and np.all(np.diff(miss) >= 0)
    corner = set(zip(fa.tolist(), miss.tolist()))
    assert corner <= set(zip(curve.p_fa.tolist(), curve.p_miss.tolist()))
    assert len(fa) < len(curve.p_fa)


def test_bad_inputs_raise_trial_error():
    with pytest.raises(TrialError, match="at least one of each"):
        metrics.eer(np.array([0.1, 0.2]), np.array([True, True]))
    with pytest.raises(TrialError, match="NaN or infinite .*trial 2"):
        metrics.eer(np.array([0.1, np.nan]), np.array([True, False]))
    with pytest.raises(TrialError, match="p_target"):
        metrics.min_dcf(np.array([0.1, 0.2]), np.array([True, False]), 1.5)


def test_det_legend_names_a_min_dcf_point_that_lies_off_the_axes():
    from speakervlad.scoring.plots import det_label

    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(300, bool), np.zeros(700, bool)]
    weak = error_curve(np.r_[rng.normal(1.0, 1, 300), rng.normal(0, 1, 700)], labels)
    label, (fa, miss) = det_label("weak", weak, 0.01)
    dcf = weak.dcf(0.01)
    assert f"minDCF {dcf.min():.3f}" in label
    assert miss > 0.5 and f"miss {100 * miss:.3g}%" in label  # at p=0.01 the best point rejects nearly all
    other = np.random.default_rng(1)
    strong = error_curve(np.r_[other.normal(3.0, 1, 300), other.normal(0, 1, 700)], labels)
    label, (fa, miss) = det_label("strong", strong, 0.01)
    assert 5e-5 <= fa <= 0.5 and 5e-5 <= miss <= 0.5  # within the axes: the cross shows it
    assert label == f"strong (EER {100 * strong.eer()[0]:.2f}%, minDCF {strong.dcf(0.01).min():.3f})"
    assert det_label("x", strong, None) == (f"x (EER {100 * strong.eer()[0]:.2f}%)", None)


def test_roc_auc_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.random(300) < rng.uniform(0.1, 0.9)
        scores = np.round(rng.normal(labels * rng.uniform(0, 2), 1.0), 1)  # rounded: many ties
        assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert roc_auc(np.array([1.0, 2.0]), np.array([False, True])) == 1.0
