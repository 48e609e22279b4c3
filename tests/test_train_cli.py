"""`speakervlad train` / `speakervlad average` on a tiny generated corpus, and torchrun."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import tone_corpus

from speakervlad.checkpoint import load_checkpoint
from speakervlad.cli.main import main
from speakervlad.config import apply_overrides, load_config
from speakervlad.data.heldout import make_trials
from speakervlad.data.lists import build_list
from speakervlad.scoring.trials import write_trials
from speakervlad.train.experiment import METRICS_FIELDS, MetricsLog

TINY = [
    "model.trunk_width=4", "model.embedding_dim=16", "data.crop_seconds=0.5", "data.batch_size=8",
    "data.num_workers=0", "augment.noise_prob=0", "augment.reverb_prob=0",
    "augment.speed_perturb=false", "train.epochs=2", "train.validate_every=1",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """4 speakers x 4 one-second files, plus a corrupt and a too-short file."""
    root = tone_corpus(tmp_path_factory.mktemp("corpus"), seed=1)
    (root / "spk0" / "broken.wav").write_bytes(b"RIFF not really a wave file")
    sf.write(root / "spk1" / "short.wav", np.zeros(3200, np.float32) + 0.1, 16000)
    return root


@pytest.fixture(scope="module")
def trials(corpus, tmp_path_factory):
    utts = [u for u in build_list(corpus) if u.key.split("/")[1].startswith("utt")]
    path = tmp_path_factory.mktemp("trials") / "trials.txt"
    write_trials(path, make_trials(utts, 40, seed=0))
    return path


@pytest.fixture(scope="module")
def trained(corpus, trials, tmp_path_factory):
    exp = tmp_path_factory.mktemp("exp") / "run"
    argv = ["train", "--config", "resnet34_tstp", "--data", str(corpus), "--exp", str(exp),
            "--val-trials", str(trials), "--val-root", str(corpus), *TINY]
    assert main(argv) == 0
    return exp


def test_train_writes_the_experiment(trained, capsys):
    expected = apply_overrides(load_config("resnet34_tstp"), TINY)
    assert load_config(trained / "config.yaml") == expected
    assert (trained / "speakers.txt").read_text().split() == ["spk0", "spk1", "spk2", "spk3"]
    listed = [line for line in (trained / "train.tsv").read_text().splitlines() if not line.startswith("#")]
    assert len(listed) == 16
    report = (trained / "unreadable.txt").read_text().splitlines()[1:]
    assert sorted(line.split("\t")[0] for line in report) == ["spk0/broken.wav", "spk1/short.wav"]
    assert "too short" in next(line for line in report if "short.wav" in line)
    header = (trained / "metrics.csv").read_text().splitlines()[0]
    assert header.split(",") == METRICS_FIELDS
    rows = MetricsLog(trained / "metrics.csv").rows()
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(0.0 <= float(r["val_eer"]) <= 1.0 for r in rows)
    assert all(float(r["loss"]) > 0 and float(r["seconds"]) > 0 for r in rows)
    for name in ("epoch_001.pt", "epoch_002.pt"):
        ckpt = load_checkpoint(trained / "checkpoints" / name)
        assert ckpt.config == expected
        assert ckpt.training_state["speakers"] == ["spk0", "spk1", "spk2", "spk3"]


def test_resume_with_a_changed_config_is_refused(trained, capsys):
    assert main(["train", "--exp", str(trained), "--resume", "optim.lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert "optim.lr: 0.1 -> 0.5" in err and "--force" in err


def test_fresh_run_into_an_experiment_with_checkpoints_is_refused(trained, corpus, capsys):
    argv = ["train", "--config", "resnet34_tstp", "--data", str(corpus), "--exp", str(trained), *TINY]
    assert main(argv) == 2
    assert "--resume" in capsys.readouterr().err


def test_resume_allows_run_only_settings(trained, tmp_path, capsys):
    exp = tmp_path / "copy"
    shutil.copytree(trained, exp)
    assert main(["train", "--exp", str(exp), "--resume", "train.max_minutes=5", "data.num_workers=1"]) == 0
    assert "trained 2 epochs" in capsys.readouterr().out
    assert load_config(exp / "config.yaml").train.max_minutes == 5.0


def test_average_command(trained, tmp_path, capsys):
    assert main(["average", "--exp", str(trained), "--last", "2", "-o", str(tmp_path / "avg.pt")]) == 0
    assert load_checkpoint(tmp_path / "avg.pt").provenance["averaged_from"] == ["epoch_001.pt", "epoch_002.pt"]
    assert main(["average", "--exp", str(trained), "--last", "5"]) == 2
    assert "fewer than --last 5" in capsys.readouterr().err


def test_torchrun_two_cpu_processes(corpus, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed next to this Python")
    exp = tmp_path / "ddp"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "speakervlad.train",
           "--config", "resnet34_tstp", "--data", str(corpus), "--exp", str(exp), "--device", "cpu",
           *TINY[:-2], "data.batch_size=4", "train.epochs=1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trained 1 epoch;" in done.stdout
    state = load_checkpoint(exp / "checkpoints" / "epoch_001.pt").training_state
    assert (state["world_size"], state["steps_per_epoch"]) == (2, 2)
