"""Adaptive symmetric score normalisation (AS-norm) against a cohort.

For a trial (e, t) with cosine score s, let mu_e and sd_e be the mean and
standard deviation of the N highest cosine scores of e against a cohort of
impostor embeddings (likewise mu_t, sd_t for t). The normalised score is::

    0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t)

(Matejka et al., "Analysis of Score Normalization in Multilingual Speaker
Recognition", Interspeech 2017.) Standard deviations are population ones
(ddof=0). Cohort statistics are computed once per unique utterance, with one
matrix multiply per chunk of utterances, so memory stays bounded.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..embedding.directory import Embeddings, load_embeddings
from ..errors import ConfigError, EmbeddingError
from .cosine import ScoredTrials, normalize_rows, prepare_trials, rowwise_dot
from .trials import Trials

logger = logging.getLogger(__name__)

DEFAULT_TOP_N = 300
CHUNK_BYTES = 256 * 2**20  # size of one (chunk, M) block of cohort scores


@dataclass(frozen=True)
class CohortStats:
    """Per-utterance statistics of its top-N cohort scores."""

    mean: np.ndarray  # (U,) float32
    std: np.ndarray  # (U,) float32


def load_cohort(source: str | Path | Embeddings, mean: np.ndarray | None = None) -> np.ndarray:
    """Cohort embeddings from an embedding directory, centred and normalised, (M, E) float32."""
    emb = source if isinstance(source, Embeddings) else load_embeddings(source)
    if len(emb) < 2:
        raise EmbeddingError(f"{source}: an AS-norm cohort needs at least 2 embeddings, found {len(emb)}")
    return normalize_rows(emb.matrix, emb.keys, mean)


def cohort_stats(vectors: np.ndarray, cohort: np.ndarray, top_n: int = DEFAULT_TOP_N,
                 chunk_bytes: int = CHUNK_BYTES) -> CohortStats:
    """Mean and std of each row's ``top_n`` highest scores against ``cohort``.

    vectors: (U, E) unit rows; cohort: (M, E) unit rows.
    """
    if top_n < 2:
        raise ConfigError(f"AS-norm top-N must be at least 2, got {top_n}")
    if vectors.shape[1] != cohort.shape[1]:
        raise EmbeddingError(f"cohort embeddings have {cohort.shape[1]} dimensions but trial "
                             f"embeddings have {vectors.shape[1]}; use a cohort from the same model")
    count = cohort.shape[0]
    if top_n > count:
        logger.warning("AS-norm top-N %d exceeds the cohort size %d; using all %d", top_n, count, count)
        top_n = count
    chunk = max(1, chunk_bytes // (4 * count))
    mean = np.empty(vectors.shape[0], np.float32)  # (U,)
    std = np.empty(vectors.shape[0], np.float32)  # (U,)
    for start in range(0, vectors.shape[0], chunk):
        block = vectors[start:start + chunk] @ cohort.T  # (C, M)
        top = np.partition(block, count - top_n, axis=1)[:, count - top_n:]  # (C, N)
        mean[start:start + chunk] = top.mean(axis=1)
        std[start:start + chunk] = top.std(axis=1)
    return CohortStats(mean, np.maximum(std, np.finfo(np.float32).tiny))


def asnorm_scores(trials: Trials, embeddings: Embeddings, cohort: np.ndarray,
                  top_n: int = DEFAULT_TOP_N, mean: np.ndarray | None = None,
                  skip_missing: bool = False) -> ScoredTrials:
    """AS-norm scores of ``trials``; ``cohort`` (M, E) from :func:`load_cohort` (same ``mean``)."""
    prepared = prepare_trials(trials, embeddings, mean, skip_missing)
    kept = prepared.trials
    raw = rowwise_dot(prepared.vectors, kept.enroll_idx, kept.test_idx)  # (T,)
    used = np.unique(np.concatenate([kept.enroll_idx, kept.test_idx]))  # (V,) key indices
    stats = cohort_stats(prepared.vectors[used], cohort, top_n)
    mu = np.zeros(len(kept.keys), np.float32)  # (U,)
    sd = np.ones(len(kept.keys), np.float32)  # (U,)
    mu[used], sd[used] = stats.mean, stats.std
    e, t = kept.enroll_idx, kept.test_idx
    scores = 0.5 * ((raw - mu[e]) / sd[e] + (raw - mu[t]) / sd[t])
    logger.info("AS-norm: %d utterances against a cohort of %d (top %d)", used.size, cohort.shape[0],
                min(top_n, cohort.shape[0]))
    return ScoredTrials(kept, scores.astype(np.float32), prepared.skipped, prepared.missing_keys)
