"""CropDataset: crops, tiling, reversed concatenation, speed, determinism, errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speakervlad.audio import load_audio
from speakervlad.data.dataset import CropDataset
from speakervlad.data.lists import SpeakerIndex, Utterance
from speakervlad.errors import AudioError

RATE = 16000


def ramp_file(path: Path, samples: int, rate: int = RATE, fmt: str = "WAV") -> np.ndarray:
    """A strictly increasing signal (every sample tells its position), stored exactly."""
    wave = np.linspace(-0.9, 0.9, samples, dtype=np.float32)
    sf.write(path, wave, rate, format=fmt, subtype="FLOAT" if fmt == "WAV" else "PCM_24")
    return sf.read(path, dtype="float32")[0]


def dataset(tmp_path: Path, seconds: list[float], **kwargs) -> tuple[CropDataset, list[np.ndarray]]:
    utts, waves = [], []
    for i, sec in enumerate(seconds):
        path = tmp_path / f"u{i}.wav"
        waves.append(ramp_file(path, int(sec * RATE)))
        utts.append(Utterance(path.name, f"spk{i % 2}", str(path)))
    kwargs.setdefault("crop_seconds", 0.5)
    return CropDataset(utts, SpeakerIndex.from_utterances(utts), **kwargs), waves


def start_of(crop: np.ndarray, signal: np.ndarray) -> int:
    start = int(np.argmin(np.abs(signal - crop[0])))
    np.testing.assert_array_equal(crop, signal[start:start + len(crop)])
    return start


def test_crop_is_a_random_contiguous_slice_with_its_label(tmp_path):
    data, waves = dataset(tmp_path, [2.0, 2.0])
    wave, label = data[1]
    assert wave.dtype == torch.float32 and wave.shape == (8000,) and label == 1
    starts = set()
    for epoch in range(8):
        data.set_epoch(epoch)
        starts.add(start_of(data[0][0].numpy(), waves[0]))
    assert len(starts) == 8 and all(0 <= s <= 32000 - 8000 for s in starts)


def test_crops_depend_only_on_seed_epoch_and_index(tmp_path):
    data, _ = dataset(tmp_path, [3.0, 3.0], seed=5)
    data.set_epoch(2)
    first = [data[i][0] for i in (1, 0)]
    twin, _ = dataset(tmp_path, [3.0, 3.0], seed=5)
    twin.set_epoch(2)
    assert torch.equal(twin[0][0], first[1]) and torch.equal(twin[1][0], first[0])  # order-free
    twin.set_epoch(3)
    assert not torch.equal(twin[0][0], first[1])
    other, _ = dataset(tmp_path, [3.0, 3.0], seed=6)
    other.set_epoch(2)
    assert not torch.equal(other[0][0], first[1])


def test_repeated_draws_of_one_item_get_different_crops_and_augmentations(tmp_path):
    """k draws of one recording in an epoch are k examples, not one example k times."""
    data, waves = dataset(tmp_path, [3.0], augmenter=lambda w, rng: w * rng.uniform(0.5, 1.0))
    draws = [data[(0, number)][0].numpy() for number in range(16)]
    assert len({d.tobytes() for d in draws}) == 16
    (tmp_path / "plain").mkdir()
    plain, _ = dataset(tmp_path / "plain", [3.0])
    starts = {start_of(plain[(0, number)][0].numpy(), waves[0]) for number in range(16)}
    assert len(starts) == 16
    assert torch.equal(plain[(0, 3)][0], plain[(0, 3)][0])  # a draw is reproducible


def test_short_file_is_tiled_and_reverse_concat_appends_reversed_signal(tmp_path):
    data, waves = dataset(tmp_path, [0.2])
    np.testing.assert_array_equal(data[0][0].numpy(), np.tile(waves[0], 3)[:8000])
    data.reverse_concat = True
    both = np.concatenate([waves[0], waves[0][::-1]])
    np.testing.assert_array_equal(data[0][0].numpy(), np.tile(both, 2)[:8000])


def test_reverse_concat_crops_slices_of_signal_plus_reversal(tmp_path):
    data, waves = dataset(tmp_path, [1.0], reverse_concat=True)
    both = np.concatenate([waves[0], waves[0][::-1]])  # (32000,)
    reversed_seen = False
    for epoch in range(10):
        data.set_epoch(epoch)
        crop = data[0][0].numpy()
        start = int(np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(both, 8000) == crop, axis=1))[0])
        reversed_seen |= start + 8000 > 16000
    assert reversed_seen


def test_other_rates_and_formats_are_decoded_whole_and_resampled(tmp_path):
    path = tmp_path / "low.wav"
    wave = np.sin(np.arange(8000 * 2) * 0.05).astype(np.float32) * 0.5
    sf.write(path, wave, 8000)
    utt = Utterance("low.wav", "s", str(path))
    data = CropDataset([utt], SpeakerIndex(["s"]), crop_seconds=0.5)
    start_of(data[0][0].numpy(), load_audio(path))
    flac = tmp_path / "ramp.flac"
    stored = ramp_file(flac, 20000, fmt="FLAC")
    crop = CropDataset([Utterance("r", "s", str(flac))], SpeakerIndex(["s"]), crop_seconds=0.5)[0][0].numpy()
    start_of(crop, stored)


@pytest.mark.parametrize("speed", [0.9, 1.1])
def test_speed_perturbation_scales_pitch(tmp_path, speed):
    path = tmp_path / "tone.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * 500 * np.arange(RATE * 2) / RATE), RATE)
    data = CropDataset([Utterance("t", "s", str(path), speed)], SpeakerIndex(["s"]), crop_seconds=1.0)
    crop = data[0][0].numpy()
    assert crop.shape == (RATE,)
    peak_hz = np.argmax(np.abs(np.fft.rfft(crop))) * RATE / len(crop)
    assert peak_hz == pytest.approx(500 * speed, abs=2)


def test_augmenter_gets_the_item_generator(tmp_path):
    data, _ = dataset(tmp_path, [1.0, 1.0], augmenter=lambda w, rng: np.full_like(w, rng.random()))
    values = [data[i][0][0].item() for i in range(2)]
    assert values == [data[i][0][0].item() for i in range(2)] and values[0] != values[1]


def test_undecodable_file_raises_audio_error_naming_it(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEjunk")
    data = CropDataset([Utterance("bad", "s", str(bad))], SpeakerIndex(["s"]), crop_seconds=0.5)
    with pytest.raises(AudioError, match=r"bad\.wav"):
        data[0]


def test_dataloader_workers_do_not_change_batches(tmp_path):
    data, _ = dataset(tmp_path, [1.0, 1.5, 2.0, 0.3])
    data.set_epoch(4)
    batches = [
        torch.cat([w for w, _ in torch.utils.data.DataLoader(data, batch_size=2, num_workers=n)])
        for n in (0, 2)
    ]
    assert torch.equal(batches[0], batches[1])
