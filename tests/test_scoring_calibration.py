"""Linear LLR calibration: fit, thresholds by prior and by false-accept rate, serialisation."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from speakervlad.errors import CalibrationError
from speakervlad.scoring import metrics
from speakervlad.scoring.calibration import Calibration, bayes_llr_threshold, fit_calibration


def gaussian_scores(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Target scores N(0.6, 0.1), non-target N(0.1, 0.1): the true LLR is 50 * score - 17.5."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) < n // 2
    return np.where(labels, 0.6, 0.1) + 0.1 * rng.standard_normal(n), labels


@pytest.mark.parametrize("prior", [0.5, 0.01])
def test_fit_recovers_the_true_llr_of_equal_variance_gaussians(prior):
    scores, labels = gaussian_scores()
    cal = fit_calibration(scores, labels, prior=prior)
    assert cal.slope == pytest.approx(50.0, rel=0.1)
    assert cal.score_for_llr(0.0) == pytest.approx(0.35, abs=0.01)  # midway: LLR 0
    assert cal.prior == prior and cal.n_target == cal.n_nontarget == 10_000
    llrs = cal.llr(scores)
    assert np.mean(llrs[labels] > 0) > 0.99 and np.mean(llrs[~labels] < 0) > 0.99
    assert metrics.cllr(llrs, labels) - metrics.min_cllr(scores, labels) < 0.01
    assert cal.dev["cllr"] == pytest.approx(metrics.cllr(llrs, labels))


def test_calibration_fixes_a_shifted_scaled_system():
    scores, labels = gaussian_scores(seed=1)
    raw = 3 * scores + 1  # raw scores are not LLRs: Cllr far from its minimum
    cal = fit_calibration(raw, labels, prior=0.5)
    assert metrics.cllr(raw, labels) > 0.5
    assert metrics.cllr(cal.llr(raw), labels) < metrics.min_cllr(raw, labels) + 0.01


def test_bayes_threshold_is_where_the_llr_equals_minus_logit_prior():
    scores, labels = gaussian_scores()
    cal = fit_calibration(scores, labels)
    for prior in (0.5, 0.1, 0.01):
        threshold, text = cal.decision_threshold(prior=prior)
        assert cal.llr(threshold) == pytest.approx(math.log((1 - prior) / prior))
        assert f"prior {prior:g}" in text and f"{threshold:.4f}" in text
    assert cal.bayes_threshold(0.01) > cal.bayes_threshold(0.5)  # rarer targets: stricter
    # the Bayes decision at the training prior is near the best possible there
    act = metrics.act_dcf(cal.llr(scores), labels, 0.01)
    assert act < metrics.min_dcf(scores, labels, 0.01)[0] + 0.05


def test_far_threshold_accepts_that_fraction_of_non_targets():
    scores, labels = gaussian_scores(n=40_000)
    cal = fit_calibration(scores, labels)
    fresh, fresh_labels = gaussian_scores(n=40_000, seed=9)  # new trials of the same system
    for far in (0.1, 0.01, 0.001):
        threshold, text = cal.decision_threshold(far=far)
        assert np.mean(fresh[~fresh_labels] >= threshold) == pytest.approx(far, rel=0.3)
        assert "false-accept rate" in text
    lowest = cal.far_table[-1][0]
    assert lowest == pytest.approx(10 / 20_000)
    with pytest.raises(CalibrationError, match="outside the range"):
        cal.threshold_for_far(lowest / 2)


def test_round_trip_through_json():
    scores, labels = gaussian_scores()
    cal = fit_calibration(scores, labels, scoring="asnorm300", dev_name="dev")
    plain = cal.to_dict()

    def builtin_only(value):  # what torch.load(weights_only=True) accepts in a checkpoint
        if isinstance(value, dict):
            return all(isinstance(k, str) and builtin_only(v) for k, v in value.items())
        if isinstance(value, list):
            return all(builtin_only(v) for v in value)
        return type(value) in (float, int, str, bool)

    assert builtin_only(plain)
    again = Calibration.from_dict(json.loads(json.dumps(plain)))
    assert again == cal
    assert again.threshold_for_far(0.01) == cal.threshold_for_far(0.01)
    assert again.scoring == "asnorm300" and again.dev["name"] == "dev"


def test_bad_inputs_and_dicts():
    scores, labels = gaussian_scores(n=1000)
    with pytest.raises(CalibrationError, match="not higher for target"):
        fit_calibration(-scores, labels)
    with pytest.raises(CalibrationError, match="at least 2 target"):
        fit_calibration(scores[:3], np.array([True, False, False]))
    with pytest.raises(CalibrationError, match="exactly one"):
        fit_calibration(scores, labels).decision_threshold(far=0.01, prior=0.01)
    with pytest.raises(CalibrationError, match="between 0 and 1"):
        bayes_llr_threshold(1.0)
    with pytest.raises(CalibrationError, match="not a linear calibration"):
        Calibration.from_dict({"slope": 1})
    data = fit_calibration(scores, labels).to_dict()
    del data["offset"]
    with pytest.raises(CalibrationError, match="malformed calibration"):
        Calibration.from_dict(data)
    with pytest.raises(CalibrationError, match="format 7"):
        Calibration.from_dict({**fit_calibration(scores, labels).to_dict(), "format": 7})
