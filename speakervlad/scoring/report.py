"""Evaluation results of one or more trial lists: computing, a text table, JSON.

>>> import numpy as np
>>> labels = np.array([1, 1, 0, 0, 0], bool)
>>> result = evaluate("toy", np.array([0.9, 0.4, 0.5, 0.1, 0.2]), labels, p_targets=(0.05,))
>>> round(result.eer, 4), result.min_dcf[0.05]
(0.3333, (0.5, 0.9))
>>> print(format_table([result]))  # doctest: +NORMALIZE_WHITESPACE
trial list  trials  targets  EER %  EER threshold  minDCF 0.05
toy              5        2  33.33         0.5000       0.5000
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import metrics

DEFAULT_P_TARGETS = (0.01, 0.05)


@dataclass(frozen=True)
class EvalResult:
    """Metrics of one trial list. Rates are fractions; LLR metrics only for calibrated scores."""

    name: str
    n_target: int
    n_nontarget: int
    eer: float
    eer_threshold: float
    min_dcf: dict[float, tuple[float, float]]  # p_target -> (normalised minDCF, threshold)
    act_dcf: dict[float, float] | None = None  # p_target -> actual DCF of the Bayes decision
    cllr: float | None = None  # bits
    min_cllr: float | None = None  # bits
    skipped: int = 0  # trials left out (no embedding or no score)

    def to_dict(self) -> dict:
        out = {"name": self.name, "trials": self.n_target + self.n_nontarget, "targets": self.n_target,
               "nontargets": self.n_nontarget, "skipped": self.skipped, "eer": self.eer,
               "eer_threshold": self.eer_threshold,
               "min_dcf": {f"{p:g}": {"value": v, "threshold": t} for p, (v, t) in self.min_dcf.items()}}
        if self.act_dcf is not None:
            out.update(act_dcf={f"{p:g}": v for p, v in self.act_dcf.items()},
                       cllr=self.cllr, min_cllr=self.min_cllr)
        return out


def evaluate(name: str, scores: np.ndarray, labels: np.ndarray,
             p_targets: Sequence[float] = DEFAULT_P_TARGETS, llrs: np.ndarray | None = None,
             skipped: int = 0) -> EvalResult:
    """EER and minDCF of ``scores`` (T,) against ``labels`` (T,).

    ``llrs`` (T,), calibrated log-likelihood ratios of the same trials (may be
    ``scores`` itself), add actual DCF, Cllr and minCllr.
    """
    p_targets = tuple(float(p) for p in p_targets)
    curve = metrics.sparse_error_curve(scores, labels, p_targets)
    eer, eer_threshold = curve.eer()
    result = EvalResult(name, curve.n_target, curve.n_nontarget, eer, eer_threshold,
                        {p: curve.min_dcf(p) for p in p_targets}, skipped=skipped)
    if llrs is None:
        return result
    return EvalResult(**{**result.__dict__,
                         "act_dcf": {p: metrics.act_dcf(llrs, labels, p) for p in p_targets},
                         "cllr": metrics.cllr(llrs, labels), "min_cllr": metrics.min_cllr(llrs, labels)})


def format_table(results: Sequence[EvalResult]) -> str:
    """A plain-text table, one row per trial list."""
    p_targets = sorted({p for r in results for p in r.min_dcf})
    with_llr = any(r.act_dcf is not None for r in results)
    header = ["trial list", "trials", "targets", "EER %", "EER threshold"]
    header += [f"minDCF {p:g}" for p in p_targets]
    if with_llr:
        header += [f"actDCF {p:g}" for p in p_targets] + ["Cllr", "minCllr"]
    rows = [header]
    for r in results:
        row = [r.name, str(r.n_target + r.n_nontarget), str(r.n_target), f"{100 * r.eer:.2f}",
               f"{r.eer_threshold:.4f}"]
        row += [f"{r.min_dcf[p][0]:.4f}" if p in r.min_dcf else "-" for p in p_targets]
        if with_llr:
            act = r.act_dcf or {}
            row += [f"{act[p]:.4f}" if p in act else "-" for p in p_targets]
            row += [f"{v:.4f}" if v is not None else "-" for v in (r.cllr, r.min_cllr)]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def write_json(path: str | Path, results: Sequence[EvalResult], **extra: object) -> None:
    """Write ``{"results": [...], **extra}`` as indented JSON."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"results": [r.to_dict() for r in results], **extra}, indent=1) + "\n")
