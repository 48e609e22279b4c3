"""recipes/mini/run.sh end to end on a very small setting, and ``speakervlad prepare``."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import TINY, tone

from speakervlad.cli.main import main
from speakervlad.data.lists import read_list
from speakervlad.scoring.trials import read_trials

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "mini"


def test_mini_recipe_end_to_end(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", str(RECIPE / "run.sh"), "--speakers", "8", "--utterances", "6", "--heldout", "3",
         "--trials", "60", "--epochs", "1", "--exp", str(exp), "--synth-dir", str(tmp_path / "data"),
         "--jobs", "2", *TINY, "data.crop_seconds=0.5", "data.batch_size=8", "data.num_workers=0"],
        capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout

    # data: 8 synthetic speakers, 3 held out; trials only between held-out files
    train, held = read_list(exp / "data/train.tsv"), read_list(exp / "data/heldout.tsv")
    assert len({u.speaker for u in train}) == 5 and len({u.speaker for u in held}) == 3
    assert not {u.speaker for u in train} & {u.speaker for u in held}
    trials = read_trials(exp / "data/trials.txt")
    assert set(trials.keys.tolist()) <= {u.key for u in held}
    # both models scored every trial
    for model in ("final", "untrained"):
        assert len((exp / "scores" / f"{model}.txt").read_text().splitlines()) == len(trials)
    # the table has a trained and an untrained row; the DET plot and final model are where it says
    rows = [line.split() for line in out.splitlines() if re.match(r"(un)?trained +trials +60 ", line)]
    assert [row[0] for row in rows] == ["trained", "untrained"]
    assert all(0 <= float(row[3]) <= 100 for row in rows)
    det = Path(out.split("DET plot:")[1].split()[0])
    assert det.is_file() and det.stat().st_size > 0
    final = Path(out.split("final checkpoint:")[1].split()[0])
    newest = max(exp.rglob("*.pt"), key=lambda p: p.stat().st_mtime_ns)
    assert final == newest == exp / "final.pt"


def _flat_corpus(root: Path, speakers: int, seconds: float) -> Path:
    """LibriSpeech-like flat folder: one recording per speaker, named SPEAKER-CHAPTER-0000.flac."""
    root.mkdir(parents=True)
    for s in range(speakers):
        sf.write(root / f"{100 + s}-7-0000.flac", tone(seconds, freq=100.0 + 20 * s, seed=s), 16000)
    (root / "README.TXT").write_text("not audio")
    return root


def test_prepare_cuts_single_recordings_into_segments(tmp_path: Path, capsys) -> None:
    corpus = _flat_corpus(tmp_path / "flat", speakers=10, seconds=7.0)
    out = tmp_path / "lists"
    assert main(["prepare", "--data", str(corpus), "--pattern", r"^(?P<speaker>\d+)-", "--out", str(out),
                 "--heldout", "4", "--trials", "40", "--seed", "1"]) == 0
    train, held = read_list(out / "train.tsv"), read_list(out / "heldout.tsv")
    assert len(train) == 6 and len({u.speaker for u in train}) == 6
    assert not {u.speaker for u in train} & {u.speaker for u in held}
    # 7 s recordings -> two 3 s segments each, as 16 kHz WAV under OUT/segments
    assert Counter(u.speaker for u in held) == {spk: 2 for spk in {u.speaker for u in held}}
    for utt in held:
        assert Path(utt.path).is_relative_to(out / "segments")
        assert sf.info(utt.path).frames == 3 * 16000
    trials = read_trials(out / "trials.txt")
    speaker = {u.key: u.speaker for u in held}
    assert set(trials.keys.tolist()) <= set(speaker)
    same = np.array([speaker[e] == speaker[t] for e, t in zip(trials.enroll, trials.test)])
    np.testing.assert_array_equal(same, trials.labels)
    assert trials.n_target == 4  # one pair of segments per held-out speaker
    assert "4 target" in capsys.readouterr().out


def test_prepare_holds_out_a_share_of_speakers_and_writes_all_pairs(tmp_path: Path, capsys) -> None:
    corpus = _flat_corpus(tmp_path / "flat", speakers=10, seconds=7.0)
    out = tmp_path / "lists"
    assert main(["prepare", "--data", str(corpus), "--pattern", r"^(?P<speaker>\d+)-", "--out", str(out),
                 "--heldout", "30%", "--trials", "all"]) == 0
    held = read_list(out / "heldout.tsv")
    assert len({u.speaker for u in held}) == 3 and len(held) == 6  # 3 speakers x two 3 s segments
    trials = read_trials(out / "trials.txt")
    assert len(trials) == 6 * 5 // 2 and trials.n_target == 3  # every pair once
    assert "15 trials (3 target, 12 non-target)" in capsys.readouterr().out


def test_prepare_without_heldout_writes_only_the_training_list(tmp_path: Path) -> None:
    corpus = _flat_corpus(tmp_path / "flat", speakers=3, seconds=1.0)
    assert main(["prepare", "--data", str(corpus), "--pattern", r"^(?P<speaker>\d+)-",
                 "--out", str(tmp_path / "lists")]) == 0
    assert len(read_list(tmp_path / "lists/train.tsv")) == 3
    assert not (tmp_path / "lists/trials.txt").exists()


def test_prepare_refuses_segments_longer_than_every_recording(tmp_path: Path, capsys) -> None:
    corpus = _flat_corpus(tmp_path / "flat", speakers=4, seconds=1.0)
    assert main(["prepare", "--data", str(corpus), "--pattern", r"^(?P<speaker>\d+)-",
                 "--out", str(tmp_path / "lists"), "--heldout", "2"]) == 2
    assert "lower --segment-seconds" in capsys.readouterr().err


@pytest.mark.parametrize("heldout", ["5", "-1"])
def test_prepare_rejects_impossible_splits(tmp_path: Path, heldout: str, capsys) -> None:
    corpus = _flat_corpus(tmp_path / "flat", speakers=5, seconds=1.0)
    assert main(["prepare", "--data", str(corpus), "--pattern", r"^(?P<speaker>\d+)-",
                 "--out", str(tmp_path / "lists"), "--heldout", heldout]) == 2
    assert f"cannot hold out {heldout} of 5 speakers" in capsys.readouterr().err
