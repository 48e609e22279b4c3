"""``speakervlad score``: score a trial list with cosine similarity (optionally AS-norm)."""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from ..embeddings import Embeddings, load_embeddings
from ..errors import CalibrationError, EmbeddingError
from ..scoring.asnorm import DEFAULT_TOP_N, asnorm_scores, load_cohort
from ..scoring.calibration import Calibration
from ..scoring.cosine import ScoredTrials, cosine_scores, mean_embedding
from ..scoring.scorefile import write_scores
from ..scoring.trials import Trials, read_trials

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score", help="score a trial list from an embedding directory",
        description="Write 'ENROLL TEST SCORE' lines, in trial order, for a VoxCeleb or Kaldi trial list.")
    parser.add_argument("--trials", required=True, type=Path, help="trial list (VoxCeleb or Kaldi format)")
    parser.add_argument("--embeddings", required=True, type=Path, help="embedding directory with every key")
    parser.add_argument("-o", "--output", required=True, type=Path, help="score file to write")
    add_scoring_args(parser)
    parser.add_argument("--calibration", type=Path,
                        help="calibration JSON (from `speakervlad calibrate`): write LLRs instead of raw scores")
    parser.set_defaults(func=run)


def add_scoring_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``score`` and ``eval --model``."""
    parser.add_argument("--mean-from", type=Path, metavar="DIR",
                        help="subtract the mean embedding of this (training-set) embedding directory")
    parser.add_argument("--asnorm-cohort", type=Path, metavar="DIR",
                        help="adaptive s-norm against this cohort embedding directory")
    parser.add_argument("--asnorm-top", type=int, default=DEFAULT_TOP_N, metavar="N",
                        help=f"cohort scores averaged per utterance in AS-norm (default {DEFAULT_TOP_N})")
    parser.add_argument("--skip-missing", action="store_true",
                        help="drop trials whose utterances have no embedding (reported) instead of failing")


def scoring_name(args: argparse.Namespace) -> str:
    """How scores are made, e.g. ``cosine`` or ``asnorm300+mean`` (recorded with calibrations)."""
    name = f"asnorm{args.asnorm_top}" if args.asnorm_cohort else "cosine"
    return name + ("+mean" if args.mean_from else "")


def score_with_args(trials: Trials, embeddings: Embeddings, args: argparse.Namespace) -> ScoredTrials:
    """Score ``trials`` as the shared options ask (mean subtraction, AS-norm, skipping)."""
    mean = mean_embedding(_same_model(embeddings, args.mean_from)) if args.mean_from else None
    if args.asnorm_cohort:
        cohort = load_cohort(_same_model(embeddings, args.asnorm_cohort), mean)
        return asnorm_scores(trials, embeddings, cohort, args.asnorm_top, mean, args.skip_missing)
    return cosine_scores(trials, embeddings, mean, args.skip_missing)


def _same_model(embeddings: Embeddings, path: Path) -> Embeddings:
    """Open ``path``, refusing embeddings whose recorded model differs from ``embeddings``'."""
    other = load_embeddings(path)
    mine, theirs = embeddings.meta.get("model"), other.meta.get("model")
    if mine and theirs and mine != theirs:
        raise EmbeddingError(f"{path} holds embeddings of model {theirs}, but the trial embeddings are "
                             f"from {mine}; use embeddings of one model")
    return other


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    trials = read_trials(args.trials)
    scored = score_with_args(trials, load_embeddings(args.embeddings), args)
    scores, kind = scored.scores, scoring_name(args)
    if args.calibration:
        calibration = load_calibration(args.calibration)
        if calibration.scoring != kind:
            logger.warning("%s was fitted on %s scores, but these are %s scores", args.calibration,
                           calibration.scoring, kind)
        scores, kind = calibration.llr(scores), f"{kind} LLR"
    write_scores(args.output, scored.trials, scores)
    skipped = f"; skipped {scored.skipped} trials without embeddings" if scored.skipped else ""
    print(f"wrote {len(scored.trials)} {kind} scores to {args.output} "
          f"({time.perf_counter() - started:.1f} s){skipped}")
    return 0


def load_calibration(path: Path) -> Calibration:
    """Read a calibration JSON file written by ``speakervlad calibrate``."""
    try:
        return Calibration.from_dict(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as err:
        raise CalibrationError(f"cannot read calibration {path}: {err}") from err
