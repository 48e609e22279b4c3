"""Augmenter (noise at measured SNRs, reverberation, simulated RIRs) and spec_augment."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speakervlad.config import AugmentConfig
from speakervlad.data.augment import Augmenter, convolve_rir, simulate_rir_bank, spec_augment
from speakervlad.errors import ConfigError

RATE = 16000
SMALL_BANK = dict(simulated_rooms=3, rt60_range=(0.2, 0.4), max_order=8)


def speech_like(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (0.3 * envelope * np.sin(2 * np.pi * 200 * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def musan(root: Path, kinds: tuple[str, ...]) -> Path:
    rng = np.random.default_rng(1)
    for kind in kinds:
        for i in range(3):
            folder = root / kind / "part"
            folder.mkdir(parents=True, exist_ok=True)
            seconds = 0.4 if i == 0 else 2.0  # one file shorter than the speech: tiled
            noise = rng.uniform(-0.2, 0.2, int(seconds * RATE)) * (i + 1)
            sf.write(folder / f"{kind}{i}.wav", noise, RATE)
    return root


@pytest.mark.parametrize("folder, low, high", [("noise", 0, 15), ("music", 5, 15), ("speech", 13, 20)])
def test_noise_is_added_at_an_snr_in_the_kind_range(tmp_path, folder, low, high):
    augment = Augmenter(AugmentConfig(musan_dir=str(musan(tmp_path, (folder,))), noise_prob=1.0))
    wave = speech_like()
    snrs = []
    for seed in range(40):
        out = augment(wave, np.random.default_rng(seed))
        assert out.shape == wave.shape and out.dtype == np.float32
        noise = (out - wave).astype(np.float64)
        snrs.append(10 * np.log10(np.mean(wave.astype(np.float64) ** 2) / np.mean(noise**2)))
    assert low - 0.01 <= min(snrs) and max(snrs) <= high + 0.01
    assert max(snrs) - min(snrs) > (high - low) / 2  # spread over the range


def test_noise_probability_and_determinism(tmp_path):
    augment = Augmenter(AugmentConfig(musan_dir=str(musan(tmp_path, ("noise", "music", "speech"))), noise_prob=0.5))
    wave = speech_like()
    changed = [not np.array_equal(augment(wave, np.random.default_rng(s)), wave) for s in range(200)]
    assert 0.38 < np.mean(changed) < 0.62
    np.testing.assert_array_equal(augment(wave, np.random.default_rng(9)), augment(wave, np.random.default_rng(9)))


def test_missing_or_empty_musan_dir_explains_the_layout(tmp_path):
    with pytest.raises(ConfigError, match="noise/, music/ and speech/"):
        Augmenter(AugmentConfig(noise_prob=0.3))
    (tmp_path / "noise").mkdir()
    with pytest.raises(ConfigError, match="holds no audio in noise/, music/ or speech/"):
        Augmenter(AugmentConfig(musan_dir=str(tmp_path), noise_prob=0.3))
    assert Augmenter(AugmentConfig(noise_prob=0.0))(speech_like(), np.random.default_rng(0)) is not None


def test_reverb_from_folder_keeps_length_and_power_and_aligns_at_the_peak(tmp_path):
    rir = np.zeros(4000, dtype=np.float32)
    rir[100] = 1.0
    rir[101:] = 0.1 * np.exp(-np.arange(3899) / 600.0) * np.random.default_rng(0).standard_normal(3899)
    (tmp_path / "rirs").mkdir()
    sf.write(tmp_path / "rirs" / "room.wav", rir, RATE, subtype="FLOAT")
    augment = Augmenter(AugmentConfig(rir_dir=str(tmp_path / "rirs"), reverb_prob=1.0))
    wave = speech_like()
    out = augment(wave, np.random.default_rng(0))
    assert out.shape == wave.shape
    assert np.mean(out**2) == pytest.approx(np.mean(wave**2), rel=1e-4)
    assert np.max(np.abs(out - wave)) > 0.01
    noise = np.random.default_rng(1).standard_normal(RATE).astype(np.float32)
    lags = np.arange(-150, 151)
    xcorr = [np.dot(np.roll(noise, lag), augment(noise, np.random.default_rng(0))) for lag in lags]
    assert lags[int(np.argmax(xcorr))] == 0  # aligned at the direct path, not delayed by 100
    pulse = np.zeros(300, dtype=np.float32)
    pulse[50] = 1.0
    np.testing.assert_allclose(convolve_rir(wave, pulse), wave, atol=1e-6)  # a pure delay is undone


def test_simulated_rir_bank_is_deterministic_and_used_when_no_folder():
    first = simulate_rir_bank(3, RATE, seed=1, rt60_range=(0.2, 0.4), max_order=8)
    again = simulate_rir_bank(3, RATE, seed=1, rt60_range=(0.2, 0.4), max_order=8)
    other = simulate_rir_bank(3, RATE, seed=2, rt60_range=(0.2, 0.4), max_order=8)
    assert len(first) == 3 and all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])
    augment = Augmenter(AugmentConfig(reverb_prob=1.0), rir_seed=1, **SMALL_BANK)
    assert all(np.array_equal(a, b) for a, b in zip(augment.rirs, first))
    wave = speech_like()
    out = augment(wave, np.random.default_rng(0))
    assert out.shape == wave.shape and not np.allclose(out, wave, atol=1e-3)


def test_spec_augment_masks_only_valid_frames():
    feats = torch.randn(6, 40, 50) + 5.0  # no natural zeros
    lengths = torch.tensor([50, 30, 10, 50, 1, 25])
    out = spec_augment(feats, lengths, freq_mask=8, time_mask=10, generator=torch.Generator().manual_seed(0))
    assert out.shape == feats.shape and not torch.equal(out, feats)
    masked = out == 0
    for b, length in enumerate(lengths.tolist()):
        assert not masked[b, :, length:].any()  # padding untouched
        rows = masked[b, :, :length].all(dim=1).nonzero().flatten()  # masked frequency band
        cols = masked[b, :, :length].all(dim=0).nonzero().flatten()  # masked time span
        assert len(rows) <= 8 and len(cols) <= min(10, length)
        for idx in (rows, cols):  # contiguous
            assert len(idx) == 0 or idx[-1] - idx[0] + 1 == len(idx)
        expected = torch.zeros(40, length, dtype=torch.bool)
        expected[rows, :] = True
        expected[:, cols] = True
        assert torch.equal(masked[b, :, :length], expected)  # nothing else
    again = spec_augment(feats, lengths, 8, 10, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert torch.equal(spec_augment(feats, lengths, 8, 10, torch.Generator().manual_seed(0), prob=0.0), feats)
