"""Score and evaluate the real VoxCeleb1-E trial list (581,480 trials) with generated embeddings.

Every key of the list gets an embedding: a random centre per speaker plus
Gaussian noise (seeded; see ``trial_embeddings.py``), so the EER is a few
percent. Prints, from one run: the time of each step (trial parsing, cosine
scoring, metrics), speakervlad's
metrics against the reference code's approach on the same scores
(``sklearn.metrics.roc_curve`` + ``scipy.optimize.brentq`` over ``interp1d``
for the EER, minDCF from the same ROC arrays), both EERs, and the machine's
fp32 matrix-multiply rate and load for context. Timings are the median of
``--repeats`` runs (the best in brackets) of wall-clock time, and the median
CPU time of this process (what the step costs when neighbours leave the
cores alone).

    python benchmarks/score_vox1e.py [--trials ../shared/data/voxceleb1-trials/list_test_all.txt]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn.metrics import roc_curve
from trial_embeddings import DEFAULT_DIM, DEFAULT_NOISE, generated_embeddings

from speakervlad.scoring.cosine import cosine_scores
from speakervlad.scoring.metrics import sparse_error_curve
from speakervlad.scoring.scorefile import read_scores, write_scores
from speakervlad.scoring.trials import read_trials

DEFAULT_TRIALS = Path(__file__).resolve().parents[1].parent / "shared/data/voxceleb1-trials/list_test_all.txt"
P_TARGETS = (0.01, 0.05)


def timed(fn: Callable[[], object], repeats: int) -> tuple[object, float, float, float]:
    """(result of the last run, median wall seconds, best wall seconds, median CPU seconds)."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return result, statistics.median(walls), min(walls), statistics.median(cpus)


def ours(scores: np.ndarray, labels: np.ndarray) -> tuple[float, dict[float, float]]:
    curve = sparse_error_curve(scores, labels, P_TARGETS)
    return curve.eer()[0], {p: curve.min_dcf(p)[0] for p in P_TARGETS}


def ours_eer_only(scores: np.ndarray, labels: np.ndarray) -> float:
    return sparse_error_curve(scores, labels).eer()[0]


def reference_eer(scores: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The reference code's EER: linear interpolation of the ROC, root-found with brentq."""
    fpr, tpr, _ = roc_curve(labels, scores, pos_label=1)
    eer = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)
    return eer, fpr, 1 - tpr


def reference(scores: np.ndarray, labels: np.ndarray) -> tuple[float, dict[float, float]]:
    eer, fpr, fnr = reference_eer(scores, labels)
    dcf = {p: float(np.min(p * fnr + (1 - p) * fpr) / min(p, 1 - p)) for p in P_TARGETS}
    return eer, dcf


def matmul_gflops() -> float:
    """The machine's fp32 matrix-multiply rate right now (1024^3 sgemm, best of 5)."""
    a = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
    _, _, best, _ = timed(lambda: a @ a, 5)
    return 2 * 1024**3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=Path, default=DEFAULT_TRIALS)
    parser.add_argument("--dim", type=int, default=DEFAULT_DIM)
    parser.add_argument("--noise", type=float, default=DEFAULT_NOISE, help="noise std around each speaker centre")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    load = os.getloadavg()[0]
    gflops = matmul_gflops()
    runs: dict[str, tuple[float, float, float]] = {}

    def run(name: str, fn: Callable[[], object], repeats: int = args.repeats) -> object:
        result, *runs[name] = timed(fn, repeats)
        return result

    trials = run("parse trial list", lambda: read_trials(args.trials))
    embeddings = generated_embeddings(trials.keys.tolist(), args.dim, args.noise, args.seed)
    scores = run("cosine scoring (lookup, normalise, row-wise dot)",
                 lambda: cosine_scores(trials, embeddings)).scores
    labels = trials.labels
    eer, dcf = run("speakervlad metrics: EER + minDCF 0.01, 0.05", lambda: ours(scores, labels))
    runs["parse + score + metrics"] = tuple(map(sum, zip(*runs.values())))
    ref_eer, ref_dcf = run("reference: roc_curve + brentq EER + minDCF from ROC", lambda: reference(scores, labels))
    run("speakervlad EER only", lambda: ours_eer_only(scores, labels))
    run("reference EER only (roc_curve + brentq over interp1d)", lambda: reference_eer(scores, labels))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scores.txt"
        run("write score file (not in the total)", lambda: write_scores(path, trials, scores), 1)
        run("read + align score file (not in the total)", lambda: read_scores(path).align(trials), 1)

    print(f"{args.trials.name}: {len(trials):,} trials ({trials.n_target:,} target), "
          f"{len(trials.keys):,} utterances, {args.dim}-d generated embeddings (noise {args.noise})")
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f}, fp32 matmul {gflops:.0f} GFLOP/s")
    print(f"{'step':<54} {'wall median':>11} {'[best]':>8} {'CPU median':>11}")
    for name, (median, best, cpu) in runs.items():
        print(f"{name:<54} {median:10.3f}s {best:7.3f}s {cpu:10.3f}s")
    wall = {name: median for name, (median, _, _) in runs.items()}
    speedup = (wall["reference: roc_curve + brentq EER + minDCF from ROC"]
               / wall["speakervlad metrics: EER + minDCF 0.01, 0.05"])
    speedup_eer = wall["reference EER only (roc_curve + brentq over interp1d)"] / wall["speakervlad EER only"]
    print(f"metrics speed-up vs reference (wall medians): {speedup:.1f}x (EER + 2 minDCF), "
          f"{speedup_eer:.1f}x (EER only)")
    print(f"EER: speakervlad {eer:.6f}  reference {ref_eer:.6f}  "
          f"equal to 4 decimals: {round(eer, 4) == round(ref_eer, 4)}")
    for p in P_TARGETS:
        print(f"minDCF {p:g}: speakervlad {dcf[p]:.6f}  reference {ref_dcf[p]:.6f}")


if __name__ == "__main__":
    main()
