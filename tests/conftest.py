"""Shared fixtures: tiny models, generated audio, and the real-data marker."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: overrides that make any config a tiny, fast model for plumbing tests
TINY = [
    "model.frontend.name=fbank",
    "model.frontend.normalize=mean",
    "model.trunk=resnet34",
    "model.trunk_width=4",
    "model.pooling.name=tstp",
    "model.embedding_dim=16",
    "model.embedding_activation=none",
]


def pytest_collection_modifyitems(config, items):
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"real speech not available at {SHARED_DATA}")
    for item in items:
        if "realdata" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: on a busy shared machine two threads stall each other at every barrier."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA


def tone(seconds: float, rate: int = 16000, freq: float = 220.0, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise: non-silent, deterministic audio."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * freq * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
    return (0.1 * wave + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def speech(seconds: float, speaker: int = 0, take: int = 0, rate: int = 16000) -> np.ndarray:
    """Synthetic speech (:mod:`speakervlad.data.synth`, numpy only) that Silero VAD hears as speech:
    70-100 % of its 32 ms frames score above 0.5; the rest are the synthesiser's pauses."""
    from speakervlad.data.synth import draw_voice, synthesize_utterance

    voice = draw_voice(np.random.default_rng(speaker), f"spk{speaker}")
    return synthesize_utterance(voice, np.random.default_rng(1000 + 100 * speaker + take), seconds, rate)


def tone_corpus(root: Path, speakers: int = 4, utterances: int = 4, seed: int = 0) -> Path:
    """``root/spk<s>/utt<u>.wav``: one-second harmonic tones, a pitch per speaker, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    for s in range(speakers):
        for u in range(utterances):
            wave = 0.3 * np.sin(2 * np.pi * (150 + 60 * s) * t) + 0.05 * rng.standard_normal(t.size)
            write_wav(root / f"spk{s}" / f"utt{u}.wav", wave.astype(np.float32))
    return root


def write_wav(path: Path, wave: np.ndarray, rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave, rate, subtype="PCM_16")
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """An untrained tiny checkpoint (fbank + ResNet-34 width 4 + TSTP, 16-d)."""
    from speakervlad.cli.main import main

    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    assert main(["model", "init", "resnet34_tstp", *TINY, "-o", str(path)]) == 0
    return path


@pytest.fixture()
def wav_dir(tmp_path) -> Path:
    """Three 1.5 s tones at different pitches."""
    for i, freq in enumerate((150.0, 220.0, 330.0)):
        write_wav(tmp_path / "audio" / f"utt{i}.wav", tone(1.5, freq=freq, seed=i))
    return tmp_path / "audio"
