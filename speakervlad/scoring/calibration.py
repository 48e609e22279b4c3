"""Linear calibration of raw scores to log-likelihood ratios, and decision thresholds.

``llr = slope * score + offset`` is fitted by prior-weighted logistic regression
on a development trial list (Brummer's linear calibration, as in FoCal and
BOSARIS): target trials carry total weight ``prior`` and non-target trials
``1 - prior``, so the regression predicts log posterior odds at that prior and
``logit(prior)`` is subtracted to leave an LLR. The default training prior,
0.01, is the operating point evaluations quote first (minDCF at p = 0.01) and
the one a verification service usually decides at, so the LLRs are most
accurate where decisions are made; pass ``prior=0.5`` to weigh both kinds of
error equally (what Cllr measures).

A decision threshold can then be stated two ways (:meth:`Calibration.decision_threshold`):

* as a Bayes decision at a target prior ``p``: accept iff ``llr >= log((1 - p) / p)``;
* as a target false-accept rate: the score above which that fraction of the
  development non-target scores fell. A table of these quantiles is stored, so
  no development data is needed later.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> labels = np.repeat([True, False], 2000)
>>> scores = np.where(labels, 0.6, 0.1) + 0.1 * rng.standard_normal(4000)
>>> cal = fit_calibration(scores, labels)
>>> bool(cal.llr(np.array([0.6]))[0] > 0 > cal.llr(np.array([0.1]))[0])
True
>>> Calibration.from_dict(cal.to_dict()) == cal
True
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import CalibrationError
from . import metrics

FORMAT_VERSION = 1
DEFAULT_PRIOR = 0.01
MIN_FALSE_ACCEPTS = 10  # a FAR threshold must rest on at least this many dev non-target scores
FAR_GRID_PER_DECADE = 20


@dataclass(frozen=True)
class Calibration:
    """``llr = slope * score + offset``, plus what is needed to state thresholds."""

    slope: float
    offset: float
    prior: float  # the target prior the regression was trained at
    scoring: str  # how the raw scores were made, e.g. "cosine"
    far_table: tuple[tuple[float, float], ...]  # (false-accept rate, score threshold), FAR descending
    n_target: int
    n_nontarget: int
    dev: dict = field(default_factory=dict)  # provenance: dev list name and its metrics

    def llr(self, scores: np.ndarray | float) -> np.ndarray:
        """Log-likelihood ratios of raw ``scores``, same shape, float64."""
        return self.slope * np.asarray(scores, dtype=np.float64) + self.offset

    def score_for_llr(self, llr: float) -> float:
        """The raw score whose LLR is ``llr``."""
        return (llr - self.offset) / self.slope

    def bayes_threshold(self, prior: float) -> float:
        """Raw-score threshold of the minimum-risk decision at target prior ``prior`` (C_miss = C_fa)."""
        return self.score_for_llr(bayes_llr_threshold(prior))

    def threshold_for_far(self, far: float) -> float:
        """Raw-score threshold at which about ``far`` of non-target trials are accepted (dev estimate)."""
        fars = np.array([row[0] for row in self.far_table])  # (G,) descending
        thresholds = np.array([row[1] for row in self.far_table])
        if not fars[-1] <= far <= fars[0]:
            raise CalibrationError(
                f"false-accept rate {far:g} is outside the range {fars[-1]:g}..{fars[0]:g} that "
                f"the {self.n_nontarget} development non-target trials can estimate; "
                "choose a rate in that range or calibrate on a larger development list")
        return float(np.interp(-math.log(far), -np.log(fars), thresholds))

    def decision_threshold(self, far: float | None = None, prior: float | None = None) -> tuple[float, str]:
        """(raw-score threshold, description): give exactly one of ``far`` or ``prior``.

        Accept a trial when its raw score is at least the threshold.
        """
        if (far is None) == (prior is None):
            raise CalibrationError("state a decision threshold by exactly one of a false-accept "
                                   "rate (far) or a target prior (prior)")
        if far is not None:
            threshold = self.threshold_for_far(far)
            return threshold, (f"{self.scoring} score >= {threshold:.4f}: false-accept rate {far:.3%} "
                               f"(estimated on {self.n_nontarget} development non-target trials)")
        threshold = self.bayes_threshold(prior)
        return threshold, (f"{self.scoring} score >= {threshold:.4f}: Bayes decision at target prior "
                           f"{prior:g} (LLR >= {bayes_llr_threshold(prior):.3f})")

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (the form stored in checkpoints)."""
        out = asdict(self)
        out["far_table"] = [list(row) for row in self.far_table]
        return {"format": FORMAT_VERSION, "kind": "linear", **out}

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        """Inverse of :meth:`to_dict`; raises CalibrationError on anything else."""
        if not isinstance(data, dict) or data.get("kind") != "linear":
            raise CalibrationError("not a linear calibration; create one with `speakervlad calibrate`")
        if data.get("format") != FORMAT_VERSION:
            raise CalibrationError(f"calibration format {data.get('format')!r} is not supported "
                                   f"(expected {FORMAT_VERSION}); re-run `speakervlad calibrate`")
        try:
            cal = cls(slope=float(data["slope"]), offset=float(data["offset"]),
                      prior=float(data["prior"]), scoring=str(data["scoring"]),
                      far_table=tuple((float(f), float(t)) for f, t in data["far_table"]),
                      n_target=int(data["n_target"]), n_nontarget=int(data["n_nontarget"]),
                      dev=dict(data.get("dev", {})))
        except (KeyError, TypeError, ValueError) as err:
            raise CalibrationError(f"malformed calibration ({err!r}); re-run `speakervlad calibrate`") from err
        if not (cal.slope > 0 and math.isfinite(cal.offset) and cal.far_table):
            raise CalibrationError("calibration has a non-positive slope or no FAR table; "
                                   "re-run `speakervlad calibrate`")
        return cal


