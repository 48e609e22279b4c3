"""Recordings padded with non-speech, as phone calls and meeting clips are: for the VAD tests and benchmarks.

:func:`pad_with_non_speech` puts ``seconds`` (drawn from 2-6 s by default) of
non-speech around a speech recording, split at a uniform random point between
a lead and a tail. Each of the two parts is half *silence* (a noise floor 60 dB
below the speech) and half one *noise*, in random order, drawn from:

* ``room``: pink noise 10-25 dB below the speech (fans, air conditioning);
* ``keyboard``: 4-10 clicks per second, each a 5 ms burst of white noise with
  a 2 ms decay, peaks 0-10 dB below the speech's peak;
* ``music``: hold music, a melody of 0.2-0.5 s notes (a harmonic tone with 4
  partials, 220-880 Hz) 10-20 dB below the speech.

Levels are relative to the speech recording's RMS. The non-speech is
generated: real recordings with real noise would be better, and none are at
hand here (no MUSAN on these machines); the speech is whatever you pass.

>>> padded = pad_with_non_speech(np.ones(16000, np.float32) * 0.1, np.random.default_rng(0))
>>> padded.end - padded.start, 2.0 <= padded.pad_seconds <= 6.0
(16000, True)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NOISES = ("room", "keyboard", "music")
SILENCE_DB = -60.0
ROOM_DB, KEYBOARD_DB, MUSIC_DB = (-25.0, -10.0), (-10.0, 0.0), (-20.0, -10.0)


@dataclass(frozen=True)
class Padded:
    """A padded recording and where its speech lies."""

    wave: np.ndarray  # (N,) float32
    start: int  # the speech is wave[start:end]
    end: int
    noises: tuple[str, str]  # the noise kind of the lead and of the tail
    sample_rate: int = 16000

    @property
    def pad_seconds(self) -> float:
        return (len(self.wave) - (self.end - self.start)) / self.sample_rate


def pad_with_non_speech(speech: np.ndarray, rng: np.random.Generator, seconds: tuple[float, float] = (2.0, 6.0),
                        sample_rate: int = 16000) -> Padded:
    """``speech`` with ``uniform(*seconds)`` of silence and noise around it (see the module)."""
    speech = np.asarray(speech, dtype=np.float32)
    level = float(np.sqrt(np.mean(speech.astype(np.float64) ** 2))) or 1e-3
    peak = float(np.abs(speech).max()) or 1e-3
    total = int(rng.uniform(*seconds) * sample_rate)
    lead = int(rng.uniform(0, 1) * total)
    parts, noises = [], []
    for n in (lead, total - lead):
        kind = str(rng.choice(NOISES))
        noises.append(kind)
        parts.append(_non_speech(n, kind, level, peak, rng, sample_rate))
    wave = np.concatenate([parts[0], speech, parts[1]])
    peak_out = float(np.abs(wave).max())
    if peak_out > 0.99:  # keep it a valid recording
        wave = wave * (0.99 / peak_out)
    return Padded(wave.astype(np.float32), lead, lead + len(speech), (noises[0], noises[1]), sample_rate)


def _non_speech(n: int, kind: str, level: float, peak: float, rng: np.random.Generator,
                sample_rate: int) -> np.ndarray:
    """``n`` samples: half the floor alone, half the floor plus noise of ``kind``, in random order."""
    floor = rng.standard_normal(n) * level * _gain(SILENCE_DB)
    half = n // 2
    where = slice(0, half) if rng.random() < 0.5 else slice(n - half, n)
    floor[where] += _noise(half, kind, level, peak, rng, sample_rate)
    return floor.astype(np.float32)


def _noise(n: int, kind: str, level: float, peak: float, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    if n == 0:
        return np.zeros(0)
    if kind == "room":
        spectrum = np.fft.rfft(rng.standard_normal(n))
        spectrum /= np.sqrt(np.maximum(np.fft.rfftfreq(n, 1.0 / sample_rate), 20.0))  # 1/f power: pink
        pink = np.fft.irfft(spectrum, n=n)
        return pink / (np.sqrt(np.mean(pink ** 2)) or 1.0) * level * _gain(rng.uniform(*ROOM_DB))
    if kind == "keyboard":
        out = np.zeros(n)
        click = int(0.005 * sample_rate)
        shape = np.exp(-np.arange(click) / (0.002 * sample_rate))
        for at in rng.uniform(0, n, size=max(1, int(rng.uniform(4, 10) * n / sample_rate))).astype(int):
            burst = rng.standard_normal(click) * shape * peak * _gain(rng.uniform(*KEYBOARD_DB))
            out[at:at + click] += burst[:n - at]
        return out
    out, at = np.zeros(n), 0
    while at < n:  # music: one note after another
        length = min(n - at, int(rng.uniform(0.2, 0.5) * sample_rate))
        t = np.arange(length) / sample_rate
        f0 = 220.0 * 2 ** (rng.integers(0, 25) / 12)
        note = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5))
        out[at:at + length] = note * np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # 10 ms fades
        at += length
    return out / (np.sqrt(np.mean(out ** 2)) or 1.0) * level * _gain(rng.uniform(*MUSIC_DB))


def _gain(db: float) -> float:
    return float(10 ** (db / 20))
