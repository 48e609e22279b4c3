"""Verification metrics: EER, minDCF, actual DCF, Cllr, minCllr, DET points.

A trial is accepted when its score is at least the threshold; thresholds are
only placed at distinct score values (plus +inf), so tied scores are always
accepted or rejected together. :func:`error_curve` gives every operating point
(one sort and cumulative sums: DET plots); :func:`sparse_error_curve` gives the
few that decide the EER and minDCF exactly, without a full sort (evaluation).

* EER: where the miss and false-alarm rates are equal on the piecewise-linear
  curve through the operating points (the linear ROC interpolation of
  ``sklearn.metrics.roc_curve`` + ``brentq``; the same value).
* minDCF: ``min_t (C_miss P_miss(t) p + C_fa P_fa(t) (1 - p)) / min(C_miss p, C_fa (1 - p))``,
  the normalised detection cost of NIST SRE and Kaldi's ``compute_min_dcf.py``.
* actDCF, Cllr (bits): for scores that are calibrated log-likelihood ratios.
* minCllr: Cllr after the optimal monotone calibration (PAV / isotonic regression).
* ROC AUC: the probability that a random target outscores a random non-target
  (ties count half): how well any score separates two classes of anything.

>>> import numpy as np
>>> curve = error_curve(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1], bool))
>>> curve.eer()
(0.5, 0.4)
>>> round(curve.min_dcf(0.01)[0], 4)
0.5
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TrialError


@dataclass(frozen=True)
class ErrorCurve:
    """Operating points: accepting iff score >= ``thresholds[k]`` misses ``misses[k]`` target
    trials and falsely accepts ``false_alarms[k]`` non-target trials."""

    thresholds: np.ndarray  # (K+1,) distinct scores ascending, then +inf
    misses: np.ndarray  # (K+1,) int64, non-decreasing from 0 to n_target
    false_alarms: np.ndarray  # (K+1,) int64, non-increasing from n_nontarget to 0
    n_target: int
    n_nontarget: int

    @property
    def p_miss(self) -> np.ndarray:
        return self.misses / self.n_target  # (K+1,)

    @property
    def p_fa(self) -> np.ndarray:
        return self.false_alarms / self.n_nontarget  # (K+1,)

    def eer(self) -> tuple[float, float]:
        """Equal error rate, and the threshold of the operating point nearest to equal error.

        The EER is where the segment between the last point with P_miss < P_fa
        and the next one crosses P_miss = P_fa. The threshold is that of the
        point with the smallest |P_miss - P_fa|, always one of those two (the
        lower threshold on a tie). Comparisons use exact integer arithmetic.
        """
        n_t, n_n = self.n_target, self.n_nontarget
        gap = self.false_alarms * n_t - self.misses * n_n  # (K+1,) (P_fa - P_miss) * n_t * n_n, decreasing
        k = int(np.argmax(gap <= 0))  # >= 1, since gap[0] = n_t * n_n
        frac = gap[k - 1] / (gap[k - 1] - gap[k])  # where segment (k-1, k) crosses P_miss = P_fa
        before, after = self.misses[k - 1] / n_t, self.misses[k] / n_t
        eer = before + frac * (after - before)
        nearest = k - 1 if gap[k - 1] <= -gap[k] else k
        return float(eer), float(self.thresholds[nearest])

    def dcf(self, p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> np.ndarray:
        """Normalised detection cost at every operating point, (K+1,)."""
        _check_prior(p_target)
        cost = c_miss * p_target * self.p_miss + c_fa * (1 - p_target) * self.p_fa
        return cost / min(c_miss * p_target, c_fa * (1 - p_target))

    def min_dcf(self, p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> tuple[float, float]:
        """Minimum normalised DCF at ``p_target`` and the (lowest) threshold reaching it."""
        cost = self.dcf(p_target, c_miss, c_fa)
        k = int(np.argmin(cost))
        return float(cost[k]), float(self.thresholds[k])

    def det_points(self) -> tuple[np.ndarray, np.ndarray]:
        """(p_fa, p_miss) at the corners of the DET staircase (collinear points dropped)."""
        keep = np.ones(self.thresholds.shape[0], bool)
        if keep.shape[0] > 2:
            d_fa, d_miss = np.diff(self.false_alarms), np.diff(self.misses)
            keep[1:-1] = d_fa[:-1] * d_miss[1:] != d_miss[:-1] * d_fa[1:]  # direction changes
        return self.p_fa[keep], self.p_miss[keep]


def error_curve(scores: np.ndarray, labels: np.ndarray) -> ErrorCurve:
    """Miss and false-alarm counts at every distinct threshold of ``scores`` (any order)."""
    scores, labels = _check(scores, labels)
    order = np.argsort(scores)
    sorted_scores, sorted_labels = scores[order], labels[order]
    last = np.empty(scores.shape[0], bool)  # last position of each distinct value
    np.not_equal(sorted_scores[1:], sorted_scores[:-1], out=last[:-1])
    last[-1] = True
    targets_upto = np.cumsum(sorted_labels, dtype=np.int64)[last]  # (K,) targets with score <= value k
    n_target = int(targets_upto[-1])
    n_nontarget = scores.shape[0] - n_target
    nontargets_upto = np.flatnonzero(last) + 1 - targets_upto  # (K,)
    return ErrorCurve(
        thresholds=np.concatenate([sorted_scores[last].astype(np.float64), [np.inf]]),
        misses=np.concatenate([[0], targets_upto]),
        false_alarms=n_nontarget - np.concatenate([[0], nontargets_upto]),
        n_target=n_target, n_nontarget=n_nontarget)


def eer(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Equal error rate (a fraction) and its threshold."""
    return sparse_error_curve(scores, labels).eer()


