"""speakervlad: speaker verification with thin ResNet-34 + GhostVLAD.

>>> import speakervlad
>>> model = speakervlad.load_model("model.pt")           # doctest: +SKIP
>>> model.embed("speech.wav").shape                       # doctest: +SKIP
(512,)
>>> verifier = speakervlad.Verifier.from_checkpoint("model.pt", store="voices.db")  # doctest: +SKIP
>>> verifier.enroll("alice", ["a1.wav", "a2.wav"])                                   # doctest: +SKIP
>>> verifier.verify("alice", "test.wav").accepted                                     # doctest: +SKIP
True
"""
__version__ = "0.1.0"

import importlib

from .audio import load_audio
from .errors import (
    AudioError,
    CalibrationError,
    CheckpointError,
    ConfigError,
    EmbeddingError,
    SpeakerVladError,
    StoreError,
    StoreUnavailableError,
    TrialError,
    UnknownSpeakerError,
)

# torch-backed names load on first use, so that `import speakervlad` (and the torch-free
# speakervlad.embedding.onnx_embedder) start fast and work where only onnxruntime is wanted
_LAZY = {
    "Decision": "verification.verifier",
    "IdentifyResult": "verification.verifier",
    "Verifier": "verification.verifier",
    "EmbeddingModel": "embedding.torch_embedder",
    "load_model": "embedding.torch_embedder",
    "OnnxEmbedder": "embedding.onnx_embedder",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "Decision",
    "IdentifyResult",
    "Verifier",
    "AudioError",
    "CalibrationError",
    "CheckpointError",
    "ConfigError",
    "EmbeddingError",
    "EmbeddingModel",
    "SpeakerVladError",
    "StoreError",
    "StoreUnavailableError",
    "TrialError",
    "UnknownSpeakerError",
    "__version__",
    "load_audio",
    "load_model",
    "OnnxEmbedder",
]
