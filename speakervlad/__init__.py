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

from .api import Decision, IdentifyResult, Verifier
from .audio import load_audio
from .errors import (
    AudioError,
    CalibrationError,
    CheckpointError,
    ConfigError,
    EmbeddingError,
    SpeakerVladError,
    StoreError,
    TrialError,
    UnknownSpeakerError,
)
from .inference import EmbeddingModel, load_model

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
    "TrialError",
    "UnknownSpeakerError",
    "__version__",
    "load_audio",
    "load_model",
]
