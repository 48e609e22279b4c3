"""``speakervlad eval``: EER / minDCF (and Cllr) of trial lists, from scores or straight from audio.

From score files::

    speakervlad eval --trials veri_test.txt --scores scores.txt --det det.png

From a model and audio (embeds only the utterances the lists need, cached)::

    speakervlad eval --model model.pt --trials veri_test.txt --audio-root voxceleb1/wav [--vad]

No VAD by default: VoxCeleb-style lists are evaluated on the audio as given, as published results are.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import threading
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError
from ..scoring.calibration import Calibration
from ..scoring.metrics import error_curve
from ..scoring.report import DEFAULT_P_TARGETS, EvalResult, evaluate, format_table, write_json
from ..scoring.scorefile import read_scores, write_scores
from ..scoring.scorer import score_trials
from ..scoring.trials import Trials, read_trials
from .score import add_scoring_args, scoring_options
from .speech_args import add_vad_args, vad_from_args

logger = logging.getLogger(__name__)

MODEL_OPTIONS = ("audio_root", "cache", "save_scores", "mean_from", "asnorm_cohort", "vad")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="EER and minDCF of trial lists (from score files, or a model and audio)",
        description="Evaluate one or more trial lists, given their score files (--scores) or a model "
        "and the audio (--model, --audio-root).")
    parser.add_argument("--trials", required=True, nargs="+", type=Path, help="trial list(s)")
    parser.add_argument("--scores", nargs="+", type=Path, help="score file(s), one per trial list")
    parser.add_argument("--model", type=Path,
                        help="checkpoint or ONNX export: embed the audio the trials need")
    parser.add_argument("--audio-root", type=Path, help="folder the trial keys are relative to (with --model)")
    parser.add_argument("--cache", type=Path, metavar="EMB_DIR",
                        help="embedding cache for --model (default: next to the checkpoint, "
                        "named after the model fingerprint)")
    parser.add_argument("--batch-size", type=int, default=16, help="embedding batch size (with --model)")
    parser.add_argument("--save-scores", type=Path, metavar="DIR",
                        help="with --model: also write DIR/<list>.scores.txt")
    add_vad_args(parser, default=False)
    add_scoring_args(parser)
    parser.add_argument("--p-target", nargs="+", type=float, default=list(DEFAULT_P_TARGETS),
                        help="target priors of the minDCF (default: 0.01 0.05)")
    parser.add_argument("--llr", action="store_true",
                        help="the scores are calibrated LLRs: also report actual DCF, Cllr and minCllr")
    parser.add_argument("--det", type=Path, metavar="PNG", help="write a DET plot")
    parser.add_argument("--hist", type=Path, metavar="PNG", help="write target/non-target score histograms")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    parser.set_defaults(func=run)


class Scored(NamedTuple):
    """One trial list, ready for metrics."""

    trials: Trials  # the trials that have scores
    scores: np.ndarray  # (T,) raw scores
    llrs: np.ndarray | None  # (T,) calibrated LLRs, when known
    skipped: int  # trials left out (no embedding or no score)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if (args.scores is None) == (args.model is None):
        raise ConfigError("give either --scores (score files) or --model with --audio-root")
    model_only = [f"--{name.replace('_', '-')}" for name in MODEL_OPTIONS if getattr(args, name)]
    if args.scores is not None and model_only:
        raise ConfigError(f"{', '.join(model_only)} only apply with --model; score files are already scored")
    if args.model is not None and args.llr:
        raise ConfigError("--llr is for score files; with --model the checkpoint's calibration gives the LLRs")
    if args.det or args.hist:  # matplotlib's import (~0.7 s) overlaps with reading the lists
        threading.Thread(target=importlib.import_module, args=("speakervlad.scoring.plots",), daemon=True).start()
    trial_lists = [read_trials(path) for path in args.trials]
    names = _unique_names([trials.name for trials in trial_lists])
    if args.scores is not None:
        if len(args.scores) != len(trial_lists):
            raise ConfigError(f"{len(trial_lists)} trial lists but {len(args.scores)} score files; "
                              "give one score file per trial list, in the same order")
        evaluated = [_from_score_file(trials, path, args) for trials, path in zip(trial_lists, args.scores)]
    else:
        evaluated = _from_model(trial_lists, names, args)
    results = [evaluate(name, item.scores, item.trials.labels, args.p_target, llrs=item.llrs, skipped=item.skipped)
               for name, item in zip(names, evaluated)]
    print(format_table(results))
    _outputs(args, names, evaluated, results)
    logger.info("evaluated %d trial list(s) in %.1f s", len(results), time.perf_counter() - started)
    return 0


def _from_score_file(trials: Trials, path: Path, args: argparse.Namespace) -> Scored:
    kept, scores = read_scores(path).align(trials, args.skip_missing)
    return Scored(kept, scores, scores if args.llr else None, len(trials) - len(kept))


def _from_model(trial_lists: list[Trials], names: list[str], args: argparse.Namespace) -> list[Scored]:
    if args.audio_root is None:
        raise ConfigError("--model needs --audio-root, the folder the trial keys are relative to")
    from ..embedding import open_embedder  # the model's runtime (torch or onnxruntime) only now
    from ..embedding.extraction import embed_keys

    model = open_embedder(args.model)
    vad = vad_from_args(args)
    keys = sorted({key for trials in trial_lists for key in trials.keys.tolist()})
    cache = args.cache or args.model.parent / (f"{args.model.stem}_embeddings_{model.fingerprint[:12]}"
                                               + ("_vad" if vad else ""))
    embeddings = embed_keys(model, keys, args.audio_root, cache, batch_size=args.batch_size, vad=vad)
    options = scoring_options(args)
    kind = options.name
    calibration = Calibration.from_dict(model.calibration) if model.calibration else None
    if calibration is not None and calibration.scoring != kind:
        logger.warning("the model's calibration is for %s scores, not %s: LLR metrics left out",
                       calibration.scoring, kind)
        calibration = None
    evaluated = []
    for name, trials in zip(names, trial_lists):
        scored = score_trials(trials, embeddings, options)
        if args.save_scores:
            write_scores(args.save_scores / f"{name}.scores.txt", scored.trials, scored.scores)
        llrs = calibration.llr(scored.scores) if calibration else None
        evaluated.append(Scored(scored.trials, scored.scores, llrs, scored.skipped))
    return evaluated


def _outputs(args: argparse.Namespace, names: list[str], evaluated: list[Scored],
             results: list[EvalResult]) -> None:
    if args.det or args.hist:
        from ..scoring.plots import plot_det, plot_histogram  # matplotlib only when plotting

        if args.det:
            curves = {name: error_curve(item.scores, item.trials.labels) for name, item in zip(names, evaluated)}
            print(f"DET plot: {plot_det(curves, args.det, p_target=min(args.p_target))}")
        if args.hist:
            named = {name: (item.scores, item.trials.labels) for name, item in zip(names, evaluated)}
            thresholds = {r.name: r.eer_threshold for r in results}
            print(f"histogram: {plot_histogram(named, args.hist, thresholds)}")
    if args.json:
        write_json(args.json, results, p_targets=list(args.p_target))
        print(f"JSON: {args.json}")


def _unique_names(names: list[str]) -> list[str]:
    """Names for the table; repeated ones get a ``#2``, ``#3`` suffix."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out
