"""What a recording gave its embedding, and whether that is enough: the speech gate of enroll and verify.

A recording's :class:`RecordingQuality` is its duration, the seconds of speech
its embedding used (the voice activity detector's segments; all of the audio
when the VAD is off) and, for GhostVLAD models, the share of its frames'
assignment mass that went to the ghost clusters. The :class:`SpeechGate` refuses
recordings with too little speech: a voiceprint from ten seconds of room noise,
or a decision on half a second of speech, is worse than no answer.

Defaults: 2 s of speech to enroll a recording (the issue's "about 2 s": a
profile should rest on several words), 1 s to verify or identify (below a
second, EERs of every published system climb steeply).

>>> SpeechGate().require("room.wav", 0.4, "enroll")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
speakervlad.errors.InsufficientSpeechError: room.wav: 0.40 s of speech found, enrollment needs at least 2.00 s: ...
>>> SpeechGate().require("claim.wav", 1.5, "verify")  # enough: returns quietly
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..errors import ConfigError, InsufficientSpeechError

Purpose = Literal["enroll", "verify", "identify"]
_NAMES = {"enroll": "enrollment", "verify": "verification", "identify": "identification"}


@dataclass(frozen=True)
class RecordingQuality:
    """What one recording gave its embedding (None: not known, e.g. enrolled before speakervlad kept it)."""

    seconds: float | None  # the recording's duration
    speech_seconds: float | None  # the audio the embedding used: VAD speech, or all of it without VAD
    ghost_mass: float | None  # GhostVLAD: the ghost clusters' share of the assignment mass, in [0, 1]; else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SpeechGate:
    """Seconds of speech a recording needs to be enrolled, and to be verified or identified (0: no check)."""

    enroll_seconds: float = 2.0
    test_seconds: float = 1.0

    def __post_init__(self) -> None:
        for name in ("enroll_seconds", "test_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"the speech gate's {name} must be a number of seconds >= 0, got {value}")

    def required(self, purpose: Purpose) -> float:
        return self.enroll_seconds if purpose == "enroll" else self.test_seconds

    def require(self, label: str, speech_seconds: float, purpose: Purpose) -> None:
        """Raise :class:`InsufficientSpeechError` naming ``label`` when ``speech_seconds`` is too little."""
        needed = self.required(purpose)
        if speech_seconds < needed:
            what = "enroll" if purpose == "enroll" else "send"
            raise InsufficientSpeechError(label, speech_seconds, needed, _NAMES[purpose],
                                          f"{what} a recording with more speech (the minimum is configurable)")
