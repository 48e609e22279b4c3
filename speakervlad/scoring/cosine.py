"""Cosine scoring of a trial list, vectorised over unique utterances.

Each utterance's embedding is read, centred (optionally) and length-normalised
once; a trial's score is then the dot product of two gathered rows, computed in
chunks so memory stays bounded on lists with millions of trials.

>>> import numpy as np
>>> from speakervlad.embedding.directory import Embeddings
>>> from speakervlad.scoring.trials import Trials
>>> emb = Embeddings(["a", "b", "c"], np.array([[1, 0], [1, 1], [0, 2]], np.float32))
>>> trials = Trials.from_pairs(["a", "a"], ["b", "c"], [True, False])
>>> [round(float(s), 4) for s in cosine_scores(trials, emb).scores]
[0.7071, 0.0]
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..embedding.directory import Embeddings, load_embeddings
from ..embedding.embedder import l2_normalize
from ..errors import EmbeddingError, TrialError
from .trials import Trials

logger = logging.getLogger(__name__)

CHUNK_TRIALS = 2048  # trials per gather-and-dot chunk: two (2048, E) blocks stay in cache
SHOW_MISSING = 5


@dataclass
class ScoredTrials:
    """Scores of the trials that could be scored, and what was skipped."""

    trials: Trials  # the scored trials, in list order
    scores: np.ndarray  # (T,) float32
    skipped: int = 0  # trials dropped because an utterance had no embedding
    missing_keys: list[str] = field(default_factory=list)  # those utterances


@dataclass
class PreparedTrials:
    """Trials whose utterances all have embeddings, with those embeddings ready to dot."""

    trials: Trials
    vectors: np.ndarray  # (U, E) float32, centred and unit length; row i is trials.keys[i]
    skipped: int
    missing_keys: list[str]


def mean_embedding(source: str | Path | Embeddings, chunk_rows: int = 65536) -> np.ndarray:
    """Mean of all embeddings in a (training-set) embedding directory, (E,) float32."""
    emb = source if isinstance(source, Embeddings) else load_embeddings(source)
    if len(emb) == 0:
        raise EmbeddingError(f"{source}: no embeddings to average for --mean-from")
    total = np.zeros(emb.dim, np.float64)  # (E,)
    for start in range(0, len(emb), chunk_rows):
        total += np.asarray(emb.matrix[start:start + chunk_rows], np.float64).sum(axis=0)
    return (total / len(emb)).astype(np.float32)


def normalize_rows(matrix: np.ndarray, keys: list[str] | np.ndarray, mean: np.ndarray | None,
                   in_place: bool = False) -> np.ndarray:
    """Centre by ``mean`` (if given) and scale each row to unit length, (N, E) float32.

    ``in_place`` reuses ``matrix`` when it is a writable float32 array nobody else holds.
    """
    out = matrix if in_place and matrix.dtype == np.float32 else np.array(matrix, dtype=np.float32)
    if mean is not None:
        if mean.shape != (out.shape[1],):
            raise EmbeddingError(f"mean embedding has shape {mean.shape} but embeddings have "
                                 f"{out.shape[1]} dimensions; use a mean from the same model")
        out -= mean
    return l2_normalize(out, keys, in_place=True)


def prepare_trials(trials: Trials, embeddings: Embeddings, mean: np.ndarray | None = None,
                   skip_missing: bool = False) -> PreparedTrials:
    """Look up, centre and normalise the embedding of every utterance the trials use.

    A trial whose utterance has no embedding raises TrialError (counting the
    missing utterances and naming a few), or with ``skip_missing`` is dropped
    and reported through logging and the returned counts.
    """
    keys = trials.keys.tolist()
    skipped, missing_keys = 0, []
    try:
        rows = embeddings.rows(keys)  # (U,) the common case: every key has an embedding
    except EmbeddingError:
        present = np.fromiter((key in embeddings for key in keys), bool, count=len(keys))
        used = np.zeros(len(keys), bool)
        used[trials.enroll_idx] = True
        used[trials.test_idx] = True
        missing_keys = trials.keys[used & ~present].tolist()
        if missing_keys:
            keep = present[trials.enroll_idx] & present[trials.test_idx]  # (T,)
            skipped = int(np.count_nonzero(~keep))
            what = (f"{skipped} of {len(trials)} trials in {trials.source} use {len(missing_keys)} "
                    f"utterances that have no embedding (first: {', '.join(missing_keys[:SHOW_MISSING])})")
            if not skip_missing:
                raise TrialError(f"{what}; extract embeddings for them or pass --skip-missing") from None
            logger.warning("%s; skipping those trials", what)
            trials = trials.subset(keep)
        if not present.any():
            raise TrialError(f"none of the utterances in {trials.source} has an embedding") from None
        stand_in = keys[int(np.argmax(present))]  # any present key: rows of absent keys go unused
        rows = embeddings.rows([key if ok else stand_in for key, ok in zip(keys, present)])
    vectors = normalize_rows(embeddings.matrix[rows], trials.keys, mean, in_place=True)  # (U, E) a new copy
    return PreparedTrials(trials, vectors, skipped, missing_keys)


def rowwise_dot(vectors: np.ndarray, left: np.ndarray, right: np.ndarray,
                chunk: int = CHUNK_TRIALS) -> np.ndarray:
    """``(vectors[left] * vectors[right]).sum(1)`` in chunks, (T,) float32."""
    out = np.empty(left.shape[0], np.float32)  # (T,)
    for start in range(0, left.shape[0], chunk):
        stop = start + chunk
        out[start:stop] = np.einsum("ij,ij->i", vectors[left[start:stop]], vectors[right[start:stop]])
    return out


def cosine_scores(trials: Trials, embeddings: Embeddings, mean: np.ndarray | None = None,
                  skip_missing: bool = False) -> ScoredTrials:
    """Cosine similarity of each trial's two embeddings (after subtracting ``mean``)."""
    prepared = prepare_trials(trials, embeddings, mean, skip_missing)
    kept = prepared.trials
    scores = rowwise_dot(prepared.vectors, kept.enroll_idx, kept.test_idx)
    return ScoredTrials(kept, scores, prepared.skipped, prepared.missing_keys)
