"""Verifier: enroll, verify and identify speakers with calibrated decisions.

A :class:`Verifier` joins a model (``load_model``), its calibration (score ->
log-likelihood ratio) and an :class:`~speakervlad.verification.store.EnrollmentStore`.
Scores are cosine similarities; a speaker's profile is the mean of their
L2-normalised per-recording embeddings, re-normalised. Thresholds come from
calibration (a target false-accept rate or the Bayes threshold at a stated
prior), or from an explicit ``threshold`` -- never from a built-in number.

Real recordings carry silence and noise, so by default a Verifier embeds each
recording's speech alone (``vad=True``: Silero VAD segments, cut and joined)
and its :class:`~speakervlad.verification.quality.SpeechGate` refuses recordings with too
little speech (2 s to enroll, 1 s to verify or identify) with
:class:`~speakervlad.errors.InsufficientSpeechError`, before anything is stored.
Every decision reports the seconds of speech it used and, for GhostVLAD models,
the ghost clusters' share of the assignment mass; enrollment stores both with
each recording. ``vad=False`` embeds the audio as it is (the gate then counts
all of it as speech).

Example::

    v = Verifier.from_checkpoint("model.pt", store="voices.db", far=0.01)
    v.enroll("alice", ["alice1.wav", "alice2.wav"])
    v.verify("alice", "unknown.wav")      # Decision(score=0.71, llr=3.2, accepted=True, speech_seconds=4.2, ...)
    v.identify("unknown.wav").best        # "alice", or "unknown" when nobody passes
"""
from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..audio import audio_label
from ..embedding.embedder import l2_normalize
from ..embedding.torch_embedder import EmbeddingModel, load_model
from ..embedding.vad import Vad, VoiceActivityDetector, vad_options
from ..errors import AudioError, CalibrationError, InsufficientSpeechError, StoreError
from ..scoring.calibration import Calibration
from .identifiers import UNKNOWN, validate_enrollable_id
from .quality import Purpose, RecordingQuality, SpeechGate
from .store import EnrollmentStore

logger = logging.getLogger(__name__)

#: ``identify`` answers this when no enrolled speaker passes the threshold; never a speaker id

Audio = str | Path | bytes | np.ndarray | tuple


@dataclass(frozen=True)
class Decision:
    """One accept/reject decision and everything it rests on."""

    score: float  # cosine similarity
    llr: float | None  # calibrated log-likelihood ratio; None when the model is uncalibrated
    accepted: bool  # score >= threshold
    threshold: float  # on the score scale
    threshold_source: str  # where the threshold came from, in words
    speech_seconds: float  # speech the test recording gave (compare: the recording with less)
    ghost_mass: float | None  # that recording's ghost clusters' share (GhostVLAD), else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Candidate(NamedTuple):
    speaker_id: str
    score: float
    llr: float | None


@dataclass(frozen=True)
class IdentifyResult:
    """Enrolled speakers ranked by score; ``best`` is ``"unknown"`` when none passes."""

    candidates: list[Candidate]
    best: str
    threshold: float
    threshold_source: str
    speech_seconds: float  # speech the recording gave
    ghost_mass: float | None  # its ghost clusters' share (GhostVLAD), else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "candidates": [c._asdict() for c in self.candidates],
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "speech_seconds": self.speech_seconds,
            "ghost_mass": self.ghost_mass,
        }


@dataclass(frozen=True)
class Enrollment:
    """What one enroll call stored."""

    speaker_id: str
    recordings: int  # the speaker's recordings in total
    labels: tuple[str, ...]  # the recordings added, in order
    added: tuple[RecordingQuality, ...]  # what each gave its embedding


@dataclass(frozen=True)
class Threshold:
    value: float  # on the score scale
    source: str


def resolve_threshold(
    calibration: Calibration | None,
    threshold: float | None = None,
    far: float | None = None,
    prior: float | None = None,
) -> Threshold | None:
    """The decision threshold: explicit, at a target FAR, or Bayes at a prior.

    With none of the three, a calibrated model uses its Bayes threshold at the
    prior it was calibrated at; an uncalibrated one has no threshold (None).
    """
    given = [name for name, value in (("threshold", threshold), ("far", far), ("prior", prior))
             if value is not None]
    if len(given) > 1:
        raise CalibrationError(f"give one of threshold, far or prior, not {' and '.join(given)}")
    if threshold is not None:
        if not math.isfinite(threshold):
            raise CalibrationError(f"threshold must be a finite number, got {threshold}")
        return Threshold(float(threshold), "explicit threshold")
    if calibration is None:
        if far is not None or prior is not None:
            raise CalibrationError(_uncalibrated(f"a decision at a given {given[0]} needs a calibrated model"))
        return None
    if far is None and prior is None:
        prior = calibration.prior  # the prior the calibration was fitted at
    value, description = calibration.decision_threshold(far=far, prior=prior)
    return Threshold(float(value), f"calibration: {description}")


