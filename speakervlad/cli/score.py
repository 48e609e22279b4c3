"""``speakervlad score``: score a trial list with cosine similarity (optionally AS-norm)."""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from ..embedding.directory import load_embeddings
from ..errors import CalibrationError
from ..scoring.asnorm import DEFAULT_TOP_N
from ..scoring.calibration import Calibration
from ..scoring.scorefile import write_scores
from ..scoring.scorer import ScoringOptions, score_trials
from ..scoring.trials import read_trials

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
    """Options shared by ``score`` and ``eval`` (see :class:`ScoringOptions`)."""
    parser.add_argument("--mean-from", type=Path, metavar="DIR",
                        help="subtract the mean embedding of this (training-set) embedding directory")
    parser.add_argument("--asnorm-cohort", type=Path, metavar="DIR",
                        help="adaptive s-norm against this cohort embedding directory")
    parser.add_argument("--asnorm-top", type=int, default=DEFAULT_TOP_N, metavar="N",
                        help=f"cohort scores averaged per utterance in AS-norm (default {DEFAULT_TOP_N})")
    parser.add_argument("--skip-missing", action="store_true",
                        help="drop trials whose utterances have no embedding (reported) instead of failing")


def scoring_options(args: argparse.Namespace) -> ScoringOptions:
    return ScoringOptions(args.mean_from, args.asnorm_cohort, args.asnorm_top, args.skip_missing)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    trials = read_trials(args.trials)
    options = scoring_options(args)
    scored = score_trials(trials, load_embeddings(args.embeddings), options)
    scores, kind = scored.scores, options.name
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
