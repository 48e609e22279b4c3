"""Score files: ``ENROLL TEST SCORE`` per line, in trial-list order.

Scores are written with 9 significant digits, which reproduces a float32
score exactly, so metrics from a score file equal metrics from memory.
Reading matches scores to a trial list by (enroll, test) pair, so a score file
in another order, or one that covers more trials, still evaluates correctly.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TrialError
from .trials import Trials, decode_keys, factorize_pairs, three_columns

logger = logging.getLogger(__name__)

SHOW_MISSING = 5


@dataclass(frozen=True)
class ScoreFile:
    """Scores read from a file: ``keys[enroll_idx[i]]`` vs ``keys[test_idx[i]]`` scored ``scores[i]``."""

    keys: np.ndarray  # (U,) str, sorted and unique
    enroll_idx: np.ndarray  # (S,) int64
    test_idx: np.ndarray  # (S,) int64
    scores: np.ndarray  # (S,) float64
    source: str

    def align(self, trials: Trials, skip_missing: bool = False) -> tuple[Trials, np.ndarray]:
        """The trials that have a score, and their scores (T',) in trial order.

        A trial without a score raises TrialError (counted, first few named)
        unless ``skip_missing``, which drops it with a logged warning.
        """
        n_keys = len(trials.keys)
        trial_codes = trials.enroll_idx * n_keys + trials.test_idx  # (T,) one int per pair
        position = np.searchsorted(trials.keys, self.keys)  # score-file key -> trial key index
        position = np.minimum(position, n_keys - 1)
        known = trials.keys[position] == self.keys
        to_trial = np.where(known, position, -1)  # (U',)
        e, t = to_trial[self.enroll_idx], to_trial[self.test_idx]
        score_codes = np.where((e >= 0) & (t >= 0), e * n_keys + t, -1)  # (S,)
        if score_codes.shape == trial_codes.shape and np.array_equal(score_codes, trial_codes):
            return trials, self.scores  # same trials in the same order
        order = np.argsort(score_codes)
        sorted_codes = score_codes[order]
        slot = np.minimum(np.searchsorted(sorted_codes, trial_codes), sorted_codes.shape[0] - 1)
        found = sorted_codes[slot] == trial_codes  # (T,)
        if not found.all():
            absent = np.flatnonzero(~found)
            shown = ", ".join(f"{trials.keys[trials.enroll_idx[i]]} {trials.keys[trials.test_idx[i]]}"
                              for i in absent[:SHOW_MISSING])
            what = (f"{absent.size} of {len(trials)} trials of {trials.source} have no score in "
                    f"{self.source} (first: {shown})")
            if not skip_missing:
                raise TrialError(f"{what}; score them or pass --skip-missing")
            logger.warning("%s; skipping those trials", what)
        return trials.subset(found), self.scores[order[slot[found]]]


def write_scores(path: str | Path, trials: Trials, scores: np.ndarray) -> None:
    """Write ``ENROLL TEST SCORE`` lines for ``trials`` (T,) and ``scores`` (T,)."""
    if scores.shape != (len(trials),):
        raise TrialError(f"{len(trials)} trials but {scores.shape} scores")
    text = "\n".join(map("{} {} {:.9g}".format, trials.enroll, trials.test, scores.tolist()))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text + "\n" if text else "")


def read_scores(path: str | Path) -> ScoreFile:
    """Read a score file; a malformed line raises TrialError with its line number."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise TrialError(f"cannot read scores {path}: {err.strerror or err}") from err
    expected = "expected 'ENROLL TEST SCORE' (as written by `speakervlad score`)"
    table, bad = three_columns(data)
    if bad is not None:
        line = data.splitlines()[bad]
        raise TrialError(f"{path}, line {bad + 1}: {line.decode(errors='replace').strip()!r} "
                         f"has {len(line.split())} fields; {expected}")
    if table.shape[0] == 0:
        raise TrialError(f"{path}: the score file is empty; {expected}")
    try:
        scores = table[:, 2].astype(np.float64)
    except ValueError:
        row = next(i for i, value in enumerate(table[:, 2].tolist()) if not _is_float(value))
        line = [i for i, text in enumerate(data.splitlines()) if text.split()][row]
        raise TrialError(f"{path}, line {line + 1}: score {table[row, 2].decode(errors='replace')!r} "
                         f"is not a number; {expected}") from None
    raw_keys, enroll_idx, test_idx = factorize_pairs(table[:, 0], table[:, 1])
    return ScoreFile(decode_keys(raw_keys, path), enroll_idx, test_idx, scores, str(path))


def _is_float(value: bytes) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
