"""Voice activity detection: Silero's probabilities and segments, found without torch, and known bursts found."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from conftest import speech

from speakervlad.embedding.vad import (
    FRAME,
    SpeechSegments,
    VadOptions,
    VoiceActivityDetector,
    segments_from_probabilities,
    speech_only,
)
from speakervlad.errors import ConfigError, InsufficientSpeechError

RATE = 16000


def bursts(seed: int = 0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Near-silence, speech, noise, speech, silence: the waveform and the two speech bursts (seconds)."""
    rng = np.random.default_rng(seed)
    parts, known, at = [], [], 0.0
    for kind, seconds in [("quiet", 1.0), ("speech", 2.5), ("noise", 1.5), ("speech", 2.0), ("quiet", 1.0)]:
        n = int(seconds * RATE)
        if kind == "speech":
            parts.append(speech(seconds, speaker=len(known)))
            known.append((at, at + seconds))
        else:
            parts.append((0.02 if kind == "noise" else 1e-4) * rng.standard_normal(n).astype(np.float32))
        at += seconds
    return np.concatenate(parts), known


@pytest.fixture(scope="module")
def signal() -> tuple[np.ndarray, list[tuple[float, float]]]:
    return bursts()


def test_probabilities_equal_silero_streaming_model(signal, one_thread) -> None:
    import torch
    from silero_vad import load_silero_vad

    wave, _ = signal
    theirs = load_silero_vad().audio_forward(torch.from_numpy(wave), RATE)[0].numpy()  # TorchScript, frame by frame
    ours = VoiceActivityDetector().probabilities(wave)
    assert ours.shape == theirs.shape == (-(-len(wave) // FRAME),)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize("options", [
    VadOptions(),
    VadOptions(threshold=0.3, min_speech_seconds=0.1, min_silence_seconds=0.3, pad_seconds=0.2),
    VadOptions(threshold=0.8, min_speech_seconds=0.5, min_silence_seconds=0.0, pad_seconds=0.0),
])
def test_segments_equal_silero_get_speech_timestamps(options: VadOptions) -> None:
    from silero_vad import get_speech_timestamps_from_probs

    rng = np.random.default_rng(0)
    for trial in range(30):  # random-walk probabilities: runs, flickers and edges of every kind
        steps = rng.normal(0, 0.25, rng.integers(1, 400))
        probs = np.clip(0.5 + np.cumsum(steps) * rng.uniform(0.1, 1.0), 0, 1).astype(np.float32)
        total = len(probs) * FRAME - int(rng.integers(0, FRAME))
        theirs = get_speech_timestamps_from_probs(
            probs.tolist(), threshold=options.threshold, min_speech_duration_ms=options.min_speech_seconds * 1000,
            min_silence_duration_ms=options.min_silence_seconds * 1000, speech_pad_ms=options.pad_seconds * 1000,
            audio_length_samples=total)
        ours = segments_from_probabilities(probs, total, options)
        assert ours.samples.tolist() == [[s["start"], s["end"]] for s in theirs], trial


def test_segments_find_the_known_bursts(signal) -> None:
    wave, known = signal
    found = VoiceActivityDetector().segments(wave)
    starts, ends = found.samples[:, 0] / RATE, found.samples[:, 1] / RATE
    slack = 0.1
    for a, b in zip(starts, ends):  # nothing outside the bursts (the pad and one frame aside)
        assert any(lo - slack <= a and b <= hi + slack for lo, hi in known), (a, b, known)
    times = np.arange(0, len(wave) / RATE, 0.01)
    for lo, hi in known:  # and most of each burst (the synthesiser's pauses aside)
        inside = (times >= lo) & (times < hi)
        assert found.contains(times[inside]).mean() > 0.7
    assert 0.7 * 4.5 < found.seconds <= 4.5 + 4 * slack


def test_speech_only_joins_the_segments_and_refuses_no_speech(signal) -> None:
    wave, _ = signal
    options = VadOptions()
    found = VoiceActivityDetector(options).segments(wave)
    joined = speech_only(wave, options, "bursts.wav", min_seconds=0.1)
    np.testing.assert_array_equal(joined, np.concatenate([wave[a:b] for a, b in found.samples]))
    noise = 0.02 * np.random.default_rng(1).standard_normal(3 * RATE).astype(np.float32)
    with pytest.raises(InsufficientSpeechError, match=r"noise.wav: 0.00 s of speech found, the model needs"):
        speech_only(noise, options, "noise.wav", min_seconds=0.1)


def test_segment_arithmetic() -> None:
    found = SpeechSegments(np.array([[100, 300], [1000, 1600]]), total_samples=2000, sample_rate=1000)
    assert found.seconds == pytest.approx(0.8)
    assert found.keep(np.arange(2000)).tolist() == list(range(100, 300)) + list(range(1000, 1600))
    assert found.contains(np.array([0.05, 0.1, 0.29, 0.3, 1.2, 1.6])).tolist() == [False, True, True, False,
                                                                                   True, False]
    empty = SpeechSegments(np.zeros((0, 2), np.int64), total_samples=10)
    assert empty.seconds == 0.0 and empty.keep(np.ones(10)).size == 0 and not empty.contains(np.ones(3)).any()


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="threshold must be between 0 and 1"):
        VadOptions(threshold=1.5)
    with pytest.raises(ConfigError, match="pad_seconds must be a number of seconds >= 0"):
        VadOptions(pad_seconds=-1)


def test_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from speakervlad.embedding import vad

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"needs the silero-vad package .*pip install silero-vad==6.2.3"):
        vad.model_path()


def test_detector_loads_no_torch() -> None:
    code = ("import sys, numpy as np; from speakervlad.embedding.vad import VoiceActivityDetector; "
            "VoiceActivityDetector().segments(np.zeros(16000, np.float32)); "
            "assert 'torch' not in sys.modules and 'silero_vad' not in sys.modules, sorted(sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.realdata
def test_real_speech_padded_with_non_speech(shared_data) -> None:
    """Real LibriSpeech speech between generated silence and noise: what the VAD keeps lies in the speech."""
    from speakervlad.audio import load_audio
    from speakervlad.data.padding import pad_with_non_speech

    detector = VoiceActivityDetector()
    for i, path in enumerate(sorted((shared_data / "librispeech-train-clean-100-subset").glob("*.flac"))[:8]):
        padded = pad_with_non_speech(load_audio(path), np.random.default_rng(i))
        found = detector.segments(padded.wave)
        times = np.arange(0, len(padded.wave) / RATE, 0.01)
        speech_time = found.contains(times)
        inside = (times * RATE >= padded.start) & (times * RATE < padded.end)
        assert (speech_time & ~inside).sum() * 0.01 < 0.5, path.name  # under half a second kept from the padding
        assert (speech_time & inside).sum() / inside.sum() > 0.5, path.name  # most of the recording kept
