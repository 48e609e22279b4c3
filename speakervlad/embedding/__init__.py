"""Everything after training: turning audio into embeddings and storing them.

========================  ======================================================
``embedder``              the :class:`Embedder` protocol every embedder keeps, and
                          the one L2 normalisation (:func:`l2_normalize`)
``torch_embedder``        :class:`EmbeddingModel`: a checkpoint on PyTorch, chunked
                          for long recordings, fp32 or bf16 (``load_model``)
``onnx_embedder``         :class:`OnnxEmbedder`: an ONNX export on onnxruntime alone
                          (never imports torch)
``vad``                   voice activity detection (Silero VAD on onnxruntime, no torch):
                          speech segments, and a recording's speech alone (``vad=True``)
``explain``               per-frame VAD and (ghost) cluster assignments of a VLAD model,
                          and their picture (``speakervlad explain``)
``export``                checkpoint -> ONNX / TorchScript
``directory``             the embedding-directory format (float32 matrix + keys)
``extraction``            batch extraction of a corpus or of the keys a trial list
                          needs: planned batches, parallel decoding, resumable
``shards``                sharded extraction: partition, merge, unusable-audio report
========================  ======================================================

:func:`open_embedder` picks the embedder for a model file (``.onnx`` or checkpoint).
Importing this package loads no torch; the torch-backed modules load on use.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .embedder import Embedder, l2_normalize

__all__ = ["Embedder", "l2_normalize", "open_embedder"]


def open_embedder(path: str | Path, device: str = "cpu", precision: str = "fp32") -> Embedder:
    """The embedder of a model file: :class:`OnnxEmbedder` for an ``.onnx`` export (fp32, CPU),
    else the checkpoint's :class:`EmbeddingModel` on ``device`` at ``precision``."""
    if Path(path).suffix.lower() == ".onnx":
        if (device, precision) != ("cpu", "fp32"):
            raise ConfigError(f"{path}: an ONNX export runs in fp32 on the CPU here; leave --device and "
                              "--precision at their defaults, or give the checkpoint")
        from .onnx_embedder import OnnxEmbedder

        return OnnxEmbedder(path)
    from .torch_embedder import load_model

    return load_model(path, device=device, precision=precision)
