"""The Verifier on real-world-like recordings: speech alone by VAD, the speech gate, ghost mass kept."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, speech, write_wav
from helpers_api import RATE, make_checkpoint, one_torch_thread

from speakervlad.cli.main import main
from speakervlad.data.padding import pad_with_non_speech
from speakervlad.embedding.vad import VoiceActivityDetector
from speakervlad.errors import InsufficientSpeechError
from speakervlad.verification.quality import SpeechGate
from speakervlad.verification.verifier import Verifier


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("models") / "tstp.pt")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    clean = speech(4.0, speaker=1)
    return {
        "clean": write_wav(root / "clean.wav", clean),
        "padded": write_wav(root / "padded.wav", pad_with_non_speech(clean, np.random.default_rng(3)).wave),
        "other": write_wav(root / "other.wav", speech(4.0, speaker=2)),
        "silence": write_wav(root / "silence.wav", 1e-4 * rng.standard_normal(10 * RATE)),
        "noise": write_wav(root / "noise.wav", 0.05 * rng.standard_normal(10 * RATE)),
        "short": write_wav(root / "short.wav", np.concatenate([speech(0.6, speaker=1), np.zeros(3 * RATE)])),
    }


def rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]


def test_silence_and_noise_are_not_enrolled(model: Path, recordings: dict[str, Path], tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    verifier = Verifier.from_checkpoint(model, store=db)
    verifier.enroll("alice", [recordings["clean"]])
    for name in ("silence", "noise"):
        with pytest.raises(InsufficientSpeechError,
                           match=rf"{name}.wav: 0.00 s of speech found, enrollment needs at least 2.00 s"):
            verifier.enroll("bob", [recordings["clean"], recordings[name]])  # one bad file stores nothing
        with pytest.raises(InsufficientSpeechError, match=f"{name}.wav"):
            verifier.enroll("alice", [recordings[name]])
    assert verifier.speakers() == [{"speaker_id": "alice", "recordings": 1, "current_model": True}]
    assert rows(db) == 1


def test_enrollment_keeps_what_each_recording_gave(model: Path, recordings: dict[str, Path], tmp_path: Path) -> None:
    verifier = Verifier.from_checkpoint(model, store=tmp_path / "v.db")
    done = verifier.enroll("alice", [recordings["clean"], recordings["padded"]], labels=["c", "p"])
    assert done.recordings == 2 and done.labels == ("c", "p")
    detector = VoiceActivityDetector()
    for quality, path in zip(done.added, [recordings["clean"], recordings["padded"]]):
        wave = verifier.load(path)
        assert quality.seconds == pytest.approx(len(wave) / RATE)
        assert quality.speech_seconds == pytest.approx(detector.segments(wave).seconds)
        assert quality.ghost_mass is None  # TSTP has no clusters
    assert done.added[1].speech_seconds < 0.7 * done.added[1].seconds  # the padding was left out
    assert [r.quality for r in verifier.store.recordings("alice")] == list(done.added)


def test_verify_with_vad_scores_a_padded_recording_as_the_clean_one(model: Path, recordings: dict[str, Path],
                                                                     tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    with_vad = Verifier.from_checkpoint(model, store=db, threshold=0.5)
    with_vad.enroll("alice", [recordings["clean"]])
    clean = with_vad.verify("alice", recordings["clean"])
    padded = with_vad.verify("alice", recordings["padded"])
    assert clean.score == pytest.approx(1.0, abs=1e-5)
    assert padded.score == pytest.approx(clean.score, abs=0.01)
    assert padded.speech_seconds == pytest.approx(clean.speech_seconds, abs=0.5) and padded.ghost_mass is None
    without = Verifier.from_checkpoint(model, store=tmp_path / "plain.db", threshold=0.5, vad=False)
    without.enroll("alice", [recordings["clean"]])
    diluted = without.verify("alice", recordings["padded"])
    assert diluted.score < padded.score - 0.01  # what the VAD is for
    assert diluted.speech_seconds == pytest.approx(len(without.load(recordings["padded"])) / RATE)


def test_too_little_speech_to_verify_or_identify(model: Path, recordings: dict[str, Path], tmp_path: Path) -> None:
    verifier = Verifier.from_checkpoint(model, store=tmp_path / "v.db", threshold=0.5)
    verifier.enroll("alice", [recordings["clean"]])
    for call in (lambda: verifier.verify("alice", recordings["short"]),
                 lambda: verifier.identify(recordings["short"]),
                 lambda: verifier.compare(recordings["clean"], recordings["short"])):
        with pytest.raises(InsufficientSpeechError, match=r"short.wav: 0\.\d\d s of speech found, "
                                                          r"(verification|identification) needs at least 1.00 s"):
            call()
    lenient = Verifier(verifier.model, verifier.store, threshold=verifier.threshold, gate=SpeechGate(2.0, 0.5))
    found = lenient.identify(recordings["short"])
    assert 0.5 <= found.speech_seconds < 1.0 and found.to_dict()["speech_seconds"] == found.speech_seconds


def test_ghost_mass_is_reported_and_stored(recordings: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "ghostvlad.pt"
    assert main(["model", "init", "resnet34_ghostvlad", *TINY[:3], "model.trunk_width=4",
                 "model.pooling.clusters=4", "model.pooling.feature_dim=16", "-o", str(model)]) == 0
    verifier = Verifier.from_checkpoint(model, store=tmp_path / "v.db", threshold=0.5)
    added = verifier.enroll("alice", [recordings["padded"]]).added[0]
    decision = verifier.verify("alice", recordings["padded"])
    assert 0.0 <= added.ghost_mass <= 1.0 and decision.ghost_mass == pytest.approx(added.ghost_mass, abs=1e-6)
    assert verifier.store.recordings("alice")[0].quality.ghost_mass == pytest.approx(added.ghost_mass)
