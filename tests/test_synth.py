"""The synthetic corpus: determinism, layout, resumable writing, and identity that is learnable but not trivial."""
from __future__ import annotations

import hashlib
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from speakervlad.cli.main import main
from speakervlad.data.synth import TSV_COLUMNS, apply_channel, draw_voice, synthesize_utterance
from speakervlad.data.synth_corpus import CorpusSpec, corpus_utterance, corpus_voices, generate_corpus, speaker_ids
from speakervlad.errors import ConfigError

SMALL = CorpusSpec(speakers=3, utterances=2, seconds_min=0.6, seconds_max=1.0, seed=7)


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "corpus"
    generate_corpus(out, SMALL, jobs=1)
    return out


def test_same_seed_same_bytes_whatever_the_jobs(small_corpus: Path, tmp_path: Path) -> None:
    generate_corpus(tmp_path / "again", SMALL, jobs=2)
    assert digests(tmp_path / "again") == digests(small_corpus)


def test_other_seed_other_audio(small_corpus: Path, tmp_path: Path) -> None:
    other = CorpusSpec(**{**SMALL.__dict__, "seed": 8})
    generate_corpus(tmp_path / "other", other, jobs=1)
    first, second = digests(small_corpus), digests(tmp_path / "other")
    wavs = [key for key in first if key.endswith(".wav")]
    assert all(first[key] != second[key] for key in wavs)


def test_layout_rate_and_durations(small_corpus: Path) -> None:
    wavs = sorted(small_corpus.rglob("*.wav"))
    assert [str(p.relative_to(small_corpus)) for p in wavs] == [
        f"{spk}/utt{u:04d}.wav" for spk in ("spk0001", "spk0002", "spk0003") for u in (1, 2)]
    for path in wavs:
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert SMALL.seconds_min - 1e-3 <= info.duration <= SMALL.seconds_max + 1e-3
    assert not list(small_corpus.rglob("*.partial"))
    assert "SYNTHETIC" in (small_corpus / "README.txt").read_text()


def test_speakers_tsv_documents_every_voice(small_corpus: Path) -> None:
    lines = (small_corpus / "speakers.tsv").read_text().splitlines()
    assert lines[0].split("\t") == list(TSV_COLUMNS)
    rows = [dict(zip(TSV_COLUMNS, line.split("\t"))) for line in lines[1:]]
    voices = corpus_voices(SMALL)
    assert [r["speaker_id"] for r in rows] == [v.speaker_id for v in voices]
    assert [float(r["f0_hz"]) for r in rows] == [v.f0_hz for v in voices]
    assert [tuple(map(float, r["formant_offsets"].split(","))) for r in rows] == [v.formant_offsets for v in voices]


def test_audio_is_finite_unclipped_and_not_silent(small_corpus: Path) -> None:
    for path in small_corpus.rglob("*.wav"):
        wave, _ = sf.read(str(path), dtype="float32")
        assert np.isfinite(wave).all()
        assert 1e-3 < np.abs(wave).max() <= 0.951
        assert np.sqrt(np.mean(wave ** 2)) > 1e-3


def test_file_matches_library_synthesis(small_corpus: Path) -> None:
    voice = corpus_voices(SMALL)[1]
    expected = corpus_utterance(SMALL, voice, 1, 0)
    wave, _ = sf.read(str(small_corpus / "spk0002" / "utt0001.wav"), dtype="float32")
    np.testing.assert_allclose(wave, expected, atol=1 / 32768 + 1e-7)


