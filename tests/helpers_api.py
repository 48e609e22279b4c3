"""Shared pieces for the enroll/verify tests: a tiny model and synthetic "voices".

A random, untrained model still maps the same audio to the same embedding, so
these tests check plumbing (same file twice -> score 1), not accuracy.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from speakervlad.checkpoint import save_checkpoint
from speakervlad.config import apply_overrides, load_config
from speakervlad.models.speaker_net import build_model

TINY = [
    "model.trunk=resnet34", "model.trunk_width=8", "model.frontend.name=fbank",
    "model.frontend.normalize=mean", "model.pooling.name=tstp", "model.embedding_dim=32",
    "model.embedding_activation=none",
]
RATE = 16000


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the tiny test model on one thread: thread hand-offs cost more than its arithmetic
    (and spin badly when the test machine is busy)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_checkpoint(path: Path, seed: int = 0, calibration: dict | None = None) -> Path:
    """A tiny untrained checkpoint (ResNet-34 width 8, fbank, TSTP, 32-d)."""
    config = apply_overrides(load_config("resnet34_tstp"), TINY)
    torch.manual_seed(seed)
    return save_checkpoint(path, build_model(config.model), config, calibration=calibration)


def voice(speaker: int, seconds: float = 2.0, take: int = 0, rate: int = RATE) -> np.ndarray:
    """A speaker-like signal: harmonics of a speaker-specific f0 under a speaker-specific
    spectral envelope, with a take-specific pitch wobble and a little noise."""
    rng = np.random.default_rng(1000 * speaker + take)
    spk = np.random.default_rng(speaker)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 90.0 + 25.0 * speaker + 4.0 * np.sin(2 * np.pi * rng.uniform(2, 5) * t)  # (N,)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    formants = spk.uniform(300, 3500, size=3)
    wave = np.zeros_like(t)
    for h in range(1, 30):
        freq = h * (90.0 + 25.0 * speaker)
        if freq > rate / 2 - 200:
            break
        gain = sum(np.exp(-((freq - f) / 250.0) ** 2) for f in formants) + 0.02
        wave += gain * np.sin(h * phase)
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(1, 3) * t) ** 2
    wave = wave * envelope + 0.01 * rng.standard_normal(len(t))
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)


def write_voice(path: Path, speaker: int, seconds: float = 2.0, take: int = 0, rate: int = RATE) -> Path:
    sf.write(str(path), voice(speaker, seconds, take, rate), rate, subtype="PCM_16")
    return path
