"""Waveform augmentation (reverberation, additive noise) and SpecAugment masking.

Folder layouts:

- ``augment.musan_dir``: a MUSAN-style folder with ``noise/``, ``music/`` and
  ``speech/`` subfolders of audio files (any depth; MUSAN itself: openslr.org/17).
  A call adds one kind, chosen uniformly among the kinds present, at a random
  SNR (dB) as in the Kaldi/WeSpeaker recipes: noise 0-15, music 5-15, babble
  13-20, where babble sums 3-7 speech files at equal power and the SNR applies
  to the sum.
- ``augment.rir_dir``: a folder of room impulse responses (any depth, e.g.
  RIRS_NOISES/simulated_rirs). When empty, a bank of shoebox rooms simulated
  with pyroomacoustics is used (RT60 0.2-0.8 s, random room, source and
  microphone), generated once per process from a fixed seed.

Reverberation is applied before noise, each with its probability. Reverberated
speech is aligned at the impulse response's direct-path peak and keeps the
input's power.
"""
from __future__ import annotations

import functools
import logging
import time
from pathlib import Path

import numpy as np
import pyroomacoustics as pra
import torch
from scipy.signal import fftconvolve

from ..audio import AUDIO_SUFFIXES, load_audio
from ..config import AugmentConfig
from ..errors import AudioError, ConfigError
from .dataset import AudioRegion

logger = logging.getLogger(__name__)

#: kind -> (MUSAN subfolder, SNR range in dB)
NOISE_KINDS = {"noise": ("noise", (0.0, 15.0)), "music": ("music", (5.0, 15.0)),
               "babble": ("speech", (13.0, 20.0))}
BABBLE_SPEAKERS = (3, 7)  # inclusive
RT60_RANGE = (0.2, 0.8)
_EPS = 1e-10


