"""What every embedder offers, and the one L2 normalisation of embeddings.

Both :class:`~speakervlad.embedding.torch_embedder.EmbeddingModel` (PyTorch) and
:class:`~speakervlad.embedding.onnx_embedder.OnnxEmbedder` (onnxruntime) satisfy
:class:`Embedder`, so batch extraction, scoring from audio and the API take either.

:func:`l2_normalize` is the only place embeddings are scaled to unit length. A
zero or non-finite embedding has no direction, so its cosine with anything is
undefined: it raises :class:`~speakervlad.errors.EmbeddingError` naming the row,
never a silently clamped vector.

>>> import numpy as np
>>> l2_normalize(np.array([[3.0, 4.0]])).tolist()
[[0.6000000238418579, 0.800000011920929]]
>>> l2_normalize(np.zeros((1, 2)), ["silence.wav"])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
speakervlad.errors.EmbeddingError: 1 embedding(s) are zero or not finite, ... (first: silence.wav); ...
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ..audio import AudioSource
from ..errors import EmbeddingError
from .vad import Vad


@runtime_checkable
class Embedder(Protocol):
    """A model that turns recordings into fixed-size embeddings."""

    fingerprint: str  # identity of the model (config + weights): embeddings of one model compare
    embedding_dim: int  # E
    sample_rate: int  # the rate audio is resampled to
    min_seconds: float  # shorter audio cannot be embedded
    whole_seconds: float  # recordings up to this long go through the network in one piece

    def load(self, source: AudioSource, sample_rate: int | None = None, name: str | None = None,
             vad: Vad = None) -> np.ndarray:
        """Decode and validate one recording: (N,) float32 at :attr:`sample_rate`; with ``vad`` (True or
        :class:`~speakervlad.embedding.vad.VadOptions`) its speech alone, segments cut and joined."""
        ...

    def embed(self, source: AudioSource, sample_rate: int | None = None, vad: Vad = None) -> np.ndarray:
        """The (E,) embedding of one recording (of its speech alone, with ``vad``)."""
        ...

    def embed_many(self, sources: Sequence[AudioSource], batch_size: int = 16, vad: Vad = None) -> np.ndarray:
        """(N, E) embeddings of many recordings, batched by length (of their speech alone, with ``vad``)."""
        ...

    def embed_waveforms(self, waves: Sequence[np.ndarray], batch_size: int = 16) -> np.ndarray:
        """(N, E) embeddings of decoded waveforms at :attr:`sample_rate`."""
        ...


def l2_normalize(matrix: np.ndarray, names: Sequence[str] | np.ndarray | None = None,
                 in_place: bool = False) -> np.ndarray:
    """Rows of ``matrix`` (N, E) scaled to unit length, float32.

    ``names[i]`` names row i in the error for a zero or non-finite row.
    ``in_place`` reuses ``matrix`` when it is float32.
    """
    out = matrix if in_place and matrix.dtype == np.float32 else np.array(matrix, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", out, out))  # (N,)
    bad = np.flatnonzero(~(norms > 0) | ~np.isfinite(norms))
    if bad.size:
        first = names[int(bad[0])] if names is not None else f"row {int(bad[0])}"
        raise EmbeddingError(f"{bad.size} embedding(s) are zero or not finite, so their direction (and any "
                             f"cosine score) is undefined (first: {first}); check that audio and the model")
    out /= norms[:, None]
    return out
