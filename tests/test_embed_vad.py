"""Embedding with VAD (speech alone, both embedders) and the ghost clusters' share of the assignment mass."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, speech, write_wav

from speakervlad.cli.main import main
from speakervlad.data.padding import pad_with_non_speech
from speakervlad.embedding.torch_embedder import load_model
from speakervlad.embedding.vad import VadOptions
from speakervlad.errors import InsufficientSpeechError

pytestmark = pytest.mark.usefixtures("one_thread")
RATE = 16000


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Untrained tiny checkpoints: TSTP (fbank), GhostVLAD K=4 G=2 and NetVLAD K=4 (linear spectrogram)."""
    root = tmp_path_factory.mktemp("vad-models")
    vlad = ["model.frontend.name=spectrogram", "model.frontend.normalize=frame", "model.pooling.clusters=4",
            "model.pooling.feature_dim=16"]
    paths = {}
    for name, overrides in [("tstp", []), ("ghostvlad", [*vlad, "model.pooling.name=ghostvlad",
                                                         "model.pooling.ghost_clusters=2"]),
                            ("netvlad", [*vlad, "model.pooling.name=netvlad", "model.pooling.ghost_clusters=0"])]:
        paths[name] = root / f"{name}.pt"
        assert main(["model", "init", "resnet34_tstp", *TINY, *overrides, "-o", str(paths[name])]) == 0
    return paths


@pytest.fixture(scope="module")
def padded():
    """4 s of synthetic speech between silence and noise (room, keyboard or music), 2-6 s of them in all."""
    clean = speech(4.0, speaker=3)
    return clean, pad_with_non_speech(clean, np.random.default_rng(5))


@pytest.mark.parametrize("name", ["tstp", "ghostvlad"])
def test_vad_embeds_the_speech_alone(models, padded, name) -> None:
    model = load_model(models[name])
    clean, noisy = padded
    alone = model.embed(clean, sample_rate=RATE)
    with_vad = cosine(model.embed(noisy.wave, sample_rate=RATE, vad=True), alone)
    assert with_vad >= 0.99
    if name == "tstp":  # (an untrained VLAD maps every input to nearly one direction: nothing to dilute)
        assert cosine(model.embed(noisy.wave, sample_rate=RATE), alone) < 0.99  # without VAD, diluted


def test_embed_many_with_vad_equals_embed(models, padded, tmp_path) -> None:
    model = load_model(models["tstp"])
    clean, noisy = padded
    paths = [write_wav(tmp_path / "noisy.wav", noisy.wave), write_wav(tmp_path / "clean.wav", clean)]
    many = model.embed_many(paths, vad=True)
    for row, path in zip(many, paths):
        np.testing.assert_allclose(row, model.embed(path, vad=True), atol=1e-5)
    strict = model.embed(paths[0], vad=VadOptions(threshold=0.9))
    assert not np.allclose(strict, many[0], atol=1e-5)  # the options reach the detector


def test_noise_only_has_no_speech_to_embed(models, tmp_path) -> None:
    model = load_model(models["tstp"])
    noise = write_wav(tmp_path / "noise.wav", 0.05 * np.random.default_rng(0).standard_normal(3 * RATE))
    assert model.embed(noise).shape == (16,)  # without VAD it is audio like any other
    with pytest.raises(InsufficientSpeechError, match=r"noise.wav: 0.00 s of speech found, the model needs"):
        model.embed(noise, vad=True)


def test_ghost_mass_is_the_mean_ghost_assignment(models, padded) -> None:
    _, noisy = padded
    ghost = load_model(models["ghostvlad"], chunk_seconds=2.0, context_seconds=2.0)
    whole = load_model(models["ghostvlad"])
    frames = whole.frame_assignments(noisy.wave)  # (K+G, T')
    assert frames.shape[0] == 6 and abs(frames.shape[1] - len(noisy.wave) / RATE / whole.frame_seconds) <= 1
    np.testing.assert_allclose(frames.sum(0), 1.0, atol=1e-5)
    by_hand = float(frames[4:].sum(0).mean())  # each frame's ghost share, averaged over the frames
    mass = whole.analyze_waveform(noisy.wave).ghost_mass
    assert 0.0 <= mass <= 1.0 and mass == pytest.approx(by_hand, abs=1e-5)
    chunked = ghost.analyze_waveform(noisy.wave)  # merged chunk statistics: the same share
    assert chunked.ghost_mass == pytest.approx(mass, abs=1e-4)
    np.testing.assert_allclose(chunked.embedding, whole.embed_waveform(noisy.wave), atol=1e-4)
    netvlad = load_model(models["netvlad"])
    assert netvlad.analyze_waveform(noisy.wave).ghost_mass == 0.0
    assert netvlad.frame_assignments(noisy.wave).shape[0] == 4
    tstp = load_model(models["tstp"])
    assert tstp.analyze_waveform(noisy.wave).ghost_mass is None and tstp.frame_assignments(noisy.wave) is None
