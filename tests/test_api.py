"""Verifier: audio forms, profiles, calibrated and uncalibrated decisions, identification."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from helpers_api import RATE, make_checkpoint, one_torch_thread, voice, write_voice

from speakervlad.errors import AudioError, CalibrationError, StoreError
from speakervlad.scoring.calibration import Calibration, fit_calibration
from speakervlad.verification.quality import SpeechGate
from speakervlad.verification.verifier import UNKNOWN, Verifier


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def calibration() -> Calibration:
    rng = np.random.default_rng(0)
    labels = np.repeat([True, False], 2000)
    scores = np.where(labels, 0.9, 0.6) + np.where(labels, 0.03, 0.1) * rng.standard_normal(4000)
    return fit_calibration(scores, labels)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, calibration: Calibration) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "plain": make_checkpoint(root / "plain.pt"),
        "calibrated": make_checkpoint(root / "calibrated.pt", calibration=calibration.to_dict()),
        "other": make_checkpoint(root / "other.pt", seed=1),
    }


#: these tests are about decisions, not speech: 1 s tones embedded as they are, with no speech gate
PLAIN = {"vad": False, "gate": SpeechGate(0, 0)}


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_calibrated_decisions_follow_the_calibration(models: dict[str, Path], calibration: Calibration) -> None:
    wave = (voice(1, 1.0), RATE)
    default = Verifier.from_checkpoint(models["calibrated"], **PLAIN)
    assert default.threshold.value == pytest.approx(calibration.bayes_threshold(calibration.prior))
    assert default.threshold.source.startswith("calibration:") and "prior 0.01" in default.threshold.source
    same = default.compare(wave, wave)
    assert same.score == pytest.approx(1.0, abs=1e-5)
    assert same.llr == pytest.approx(float(calibration.llr(same.score)))
    assert same.accepted == (same.score >= same.threshold)

    at_far = Verifier.from_checkpoint(models["calibrated"], far=0.05, **PLAIN)
    assert at_far.threshold.value == pytest.approx(calibration.threshold_for_far(0.05))
    assert "false-accept rate" in at_far.threshold.source
    even = Verifier.from_checkpoint(models["calibrated"], prior=0.5, **PLAIN)
    assert even.threshold.value == pytest.approx(calibration.score_for_llr(0.0))
    other = even.compare(wave, (voice(4, 1.0), RATE))
    assert other.accepted == (other.llr >= 0)  # prior 0.5: accept iff the evidence favours the target
    explicit = Verifier.from_checkpoint(models["calibrated"], threshold=0.3, **PLAIN)
    decision = explicit.compare(wave, wave)
    assert (decision.threshold, decision.threshold_source) == (0.3, "explicit threshold")
    assert decision.llr is not None


def test_uncalibrated_model_needs_an_explicit_threshold(models: dict[str, Path]) -> None:
    verifier = Verifier.from_checkpoint(models["plain"], **PLAIN)
    wave = (voice(1, 1.0), RATE)
    assert verifier.embed(wave).shape == (32,)
    with pytest.raises(CalibrationError, match=r"explicit score threshold .*speakervlad calibrate"):
        verifier.compare(wave, wave)
    with pytest.raises(CalibrationError, match="needs a calibrated model"):
        Verifier.from_checkpoint(models["plain"], far=0.01, **PLAIN)
    with pytest.raises(CalibrationError, match="not threshold and far"):
        Verifier.from_checkpoint(models["plain"], threshold=0.5, far=0.01, **PLAIN)
    decision = Verifier.from_checkpoint(models["plain"], threshold=0.5, **PLAIN).compare(wave, wave)
    assert decision.llr is None and decision.accepted and decision.threshold_source == "explicit threshold"


def test_audio_forms_give_the_same_embedding(models: dict[str, Path], tmp_path: Path) -> None:
    verifier = Verifier.from_checkpoint(models["plain"], **PLAIN)
    path = write_voice(tmp_path / "a.wav", 2, seconds=1.0)
    pcm16, _ = sf.read(str(path), dtype="float32")  # what the WAV file holds
    reference = verifier.embed(path)
    for form in [str(path), path.read_bytes(), (pcm16, RATE)]:
        np.testing.assert_allclose(verifier.embed(form), reference, atol=1e-5)
    np.testing.assert_allclose(verifier.embed(pcm16, sample_rate=RATE), reference, atol=1e-5)
    assert np.linalg.norm(reference) == pytest.approx(1.0)
    slow = soxr.resample(pcm16, RATE, 8000)
    assert float(verifier.embed(slow, sample_rate=8000) @ reference) > 0.9
    with pytest.raises(AudioError, match="needs its sample_rate"):
        verifier.embed(pcm16)


def test_profile_is_the_normalised_mean(models: dict[str, Path], tmp_path: Path) -> None:
    verifier = Verifier.from_checkpoint(models["plain"], store=tmp_path / "v.db", threshold=0.5, **PLAIN)
    takes = [(voice(3, 1.0, take=k), RATE) for k in range(3)]
    assert verifier.enroll("carol", takes).recordings == 3
    probe = (voice(3, 1.0, take=9), RATE)
    embeddings = verifier.store.profile("carol", verifier.fingerprint)  # (3, E) as enrolled
    expected = float(unit(unit(embeddings).mean(axis=0)) @ verifier.embed(probe))
    assert verifier.verify("carol", probe).score == pytest.approx(expected, abs=1e-6)
    assert verifier.speakers() == [{"speaker_id": "carol", "recordings": 3, "current_model": True}]
    assert verifier.remove("carol") == 3 and verifier.speakers() == []


def test_identify_ranks_and_says_unknown(models: dict[str, Path], tmp_path: Path) -> None:
    strict = Verifier.from_checkpoint(models["plain"], store=tmp_path / "v.db", threshold=0.9999, **PLAIN)
    assert strict.identify((voice(1, 1.0), RATE)).best == UNKNOWN  # nobody enrolled yet
    for k in range(1, 5):
        strict.enroll(f"spk{k}", [(voice(k, 1.0), RATE)])
    probe = (voice(2, 1.0), RATE)
    result = strict.identify(probe, top_k=3)
    assert result.best == "spk2" and len(result.candidates) == 3
    scores = [c.score for c in result.candidates]
    assert scores == sorted(scores, reverse=True) and result.candidates[0].llr is None
    probe_embedding = strict.embed(probe)
    expected = {sid: float(unit(strict.store.profile(sid, strict.fingerprint)[0]) @ probe_embedding)
                for sid in strict.store.all_profiles(strict.fingerprint)}
    assert [c.speaker_id for c in result.candidates] == sorted(expected, key=expected.get, reverse=True)[:3]
    impostor = strict.identify((voice(7, 1.0), RATE))
    assert impostor.best == UNKNOWN and len(impostor.candidates) == 4
    assert all(c.score < 0.9999 for c in impostor.candidates)


def test_another_model_is_refused(models: dict[str, Path], tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    Verifier.from_checkpoint(models["plain"], store=db, **PLAIN).enroll("dave", [(voice(1, 1.0), RATE)])
    other = Verifier.from_checkpoint(models["other"], store=db, threshold=0.5, **PLAIN)
    with pytest.raises(StoreError, match="re-enroll"):
        other.verify("dave", (voice(1, 1.0), RATE))
    assert other.identify((voice(1, 1.0), RATE)).candidates == []
    assert other.speakers()[0]["current_model"] is False
    assert other.enroll("dave", [(voice(1, 1.0), RATE)], replace=True).recordings == 1
    assert other.verify("dave", (voice(1, 1.0), RATE)).accepted


def test_enrollment_is_all_or_nothing(models: dict[str, Path], tmp_path: Path) -> None:
    verifier = Verifier.from_checkpoint(models["plain"], store=tmp_path / "v.db", **PLAIN)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all" * 20)
    with pytest.raises(AudioError, match="bad.wav"):
        verifier.enroll("erin", [(voice(1, 1.0), RATE), bad])
    assert verifier.speakers() == []
    with pytest.raises(StoreError, match="reserved"):
        verifier.enroll(UNKNOWN, [(voice(1, 1.0), RATE)])
    with pytest.raises(StoreError, match="invalid speaker id"):
        verifier.enroll("../etc", [bad])  # refused before any audio is read
    with pytest.raises(StoreError, match="no enrollment store"):
        Verifier.from_checkpoint(models["plain"], threshold=0.5, **PLAIN).verify("x", bad)
