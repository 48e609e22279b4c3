"""Voice activity detection: where a recording has speech, with Silero VAD on onnxruntime.

The model is Silero VAD v6 (``silero-vad`` 6.2.3, MIT), whose wheel ships it as
TorchScript and as ONNX files under ``silero_vad/data/``. We run the ONNX
*sequence* export (``silero_vad_16k_sequence.onnx``: one call per block of
512 frames of 32 ms, the LSTM state carried between blocks; per-frame
probabilities equal the streaming model's to 1e-6) with onnxruntime, which is
already a dependency, and locate the file without importing the package: its
``__init__`` imports torch, and the ONNX-only deployment
(:mod:`~speakervlad.embedding.onnx_embedder`) must never load torch. This module
needs numpy and onnxruntime only. It costs a few milliseconds of one CPU core per
second of audio (``benchmarks/vad_speed.py``) and memory of one 16 s block.

Probabilities become segments as Silero's ``get_speech_timestamps`` makes them
(no maximum segment length): speech starts at a frame with probability >=
``threshold`` and ends after ``min_silence_seconds`` below ``threshold - 0.15``
(hysteresis); runs shorter than ``min_speech_seconds`` are dropped; each segment
is widened by ``pad_seconds`` (gaps narrower than two pads are split between
their neighbours). ``tests/test_vad.py`` checks the segments against Silero's own
function on its TorchScript model.

>>> VadOptions().threshold, VadOptions().min_speech_seconds
(0.5, 0.25)
>>> speech = SpeechSegments(np.array([[16000, 48000]]), total_samples=64000)
>>> speech.seconds, speech.keep(np.arange(64000, dtype=np.float32)).shape
(2.0, (32000,))
"""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import ConfigError, InsufficientSpeechError

MODEL_FILE = "silero_vad_16k_sequence.onnx"
FRAME = 512  # samples per VAD frame at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous frame each frame sees
BLOCK = 512  # frames per onnxruntime call (16.4 s)
HYSTERESIS = 0.15  # speech ends below threshold - HYSTERESIS (Silero's default)
_STATE = (1, 1, 128)