def min_dcf(scores: np.ndarray, labels: np.ndarray, p_target: float,
            c_miss: float = 1.0, c_fa: float = 1.0) -> tuple[float, float]:
    """Minimum normalised detection cost and its threshold."""
    return sparse_error_curve(scores, labels, (p_target,), c_miss, c_fa).min_dcf(p_target, c_miss, c_fa)


def sparse_error_curve(scores: np.ndarray, labels: np.ndarray, p_targets: tuple[float, ...] = (),
                       c_miss: float = 1.0, c_fa: float = 1.0) -> ErrorCurve:
    """The operating points of :func:`error_curve` that can decide the EER and each minDCF.

    Exact, but without sorting all scores: scores are counted into buckets of
    nearby values (one ``bincount``), which gives the exact operating point at
    every bucket's lowest score; only buckets that can hold the EER crossing or
    a DCF no worse than the best bucket edge are sorted. ``eer()`` and
    ``min_dcf(p)`` (for ``p`` in ``p_targets``) of the result equal those of the
    full curve, bit for bit; other uses need :func:`error_curve`.
    """
    scores, labels = _check(scores, labels)
    bucket = _bucket(scores)  # (T,) value-ordered bucket of each score
    hist = np.bincount(bucket * 2 + labels, minlength=2 * _BUCKETS).reshape(_BUCKETS, 2)
    target_hist, total_hist = hist[:, 1], hist.sum(axis=1)
    occupied = np.flatnonzero(total_hist)  # (B,) buckets in value order
    targets_below = np.concatenate([[0], np.cumsum(target_hist)])  # (_BUCKETS + 1,)
    nontargets_below = np.concatenate([[0], np.cumsum(total_hist - target_hist)])
    n_target, n_nontarget = int(targets_below[-1]), int(nontargets_below[-1])
    # operating points at each occupied bucket's lowest score, then at +inf: (B+1,)
    edges = ErrorCurve(np.zeros(occupied.shape[0] + 1), np.append(targets_below[occupied], n_target),
                       n_nontarget - np.append(nontargets_below[occupied], n_nontarget), n_target, n_nontarget)
    gap = edges.false_alarms * n_target - edges.misses * n_nontarget
    first_crossed = int(np.argmax(gap <= 0))  # >= 1; B means the +inf point
    chosen = np.zeros(_BUCKETS, bool)
    chosen[occupied[first_crossed - 1:first_crossed + 1]] = True  # the EER segment lies here
    for p_target in p_targets:
        cost = edges.dcf(p_target, c_miss, c_fa)  # (B+1,)
        scale = min(c_miss * p_target, c_fa * (1 - p_target))
        lower_bound = (c_miss * p_target * edges.p_miss[:-1] + c_fa * (1 - p_target) * edges.p_fa[1:]) / scale
        chosen[occupied[lower_bound <= cost.min()]] = True  # no point inside a bucket costs less
    return _curve_of_buckets(scores, labels, bucket, chosen, targets_below, nontargets_below)


_BUCKET_BITS = 16
_BUCKETS = 1 << _BUCKET_BITS


