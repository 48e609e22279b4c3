"""`speakervlad score | eval | calibrate` round trips on generated embeddings and tiny models."""
from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import tone, write_wav

from speakervlad.checkpoint import load_checkpoint
from speakervlad.cli.main import main
from speakervlad.embedding.directory import load_embeddings, save_embeddings
from speakervlad.scoring.asnorm import asnorm_scores, load_cohort
from speakervlad.scoring.calibration import Calibration
from speakervlad.scoring.cosine import cosine_scores, mean_embedding
from speakervlad.scoring.report import evaluate
from speakervlad.scoring.scorefile import read_scores
from speakervlad.scoring.trials import read_trials

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_data(root: Path, speakers: int = 12, per_speaker: int = 6, dim: int = 16, seed: int = 0):
    """Embeddings (speaker centre + noise) and a VoxCeleb trial list of all pairs."""
    rng = np.random.default_rng(seed)
    keys = [f"id{s:03d}/yt{u % 2}/{u:05d}.wav" for s in range(speakers) for u in range(per_speaker)]
    centres = rng.standard_normal((speakers, dim))
    matrix = np.repeat(centres, per_speaker, axis=0) + 0.9 * rng.standard_normal((len(keys), dim))
    save_embeddings(root / "emb", keys, matrix.astype(np.float32), {"model": "synthetic"})
    lines = [f"{int(a[:5] == b[:5])} {a} {b}" for a, b in itertools.combinations(keys, 2)]
    (root / "trials.txt").write_text("\n".join(lines) + "\n")
    return root / "trials.txt", root / "emb"


def test_score_eval_calibrate_round_trip(tmp_path, capsys):
    trials_path, emb = make_data(tmp_path)
    out = tmp_path / "out"
    assert main(["score", "--trials", str(trials_path), "--embeddings", str(emb), "-o", str(out / "s.txt")]) == 0
    assert "wrote 2556 cosine scores" in capsys.readouterr().out
    trials = read_trials(trials_path)
    expected = cosine_scores(trials, load_embeddings(emb))
    kept, scores = read_scores(out / "s.txt").align(trials)
    assert np.array_equal(scores.astype(np.float32), expected.scores)

    assert main(["eval", "--trials", str(trials_path), "--scores", str(out / "s.txt"), "--det",
                 str(out / "det.png"), "--hist", str(out / "hist.png"), "--json", str(out / "r.json")]) == 0
    table = capsys.readouterr().out
    result = evaluate("trials", expected.scores, trials.labels)
    assert "minDCF 0.01" in table and "minDCF 0.05" in table and f"{100 * result.eer:.2f}" in table
    saved = json.loads((out / "r.json").read_text())["results"][0]
    assert saved["eer"] == result.eer and saved["targets"] == 180  # score files hold float32 exactly
    assert saved["eer_threshold"] == pytest.approx(result.eer_threshold, rel=1e-7)
    for p, (value, threshold) in result.min_dcf.items():
        assert saved["min_dcf"][f"{p:g}"]["value"] == value
        assert saved["min_dcf"][f"{p:g}"]["threshold"] == pytest.approx(threshold, rel=1e-7)
    assert 0.005 < saved["eer"] < 0.3
    for png in ("det.png", "hist.png"):
        assert (out / png).read_bytes()[:8] == PNG_MAGIC and (out / png).stat().st_size > 10_000

    assert main(["calibrate", "--trials", str(trials_path), "--scores", str(out / "s.txt"),
                 "-o", str(out / "cal.json")]) == 0
    printed = capsys.readouterr().out
    assert "llr = " in printed and "Bayes decision at target prior 0.01" in printed
    cal = Calibration.from_dict(json.loads((out / "cal.json").read_text()))
    assert cal.prior == 0.01 and cal.scoring == "cosine" and cal.n_target == trials.n_target

    assert main(["score", "--trials", str(trials_path), "--embeddings", str(emb), "-o", str(out / "llr.txt"),
                 "--calibration", str(out / "cal.json")]) == 0
    assert main(["eval", "--trials", str(trials_path), "--scores", str(out / "llr.txt"), "--llr",
                 "--json", str(out / "llr.json")]) == 0
    assert "Cllr" in capsys.readouterr().out
    llr_result = json.loads((out / "llr.json").read_text())["results"][0]
    assert llr_result["eer"] == pytest.approx(saved["eer"])  # calibration is monotone
    assert llr_result["cllr"] == pytest.approx(cal.dev["cllr"], abs=1e-6)
    assert llr_result["min_cllr"] <= llr_result["cllr"] < 0.5


