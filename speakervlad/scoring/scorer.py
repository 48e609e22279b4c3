"""Trials + embeddings + options -> scores: the one scoring function behind ``speakervlad
score`` and ``speakervlad eval``.

Scores are cosine similarities of length-normalised embeddings, optionally after
subtracting the mean embedding of a (training-set) directory, and optionally
AS-normalised against a cohort directory. Every directory must come from the
model that made the trial embeddings.

>>> import numpy as np
>>> from speakervlad.embedding.directory import Embeddings
>>> from speakervlad.scoring.trials import Trials
>>> emb = Embeddings(["a", "b"], np.array([[1, 0], [1, 1]], np.float32), {"model": "m1"})
>>> trials = Trials.from_pairs(["a"], ["b"], [True])
>>> options = ScoringOptions()
>>> options.name, [round(float(s), 4) for s in score_trials(trials, emb, options).scores]
('cosine', [0.7071])
>>> ScoringOptions(asnorm_cohort="cohort/", mean_from="train/").name
'asnorm300+mean'
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..embedding.directory import Embeddings, load_embeddings
from ..errors import EmbeddingError
from .asnorm import DEFAULT_TOP_N, asnorm_scores, load_cohort
from .cosine import ScoredTrials, cosine_scores, mean_embedding
from .trials import Trials


@dataclass(frozen=True)
class ScoringOptions:
    """How to score."""

    mean_from: str | Path | None = None  # subtract the mean embedding of this directory
    asnorm_cohort: str | Path | None = None  # adaptive s-norm against this cohort directory
    asnorm_top: int = DEFAULT_TOP_N  # cohort scores averaged per utterance
    skip_missing: bool = False  # drop (and report) trials without embeddings instead of failing

    @property
    def name(self) -> str:
        """How scores are made, e.g. ``cosine`` or ``asnorm300+mean`` (recorded with calibrations)."""
        name = f"asnorm{self.asnorm_top}" if self.asnorm_cohort else "cosine"
        return name + ("+mean" if self.mean_from else "")


def score_trials(trials: Trials, embeddings: Embeddings, options: ScoringOptions) -> ScoredTrials:
    """Score ``trials`` from ``embeddings`` as ``options`` say."""
    mean = mean_embedding(same_model(embeddings, options.mean_from)) if options.mean_from else None
    if options.asnorm_cohort:
        cohort = load_cohort(same_model(embeddings, options.asnorm_cohort), mean)
        return asnorm_scores(trials, embeddings, cohort, options.asnorm_top, mean, options.skip_missing)
    return cosine_scores(trials, embeddings, mean, options.skip_missing)


def same_model(embeddings: Embeddings, path: str | Path) -> Embeddings:
    """Open the embedding directory ``path``, refusing one whose recorded model differs from ``embeddings``'."""
    other = load_embeddings(path)
    mine, theirs = embeddings.meta.get("model"), other.meta.get("model")
    if mine and theirs and mine != theirs:
        raise EmbeddingError(f"{path} holds embeddings of model {theirs}, but the trial embeddings are "
                             f"from {mine}; use embeddings of one model")
    return other
