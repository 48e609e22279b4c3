"""``speakervlad explain``: the PNG, and per-frame ghost mass that averages to the recording's."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, speech, write_wav

from speakervlad.cli.main import main
from speakervlad.data.padding import pad_with_non_speech
from speakervlad.embedding.explain import explain
from speakervlad.embedding.torch_embedder import load_model

pytestmark = pytest.mark.usefixtures("one_thread")
VLAD = ["model.frontend.name=spectrogram", "model.frontend.normalize=frame", "model.pooling.clusters=4",
        "model.pooling.feature_dim=16"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("explain")
    out = {"call": write_wav(root / "call.wav", pad_with_non_speech(speech(4.0, speaker=2),
                                                                     np.random.default_rng(1)).wave)}
    for name, pooling in [("ghostvlad", ["model.pooling.name=ghostvlad", "model.pooling.ghost_clusters=2"]),
                          ("netvlad", ["model.pooling.name=netvlad", "model.pooling.ghost_clusters=0"]),
                          ("tstp", [])]:
        out[name] = root / f"{name}.pt"
        assert main(["model", "init", "resnet34_tstp", *TINY, *(VLAD + pooling if pooling else []),
                     "-o", str(out[name])]) == 0
    return out


def test_explain_writes_the_picture_and_its_summary(files, tmp_path, capsys) -> None:
    png = tmp_path / "pictures" / "explain.png"
    assert main(["explain", "--model", str(files["ghostvlad"]), str(files["call"]), "-o", str(png), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    model = load_model(files["ghostvlad"])
    wave = model.load(files["call"])
    assert 0.0 <= summary["ghost_mass"] <= 1.0
    assert summary["ghost_mass"] == pytest.approx(model.analyze_waveform(wave).ghost_mass, abs=1e-5)
    assert 0.0 <= summary["non_speech_auc"] <= 1.0 and summary["segments"] >= 1
    assert summary["speech_seconds"] < summary["seconds"] == pytest.approx(len(wave) / 16000)
    assert main(["explain", "--model", str(files["ghostvlad"]), str(files["call"]), "-o", str(png)]) == 0
    assert "ghost mass" in capsys.readouterr().out


def test_frames_and_their_speech_labels(files) -> None:
    model = load_model(files["ghostvlad"])
    wave = model.load(files["call"])
    e = explain(model, wave)
    assert e.assignments.shape[0] == 6 and e.ghosts == 2
    np.testing.assert_allclose(e.assignments.sum(0), 1.0, atol=1e-5)
    expected = np.array([any(a <= t * 16000 < b for a, b in e.speech.samples) for t in e.frame_times])
    np.testing.assert_array_equal(e.frame_is_speech, expected)
    assert abs(e.frame_times[-1] - len(wave) / 16000) <= e.frame_seconds


def test_netvlad_has_no_ghosts_and_tstp_no_clusters(files, tmp_path, capsys) -> None:
    netvlad = load_model(files["netvlad"])
    summary = explain(netvlad, netvlad.load(files["call"])).summary()
    assert summary["ghost_mass"] == 0.0 and summary["non_speech_auc"] is None
    assert main(["explain", "--model", str(files["tstp"]), str(files["call"]), "-o", str(tmp_path / "x.png")]) == 2
    assert "ghostvlad or netvlad pooling; this model pools with tstp" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
