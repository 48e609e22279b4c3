"""Scoring from score files and embeddings never loads torch (start-up stays fast)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from speakervlad.embedding.directory import save_embeddings

PROBE = """
import sys
from speakervlad.cli.main import main
code = main(sys.argv[1:])
loaded = [m for m in ("torch", "torchaudio", "onnxruntime") if m in sys.modules]
print("LOADED:" + ",".join(loaded))
sys.exit(code)
"""


@pytest.fixture()
def scored(tmp_path):
    keys = [f"s{s}/u{u}.wav" for s in range(4) for u in range(4)]
    rng = np.random.default_rng(0)
    voices = rng.standard_normal((4, 8))  # one direction per speaker, plus noise per recording
    matrix = np.repeat(voices, 4, axis=0) + 0.8 * rng.standard_normal((len(keys), 8))
    save_embeddings(tmp_path / "emb", keys, matrix.astype(np.float32))
    lines = [f"{int(a[:2] == b[:2])} {a} {b}" for i, a in enumerate(keys) for b in keys[i + 1:]]
    (tmp_path / "trials.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def run(*argv: str) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.rsplit("LOADED:", 1)[1].strip()


def test_score_eval_and_calibrate_never_import_torch(scored):
    trials, scores = str(scored / "trials.txt"), str(scored / "scores.txt")
    assert run("score", "--trials", trials, "--embeddings", str(scored / "emb"), "-o", scores) == ""
    assert run("eval", "--trials", trials, "--scores", scores, "--det", str(scored / "det.png"),
               "--json", str(scored / "out.json")) == ""
    assert run("calibrate", "--trials", trials, "--scores", scores, "-o", str(scored / "cal.json")) == ""