class Augmenter:
    """``wave (N,) -> augmented wave (N,)`` with effects switched by ``cfg``'s probabilities.

    ``simulated_rooms`` (default ``cfg.simulated_rooms``), ``rt60_range``,
    ``max_order`` and ``rir_seed`` shape the simulated RIR bank used when
    ``cfg.rir_dir`` is empty.
    """

    def __init__(
        self,
        cfg: AugmentConfig,
        sample_rate: int = 16000,
        simulated_rooms: int | None = None,
        rt60_range: tuple[float, float] = RT60_RANGE,
        max_order: int | None = None,
        rir_seed: int = 0,
    ):
        for name in ("noise_prob", "reverb_prob"):
            if not 0.0 <= getattr(cfg, name) <= 1.0:
                raise ConfigError(f"augment.{name} must be between 0 and 1, got {getattr(cfg, name)}")
        self.cfg = cfg
        self.sample_rate = sample_rate
        self.noises: dict[str, list[str]] = {}
        self.rir_files: list[str] = []
        self.rirs: tuple[np.ndarray, ...] = ()
        if cfg.noise_prob > 0:
            self.noises = _scan_musan(cfg.musan_dir)
        if cfg.reverb_prob > 0 and cfg.rir_dir:
            self.rir_files = _audio_files(Path(cfg.rir_dir))
            if not self.rir_files:
                raise ConfigError(
                    f"augment.rir_dir {cfg.rir_dir!r} holds no audio files (room impulse responses "
                    "as .wav/.flac, any depth); leave it empty to use simulated rooms"
                )
        elif cfg.reverb_prob > 0:
            rooms = cfg.simulated_rooms if simulated_rooms is None else simulated_rooms
            self.rirs = _cached_bank(rooms, sample_rate, rir_seed, tuple(rt60_range), max_order)

    def __call__(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.asarray(wave, dtype=np.float32)
        if self.cfg.reverb_prob > 0 and rng.random() < self.cfg.reverb_prob:
            out = self.reverberate(out, rng)
        if self.cfg.noise_prob > 0 and rng.random() < self.cfg.noise_prob:
            out = self.add_noise(out, rng)
        return out.astype(np.float32, copy=False)

    def reverberate(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Convolve with a random RIR, aligned at its peak, keeping length and power."""
        if self.rir_files:
            rir = _load_rir(self.rir_files[int(rng.integers(len(self.rir_files)))], self.sample_rate)
        else:
            rir = self.rirs[int(rng.integers(len(self.rirs)))]
        return convolve_rir(wave, rir)

    def add_noise(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Add noise, music or babble at an SNR drawn from the kind's range."""
        kinds = sorted(self.noises)
        kind = kinds[int(rng.integers(len(kinds)))]
        files = self.noises[kind]
        if kind == "babble":
            count = int(rng.integers(BABBLE_SPEAKERS[0], BABBLE_SPEAKERS[1] + 1))
            picks = rng.choice(len(files), size=count, replace=len(files) < count)
            parts = [self._segment(files[i], len(wave), rng) for i in picks]
            noise = np.sum([p / np.sqrt(np.mean(p**2) + _EPS) for p in parts], axis=0)
        else:
            noise = self._segment(files[int(rng.integers(len(files)))], len(wave), rng)
        low, high = NOISE_KINDS[kind][1]
        return mix_at_snr(wave, noise, float(rng.uniform(low, high)))

    def _segment(self, path: str, size: int, rng: np.random.Generator) -> np.ndarray:
        """A random ``(size,)`` stretch of ``path``, tiled when the file is shorter."""
        try:
            with AudioRegion(path, self.sample_rate) as source:
                if source.frames >= size:
                    start = int(rng.integers(0, source.frames - size + 1))
                    return source.read(start, start + size)
                return np.resize(source.read(0, source.frames), size)
        except AudioError:
            raise
        except Exception as err:  # noqa: BLE001 - any decoder failure is the file's problem
            raise AudioError(path, f"noise file cannot be read ({err})") from None


def mix_at_snr(wave: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``wave + noise`` with the noise scaled to ``snr_db`` below the wave's mean power."""
    noise_power = float(np.mean(noise**2))
    if noise_power <= _EPS:
        return wave
    scale = np.sqrt(float(np.mean(wave**2)) / (noise_power * 10.0 ** (snr_db / 10.0)))
    return (wave + scale * noise).astype(np.float32)


def convolve_rir(wave: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Reverberate ``wave (N,)`` with ``rir``: output ``(N,)`` aligned at the RIR's peak, same power."""
    peak = int(np.argmax(np.abs(rir)))
    out = fftconvolve(wave, rir)[peak: peak + len(wave)]  # (N,)
    out_power = float(np.mean(out**2))
    if out_power <= _EPS:
        return wave
    return (out * np.sqrt(float(np.mean(wave**2)) / out_power)).astype(np.float32)


def simulate_rir_bank(
    n_rooms: int,
    sample_rate: int = 16000,
    seed: int = 0,
    rt60_range: tuple[float, float] = RT60_RANGE,
    max_order: int | None = None,
) -> tuple[np.ndarray, ...]:
    """``n_rooms`` impulse responses of random shoebox rooms (pyroomacoustics image method).

    Rooms are 3-10 x 3-8 x 2.5-4 m with an RT60 drawn from ``rt60_range`` (wall
    absorption from Sabine's formula); source and microphone lie at least 0.5 m
    from the walls. ``max_order`` caps the image order (faster, shorter tails).
    """
    if n_rooms <= 0:
        raise ConfigError(f"augment.simulated_rooms must be positive, got {n_rooms}")
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    rirs = []
    while len(rirs) < n_rooms:
        dims = rng.uniform([3.0, 3.0, 2.5], [10.0, 8.0, 4.0])
        rt60 = rng.uniform(*rt60_range)
        source, mic = rng.uniform(0.5, dims - 0.5, size=(2, 3))
        try:
            absorption, order = pra.inverse_sabine(rt60, dims)
        except ValueError:  # the RT60 is too short for this room: draw another
            continue
        room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption),
                           max_order=order if max_order is None else min(order, max_order))
        room.add_source(source)
        room.add_microphone(mic)
        room.compute_rir()
        rirs.append(np.asarray(room.rir[0][0], dtype=np.float32))
    logger.info("simulated %d room impulse responses in %.1f s", n_rooms, time.perf_counter() - started)
    return tuple(rirs)


@functools.lru_cache(maxsize=4)
def _cached_bank(
    n_rooms: int, sample_rate: int, seed: int, rt60_range: tuple[float, float], max_order: int | None
) -> tuple[np.ndarray, ...]:
    return simulate_rir_bank(n_rooms, sample_rate, seed, rt60_range, max_order)


@functools.lru_cache(maxsize=512)
def _load_rir(path: str, sample_rate: int) -> np.ndarray:
    return load_audio(path, target_rate=sample_rate)


def spec_augment(
    feats: torch.Tensor,
    frame_lengths: torch.Tensor,
    freq_mask: int,
    time_mask: int,
    generator: torch.Generator,
    prob: float = 1.0,
) -> torch.Tensor:
    """SpecAugment-style masking of ``feats (B, F, T)``; returns a new tensor.

    Each example (with probability ``prob``) gets one band of 0-``freq_mask``
    bins and one span of 0-``time_mask`` frames set to 0 (the mean of normalised
    features), both within its ``frame_lengths`` valid frames: padding is never touched.
    """
    batch, bins, frames = feats.shape
    draws = torch.rand(batch, 5, generator=generator, device=generator.device).to(feats.device)  # (B, 5)
    lengths = frame_lengths.to(feats.device).long()  # (B,)
    f_width = torch.floor(draws[:, 0] * (min(freq_mask, bins) + 1)).long()  # (B,)
    f_start = torch.floor(draws[:, 1] * (bins - f_width + 1)).long()
    t_width = torch.floor(draws[:, 2] * (torch.clamp(lengths, max=time_mask) + 1)).long()
    t_start = torch.floor(draws[:, 3] * (lengths - t_width + 1)).long()
    chosen = draws[:, 4] < prob  # (B,)
    f_axis = torch.arange(bins, device=feats.device)[None, :, None]  # (1, F, 1)
    t_axis = torch.arange(frames, device=feats.device)[None, None, :]  # (1, 1, T)
    valid = t_axis < lengths[:, None, None]  # (B, 1, T)
    in_band = (f_axis >= f_start[:, None, None]) & (f_axis < (f_start + f_width)[:, None, None])
    in_span = (t_axis >= t_start[:, None, None]) & (t_axis < (t_start + t_width)[:, None, None])
    mask = ((in_band & valid) | in_span) & chosen[:, None, None]  # (B, F, T)
    return feats.masked_fill(mask, 0.0)


def _audio_files(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def _scan_musan(musan_dir: str) -> dict[str, list[str]]:
    layout = ("a MUSAN-style folder with noise/, music/ and speech/ subfolders of audio files "
              "(e.g. the MUSAN corpus, openslr.org/17), or set augment.noise_prob=0")
    if not musan_dir:
        raise ConfigError(f"augment.noise_prob > 0 needs augment.musan_dir: {layout}")
    root = Path(musan_dir)
    if not root.is_dir():
        raise ConfigError(f"augment.musan_dir {musan_dir!r} is not a folder; expected {layout}")
    found = {kind: _audio_files(root / sub) for kind, (sub, _) in NOISE_KINDS.items()}
    found = {kind: files for kind, files in found.items() if files}
    if not found:
        raise ConfigError(f"augment.musan_dir {musan_dir!r} holds no audio in noise/, music/ "
                          f"or speech/; expected {layout}")
    missing = sorted(set(NOISE_KINDS) - set(found))
    if missing:
        logger.warning("%s: no audio for %s; adding only %s", musan_dir, ", ".join(missing), ", ".join(sorted(found)))
    return found