def test_rerun_resumes_and_rewrites_only_missing_files(small_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "resume"
    generate_corpus(out, SMALL, jobs=1)
    (out / "spk0002" / "utt0002.wav").unlink()
    (out / "spk0001" / "utt0001.wav.partial").write_bytes(b"interrupted")  # left by a killed run
    done = generate_corpus(out, SMALL, jobs=1)
    assert (done["written"], done["skipped"]) == (1, 5)
    (out / "spk0001" / "utt0001.wav.partial").unlink()
    assert digests(out) == digests(small_corpus)


def test_refuses_to_mix_corpora(small_corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="other settings"):
        generate_corpus(small_corpus, CorpusSpec(**{**SMALL.__dict__, "seed": 9}))
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.wav").write_bytes(b"x")
    with pytest.raises(ConfigError, match="not a synthetic corpus"):
        generate_corpus(tmp_path / "real", SMALL)


@pytest.mark.parametrize("change, message", [
    ({"speakers": 0}, "at least 1"), ({"seconds_min": 3.0, "seconds_max": 2.0}, "seconds-min"),
    ({"seed": -1}, "seed"), ({"sample_rate": 4000}, "sample-rate"),
])
def test_invalid_specs_are_config_errors(change: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        generate_corpus(tmp_path / "x", CorpusSpec(**{**SMALL.__dict__, **change}))
    assert not (tmp_path / "x").exists()


def test_speaker_ids_widen_for_large_corpora() -> None:
    assert speaker_ids(2) == ["spk0001", "spk0002"]
    assert speaker_ids(12345)[-1] == "spk12345"


def test_voices_have_adult_like_parameters() -> None:
    voices = [draw_voice(np.random.default_rng([3, i]), f"s{i}") for i in range(300)]
    f0 = np.array([v.f0_hz for v in voices])
    vtl = np.array([v.vtl_factor for v in voices])
    female = np.array([v.sex == "female" for v in voices])
    assert 0.35 < female.mean() < 0.65
    assert f0.min() >= 85 and f0.max() <= 255 and vtl.min() >= 0.8 and vtl.max() <= 1.2
    assert f0[female].mean() > f0[~female].mean() + 60
    assert vtl[female].mean() > vtl[~female].mean() + 0.1


def test_pitch_of_the_audio_follows_the_voice() -> None:
    """The F0 parameter is audible: YIN's median F0 lies within 3 semitones of it."""
    for index in range(4):
        voice = draw_voice(np.random.default_rng([11, index]), "s")
        wave = synthesize_utterance(voice, np.random.default_rng([12, index]), seconds=2.0)
        f0 = librosa.yin(wave, fmin=60, fmax=400, sr=16000, frame_length=1024, hop_length=256)
        rms = librosa.feature.rms(y=wave, frame_length=1024, hop_length=256)[0]
        voiced = rms > 0.3 * np.sqrt(np.mean(wave ** 2))
        assert abs(12 * np.log2(np.median(f0[voiced]) / voice.f0_hz)) < 3


def test_channel_changes_long_term_spectrum_and_level() -> None:
    voice = draw_voice(np.random.default_rng(0), "s")
    clean = synthesize_utterance(voice, np.random.default_rng(1), seconds=2.0)
    a = apply_channel(clean, np.random.default_rng(2), 16000)
    b = apply_channel(clean, np.random.default_rng(3), 16000)

    def band_db(wave: np.ndarray) -> np.ndarray:  # 1/3-octave long-term spectrum, 200-3000 Hz
        power = np.abs(librosa.stft(wave, n_fft=1024)) ** 2
        freqs = librosa.fft_frequencies(sr=16000, n_fft=1024)
        edges = 200 * 2 ** (np.arange(13) / 3)
        return np.array([10 * np.log10(power[(freqs >= lo) & (freqs < hi)].mean())
                         for lo, hi in zip(edges[:-1], edges[1:])])

    shape = band_db(a) - band_db(b)
    assert np.ptp(shape - shape.mean()) > 2.0  # the colouring differs, not only the level
    for wave in (a, b):
        assert np.abs(wave).max() <= 0.95 + 1e-6


def test_identity_is_learnable_but_not_trivial() -> None:
    """MFCC means identify speakers well above chance (leave-one-out nearest speaker centroid,
    cosine); the level alone does not. Every seed 0-7 gives 0.375-0.71 against 0.125 chance."""
    spec = CorpusSpec(speakers=8, utterances=6, seconds_min=2.0, seconds_max=3.0, seed=1)
    waves = [corpus_utterance(spec, v, s, u) for s, v in enumerate(corpus_voices(spec))
             for u in range(spec.utterances)]
    labels = np.repeat(np.arange(spec.speakers), spec.utterances)
    mfcc = np.stack([librosa.feature.mfcc(y=w, sr=16000, n_mfcc=20)[1:].mean(axis=1) for w in waves])
    mfcc -= mfcc.mean(axis=0)
    mfcc /= np.linalg.norm(mfcc, axis=1, keepdims=True)  # (N, 19)
    onehot = np.eye(spec.speakers)[labels]  # (N, S)
    sums = onehot.T @ mfcc  # (S, 19)
    centroids = sums[None] - onehot[:, :, None] * mfcc[:, None]  # (N, S, 19), each utterance left out of its own
    scores = np.einsum("nsd,nd->ns", centroids, mfcc) / np.linalg.norm(centroids, axis=2)
    chance = 1 / spec.speakers
    assert (scores.argmax(axis=1) == labels).mean() > 2.4 * chance
    level = np.array([10 * np.log10(np.mean(w ** 2)) for w in waves])
    distance = np.abs(level[:, None] - level[None])
    np.fill_diagonal(distance, np.inf)
    assert (labels[distance.argmin(axis=1)] == labels).mean() < 2 * chance
    assert np.mean([level[labels == s].std() for s in range(spec.speakers)]) > 3.0  # dB within a speaker


def test_other_sample_rate(tmp_path: Path) -> None:
    spec = CorpusSpec(speakers=1, utterances=1, seconds_min=0.5, seconds_max=0.5, sample_rate=8000)
    generate_corpus(tmp_path / "c8k", spec)
    wave, rate = sf.read(str(tmp_path / "c8k" / "spk0001" / "utt0001.wav"), dtype="float32")
    assert rate == 8000 and len(wave) == 4000 and np.isfinite(wave).all() and np.abs(wave).max() > 1e-3


@pytest.mark.parametrize("seed", range(6))
def test_even_the_shortest_files_hold_speech(seed: int) -> None:
    voice = draw_voice(np.random.default_rng(seed), "s")
    wave = synthesize_utterance(voice, np.random.default_rng(100 + seed), seconds=0.2)
    assert len(wave) == 3200
    assert np.sqrt(np.mean(wave ** 2)) > 1e-3  # the channel scales its noise to the speech: silence stays 0


def test_cli_writes_corpus_and_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["synth", "--out", str(tmp_path / "cli"), "--speakers", "2", "--utterances", "1",
            "--seconds-min", "0.5", "--seconds-max", "0.6", "--jobs", "1"]
    assert main(args) == 0
    assert "wrote 2 files" in capsys.readouterr().out
    assert len(list((tmp_path / "cli").rglob("*.wav"))) == 2
    assert main(args + ["--seed", "5"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "bad"), "--seconds-min", "3", "--seconds-max", "2"]) == 2
    assert "--seconds-min" in capsys.readouterr().err