def _bucket(scores: np.ndarray) -> np.ndarray:
    """Top bits of an order-preserving integer image of float32(score), (T,) int32 in [0, _BUCKETS).

    Rounding to float32 is monotone, so equal scores share a bucket and every
    score in a bucket is below every score in a later bucket.
    """
    values = scores.astype(np.float32)  # a copy, changed in place below
    values += np.float32(0.0)  # -0.0 becomes 0.0, so that it shares 0.0's bucket
    bits = values.view(np.int32)
    bits ^= (bits >> 31) & np.int32(0x7FFFFFFF)  # IEEE bits -> signed int of the same order
    bits >>= 32 - _BUCKET_BITS
    bits += np.int32(_BUCKETS // 2)
    return bits


def _curve_of_buckets(scores: np.ndarray, labels: np.ndarray, bucket: np.ndarray, chosen: np.ndarray,
                      targets_below: np.ndarray, nontargets_below: np.ndarray) -> ErrorCurve:
    """Every operating point whose threshold lies in a chosen bucket, plus +inf."""
    picked = np.flatnonzero(chosen[bucket])  # (S,)
    order = picked[np.argsort(scores[picked])]
    values, is_target, where = scores[order], labels[order], bucket[order]  # (S,) ascending
    count = values.shape[0]
    targets_before = np.cumsum(is_target) - is_target  # (S,) within the selection
    nontargets_before = np.arange(count) - targets_before
    starts = np.empty(count, bool)  # first position of each bucket
    starts[0] = True
    np.not_equal(where[1:], where[:-1], out=starts[1:])
    start_of = np.maximum.accumulate(np.where(starts, np.arange(count), 0))  # (S,)
    below_t = targets_below[where] + targets_before - targets_before[start_of]
    below_n = nontargets_below[where] + nontargets_before - nontargets_before[start_of]
    first = np.empty(count, bool)  # first position of each distinct value
    first[0] = True
    np.not_equal(values[1:], values[:-1], out=first[1:])
    n_target, n_nontarget = int(targets_below[-1]), int(nontargets_below[-1])
    return ErrorCurve(
        thresholds=np.concatenate([values[first].astype(np.float64), [np.inf]]),
        misses=np.append(below_t[first], n_target),
        false_alarms=n_nontarget - np.append(below_n[first], n_nontarget),
        n_target=n_target, n_nontarget=n_nontarget)


def act_dcf(llrs: np.ndarray, labels: np.ndarray, p_target: float,
            c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Normalised DCF of the Bayes decision ``llr >= log(C_fa (1 - p) / (C_miss p))``."""
    llrs, labels = _check(llrs, labels)
    _check_prior(p_target)
    threshold = np.log(c_fa * (1 - p_target) / (c_miss * p_target))
    accept = llrs >= threshold
    p_miss = np.count_nonzero(labels & ~accept) / np.count_nonzero(labels)
    p_fa = np.count_nonzero(~labels & accept) / np.count_nonzero(~labels)
    cost = c_miss * p_target * p_miss + c_fa * (1 - p_target) * p_fa
    return float(cost / min(c_miss * p_target, c_fa * (1 - p_target)))


def cllr(llrs: np.ndarray, labels: np.ndarray) -> float:
    """Log-likelihood-ratio cost in bits (0 is perfect, 1 is an uninformative system)."""
    return _cllr(*_check(llrs, labels))


def _cllr(llrs: np.ndarray, labels: np.ndarray) -> float:
    llrs = llrs.astype(np.float64)  # may hold +-inf (from PAV), which cost 0 on the right side
    target_cost = np.logaddexp(0.0, -llrs[labels]).mean()
    nontarget_cost = np.logaddexp(0.0, llrs[~labels]).mean()
    return float((target_cost + nontarget_cost) / (2 * np.log(2)))


def min_cllr(scores: np.ndarray, labels: np.ndarray) -> float:
    """Cllr after the optimal monotone score-to-LLR map (pool-adjacent-violators)."""
    from sklearn.isotonic import IsotonicRegression  # imported here: sklearn takes seconds to load

    scores, labels = _check(scores, labels)
    posterior = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit_transform(
        scores.astype(np.float64), labels.astype(np.float64))  # (T,) P(target | score)
    prior = np.count_nonzero(labels) / labels.shape[0]
    with np.errstate(divide="ignore"):
        llrs = np.log(posterior) - np.log1p(-posterior) - np.log(prior / (1 - prior))
    return _cllr(llrs, labels)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the positives ``labels`` (the Mann-Whitney U statistic
    over the product of the class sizes; tied scores get their average rank).

    >>> roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1], bool))
    0.75
    """
    scores, labels = _check(scores, labels)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # 1-based, ties averaged
    positives = int(np.count_nonzero(labels))
    negatives = labels.shape[0] - positives
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _check_prior(p_target: float) -> None:
    if not 0 < p_target < 1:
        raise TrialError(f"p_target must be between 0 and 1 (exclusive), got {p_target}")


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = np.asarray(scores), np.asarray(labels, dtype=bool)
    if scores.ndim != 1 or scores.shape != labels.shape:
        raise TrialError(f"scores {scores.shape} and labels {labels.shape} must be 1-D of one length")
    n_target = int(np.count_nonzero(labels))
    if n_target == 0 or n_target == labels.shape[0]:
        raise TrialError(f"the trials have {n_target} target and {labels.shape[0] - n_target} "
                         "non-target trials; metrics need at least one of each")
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        raise TrialError(f"{bad.size} scores are NaN or infinite (first at trial {bad[0] + 1}); "
                         "check the scores file")
    return scores, labels