class Verifier:
    """Speaker verification and identification with one model and an enrollment store."""

    def __init__(
        self,
        model: EmbeddingModel,
        store: EnrollmentStore | None = None,
        calibration: Calibration | None = None,
        threshold: Threshold | None = None,
        vad: Vad = True,
        gate: SpeechGate | None = None,
    ):
        self.model = model
        self.store = store
        self.calibration = calibration
        self.threshold = threshold
        self.vad = vad_options(vad)  # None: recordings are embedded as they are
        self.gate = gate or SpeechGate()
        self._detector = VoiceActivityDetector(self.vad) if self.vad else None
        self._infer = threading.Lock()  # one inference at a time: torch already uses every core

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        store: EnrollmentStore | str | Path | None = None,
        threshold: float | None = None,
        far: float | None = None,
        prior: float | None = None,
        device: str = "cpu",
        vad: Vad = True,
        gate: SpeechGate | None = None,
    ) -> Verifier:
        """Load a model checkpoint and (optionally) open an enrollment store.

        The decision threshold is ``threshold`` (explicit score), or the score
        at false-accept rate ``far``, or the Bayes threshold at target ``prior``,
        the last two from the checkpoint's calibration. ``vad`` and ``gate``: see the module.
        """
        model = load_model(path, device=device)
        calibration = Calibration.from_dict(model.calibration) if model.calibration else None
        chosen = resolve_threshold(calibration, threshold, far, prior)
        if calibration is None and chosen is None:
            logger.debug("%s is uncalibrated: decisions need an explicit threshold", path)
        if isinstance(store, (str, Path)):
            store = EnrollmentStore(store)
        return cls(model, store, calibration, chosen, vad=vad, gate=gate)

    @property
    def fingerprint(self) -> str:
        return self.model.fingerprint

    # -- embeddings ----------------------------------------------------------

    def load(self, audio: Audio, sample_rate: int | None = None, name: str | None = None) -> np.ndarray:
        """Decode ``audio`` (path, bytes, array + rate, or ``(array, rate)``) to 16 kHz mono."""
        if isinstance(audio, tuple):
            if len(audio) != 2:
                raise AudioError("<tuple>", "audio as a tuple must be (samples, sample_rate)")
            audio, sample_rate = audio
        return self.model.load(audio, sample_rate, name=name)

    def embed(self, audio: Audio, sample_rate: int | None = None, name: str | None = None) -> np.ndarray:
        """L2-normalised embedding (E,) of one recording (of its speech, with the VAD on; no speech gate)."""
        return self.analyze(audio, sample_rate, name)[0]

    def analyze(self, audio: Audio, sample_rate: int | None = None, name: str | None = None,
                purpose: Purpose | None = None) -> tuple[np.ndarray, RecordingQuality]:
        """The L2-normalised embedding (E,) of one recording and what it gave it; ``purpose`` applies
        the speech gate of ``"enroll"``, ``"verify"`` or ``"identify"``."""
        wave = self.load(audio, sample_rate, name)  # (N,) 16 kHz
        label = name or audio_label(audio)
        used = wave if self._detector is None else self._detector.segments(wave).keep(wave)
        rate = self.model.sample_rate
        speech = len(used) / rate
        if purpose is not None:
            self.gate.require(label, speech, purpose)
        if speech < self.model.min_seconds:
            raise InsufficientSpeechError(label, speech, self.model.min_seconds, "the model",
                                          "send a recording with more speech")
        with self._infer:
            embedded = self.model.analyze_waveform(used)
        vector = l2_normalize(np.asarray(embedded.embedding, dtype=np.float32)[None, :], [label])[0]  # (E,)
        return vector, RecordingQuality(len(wave) / rate, speech, embedded.ghost_mass)

    # -- decisions -------------------------------------------------------------

    def compare(self, a: Audio, b: Audio, sample_rate: int | None = None) -> Decision:
        """Are two recordings from the same speaker?"""
        threshold = self._require_threshold()
        (first, one), (second, other) = (self.analyze(x, sample_rate, purpose="verify") for x in (a, b))
        return self._decide(float(first @ second), threshold, min((one, other), key=_speech))

    def verify(self, speaker_id: str, audio: Audio, sample_rate: int | None = None,
               name: str | None = None) -> Decision:
        """Is ``audio`` (called ``name`` in errors) the enrolled speaker ``speaker_id``?"""
        threshold = self._require_threshold()
        profile = _centroid(self._store().profile(speaker_id, self.fingerprint))  # (E,)
        embedding, quality = self.analyze(audio, sample_rate, name, purpose="verify")
        return self._decide(float(embedding @ profile), threshold, quality)

    def identify(self, audio: Audio, top_k: int = 5, sample_rate: int | None = None,
                 name: str | None = None) -> IdentifyResult:
        """Rank enrolled speakers by score; ``best`` is ``"unknown"`` unless the top one passes."""
        if top_k < 1:
            raise StoreError(f"top_k must be at least 1, got {top_k}")
        threshold = self._require_threshold()
        profiles = self._store().all_profiles(self.fingerprint)
        embedding, quality = self.analyze(audio, sample_rate, name, purpose="identify")  # (E,)
        heard = (quality.speech_seconds, quality.ghost_mass)
        if not profiles:
            return IdentifyResult([], UNKNOWN, threshold.value, threshold.source, *heard)
        ids = list(profiles)
        centroids = np.stack([_centroid(profiles[sid]) for sid in ids])  # (S, E)
        scores = centroids @ embedding  # (S,)
        order = np.argsort(-scores, kind="stable")[:top_k]
        llrs = self._llr(scores[order])
        candidates = [Candidate(ids[i], float(scores[i]), None if llrs is None else float(llrs[j]))
                      for j, i in enumerate(order)]
        best = candidates[0].speaker_id if candidates[0].score >= threshold.value else UNKNOWN
        return IdentifyResult(candidates, best, threshold.value, threshold.source, *heard)

    # -- enrollment ----------------------------------------------------------------

    def enroll(
        self,
        speaker_id: str,
        audios: Sequence[Audio],
        labels: Sequence[str] | None = None,
        sample_rate: int | None = None,
        replace: bool = False,
    ) -> Enrollment:
        """Embed each recording and store it, with what it gave its embedding, for ``speaker_id``.

        All recordings are decoded and pass the speech gate before anything is stored:
        one bad file, or one with too little speech, stores nothing.
        """
        validate_enrollable_id(speaker_id)
        if isinstance(audios, (str, Path, bytes, np.ndarray, tuple)):
            audios = [audios]
        if not audios:
            raise StoreError(f"no recordings given to enroll {speaker_id!r}")
        labels = list(labels) if labels is not None else [_describe(a, i) for i, a in enumerate(audios)]
        if len(labels) != len(audios):
            raise StoreError(f"{len(audios)} recordings but {len(labels)} labels")
        store = self._store()
        analyzed = [self.analyze(a, sample_rate, name=label, purpose="enroll") for a, label in zip(audios, labels)]
        matrix = np.stack([vector for vector, _ in analyzed])  # (n, E)
        quality = tuple(q for _, q in analyzed)
        total = store.add(speaker_id, matrix, labels, self.fingerprint, replace=replace, quality=quality)
        logger.debug("enrolled %s: %d recording(s) added, %d in total", speaker_id, len(matrix), total)
        return Enrollment(speaker_id, total, tuple(labels), quality)

    def remove(self, speaker_id: str) -> int:
        """Forget a speaker; return how many recordings were deleted."""
        return self._store().remove(speaker_id)

    def speakers(self) -> list[dict[str, Any]]:
        """Enrolled speakers: id, recordings, and whether they match this model."""
        return [
            {"speaker_id": info.speaker_id, "recordings": info.recordings,
             "current_model": info.fingerprints == (self.fingerprint,)}
            for info in self._store().speakers()
        ]

    # -- helpers ---------------------------------------------------------------------

    def _store(self) -> EnrollmentStore:
        if self.store is None:
            raise StoreError("this Verifier has no enrollment store: pass store='voices.db'")
        return self.store

    def _require_threshold(self) -> Threshold:
        if self.threshold is None:
            raise CalibrationError(_uncalibrated("this model has no calibration"))
        return self.threshold

    def _llr(self, scores: np.ndarray) -> np.ndarray | None:
        if self.calibration is None:
            return None
        return np.asarray(self.calibration.llr(np.asarray(scores, dtype=np.float64)), dtype=np.float64)

    def _decide(self, score: float, threshold: Threshold, quality: RecordingQuality) -> Decision:
        llrs = self._llr(np.array([score]))
        llr = None if llrs is None else float(llrs[0])
        return Decision(score, llr, score >= threshold.value, threshold.value, threshold.source,
                        quality.speech_seconds, quality.ghost_mass)


def _uncalibrated(reason: str) -> str:
    return (f"{reason}: pass an explicit score threshold (threshold=..., --threshold T) "
            "or calibrate the model on trials (speakervlad calibrate)")


def _centroid(embeddings: np.ndarray) -> np.ndarray:
    """Mean of L2-normalised embeddings (n, E), re-normalised -> (E,)."""
    mean = l2_normalize(embeddings, ["profile"] * len(embeddings)).mean(axis=0)
    return l2_normalize(mean[None, :], ["profile"])[0]


def _speech(quality: RecordingQuality) -> float:
    return quality.speech_seconds or 0.0


def _describe(audio: Audio, index: int = 0) -> str:
    if isinstance(audio, (str, Path)):
        return Path(audio).name
    return f"recording-{index + 1}"
