"""PNG plots: DET curves on normal-deviate axes and score histograms.

Figures are drawn with matplotlib's object API on an Agg canvas, so nothing
here touches pyplot's global state or needs a display.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.special import ndtri  # the normal deviate (probit); scipy.stats costs a second to import

from .metrics import ErrorCurve

DET_TICKS = (0.0001, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)
DET_LIMITS = (0.00005, 0.5)
#: probit cell in which DET points are merged for drawing: under a pixel of the 720-px plot (6.6 units
#: wide), so a curve of any length is drawn from at most ~2 x 6.6 / GRID = 2,600 points, the same picture
GRID = 5e-3


def plot_det(curves: Mapping[str, ErrorCurve], path: str | Path, title: str = "DET curve",
             p_target: float | None = 0.01) -> Path:
    """Draw one DET curve per named full :func:`~speakervlad.scoring.metrics.error_curve`.

    The EER point is marked with a circle and, if ``p_target`` is given, the
    minDCF operating point with a cross.
    """
    fig = Figure(figsize=(6, 6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    low, high = ndtri(DET_LIMITS)
    for name, curve in curves.items():
        fa, miss = curve.det_points()
        x, y = _probit(fa), _probit(miss)
        keep = _thin(x, y)
        eer, _ = curve.eer()
        label, point = det_label(name, curve, p_target)
        (line,) = ax.plot(x[keep], y[keep], lw=1.5, label=label)
        ax.plot(_probit(eer), _probit(eer), "o", color=line.get_color())
        if point is not None:
            ax.plot(_probit(point[0]), _probit(point[1]), "x", ms=8, color=line.get_color())
    ax.plot([low, high], [low, high], ":", color="grey", lw=0.8)
    ticks = ndtri(DET_TICKS)
    labels = [f"{100 * t:g}" for t in DET_TICKS]
    ax.set_xticks(ticks, labels)
    ax.set_yticks(ticks, labels)
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel("false-accept rate (%)")
    ax.set_ylabel("miss rate (%)")
    marks = "o: EER" + (f", x: minDCF at p={p_target:g}" if p_target is not None else "")
    ax.set_title(f"{title}\n{marks}", fontsize=10)
    ax.grid(True, lw=0.5, alpha=0.5)
    ax.legend(loc="lower left", fontsize=8)  # DET curves run from top left to bottom right
    return _save(fig, path)


def det_label(name: str, curve: ErrorCurve, p_target: float | None) -> tuple[str, tuple[float, float] | None]:
    """Legend text (EER, minDCF, and the minDCF point when it lies off the axes) and that point."""
    eer, _ = curve.eer()
    label = f"{name} (EER {100 * eer:.2f}%"
    if p_target is None:
        return label + ")", None
    dcf = curve.dcf(p_target)
    k = int(np.argmin(dcf))
    point = (float(curve.p_fa[k]), float(curve.p_miss[k]))
    label += f", minDCF {dcf[k]:.3f}"
    if not all(DET_LIMITS[0] <= v <= DET_LIMITS[1] for v in point):  # its cross is clipped away
        label += f" at FA {100 * point[0]:.3g}%, miss {100 * point[1]:.3g}%"
    return label + ")", point


def plot_histogram(named: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path,
                   thresholds: Mapping[str, float] | None = None, bins: int = 100) -> Path:
    """Target and non-target score densities, one panel per name -> (scores (T,), labels (T,))."""
    fig = Figure(figsize=(7, 2.6 * len(named) + 0.4), dpi=120)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(named), 1, squeeze=False)[:, 0]
    for ax, (name, (scores, labels)) in zip(axes, named.items()):
        scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
        edges = np.linspace(scores.min(), scores.max(), bins + 1)
        ax.hist(scores[~labels], edges, density=True, alpha=0.55, label=f"non-target ({np.count_nonzero(~labels)})")
        ax.hist(scores[labels], edges, density=True, alpha=0.55, label=f"target ({np.count_nonzero(labels)})")
        if thresholds and name in thresholds:
            ax.axvline(thresholds[name], color="black", ls="--", lw=1, label="EER threshold")
        ax.set_title(name, fontsize=10)
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    axes[-1].set_xlabel("score")
    return _save(fig, path)


def _probit(p: np.ndarray | float) -> np.ndarray:
    """Normal deviate of a probability, clipped just outside the plotted range."""
    low, high = DET_LIMITS
    return ndtri(np.clip(p, low / 2, 1 - low / 2))


def _thin(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mask keeping the first point of each run of points in one GRID x GRID cell, and the last."""
    cell = np.stack([np.floor(x / GRID), np.floor(y / GRID)], axis=1)  # (P, 2)
    keep = np.ones(x.shape[0], bool)
    keep[1:] = (cell[1:] != cell[:-1]).any(axis=1)
    keep[-1] = True
    return keep


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path
