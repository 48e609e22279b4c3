"""Embeddings for exactly the utterances a trial list needs, cached on disk.

The cache is an ordinary embedding directory (see :mod:`speakervlad.embeddings`)
whose ``meta.json`` records the model fingerprint; a re-run embeds only the
keys the cache lacks, and a cache made by another model is refused. Work done
before an interruption or a bad file is saved, so a re-run resumes.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..embeddings import Embeddings, load_embeddings, save_embeddings
from ..errors import EmbeddingError, TrialError

logger = logging.getLogger(__name__)

FILES_PER_STEP = 256  # audio files loaded and embedded at a time
SHOW_MISSING = 5


def embed_keys(model, keys: Sequence[str], audio_root: str | Path, cache: str | Path | None = None,
               batch_size: int = 16) -> Embeddings:
    """Embeddings of ``keys`` (paths relative to ``audio_root``) by ``model`` (an EmbeddingModel).

    Keys already in ``cache`` are reused; the others are embedded and added to it.
    """
    audio_root = Path(audio_root)
    old = _open_cache(Path(cache), model.fingerprint) if cache is not None else None
    todo = [key for key in keys if old is None or key not in old]
    absent = [key for key in todo if not (audio_root / key).is_file()]
    if absent:
        raise TrialError(f"{len(absent)} of {len(todo)} utterances to embed are not files under "
                         f"{audio_root} (first: {', '.join(absent[:SHOW_MISSING])}); check --audio-root")
    logger.info("%d utterances needed: %d from the cache, %d to embed", len(set(keys)),
                len(set(keys)) - len(todo), len(todo))
    done: list[np.ndarray] = []  # (n, E) blocks, in todo order
    started = time.perf_counter()
    try:
        for start in tqdm(range(0, len(todo), FILES_PER_STEP), desc="embedding", unit="step",
                          disable=len(todo) <= FILES_PER_STEP):
            paths = [audio_root / key for key in todo[start:start + FILES_PER_STEP]]
            done.append(np.asarray(model.embed_many(paths, batch_size=batch_size), np.float32))
    finally:
        new_keys = todo[:sum(block.shape[0] for block in done)]
        new_matrix = np.concatenate(done) if done else np.zeros((0, model.embedding_dim), np.float32)
        merged = _merge(old, new_keys, new_matrix, model, audio_root)
        if cache is not None and new_keys:
            save_embeddings(cache, merged.keys, merged.matrix, merged.meta)
            logger.info("cached %d new embeddings in %s (%.1f s)", len(new_keys), cache,
                        time.perf_counter() - started)
    return merged


def _open_cache(cache: Path, fingerprint: str) -> Embeddings | None:
    if not cache.exists():
        return None
    emb = load_embeddings(cache)
    if emb.meta.get("model") != fingerprint:
        raise EmbeddingError(f"{cache} holds embeddings of another model ({emb.meta.get('model')}, "
                             f"not {fingerprint}); delete it or choose another --cache")
    return emb


def _merge(old: Embeddings | None, keys: list[str], matrix: np.ndarray, model, audio_root: Path) -> Embeddings:
    meta = {"model": model.fingerprint, "audio_root": str(audio_root)}
    if old is None:
        return Embeddings(list(keys), matrix, meta)
    return Embeddings(old.keys + list(keys), np.concatenate([np.asarray(old.matrix), matrix]),
                      {**old.meta, **meta})