def bayes_llr_threshold(prior: float) -> float:
    """LLR threshold ``log((1 - p) / p)`` of the Bayes decision at target prior ``p``."""
    if not 0 < prior < 1:
        raise CalibrationError(f"a target prior must be between 0 and 1 (exclusive), got {prior}")
    return math.log((1 - prior) / prior)


def fit_calibration(scores: np.ndarray, labels: np.ndarray, prior: float = DEFAULT_PRIOR,
                    scoring: str = "cosine", dev_name: str = "") -> Calibration:
    """Fit ``llr = slope * score + offset`` on development scores (T,) and labels (T,)."""
    from sklearn.linear_model import LogisticRegression  # imported here: sklearn takes seconds to load
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    logit_prior = -bayes_llr_threshold(prior)
    n_target = int(np.count_nonzero(labels))
    n_nontarget = labels.shape[0] - n_target
    if min(n_target, n_nontarget) < 2 or not np.isfinite(scores).all():
        raise CalibrationError(f"calibration needs finite scores and at least 2 target and 2 non-target "
                               f"trials, got {n_target} and {n_nontarget}")
    mean, std = scores.mean(), scores.std()
    if not std > 0:
        raise CalibrationError("all development scores are equal; nothing to calibrate")
    total = labels.shape[0]  # weights sum to the trial count, so regularisation is negligible
    weights = np.where(labels, prior * total / n_target, (1 - prior) * total / n_nontarget)
    model = LogisticRegression(C=1e10, solver="newton-cholesky", max_iter=100, tol=1e-10)
    with threadpool_limits(limits=1):  # one feature: extra threads only contend
        model.fit(((scores - mean) / std)[:, None], labels, sample_weight=weights)
    w, b = float(model.coef_[0, 0]), float(model.intercept_[0])
    if not w > 0:
        raise CalibrationError("development scores are not higher for target trials than for "
                               "non-target ones; check that the trial labels match the scores")
    slope, offset = float(w / std), float(b - w * mean / std - logit_prior)  # builtins: torch.load(weights_only)
    cal_llrs = slope * scores + offset
    dev = {"name": dev_name, "eer": metrics.eer(scores, labels)[0],
           "cllr": metrics.cllr(cal_llrs, labels), "min_cllr": metrics.min_cllr(scores, labels),
           f"act_dcf_{prior:g}": metrics.act_dcf(cal_llrs, labels, prior),
           f"min_dcf_{prior:g}": metrics.min_dcf(scores, labels, prior)[0]}
    return Calibration(slope, offset, float(prior), scoring, _far_table(scores[~labels]), n_target,
                       n_nontarget, dev)


def _far_table(nontarget_scores: np.ndarray) -> tuple[tuple[float, float], ...]:
    """Quantiles of non-target scores at false-accept rates from 50% down to MIN_FALSE_ACCEPTS/n."""
    lowest = MIN_FALSE_ACCEPTS / nontarget_scores.shape[0]
    if lowest > 0.5:
        raise CalibrationError(f"a FAR table needs at least {2 * MIN_FALSE_ACCEPTS} non-target trials, "
                               f"got {nontarget_scores.shape[0]}")
    decades = math.log10(0.5 / lowest)
    fars = 0.5 * 10.0 ** -np.linspace(0, decades, max(2, math.ceil(decades * FAR_GRID_PER_DECADE) + 1))
    thresholds = np.quantile(nontarget_scores, 1 - fars)  # (G,)
    return tuple((float(f), float(t)) for f, t in zip(fars, thresholds))
