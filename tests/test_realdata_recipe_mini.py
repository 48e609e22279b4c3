"""recipes/mini/run.sh on real speech: the flat LibriSpeech folder with --pattern (needs ../shared/data)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY

from speakervlad.data.lists import read_list
from speakervlad.scoring.trials import read_trials

pytestmark = pytest.mark.realdata
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "mini"


def test_mini_recipe_on_librispeech_flat_folder(shared_data: Path, tmp_path: Path) -> None:
    corpus = shared_data / "librispeech-train-clean-100-subset"
    exp = tmp_path / "exp"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", str(RECIPE / "run.sh"), "--data", str(corpus), "--pattern", r"^(?P<speaker>\d+)-",
         "--heldout", "20", "--trials", "200", "--epochs", "1", "--exp", str(exp), "--jobs", "2",
         *TINY, "data.crop_seconds=1.0", "data.batch_size=16", "data.num_workers=0"],
        capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    flacs = sorted(corpus.glob("*.flac"))
    speakers = {path.name.split("-")[0] for path in flacs}
    train, held = read_list(exp / "data/train.tsv"), read_list(exp / "data/heldout.tsv")
    # speakers named by the pattern; 20 held out and never trained on
    train_speakers, held_speakers = {u.speaker for u in train}, {u.speaker for u in held}
    assert len(train_speakers) == len(speakers) - 20 and train_speakers | held_speakers <= speakers
    assert not train_speakers & held_speakers
    # one recording per speaker: held-out recordings are cut into 3 s segments so that target
    # trials exist; a recording shorter than that gives none, and the log says so
    assert len(held) > len(held_speakers)
    if len(held_speakers) < 20:
        assert "shorter than 3.00 s and gave no segment" in done.stderr
    trials = read_trials(exp / "data/trials.txt")
    assert len(trials) == 200 and 0 < int(trials.labels.sum()) < 200
    rows = [line.split() for line in done.stdout.splitlines() if re.match(r"(un)?trained +trials +200 ", line)]
    assert [row[0] for row in rows] == ["trained", "untrained"]
    assert (exp / "final.pt").is_file()