@dataclass(frozen=True)
class VadOptions:
    """How speech probabilities become segments. The defaults are Silero's own."""

    threshold: float = 0.5  # a frame with speech probability >= threshold starts (or continues) speech
    min_speech_seconds: float = 0.25  # shorter speech runs are dropped
    min_silence_seconds: float = 0.1  # speech ends after this long below threshold - 0.15
    pad_seconds: float = 0.03  # each segment is widened by this much on both sides

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"VAD threshold must be between 0 and 1 (exclusive), got {self.threshold}")
        for name in ("min_speech_seconds", "min_silence_seconds", "pad_seconds"):
            value = getattr(self, name)
            if not 0.0 <= value < 3600.0:
                raise ConfigError(f"VAD {name} must be a number of seconds >= 0, got {value}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class SpeechSegments:
    """Where a recording of ``total_samples`` at ``sample_rate`` has speech."""

    samples: np.ndarray  # (S, 2) int64: [start, end) of each segment, in order, not overlapping
    total_samples: int
    sample_rate: int = SAMPLE_RATE

    @property
    def seconds(self) -> float:
        """Seconds of speech."""
        return float((self.samples[:, 1] - self.samples[:, 0]).sum()) / self.sample_rate if len(self.samples) else 0.0

    def keep(self, wave: np.ndarray) -> np.ndarray:
        """The speech of ``wave`` alone: its segments cut out and joined, in order."""
        return np.concatenate([wave[a:b] for a, b in self.samples]) if len(self.samples) else wave[:0]

    def contains(self, seconds: np.ndarray) -> np.ndarray:
        """Whether each time (in seconds) falls inside a segment: bool, the shape of ``seconds``."""
        position = np.asarray(seconds, dtype=np.float64) * self.sample_rate
        if not len(self.samples):
            return np.zeros(position.shape, dtype=bool)
        index = np.searchsorted(self.samples[:, 0], position, side="right") - 1  # the last segment starting before
        return (index >= 0) & (position < self.samples[np.maximum(index, 0), 1])


class VoiceActivityDetector:
    """Silero VAD on onnxruntime (no torch): per-frame speech probabilities and speech segments.

    Audio is 16 kHz mono float32. One detector may be shared between threads.
    """

    sample_rate = SAMPLE_RATE
    frame_seconds = FRAME / SAMPLE_RATE

    def __init__(self, options: VadOptions | None = None):
        self.options = options or VadOptions()
        self.session = _session(model_path())

    def probabilities(self, wave: np.ndarray) -> np.ndarray:
        """(F,) float32 speech probability of each 32 ms frame (the last one zero-padded)."""
        wave = np.ascontiguousarray(wave, dtype=np.float32)
        count = -(-len(wave) // FRAME)
        hidden, cell = np.zeros(_STATE, np.float32), np.zeros(_STATE, np.float32)
        previous = np.zeros(CONTEXT, np.float32)
        out = np.empty(count, np.float32)
        for first in range(0, count, BLOCK):
            frames = min(BLOCK, count - first)
            piece = wave[first * FRAME:(first + frames) * FRAME]
            samples = np.zeros((frames, FRAME), np.float32)
            samples.reshape(-1)[:len(piece)] = piece  # the last frame zero-padded
            block = np.empty((frames, CONTEXT + FRAME), np.float32)  # each row: context + frame
            block[:, CONTEXT:] = samples
            block[0, :CONTEXT] = previous
            block[1:, :CONTEXT] = samples[:-1, -CONTEXT:]
            previous = samples[-1, -CONTEXT:].copy()
            out[first:first + frames], hidden, cell = self.session.run(
                ["speech_probs", "hn", "cn"], {"input": block, "h": hidden, "c": cell})
        return out

    def segments(self, wave: np.ndarray) -> SpeechSegments:
        """The speech segments of ``wave`` (16 kHz)."""
        return segments_from_probabilities(self.probabilities(wave), len(wave), self.options)


def segments_from_probabilities(probs: np.ndarray, total_samples: int, options: VadOptions) -> SpeechSegments:
    """Speech segments of a recording of ``total_samples`` from its per-frame probabilities (see the module)."""
    rate = SAMPLE_RATE
    min_speech, min_silence = options.min_speech_seconds * rate, options.min_silence_seconds * rate
    pad = options.pad_seconds * rate
    leave = max(options.threshold - HYSTERESIS, 0.01)
    found: list[list[int]] = []
    start, silent_from = None, 0  # start of the current speech run; where its trailing silence began (0: none)
    for i, p in enumerate(probs.tolist()):
        at = i * FRAME
        if p >= options.threshold:
            silent_from = 0
            if start is None:
                start = at
                continue
        if start is not None and p < leave:
            silent_from = silent_from or at
            if at - silent_from >= min_silence:
                if silent_from - start > min_speech:
                    found.append([start, silent_from])
                start, silent_from = None, 0
    if start is not None and total_samples - start > min_speech:
        found.append([start, total_samples])
    for k, segment in enumerate(found):  # padding, as Silero does it
        if k == 0:
            segment[0] = int(max(0, segment[0] - pad))
        if k == len(found) - 1:
            segment[1] = int(min(total_samples, segment[1] + pad))
            continue
        gap = found[k + 1][0] - segment[1]
        if gap < 2 * pad:
            segment[1] += int(gap // 2)
            found[k + 1][0] = int(max(0, found[k + 1][0] - gap // 2))
        else:
            segment[1] = int(min(total_samples, segment[1] + pad))
            found[k + 1][0] = int(max(0, found[k + 1][0] - pad))
    return SpeechSegments(np.array(found, dtype=np.int64).reshape(-1, 2), total_samples)


def speech_only(wave: np.ndarray, options: VadOptions, label: str, min_seconds: float) -> np.ndarray:
    """The speech of ``wave`` alone (segments cut and joined); raises :class:`InsufficientSpeechError`
    when less than ``min_seconds`` (what the model can embed) remains."""
    speech = VoiceActivityDetector(options).segments(wave)
    if speech.seconds < max(min_seconds, 1.0 / SAMPLE_RATE):
        raise InsufficientSpeechError(label, speech.seconds, min_seconds, "the model",
                                      f"embed it without VAD, or lower the VAD threshold ({options.threshold:g})")
    return speech.keep(wave)


#: what ``vad=`` takes where audio is embedded: True (default options), options, or False/None (no VAD)
Vad = bool | VadOptions | None


def vad_options(vad: Vad) -> VadOptions | None:
    """``True`` -> the default :class:`VadOptions`; ``False``/``None`` -> None (no VAD); options as they are."""
    if isinstance(vad, VadOptions):
        return vad
    return VadOptions() if vad else None


def model_path() -> Path:
    """The Silero VAD ONNX file inside the installed ``silero_vad`` package, found without importing it."""
    spec = importlib.util.find_spec("silero_vad")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / "data" / MODEL_FILE
        if path.is_file():
            return path
    raise ConfigError(f"voice activity detection needs the silero-vad package ({MODEL_FILE} was not found"
                      f"{' in ' + ', '.join(locations) if locations else ''}): pip install silero-vad==6.2.3")


@functools.cache
def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a small LSTM: more threads only add hand-offs
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