def test_asnorm_mean_and_skip_missing_options(tmp_path, capsys):
    trials_path, emb = make_data(tmp_path)
    _, cohort_dir = make_data(tmp_path / "cohort", speakers=10, seed=1)
    out = tmp_path / "as.txt"
    assert main(["score", "--trials", str(trials_path), "--embeddings", str(emb), "-o", str(out),
                 "--asnorm-cohort", str(cohort_dir), "--asnorm-top", "5", "--mean-from", str(cohort_dir)]) == 0
    assert "asnorm5+mean scores" in capsys.readouterr().out
    cohort = load_embeddings(cohort_dir)
    mean = mean_embedding(cohort)
    np.testing.assert_allclose(mean, np.asarray(cohort.matrix).mean(axis=0), rtol=1e-5, atol=1e-6)
    expected = asnorm_scores(read_trials(trials_path), load_embeddings(emb),
                             load_cohort(cohort, mean), 5, mean).scores
    np.testing.assert_allclose(read_scores(out).scores, expected, rtol=1e-6)

    save_embeddings(tmp_path / "alien", cohort.keys, cohort.matrix, {"model": "another"})
    assert main(["score", "--trials", str(trials_path), "--embeddings", str(emb), "-o", str(out),
                 "--asnorm-cohort", str(tmp_path / "alien")]) == 2
    assert "use embeddings of one model" in capsys.readouterr().err

    partial = load_embeddings(emb)
    save_embeddings(tmp_path / "partial", partial.keys[1:], partial.matrix[1:])
    args = ["score", "--trials", str(trials_path), "--embeddings", str(tmp_path / "partial"), "-o", str(out)]
    assert main(args) == 2
    assert "have no embedding (first: id000/yt0/00000.wav); extract" in capsys.readouterr().err
    assert main(args + ["--skip-missing"]) == 0
    assert "skipped 71 trials without embeddings" in capsys.readouterr().out
    assert main(["eval", "--trials", str(trials_path), "--scores", str(out)]) == 2
    assert main(["eval", "--trials", str(trials_path), "--scores", str(out), "--skip-missing",
                 "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["results"][0]["skipped"] == 71


def test_eval_from_model_and_audio_uses_and_checks_the_cache(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    root = tmp_path / "wav"
    keys = [f"id{s}/v/{u}.wav" for s in range(2) for u in range(2)]
    for i, key in enumerate(keys):
        write_wav(root / key, tone(1.0, freq=150.0 + 80 * (i // 2), seed=i))
    lines = [f"{int(a[:3] == b[:3])} {a} {b}" for a, b in itertools.combinations(keys, 2)]
    (tmp_path / "trials.txt").write_text("\n".join(lines) + "\n")
    args = ["eval", "--model", str(tiny_checkpoint), "--trials", str(tmp_path / "trials.txt"),
            "--audio-root", str(root), "--cache", str(tmp_path / "cache")]
    assert main(args + ["--save-scores", str(tmp_path / "scores")]) == 0
    first = capsys.readouterr().out
    assert load_embeddings(tmp_path / "cache").keys == sorted(keys)
    assert (tmp_path / "scores" / "trials.scores.txt").is_file()

    from speakervlad.embedding.torch_embedder import EmbeddingModel

    def refuse(*_args, **_kwargs):
        raise AssertionError("embedded again despite the cache")

    monkeypatch.setattr(EmbeddingModel, "embed_waveforms", refuse)
    assert main(args) == 0
    assert capsys.readouterr().out == first
    # a list of fewer keys reuses the cache and keeps the other rows in it
    (tmp_path / "few.txt").write_text("\n".join(lines[:2]) + "\n")  # one target, one non-target
    assert main(args[:3] + ["--trials", str(tmp_path / "few.txt")] + args[5:]) == 0
    assert load_embeddings(tmp_path / "cache").keys == sorted(keys)
    capsys.readouterr()

    assert main(args + ["--vad"]) == 2  # rows made without VAD are not rows with it
    assert "made with VAD None, not {'threshold': 0.5" in capsys.readouterr().err

    save_embeddings(tmp_path / "other", keys, np.ones((4, 16), np.float32), {"model": "another"})
    assert main(args[:-1] + [str(tmp_path / "other")]) == 2
    assert "embeddings of another model" in capsys.readouterr().err
    (root / keys[0]).unlink()
    assert main(args[:-2]) == 2  # default cache is new, so the missing file is needed
    assert "1 of 4 utterances to embed are not files under" in capsys.readouterr().err


def test_calibrate_into_checkpoint(tmp_path, tiny_checkpoint, capsys):
    trials_path, _ = make_data(tmp_path)
    trials = read_trials(trials_path)
    rng = np.random.default_rng(0)
    scores = rng.standard_normal(len(trials)) * 0.1 + 0.4 * trials.labels
    (tmp_path / "s.txt").write_text("".join(f"{e} {t} {s}\n" for e, t, s in zip(trials.enroll, trials.test, scores)))
    out = tmp_path / "calibrated.pt"
    assert main(["calibrate", "--trials", str(trials_path), "--scores", str(tmp_path / "s.txt"),
                 "--model", str(tiny_checkpoint), "--into", str(out), "--prior", "0.05"]) == 0
    stored = Calibration.from_dict(load_checkpoint(out).calibration)
    assert stored.prior == 0.05 and load_checkpoint(tiny_checkpoint).calibration is None
    assert "calibrated checkpoint" in capsys.readouterr().out
    assert main(["calibrate", "--trials", str(trials_path), "--scores", str(tmp_path / "s.txt")]) == 2
    assert "say where the calibration goes" in capsys.readouterr().err


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    trials_path, emb = make_data(tmp_path, speakers=3)
    (tmp_path / "bad.txt").write_text("1 a b\n1 a\n")
    assert main(["score", "--trials", str(tmp_path / "bad.txt"), "--embeddings", str(emb), "-o", "x"]) == 2
    assert "bad.txt, line 2:" in capsys.readouterr().err
    assert main(["eval", "--trials", str(trials_path)]) == 2
    assert "either --scores" in capsys.readouterr().err
    assert main(["eval", "--trials", str(trials_path), "--scores", "s.txt", "--mean-from", str(emb)]) == 2
    assert "--mean-from only apply with --model" in capsys.readouterr().err
    result = subprocess.run([sys.executable, "-m", "speakervlad.cli.main", "eval", "--trials", str(trials_path),
                             "--scores", str(tmp_path / "none.txt")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "cannot read scores" in result.stderr
